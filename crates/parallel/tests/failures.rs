//! Failures: configuration errors from `build()`; a worker's error and a worker's panic reach
//! the caller naming the worker, with no trainer thread left running, and so do a listener's
//! error and panic; dropping the wrapper mid-epoch (a source panicking) joins every thread; after a failure, `fit` starts fresh
//! trainers from the model. The tests of this binary count threads by name, so they take a
//! lock and run one at a time.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use common::*;
use dl4rs_array::NdArray;
use dl4rs_data::{DataError, DataSet, DataSetIterator};
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelError, ParallelWrapper};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Batches from a list (one of them may be malformed).
struct Batches(Vec<DataSet<f32>>, usize);

impl DataSetIterator<f32> for Batches {
    fn next(&mut self) -> Option<Result<DataSet<f32>, DataError>> {
        let b = self.0.get(self.1)?.dup();
        self.1 += 1;
        Some(b)
    }
    fn has_next(&self) -> bool {
        self.1 < self.0.len()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        self.1 = 0;
        Ok(())
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        true
    }
    fn batch(&self) -> usize {
        8
    }
    fn total_outcomes(&self) -> usize {
        3
    }
    fn input_columns(&self) -> usize {
        6
    }
    fn total_examples(&self) -> Option<usize> {
        None
    }
}

fn batches(bad_at: Option<usize>) -> Box<dyn DataSetIterator<f32> + Send> {
    let list = (0..8)
        .map(|k| {
            let d = data::<f32>(8, 6, 3, k as u64);
            if Some(k) == bad_at {
                // Labels for 2 classes where the network has 3.
                let y = NdArray::<f32>::zeros_detached(&[8, 2]).unwrap();
                DataSet::new(d.features, y).unwrap()
            } else {
                d
            }
        })
        .collect();
    Box::new(Batches(list, 0))
}

fn wrapper() -> ParallelWrapper<f32, MultiLayerNetwork<f32>> {
    ParallelWrapper::builder(mlp::<f32>(6, 5, 3, Updater::sgd(0.1)))
        .workers(2)
        .build()
        .unwrap()
}

#[test]
fn configuration_errors_say_what_to_do() {
    let _s = serial();
    let one = ParallelWrapper::builder(mlp::<f32>(6, 5, 3, Updater::sgd(0.1)))
        .workers(1)
        .build();
    let msg = one.err().unwrap().to_string();
    assert!(
        msg.contains("workers(1)") && msg.contains("at least 2"),
        "{msg}"
    );
    let zero = ParallelWrapper::builder(mlp::<f32>(6, 5, 3, Updater::sgd(0.1)))
        .averaging_frequency(0)
        .build();
    let msg = zero.err().unwrap().to_string();
    assert!(msg.contains("averaging_frequency(0)"), "{msg}");
    let enc = ParallelWrapper::builder(mlp::<f32>(6, 5, 3, Updater::sgd(0.1)))
        .workers(2)
        .threshold_encoding(Default::default())
        .build();
    assert!(enc.err().unwrap().to_string().contains("SharedGradients"));
}

#[test]
fn a_worker_error_reaches_the_caller_naming_the_worker() {
    let _s = serial();
    let mut w = wrapper();
    // Batch 3 is malformed: round 1, worker 1.
    let mut src = batches(Some(3));
    let err = w.fit(&mut src).unwrap_err();
    match &err {
        ParallelError::Worker { worker, thread, .. } => {
            assert_eq!((*worker, thread.as_str()), (1, "dl4rs trainer 1"), "{err}");
        }
        other => panic!("expected a worker error, got {other}"),
    }
    assert!(err.to_string().contains("label"), "{err}");
    assert_eq!(threads_left("dl4rs trainer"), 0, "no trainer left running");
    assert!(w.thread_names().is_empty());
    // The next fit starts fresh trainers from the model.
    let mut good = batches(None);
    w.fit(&mut good).unwrap();
    assert_eq!(w.into_model().unwrap().iteration_count(), 4);
    assert_eq!(threads_left("dl4rs trainer"), 0);
}

#[test]
fn a_worker_panic_reaches_the_caller_naming_the_worker() {
    let _s = serial();
    let mut w = ParallelWrapper::builder(mlp::<f32>(6, 5, 3, Updater::sgd(0.1)))
        .workers(2)
        .panic_in_worker_for_tests(0, 2)
        .build()
        .unwrap();
    let mut src = batches(None);
    let err = w.fit(&mut src).unwrap_err();
    match &err {
        ParallelError::Panic {
            worker, message, ..
        } => {
            assert_eq!(*worker, 0);
            assert!(message.contains("injected panic"), "{message}");
        }
        other => panic!("expected a panic error, got {other}"),
    }
    assert!(err.to_string().contains("dl4rs trainer 0"), "{err}");
    assert_eq!(threads_left("dl4rs trainer"), 0);
    // The caller's iterator is handed back and still works.
    assert!(src.reset_supported());
}

struct PanicAt(u64);

impl TrainingListener<f32> for PanicAt {
    fn iteration_done(&mut self, _: &dyn Model<f32>, info: &IterationInfo) -> Result<(), NnError> {
        assert!(
            info.iteration != self.0,
            "listener panic at round {}",
            self.0
        );
        Ok(())
    }
}

struct FailAt(u64);

impl TrainingListener<f32> for FailAt {
    fn iteration_done(&mut self, _: &dyn Model<f32>, info: &IterationInfo) -> Result<(), NnError> {
        if info.iteration == self.0 {
            return Err(NnError::Config(format!(
                "listener refused round {}",
                self.0
            )));
        }
        Ok(())
    }
}

#[test]
fn a_listener_error_or_panic_reaches_the_caller_and_joins_every_thread() {
    let _s = serial();
    // Listeners run on trainer 0: a panic there is that trainer's panic.
    let mut w = wrapper();
    w.add_listener(Box::new(PanicAt(2)));
    let mut src = batches(None);
    let err = w.fit(&mut src).unwrap_err();
    match &err {
        ParallelError::Panic {
            worker, message, ..
        } => {
            assert_eq!(*worker, 0);
            assert!(message.contains("listener panic at round 2"), "{message}");
        }
        other => panic!("expected a panic error, got {other}"),
    }
    assert_eq!(threads_left("dl4rs trainer"), 0);
    // An error is the listener's own, as from a single model's fit.
    let mut w = wrapper();
    w.add_listener(Box::new(FailAt(3)));
    src.reset().unwrap();
    let err = w.fit(&mut src).unwrap_err();
    assert!(
        matches!(&err, ParallelError::Nn(e) if e.to_string().contains("listener refused round 3")),
        "{err}"
    );
    assert_eq!(threads_left("dl4rs trainer"), 0);
    // The listeners come back with the failed fit: a second fit calls them again.
    src.reset().unwrap();
    let err = w.fit(&mut src).unwrap_err();
    assert!(
        err.to_string().contains("listener refused round 3"),
        "{err}"
    );
}

/// A source on the calling thread (no prefetch) that panics in its `k`-th `next()`.
struct PanicSource(Box<dyn DataSetIterator<f32> + Send>, usize);

impl DataSetIterator<f32> for PanicSource {
    fn next(&mut self) -> Option<Result<DataSet<f32>, DataError>> {
        self.1 -= 1;
        assert!(self.1 > 0, "source panic");
        self.0.next()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        self.0.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        8
    }
    fn total_outcomes(&self) -> usize {
        3
    }
    fn input_columns(&self) -> usize {
        6
    }
    fn total_examples(&self) -> Option<usize> {
        None
    }
}

#[test]
fn dropping_mid_epoch_joins_every_thread() {
    let _s = serial();
    let mut w = wrapper();
    let mut src: Box<dyn DataSetIterator<f32> + Send> = Box::new(PanicSource(batches(None), 5));
    let unwound = catch_unwind(AssertUnwindSafe(|| w.fit(&mut src)));
    assert!(unwound.is_err(), "the source's panic propagates");
    // Mid-epoch: the trainers are still there, until the wrapper goes.
    assert!(threads_present("dl4rs trainer", 2));
    drop(w);
    assert_eq!(threads_left("dl4rs trainer"), 0);
    // A prefetching source: its thread is joined too.
    let mut w = wrapper();
    w.add_listener(Box::new(PanicAt(2)));
    let mut src = batches(None);
    assert!(w.fit(&mut src).is_err());
    drop(w);
    assert_eq!(threads_left("dl4rs trainer"), 0);
    assert_eq!(threads_left("ADSI"), 0, "the prefetch thread is joined too");
}
