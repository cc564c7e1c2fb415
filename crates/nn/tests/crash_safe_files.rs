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
        .layer(
            LayerConf::dense(200)
                .n_in(300)
                .activation(Activation::Relu)
                .build(),
        )
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
            .args([
                "--exact",
                "child_saves_in_a_loop",
                "--nocapture",
                "--test-threads=1",
            ])
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

// ---- What the reader checks before anything is used ----

type Tensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// The tensors and metadata of a model file.
fn open(bytes: &[u8]) -> (Vec<Tensor>, std::collections::HashMap<String, String>) {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut tensors: Vec<Tensor> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    (tensors, meta.metadata().clone().unwrap())
}

/// A model file from tensors and metadata.
fn seal(tensors: &[Tensor], meta: std::collections::HashMap<String, String>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, data)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn small_model() -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::dense(3).n_in(4).build())
        .layer(LayerConf::batch_norm())
        .layer(LayerConf::output(LossFunction::Mse, 2).build())
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

/// Restores `bytes`; expects an error whose message contains every one of `words`.
fn refused(what: &str, bytes: &[u8], words: &[&str]) {
    match ModelSerializer::restore_from_bytes::<f32>(bytes, "bad.safetensors", true) {
        Ok(_) => panic!("{what}: the corrupt file was accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("bad.safetensors"), "{what}: {msg}");
            for w in words {
                assert!(msg.contains(w), "{what}: {msg:?} lacks {w:?}");
            }
        }
    }
}

#[test]
fn good_file_round_trips() {
    let net = small_model();
    let bytes = ModelSerializer::to_bytes(&net, true).unwrap();
    let (tensors, meta) = open(&bytes);
    let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    assert!(
        names.contains(&"0_W") && names.contains(&"updater_state"),
        "{names:?}"
    );
    let back = ModelSerializer::restore_from_bytes::<f32>(&seal(&tensors, meta), "ok", true);
    assert_eq!(params(back.unwrap().into_model().as_ref()), params(&net));
}

#[test]
fn truncated_files_are_errors() {
    let bytes = ModelSerializer::to_bytes(&small_model(), true).unwrap();
    for len in [
        0,
        4,
        8,
        9,
        64,
        bytes.len() / 2,
        bytes.len() - 4,
        bytes.len() - 1,
    ] {
        refused(&format!("truncated to {len}"), &bytes[..len], &[]);
    }
    refused("truncated", &bytes[..bytes.len() - 1], &["truncated"]);
}

#[test]
fn configuration_is_checked() {
    let bytes = ModelSerializer::to_bytes(&small_model(), true).unwrap();
    let (tensors, meta) = open(&bytes);
    let with = |k: &str, v: Option<&str>| {
        let mut m = meta.clone();
        match v {
            Some(v) => m.insert(k.into(), v.into()),
            None => m.remove(k),
        };
        seal(&tensors, m)
    };
    refused(
        "no configuration",
        &with("configuration", None),
        &["no configuration"],
    );
    refused(
        "bad JSON",
        &with("configuration", Some("{\"layers\":")),
        &["invalid configuration"],
    );
    refused(
        "format",
        &with("format", Some("keras")),
        &["not a dl4rs model file"],
    );
    refused("dtype", &with("dtype", Some("f64")), &["f64"]);
    let conf = &meta["configuration"];
    // A configuration one output wider than the tensors: the shapes no longer match.
    let wider = conf.replacen("\"n_out\": 2", "\"n_out\": 5", 1);
    assert_ne!(&wider, conf);
    refused(
        "wider configuration",
        &with("configuration", Some(&wider)),
        &["shape"],
    );
    // Restored as the wrong element type.
    assert!(ModelSerializer::restore_from_bytes::<f64>(&bytes, "f32 file", false).is_err());
}

#[test]
fn tensors_are_checked() {
    let bytes = ModelSerializer::to_bytes(&small_model(), true).unwrap();
    let (tensors, meta) = open(&bytes);
    let edit = |f: &dyn Fn(&mut Vec<Tensor>)| {
        let mut t = tensors.clone();
        f(&mut t);
        seal(&t, meta.clone())
    };
    let find = |t: &mut Vec<Tensor>, name: &str| t.iter().position(|x| x.0 == name).unwrap();
    refused(
        "missing tensor",
        &edit(&|t| {
            let i = find(t, "0_b");
            t.remove(i);
        }),
        &["missing tensor", "0_b"],
    );
    refused(
        "wrong dtype",
        &edit(&|t| {
            let i = find(t, "0_W");
            let data = t[i].3.clone();
            t[i].1 = safetensors::Dtype::F64;
            t[i].2 = vec![data.len() / 8];
            t[i].3 = data[..data.len() / 8 * 8].to_vec();
        }),
        &["0_W", "dtype"],
    );
    refused(
        "transposed shape",
        &edit(&|t| {
            let i = find(t, "0_W");
            t[i].2.reverse();
        }),
        &["0_W", "shape"],
    );
    refused(
        "flattened shape",
        &edit(&|t| {
            let i = find(t, "0_W");
            let n = t[i].2.iter().product();
            t[i].2 = vec![n];
        }),
        &["0_W", "shape"],
    );
    refused(
        "one parameter too few",
        &edit(&|t| {
            let i = find(t, "2_b");
            t[i].2 = vec![1, 1];
            t[i].3.truncate(4);
        }),
        &["2_b", "shape"],
    );
    refused(
        "updater state too short",
        &edit(&|t| {
            let i = find(t, "updater_state");
            let n = t[i].2[0] - 1;
            t[i].2 = vec![n];
            let len = t[i].3.len() - 4;
            t[i].3.truncate(len);
        }),
        &["updater"],
    );
    let state = tensors
        .iter()
        .find(|t| t.0.contains('.'))
        .map(|t| t.0.clone())
        .expect("batch norm state");
    refused(
        "layer state too long",
        &edit(&|t| {
            let i = find(t, &state);
            let n = t[i].2[0] + 1;
            t[i].2 = vec![n];
            t[i].3.extend_from_slice(&[0; 4]);
        }),
        &[&state],
    );
    refused(
        "unknown layer state",
        &edit(&|t| {
            t.push((
                "7.running_mean".into(),
                safetensors::Dtype::F32,
                vec![1],
                vec![0; 4],
            ));
        }),
        &["7.running_mean"],
    );
}

#[test]
fn first_format_parameter_count_is_checked() {
    let net = small_model();
    let bytes = ModelSerializer::to_bytes(&net, false).unwrap();
    let (_, meta) = open(&bytes);
    let flat = params(&net);
    let one = |n: usize| {
        let data: Vec<u8> = flat[..n].iter().flat_map(|v| v.to_le_bytes()).collect();
        seal(
            &[("params".into(), safetensors::Dtype::F32, vec![n], data)],
            meta.clone(),
        )
    };
    let back = ModelSerializer::restore_from_bytes::<f32>(&one(flat.len()), "old", false).unwrap();
    assert_eq!(params(back.into_model().as_ref()), flat);
    refused("first format, short", &one(flat.len() - 1), &["parameters"]);
}

#[test]
fn configuration_claiming_huge_sizes_is_an_error_not_an_allocation() {
    // A small file whose configuration claims 10^12 parameters (4 TB): refused against the
    // file's size before the network is built, and sizes that overflow are errors.
    let conf = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::output(LossFunction::Mse, 3).n_in(4).build())
        .build()
        .unwrap();
    let bytes = ModelSerializer::to_bytes(&MultiLayerNetwork::<f32>::new(conf).unwrap(), false);
    let (tensors, meta) = open(&bytes.unwrap());
    let conf = meta["configuration"].clone();
    for (n_in, n_out) in [
        ("1000000", "1000000"),
        ("18446744073709551615", "18446744073709551615"),
        ("4", "18446744073709551615"),
    ] {
        let huge = conf
            .replacen("\"n_in\": 4", &format!("\"n_in\": {n_in}"), 1)
            .replacen("\"n_out\": 3", &format!("\"n_out\": {n_out}"), 1);
        assert_ne!(huge, conf);
        let mut m = meta.clone();
        m.insert("configuration".into(), huge);
        // 10^12 fits usize: refused against the file's size. usize::MAX overflows: refused
        // by the configuration check.
        let word = if n_out.len() > 10 {
            "overflow"
        } else {
            "parameters"
        };
        refused(
            &format!("n_in {n_in}, n_out {n_out}"),
            &seal(&tensors, m),
            &[word],
        );
    }
}
