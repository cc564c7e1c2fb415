//! Steady state allocates nothing: after warm-up, a `fit` iteration and an `output_in` call
//! (into the caller's workspace) make 0 heap allocations; plain `output` makes exactly one
//! (its detached result). One test in this binary, so the process-wide count sees only it.

use dl4rs_array::NdArray;
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_workspace_for_current_thread};
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn net(updater: Updater) -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(updater)
        .l2(1e-4)
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::batch_norm())
        .layer(LayerConf::dropout(0.9))
        .layer(LayerConf::dense(128).activation(Activation::Gelu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

#[test]
fn steady_state_training_and_inference_allocate_nothing() {
    let x = NdArray::<f32>::rand_uniform(&[128, 784], 0.0, 1.0, 42).unwrap();
    let mut y = vec![0f32; 128 * 10];
    for r in 0..128 {
        y[r * 10 + r % 10] = 1.0;
    }
    let y = NdArray::from_slice(&[128, 10], &y).unwrap();
    let x1 = NdArray::<f32>::rand_uniform(&[1, 784], 0.0, 1.0, 43).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Pool workers start asynchronously and allocate while setting up.
    pool.broadcast(|_| ());
    for updater in [Updater::sgd(0.1), Updater::adam(1e-3)] {
        let mut net = net(updater);
        pool.install(|| {
            // Workspaces belong to a thread: make the caller's on the pool thread.
            let user =
                get_workspace_for_current_thread(&WorkspaceConfig::default(), "USER").unwrap();
            for _ in 0..4 {
                net.fit_arrays(&x, &y).unwrap();
                let _s = user.notify_scope_entered().unwrap();
                net.output_in(&x, false, &user).unwrap();
                net.output_in(&x1, false, &user).unwrap();
            }
            let before = ALLOC.allocations();
            net.fit_arrays(&x, &y).unwrap();
            let fit = ALLOC.allocations() - before;
            assert_eq!(fit, 0, "{updater:?}: heap allocations in a fit iteration");

            let _s = user.notify_scope_entered().unwrap();
            let before = ALLOC.allocations();
            let out = net.output_in(&x, false, &user).unwrap();
            let single = net.output_in(&x1, false, &user).unwrap();
            let inference = ALLOC.allocations() - before;
            assert_eq!(
                inference, 0,
                "heap allocations in output_in (batch 128 and 1)"
            );
            assert_eq!(
                (out.shape(), single.shape()),
                (&[128usize, 10][..], &[1usize, 10][..])
            );

            // do_evaluation: batches fetched inside the output workspace, allocation-free
            // evaluation; a whole pass over 4 batches (reset included) allocates nothing.
            let data = dl4rs_data::DataSet::new(x.dup().unwrap(), y.dup().unwrap()).unwrap();
            let mut it = dl4rs_data::InMemoryDataSetIterator::new(data, 32).unwrap();
            let mut eval = dl4rs_eval::Evaluation::new(10);
            for _ in 0..3 {
                net.do_evaluation(&mut it, &mut [&mut eval]).unwrap();
            }
            let before = ALLOC.allocations();
            net.do_evaluation(&mut it, &mut [&mut eval]).unwrap();
            assert_eq!(
                ALLOC.allocations() - before,
                0,
                "heap allocations in do_evaluation"
            );
            assert_eq!(eval.num_examples(), 4 * 128);

            let before = ALLOC.allocations();
            let detached = net.output(&x1, false).unwrap();
            assert_eq!(
                ALLOC.allocations() - before,
                1,
                "output(): only its detached result"
            );
            assert!(!detached.is_attached());
        });
    }
}
