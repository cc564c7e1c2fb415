//! The exchange buffer workers average parameters or sum gradients through, allocated once:
//! the array is cut into chunks, each behind its own mutex, so workers add their arrays
//! concurrently (each starts at a different chunk and wraps around, so they rarely meet) and
//! then read the result back concurrently. No round allocates; the coordinator never touches it.
//!
//! Two buffers serve alternate combines (by the generation's parity): a trainer that has read
//! this round's result may start the next round at once (its job is posted ahead:
//! `wrapper`) and add into the other buffer while a slow trainer still reads this one. It
//! cannot get a further round ahead: that round's barrier waits for the slow trainer's
//! contribution, which comes after its read.
//!
//! Chunks are allocated by their first writer (a trainer's first rounds), not up front.
//!
//! Each chunk remembers the *generation* (the round's number) its contents belong to: the
//! first contribution of a generation overwrites the chunk instead of adding, so the buffer
//! never needs clearing, and a reader treats a chunk of an older generation as zeros (a sparse
//! message may leave a chunk untouched).
//!
//! The loops are the kernels' `scale_into` and `axpy` (AVX-512 or AVX2 where the CPU has
//! it): the exchange is memory-bound, and the plain loops compiled to 16-byte SSE.
//!
//! Regions: the parameters at 0, the updater state at the next chunk boundary, so a region's
//! first writer of a chunk never meets another region's values.

use std::sync::{Mutex, PoisonError};

use dl4rs_array::DataType;
use dl4rs_kernels::{axpy, scale as scale_assign, scale_into};

/// Elements per chunk: 4 Ki values (16 KiB of f32, in L1 while a reduce works on it), small
/// enough that whole-chunk parts split a 235 k-parameter network evenly (29:29 chunks for
/// two SharedGradients trainers), large enough that locking costs nothing.
pub(crate) const CHUNK: usize = 4 * 1024;

struct Chunk<T> {
    generation: u64,
    /// Empty until the chunk's first write: a region the combine never writes (the other
    /// buffer's updater state, mostly) costs nothing, and the rest is allocated and first
    /// touched by the trainers in their first rounds, at the same time, instead of by the
    /// coordinator before the first one (1.6 ms on W1, a twentieth of an epoch).
    values: Vec<T>,
}

impl<T: DataType> Chunk<T> {
    /// The values, to write (allocated, zero, on the first call). A reader looks only at
    /// a chunk of its generation, which was written, so never at an empty one.
    fn values_mut(&mut self) -> &mut [T] {
        if self.values.is_empty() {
            self.values = vec![T::ZERO; CHUNK];
        }
        &mut self.values
    }
}

/// The two buffers of one wrapper (each chunk allocated once, by its first writer): chunks
/// `0..per_buffer` for even generations, the next `per_buffer` for odd ones.
pub(crate) struct Exchange<T> {
    chunks: Vec<Mutex<Chunk<T>>>,
    per_buffer: usize,
}

/// Worker `worker`'s part of a region of `len` elements at a chunk boundary: a run of whole
/// chunks (the last one may be short), the parts of `0..workers` in order covering the
/// region. A SharedGradients trainer reduces and steps its part only.
pub(crate) fn part(len: usize, worker: usize, workers: usize) -> std::ops::Range<usize> {
    let count = len.div_ceil(CHUNK);
    let at = |w: usize| (w * count / workers.max(1) * CHUNK).min(len);
    at(worker)..at(worker + 1)
}

/// The chunks of a [`part`] as ranges of the region, in order (the last may be short): the
/// pieces a part's owner steps and puts one at a time, while they are in L1.
pub(crate) fn pieces(part: std::ops::Range<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let end = part.end;
    part.step_by(CHUNK).map(move |lo| lo..(lo + CHUNK).min(end))
}

/// Where a region starts: a chunk boundary.
pub(crate) fn region_start(previous_regions_len: usize) -> usize {
    previous_regions_len.div_ceil(CHUNK) * CHUNK
}

impl<T: DataType> Exchange<T> {
    /// Two buffers of `len` values (regions included), generation 0 (no round yet).
    pub(crate) fn new(len: usize) -> Exchange<T> {
        let n = len.div_ceil(CHUNK).max(1);
        Exchange {
            per_buffer: n,
            chunks: (0..2 * n)
                .map(|_| {
                    Mutex::new(Chunk {
                        generation: 0,
                        values: Vec::new(),
                    })
                })
                .collect(),
        }
    }

    /// The chunks covering `offset..offset + len`, starting from the one `worker` of
    /// `workers` begins with, as `(chunk, first element in it, range in the region)`.
    fn spans(
        &self,
        offset: usize,
        len: usize,
        worker: usize,
        workers: usize,
    ) -> impl Iterator<Item = (usize, usize, std::ops::Range<usize>)> {
        let first = offset / CHUNK;
        let count = (offset + len).div_ceil(CHUNK) - first;
        let start = if count == 0 {
            0
        } else {
            worker * count / workers.max(1)
        };
        (0..count).map(move |k| {
            let c = first + (start + k) % count;
            let lo = (c * CHUNK).max(offset);
            let hi = ((c + 1) * CHUNK).min(offset + len);
            (c, lo - c * CHUNK, lo - offset..hi - offset)
        })
    }

    /// Chunk `c` of `generation`'s buffer.
    fn lock(&self, generation: u64, c: usize) -> std::sync::MutexGuard<'_, Chunk<T>> {
        let c = c + (generation % 2) as usize * self.per_buffer;
        // A worker that panicked holding a chunk poisons it; the round is abandoned anyway.
        self.chunks[c]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `weight × src` into the region at `offset` (the first contribution of
    /// `generation` to a chunk overwrites it).
    pub(crate) fn add(
        &self,
        generation: u64,
        offset: usize,
        src: &[T],
        weight: T,
        worker: usize,
        workers: usize,
    ) {
        self.add_except(generation, offset, src, weight, worker, workers, 0..0);
    }

    /// [`Exchange::add`] leaving out the elements `skip` of the region (a chunk-aligned
    /// [`part`]: the contributor's own, which it adds itself with [`Exchange::reduce_into`]).
    #[allow(clippy::too_many_arguments)] // add's arguments and the part
    pub(crate) fn add_except(
        &self,
        generation: u64,
        offset: usize,
        src: &[T],
        weight: T,
        worker: usize,
        workers: usize,
        skip: std::ops::Range<usize>,
    ) {
        for (c, at, range) in self.spans(offset, src.len(), worker, workers) {
            if skip.start <= range.start && range.end <= skip.end {
                continue;
            }
            let mut guard = self.lock(generation, c);
            let chunk = &mut *guard;
            let fresh = chunk.generation != generation;
            chunk.generation = generation;
            let dst = &mut chunk.values_mut()[at..at + range.len()];
            let src = &src[range];
            // The lengths match by construction (`spans`): the kernels cannot fail here.
            if fresh {
                let _ = scale_into(weight, src, dst);
            } else {
                let _ = axpy(weight, src, dst);
            }
        }
    }

    /// Adds a threshold-encoded message into the region at `offset`: each entry is an index
    /// (below `1 << 31`) whose top bit is the sign, standing for `±tau` at that index. The
    /// indices are ascending (the encoder emits them in order).
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    pub(crate) fn add_encoded(
        &self,
        generation: u64,
        offset: usize,
        len: usize,
        message: &[u32],
        tau: T,
        worker: usize,
        workers: usize,
    ) {
        for (c, at, range) in self.spans(offset, len, worker, workers) {
            let lo = message.partition_point(|&e| ((e & INDEX_MASK) as usize) < range.start);
            let hi = message.partition_point(|&e| ((e & INDEX_MASK) as usize) < range.end);
            let mut chunk = self.lock(generation, c);
            let fresh = chunk.generation != generation;
            chunk.generation = generation;
            let values = chunk.values_mut();
            if fresh {
                values[at..at + range.len()].fill(T::ZERO);
            }
            for &e in &message[lo..hi] {
                let i = (e & INDEX_MASK) as usize - range.start + at;
                if e & SIGN_BIT != 0 {
                    values[i] -= tau;
                } else {
                    values[i] += tau;
                }
            }
        }
    }

    /// `dst = scale × (own × dst + region at offset)`, or `scale × region` without `own`
    /// (chunks of another generation read as zeros): the owner of a part reduces it, its own
    /// weighted contribution (still in `dst`) plus what the others added
    /// ([`Exchange::add_except`]); with two contributors the sum is the same two terms as
    /// [`Exchange::add`]'s, so the same bits.
    pub(crate) fn reduce_into(
        &self,
        generation: u64,
        offset: usize,
        dst: &mut [T],
        own: Option<T>,
        scale: T,
    ) {
        for (c, at, range) in self.spans(offset, dst.len(), 0, 1) {
            let chunk = self.lock(generation, c);
            let dst = &mut dst[range.clone()];
            let others =
                (chunk.generation == generation).then(|| &chunk.values[at..at + range.len()]);
            // The lengths match by construction (`spans`): the kernels cannot fail here.
            match (own, others) {
                (Some(w), Some(others)) => {
                    scale_assign(w, dst);
                    let _ = axpy(T::ONE, others, dst);
                    scale_assign(scale, dst);
                }
                (Some(w), None) => {
                    scale_assign(w, dst);
                    scale_assign(scale, dst);
                }
                (None, Some(others)) => {
                    let _ = scale_into(scale, others, dst);
                }
                (None, None) => dst.fill(T::ZERO),
            }
        }
    }

    /// Overwrites the region at `offset` with `src` as `generation`'s values (no adding;
    /// the rest of a chunk keeps what it holds: parts that share a chunk are put by their
    /// owners before anyone reads).
    pub(crate) fn put(&self, generation: u64, offset: usize, src: &[T]) {
        for (c, at, range) in self.spans(offset, src.len(), 0, 1) {
            let mut chunk = self.lock(generation, c);
            // `1 × x` through the vector kernel, not `copy_from_slice`: glibc's `rep movsb`
            // made these copies three times as slow on AMD EPYC (`perf`).
            let _ = scale_into(
                T::ONE,
                &src[range.clone()],
                &mut chunk.values_mut()[at..at + range.len()],
            );
            chunk.generation = generation;
        }
    }

    /// `f` of the region's `offset..offset + len`, which lies in one chunk, read in place
    /// under the chunk's lock: `None` when the chunk holds another generation (reads as
    /// zeros). Saves a part's owner the copy of a gradient chunk it reads once.
    pub(crate) fn with_chunk<R>(
        &self,
        generation: u64,
        offset: usize,
        len: usize,
        f: impl FnOnce(Option<&[T]>) -> R,
    ) -> R {
        let (c, at) = (offset / CHUNK, offset % CHUNK);
        debug_assert!(at + len <= CHUNK, "{offset} + {len} crosses a chunk");
        let chunk = self.lock(generation, c);
        f((chunk.generation == generation).then(|| &chunk.values[at..at + len]))
    }

    /// `dst = scale × region at offset` (chunks of another generation read as zeros).
    pub(crate) fn read(
        &self,
        generation: u64,
        offset: usize,
        dst: &mut [T],
        scale: T,
        worker: usize,
        workers: usize,
    ) {
        for (c, at, range) in self.spans(offset, dst.len(), worker, workers) {
            let chunk = self.lock(generation, c);
            let dst = &mut dst[range.clone()];
            if chunk.generation != generation {
                dst.fill(T::ZERO);
                continue;
            }
            let _ = scale_into(scale, &chunk.values[at..at + range.len()], dst);
        }
    }
}

/// The sign bit of an encoded entry.
pub(crate) const SIGN_BIT: u32 = 1 << 31;
/// The index bits of an encoded entry.
pub(crate) const INDEX_MASK: u32 = SIGN_BIT - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workers_sum_and_read_back_across_regions_and_generations() {
        let p = CHUNK * 2 + 100;
        let s = CHUNK + 7;
        let off = region_start(p);
        assert_eq!(off, CHUNK * 3);
        let ex = Exchange::<f64>::new(off + s);
        // Nothing written yet (no chunk allocated): every region reads as zeros.
        let mut untouched = vec![1.0; off + s];
        ex.read(1, 0, &mut untouched, 1.0, 0, 2);
        assert!(untouched.iter().all(|&v| v == 0.0));
        let a: Vec<f64> = (0..p).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..p).map(|i| 2.0 * i as f64).collect();
        let sa: Vec<f64> = (0..s).map(|i| -(i as f64)).collect();
        for generation in 1..4 {
            ex.add(generation, 0, &a, 1.0, 0, 2);
            ex.add(generation, 0, &b, 1.0, 1, 2);
            ex.add(generation, off, &sa, 2.0, 1, 2);
            let mut out = vec![0.0; p];
            ex.read(generation, 0, &mut out, 0.5, 1, 2);
            for (i, v) in out.iter().enumerate() {
                assert_eq!(*v, 1.5 * i as f64);
            }
            let mut st = vec![0.0; s];
            ex.read(generation, off, &mut st, 1.0, 0, 2);
            for (i, v) in st.iter().enumerate() {
                assert_eq!(*v, -2.0 * i as f64);
            }
        }
    }

    #[test]
    fn encoded_messages_add_signed_thresholds_and_untouched_chunks_read_zero() {
        let p = CHUNK * 3;
        let ex = Exchange::<f32>::new(p);
        // An old generation's dense values must not leak into a sparse round.
        ex.add(1, 0, &vec![9.0; p], 1.0, 0, 2);
        let m0 = [3, SIGN_BIT | 5, (CHUNK + 1) as u32];
        let m1 = [3, (CHUNK + 1) as u32 | SIGN_BIT];
        ex.add_encoded(2, 0, p, &m0, 0.25, 0, 2);
        ex.add_encoded(2, 0, p, &m1, 0.25, 1, 2);
        let mut out = vec![1.0; p];
        ex.read(2, 0, &mut out, 1.0, 0, 2);
        for (i, v) in out.iter().enumerate() {
            let want = match i {
                3 => 0.5,
                5 => -0.25,
                _ => 0.0,
            };
            assert_eq!(*v, want, "index {i}");
        }
    }

    #[test]
    fn a_chunk_is_read_in_place_only_in_its_generation() {
        let ex = Exchange::<f32>::new(CHUNK * 2);
        let values: Vec<f32> = (0..CHUNK * 2).map(|i| i as f32).collect();
        ex.put(4, 0, &values);
        let (at, len) = (CHUNK + 10, 100);
        let seen = ex.with_chunk(4, at, len, |g| g.map(<[f32]>::to_vec));
        assert_eq!(seen.as_deref(), Some(&values[at..at + len]));
        // The other buffer (odd generations) and an older even generation hold nothing.
        assert!(ex.with_chunk(5, at, len, |g| g.is_none()));
        assert!(ex.with_chunk(6, at, len, |g| g.is_none()));
    }
}
