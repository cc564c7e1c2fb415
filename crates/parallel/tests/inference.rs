//! ParallelInference: results from 8 calling threads (requests of 1 to 5 rows, interleaved,
//! so batches mix callers) equal single-threaded `output` of the same network, in Batched and
//! Sequential mode; the workers are named threads; configuration errors are clear.

mod common;

use std::sync::Arc;

use common::*;
use dl4rs_array::NdArray;
use dl4rs_nn::*;
use dl4rs_parallel::{InferenceMode, ParallelInference};

#[test]
fn eight_calling_threads_get_what_one_thread_gets() {
    let mut net = mlp::<f32>(6, 16, 3, Updater::sgd(0.1));
    let inputs: Vec<NdArray<f32>> = (0..64)
        .map(|k| NdArray::rand_uniform(&[1 + k % 5, 6], -1.0, 1.0, k as u64).unwrap())
        .collect();
    let expected: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| net.output(x, false).unwrap().to_vec().unwrap())
        .collect();
    let inputs = Arc::new(inputs);
    let expected = Arc::new(expected);
    for mode in [InferenceMode::Batched, InferenceMode::Sequential] {
        let pi = Arc::new(
            ParallelInference::builder(&net)
                .workers(2)
                .batch_limit(8)
                .inference_mode(mode)
                .build()
                .unwrap(),
        );
        assert_eq!(
            pi.thread_names(),
            ["dl4rs inference 0", "dl4rs inference 1"]
        );
        let callers: Vec<_> = (0..8)
            .map(|t| {
                let (pi, inputs, expected) = (pi.clone(), inputs.clone(), expected.clone());
                std::thread::spawn(move || {
                    for round in 0..4 {
                        for k in (t..inputs.len()).step_by(8) {
                            let out = pi.output(&inputs[k]).unwrap();
                            assert_eq!(out.shape(), &[inputs[k].shape()[0], 3]);
                            let got = out.to_vec().unwrap();
                            for (a, b) in got.iter().zip(&expected[k]) {
                                // Stacking requests changes the product's row count only:
                                // each row's sums run in the same order, so values agree to
                                // f32 rounding of the kernel's row blocking.
                                assert!(
                                    (a - b).abs() <= 1e-6,
                                    "{mode:?} request {k} round {round}: {a} vs {b}"
                                );
                            }
                        }
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        drop(pi);
        assert_eq!(threads_left("dl4rs inference"), 0);
    }
}

#[test]
fn inference_configuration_errors() {
    let net = mlp::<f32>(6, 4, 3, Updater::sgd(0.1));
    let err = ParallelInference::builder(&net)
        .workers(0)
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("workers(0)"), "{err}");
    let err = ParallelInference::builder(&net)
        .batch_limit(0)
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("batch_limit(0)"), "{err}");
}
