//! Crash-safe model files: a child process (this test binary run again with an environment
//! variable) saves two models alternately to one path in a loop and is killed with SIGKILL at
//! random moments, 200 times. After every kill the file must load and be exactly one of the
//! two models, and at most one temporary file may be left in the directory (a write cut short
//! leaves its temporary file; the next writer removes those of dead processes).
//!
//! Then: what the reader checks before it uses anything (configuration, tensor dtypes, shapes,
//! parameter count, truncation), each corrupted in turn.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dl4rs_nn::*;

const CHILD_ENV: &str = "DL4RS_CRASH_SAFE_CHILD";
const KILLS: usize = 200;

/// Two models of one configuration with different parameters (seeds), big enough (≈260 KB
/// files) that a kill often lands inside a write.
fn model(seed: u64) -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(seed)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::dense(200).n_in(300).activation(Activation::Relu).build())
        .layer(LayerConf::batch_norm())
        .layer(
            LayerConf::output(LossFunction::Mcxent, 10)
                .activation(Activation::Softmax)
                .build(),
        )
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

fn params(m: &dyn Model<f32>) -> Vec<f32> {
    m.params().to_vec().unwrap()
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dl4rs-crash-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The child: saves model 1 and model 2 alternately to the path in `CHILD_ENV` until killed.
#[test]
fn child_saves_in_a_loop() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let (a, b) = (model(1), model(2));
    // Start with the model that is not on disk, so the first save already changes the file.
    let mut next_is_a = match ModelSerializer::restore::<f32>(&path, false) {
        Ok(m) => params(m.into_model().as_ref()) != params(&a),
        Err(_) => true,
    };
    println!("ready");
    loop {
        let m = if next_is_a { &a } else { &b };
        ModelSerializer::write_model(m, &path, true).unwrap();
        next_is_a = !next_is_a;
    }
}

#[test]
fn sigkill_during_saves_leaves_a_complete_model() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = scratch("kill");
    let path = dir.join("model.safetensors");
    let (a, b) = (params(&model(1)), params(&model(2)));
    assert_ne!(a, b);
    ModelSerializer::write_model(&model(1), &path, true).unwrap();
    let start = Instant::now();
    // A small deterministic generator for the kill delays (0..8 ms after the child is ready).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut saw_a, mut saw_b, mut torn_writes, mut max_temps) = (0, 0, 0, 0);
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_saves_in_a_loop", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_micros(state % 8_000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "kill {kill}: the child was not killed");
        let temps = temp_files(&dir);
        max_temps = max_temps.max(temps.len());
        torn_writes += usize::from(!temps.is_empty());
        assert!(
            temps.len() <= 1,
            "kill {kill}: temporary files piled up: {temps:?}"
        );
        let restored = ModelSerializer::restore::<f32>(&path, true)
            .unwrap_or_else(|e| panic!("kill {kill}: the file does not load: {e}"));
        let p = params(restored.into_model().as_ref());
        if p == a {
            saw_a += 1;
        } else if p == b {
            saw_b += 1;
        } else {
            panic!("kill {kill}: the file holds neither the previous nor the new model");
        }
    }
    eprintln!(
        "{KILLS} kills in {:.1} s: model 1 on disk {saw_a} times, model 2 {saw_b} times; \
         {torn_writes} kills left a temporary file (at most {max_temps} at once)",
        start.elapsed().as_secs_f64()
    );
    assert!(saw_a > 0 && saw_b > 0, "the child never completed a save");
    assert!(start.elapsed() < Duration::from_secs(60));
    // The next save cleans up after the killed writer.
    ModelSerializer::write_model(&model(1), &path, true).unwrap();
    assert_eq!(temp_files(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
