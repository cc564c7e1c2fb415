//! The stats file: what the StatsListener writes reads back as the same records; a run killed
//! mid-line (a truncated last line) still reads; an unknown schema version is a clear error.

use std::sync::{Arc, Mutex};

use dl4rs_array::NdArray;
use dl4rs_data::{DataSet, InMemoryDataSetIterator};
use dl4rs_nn::stats::{ClassMetrics, EvalRecord, RocCurve, StatsFile};
use dl4rs_nn::*;

struct Capture(Arc<Mutex<Vec<IterationInfo>>>);

impl TrainingListener<f32> for Capture {
    fn iteration_done(
        &mut self,
        _net: &dyn Model<f32>,
        info: &IterationInfo,
    ) -> Result<(), NnError> {
        self.0.lock().unwrap().push(*info);
        Ok(())
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dl4rs-stats-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("run.stats.jsonl")
}

/// Trains 3 epochs of 5 batches with a StatsListener; returns the file and what it saw.
fn run(path: &std::path::Path) -> (Vec<IterationInfo>, EvalRecord, MultiLayerNetwork<f32>) {
    let conf = NeuralNetConfiguration::builder()
        .seed(7)
        .updater(Updater::sgd(0.1))
        .list()
        .layer(LayerConf::dense(8).n_in(4).activation(Activation::Tanh))
        .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
        .build()
        .unwrap();
    let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    let x = NdArray::<f32>::rand_uniform(&[40, 4], -1.0, 1.0, 3).unwrap();
    let mut y = vec![0f32; 40 * 3];
    for r in 0..40 {
        y[r * 3 + r % 3] = 1.0;
    }
    let y = NdArray::from_slice(&[40, 3], &y).unwrap();
    let mut it = InMemoryDataSetIterator::new(DataSet::new(x, y).unwrap(), 8).unwrap();
    let listener = StatsListener::<f32>::with_config(
        path,
        StatsConfig {
            flush_every: 4,
            param_stats_every: 1,
            ..StatsConfig::default()
        },
    )
    .unwrap();
    let handle = listener.handle();
    handle.set_run_info(vec![
        ("epochs".into(), "3".into()),
        ("seed".into(), "7".into()),
    ]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    net.add_listener(Box::new(listener));
    net.add_listener(Box::new(Capture(seen.clone())));
    let eval = EvalRecord {
        epoch: 2,
        iteration: 15,
        split: "test".into(),
        loss: Some(0.75),
        accuracy: Some(0.5),
        macro_f1: Some(0.25),
        classes: vec![ClassMetrics {
            name: "a".into(),
            precision: 0.5,
            recall: 1.0,
            f1: 2.0 / 3.0,
        }],
        confusion: vec![vec![1, 2], vec![3, 4]],
        roc: vec![RocCurve {
            name: "a".into(),
            auc: 0.5,
            points: vec![[0.0, 0.0], [1.0, 1.0]],
        }],
        metrics: vec![("mcc".into(), 0.1)],
    };
    for epoch in 0..3 {
        net.fit_iter(&mut it, 1).unwrap();
        handle.end_epoch().unwrap();
        if epoch == 2 {
            handle.record_evaluation(&eval).unwrap();
        }
    }
    handle.finish().unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, eval, net)
}

#[test]
fn stats_file_round_trips() {
    let path = temp("roundtrip");
    let (seen, eval, net) = run(&path);
    let stats = StatsFile::read(&path).unwrap();
    assert_eq!(stats.header.version, 1);
    assert_eq!(stats.header.num_params, net.num_params());
    assert_eq!(
        stats
            .header
            .params
            .iter()
            .map(|p| p.key.as_str())
            .collect::<Vec<_>>(),
        ["0_W", "0_b", "1_W", "1_b"]
    );
    assert_eq!(stats.header.run[0], ("epochs".to_string(), "3".to_string()));
    assert!(
        stats.header.summary.contains("Dense"),
        "{}",
        stats.header.summary
    );
    assert!(stats.finished && !stats.truncated);
    // The same records: every iteration, its score bit for bit.
    assert_eq!(stats.iterations.len(), seen.len());
    assert_eq!(seen.len(), 15);
    for (r, s) in stats.iterations.iter().zip(&seen) {
        assert_eq!(
            (r.iteration, r.epoch, r.score, r.batch),
            (s.iteration, s.epoch, s.score, s.batch_size)
        );
        assert_eq!(r.lr, 0.1);
        assert!(r.time_s >= 0.0 && r.examples_per_s > 0.0);
        let p = r.param_mean.as_ref().unwrap();
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|v| v.is_finite()));
        assert!(r.grad_mean.as_ref().unwrap()[0] > 0.0);
        // Updates from the second iteration on (the first has no "before").
        assert_eq!(r.update_mean.is_some(), r.iteration > 1);
        assert!(!r.ws.is_empty(), "workspace samples");
    }
    // SGD: |update| = lr * |gradient| (gradients as the updater left them: the update itself).
    let it = &stats.iterations[5];
    let (g, u) = (
        it.grad_mean.as_ref().unwrap(),
        it.update_mean.as_ref().unwrap(),
    );
    assert!(u[0] > 0.0 && g[0] > 0.0);
    // Every workspace sampled is described.
    for r in &stats.iterations {
        for w in &r.ws {
            assert!(stats.workspace(w.slot).is_some(), "slot {}", w.slot);
        }
    }
    assert!(
        stats
            .workspaces
            .iter()
            .any(|w| w.id.starts_with("WS_ALL_LAYERS_ACT"))
    );
    // The learning cycle of the all-layers workspace spills, then it is served from its block.
    // The view is process-wide: other tests' threads have workspaces too; this one's trained
    // on this thread.
    let me = std::thread::current().name().unwrap_or("main").to_string();
    let all = stats
        .workspaces
        .iter()
        .find(|w| w.id.starts_with("WS_ALL_LAYERS_ACT") && w.thread == me)
        .unwrap()
        .slot;
    let sample = |i: usize| {
        *stats.iterations[i]
            .ws
            .iter()
            .find(|w| w.slot == all)
            .unwrap()
    };
    assert!(sample(0).spilled > 0 && sample(0).block > 0);
    assert_eq!(sample(14).spilled, 0);
    assert_eq!(stats.epochs.len(), 3);
    let mean0 = seen[..5].iter().map(|s| s.score).sum::<f64>() / 5.0;
    assert!((stats.epochs[0].train_loss - mean0).abs() < 1e-12);
    assert_eq!(stats.epochs[2].iteration, 15);
    assert_eq!(stats.evaluations, vec![eval]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn truncated_last_line_is_tolerated() {
    let path = temp("truncated");
    run(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    // Cut the file in the middle of its last iteration line, as a kill during a write would.
    let last_iter = text.rfind("{\"type\":\"iter\"").unwrap();
    let cut = &text[..last_iter + 30];
    let stats = StatsFile::parse(cut, "cut").unwrap();
    assert!(stats.truncated && !stats.finished);
    assert_eq!(stats.iterations.len(), 14);
    // A cut at a line end reads whole.
    let stats = StatsFile::parse(&text[..last_iter], "cut").unwrap();
    assert!(!stats.truncated);
    assert_eq!(stats.iterations.len(), 14);
    // A broken line that is not the last is an error naming the line.
    let broken = format!("{}{{oops\n{}", &text[..last_iter], &text[last_iter..]);
    let err = StatsFile::parse(&broken, "broken").unwrap_err().to_string();
    assert!(
        err.contains("broken: line") && err.contains("not a JSON stats record"),
        "{err}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unknown_version_is_a_clear_error() {
    let path = temp("version");
    run(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let newer = text.replacen("\"version\":1", "\"version\":99", 1);
    assert_ne!(newer, text);
    let err = StatsFile::parse(&newer, "run.stats.jsonl")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run.stats.jsonl")
            && err.contains("schema version 99 is not supported")
            && err.contains("reads version 1"),
        "{err}"
    );
    let err = StatsFile::parse("{\"a\":1}\n", "x.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a dl4rs stats file"), "{err}");
    let err = StatsFile::parse("", "empty").unwrap_err().to_string();
    assert!(err.contains("empty stats file"), "{err}");
    let _ = std::fs::remove_file(&path);
}
