//! `dl4rs bench compare`: dl4rs beside PyTorch on the workloads of
//! `shared/reference/workloads.md` (W1-W4 and the "mm" products of one W1 step), measured in
//! one run. Timings on a shared 2-vCPU VM swing by 30 % from one minute to the next, so the
//! two are never compared across runs: each round runs every workload once per thread count
//! in a dl4rs process and then in a PyTorch process (`benches/peers/pytorch_workloads.py`,
//! installed into a venv by `benches/peers/pytorch.sh`), and the table gives the medians over
//! the rounds with their spread. Without the peer it prints dl4rs alone and how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::{AsView, NdArray, ops};
use dl4rs::memory::{WorkspaceConfig, get_and_activate_workspace};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CliError;
use super::workloads::stats;

/// A workload of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Workload {
    /// MLP 784-256-128-10 training (batch 128).
    W1,
    /// The same MLP, inference at batch 1 and 256.
    W2,
    /// LSTM on variable lengths, training (mean per iteration).
    W3,
    /// LeNet-5 training and inference at batch 1 and 64.
    W4,
    /// The 8 matrix products of one W1 step (128.9 MFLOP), nothing else.
    Mm,
}

/// Options of `dl4rs bench compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareBench {
    /// Rounds; each runs every workload once per thread count in dl4rs, then in the peer.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', default_values = ["w1", "w2", "w3", "w4", "mm"])]
    pub workloads: Vec<Workload>,
    /// Thread counts (each process gets OMP/MKL/RAYON/MATMUL_NUM_THREADS = N).
    #[arg(long, value_delimiter = ',', default_values = ["1", "2"])]
    pub threads: Vec<usize>,
    /// Python with torch [default: $DL4RS_PEER_PYTHON, else target/peers/venv/bin/python,
    /// which `bash benches/peers/pytorch.sh` makes].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The peer script [default: benches/peers/pytorch_workloads.py of this repository].
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Print one JSON line per measurement instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Run the mm products in this process with this many threads (used internally).
    #[arg(long, hide = true)]
    mm_threads: Option<usize>,
}

/// One measurement: a workload by one implementation at one thread count in one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sample {
    peer: String,
    workload: String,
    threads: usize,
    ms: f64,
    loss: Option<f64>,
}

const DL4RS: &str = "dl4rs";
const MM_FLOPS: f64 = 128_909_312.0;

/// Runs `dl4rs bench compare`.
pub fn run(args: CompareBench) -> Result<(), CliError> {
    if let Some(threads) = args.mm_threads {
        let ms = super::thread_pool(Some(threads))?.install(mm_once)?;
        let s = sample(DL4RS, "mm", threads, ms, None);
        println!("{}", serde_json::to_string(&s).map_err(usage)?);
        return Ok(());
    }
    if args.rounds == 0 || args.threads.contains(&0) || args.workloads.is_empty() {
        return Err(CliError::Usage(
            "--rounds and every --threads value must be at least 1, and --workloads not empty"
                .into(),
        ));
    }
    let peer = Peer::find(&args)?;
    if peer.is_none() && !args.json {
        println!(
            "PyTorch: no peer Python found (--python, $DL4RS_PEER_PYTHON or \
             target/peers/venv/bin/python). `bash benches/peers/pytorch.sh` installs torch into \
             target/peers/venv from PyPI once; then rerun this command. dl4rs alone:"
        );
    }
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        for &threads in &args.threads {
            for &w in &args.workloads {
                let mut got = dl4rs_samples(w, threads)?;
                if let Some(p) = &peer {
                    got.extend(p.run(w, threads)?);
                }
                if args.json {
                    for s in &got {
                        println!("{}", serde_json::to_string(s).map_err(usage)?);
                    }
                } else {
                    eprint!(
                        "\rround {}/{}: {w:?}, {threads} thread(s)   ",
                        round + 1,
                        args.rounds
                    );
                }
                samples.extend(got);
            }
        }
    }
    if !args.json {
        eprintln!();
        print_table(&args, &samples);
    }
    Ok(())
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn sample(peer: &str, workload: &str, threads: usize, ms: f64, loss: Option<f64>) -> Sample {
    Sample {
        peer: peer.into(),
        workload: workload.into(),
        threads,
        ms,
        loss,
    }
}

/// Runs a child process with the spec's thread variables and returns its stdout.
fn run_child(mut cmd: Command, threads: usize, what: &str) -> Result<String, CliError> {
    let n = threads.to_string();
    for var in [
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "RAYON_NUM_THREADS",
        "MATMUL_NUM_THREADS",
    ] {
        cmd.env(var, &n);
    }
    let out = cmd
        .output()
        .map_err(|e| CliError::Usage(format!("can't start {what}: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "{what} ({threads} threads) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_lines(text: &str, what: &str) -> Result<Vec<Value>, CliError> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| CliError::Usage(format!("unreadable result from {what}: {e}: {l}")))
        })
        .collect()
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The dl4rs measurements of one workload, from the child process each `dl4rs bench` uses.
fn dl4rs_samples(w: Workload, threads: usize) -> Result<Vec<Sample>, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let t = threads.to_string();
    let args: Vec<&str> = match w {
        Workload::W1 => vec!["train", "--mode", "enabled", "--threads", &t, "--json"],
        Workload::W2 => vec!["infer", "--mode", "enabled", "--threads", &t, "--json"],
        Workload::W3 => vec!["rnn", "--threads", &t, "--iterations", "100"],
        Workload::W4 => vec!["conv", "--part", "lenet", "--threads", &t],
        Workload::Mm => vec!["compare", "--mm-threads", &t],
    };
    let mut cmd = Command::new(exe);
    cmd.arg("bench").args(&args);
    let what = format!("the dl4rs {w:?} benchmark");
    let lines = json_lines(&run_child(cmd, threads, &what)?, &what)?;
    let missing = || CliError::Usage(format!("{what} printed no result"));
    let mut out = Vec::new();
    for v in &lines {
        match w {
            Workload::W1 | Workload::W2 => {
                let name = v
                    .get("workload")
                    .and_then(Value::as_str)
                    .ok_or_else(missing)?;
                let ms = num(v, "median_ms").ok_or_else(missing)?;
                out.push(sample(DL4RS, name, threads, ms, num(v, "loss_219")));
            }
            Workload::W3 => {
                let ms = num(v, "mean_ms").ok_or_else(missing)?;
                out.push(sample(DL4RS, "W3 train", threads, ms, num(v, "last_loss")));
            }
            Workload::W4 => {
                for (key, name, loss) in [
                    ("train_ms", "W4 train", num(v, "loss_60")),
                    ("infer1_ms", "W4 batch 1", None),
                    ("infer64_ms", "W4 batch 64", None),
                ] {
                    out.push(sample(
                        DL4RS,
                        name,
                        threads,
                        num(v, key).ok_or_else(missing)?,
                        loss,
                    ));
                }
            }
            Workload::Mm => out.push(serde_json::from_value(v.clone()).map_err(usage)?),
        }
    }
    if out.is_empty() {
        return Err(missing());
    }
    Ok(out)
}

/// The peer: a Python with torch and the workload script.
struct Peer {
    python: PathBuf,
    script: PathBuf,
}

impl Peer {
    fn find(args: &CompareBench) -> Result<Option<Peer>, CliError> {
        let python = match &args.python {
            Some(p) if !p.exists() => {
                return Err(CliError::Usage(format!(
                    "--python {}: no such file; `bash benches/peers/pytorch.sh` makes \
                     target/peers/venv/bin/python",
                    p.display()
                )));
            }
            Some(p) => Some(p.clone()),
            None => std::env::var_os("DL4RS_PEER_PYTHON")
                .map(PathBuf::from)
                .or_else(|| Some(PathBuf::from("target/peers/venv/bin/python")))
                .filter(|p| p.exists()),
        };
        let Some(python) = python else {
            return Ok(None);
        };
        let repo_script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/pytorch_workloads.py");
        let script = match &args.script {
            Some(s) => s.clone(),
            None if Path::new("benches/peers/pytorch_workloads.py").exists() => {
                PathBuf::from("benches/peers/pytorch_workloads.py")
            }
            None => repo_script,
        };
        if !script.exists() {
            return Err(CliError::Usage(format!(
                "the peer script {} does not exist: pass --script benches/peers/pytorch_workloads.py",
                script.display()
            )));
        }
        Ok(Some(Peer { python, script }))
    }

    fn run(&self, w: Workload, threads: usize) -> Result<Vec<Sample>, CliError> {
        let name = format!("{w:?}").to_lowercase();
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .args(["--threads", &threads.to_string(), "--workloads", &name]);
        let what = format!("the PyTorch {w:?} benchmark ({})", self.script.display());
        json_lines(&run_child(cmd, threads, &what)?, &what)?
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(usage))
            .collect()
    }
}

/// The 8 products of one W1 step (3 forward, 3 dW = xᵀ·dz, 2 dx = dz·Wᵀ) through
/// `ops::gemm_into` in a workspace cycle, as a network runs them: median ms of 200 steps
/// after 20 warm-up ones.
fn mm_once() -> Result<f64, CliError> {
    // (rows, cols, read transposed) of a and b.
    let shapes = [
        ((128, 784, false), (784, 256, false)),
        ((128, 256, false), (256, 128, false)),
        ((128, 128, false), (128, 10, false)),
        ((784, 128, true), (128, 256, false)),
        ((256, 128, true), (128, 128, false)),
        ((128, 128, true), (128, 10, false)),
        ((128, 10, false), (10, 128, true)),
        ((128, 128, false), (128, 256, true)),
    ];
    let operand = |(r, c, t): (usize, usize, bool), seed: u64| {
        let dims = if t { [c, r] } else { [r, c] };
        NdArray::<f32>::rand_uniform(&dims, -1.0, 1.0, seed)
    };
    let mut ops_ = Vec::new();
    for (i, (sa, sb)) in shapes.into_iter().enumerate() {
        let c = NdArray::<f32>::zeros_detached(&[sa.0, sb.1])?;
        ops_.push((
            operand(sa, 600 + i as u64)?,
            sa.2,
            operand(sb, 700 + i as u64)?,
            sb.2,
            c,
        ));
    }
    let config = WorkspaceConfig::default();
    let mut times = Vec::with_capacity(200);
    for k in 0..220 {
        // One cycle per step: the first one teaches the workspace the scratch it needs.
        let _cycle = get_and_activate_workspace(&config, "BENCH_MM")?;
        let t = Instant::now();
        for (a, at, b, bt, c) in ops_.iter_mut() {
            let (a, b) = (a.view(), b.view());
            let a = if *at { a.t() } else { a };
            let b = if *bt { b.t() } else { b };
            ops::gemm_into(1.0, &a, &b, 0.0, c)?;
        }
        if k >= 20 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(stats(&mut times).0)
}

/// Median, minimum and maximum.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 2], v[0], v[v.len() - 1]))
}

fn print_table(args: &CompareBench, samples: &[Sample]) {
    let peer_name = samples
        .iter()
        .find(|s| s.peer != DL4RS)
        .map(|s| s.peer.clone());
    println!(
        "dl4rs bench compare: the workloads of shared/reference/workloads.md, {} round(s), each \
         running dl4rs then {} per workload and thread count; ms per iteration, median of the \
         rounds (min - max); W3 is the mean over its iterations; mm also in GFLOP/s",
        args.rounds,
        peer_name.as_deref().unwrap_or("(no peer)")
    );
    let peer_col = peer_name.clone().unwrap_or_else(|| "peer".into());
    println!(
        "{:<13} {:>3}  {:>24}  {:>24}  {:>9}  {:>21}",
        "workload",
        "thr",
        "dl4rs ms",
        format!("{peer_col} ms"),
        "peer/ours",
        "loss dl4rs / peer"
    );
    let mut names: Vec<(String, usize)> = Vec::new();
    for s in samples {
        if !names.contains(&(s.workload.clone(), s.threads)) {
            names.push((s.workload.clone(), s.threads));
        }
    }
    names.sort_by_key(|(w, t)| (w.clone(), *t));
    for (w, t) in names {
        let pick = |peer: &dyn Fn(&str) -> bool| -> (Option<(f64, f64, f64)>, Option<f64>) {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.workload == w && s.threads == t && peer(&s.peer))
                .collect();
            (
                spread(mine.iter().map(|s| s.ms).collect()),
                mine.iter().rev().find_map(|s| s.loss),
            )
        };
        let (ours, our_loss) = pick(&|p| p == DL4RS);
        let (theirs, their_loss) = pick(&|p| p != DL4RS);
        let cell = |v: Option<(f64, f64, f64)>| match v {
            Some((m, lo, hi)) if w == "mm" => {
                format!("{m:.3} ({lo:.3}-{hi:.3}) {:.0} GF", MM_FLOPS / m / 1e6)
            }
            Some((m, lo, hi)) => format!("{m:.3} ({lo:.3}-{hi:.3})"),
            None => "-".into(),
        };
        let ratio = match (ours, theirs) {
            (Some((a, ..)), Some((b, ..))) => format!("{:.2}x", b / a),
            _ => "-".into(),
        };
        let loss = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.6}"));
        println!(
            "{:<13} {:>3}  {:>24}  {:>24}  {:>9}  {:>21}",
            w,
            t,
            cell(ours),
            cell(theirs),
            ratio,
            format!("{} / {}", loss(our_loss), loss(their_loss))
        );
    }
    println!(
        "peer/ours > 1: dl4rs is faster. Same data and initial weights, so equal losses say both \
         computed the same training (W4: PyTorch's convolution algorithms differ by ~0.01)."
    );
}
