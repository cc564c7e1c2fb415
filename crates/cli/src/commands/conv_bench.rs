//! `dl4rs bench conv`: workload W4 of `shared/reference/workloads.md` — LeNet-5 on 28x28x1,
//! batch 64, SGD 0.01, the spec's synthetic data and initial weights, so the loss of the 60th
//! iteration cross-checks against PyTorch's 2.42 — trained and run for inference at batch 1 and
//! 64, in child processes for 1 and 2 threads (medians of several), with heap allocations per
//! iteration and peak memory; then the convolutions' forward and backward GFLOP/s against the
//! gemm's on the same shapes.

use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::ops::{Conv2dGeometry, Reduction};
use dl4rs::array::random::unit;
use dl4rs::array::{AsView, NdArray, ops};
use dl4rs::memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace, human_bytes};
use dl4rs::nn::{
    Activation, InputType, LayerConf, LossFunction, MultiLayerNetwork, NeuralNetConfiguration,
    PoolingType, Updater, layers::weight_grad_chunk,
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
    /// (layer, part, convolution GFLOP/s, gemm GFLOP/s of the same products, the part's
    /// flops for the batch).
    rows: Vec<(String, String, f64, f64, f64)>,
    /// Heap allocations in all the timed cycles (0: neither side spilled out of its
    /// workspace, which would time the allocator instead of the arithmetic).
    allocations: u64,
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

/// Times the parts, counting the heap allocations of their timed cycles.
struct Cycles<'a> {
    alloc: &'a CountingAllocator,
    allocations: u64,
    /// The layer being timed: each layer's parts run in workspaces of their own, since a
    /// workspace that learned the first layer's cycle would spill every cycle of a larger
    /// second layer to the heap.
    layer: &'static str,
}

impl Cycles<'_> {
    /// The median seconds of `f` over 100 cycles of workspace `id`, after 10 warm-up cycles
    /// (the first teaches the workspace its size, so no timed cycle spills to the heap). Each
    /// cycle is a millisecond or two: many of them, so a neighbour's burst moves the median
    /// little.
    fn median(
        &mut self,
        id: &str,
        mut f: impl FnMut() -> Result<(), CliError>,
    ) -> Result<f64, CliError> {
        let config = WorkspaceConfig::default();
        let id = format!("{id}_{}", self.layer);
        let mut times = Vec::with_capacity(100);
        for k in 0..110 {
            let _cycle = get_and_activate_workspace(&config, &id)?;
            let before = self.alloc.allocations();
            let t = Instant::now();
            f()?;
            if k >= 10 {
                times.push(t.elapsed().as_secs_f64());
                self.allocations += self.alloc.allocations() - before;
            }
        }
        Ok(stats(&mut times).0 / 1e3)
    }
}

/// Each LeNet convolution at batch 64 — the operations `ConvolutionLayer` runs, without the
/// rest of a network — against the gemm of the same products on ready matrices:
/// * forward: `conv2d_forward` (the columns packed straight, one product per image, the bias)
///   against `W · cols_j` for each image;
/// * weight gradient: per chunk of images, as the layer batches them (`weight_grad_chunk`),
///   `dz` to channel-major rows, `dW (+)= dz · colsᵀ` and the bias gradient, against
///   `dz_chunk · cols_chunkᵀ` with the columns as im2col lays them out;
/// * input gradient (conv2; conv1 is a first layer and has none): `col2im(Wᵀ · dz_j)` per
///   image against `Wᵀ · dz_j`.
fn gflops_once(threads: usize, alloc: &CountingAllocator) -> Result<GflopsResult, CliError> {
    let mut rows = Vec::new();
    let mut cycles = Cycles {
        alloc,
        allocations: 0,
        layer: "",
    };
    for (layer, name, c, hw, oc, input_grad) in [
        ("CONV1", "conv1 (1x28x28 -> 20, 5x5)", 1, 28, 20, false),
        ("CONV2", "conv2 (20x12x12 -> 50, 5x5)", 20, 12, 50, true),
    ] {
        cycles.layer = layer;
        let chunk_id = format!("BENCH_CONV_CHUNK_{layer}");
        let g = Conv2dGeometry::square(c, hw, hw, 5, 1, 0, 1);
        let (oh, ow) = (hw - 4, hw - 4);
        let (taps, ohw) = (c * 25, oh * ow);
        let gflops =
            |images: usize, secs: f64| 2.0 * (oc * taps * ohw * images) as f64 / (secs * 1e9);
        let flops = 2.0 * (oc * taps * ohw * BATCH) as f64;
        let x = NdArray::<f32>::rand_uniform(&[BATCH, c, hw, hw], 0.0, 1.0, 1)?;
        let w = NdArray::<f32>::rand_uniform(&[oc, taps], -1.0, 1.0, 2)?;
        let b = NdArray::<f32>::rand_uniform(&[oc], -1.0, 1.0, 3)?;
        let dz = NdArray::<f32>::rand_uniform(&[BATCH, oc, oh, ow], -1.0, 1.0, 4)?;
        let mut out = NdArray::<f32>::zeros(&[BATCH, oc, oh, ow])?;
        let mut dw = NdArray::<f32>::zeros(&[oc, taps])?;
        let mut db = NdArray::<f32>::zeros(&[oc])?;
        let mut dx = NdArray::<f32>::zeros(&[BATCH, c, hw, hw])?;
        let forward = cycles.median("BENCH_CONV_FORWARD", || {
            ops::conv2d_forward_into(&x, &g, &w, Some(&b.view()), &mut out)?;
            Ok(())
        })?;
        let per = weight_grad_chunk(taps, ohw, BATCH);
        let chunk_config = WorkspaceConfig::default();
        let weight_grad = cycles.median("BENCH_CONV_WEIGHT_GRAD", || {
            for start in (0..BATCH).step_by(per) {
                let n = per.min(BATCH - start);
                // A cycle per chunk, as the layer's loop working memory: its memory reused.
                let _chunk = get_and_activate_workspace(&chunk_config, &chunk_id)?;
                let mut dzc = NdArray::<f32>::create_uninitialized(&[oc, n * ohw])?;
                let dz_chunk = dz.view().slice_axis(0, start, start + n, 1)?;
                ops::to_channel_major_into(&dz_chunk, &mut dzc)?;
                let x_chunk = x.view().slice_axis(0, start, start + n, 1)?;
                let beta = if start == 0 { 0.0 } else { 1.0 };
                ops::conv2d_weight_grad_into(&x_chunk, &g, &dzc, beta, &mut dw)?;
                if start == 0 {
                    ops::reduce_axis_into(Reduction::Sum, &dzc, 1, &mut db)?;
                } else {
                    let mut part = NdArray::<f32>::create_uninitialized(&[oc])?;
                    ops::reduce_axis_into(Reduction::Sum, &dzc, 1, &mut part)?;
                    ops::binary_assign(ops::BinaryOp::Add, &mut db, &part)?;
                }
            }
            Ok(())
        })?;
        let cols = NdArray::<f32>::rand_uniform(&[taps, ohw], -1.0, 1.0, 5)?;
        let mut out_j = NdArray::<f32>::zeros(&[oc, ohw])?;
        let gemm_forward = cycles.median("BENCH_GEMM_FORWARD", || {
            for _ in 0..BATCH {
                ops::gemm_into(1.0, &w, &cols, 0.0, &mut out_j)?;
            }
            Ok(())
        })?;
        // The full chunks only: the same products, the flops counted for those images.
        let chunks = BATCH / per;
        let dz_rows = NdArray::<f32>::rand_uniform(&[oc, per * ohw], -1.0, 1.0, 8)?;
        let chunk_cols = NdArray::<f32>::rand_uniform(&[taps, per * ohw], -1.0, 1.0, 6)?;
        let gemm_weight_grad = cycles.median("BENCH_GEMM_WEIGHT_GRAD", || {
            for k in 0..chunks {
                let beta = if k == 0 { 0.0 } else { 1.0 };
                ops::gemm_into(1.0, &dz_rows, &chunk_cols.view().t(), beta, &mut dw)?;
            }
            Ok(())
        })?;
        rows.push((
            name.to_string(),
            "forward".to_string(),
            gflops(BATCH, forward),
            gflops(BATCH, gemm_forward),
            flops,
        ));
        rows.push((
            name.to_string(),
            "weight gradient".to_string(),
            gflops(BATCH, weight_grad),
            gflops(chunks * per, gemm_weight_grad),
            flops,
        ));
        if input_grad {
            let input = cycles.median("BENCH_CONV_INPUT_GRAD", || {
                ops::conv2d_input_grad_into(&dz, &g, &w, &mut dx)?;
                Ok(())
            })?;
            let dz_j = NdArray::<f32>::rand_uniform(&[oc, ohw], -1.0, 1.0, 7)?;
            let mut cols_j = NdArray::<f32>::zeros(&[taps, ohw])?;
            let gemm_input = cycles.median("BENCH_GEMM_INPUT_GRAD", || {
                for _ in 0..BATCH {
                    ops::gemm_into(1.0, &w.view().t(), &dz_j, 0.0, &mut cols_j)?;
                }
                Ok(())
            })?;
            rows.push((
                name.to_string(),
                "input gradient".to_string(),
                gflops(BATCH, input),
                gflops(BATCH, gemm_input),
                flops,
            ));
        }
    }
    Ok(GflopsResult {
        threads,
        rows,
        allocations: cycles.allocations,
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
            Part::Gflops => serde_json::to_string(&pool.install(|| gflops_once(threads, alloc))?),
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
        "the convolutions' own operations vs the gemm of the same products (GFLOP/s, batch 64, \
         median of {} processes):",
        args.processes.max(1)
    );
    for threads in [1, 2] {
        let runs: Vec<GflopsResult> = (0..args.processes.max(1))
            .map(|_| child(Part::Gflops, threads, &args))
            .collect::<Result<_, _>>()?;
        let allocations = runs.iter().map(|r| r.allocations).max().unwrap_or(0);
        println!("  {threads} thread(s): heap allocations in the timed cycles: {allocations}");
        // Per direction over both layers: the flops of the batch over the summed times.
        let (mut forward, mut backward) = ([0.0; 3], [0.0; 3]);
        for (i, (name, part, _, _, flops)) in runs[0].rows.iter().enumerate() {
            let conv = median(runs.iter().map(|r| r.rows[i].2).collect());
            let gemm = median(runs.iter().map(|r| r.rows[i].3).collect());
            println!(
                "  {threads} thread(s) {name:<28} {part:<16} conv {conv:>7.1}   gemm {gemm:>7.1}   \
                 ({:.0} %)",
                100.0 * conv / gemm
            );
            let sums = if part == "forward" {
                &mut forward
            } else {
                &mut backward
            };
            sums[0] += flops;
            sums[1] += flops / conv;
            sums[2] += flops / gemm;
        }
        for (dir, [flops, conv, gemm]) in [("forward", forward), ("backward", backward)] {
            println!(
                "  {threads} thread(s) both layers, {dir:<8}                    conv {:>7.1}   \
                 gemm {:>7.1}   ({:.0} %)",
                flops / conv,
                flops / gemm,
                100.0 * gemm / conv
            );
        }
    }
    Ok(())
}
