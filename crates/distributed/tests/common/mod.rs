//! What the trainer's tests share: a small classification data set, a small network, two
//! replicas averaged by hand (what parameter averaging must equal), a listener that records
//! the training thread's heap allocations between iterations, and ranks run as threads.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_distributed::LocalGroup;
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;

pub const INPUTS: usize = 6;
pub const CLASSES: usize = 3;

/// `rows` examples of `INPUTS` features (`INPUTS + 1` when `bad`), one-hot labels.
pub fn data<T: DataType>(rows: usize, bad: bool) -> DataSet<T> {
    let cols = if bad { INPUTS + 1 } else { INPUTS };
    let x = NdArray::<T>::rand_uniform(&[rows, cols], T::from_f64(-1.0), T::ONE, 7).unwrap();
    let mut y = vec![T::ZERO; rows * CLASSES];
    for r in 0..rows {
        y[r * CLASSES + (r * 7 + r / 5) % CLASSES] = T::ONE;
    }
    DataSet::new(
        x,
        NdArray::from_slice_detached(&[rows, CLASSES], &y).unwrap(),
    )
    .unwrap()
}

/// Dense 10 (tanh), dense 8 (ReLU), softmax output; L2 1e-3.
pub fn net<T: DataType>(updater: Updater, seed: u64) -> MultiLayerNetwork<T> {
    let conf = NeuralNetConfiguration::builder()
        .seed(seed)
        .updater(updater)
        .l2(1e-3)
        .list()
        .layer(
            LayerConf::dense(10)
                .n_in(INPUTS)
                .activation(Activation::Tanh),
        )
        .layer(LayerConf::dense(8).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

/// Two replicas, replica `k` fitting batches `2i + k` of `data(rows)` in batches of `batch`,
/// parameters and updater state averaged every `freq` rounds: the parameters at the end.
pub fn averaged_by_hand(
    updater: Updater,
    seed: u64,
    rows: usize,
    batch: usize,
    freq: usize,
) -> Vec<f64> {
    let mut replicas = [net::<f64>(updater, seed), net(updater, seed)];
    let mut it = InMemoryDataSetIterator::new(data::<f64>(rows, false), batch).unwrap();
    let mut round = 0;
    while it.has_next() {
        for r in &mut replicas {
            let b = it.next().unwrap().unwrap();
            r.fit_data_set(&b).unwrap();
        }
        round += 1;
        if round % freq == 0 {
            average(&mut replicas);
        }
    }
    if round % freq != 0 {
        average(&mut replicas);
    }
    replicas[0].params().to_vec().unwrap()
}

fn average(replicas: &mut [MultiLayerNetwork<f64>; 2]) {
    for params in [true, false] {
        let get = |m: &MultiLayerNetwork<f64>| {
            if params {
                m.params()
            } else {
                m.updater_state()
            }
            .to_vec()
            .unwrap()
        };
        let (a, b) = (get(&replicas[0]), get(&replicas[1]));
        let mean: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x + y) * (1.0 / 2.0))
            .collect();
        let mean = NdArray::from_slice_detached(&[mean.len()], &mean).unwrap();
        for r in replicas.iter_mut() {
            if params {
                Model::set_params(r, &mean.view()).unwrap();
            } else {
                Model::set_updater_state(r, &mean.view()).unwrap();
            }
        }
    }
}

/// The largest relative difference (relative to max(|a|, |b|, 1e-3)).
pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
        .fold(0.0, f64::max)
}

/// Records this thread's allocations between consecutive iterations into a preallocated
/// Vec (it stops recording when the Vec is full rather than grow it).
pub struct AllocationsPerIteration {
    pub alloc: &'static CountingAllocator,
    pub last: Option<u64>,
    pub counts: Arc<Mutex<Vec<u64>>>,
}

impl<T: DataType> TrainingListener<T> for AllocationsPerIteration {
    fn iteration_done(&mut self, _m: &dyn Model<T>, _i: &IterationInfo) -> Result<(), NnError> {
        let now = self.alloc.thread_allocations();
        if let (Some(prev), Ok(mut c)) = (self.last, self.counts.lock())
            && c.len() < c.capacity()
        {
            c.push(now - prev);
        }
        self.last = Some(self.alloc.thread_allocations());
        Ok(())
    }
}

/// Runs `f` on every rank of a fresh group, each in its own thread; results in rank order.
pub fn on_ranks<T, R, F>(ranks: usize, timeout: Duration, f: F) -> Vec<R>
where
    T: DataType,
    R: Send,
    F: Fn(LocalGroup<T>) -> R + Sync,
{
    let group = LocalGroup::<T>::new(ranks, 4096, timeout).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|g| {
                let f = &f;
                s.spawn(move || f(g))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
