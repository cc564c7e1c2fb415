//! Copies between two layouts of one shape: what `assign`, `copy` and the structural ops
//! (permute, concatenate, ...) come down to. Elements pair up in logical (row-major) order;
//! each buffer is walked the way its strides say.
//!
//! A copy is memory-bound, so the walk decides its speed. The two innermost axes that matter
//! go to the kernels' [`copy_mat`] as one matrix per combination of the other axes: the last
//! axis as columns (a `memcpy` per row when both sides are contiguous there) and, for a
//! *transposing* copy (one side contiguous along the last axis, the other along another one,
//! e.g. `[batch, size, time]` to time-major), that other axis as rows, which the kernel walks
//! in 16 x 16 tiles so both sides touch a few cache lines per tile instead of one striding
//! through memory: recurrent layers make several such copies per sequence. [`DstCursor`] is
//! the element-by-element odometer the broadcasting element-wise ops pair with a source.

use dl4rs_kernels::{MatMut, MatRef, copy_mat};

use crate::shape::{Layout, MAX_DIMS};

/// Copies the elements of `src` (seen through `from`) into `dst` (seen through `to`), both in
/// logical order; the layouts have the same shape.
pub(crate) fn copy_strided<T: Copy>(src: &[T], from: &Layout, dst: &mut [T], to: &Layout) {
    let len = from.shape.len();
    if len == 0 {
        return;
    }
    if from.is_c_contiguous() && to.is_c_contiguous() {
        dst[to.offset..to.offset + len].copy_from_slice(&src[from.offset..from.offset + len]);
        return;
    }
    let ndim = from.shape.ndim();
    if ndim == 0 {
        dst[to.offset] = src[from.offset];
        return;
    }
    let dims = from.shape.dims();
    let last = ndim - 1;
    let (fs, ts) = (&from.strides, &to.strides);
    // The matrices handed to the kernel: the last axis as columns, and as rows the axis
    // along which one side is contiguous when the last axis is not contiguous on both (a
    // transposing copy, which the kernel tiles), else the one before the last.
    let contiguous_last = fs[last] == 1 && ts[last] == 1;
    let pick =
        |strides: &[usize; MAX_DIMS]| (0..last).rev().find(|&a| strides[a] == 1 && dims[a] > 1);
    let rows_axis = if contiguous_last {
        None
    } else {
        pick(fs).or_else(|| pick(ts))
    }
    .or(last.checked_sub(1));
    let (outer, (r, fr, tr)) = match rows_axis {
        Some(q) => (Axes::without(ndim, &[q, last]), (dims[q], fs[q], ts[q])),
        None => (Axes::without(ndim, &[last]), (1, 0, 0)),
    };
    let (c, fc, tc) = (dims[last], fs[last], ts[last]);
    outer.for_each(dims, from, to, |fb, tb| {
        let copied = MatRef::new(&src[fb..], r, c, fr, fc)
            .and_then(|s| copy_mat(s, MatMut::new(&mut dst[tb..], r, c, tr, tc)?));
        if copied.is_err() {
            // A layout a matrix view cannot express (a row stride of 0 in a one-row copy,
            // say): element by element.
            for i in 0..r {
                for j in 0..c {
                    dst[tb + i * tr + j * tc] = src[fb + i * fr + j * fc];
                }
            }
        }
    });
}

/// A set of axes to iterate over, outermost first.
struct Axes {
    list: [usize; MAX_DIMS],
    len: usize,
}

impl Axes {
    /// The axes `0..ndim` except `skip`.
    fn without(ndim: usize, skip: &[usize]) -> Axes {
        let mut list = [0; MAX_DIMS];
        let mut len = 0;
        for a in (0..ndim).filter(|a| !skip.contains(a)) {
            list[len] = a;
            len += 1;
        }
        Axes { list, len }
    }

    /// Calls `f(source offset, destination offset)` for every combination of indices along
    /// the axes, in row-major order (the skipped axes at index 0).
    fn for_each(
        &self,
        dims: &[usize],
        from: &Layout,
        to: &Layout,
        mut f: impl FnMut(usize, usize),
    ) {
        let axes = &self.list[..self.len];
        if axes.iter().any(|&a| dims[a] == 0) {
            return;
        }
        let mut counter = [0usize; MAX_DIMS];
        let (mut fb, mut tb) = (from.offset, to.offset);
        loop {
            f(fb, tb);
            // Advance like an odometer, the last listed axis fastest.
            let mut k = axes.len();
            loop {
                if k == 0 {
                    return;
                }
                k -= 1;
                let a = axes[k];
                counter[k] += 1;
                fb += from.strides[a];
                tb += to.strides[a];
                if counter[k] < dims[a] {
                    break;
                }
                fb -= from.strides[a] * dims[a];
                tb -= to.strides[a] * dims[a];
                counter[k] = 0;
            }
        }
    }
}

/// An odometer over a layout, yielding buffer indices in logical order.
pub(crate) struct DstCursor {
    layout: Layout,
    counter: [usize; MAX_DIMS],
    base: usize,
    done: bool,
}

impl DstCursor {
    pub(crate) fn new(layout: &Layout) -> DstCursor {
        DstCursor {
            layout: *layout,
            counter: [0; MAX_DIMS],
            base: layout.offset,
            done: layout.shape.is_empty(),
        }
    }

    /// The next buffer index (callers never ask for more than `len` indices).
    pub(crate) fn next(&mut self) -> usize {
        debug_assert!(!self.done);
        let current = self.base;
        let ndim = self.layout.shape.ndim();
        let dims = self.layout.shape.dims();
        let mut axis = ndim;
        loop {
            if axis == 0 {
                self.done = true;
                break;
            }
            axis -= 1;
            self.counter[axis] += 1;
            self.base += self.layout.strides[axis];
            if self.counter[axis] < dims[axis] {
                break;
            }
            self.base -= self.layout.strides[axis] * dims[axis];
            self.counter[axis] = 0;
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;

    /// The copy an element-by-element odometer makes (the definition).
    fn reference(src: &[f32], from: &Layout, dst: &mut [f32], to: &Layout) {
        let mut s = Vec::new();
        from.for_each_index(|i| s.push(i));
        let mut d = Vec::new();
        to.for_each_index(|i| d.push(i));
        for (a, b) in s.into_iter().zip(d) {
            dst[b] = src[a];
        }
    }

    fn permuted(shape: &[usize], perm: &[usize], offset: usize) -> Layout {
        let base = Layout {
            offset,
            ..Layout::c_order(Shape::new(shape).unwrap())
        };
        let mut l = base;
        let dims: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        l.shape = Shape::new(&dims).unwrap();
        for (i, &p) in perm.iter().enumerate() {
            l.strides[i] = base.strides[p];
        }
        l
    }

    #[test]
    fn every_permutation_of_small_and_tile_crossing_shapes_matches_the_odometer() {
        let shapes: [&[usize]; 6] = [
            &[3, 17, 33],
            &[1, 16, 16],
            &[2, 5],
            &[7],
            &[2, 3, 4, 5],
            &[33, 1, 20],
        ];
        for shape in shapes {
            let n: usize = shape.iter().product();
            let src: Vec<f32> = (0..n + 3).map(|i| i as f32).collect();
            let nd = shape.len();
            let mut perms = vec![vec![]];
            for _ in 0..nd {
                perms = perms
                    .into_iter()
                    .flat_map(|p: Vec<usize>| {
                        (0..nd)
                            .filter(|a| !p.contains(a))
                            .map(|a| {
                                let mut q = p.clone();
                                q.push(a);
                                q
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
            }
            for p in &perms {
                for q in &perms {
                    // Source permuted by p (offset 3), destination by q: any pair of orders.
                    let from = permuted(shape, p, 3);
                    let dims: Vec<usize> = p.iter().map(|&a| shape[a]).collect();
                    let to = permuted(&dims, q, 1);
                    // `to` is a permutation of another shape: undo it so both have `dims`.
                    let mut inv = vec![0; nd];
                    for (i, &a) in q.iter().enumerate() {
                        inv[a] = i;
                    }
                    let to = {
                        let mut l = to;
                        l.shape = Shape::new(&dims).unwrap();
                        for (a, &i) in inv.iter().enumerate() {
                            l.strides[a] = to.strides[i];
                        }
                        l
                    };
                    let mut want = vec![-1.0; n + 1];
                    let mut got = vec![-1.0; n + 1];
                    reference(&src, &from, &mut want, &to);
                    copy_strided(&src, &from, &mut got, &to);
                    assert_eq!(got, want, "shape {shape:?} perms {p:?} {q:?}");
                }
            }
        }
    }

    #[test]
    fn broadcast_sources_repeat_their_elements() {
        let to = Layout::c_order(Shape::new(&[4, 3]).unwrap());
        let src = [9.0f32, 9.0, 1.0, 2.0, 3.0, 4.0];
        let mut strides = [0; MAX_DIMS];
        // A row broadcast down the first axis (stride 0 there)...
        strides[1] = 1;
        let from = Layout {
            shape: Shape::new(&[4, 3]).unwrap(),
            strides,
            offset: 2,
        };
        let mut got = vec![0.0f32; 12];
        copy_strided(&src, &from, &mut got, &to);
        assert_eq!(got, [1.0, 2.0, 3.0].repeat(4));
        // ...and a column broadcast along the last axis.
        let from = Layout {
            strides: {
                let mut s = [0; MAX_DIMS];
                s[0] = 1;
                s
            },
            ..from
        };
        copy_strided(&src, &from, &mut got, &to);
        assert_eq!(
            got,
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0]
        );
    }
}
