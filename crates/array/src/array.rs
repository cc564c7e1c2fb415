//! `NdArray<T>` (owning) and `ArrayView` / `ArrayViewMut` (borrowing): a layout over a
//! [`Buffer`] that lives on the heap or in a workspace, plus ND4J's copy-out operations
//! (`detach`, `leverage`, `leverage_to`, `leverage_or_detach`, `migrate`, `dup`). Element access
//! goes through checked guards ([`ArrayRead`], [`ArrayWrite`]) so a stale array is an error,
//! never data. This module owns storage and placement; the math is in `ops/`.

pub(crate) use crate::copy::{DstCursor, copy_strided};
use crate::view_layout::{indexed, permuted, reshaped, reversed, sliced};
use std::fmt;

use dl4rs_kernels::Float;
use dl4rs_memory::{
    BufMut, BufRef, Buffer, Element, Workspace, check_if_workspace_exists_and_active,
    current_workspace, find_workspace_for_current_thread, parent_workspace,
};

use crate::error::{ArrayError, invalid};
use crate::random;
use crate::shape::{Layout, Shape};

/// The element types arrays hold: `f32` and `f64`.
pub trait DataType: Float + Element {}
impl DataType for f32 {}
impl DataType for f64 {}

/// An n-dimensional array that owns its storage: a [`Buffer`] in the current workspace (or on
/// the heap when none is active) and a layout over it.
///
/// ```
/// use dl4rs_array::{NdArray, ArrayOps};
/// use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};
///
/// let w = NdArray::<f32>::from_slice(&[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap(); // heap
/// let kept = {
///     let _cycle = get_and_activate_workspace(&WorkspaceConfig::default(), "FORWARD").unwrap();
///     let x = NdArray::<f32>::ones(&[1, 2]).unwrap();      // in the workspace
///     let y = x.matmul(&w).unwrap();                       // so is the result
///     assert!(y.is_attached());
///     y.detach().unwrap()                                  // copied out before the cycle ends
/// };
/// assert_eq!(kept.to_vec().unwrap(), vec![4.0, 6.0]);
/// ```
pub struct NdArray<T: DataType> {
    pub(crate) buf: Buffer<T>,
    pub(crate) layout: Layout,
}

/// A borrowed, read-only view of an array (possibly sliced, transposed or broadcast).
#[derive(Clone, Copy)]
pub struct ArrayView<'a, T: DataType> {
    pub(crate) buf: &'a Buffer<T>,
    pub(crate) layout: Layout,
}

/// A borrowed, mutable view of an array.
pub struct ArrayViewMut<'a, T: DataType> {
    pub(crate) buf: &'a mut Buffer<T>,
    pub(crate) layout: Layout,
}

/// Anything that can be seen as an [`ArrayView`]: arrays and views. Ops take `&impl AsView`.
pub trait AsView<T: DataType> {
    /// A read-only view.
    fn view(&self) -> ArrayView<'_, T>;
}

impl<T: DataType> AsView<T> for NdArray<T> {
    fn view(&self) -> ArrayView<'_, T> {
        ArrayView {
            buf: &self.buf,
            layout: self.layout,
        }
    }
}

impl<T: DataType> AsView<T> for ArrayView<'_, T> {
    fn view(&self) -> ArrayView<'_, T> {
        *self
    }
}

impl<T: DataType> AsView<T> for ArrayViewMut<'_, T> {
    fn view(&self) -> ArrayView<'_, T> {
        ArrayView {
            buf: self.buf,
            layout: self.layout,
        }
    }
}

/// Anything that can be seen as an [`ArrayViewMut`]: arrays and mutable views. `_into` ops
/// write into `&mut impl AsViewMut`.
pub trait AsViewMut<T: DataType> {
    /// A read-write view.
    fn view_mut(&mut self) -> ArrayViewMut<'_, T>;
}

impl<T: DataType> AsViewMut<T> for NdArray<T> {
    fn view_mut(&mut self) -> ArrayViewMut<'_, T> {
        ArrayViewMut {
            buf: &mut self.buf,
            layout: self.layout,
        }
    }
}

impl<T: DataType> AsViewMut<T> for ArrayViewMut<'_, T> {
    fn view_mut(&mut self) -> ArrayViewMut<'_, T> {
        ArrayViewMut {
            buf: self.buf,
            layout: self.layout,
        }
    }
}

/// Where a copy goes.
#[derive(Clone, Copy)]
pub(crate) enum Place<'w> {
    /// The current workspace, or the heap.
    Current,
    /// The heap.
    Heap,
    /// A given open workspace.
    In(&'w Workspace),
}

impl<T: DataType> NdArray<T> {
    pub(crate) fn alloc(shape: Shape, zero: bool, place: Place<'_>) -> Result<Self, ArrayError> {
        let len = shape.len();
        let buf = match (place, zero) {
            (Place::Current, true) => Buffer::zeros(len)?,
            (Place::Current, false) => Buffer::uninitialized(len)?,
            (Place::Heap, _) => Buffer::zeros_detached(len)?,
            (Place::In(ws), true) => Buffer::zeros_in(ws, len)?,
            (Place::In(ws), false) => Buffer::uninitialized_in(ws, len)?,
        };
        Ok(NdArray {
            buf,
            layout: Layout::c_order(shape),
        })
    }

    /// Zeros in the current workspace (or on the heap when none is active).
    pub fn zeros(shape: &[usize]) -> Result<Self, ArrayError> {
        Self::alloc(Shape::new(shape)?, true, Place::Current)
    }

    /// Zeros on the heap, whatever workspace is active.
    pub fn zeros_detached(shape: &[usize]) -> Result<Self, ArrayError> {
        Self::alloc(Shape::new(shape)?, true, Place::Heap)
    }

    /// Zeros in the open workspace `workspace` (it need not be current).
    pub fn zeros_in(workspace: &Workspace, shape: &[usize]) -> Result<Self, ArrayError> {
        Self::alloc(Shape::new(shape)?, true, Place::In(workspace))
    }

    /// Unspecified (initialized) contents in the open workspace `workspace`.
    pub fn create_uninitialized_in(
        workspace: &Workspace,
        shape: &[usize],
    ) -> Result<Self, ArrayError> {
        Self::alloc(Shape::new(shape)?, false, Place::In(workspace))
    }

    /// An array whose contents are unspecified (but initialized: never UB to read). Write
    /// every element before reading it; under the memory crate's `PoisonOnReset` debug mode
    /// unwritten elements read as NaN.
    pub fn create_uninitialized(shape: &[usize]) -> Result<Self, ArrayError> {
        Self::alloc(Shape::new(shape)?, false, Place::Current)
    }

    /// Every element `value`.
    pub fn full(shape: &[usize], value: T) -> Result<Self, ArrayError> {
        let mut a = Self::create_uninitialized(shape)?;
        a.buf.write()?.fill(value);
        Ok(a)
    }

    /// Ones.
    pub fn ones(shape: &[usize]) -> Result<Self, ArrayError> {
        Self::full(shape, T::ONE)
    }

    /// A rank-0 array holding `value`.
    pub fn scalar(value: T) -> Result<Self, ArrayError> {
        Self::full(&[], value)
    }

    /// A copy of row-major `data` with `shape`, in the current workspace (or heap).
    pub fn from_slice(shape: &[usize], data: &[T]) -> Result<Self, ArrayError> {
        let shape = Shape::new(shape)?;
        if shape.len() != data.len() {
            return Err(invalid(
                "from_slice",
                format!(
                    "shape {shape} needs {} elements, found {}",
                    shape.len(),
                    data.len()
                ),
            ));
        }
        let mut a = Self::alloc(shape, false, Place::Current)?;
        a.buf.write()?.copy_from_slice(data);
        Ok(a)
    }

    /// A heap copy of row-major `data` with `shape`.
    pub fn from_slice_detached(shape: &[usize], data: &[T]) -> Result<Self, ArrayError> {
        let _heap = dl4rs_memory::scope_out_of_workspaces();
        Self::from_slice(shape, data)
    }

    /// Uniform values in `[low, high)` from the SplitMix64 counter generator with `seed`
    /// (element `i` depends only on `seed` and `i`).
    pub fn rand_uniform(shape: &[usize], low: T, high: T, seed: u64) -> Result<Self, ArrayError> {
        let mut a = Self::create_uninitialized(shape)?;
        random::fill_uniform(&mut a.buf.write()?, low, high, seed);
        Ok(a)
    }

    /// Normal values (Box–Muller over the same generator).
    pub fn rand_normal(shape: &[usize], mean: T, std: T, seed: u64) -> Result<Self, ArrayError> {
        let mut a = Self::create_uninitialized(shape)?;
        random::fill_normal(&mut a.buf.write()?, mean, std, seed);
        Ok(a)
    }

    /// A copy of an `ndarray` array (any layout) in the current workspace (or heap).
    pub fn from_ndarray<S, D>(a: &ndarray::ArrayBase<S, D>) -> Result<Self, ArrayError>
    where
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        let mut out = Self::create_uninitialized(a.shape())?;
        {
            let mut w = out.buf.write()?;
            for (dst, src) in w.iter_mut().zip(a.iter()) {
                *dst = *src;
            }
        }
        Ok(out)
    }

    /// Borrows the elements for writing (checked like reads).
    pub fn write(&mut self) -> Result<ArrayWrite<'_, T>, ArrayError> {
        Ok(ArrayWrite {
            data: self.buf.write()?,
            layout: self.layout,
        })
    }

    /// Reorders the axes without copying (`axes` is a permutation of `0..ndim`).
    pub fn permute(self, axes: &[usize]) -> Result<Self, ArrayError> {
        Ok(NdArray {
            layout: permuted(&self.layout, axes)?,
            buf: self.buf,
        })
    }

    /// Reverses the axes without copying (the transpose of a matrix).
    pub fn t(self) -> Self {
        NdArray {
            layout: reversed(&self.layout),
            buf: self.buf,
        }
    }

    /// Gives a contiguous array a new shape with the same number of elements, without copying.
    pub fn reshape(self, shape: &[usize]) -> Result<Self, ArrayError> {
        Ok(NdArray {
            layout: reshaped(&self.layout, shape)?,
            buf: self.buf,
        })
    }

    /// ND4J `detach()`: a heap copy that outlives every workspace cycle; a detached array is
    /// returned as is. A view's copy is a plain contiguous array.
    pub fn detach(self) -> Result<Self, ArrayError> {
        if !self.is_attached() {
            return Ok(self);
        }
        self.view().copy(Place::Heap)
    }

    /// ND4J `leverage()`: moves the array into the parent of the current workspace (the one
    /// current before it was entered); detaches it when there is none; returns it as is when
    /// it is detached or already there.
    pub fn leverage(self) -> Result<Self, ArrayError> {
        self.check()?;
        if !self.is_attached() {
            return Ok(self);
        }
        match parent_workspace() {
            None => self.detach(),
            Some(parent) if self.buf.is_in(&parent) => Ok(self),
            Some(parent) => self.view().copy(Place::In(&parent)),
        }
    }

    /// ND4J `leverageTo(id)`: copies the array into the open workspace `id`, so it survives
    /// the end of the current cycle; detached arrays and arrays already in `id` are returned
    /// as is. Unlike ND4J, a missing or closed target is an error, not a silent no-op.
    pub fn leverage_to(self, id: &str) -> Result<Self, ArrayError> {
        self.check()?;
        if !self.is_attached() || self.workspace_id() == Some(id) {
            return Ok(self);
        }
        let target = find_workspace_for_current_thread(id)?;
        self.view().copy(Place::In(&target))
    }

    /// ND4J `leverageOrDetach(id)`: `leverage_to(id)` when `id` exists and is open, otherwise
    /// `detach()`.
    pub fn leverage_or_detach(self, id: &str) -> Result<Self, ArrayError> {
        self.check()?;
        if check_if_workspace_exists_and_active(id) {
            self.leverage_to(id)
        } else {
            self.detach()
        }
    }

    /// ND4J `migrate()`: copies the array into the current workspace; with no current
    /// workspace it is returned as is.
    pub fn migrate(self) -> Result<Self, ArrayError> {
        self.check()?;
        match current_workspace() {
            Some(_) => self.view().copy(Place::Current),
            None => Ok(self),
        }
    }

    /// ND4J `migrate(true)`: as [`NdArray::migrate`], but detaches when no workspace is
    /// current.
    pub fn migrate_or_detach(self) -> Result<Self, ArrayError> {
        self.check()?;
        match current_workspace() {
            Some(_) => self.view().copy(Place::Current),
            None => self.detach(),
        }
    }

    /// Copies `src` (same shape, or broadcastable to this shape) into this array.
    pub fn assign(&mut self, src: &impl AsView<T>) -> Result<(), ArrayError> {
        self.view_mut().assign(src)
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: T) -> Result<(), ArrayError> {
        let layout = self.layout;
        let mut w = self.buf.write()?;
        layout.for_each_index(|i| w[i] = value);
        Ok(())
    }
}

impl<'a, T: DataType> ArrayViewMut<'a, T> {
    /// The shape's axis lengths.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape.dims()
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The elements `start..end` (step `step`) of `axis`.
    pub fn slice_axis(
        self,
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        Ok(ArrayViewMut {
            layout: sliced(&self.layout, axis, start, end, step)?,
            buf: self.buf,
        })
    }

    /// The sub-array at `index` along `axis`.
    pub fn index_axis(self, axis: usize, index: usize) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        Ok(ArrayViewMut {
            layout: indexed(&self.layout, axis, index)?,
            buf: self.buf,
        })
    }

    /// A contiguous view with a new shape.
    pub fn reshape(self, shape: &[usize]) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        Ok(ArrayViewMut {
            layout: reshaped(&self.layout, shape)?,
            buf: self.buf,
        })
    }

    /// The axes reversed.
    pub fn t(self) -> ArrayViewMut<'a, T> {
        ArrayViewMut {
            layout: reversed(&self.layout),
            buf: self.buf,
        }
    }

    /// Borrows the elements for writing.
    pub fn write(&mut self) -> Result<ArrayWrite<'_, T>, ArrayError> {
        Ok(ArrayWrite {
            data: self.buf.write()?,
            layout: self.layout,
        })
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: T) -> Result<(), ArrayError> {
        let layout = self.layout;
        let mut w = self.buf.write()?;
        layout.for_each_index(|i| w[i] = value);
        Ok(())
    }

    /// Copies `src` (same shape, or broadcastable to this shape) into the view.
    pub fn assign(&mut self, src: &impl AsView<T>) -> Result<(), ArrayError> {
        let src = src.view();
        let from = src.layout.broadcast_to(&self.layout.shape).ok_or_else(|| {
            ArrayError::ShapeMismatch {
                op: "assign",
                lhs: Box::new(self.layout.shape),
                rhs: Box::new(src.layout.shape),
                expected: "the source must have the destination's shape or broadcast to it",
            }
        })?;
        let data = src.buf.read()?;
        let mut dst = self.buf.write()?;
        copy_strided(&data, &from, &mut dst, &self.layout);
        Ok(())
    }
}

impl<'a, T: DataType> ArrayView<'a, T> {
    /// The shape's axis lengths.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape.dims()
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The version of the underlying buffer's contents: it changes whenever they may have
    /// changed (every write borrow of the array), and no two buffers share one. Data derived
    /// from the view (weights packed for the products) stays valid while the version and the
    /// layout are those it was derived from.
    pub fn version(&self) -> u64 {
        self.buf.version()
    }

    /// Borrows the elements for reading, after checking the array is valid.
    pub fn read(&self) -> Result<ArrayRead<'a, T>, ArrayError> {
        Ok(ArrayRead {
            data: self.buf.read()?,
            layout: self.layout,
        })
    }

    /// The elements `start..end` (step `step`) of `axis`.
    pub fn slice_axis(
        &self,
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        Ok(ArrayView {
            buf: self.buf,
            layout: sliced(&self.layout, axis, start, end, step)?,
        })
    }

    /// The sub-array at `index` along `axis` (one rank less), e.g. a row of a matrix.
    pub fn index_axis(&self, axis: usize, index: usize) -> Result<ArrayView<'a, T>, ArrayError> {
        Ok(ArrayView {
            buf: self.buf,
            layout: indexed(&self.layout, axis, index)?,
        })
    }

    /// The axes reordered.
    pub fn permute(&self, axes: &[usize]) -> Result<ArrayView<'a, T>, ArrayError> {
        Ok(ArrayView {
            buf: self.buf,
            layout: permuted(&self.layout, axes)?,
        })
    }

    /// The axes reversed (the transpose of a matrix).
    pub fn t(&self) -> ArrayView<'a, T> {
        ArrayView {
            buf: self.buf,
            layout: reversed(&self.layout),
        }
    }

    /// A contiguous view with a new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<ArrayView<'a, T>, ArrayError> {
        Ok(ArrayView {
            buf: self.buf,
            layout: reshaped(&self.layout, shape)?,
        })
    }

    /// The view broadcast to `shape` (NumPy rules: axes of length 1 repeat, new axes lead).
    pub fn broadcast(&self, shape: &[usize]) -> Result<ArrayView<'a, T>, ArrayError> {
        let target = Shape::new(shape)?;
        let layout =
            self.layout
                .broadcast_to(&target)
                .ok_or_else(|| ArrayError::ShapeMismatch {
                    op: "broadcast",
                    lhs: Box::new(self.layout.shape),
                    rhs: Box::new(target),
                    expected: "each axis equal, or 1 in the source",
                })?;
        Ok(ArrayView {
            buf: self.buf,
            layout,
        })
    }

    pub(crate) fn copy(&self, place: Place<'_>) -> Result<NdArray<T>, ArrayError> {
        let src = self.buf.read()?;
        let mut out = NdArray::alloc(self.layout.shape, false, place)?;
        {
            let mut dst = out.buf.write()?;
            copy_strided(&src, &self.layout, &mut dst, &out.layout);
        }
        Ok(out)
    }

    /// A heap copy (contiguous).
    pub fn detach(&self) -> Result<NdArray<T>, ArrayError> {
        self.copy(Place::Heap)
    }

    /// A contiguous copy in the current workspace (or heap), ND4J `dup()`.
    pub fn dup(&self) -> Result<NdArray<T>, ArrayError> {
        self.copy(Place::Current)
    }

    /// A copy in the open workspace `workspace`.
    pub fn copy_to(&self, workspace: &Workspace) -> Result<NdArray<T>, ArrayError> {
        self.copy(Place::In(workspace))
    }

    /// The elements in logical (row-major) order, as a `Vec`.
    pub fn to_vec(&self) -> Result<Vec<T>, ArrayError> {
        Ok(self.read()?.to_vec())
    }

    /// An owned `ndarray` copy.
    pub fn to_ndarray(&self) -> Result<ndarray::ArrayD<T>, ArrayError> {
        let v = self.to_vec()?;
        ndarray::ArrayD::from_shape_vec(self.shape(), v)
            .map_err(|e| invalid("to_ndarray", e.to_string()))
    }
}

impl<T: DataType> NdArray<T> {
    /// The shape's axis lengths.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape.dims()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.layout.shape.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.layout.shape.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether the elements are contiguous in row-major order.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_c_contiguous()
    }

    /// Whether the array lives in a workspace.
    pub fn is_attached(&self) -> bool {
        self.buf.is_attached()
    }

    /// The id of its workspace (`None` when detached).
    pub fn workspace_id(&self) -> Option<&str> {
        self.buf.workspace_id()
    }

    /// Whether it lives in `workspace` (false when detached).
    pub fn is_in(&self, workspace: &Workspace) -> bool {
        self.buf.is_in(workspace)
    }

    /// Whether it may be used now (detached, or its workspace cycle is still running).
    pub fn is_valid(&self) -> bool {
        self.buf.is_valid()
    }

    /// `Ok` if it may be used now, else the catalogued error saying why not.
    pub fn check(&self) -> Result<(), ArrayError> {
        Ok(self.buf.check()?)
    }

    /// Borrows the elements for reading, after checking the array is valid.
    pub fn read(&self) -> Result<ArrayRead<'_, T>, ArrayError> {
        self.view().read()
    }

    /// A contiguous copy in the current workspace (or heap), ND4J `dup()`.
    pub fn dup(&self) -> Result<NdArray<T>, ArrayError> {
        self.view().dup()
    }

    /// The elements in logical order.
    pub fn to_vec(&self) -> Result<Vec<T>, ArrayError> {
        self.view().to_vec()
    }

    /// The element at a multi-index.
    pub fn get(&self, index: &[usize]) -> Result<T, ArrayError> {
        self.read()?.get(index)
    }

    /// An owned `ndarray` copy.
    pub fn to_ndarray(&self) -> Result<ndarray::ArrayD<T>, ArrayError> {
        self.view().to_ndarray()
    }
}

impl<T: DataType, D: ndarray::Dimension> TryFrom<ndarray::Array<T, D>> for NdArray<T> {
    type Error = ArrayError;

    /// A heap copy (ranks above [`MAX_DIMS`] are an error).
    fn try_from(a: ndarray::Array<T, D>) -> Result<Self, ArrayError> {
        let _heap = dl4rs_memory::scope_out_of_workspaces();
        NdArray::from_ndarray(&a)
    }
}

/// A checked read borrow of an array's elements (the workspace won't reuse them meanwhile).
pub struct ArrayRead<'a, T: DataType> {
    data: BufRef<'a, T>,
    layout: Layout,
}

impl<T: DataType> ArrayRead<'_, T> {
    /// The elements as one slice, when they are contiguous in row-major order.
    pub fn as_slice(&self) -> Option<&[T]> {
        self.layout.is_c_contiguous().then(|| {
            let n = self.layout.shape.len();
            &self.data[self.layout.offset..self.layout.offset + n]
        })
    }

    /// The underlying buffer and the layout over it (for strided consumers such as gemm).
    pub fn raw(&self) -> (&[T], &Layout) {
        (&self.data, &self.layout)
    }

    /// The element at a multi-index.
    pub fn get(&self, index: &[usize]) -> Result<T, ArrayError> {
        Ok(self.data[self.layout.index_of(index)?])
    }

    /// The elements in logical order.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.layout.shape.len());
        self.layout.for_each_index(|i| out.push(self.data[i]));
        out
    }

    /// Calls `f` with every element in logical order (no allocation).
    pub fn for_each(&self, mut f: impl FnMut(T)) {
        self.layout.for_each_index(|i| f(self.data[i]));
    }

    /// An `ndarray` view of the borrowed elements.
    pub fn as_ndarray(&self) -> Result<ndarray::ArrayViewD<'_, T>, ArrayError> {
        use ndarray::ShapeBuilder;
        let shape =
            ndarray::IxDyn(self.layout.shape.dims()).strides(ndarray::IxDyn(self.layout.strides()));
        ndarray::ArrayViewD::from_shape(shape, &self.data[self.layout.offset..])
            .map_err(|e| invalid("as_ndarray", e.to_string()))
    }
}

/// A checked write borrow of an array's elements.
pub struct ArrayWrite<'a, T: DataType> {
    data: BufMut<'a, T>,
    layout: Layout,
}

impl<T: DataType> ArrayWrite<'_, T> {
    /// The elements as one mutable slice, when they are contiguous in row-major order.
    pub fn as_slice_mut(&mut self) -> Option<&mut [T]> {
        if !self.layout.is_c_contiguous() {
            return None;
        }
        let n = self.layout.shape.len();
        Some(&mut self.data[self.layout.offset..self.layout.offset + n])
    }

    /// Sets the element at a multi-index.
    pub fn set(&mut self, index: &[usize], value: T) -> Result<(), ArrayError> {
        let i = self.layout.index_of(index)?;
        self.data[i] = value;
        Ok(())
    }
}

impl<T: DataType> fmt::Debug for NdArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("NdArray");
        d.field("shape", &self.layout.shape)
            .field("strides", &self.layout.strides());
        match self.workspace_id() {
            Some(id) => d.field("workspace", &id).field("valid", &self.is_valid()),
            None => d.field("workspace", &"<heap>"),
        };
        if let Ok(r) = self.read() {
            let mut head = [T::ZERO; 8];
            let mut n = 0;
            r.for_each(|v| {
                if n < head.len() {
                    head[n] = v;
                    n += 1;
                }
            });
            d.field("first", &&head[..n]);
        }
        d.finish()
    }
}

impl<T: DataType> fmt::Debug for ArrayView<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayView")
            .field("shape", &self.layout.shape)
            .field("strides", &self.layout.strides())
            .field("offset", &self.layout.offset)
            .finish()
    }
}
