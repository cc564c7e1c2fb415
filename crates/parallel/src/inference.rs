//! [`ParallelInference`]: `output` callable from many threads at once. Requests go into one
//! bounded queue (DL4J's `queueLimit`); each worker thread ("dl4rs inference N", its own
//! replica and workspaces, products on its share of the cores) takes what is queued — in
//! `Batched` mode consecutive requests of the same shape up to `batch_limit` examples, stacked
//! into one batch (DL4J's `BATCHED`); in `Sequential` mode one request — runs the network and
//! hands each caller its rows of the output, detached (they outlive every workspace cycle).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_memory::destroy_all_workspaces_for_current_thread;
use dl4rs_nn::{Model, NnError};

use crate::error::{ParallelError, panic_message};
use crate::replica::{AsModel, replicate};
use crate::threads::{WorkerThread, product_threads};

/// How requests are grouped (DL4J's `InferenceMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InferenceMode {
    /// Queued requests are stacked into batches of up to `batch_limit` examples (default).
    #[default]
    Batched,
    /// Each request runs on its own.
    Sequential,
}

const WHAT: &str = "ParallelInference";

/// Builds a [`ParallelInference`]; see [`ParallelInference::builder`].
pub struct ParallelInferenceBuilder<'m, T: DataType> {
    model: &'m dyn Model<T>,
    workers: usize,
    batch_limit: usize,
    queue_limit: usize,
    mode: InferenceMode,
}

impl<T: DataType> ParallelInferenceBuilder<'_, T> {
    /// Worker threads (default: the cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Most examples per batch in `Batched` mode (default 32, DL4J's).
    pub fn batch_limit(mut self, b: usize) -> Self {
        self.batch_limit = b;
        self
    }
    /// Most requests waiting; `output` blocks while the queue is full (default 64, DL4J's).
    pub fn queue_limit(mut self, q: usize) -> Self {
        self.queue_limit = q;
        self
    }
    /// `Batched` (default) or `Sequential`.
    pub fn inference_mode(mut self, mode: InferenceMode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks the settings, makes one replica per worker and starts the workers.
    pub fn build(self) -> Result<ParallelInference<T>, ParallelError> {
        if self.workers == 0 {
            return Err(ParallelError::config(
                WHAT,
                "workers(0): at least 1 worker is needed",
            ));
        }
        if self.batch_limit == 0 || self.queue_limit == 0 {
            return Err(ParallelError::config(
                WHAT,
                format!(
                    "batch_limit({}) and queue_limit({}) must be at least 1",
                    self.batch_limit, self.queue_limit
                ),
            ));
        }
        if self.model.input_types().len() != 1 {
            return Err(ParallelError::config(
                WHAT,
                format!(
                    "the network has {} inputs; ParallelInference serves networks with one",
                    self.model.input_types().len()
                ),
            ));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                requests: VecDeque::with_capacity(self.queue_limit),
                stopping: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            queue_limit: self.queue_limit,
        });
        let mut inference = ParallelInference {
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(self.workers),
        };
        let each = product_threads(self.workers);
        for index in 0..self.workers {
            let replica = replicate(self.model, None)?;
            let worker = InferenceWorker {
                index,
                name: format!("dl4rs inference {index}"),
                replica,
                shared: Arc::clone(&shared),
                batch_limit: if self.mode == InferenceMode::Batched {
                    self.batch_limit
                } else {
                    0
                },
            };
            let thread = WorkerThread::spawn(worker.name.clone(), each, move || worker.run())?;
            inference.threads.push(thread);
        }
        Ok(inference)
    }
}

type Outcome<T> = Result<NdArray<T>, ParallelError>;

/// Where a caller waits for its result.
struct Reply<T: DataType> {
    slot: Mutex<Option<Outcome<T>>>,
    ready: Condvar,
}

struct Request<T: DataType> {
    input: NdArray<T>,
    reply: Arc<Reply<T>>,
}

struct Queue<T: DataType> {
    requests: VecDeque<Request<T>>,
    stopping: bool,
}

struct Shared<T: DataType> {
    queue: Mutex<Queue<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    queue_limit: usize,
}

impl<T: DataType> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// DL4J's ParallelInference: one network served to many calling threads by a few workers.
pub struct ParallelInference<T: DataType> {
    shared: Arc<Shared<T>>,
    threads: Vec<WorkerThread>,
}

impl<T: DataType> ParallelInference<T> {
    /// A builder over `model` (copied: the replicas are made at `build`): workers = the cores,
    /// `batch_limit` 32, `queue_limit` 64, `Batched`.
    pub fn builder<M: AsModel<T>>(model: &M) -> ParallelInferenceBuilder<'_, T> {
        ParallelInferenceBuilder {
            model: model.as_model(),
            workers: rayon::current_num_threads(),
            batch_limit: 32,
            queue_limit: 64,
            mode: InferenceMode::Batched,
        }
    }

    /// The network's first output for `input` (examples along axis 0), detached. Blocks while
    /// the queue is full and until a worker has run the request. Callable from any thread.
    pub fn output(&self, input: &impl AsView<T>) -> Result<NdArray<T>, ParallelError> {
        let input = input.view().detach().map_err(NnError::from)?;
        if input.shape().is_empty() {
            return Err(ParallelError::from(NnError::Input(
                "ParallelInference::output: expected examples along axis 0, found a scalar".into(),
            )));
        }
        let reply = Arc::new(Reply {
            slot: Mutex::new(None),
            ready: Condvar::new(),
        });
        {
            let mut q = self.shared.lock();
            while q.requests.len() >= self.shared.queue_limit && !q.stopping {
                q = self
                    .shared
                    .not_full
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if q.stopping {
                return Err(ParallelError::Thread(
                    "ParallelInference is shutting down".into(),
                ));
            }
            q.requests.push_back(Request {
                input,
                reply: Arc::clone(&reply),
            });
        }
        self.shared.not_empty.notify_one();
        let mut slot = reply.slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            slot = reply
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Names of the worker threads.
    pub fn thread_names(&self) -> Vec<String> {
        self.threads.iter().map(|t| t.name().to_string()).collect()
    }
}

impl<T: DataType> Drop for ParallelInference<T> {
    /// Stops the workers (queued requests are still served) and joins every thread.
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.not_empty.notify_all();
        self.shared.not_full.notify_all();
        for t in self.threads.drain(..) {
            t.join();
        }
    }
}

struct InferenceWorker<T: DataType> {
    index: usize,
    name: String,
    replica: Box<dyn Model<T>>,
    shared: Arc<Shared<T>>,
    /// 0: one request at a time.
    batch_limit: usize,
}

impl<T: DataType> InferenceWorker<T> {
    fn run(mut self) {
        let mut batch: Vec<Request<T>> = Vec::new();
        while self.take(&mut batch) {
            let outcome = catch_unwind(AssertUnwindSafe(|| self.serve(&batch)));
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(payload) => Some(format!("panicked: {}", panic_message(&*payload))),
            };
            for r in batch.drain(..) {
                if let Some(message) = &failure {
                    r.reply.deliver(Err(ParallelError::Inference {
                        worker: self.index,
                        thread: self.name.clone(),
                        message: message.clone(),
                    }));
                }
            }
        }
        drop(self);
        destroy_all_workspaces_for_current_thread();
    }

    /// Waits for requests and takes a batch of them; false when stopping with none left.
    fn take(&self, batch: &mut Vec<Request<T>>) -> bool {
        let mut q = self.shared.lock();
        while q.requests.is_empty() {
            if q.stopping {
                return false;
            }
            q = self
                .shared
                .not_empty
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = q.requests.pop_front();
        let Some(first) = first else { return false };
        let mut rows = first.input.shape()[0];
        let tail: Vec<usize> = first.input.shape()[1..].to_vec();
        batch.push(first);
        while let Some(next) = q.requests.front() {
            let shape = next.input.shape();
            if rows + shape[0] > self.batch_limit || shape[1..] != tail[..] {
                break;
            }
            rows += shape[0];
            if let Some(r) = q.requests.pop_front() {
                batch.push(r);
            }
        }
        let more = !q.requests.is_empty();
        drop(q);
        self.shared.not_full.notify_all();
        if more {
            self.shared.not_empty.notify_one();
        }
        true
    }

    /// Runs the batch and delivers each request its rows.
    fn serve(&mut self, batch: &[Request<T>]) -> Result<(), ParallelError> {
        if let [single] = batch {
            let out = self.first_output(&single.input)?;
            single.reply.deliver(Ok(out));
            return Ok(());
        }
        let rows: usize = batch.iter().map(|r| r.input.shape()[0]).sum();
        let mut shape = batch[0].input.shape().to_vec();
        shape[0] = rows;
        let mut values = Vec::with_capacity(shape.iter().product());
        for r in batch {
            values.extend_from_slice(
                r.input
                    .read()
                    .map_err(NnError::from)?
                    .as_slice()
                    .unwrap_or_default(),
            );
        }
        let stacked = NdArray::from_slice_detached(&shape, &values).map_err(NnError::from)?;
        let out = self.first_output(&stacked)?;
        let out_shape = out.shape().to_vec();
        let per_row: usize = out_shape[1..].iter().product();
        let read = out.read().map_err(NnError::from)?;
        let all = read.as_slice().unwrap_or_default();
        let mut at = 0;
        for r in batch {
            let n = r.input.shape()[0];
            let mut s = out_shape.clone();
            s[0] = n;
            let part = NdArray::from_slice_detached(&s, &all[at * per_row..(at + n) * per_row])
                .map_err(NnError::from);
            at += n;
            r.reply.deliver(part.map_err(ParallelError::from));
        }
        Ok(())
    }

    fn first_output(&mut self, input: &NdArray<T>) -> Result<NdArray<T>, ParallelError> {
        let mut outs = self.replica.output_arrays(&[input.view()], false)?;
        if outs.is_empty() {
            return Err(ParallelError::from(NnError::Input(
                "the network produced no output".into(),
            )));
        }
        Ok(outs.swap_remove(0))
    }
}

impl<T: DataType> Reply<T> {
    fn deliver(&self, outcome: Outcome<T>) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        drop(slot);
        self.ready.notify_all();
    }
}
