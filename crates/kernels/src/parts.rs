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
