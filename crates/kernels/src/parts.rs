//! Work on disjoint parts of an output slice, spread over a [`Parallelism`]'s team: what the
//! kernels other than gemm (im2col, col2im, pooling) use to run on every product thread.
//!
//! Each part computes its elements exactly as a one-thread call would (the kernels using it
//! split where no element depends on another part), so results are bit-identical for any
//! thread count. Only a [`Parallelism::Team`] splits: its workers are awake between the
//! products of a step, so a region of a few tens of microseconds pays; on rayon or one thread
//! the work runs on the caller. Allocation-free.

use crate::Parallelism;

/// Elements a task must produce to be worth a hand-off to a team worker (~1 µs).
pub(crate) const MIN_ELEMS_PER_TASK: usize = 1 << 14;

/// The team's pointer to the output, shared by its tasks, each deriving its own part.
struct Out<T>(*mut T, usize);
// SAFETY: tasks derive disjoint sub-slices of the output from it (see `for_each_part`), and
// the team runs each task index exactly once, while the caller's `&mut` borrow is held.
unsafe impl<T: Send> Sync for Out<T> {}

/// Calls `f(u0, u1, part)` for consecutive, disjoint unit ranges `u0..u1` covering
/// `0..units`, where `part` is `data[u0 * unit_len..u1 * unit_len]`: on the caller alone, or
/// split over `par`'s team when there are enough elements (`units * unit_len`).
pub(crate) fn for_each_part<T: Send, F: Fn(usize, usize, &mut [T]) + Sync>(
    par: Parallelism<'_>,
    data: &mut [T],
    units: usize,
    unit_len: usize,
    f: F,
) {
    let total = units * unit_len;
    debug_assert!(data.len() >= total);
    let data = &mut data[..total];
    let tasks = match par {
        Parallelism::Team(team) => team
            .threads()
            .min(units)
            .min(total / MIN_ELEMS_PER_TASK)
            .max(1),
        _ => 1,
    };
    let Parallelism::Team(team) = par else {
        return f(0, units, data);
    };
    if tasks <= 1 {
        return f(0, units, data);
    }
    let out = Out(data.as_mut_ptr(), unit_len);
    team.run(tasks, |i| {
        let out = &out;
        let (u0, u1) = (i * units / tasks, (i + 1) * units / tasks);
        // SAFETY: i < tasks, so u0 <= u1 <= units and [u0*unit_len, u1*unit_len) lies inside
        // `data` (units*unit_len elements); the ranges of distinct i are disjoint and each i
        // runs once, so no two live slices overlap; `data` is borrowed mutably for the whole
        // run, so nothing else touches it.
        let part =
            unsafe { core::slice::from_raw_parts_mut(out.0.add(u0 * out.1), (u1 - u0) * out.1) };
        f(u0, u1, part);
    });
}

/// Calls `f(b, part)` for each block `b` of `0..blocks`, where `part` is
/// `data[start(b)..start(b + 1)]` (`start` non-decreasing, `start(blocks) <= data.len()`):
/// blocks of unequal length (a packed matrix's KC blocks, the last one shorter), claimed one
/// at a time by `par`'s team when there are enough elements, else all on the caller.
pub(crate) fn for_each_block<T: Send, S, F>(
    par: Parallelism<'_>,
    data: &mut [T],
    blocks: usize,
    start: S,
    f: F,
) where
    S: Fn(usize) -> usize + Sync,
    F: Fn(usize, &mut [T]) + Sync,
{
    let total = start(blocks);
    // Checked up front: what makes the parts disjoint and inside `data`.
    assert!(
        total <= data.len() && (0..blocks).all(|b| start(b) <= start(b + 1)),
        "blocks must be ordered and inside the data"
    );
    let tasks = match par {
        Parallelism::Team(team) => team
            .threads()
            .min(blocks)
            .min(total / MIN_ELEMS_PER_TASK)
            .max(1),
        _ => 1,
    };
    let team = match par {
        Parallelism::Team(team) if tasks > 1 => team,
        _ => {
            for b in 0..blocks {
                let (s, e) = (start(b), start(b + 1));
                f(b, &mut data[s..e]);
            }
            return;
        }
    };
    let out = Out(data.as_mut_ptr(), 0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    team.run(tasks, |_| {
        let out = &out;
        loop {
            let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if b >= blocks {
                return;
            }
            let (s, e) = (start(b), start(b + 1));
            // SAFETY: s..e lies inside `data` (checked: e <= total <= data.len()); blocks
            // are disjoint (start is non-decreasing, checked above) and the counter hands
            // each b to one task only; `data` is borrowed mutably for the whole run.
            let part = unsafe { core::slice::from_raw_parts_mut(out.0.add(s), e - s) };
            f(b, part);
        }
    });
}
