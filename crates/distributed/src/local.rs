//! [`LocalGroup`]: ranks as threads of one process. It implements [`Collective`] with MPI's
//! semantics (same order of calls on every rank, identical results, a timeout instead of a
//! hang), which is what lets the trainer be tested without MPI, and it is a usable backend for
//! several replicas in one process.
//!
//! Each rank owns one slot, preallocated to the group's largest buffer, behind an `RwLock`. A
//! reduction is: write own slot, wait at the barrier, sum every slot *in rank order* into
//! `recv` (so every rank gets the same bits), wait again (nobody rewrites a slot another rank
//! is still reading). The barrier is a generation counter under a mutex with a timed condvar
//! wait; a rank that times out, or calls [`LocalGroup::abort`], marks the group aborted and
//! wakes everyone, so no member waits forever for a dead one. No step allocates.

use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use dl4rs_array::DataType;

use crate::collective::Collective;
use crate::error::DistributedError;

struct BarrierState {
    arrived: usize,
    generation: u64,
    aborted: Option<(usize, String)>,
}

struct Shared<T> {
    size: usize,
    capacity: usize,
    timeout: Duration,
    slots: Vec<RwLock<Vec<T>>>,
    state: Mutex<BarrierState>,
    wake: Condvar,
}

/// One rank of an in-process group; move each into its own thread.
pub struct LocalGroup<T: DataType> {
    shared: Arc<Shared<T>>,
    rank: usize,
}

impl<T: DataType> LocalGroup<T> {
    /// `size` ranks exchanging buffers of at most `capacity` values; a collective fails with
    /// [`DistributedError::Timeout`] after `timeout`.
    pub fn new(
        size: usize,
        capacity: usize,
        timeout: Duration,
    ) -> Result<Vec<LocalGroup<T>>, DistributedError> {
        if size == 0 {
            return Err(DistributedError::Config(
                "a group needs at least one rank; found 0".into(),
            ));
        }
        let shared = Arc::new(Shared {
            size,
            capacity,
            timeout,
            slots: (0..size)
                .map(|_| RwLock::new(Vec::with_capacity(capacity)))
                .collect(),
            state: Mutex::new(BarrierState {
                arrived: 0,
                generation: 0,
                aborted: None,
            }),
            wake: Condvar::new(),
        });
        Ok((0..size)
            .map(|rank| LocalGroup {
                shared: shared.clone(),
                rank,
            })
            .collect())
    }

    /// Ends the group: every rank's current and later collectives fail with
    /// [`DistributedError::Aborted`] naming this rank.
    pub fn abort(&self, reason: &str) {
        let mut state = self.lock_state();
        if state.aborted.is_none() {
            state.aborted = Some((self.rank, reason.to_string()));
        }
        self.shared.wake.notify_all();
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, BarrierState> {
        // A panicking member poisons nothing we rely on: the state is plain counters.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn aborted_error(&self, state: &BarrierState) -> Option<DistributedError> {
        state
            .aborted
            .as_ref()
            .map(|(by, reason)| DistributedError::Aborted {
                rank: self.rank,
                by: *by,
                reason: reason.clone(),
            })
    }

    fn barrier(&self, op: &'static str) -> Result<(), DistributedError> {
        let deadline = Instant::now() + self.shared.timeout;
        let mut state = self.lock_state();
        if let Some(e) = self.aborted_error(&state) {
            return Err(e);
        }
        let generation = state.generation;
        state.arrived += 1;
        if state.arrived == self.shared.size {
            state.arrived = 0;
            state.generation += 1;
            self.shared.wake.notify_all();
            return Ok(());
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                state.aborted = Some((self.rank, format!("{op} timed out")));
                self.shared.wake.notify_all();
                return Err(DistributedError::Timeout {
                    rank: self.rank,
                    op,
                    seconds: self.shared.timeout.as_secs_f64(),
                });
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if state.generation != generation {
                return Ok(());
            }
            if let Some(e) = self.aborted_error(&state) {
                return Err(e);
            }
        }
    }

    fn check_len(&self, op: &'static str, found: usize) -> Result<(), DistributedError> {
        if found > self.shared.capacity {
            return Err(DistributedError::Length {
                op,
                expected: self.shared.capacity,
                found,
            });
        }
        Ok(())
    }

    fn write_slot(&self, data: &[T]) {
        let mut slot = self.shared.slots[self.rank]
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.clear();
        slot.extend_from_slice(data); // within the preallocated capacity
    }
}

impl<T: DataType> Collective<T> for LocalGroup<T> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&mut self, send: &[T], recv: &mut [T]) -> Result<(), DistributedError> {
        const OP: &str = "allreduce";
        if send.len() != recv.len() {
            return Err(DistributedError::Length {
                op: OP,
                expected: send.len(),
                found: recv.len(),
            });
        }
        self.check_len(OP, send.len())?;
        self.write_slot(send);
        self.barrier(OP)?;
        let mut mismatch = None;
        for (r, slot) in self.shared.slots.iter().enumerate() {
            let slot = slot.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if slot.len() != recv.len() {
                mismatch = Some(slot.len());
                break;
            }
            if r == 0 {
                recv.copy_from_slice(&slot);
            } else {
                for (acc, &v) in recv.iter_mut().zip(slot.iter()) {
                    *acc += v;
                }
            }
        }
        self.barrier(OP)?;
        match mismatch {
            Some(found) => Err(DistributedError::Length {
                op: OP,
                expected: recv.len(),
                found,
            }),
            None => Ok(()),
        }
    }

    fn broadcast(&mut self, buf: &mut [T], root: usize) -> Result<(), DistributedError> {
        const OP: &str = "broadcast";
        if root >= self.shared.size {
            return Err(DistributedError::Config(format!(
                "broadcast root {root} is not a rank (the group has {})",
                self.shared.size
            )));
        }
        self.check_len(OP, buf.len())?;
        if self.rank == root {
            self.write_slot(buf);
        }
        self.barrier(OP)?;
        let found = {
            let slot = self.shared.slots[root]
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if slot.len() == buf.len() {
                buf.copy_from_slice(&slot);
            }
            slot.len()
        };
        self.barrier(OP)?;
        if found != buf.len() {
            return Err(DistributedError::Length {
                op: OP,
                expected: buf.len(),
                found,
            });
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F>(size: usize, f: F) -> Vec<Result<Vec<f32>, DistributedError>>
    where
        F: Fn(&mut LocalGroup<f32>) -> Result<Vec<f32>, DistributedError> + Sync,
    {
        let group = LocalGroup::<f32>::new(size, 8, Duration::from_secs(5)).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|mut g| {
                    let f = &f;
                    s.spawn(move || f(&mut g))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_and_broadcasts_identically_on_every_rank() {
        let results = run(3, |g| {
            let r = g.rank() as f32;
            let mut recv = [0f32; 3];
            let mut last = Vec::new();
            for round in 0..200 {
                let send = [r, r * 10.0, round as f32];
                g.all_reduce_sum(&send, &mut recv)?;
                assert_eq!(recv, [3.0, 30.0, 3.0 * round as f32]);
                let mut b = [r; 2];
                g.broadcast(&mut b, round % 3)?;
                assert_eq!(b, [(round % 3) as f32; 2]);
                last = recv.to_vec();
            }
            Ok(last)
        });
        for r in results {
            assert_eq!(r.unwrap(), vec![3.0, 30.0, 597.0]);
        }
    }

    #[test]
    fn a_silent_rank_is_a_timeout_not_a_hang() {
        let group = LocalGroup::<f32>::new(2, 4, Duration::from_millis(200)).unwrap();
        let mut it = group.into_iter();
        let mut a = it.next().unwrap();
        let _silent = it.next().unwrap();
        let err = a.all_reduce_sum(&[1.0], &mut [0.0]).unwrap_err();
        assert!(
            matches!(
                err,
                DistributedError::Timeout {
                    rank: 0,
                    op: "allreduce",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("stopped answering"), "{err}");
    }

    #[test]
    fn abort_wakes_the_waiting_ranks() {
        let group = LocalGroup::<f32>::new(2, 4, Duration::from_secs(30)).unwrap();
        let mut it = group.into_iter();
        let mut a = it.next().unwrap();
        let b = it.next().unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                b.abort("bad data in shard 1");
            });
            let err = a.all_reduce_sum(&[1.0], &mut [0.0]).unwrap_err();
            assert!(
                matches!(&err, DistributedError::Aborted { rank: 0, by: 1, reason } if reason.contains("bad data")),
                "{err}"
            );
        });
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn mismatched_lengths_are_an_error_on_every_rank() {
        let results = run(2, |g| {
            let n = 2 + g.rank();
            let send = vec![1f32; n];
            let mut recv = vec![0f32; n];
            g.all_reduce_sum(&send, &mut recv)?;
            Ok(recv)
        });
        for r in results {
            assert!(matches!(r, Err(DistributedError::Length { .. })), "{r:?}");
        }
        let group = LocalGroup::<f32>::new(1, 2, Duration::from_secs(1)).unwrap();
        let mut g = group.into_iter().next().unwrap();
        let err = g.all_reduce_sum(&[1.0; 3], &mut [0.0; 3]).unwrap_err();
        assert!(err.to_string().contains("expected 2"), "{err}");
    }
}
