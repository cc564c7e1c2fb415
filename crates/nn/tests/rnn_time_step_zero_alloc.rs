//! `rnn_time_step` allocates nothing in steady state: after the first calls, a call of one
//! step (`[batch, n]`) or of a chunk of steps, output into the caller's workspace, makes 0 heap
//! allocations on a 2-thread pool (the carried state is overwritten in place). One test in this
//! binary, so the process-wide count sees only it.

use dl4rs_array::NdArray;
use dl4rs_memory::{
    CountingAllocator, SpillPolicy, WorkspaceConfig, get_workspace_for_current_thread,
};
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

#[test]
fn steady_state_rnn_time_step_allocates_nothing() {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .list()
        .layer(LayerConf::lstm(32).build())
        .layer(LayerConf::lstm(16).build())
        .layer(
            LayerConf::rnn_output(LossFunction::Mcxent, 4)
                .activation(Activation::Softmax)
                .build(),
        )
        .set_input_type(InputType::recurrent(8))
        .build()
        .unwrap();
    let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    let step = NdArray::<f32>::rand_uniform(&[16, 8], -1.0, 1.0, 1).unwrap();
    let chunk = NdArray::<f32>::rand_uniform(&[16, 8, 5], -1.0, 1.0, 2).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    pool.install(|| {
        let config = WorkspaceConfig {
            policy_spill: SpillPolicy::Reallocate,
            ..WorkspaceConfig::default()
        };
        let user = get_workspace_for_current_thread(&config, "USER").unwrap();
        // Warm-up long enough that the product team's worker has run tasks too.
        for _ in 0..20 {
            let _s = user.notify_scope_entered().unwrap();
            net.rnn_time_step_in(&step, &user).unwrap();
            net.rnn_time_step_in(&chunk, &user).unwrap();
        }
        for _ in 0..3 {
            let _s = user.notify_scope_entered().unwrap();
            let before = ALLOC.allocations();
            let one = net.rnn_time_step_in(&step, &user).unwrap();
            let many = net.rnn_time_step_in(&chunk, &user).unwrap();
            assert_eq!(
                ALLOC.allocations() - before,
                0,
                "heap allocations in rnn_time_step (one step and five)"
            );
            assert_eq!((one.shape()[1], many.shape()[2]), (4, 5));
        }
    });
}
