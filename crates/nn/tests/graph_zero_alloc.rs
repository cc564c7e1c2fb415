//! A graph with two inputs, a merge, a skip connection and two outputs allocates nothing in
//! steady state: a `fit` iteration on a multi data set and an `output_in` call (into the
//! caller's workspace, outputs pushed onto a reused `Vec`) make 0 heap allocations on a
//! 2-thread pool. One test in this binary, so the process-wide count sees only it.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::MultiDataSet;
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_workspace_for_current_thread};
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn graph(updater: Updater) -> ComputationGraph<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(updater)
        .l2(1e-4)
        .graph_builder()
        .add_inputs(&["pixels", "meta"])
        .set_input_types(&[
            InputType::convolutional(8, 8, 2),
            InputType::feed_forward(12),
        ])
        .add_layer(
            "a",
            LayerConf::dense(96).activation(Activation::Relu),
            &["pixels"],
        )
        .add_layer(
            "b",
            LayerConf::dense(32).activation(Activation::Relu),
            &["meta"],
        )
        .add_vertex("merge", VertexConf::merge(), &["a", "b"])
        .add_layer(
            "c",
            LayerConf::dense(96).activation(Activation::Gelu),
            &["merge"],
        )
        .add_layer("bn", LayerConf::batch_norm(), &["c"])
        .add_vertex(
            "skip",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["bn", "a"],
        )
        .add_layer(
            "class",
            LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax),
            &["skip"],
        )
        .add_layer(
            "value",
            LayerConf::output(LossFunction::Mse, 1).activation(Activation::Identity),
            &["c"],
        )
        .set_outputs(&["class", "value"])
        .build()
        .unwrap();
    ComputationGraph::new(conf).unwrap()
}

#[test]
fn steady_state_graph_training_and_inference_allocate_nothing() {
    let batch = 64;
    let pixels = NdArray::<f32>::rand_uniform(&[batch, 2, 8, 8], 0.0, 1.0, 1).unwrap();
    let meta = NdArray::<f32>::rand_uniform(&[batch, 12], -1.0, 1.0, 2).unwrap();
    let mut y = vec![0f32; batch * 10];
    for r in 0..batch {
        y[r * 10 + r % 10] = 1.0;
    }
    let class = NdArray::from_slice(&[batch, 10], &y).unwrap();
    let value = NdArray::<f32>::rand_uniform(&[batch, 1], -1.0, 1.0, 3).unwrap();
    let data = MultiDataSet::new(
        vec![pixels.dup().unwrap(), meta.dup().unwrap()],
        vec![class, value],
    )
    .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    for updater in [Updater::sgd(0.1), Updater::adam(1e-3)] {
        let mut g = graph(updater);
        pool.install(|| {
            let user =
                get_workspace_for_current_thread(&WorkspaceConfig::default(), "USER").unwrap();
            let inputs = [pixels.view(), meta.view()];
            let mut outs = Vec::with_capacity(2);
            // Warm-up: the pool workspaces learn OVER_TIME, as DL4J's, initializing after
            // as many cycles as the graph has vertices (a few calls here, each opening a pool
            // workspace several times); until then their allocations spill to the heap.
            for _ in 0..12 {
                g.fit(&data).unwrap();
                let _s = user.notify_scope_entered().unwrap();
                g.output_in(&inputs, false, &user, &mut outs).unwrap();
                outs.clear();
            }
            let before = ALLOC.allocations();
            g.fit(&data).unwrap();
            assert_eq!(
                ALLOC.allocations() - before,
                0,
                "{updater:?}: heap allocations in a graph fit iteration"
            );
            let _s = user.notify_scope_entered().unwrap();
            let before = ALLOC.allocations();
            g.output_in(&inputs, false, &user, &mut outs).unwrap();
            assert_eq!(
                ALLOC.allocations() - before,
                0,
                "heap allocations in a graph output_in"
            );
            assert_eq!(outs.len(), 2);
            assert_eq!(outs[0].shape(), &[batch, 10]);
            assert_eq!(outs[1].shape(), &[batch, 1]);
            outs.clear();
        });
    }
}
