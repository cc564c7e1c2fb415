//! LeNet allocates nothing in steady state: a training iteration and an `output_in` call (into
//! the caller's workspace, batch 64 and 1) make 0 heap allocations on a 2-thread pool, im2col
//! buffers included. One test in this binary, so the process-wide count sees only it.

use dl4rs_array::NdArray;
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_workspace_for_current_thread};
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn lenet() -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::convolution(20, [5, 5]).activation(Activation::Relu))
        .layer(LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]))
        .layer(LayerConf::convolution(50, [5, 5]))
        .layer(LayerConf::batch_norm())
        .layer(LayerConf::subsampling(PoolingType::Avg, [2, 2], [2, 2]))
        .layer(LayerConf::dense(500).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .set_input_type(InputType::convolutional_flat(28, 28, 1))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

#[test]
fn steady_state_lenet_training_and_inference_allocate_nothing() {
    let x = NdArray::<f32>::rand_uniform(&[64, 784], 0.0, 1.0, 42).unwrap();
    let mut y = vec![0f32; 64 * 10];
    for r in 0..64 {
        y[r * 10 + r % 10] = 1.0;
    }
    let y = NdArray::from_slice(&[64, 10], &y).unwrap();
    let x1 = NdArray::<f32>::rand_uniform(&[1, 784], 0.0, 1.0, 43).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    let mut net = lenet();
    pool.install(|| {
        let user = get_workspace_for_current_thread(&WorkspaceConfig::default(), "USER").unwrap();
        for _ in 0..12 {
            net.fit_arrays(&x, &y).unwrap();
            let _s = user.notify_scope_entered().unwrap();
            net.output_in(&x, false, &user).unwrap();
            net.output_in(&x1, false, &user).unwrap();
        }
        let before = ALLOC.allocations();
        net.fit_arrays(&x, &y).unwrap();
        assert_eq!(
            ALLOC.allocations() - before,
            0,
            "heap allocations in a LeNet fit iteration"
        );
        let _s = user.notify_scope_entered().unwrap();
        let before = ALLOC.allocations();
        let out = net.output_in(&x, false, &user).unwrap();
        let single = net.output_in(&x1, false, &user).unwrap();
        assert_eq!(
            ALLOC.allocations() - before,
            0,
            "heap allocations in LeNet output_in (batch 64 and 1)"
        );
        assert_eq!(
            (out.shape(), single.shape()),
            (&[64usize, 10][..], &[1usize, 10][..])
        );
    });
}
