//! [`MpiCollective`]: the [`Collective`] over MPI (rsmpi on the system's MPICH or Open MPI).
//! Collectives are the non-blocking `MPI_Iallreduce` / `MPI_Ibcast`, polled with `MPI_Test`
//! until done or until the group's timeout: MPI has no timeout of its own, and a blocking
//! `MPI_Allreduce` whose peer hangs would hang this rank forever. A timed-out request cannot
//! be cancelled or dropped safely (MPI may still write into the buffer), so on timeout the rank
//! prints the reason and exits (code 75), and the process manager ends every other rank of the
//! job (see [`MpiCollective::abort`] for why not `MPI_Abort`). MPI errors keep
//! MPI's default handler, `MPI_ERRORS_ARE_FATAL`: an MPI failure (a peer's connection lost)
//! also ends the job with MPI's message rather than returning garbage. A rank killed outright
//! is seen by the process manager (mpiexec), which ends the others.

use std::io::Write;
use std::time::{Duration, Instant};

use dl4rs_array::DataType;
use mpi::Threading;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::collective::Collective;
use crate::error::DistributedError;

/// This process's rank of `MPI_COMM_WORLD`.
pub struct MpiCollective {
    world: SimpleCommunicator,
    timeout: Duration,
    rank: usize,
    size: usize,
    // Last: finalizes MPI when the collective is dropped.
    _universe: Universe,
}

impl MpiCollective {
    /// Initializes MPI (once per process; `MPI_THREAD_FUNNELED`: only this thread calls MPI,
    /// while the kernels' threads compute) with `timeout` on every collective.
    pub fn init(timeout: Duration) -> Result<MpiCollective, DistributedError> {
        let (universe, _level) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                DistributedError::Config(
                    "MPI is already initialized in this process (one MpiCollective per process)"
                        .into(),
                )
            })?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiCollective {
            world,
            timeout,
            rank,
            size,
            _universe: universe,
        })
    }

    /// Ends every rank of the job after printing `reason` (for failures that cannot be
    /// reported through a collective): this rank exits with `code` before `MPI_Finalize`, and
    /// the process manager ends the others (MPICH's Hydra kills a job's processes when one
    /// closes its PMI connection unfinalized, its default auto-cleanup; Open MPI's `mpirun`
    /// aborts a job whose rank exits without finalizing).
    ///
    /// Why not `MPI_Abort`: under Hydra it has the process manager kill the job at once, while
    /// the reason this rank just printed can still sit unread in its stderr pipe. CI lost the
    /// line that way in two runs of two, and a loaded 2-core machine in about one run of forty.
    /// A rank that exits is drained instead: the proxy forwards a process's output until its
    /// pipes close, so every line written before the exit arrives.
    pub fn abort(&self, reason: &str, code: i32) -> ! {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "dl4rs rank {}: {reason}; exiting with code {code}, which ends every rank",
            self.rank
        );
        let _ = stderr.flush();
        std::process::exit(code)
    }

    fn timed_out(&self, op: &str) -> ! {
        let e = DistributedError::Timeout {
            rank: self.rank,
            op: if op == "allreduce" {
                "allreduce"
            } else {
                "broadcast"
            },
            seconds: self.timeout.as_secs_f64(),
        };
        eprintln!("dl4rs: {e}");
        self.abort("collective timed out", 75)
    }
}

/// Polls `MPI_Test` until done, yielding the core between polls. MPI progresses a transfer
/// only inside MPI calls, so a large allreduce (many pipelined chunks) needs polls in quick
/// succession: sleeping between polls made a 0.9 MB allreduce several times slower, while
/// `yield_now` still lets another rank's kernels run on an oversubscribed machine.
macro_rules! wait_with_timeout {
    ($self:ident, $op:literal, $request:expr) => {{
        let deadline = Instant::now() + $self.timeout;
        let mut request = $request;
        let mut polls = 0u32;
        loop {
            match request.test() {
                Ok(_) => break,
                Err(pending) => request = pending,
            }
            polls = polls.wrapping_add(1);
            if polls % 64 == 0 && Instant::now() >= deadline {
                $self.timed_out($op);
            }
            std::thread::yield_now();
        }
    }};
}

impl<T: DataType + Equivalence> Collective<T> for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&mut self, send: &[T], recv: &mut [T]) -> Result<(), DistributedError> {
        if send.len() != recv.len() {
            return Err(DistributedError::Length {
                op: "allreduce",
                expected: send.len(),
                found: recv.len(),
            });
        }
        let world = &self.world;
        mpi::request::scope(|scope| {
            wait_with_timeout!(
                self,
                "allreduce",
                world.immediate_all_reduce_into(scope, send, recv, SystemOperation::sum())
            );
        });
        Ok(())
    }

    fn broadcast(&mut self, buf: &mut [T], root: usize) -> Result<(), DistributedError> {
        if root >= self.size {
            return Err(DistributedError::Config(format!(
                "broadcast root {root} is not a rank (the job has {})",
                self.size
            )));
        }
        let process = self.world.process_at_rank(root as i32);
        mpi::request::scope(|scope| {
            wait_with_timeout!(
                self,
                "broadcast",
                process.immediate_broadcast_into(scope, buf)
            );
        });
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "mpi"
    }
}
