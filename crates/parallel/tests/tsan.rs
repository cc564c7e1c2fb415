//! A small ParallelWrapper and ParallelInference run for ThreadSanitizer (`.ci/run` builds
//! this binary with `-Zsanitizer=thread` and std rebuilt under it): batches handed from the
//! prefetch thread through the coordinator to two trainers, the exchange buffer written and
//! read by both, the averaging barrier and the gradient allreduce, and inference requests from
//! four threads. The values are checked too (against a single model, as in `exactness.rs`).

mod common;

use std::sync::Arc;

use common::*;
use dl4rs_array::NdArray;
use dl4rs_data::InMemoryDataSetIterator;
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelInference, ParallelWrapper, TrainingMode};

#[test]
fn wrapper_and_inference_under_a_race_detector() {
    let d = data::<f64>(64, 6, 3, 2);
    for mode in [TrainingMode::Averaging, TrainingMode::SharedGradients] {
        let mut single = mlp::<f64>(6, 5, 3, Updater::sgd(0.3));
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), 8).unwrap();
        single.fit_iter(&mut it, 2).unwrap();
        let mut w = ParallelWrapper::builder(mlp::<f64>(6, 5, 3, Updater::sgd(0.3)))
            .workers(2)
            .training_mode(mode)
            .prefetch_buffer(2)
            .build()
            .unwrap();
        let mut src = source(&d, 4);
        w.fit(&mut src).unwrap();
        w.fit(&mut src).unwrap();
        let net = w.into_model().unwrap();
        assert!(max_diff(net.params(), single.params()) < 1e-12, "{mode:?}");
    }
    let mut net = mlp::<f32>(6, 8, 3, Updater::sgd(0.1));
    let x = NdArray::<f32>::rand_uniform(&[3, 6], -1.0, 1.0, 5).unwrap();
    let want = net.output(&x, false).unwrap().to_vec().unwrap();
    let pi = Arc::new(ParallelInference::builder(&net).workers(2).build().unwrap());
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (pi, x, want) = (pi.clone(), x.dup().unwrap(), want.clone());
            std::thread::spawn(move || {
                for _ in 0..8 {
                    let got = pi.output(&x).unwrap().to_vec().unwrap();
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() <= 1e-6);
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
}
