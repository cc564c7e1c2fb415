//! `dl4rs bench graph`: what the graph engine costs and saves. (1) W1's MLP trained as a
//! MultiLayerNetwork and as the same chain ComputationGraph, side by side, each in its own
//! processes (medians of several), with heap allocations per iteration; the two should be
//! within noise (they are one engine). (2) A residual chain's inference memory: the pool
//! workspaces' blocks against the liveness minimum and against keeping every activation.

use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::{AsView, NdArray};
use dl4rs::memory::{CountingAllocator, allocation_report, human_bytes};
use dl4rs::nn::{
    Activation, ComputationGraph, ElementWiseOp, InputType, LayerConf, LossFunction, Model,
    MultiLayerNetwork, NeuralNetConfiguration, Updater, VertexConf,
};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::workloads::{BATCH, Data, ROWS, stats, w1_data, w1_params};

/// Which network runs the W1 step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Variant {
    /// MultiLayerNetwork.
    Mln,
    /// The same layers as a chain ComputationGraph.
    Graph,
}

/// Options of `dl4rs bench graph`.
#[derive(Args, Debug, Clone)]
pub struct GraphBench {
    /// Timed iterations per process (after 20 warm-up ones).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Processes per variant (they alternate).
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    /// Threads for the matrix products.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Residual blocks of the inference-memory workload.
    #[arg(long, default_value_t = 20)]
    pub blocks: usize,
    #[arg(long, hide = true)]
    variant: Option<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepResult {
    variant: Variant,
    median_ms: f64,
    allocations_per_iteration: f64,
    loss_219: Option<f64>,
}

fn w1_conf() -> NeuralNetConfiguration {
    NeuralNetConfiguration::builder()
        .seed(0)
        .updater(Updater::sgd(0.1))
}

fn w1_model(variant: Variant) -> Result<Box<dyn Model<f32>>, CliError> {
    let hidden = |n| LayerConf::dense(n).activation(Activation::Relu);
    let out = LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax);
    let mut net: Box<dyn Model<f32>> = match variant {
        Variant::Mln => Box::new(MultiLayerNetwork::<f32>::new(
            w1_conf()
                .list()
                .layer(hidden(256).n_in(784))
                .layer(hidden(128))
                .layer(out)
                .build()?,
        )?),
        Variant::Graph => Box::new(ComputationGraph::<f32>::new(
            w1_conf()
                .graph_builder()
                .add_inputs(&["in"])
                .set_input_types(&[InputType::feed_forward(784)])
                .add_layer("0", hidden(256), &["in"])
                .add_layer("1", hidden(128), &["0"])
                .add_layer("2", out, &["1"])
                .set_outputs(&["2"])
                .build()?,
        )?),
    };
    let params = w1_params();
    let p = NdArray::from_slice_detached(&[params.len()], &params)?;
    net.set_params(&p.view())?;
    Ok(net)
}

fn step_once(
    variant: Variant,
    iterations: usize,
    alloc: &CountingAllocator,
) -> Result<StepResult, CliError> {
    let (x, y) = w1_data(Data::Synthetic)?;
    let mut net = w1_model(variant)?;
    let batches = ROWS / BATCH;
    let mut times = Vec::with_capacity(iterations);
    let (mut allocations, mut loss_219) = (0, None);
    for k in 0..20 + iterations {
        let start = (k % batches) * BATCH;
        let data = dl4rs::data::DataSet::new(
            x.view().slice_axis(0, start, start + BATCH, 1)?.detach()?,
            y.view().slice_axis(0, start, start + BATCH, 1)?.detach()?,
        )?;
        let before = alloc.allocations();
        let t = Instant::now();
        net.fit_data_set(&data)?;
        let elapsed = t.elapsed().as_secs_f64();
        if k >= 20 {
            times.push(elapsed);
            allocations += alloc.allocations() - before;
        }
        if k == 219 {
            loss_219 = Some(net.last_score());
        }
    }
    let (median_ms, _) = stats(&mut times);
    Ok(StepResult {
        variant,
        median_ms,
        allocations_per_iteration: allocations as f64 / iterations.max(1) as f64,
        loss_219,
    })
}

fn child(variant: Variant, args: &GraphBench) -> Result<StepResult, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let name = format!("{variant:?}").to_lowercase();
    let out = Command::new(exe)
        .args(["bench", "graph", "--variant", &name])
        .args(["--iterations", &args.iterations.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .output()
        .map_err(|e| CliError::Usage(format!("can't run the benchmark process: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "benchmark process ({name}) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .map_err(|e| CliError::Usage(format!("unreadable benchmark result: {e}")))
}

/// Pool bytes after inference, the liveness minimum, and all activations, for a residual
/// chain of `blocks` blocks (width 256, batch 128).
fn residual_memory(blocks: usize) -> Result<(usize, usize, usize, usize), CliError> {
    let (width, batch) = (256, 128);
    let mut b = NeuralNetConfiguration::builder()
        .graph_builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::feed_forward(width)])
        .add_layer(
            "stem",
            LayerConf::dense(width).activation(Activation::Relu),
            &["in"],
        );
    let mut x = "stem".to_string();
    for i in 0..blocks {
        let (d1, d2, add) = (format!("b{i}a"), format!("b{i}b"), format!("b{i}"));
        b = b
            .add_layer(
                &d1,
                LayerConf::dense(width).activation(Activation::Relu),
                &[&x],
            )
            .add_layer(&d2, LayerConf::dense(width), &[&d1])
            .add_vertex(
                &add,
                VertexConf::element_wise(ElementWiseOp::Add),
                &[&d2, &x],
            );
        x = add;
    }
    let conf = b
        .add_layer(
            "out",
            LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax),
            &[&x],
        )
        .set_outputs(&["out"])
        .build()?;
    let mut g = ComputationGraph::<f32>::new(conf)?;
    let input = NdArray::<f32>::rand_uniform(&[batch, width], -1.0, 1.0, 1)?;
    for _ in 0..4 * blocks + 8 {
        g.output(&[input.view()], false)?;
    }
    let ids = g.workspace_ids();
    let pool: usize = allocation_report()
        .workspaces
        .iter()
        .filter(|w| ids.contains(&w.id) && w.id.starts_with("WS_LAYER_ACT_"))
        .map(|w| w.block_bytes)
        .sum();
    let act = batch * width * size_of::<f32>();
    let (peak, _) = g.inference_pool();
    Ok((pool, peak * act, (3 * blocks + 1) * act, peak))
}

/// Runs `dl4rs bench graph`.
pub fn run(args: GraphBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if let Some(variant) = args.variant {
        let result = super::thread_pool(Some(args.threads))?
            .install(|| step_once(variant, args.iterations, alloc))?;
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Usage(e.to_string()))?
        );
        return Ok(());
    }
    let mut results: Vec<StepResult> = Vec::new();
    for _ in 0..args.processes.max(1) {
        for variant in [Variant::Mln, Variant::Graph] {
            results.push(child(variant, &args)?);
        }
    }
    println!(
        "dl4rs bench graph: W1 (MLP 784-256-128-10, SGD 0.1, batch 128), {} threads, {} \
         processes per variant alternating, 20 warm-up + {} timed iterations each",
        args.threads, args.processes, args.iterations
    );
    println!(
        "{:<20} {:>26} {:>14} {:>12}",
        "network", "median ms (per process)", "allocs/iter", "loss it.219"
    );
    for variant in [Variant::Mln, Variant::Graph] {
        let mine: Vec<&StepResult> = results.iter().filter(|r| r.variant == variant).collect();
        let mut medians: Vec<f64> = mine.iter().map(|r| r.median_ms).collect();
        medians.sort_by(f64::total_cmp);
        let text: Vec<String> = medians.iter().map(|m| format!("{m:.3}")).collect();
        println!(
            "{:<20} {:>26} {:>14.2} {:>12}",
            match variant {
                Variant::Mln => "MultiLayerNetwork",
                Variant::Graph => "ComputationGraph",
            },
            text.join(" "),
            mine.iter()
                .map(|r| r.allocations_per_iteration)
                .fold(0.0, f64::max),
            mine.first()
                .and_then(|r| r.loss_219)
                .map_or("-".into(), |l| format!("{l:.6}"))
        );
    }
    let (pool, liveness, all, peak) = residual_memory(args.blocks)?;
    println!(
        "residual chain, {} blocks (width 256, batch 128), inference: pool workspaces {} \
         ({peak} open at most) vs liveness minimum {} vs every activation {} ({:.2}x the \
         minimum, {:.1}x less than keeping all)",
        args.blocks,
        human_bytes(pool),
        human_bytes(liveness),
        human_bytes(all),
        pool as f64 / liveness.max(1) as f64,
        all as f64 / pool.max(1) as f64
    );
    Ok(())
}
