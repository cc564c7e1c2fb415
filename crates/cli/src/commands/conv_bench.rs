//! `dl4rs bench conv`: workload W4 of `shared/reference/workloads.md` — LeNet-5 on 28x28x1,
//! batch 64, SGD 0.01, the spec's synthetic data and initial weights, so the loss of the 60th
//! iteration cross-checks against PyTorch's 2.42 — trained and run for inference at batch 1 and
//! 64, in child processes for 1 and 2 threads (medians of several), with heap allocations per
//! iteration and peak memory; then the convolutions' forward and backward GFLOP/s against the
//! gemm's on the same shapes.

use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::random::unit;
use dl4rs::array::{AsView, NdArray, ops};
use dl4rs::memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace, human_bytes};
use dl4rs::nn::{
    Activation, InputType, LayerConf, LossFunction, MultiLayerNetwork, NeuralNetConfiguration,
    PoolingType, Updater,
};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::process::peak_rss_bytes;
use super::workloads::{Data, stats, w1_data};

/// PyTorch 2.15's loss of the 60th W4 iteration (2 threads; 2.4204 with 1).
const PEER_LOSS: f64 = 2.4219;
const BATCH: usize = 64;

/// What one child process measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Part {
    /// Training iterations and inference calls.
    Lenet,
    /// Convolution forward vs the gemm of the same shapes.
    Gflops,
}

/// Options of `dl4rs bench conv`.
#[derive(Args, Debug, Clone)]
pub struct ConvBench {
    /// Timed training iterations (after 10 warm-up ones; the spec: 50).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Processes per thread count.
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    #[arg(long, hide = true)]
    part: Option<Part>,
    #[arg(long, hide = true)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LenetResult {
    threads: usize,
    train_ms: f64,
    infer1_ms: f64,
    infer64_ms: f64,
    train_allocations: f64,
    infer_allocations: f64,
    peak_rss: usize,
    loss_60: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GflopsResult {
    threads: usize,
    /// (layer, conv forward GFLOP/s, gemm GFLOP/s on the same per-image products).
    layers: Vec<(String, f64, f64)>,
    /// (layer, conv backward (weight gradient) GFLOP/s, gemm GFLOP/s of `dz_j · cols_jᵀ`).
    backward: Vec<(String, f64, f64)>,
}

/// LeNet-5 of W4 with the spec's weights.
fn lenet() -> Result<MultiLayerNetwork<f32>, CliError> {
    let conf = NeuralNetConfiguration::builder()
        .seed(0)
        .updater(Updater::sgd(0.01))
        .list()
        .layer(LayerConf::convolution(20, [5, 5]))
        .layer(LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]))
        .layer(LayerConf::convolution(50, [5, 5]))
        .layer(LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]))
        .layer(LayerConf::dense(500).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .set_input_type(InputType::convolutional_flat(28, 28, 1))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    let sym = |seed: u64, n: usize, a: f32| -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * unit(seed, i as u64) - 1.0) * a)
            .collect()
    };
    let mut p = Vec::with_capacity(net.num_params());
    p.extend(sym(501, 20 * 25, (6.0f32 / 25.0).sqrt()));
    p.extend(std::iter::repeat_n(0.0, 20));
    p.extend(sym(502, 50 * 500, (6.0f32 / 500.0).sqrt()));
    p.extend(std::iter::repeat_n(0.0, 50));
    p.extend(sym(503, 800 * 500, (6.0f32 / 800.0).sqrt()));
    p.extend(std::iter::repeat_n(0.0, 500));
    p.extend(sym(504, 500 * 10, (6.0f32 / 510.0).sqrt()));
    p.extend(std::iter::repeat_n(0.0, 10));
    net.set_params(&NdArray::from_slice_detached(&[p.len()], &p)?)?;
    Ok(net)
}

fn lenet_once(
    iterations: usize,
    threads: usize,
    alloc: &CountingAllocator,
) -> Result<LenetResult, CliError> {
    let (x, y) = w1_data(Data::Synthetic)?;
    let mut net = lenet()?;
    let (mut times, mut allocations, mut loss_60) = (Vec::with_capacity(iterations), 0, f64::NAN);
    for k in 0..10 + iterations {
        let start = (k % 937) * BATCH;
        let bx = x.view().slice_axis(0, start, start + BATCH, 1)?;
        let by = y.view().slice_axis(0, start, start + BATCH, 1)?;
        let before = alloc.allocations();
        let t = Instant::now();
        net.fit_arrays(&bx, &by)?;
        let elapsed = t.elapsed().as_secs_f64();
        if k >= 10 {
            times.push(elapsed);
            allocations += alloc.allocations() - before;
        }
        if k == 59 {
            loss_60 = net.last_score();
        }
    }
    let (train_ms, _) = stats(&mut times);
    // Inference into a caller's workspace (allocation-free), batch 1 and 64: one cycle per
    // call, a workspace per batch size (each learns its size from its first cycle).
    let config = WorkspaceConfig::default();
    let mut infer = |rows: usize| -> Result<(f64, u64), CliError> {
        let bx = x.view().slice_axis(0, 0, rows, 1)?;
        let id = format!("BENCH_OUT_{rows}");
        let (mut t1, mut count) = (Vec::with_capacity(60), 0);
        for k in 0..60 {
            let scope = get_and_activate_workspace(&config, &id)?;
            let ws = scope
                .workspace()
                .ok_or_else(|| CliError::Usage("workspace missing".into()))?;
            let before = alloc.allocations();
            let t = Instant::now();
            net.output_in(&bx, false, ws)?;
            let elapsed = t.elapsed().as_secs_f64();
            if k >= 10 {
                t1.push(elapsed);
                count += alloc.allocations() - before;
            }
        }
        Ok((stats(&mut t1).0, count))
    };
    let (infer1_ms, a1) = infer(1)?;
    let (infer64_ms, a64) = infer(64)?;
    Ok(LenetResult {
        threads,
        train_ms,
        infer1_ms,
        infer64_ms,
        train_allocations: allocations as f64 / iterations.max(1) as f64,
        infer_allocations: (a1 + a64) as f64 / 100.0,
        peak_rss: peak_rss_bytes(),
        loss_60,
    })
}

/// Conv forward and backward GFLOP/s of each LeNet convolution (a one-layer network at batch
/// 64) against the gemm of its per-image products. Backward: the network is the convolution
/// and a 1-unit MSE output layer; a training step minus a forward pass (the output layer's share
/// is under 1 % of the flops) is the convolution's backward, which for a first layer is the
/// weight and bias gradient (`dW += dz · colsᵀ`, no input gradient, as conv1 of LeNet).
fn gflops_once(threads: usize) -> Result<GflopsResult, CliError> {
    let mut layers = Vec::new();
    let mut backward = Vec::new();
    for (name, c, hw, oc) in [
        ("conv1 (1x28x28 -> 20, 5x5)", 1, 28, 20),
        ("conv2 (20x12x12 -> 50, 5x5)", 20, 12, 50),
    ] {
        let conf = NeuralNetConfiguration::builder()
            .updater(Updater::sgd(0.0))
            .list()
            .layer(LayerConf::convolution(oc, [5, 5]))
            .layer(LayerConf::output(LossFunction::Mse, 1).activation(Activation::Identity))
            .set_input_type(InputType::convolutional(hw, hw, c))
            .build()?;
        let mut net = MultiLayerNetwork::<f32>::new(conf)?;
        let x = NdArray::<f32>::rand_uniform(&[BATCH, c, hw, hw], 0.0, 1.0, 1)?;
        let y = NdArray::<f32>::rand_uniform(&[BATCH, 1], 0.0, 1.0, 4)?;
        let (ckk, ohw) = (c * 25, (hw - 4) * (hw - 4));
        let flops = 2.0 * (oc * ckk * ohw * BATCH) as f64;
        let ws = get_and_activate_workspace(&WorkspaceConfig::default(), "BENCH_CONV")?;
        let w = ws
            .workspace()
            .ok_or_else(|| CliError::Usage("workspace missing".into()))?
            .clone();
        drop(ws);
        let (mut conv, mut step) = (Vec::new(), Vec::new());
        for k in 0..40 {
            {
                let _s = w.notify_scope_entered()?;
                let t = Instant::now();
                net.output_in(&x, false, &w)?;
                if k >= 10 {
                    conv.push(t.elapsed().as_secs_f64());
                }
            }
            let t = Instant::now();
            net.fit_arrays(&x, &y)?;
            if k >= 10 {
                step.push(t.elapsed().as_secs_f64());
            }
        }
        let a = NdArray::<f32>::rand_uniform(&[oc, ckk], -1.0, 1.0, 2)?;
        let b = NdArray::<f32>::rand_uniform(&[ckk, ohw], -1.0, 1.0, 3)?;
        let dz = NdArray::<f32>::rand_uniform(&[oc, ohw], -1.0, 1.0, 5)?;
        let mut out = NdArray::<f32>::zeros(&[oc, ohw])?;
        let mut dw = NdArray::<f32>::zeros(&[oc, ckk])?;
        let (mut gemm, mut gemm_bw) = (Vec::new(), Vec::new());
        for k in 0..40 {
            let _s = w.notify_scope_entered()?;
            let t = Instant::now();
            for _ in 0..BATCH {
                ops::gemm_into(1.0, &a, &b, 0.0, &mut out)?;
            }
            if k >= 10 {
                gemm.push(t.elapsed().as_secs_f64());
            }
            let t = Instant::now();
            for _ in 0..BATCH {
                ops::gemm_into(1.0, &dz, &b.view().t(), 1.0, &mut dw)?;
            }
            if k >= 10 {
                gemm_bw.push(t.elapsed().as_secs_f64());
            }
        }
        let (c_ms, _) = stats(&mut conv);
        let (s_ms, _) = stats(&mut step);
        let (g_ms, _) = stats(&mut gemm);
        let (gb_ms, _) = stats(&mut gemm_bw);
        let bw_ms = (s_ms - c_ms).max(1e-9);
        layers.push((name.to_string(), flops / (c_ms * 1e6), flops / (g_ms * 1e6)));
        backward.push((
            name.to_string(),
            flops / (bw_ms * 1e6),
            flops / (gb_ms * 1e6),
        ));
    }
    Ok(GflopsResult {
        threads,
        layers,
        backward,
    })
}

fn child<R: for<'de> Deserialize<'de>>(
    part: Part,
    threads: usize,
    args: &ConvBench,
) -> Result<R, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let name = format!("{part:?}").to_lowercase();
    let out = Command::new(exe)
        .args([
            "bench",
            "conv",
            "--part",
            &name,
            "--threads",
            &threads.to_string(),
        ])
        .args(["--iterations", &args.iterations.to_string()])
        .output()
        .map_err(|e| CliError::Usage(format!("can't run the benchmark process: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "benchmark process ({name}, {threads} threads) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .map_err(|e| CliError::Usage(format!("unreadable benchmark result: {e}")))
}

fn median(mut v: Vec<f64>) -> f64 {
    stats(&mut v).0 / 1e3
}

/// Runs `dl4rs bench conv`.
pub fn run(args: ConvBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if let (Some(part), Some(threads)) = (args.part, args.threads) {
        let pool = super::thread_pool(Some(threads))?;
        let json = match part {
            Part::Lenet => serde_json::to_string(
                &pool.install(|| lenet_once(args.iterations, threads, alloc))?,
            ),
            Part::Gflops => serde_json::to_string(&pool.install(|| gflops_once(threads))?),
        }
        .map_err(|e| CliError::Usage(e.to_string()))?;
        println!("{json}");
        return Ok(());
    }
    println!(
        "dl4rs bench conv: W4 LeNet-5 (28x28x1, batch 64, SGD 0.01, spec data and weights), 10 \
         warm-up + {} timed iterations, {} processes per thread count (median of their medians)",
        args.iterations, args.processes
    );
    println!(
        "{:<8} {:>12} {:>14} {:>15} {:>12} {:>12} {:>10} {:>14}",
        "threads",
        "train ms",
        "infer b=1 ms",
        "infer b=64 ms",
        "train alloc",
        "infer alloc",
        "peak RSS",
        "loss it.60"
    );
    for threads in [1, 2] {
        let runs: Vec<LenetResult> = (0..args.processes.max(1))
            .map(|_| child(Part::Lenet, threads, &args))
            .collect::<Result<_, _>>()?;
        let pick = |f: fn(&LenetResult) -> f64| median(runs.iter().map(f).collect());
        let loss = runs[0].loss_60;
        println!(
            "{:<8} {:>12.3} {:>14.3} {:>15.3} {:>12.2} {:>12.2} {:>10} {:>14}",
            threads,
            pick(|r| r.train_ms),
            pick(|r| r.infer1_ms),
            pick(|r| r.infer64_ms),
            runs.iter().map(|r| r.train_allocations).fold(0.0, f64::max),
            runs.iter().map(|r| r.infer_allocations).fold(0.0, f64::max),
            human_bytes(runs.iter().map(|r| r.peak_rss).max().unwrap_or(0)),
            format!(
                "{loss:.4} {}",
                if (loss - PEER_LOSS).abs() <= 0.01 {
                    "(match)"
                } else {
                    "(MISMATCH)"
                }
            )
        );
    }
    println!(
        "convolution forward / backward (weight gradient) vs the gemm of its per-image products \
         (GFLOP/s, batch 64):"
    );
    for threads in [1, 2] {
        let g: GflopsResult = child(Part::Gflops, threads, &args)?;
        for (dir, rows) in [("forward ", g.layers), ("backward", g.backward)] {
            for (name, conv, gemm) in rows {
                println!(
                    "  {threads} thread(s) {dir} {name:<30} conv {conv:>7.1}   gemm {gemm:>7.1}   \
                     ({:.0} %)",
                    100.0 * conv / gemm
                );
            }
        }
    }
    Ok(())
}
