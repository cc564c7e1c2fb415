//! Steady state allocates nothing with a StatsListener attached: 40 iterations after warm-up
//! (five flushes of the ring and parameter statistics every other iteration included) make 0
//! heap allocations. One test in this binary, so the process-wide count sees only it.

use dl4rs_array::NdArray;
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::stats::StatsFile;
use dl4rs_nn::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

#[test]
fn steady_state_training_with_stats_allocates_nothing() {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::dense(64).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()
        .unwrap();
    let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    let x = NdArray::<f32>::rand_uniform(&[64, 784], 0.0, 1.0, 42).unwrap();
    let mut y = vec![0f32; 64 * 10];
    for r in 0..64 {
        y[r * 10 + r % 10] = 1.0;
    }
    let y = NdArray::from_slice(&[64, 10], &y).unwrap();
    let dir = std::env::temp_dir().join(format!("dl4rs-stats-alloc-{}", std::process::id()));
    let path = dir.join("run.stats.jsonl");
    let listener = StatsListener::<f32>::with_config(
        &path,
        StatsConfig {
            flush_every: 8,
            param_stats_every: 2,
            ..StatsConfig::default()
        },
    )
    .unwrap();
    let handle = listener.handle();
    net.add_listener(Box::new(listener));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    pool.install(|| {
        for _ in 0..24 {
            net.fit_arrays(&x, &y).unwrap();
        }
        let before = ALLOC.allocations();
        for _ in 0..40 {
            net.fit_arrays(&x, &y).unwrap();
        }
        let during = ALLOC.allocations() - before;
        assert_eq!(
            during, 0,
            "heap allocations in 40 iterations with the StatsListener"
        );
    });
    handle.finish().unwrap();
    let stats = StatsFile::read(&path).unwrap();
    assert_eq!(stats.iterations.len(), 64);
    assert!(stats.finished && !stats.truncated);
    let _ = std::fs::remove_dir_all(&dir);
}
