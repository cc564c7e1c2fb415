//! An LSTM allocates nothing in steady state on variable-length batches: once the longest
//! length has been seen, a training iteration (lengths cycling 10/50/100/25, masks, two LSTM
//! layers and a per-step output layer) and an `output_in` call (into the caller's workspace)
//! make 0 heap allocations on a 2-thread pool, the per-time-step loop workspace included. One
//! test in this binary, so the process-wide count sees only it.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::DataSet;
use dl4rs_memory::{
    CountingAllocator, SpillPolicy, WorkspaceConfig, get_workspace_for_current_thread,
};
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn batches() -> Vec<DataSet<f32>> {
    [10usize, 50, 100, 25]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let b = 32;
            let x = NdArray::<f32>::rand_uniform(&[b, 8, t], -1.0, 1.0, i as u64).unwrap();
            let mut y = vec![0f32; b * 4 * t];
            let mut m = vec![0f32; b * t];
            for r in 0..b {
                let len = t - (r * 7) % t.min(10);
                for s in 0..len {
                    m[r * t + s] = 1.0;
                    y[(r * 4 + (r + s) % 4) * t + s] = 1.0;
                }
            }
            let m = NdArray::from_slice(&[b, t], &m).unwrap();
            DataSet::new(x, NdArray::from_slice(&[b, 4, t], &y).unwrap())
                .unwrap()
                .with_masks(Some(m.dup().unwrap()), Some(m))
                .unwrap()
        })
        .collect()
}

#[test]
fn steady_state_lstm_training_and_inference_allocate_nothing() {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(Updater::adam(1e-3))
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
    let data = batches();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    pool.install(|| {
        // Outputs grow with the length: the caller's workspace grows with them.
        let config = WorkspaceConfig {
            policy_spill: SpillPolicy::Reallocate,
            ..WorkspaceConfig::default()
        };
        let user = get_workspace_for_current_thread(&config, "USER").unwrap();
        let infer = |net: &mut MultiLayerNetwork<f32>, d: &DataSet<f32>| {
            let _s = user.notify_scope_entered().unwrap();
            let mask = d.features_mask.as_ref().map(AsView::view);
            let out = net
                .output_masked_in(&d.features, mask.as_ref(), false, &user)
                .unwrap();
            let s = out.shape();
            [s[0], s[1], s[2]]
        };
        for _ in 0..4 {
            for d in &data {
                net.fit(d).unwrap();
                infer(&mut net, d);
            }
        }
        for d in &data {
            let before = ALLOC.allocations();
            net.fit(d).unwrap();
            let fit = ALLOC.allocations() - before;
            let t = d.features.shape()[2];
            assert_eq!(
                fit, 0,
                "heap allocations in an LSTM fit iteration (length {t})"
            );
            let before = ALLOC.allocations();
            let shape = infer(&mut net, d);
            assert_eq!(
                ALLOC.allocations() - before,
                0,
                "heap allocations in LSTM output_in (length {t})"
            );
            assert_eq!(shape, [32, 4, t]);
        }
    });
}
