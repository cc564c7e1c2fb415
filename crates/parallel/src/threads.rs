//! How a worker thread gets its share of the cores — the one place that knows how matrix
//! products pick their thread count (so a change there, e.g. to a spinning kernel team with a
//! per-thread setting, changes only this file).
//!
//! Products take their thread count from `rayon::current_num_threads()`, i.e. the size of the
//! *current* rayon pool, and run on a `KernelTeam` of that many threads owned by the calling
//! thread (`dl4rs_array::ops::ProductThreads::Auto`, docs/design.md "Product threads"). So each
//! worker is thread 0 of its own rayon pool of `cores / workers` threads: the worker's loop
//! runs there (a broadcast job on index 0 only), its products split over its own team of that
//! size (the pool's other threads stay parked), and `workers × (cores / workers)` busy threads
//! never exceed the cores (no oversubscription). Running the loop *on* the pool thread (rather than `pool.install` from a
//! separate thread) matters: workspaces are thread-local, and the worker's workspaces must be
//! those of the thread named after it. The pool's threads are spawned here (rayon's
//! `spawn_handler`) so that they are named and can be joined: dropping a pool alone does not
//! wait for its threads.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::error::ParallelError;

/// Product threads per worker: the caller's pool size (all cores by default, or what
/// `pool.install` gave it) divided among the workers, at least 1.
pub(crate) fn product_threads(workers: usize) -> usize {
    (rayon::current_num_threads() / workers.max(1)).max(1)
}

/// A worker thread with its product pool.
pub(crate) struct WorkerThread {
    pool: Option<rayon::ThreadPool>,
    handles: Vec<JoinHandle<()>>,
    name: String,
}

impl WorkerThread {
    /// Starts thread `name` (and `threads - 1` product threads "`name` product k") and runs
    /// `job` on it. `job` must return once told to stop; [`WorkerThread::join`] waits for it.
    pub(crate) fn spawn(
        name: String,
        threads: usize,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<WorkerThread, ParallelError> {
        let handles = Arc::new(Mutex::new(Vec::with_capacity(threads)));
        let spawned = Arc::clone(&handles);
        let base = name.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .spawn_handler(move |thread| {
                let thread_name = match thread.index() {
                    0 => base.clone(),
                    k => format!("{base} product {k}"),
                };
                let handle = std::thread::Builder::new()
                    .name(thread_name)
                    .spawn(move || thread.run())?;
                spawned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| {
                ParallelError::Thread(format!(
                    "expected to start worker thread \"{name}\" with {threads} product \
                     thread(s), but the operating system refused: {e}; use fewer workers"
                ))
            })?;
        let job = Mutex::new(Some(job));
        pool.spawn_broadcast(move |ctx| {
            if ctx.index() == 0
                && let Some(job) = job.lock().unwrap_or_else(PoisonError::into_inner).take()
            {
                job();
            }
        });
        let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(WorkerThread {
            pool: Some(pool),
            handles,
            name,
        })
    }

    /// The worker thread's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the job to return and for every thread of the pool to exit.
    pub(crate) fn join(mut self) {
        self.join_all();
    }

    fn join_all(&mut self) {
        // Dropping the pool tells its threads to exit once the job has returned.
        drop(self.pool.take());
        for handle in self.handles.drain(..) {
            // A panic never reaches here: the jobs catch their own.
            let _ = handle.join();
        }
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.join_all();
    }
}
