//! A trainer that waits for a slower one runs a share of its matrix products (products on one
//! thread each: every trainer's run on a lent `KernelTeam` that waiting trainers help). Its
//! own process (a test binary of its own): the other tests' threads would take the CPUs the
//! two trainers need to overlap.

mod common;

use std::time::Duration;

use common::{data, max_diff, mlp, source};
use dl4rs_data::InMemoryDataSetIterator;
use dl4rs_nn::Updater;
use dl4rs_parallel::{ParallelWrapper, TrainingMode};

/// Trainer 1 is held back before each gradient, so trainer 0 reaches the barrier first and
/// helps with trainer 1's products: the tasks are run (counted), and the parameters are
/// still those of one model trained on the union batches (who computes a block of a product
/// does not change its bits).
#[test]
fn a_waiting_trainer_helps_the_slower_ones_products_without_changing_the_result() {
    // Products big enough to be split (256 x 256 per layer, batches of 64).
    let (inputs, hidden, batch, rounds) = (256, 256, 64, 60);
    let d = data::<f64>(2 * batch * rounds, inputs, 4, 31);
    for mode in [TrainingMode::SharedGradients, TrainingMode::Averaging] {
        let mut single = mlp::<f64>(inputs, hidden, 4, Updater::sgd(0.05));
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), 2 * batch).unwrap();
        single.fit_iter(&mut it, 1).unwrap();
        // A machine whose CPUs are both taken (another process) parks the waiting trainer
        // instead of letting it spin and help: try a few fits, each checked.
        let mut helped = 0;
        for _attempt in 0..8 {
            let mut w = ParallelWrapper::builder(mlp::<f64>(inputs, hidden, 4, Updater::sgd(0.05)))
                .workers(2)
                .product_threads(1)
                .training_mode(mode)
                .delay_worker_for_tests(1, Duration::from_micros(300))
                .build()
                .unwrap();
            let mut src = source(&d, batch);
            w.fit(&mut src).unwrap();
            helped = w.round_stats().tasks_helped;
            let net = w.into_model().unwrap();
            assert_eq!(net.iteration_count(), rounds as u64);
            let diff = max_diff(net.params(), single.params());
            assert!(diff < 1e-9, "{mode:?}: {diff:e}");
            if helped > 0 {
                break;
            }
        }
        assert!(helped > 0, "{mode:?}: no product task was helped in 8 fits");
    }
}
