//! `dl4rs report STATS_FILE -o run.html` and `dl4rs train --report run.html`: a stats file
//! (written by the `StatsListener`) drawn as one self-contained HTML page: inline SVG generated
//! here, a few lines of inline script (an error marker and a self-check of what was drawn),
//! no network, no CDN. Charts: loss per iteration and smoothed with the epoch means and the
//! evaluation loss, examples/s, update:parameter ratios per parameter (log scale), every
//! thread's workspace memory stacked per workspace; the evaluation (per-class precision,
//! recall and F1, the confusion matrix as a heat map, ROC curves), the network summary and the
//! run's configuration. During `train --report` the page is rewritten after every epoch and
//! reloads itself, so opening it shows progress without a server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use dl4rs::data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs::eval::{Averaging, Evaluation, RocMultiClass};
use dl4rs::nn::atomic_file::write_atomic;
use dl4rs::nn::stats::{
    ClassMetrics, EvalRecord, IterationRecord, RocCurve, StatsFile, WorkspaceInfo,
};
use dl4rs::nn::{Model, StatsListener};

use super::CliError;
use super::train::TrainArgs;

/// Options of `dl4rs report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A stats file (JSON lines, from `dl4rs train --report` or a StatsListener).
    pub stats: PathBuf,
    /// Where to write the HTML report (default: the stats file's name with `.html`).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// Seconds between reloads of a report written while training runs.
pub const RELOAD_SECONDS: u32 = 10;

/// Runs `dl4rs report`.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    let out = args.out.unwrap_or_else(|| {
        let name = args.stats.file_name().map_or_else(
            || "report".to_string(),
            |n| {
                n.to_string_lossy()
                    .trim_end_matches(".jsonl")
                    .trim_end_matches(".stats")
                    .to_string()
            },
        );
        args.stats.with_file_name(format!("{name}.html"))
    });
    let stats = StatsFile::read(&args.stats)?;
    write_atomic(&out, render(&stats, false).as_bytes())?;
    println!(
        "report: {} ({} iterations, {} workspaces{})",
        out.display(),
        stats.iterations.len(),
        stats.workspaces.len(),
        if stats.truncated {
            ", last line truncated"
        } else {
            ""
        }
    );
    Ok(())
}

/// The stats file `train --report run.html` writes beside the report: `run.stats.jsonl`.
pub fn stats_path_for(html: &Path) -> PathBuf {
    let stem = html
        .file_stem()
        .map_or_else(|| "run".to_string(), |s| s.to_string_lossy().to_string());
    html.with_file_name(format!("{stem}.stats.jsonl"))
}

/// What `train --report` needs to know about the job.
pub struct ReportJob<'a> {
    /// Held-out data, evaluated after every epoch.
    pub test: &'a DataSet,
    /// Class names (classification).
    pub class_names: Option<&'a [String]>,
    /// The data, in words.
    pub description: &'a str,
    /// Regression (no classification evaluation).
    pub regression: bool,
}

/// `dl4rs train --report`: trains epoch by epoch with a StatsListener, evaluates after each
/// epoch, and rewrites the report (reloading itself until the last epoch).
pub fn train_with_report(
    net: &mut dyn Model<f32>,
    iterator: &mut dyn DataSetIterator<f32>,
    args: &TrainArgs,
    html: &Path,
    job: &ReportJob<'_>,
) -> Result<(), CliError> {
    let stats_path = stats_path_for(html);
    let listener = StatsListener::<f32>::new(&stats_path)?;
    let handle = listener.handle();
    handle.set_run_info(run_info(args, job.description));
    net.add_listener(Box::new(listener));
    println!(
        "report: {} (rewritten every epoch, reloads itself while training), stats: {}",
        html.display(),
        stats_path.display()
    );
    for epoch in 0..args.epochs {
        net.fit_iter(iterator, 1)?;
        handle.end_epoch()?;
        let last = epoch + 1 == args.epochs;
        if !job.regression {
            let record = evaluate(net, job, epoch as u64, last)?;
            handle.record_evaluation(&record)?;
        }
        if last {
            handle.finish()?;
        } else {
            // Workspaces created since the last iteration (evaluation, a new prefetch thread).
            handle.flush()?;
        }
        let stats = StatsFile::read(&stats_path)?;
        write_atomic(html, render(&stats, !last).as_bytes())?;
        if !last {
            // The pause for evaluation and the report is not the next iteration's time.
            handle.flush()?;
        }
    }
    Ok(())
}

fn run_info(args: &TrainArgs, description: &str) -> Vec<(String, String)> {
    let mut run = vec![
        (
            "command".to_string(),
            std::env::args().collect::<Vec<_>>().join(" "),
        ),
        ("data".to_string(), description.to_string()),
        ("epochs".to_string(), args.epochs.to_string()),
        ("batch".to_string(), args.batch.to_string()),
        ("learning rate".to_string(), args.lr.to_string()),
        ("seed".to_string(), args.seed.to_string()),
        (
            "network".to_string(),
            args.config
                .as_ref()
                .map_or(format!("{:?} (built in)", args.model), |p| {
                    p.display().to_string()
                }),
        ),
        ("weight init".to_string(), format!("{:?}", args.weight_init)),
        (
            "workspaces".to_string(),
            args.workspaces
                .map_or("enabled (default)".to_string(), |m| format!("{m:?}")),
        ),
        (
            "threads".to_string(),
            args.threads.map_or(
                format!("{} (all cores)", rayon::current_num_threads()),
                |t| t.to_string(),
            ),
        ),
    ];
    if let Some(n) = args.normalizer {
        run.push(("normalizer".into(), format!("{n:?}")));
    }
    run
}

/// Test loss, accuracy, per-class figures, confusion matrix, and (at the end) ROC curves.
fn evaluate(
    net: &mut dyn Model<f32>,
    job: &ReportJob<'_>,
    epoch: u64,
    with_roc: bool,
) -> Result<EvalRecord, CliError> {
    let n_out = job.test.num_outcomes();
    let mut eval = match job.class_names {
        Some(names) => Evaluation::with_labels(names.to_vec()),
        None => Evaluation::new(n_out),
    };
    let mut roc = RocMultiClass::new(n_out);
    {
        let mut it = InMemoryDataSetIterator::new(job.test.dup()?, 500)?;
        if with_roc {
            net.do_evaluation(&mut it, &mut [&mut eval, &mut roc])?;
        } else {
            net.do_evaluation(&mut it, &mut [&mut eval])?;
        }
    }
    // Loss over the same batches, weighted by their size.
    let (mut sum, mut rows) = (0.0, 0usize);
    let mut it = InMemoryDataSetIterator::new(job.test.dup()?, 500)?;
    while let Some(batch) = it.next() {
        let batch = batch?;
        let n = batch.num_examples();
        sum += net.score_data_set(&batch)? * n as f64;
        rows += n;
    }
    let names: Vec<String> = (0..eval.num_classes())
        .map(|c| eval.class_name(c))
        .collect();
    let cm = eval.confusion_matrix();
    let roc_curves = if with_roc {
        (0..n_out)
            .filter_map(|c| {
                let r = roc.roc(c)?;
                let points = r.roc_curve();
                let step = (points.len() / 300).max(1);
                let mut pts: Vec<[f64; 2]> = points
                    .iter()
                    .step_by(step)
                    .map(|p| [p.false_positive_rate, p.true_positive_rate])
                    .collect();
                if let Some(last) = points.last() {
                    pts.push([last.false_positive_rate, last.true_positive_rate]);
                }
                Some(RocCurve {
                    name: names[c].clone(),
                    auc: r.calculate_auc(),
                    points: pts,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(EvalRecord {
        epoch,
        iteration: net.iteration_count(),
        split: "test".into(),
        loss: (rows > 0).then(|| sum / rows as f64),
        accuracy: Some(eval.accuracy()),
        macro_f1: Some(eval.f1_averaged(Averaging::Macro)),
        classes: (0..eval.num_classes())
            .map(|c| ClassMetrics {
                name: names[c].clone(),
                precision: eval.precision(c),
                recall: eval.recall(c),
                f1: eval.f1(c),
            })
            .collect(),
        confusion: (0..cm.num_classes())
            .map(|a| (0..cm.num_classes()).map(|p| cm.count(a, p)).collect())
            .collect(),
        roc: roc_curves,
        metrics: vec![(
            "MCC (multi-class)".into(),
            eval.matthews_correlation_multiclass(),
        )],
    })
}

// ---------------------------------------------------------------------------------------
// Drawing.

const PALETTE: [&str; 12] = [
    "#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d", "#7c3aed", "#0d9488",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn human(bytes: f64) -> String {
    dl4rs::memory::human_bytes(bytes.max(0.0) as usize)
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks over `range`.
fn nice_step(range: f64, n: f64) -> f64 {
    let raw = (range / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[derive(Clone, Copy)]
struct Axis {
    min: f64,
    max: f64,
    log: bool,
}

impl Axis {
    fn new(min: f64, max: f64) -> Axis {
        let (min, max) = if min.is_finite() && max.is_finite() && max > min {
            (min, max)
        } else if min.is_finite() {
            (min - 0.5, min + 0.5)
        } else {
            (0.0, 1.0)
        };
        Axis {
            min,
            max,
            log: false,
        }
    }

    /// A log axis over decades covering [min, max] (both > 0).
    fn log(min: f64, max: f64) -> Axis {
        let lo = if min > 0.0 && min.is_finite() {
            min.log10().floor()
        } else {
            -6.0
        };
        let hi = if max > 0.0 && max.is_finite() {
            max.log10().ceil()
        } else {
            0.0
        };
        Axis {
            min: lo,
            max: if hi > lo { hi } else { lo + 1.0 },
            log: true,
        }
    }

    /// Position in [0, 1].
    fn frac(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-300).log10() } else { v };
        ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }

    /// (value, label) ticks.
    fn ticks(&self, fmt: &dyn Fn(f64) -> String) -> Vec<(f64, String)> {
        if self.log {
            let step = ((self.max - self.min) / 6.0).ceil().max(1.0);
            let mut out = Vec::new();
            let mut e = self.min;
            while e <= self.max + 1e-9 {
                out.push((10f64.powf(e), format!("1e{}", e as i64)));
                e += step;
            }
            return out;
        }
        let step = nice_step(self.max - self.min, 5.0);
        let mut v = (self.min / step).ceil() * step;
        let mut out = Vec::new();
        while v <= self.max + step * 1e-9 {
            out.push((v, fmt(v)));
            v += step;
        }
        out
    }
}

const W: f64 = 720.0;
const H: f64 = 300.0;
const ML: f64 = 72.0;
const MR: f64 = 16.0;
const MT: f64 = 14.0;
const MB: f64 = 46.0;

struct Chart {
    id: &'static str,
    x: Axis,
    y: Axis,
    x_label: String,
    y_label: String,
    y_fmt: Box<dyn Fn(f64) -> String>,
    body: String,
    legend: Vec<(String, String)>,
}

impl Chart {
    fn new(id: &'static str, x: Axis, y: Axis, x_label: &str, y_label: &str) -> Chart {
        Chart {
            id,
            x,
            y,
            x_label: x_label.into(),
            y_label: y_label.into(),
            y_fmt: Box::new(fmt_num),
            body: String::new(),
            legend: Vec::new(),
        }
    }

    fn px(&self, v: f64) -> f64 {
        ML + self.x.frac(v) * (W - ML - MR)
    }

    fn py(&self, v: f64) -> f64 {
        H - MB - self.y.frac(v) * (H - MT - MB)
    }

    fn points(&self, pts: &[(f64, f64)]) -> String {
        let mut s = String::with_capacity(pts.len() * 14);
        for (i, &(x, y)) in pts.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{:.1},{:.1}", self.px(x), self.py(y));
        }
        s
    }

    #[allow(clippy::too_many_arguments)] // a drawing primitive: every SVG attribute it sets
    fn polyline(
        &mut self,
        id: Option<&str>,
        class: &str,
        color: &str,
        width: f64,
        opacity: f64,
        pts: &[(f64, f64)],
        extra: &str,
    ) {
        let id = id.map_or(String::new(), |i| format!(" id=\"{i}\""));
        let points = self.points(pts);
        let _ = writeln!(
            self.body,
            "<polyline{id} class=\"{class}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-opacity=\"{opacity}\" stroke-linejoin=\"round\" {extra} points=\"{points}\"/>"
        );
    }

    fn svg(&self, title: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg class=\"chart\" id=\"{}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
            self.id,
            esc(title)
        );
        // Grid and ticks.
        let (x0, x1, y0, y1) = (ML, W - MR, MT, H - MB);
        let _ = writeln!(s, "<g class=\"axes\" font-size=\"12\" fill=\"#374151\">");
        for (v, label) in self.y.ticks(&*self.y_fmt) {
            let y = self.py(v);
            let _ = writeln!(
                s,
                "<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 - 6.0,
                y + 4.0,
                esc(&label)
            );
        }
        for (v, label) in self.x.ticks(&fmt_num) {
            let x = self.px(v);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0}\" y2=\"{y1}\" stroke=\"#f3f4f6\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y1 + 16.0,
                esc(&label)
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{y1}\" y2=\"{y1}\" stroke=\"#6b7280\"/><line x1=\"{x0}\" x2=\"{x0}\" y1=\"{y0}\" y2=\"{y1}\" stroke=\"#6b7280\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            (x0 + x1) / 2.0,
            H - 8.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            (y0 + y1) / 2.0,
            esc(&self.y_label)
        );
        s.push_str("</g>\n<g class=\"plot\">\n");
        s.push_str(&self.body);
        s.push_str("</g>\n</svg>\n");
        if !self.legend.is_empty() {
            s.push_str("<div class=\"legend\">");
            for (label, color) in &self.legend {
                let _ = write!(
                    s,
                    "<span><i style=\"background:{color}\"></i>{}</span>",
                    esc(label)
                );
            }
            s.push_str("</div>\n");
        }
        s
    }
}

fn ema(values: &[(f64, f64)], window: f64) -> Vec<(f64, f64)> {
    let alpha = 2.0 / (window + 1.0);
    let mut out = Vec::with_capacity(values.len());
    let mut acc: Option<f64> = None;
    for &(x, y) in values {
        let v = match acc {
            Some(a) => a + alpha * (y - a),
            None => y,
        };
        acc = Some(v);
        out.push((x, v));
    }
    out
}

fn x_axis(iters: &[IterationRecord]) -> Axis {
    let last = iters.last().map_or(1.0, |r| r.iteration as f64);
    let first = iters.first().map_or(0.0, |r| r.iteration as f64);
    Axis::new(first.min(last - 1.0).max(0.0), last.max(1.0))
}

fn loss_chart(stats: &StatsFile) -> String {
    let iters = &stats.iterations;
    let raw: Vec<(f64, f64)> = iters
        .iter()
        .filter(|r| r.score.is_finite())
        .map(|r| (r.iteration as f64, r.score))
        .collect();
    let evals: Vec<(f64, f64, u64)> = stats
        .evaluations
        .iter()
        .filter_map(|e| {
            e.loss
                .filter(|l| l.is_finite())
                .map(|l| (e.iteration as f64, l, e.epoch))
        })
        .collect();
    let lo = raw
        .iter()
        .map(|p| p.1)
        .chain(evals.iter().map(|e| e.1))
        .fold(f64::INFINITY, f64::min);
    let hi = raw
        .iter()
        .map(|p| p.1)
        .chain(evals.iter().map(|e| e.1))
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = (hi - lo).abs() * 0.05;
    let mut c = Chart::new(
        "chart-loss",
        x_axis(iters),
        Axis::new((lo - pad).max(0.0), hi + pad),
        "iteration",
        "loss (score, nats)",
    );
    let window = (raw.len() as f64 / 40.0).max(5.0);
    c.polyline(
        Some("loss-raw"),
        "series loss-raw",
        PALETTE[0],
        1.0,
        0.35,
        &raw,
        &format!("data-n=\"{}\"", raw.len()),
    );
    let smooth = ema(&raw, window);
    c.polyline(
        Some("loss-smooth"),
        "series loss-smooth",
        PALETTE[0],
        2.2,
        1.0,
        &smooth,
        "",
    );
    for e in &stats.epochs {
        if e.train_loss.is_finite() {
            let _ = writeln!(
                c.body,
                "<circle class=\"epoch-train\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"{}\" stroke=\"#fff\"><title>epoch {}: mean training loss {:.4}</title></circle>",
                c.px(e.iteration as f64),
                c.py(e.train_loss),
                PALETTE[1],
                e.epoch + 1,
                e.train_loss
            );
        }
    }
    for &(x, l, epoch) in &evals {
        let _ = writeln!(
            c.body,
            "<rect class=\"epoch-eval\" x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{}\" stroke=\"#fff\"><title>epoch {}: test loss {:.4}</title></rect>",
            c.px(x) - 4.5,
            c.py(l) - 4.5,
            PALETTE[2],
            epoch + 1,
            l
        );
    }
    c.legend = vec![
        ("loss per iteration".into(), "rgba(37,99,235,0.35)".into()),
        (
            format!("smoothed (EMA, {window:.0} iterations)"),
            PALETTE[0].into(),
        ),
        ("training loss, epoch mean".into(), PALETTE[1].into()),
        ("test loss after each epoch".into(), PALETTE[2].into()),
    ];
    c.svg("loss per iteration")
}

fn throughput_chart(stats: &StatsFile) -> String {
    let iters = &stats.iterations;
    // The first iteration's time includes start-up; skip non-finite values.
    let raw: Vec<(f64, f64)> = iters
        .iter()
        .skip(1)
        .filter(|r| r.examples_per_s.is_finite())
        .map(|r| (r.iteration as f64, r.examples_per_s))
        .collect();
    let window = (raw.len() as f64 / 40.0).max(5.0);
    let smooth = ema(&raw, window);
    let mut sorted: Vec<f64> = raw.iter().map(|p| p.1).collect();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted.get(sorted.len() * 99 / 100).copied().unwrap_or(1.0);
    let hi = smooth.iter().map(|p| p.1).fold(p99, f64::max) * 1.1;
    let mut c = Chart::new(
        "chart-throughput",
        x_axis(iters),
        Axis::new(0.0, hi.max(1.0)),
        "iteration",
        "examples per second",
    );
    c.polyline(
        Some("eps-raw"),
        "series eps-raw",
        PALETTE[5],
        1.0,
        0.3,
        &raw,
        &format!("data-n=\"{}\"", raw.len()),
    );
    c.polyline(
        Some("eps-smooth"),
        "series eps-smooth",
        PALETTE[5],
        2.2,
        1.0,
        &smooth,
        "",
    );
    c.legend = vec![
        ("per iteration".into(), "rgba(8,145,178,0.3)".into()),
        (
            format!("smoothed (EMA, {window:.0} iterations)"),
            PALETTE[5].into(),
        ),
    ];
    c.svg("examples per second")
}

fn ratio_chart(stats: &StatsFile) -> Option<String> {
    let keys: Vec<&str> = stats.header.params.iter().map(|p| p.key.as_str()).collect();
    let mut lines: Vec<Vec<(f64, f64)>> = vec![Vec::new(); keys.len()];
    for r in &stats.iterations {
        if let (Some(p), Some(u)) = (&r.param_mean, &r.update_mean) {
            for (j, line) in lines.iter_mut().enumerate() {
                let (Some(&pv), Some(&uv)) = (p.get(j), u.get(j)) else {
                    continue;
                };
                let ratio = uv / pv;
                if ratio.is_finite() && ratio > 0.0 {
                    line.push((r.iteration as f64, ratio));
                }
            }
        }
    }
    if lines.iter().all(Vec::is_empty) {
        return None;
    }
    let all = lines.iter().flatten().map(|p| p.1);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let mut c = Chart::new(
        "chart-ratios",
        x_axis(&stats.iterations),
        Axis::log(lo.min(1e-3), hi.max(1e-3)),
        "iteration",
        "mean |update| / mean |parameter| (log)",
    );
    // DL4J's rule of thumb: about 1e-3.
    let y = c.py(1e-3);
    let _ = writeln!(
        c.body,
        "<line class=\"reference\" x1=\"{ML}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#9ca3af\" stroke-dasharray=\"5 4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" fill=\"#6b7280\" text-anchor=\"end\">1e-3 (rule of thumb)</text>",
        W - MR,
        W - MR - 4.0,
        y - 4.0
    );
    for (j, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let color = PALETTE[j % PALETTE.len()];
        c.polyline(
            None,
            "series ratio",
            color,
            1.6,
            0.9,
            line,
            &format!("data-key=\"{}\"", esc(keys[j])),
        );
        c.legend.push((keys[j].to_string(), color.to_string()));
    }
    Some(c.svg("update to parameter ratio per parameter"))
}

/// Bytes a workspace holds at one sample: its block, its spills and its pinned allocations.
fn held(w: &dl4rs::nn::stats::WsSample) -> f64 {
    (w.block + w.spilled + w.pinned) as f64
}

fn workspace_label(w: &WorkspaceInfo) -> String {
    format!(
        "{} (thread {}) / {}{}",
        w.thread,
        w.thread_index,
        w.id,
        if w.cyclic { " (ring)" } else { "" }
    )
}

fn memory_chart(stats: &StatsFile) -> Option<String> {
    let iters = &stats.iterations;
    if stats.workspaces.is_empty() || iters.is_empty() {
        return None;
    }
    let mut order: Vec<&WorkspaceInfo> = stats.workspaces.iter().collect();
    order.sort_by_key(|w| (w.thread_index, w.slot));
    let slots = stats.workspaces.iter().map(|w| w.slot).max().unwrap_or(0) + 1;
    // Keep at most ~1500 x positions: every k-th iteration plus every one where something
    // changed (a learning cycle, a spill, growth), so steps stay sharp.
    let k = (iters.len() / 1500).max(1);
    let mut rows: Vec<(f64, Vec<f64>, f64)> = Vec::new();
    let mut prev: Option<Vec<f64>> = None;
    for (i, r) in iters.iter().enumerate() {
        let mut v = vec![0.0; slots];
        let mut spilled = 0.0;
        for w in &r.ws {
            if w.slot < slots {
                v[w.slot] = held(w);
                spilled += w.spilled as f64;
            }
        }
        let changed = prev.as_ref() != Some(&v);
        if i % k == 0 || changed || i + 1 == iters.len() || spilled > 0.0 {
            rows.push((r.iteration as f64, v.clone(), spilled));
        }
        prev = Some(v);
    }
    let total_max = rows
        .iter()
        .map(|(_, v, _)| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let unit = if total_max >= (1u64 << 30) as f64 {
        ("GiB", (1u64 << 30) as f64)
    } else if total_max >= (1u64 << 20) as f64 {
        ("MiB", (1u64 << 20) as f64)
    } else {
        ("KiB", 1024.0)
    };
    let mut c = Chart::new(
        "chart-memory",
        x_axis(iters),
        Axis::new(0.0, (total_max * 1.08).max(1.0) / unit.1),
        "iteration",
        &format!("workspace memory held ({})", unit.0),
    );
    let mut below = vec![0.0; rows.len()];
    for (n, w) in order.iter().enumerate() {
        let color = PALETTE[n % PALETTE.len()];
        let mut pts = String::new();
        let top: Vec<f64> = rows
            .iter()
            .zip(&below)
            .map(|((_, v, _), b)| b + v[w.slot])
            .collect();
        for ((x, _, _), t) in rows.iter().zip(&top) {
            let _ = write!(pts, "{:.1},{:.1} ", c.px(*x), c.py(t / unit.1));
        }
        for ((x, _, _), b) in rows.iter().zip(&below).rev() {
            let _ = write!(pts, "{:.1},{:.1} ", c.px(*x), c.py(b / unit.1));
        }
        let last = rows.last().map_or(0.0, |(_, v, _)| v[w.slot]);
        let _ = writeln!(
            c.body,
            "<polygon class=\"mem-band\" data-ws=\"{}\" fill=\"{color}\" fill-opacity=\"0.55\" stroke=\"{color}\" stroke-width=\"1\" points=\"{}\"><title>{}: {} at the end</title></polygon>",
            esc(&workspace_label(w)),
            pts.trim_end(),
            esc(&workspace_label(w)),
            human(last)
        );
        c.legend.push((
            format!("{} ({})", workspace_label(w), human(last)),
            color.to_string(),
        ));
        below = top;
    }
    // Iterations where some workspace spilled to the heap (learning cycles, outgrown blocks).
    let mut spills = 0;
    for (x, _, s) in &rows {
        if *s > 0.0 {
            spills += 1;
            let _ = writeln!(
                c.body,
                "<rect class=\"spill\" x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"8\" fill=\"#dc2626\"><title>iteration {}: {} spilled to the heap</title></rect>",
                c.px(*x) - 1.5,
                H - MB - 9.0,
                x,
                human(*s)
            );
        }
    }
    if spills > 0 {
        c.legend
            .push(("iteration with heap spills".into(), "#dc2626".into()));
    }
    c.y_fmt = Box::new(fmt_num);
    Some(c.svg("workspace memory per workspace and thread"))
}

fn accuracy_chart(stats: &StatsFile) -> Option<String> {
    let evals: Vec<&EvalRecord> = stats
        .evaluations
        .iter()
        .filter(|e| e.accuracy.is_some())
        .collect();
    if evals.is_empty() {
        return None;
    }
    let last = evals.iter().map(|e| e.epoch + 1).max().unwrap_or(1) as f64;
    let acc: Vec<(f64, f64)> = evals
        .iter()
        .map(|e| ((e.epoch + 1) as f64, e.accuracy.unwrap_or(f64::NAN) * 100.0))
        .collect();
    let f1: Vec<(f64, f64)> = evals
        .iter()
        .filter_map(|e| e.macro_f1.map(|f| ((e.epoch + 1) as f64, f * 100.0)))
        .collect();
    let lo = acc.iter().chain(&f1).map(|p| p.1).fold(100.0, f64::min);
    let mut c = Chart::new(
        "chart-accuracy",
        Axis::new(0.5_f64.min(last - 0.5), last + 0.5),
        Axis::new((lo - 5.0).max(0.0).floor(), 100.0),
        "epoch",
        "test accuracy, macro F1 (%)",
    );
    c.polyline(
        Some("acc-line"),
        "series acc",
        PALETTE[2],
        2.0,
        1.0,
        &acc,
        "",
    );
    c.polyline(Some("f1-line"), "series f1", PALETTE[3], 2.0, 1.0, &f1, "");
    for &(x, y) in &acc {
        let _ = writeln!(
            c.body,
            "<circle class=\"acc-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{}\"><title>epoch {x}: accuracy {y:.2} %</title></circle>",
            c.px(x),
            c.py(y),
            PALETTE[2]
        );
    }
    c.legend = vec![
        ("accuracy".into(), PALETTE[2].into()),
        ("macro F1".into(), PALETTE[3].into()),
    ];
    Some(c.svg("test accuracy per epoch"))
}

fn class_bars(e: &EvalRecord) -> String {
    let n = e.classes.len();
    let row = 26.0;
    let (left, right, top) = (150.0, 20.0, 28.0);
    let h = top + row * n as f64 + 30.0;
    let plot_w = W - left - right;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"chart\" id=\"chart-classes\" viewBox=\"0 0 {W} {h:.0}\" role=\"img\" aria-label=\"precision, recall and F1 per class\" xmlns=\"http://www.w3.org/2000/svg\"><g font-size=\"12\" fill=\"#374151\">"
    );
    for t in 0..=5 {
        let x = left + plot_w * t as f64 / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#e5e7eb\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            h - 30.0,
            h - 14.0,
            t * 20
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">% (precision, recall, F1)</text>",
        left + plot_w / 2.0,
        h - 1.0
    );
    s.push_str("</g><g class=\"plot\">\n");
    for (i, c) in e.classes.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
            left - 8.0,
            y + 16.0,
            esc(&c.name)
        );
        for (k, (v, color, what)) in [
            (c.precision, PALETTE[0], "precision"),
            (c.recall, PALETTE[1], "recall"),
            (c.f1, PALETTE[2], "F1"),
        ]
        .into_iter()
        .enumerate()
        {
            let v = if v.is_finite() { v } else { 0.0 };
            let _ = writeln!(
                s,
                "<rect class=\"class-bar\" x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"7\" fill=\"{color}\"><title>{}: {what} {:.1} %</title></rect>",
                y + 3.0 + 7.0 * k as f64,
                plot_w * v,
                esc(&c.name),
                v * 100.0
            );
        }
    }
    s.push_str("</g></svg>\n<div class=\"legend\">");
    for (label, color) in [
        ("precision", PALETTE[0]),
        ("recall", PALETTE[1]),
        ("F1", PALETTE[2]),
    ] {
        let _ = write!(
            s,
            "<span><i style=\"background:{color}\"></i>{label}</span>"
        );
    }
    s.push_str("</div>\n");
    s
}

fn confusion(e: &EvalRecord) -> String {
    let n = e.confusion.len();
    let names: Vec<String> = (0..n)
        .map(|i| e.classes.get(i).map_or(i.to_string(), |c| c.name.clone()))
        .collect();
    let cell = 44.0;
    let (left, top) = (130.0, 110.0);
    let size = left + cell * n as f64 + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"chart\" id=\"chart-confusion\" viewBox=\"0 0 {size:.0} {:.0}\" role=\"img\" aria-label=\"confusion matrix\" xmlns=\"http://www.w3.org/2000/svg\" style=\"max-width:{size:.0}px\"><g font-size=\"11\" fill=\"#374151\">",
        top + cell * n as f64 + 10.0
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\" font-size=\"13\">predicted class →</text>",
        left + cell * n as f64 / 2.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">actual class →</text>",
        top + cell * n as f64 / 2.0
    );
    for (i, name) in names.iter().enumerate() {
        let x = left + cell * i as f64 + cell / 2.0;
        let _ = writeln!(
            s,
            "<text transform=\"translate({x:.1} {:.1}) rotate(-50)\" text-anchor=\"start\">{}</text>",
            top - 6.0,
            esc(name)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            top + cell * i as f64 + cell / 2.0 + 4.0,
            esc(name)
        );
    }
    s.push_str("</g><g class=\"plot\">\n");
    for (a, row) in e.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let frac = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            let (x, y) = (left + cell * p as f64, top + cell * a as f64);
            let color = if a == p { "22,163,74" } else { "220,38,38" };
            let _ = writeln!(
                s,
                "<rect class=\"cm-cell\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgba({color},{:.3})\" stroke=\"#fff\"><title>actual {}, predicted {}: {count} ({:.1} % of the row)</title></rect><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{}\">{count}</text>",
                0.06 + 0.94 * frac.sqrt(),
                esc(&names[a]),
                esc(&names[p]),
                frac * 100.0,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                if frac > 0.5 { "#fff" } else { "#111827" }
            );
        }
    }
    s.push_str("</g></svg>\n<p class=\"note\">Rows are the actual class, columns the prediction; green: correct, red: confusions; intensity: share of the row.</p>\n");
    s
}

fn roc_chart(e: &EvalRecord) -> Option<String> {
    if e.roc.is_empty() {
        return None;
    }
    let mut c = Chart::new(
        "chart-roc",
        Axis::new(0.0, 1.0),
        Axis::new(0.0, 1.0),
        "false positive rate",
        "true positive rate",
    );
    c.polyline(
        None,
        "reference",
        "#9ca3af",
        1.0,
        1.0,
        &[(0.0, 0.0), (1.0, 1.0)],
        "stroke-dasharray=\"5 4\"",
    );
    for (j, r) in e.roc.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let pts: Vec<(f64, f64)> = r.points.iter().map(|p| (p[0], p[1])).collect();
        c.polyline(
            None,
            "series roc",
            color,
            1.5,
            0.9,
            &pts,
            &format!("data-class=\"{}\"", esc(&r.name)),
        );
        c.legend
            .push((format!("{} (AUC {:.3})", r.name, r.auc), color.to_string()));
    }
    Some(c.svg("ROC curve per class (one vs all)"))
}

fn table(rows: &[(String, String)]) -> String {
    let mut s = String::from("<div class=\"scroll\"><table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table></div>\n");
    s
}

fn param_table(stats: &StatsFile) -> String {
    let last = stats
        .iterations
        .iter()
        .rev()
        .find(|r| r.param_mean.is_some());
    let mut s = String::from(
        "<div class=\"scroll\"><table class=\"num\"><tr><th>parameter</th><th>shape</th><th>mean |p|</th><th>mean |gradient|</th><th>mean |update|</th><th>update : parameter</th></tr>",
    );
    for (j, p) in stats.header.params.iter().enumerate() {
        let get = |v: Option<&Vec<f64>>| v.and_then(|v| v.get(j).copied()).unwrap_or(f64::NAN);
        let (pm, gm, um) = last.map_or((f64::NAN, f64::NAN, f64::NAN), |r| {
            (
                get(r.param_mean.as_ref()),
                get(r.grad_mean.as_ref()),
                get(r.update_mean.as_ref()),
            )
        });
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:?}</td><td>{pm:.3e}</td><td>{gm:.3e}</td><td>{um:.3e}</td><td>{:.3e}</td></tr>",
            esc(&p.key),
            p.shape,
            um / pm
        );
    }
    s.push_str("</table></div>\n");
    s
}

fn memory_table(stats: &StatsFile) -> String {
    let mut s = String::from(
        "<div class=\"scroll\"><table class=\"num\"><tr><th>thread</th><th>workspace</th><th>block</th><th>last cycle used</th><th>spilled</th><th>pinned</th><th>cycles</th></tr>",
    );
    let last = stats.iterations.last();
    let mut order: Vec<&WorkspaceInfo> = stats.workspaces.iter().collect();
    order.sort_by_key(|w| (w.thread_index, w.slot));
    for w in order {
        let sample = last
            .and_then(|r| r.ws.iter().find(|x| x.slot == w.slot))
            .copied()
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.thread),
            esc(&w.id),
            if w.cyclic { " (ring)" } else { "" },
            human(sample.block as f64),
            human(sample.used as f64),
            human(sample.spilled as f64),
            human(sample.pinned as f64),
            sample.cycles
        );
    }
    s.push_str("</table></div>\n");
    s
}

const STYLE: &str = "
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f3f4f6;color:#111827}
main{max-width:980px;margin:0 auto;padding:12px}
h1{font-size:1.35em;margin:.4em 0}
h2{font-size:1.1em;margin:0 0 .4em}
section{background:#fff;border-radius:8px;padding:12px 14px;margin:12px 0;box-shadow:0 1px 2px rgba(0,0,0,.06)}
svg.chart{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px;margin-top:4px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.kpis{display:flex;flex-wrap:wrap;gap:8px}
.kpi{flex:1 1 140px;background:#f9fafb;border-radius:6px;padding:8px 10px}
.kpi b{display:block;font-size:1.3em}
.kpi span{font-size:12px;color:#4b5563}
.banner{background:#fef3c7;border:1px solid #f59e0b;border-radius:6px;padding:8px 12px}
.note{font-size:13px;color:#4b5563}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
table.num td{font-variant-numeric:tabular-nums}
pre{font-size:12px;overflow-x:auto;background:#f9fafb;padding:8px;border-radius:6px}
#selfcheck{display:none}
@media (max-width:560px){body{font-size:14px}main{padding:6px}section{padding:10px 8px}svg.chart .axes text{font-size:20px}}
";

/// The page's script: an error marker in the DOM for any script error (what the browser test
/// reads from the dumped DOM), and a self-check of what every chart drew.
const SCRIPT: &str = r#"
(function(){
  function mark(msg){
    var d=document.getElementById('js-errors');
    if(!d){d=document.createElement('pre');d.id='js-errors';(document.body||document.documentElement).appendChild(d);}
    d.textContent+=msg+'\n';
  }
  window.addEventListener('error',function(e){mark('error: '+e.message+' at '+(e.lineno||0)+':'+(e.colno||0));});
  window.addEventListener('unhandledrejection',function(e){mark('unhandled rejection: '+e.reason);});
  document.addEventListener('DOMContentLoaded',function(){
    function pts(sel){var el=document.querySelector(sel);return el?el.points.numberOfItems:-1;}
    function count(sel){return document.querySelectorAll(sel).length;}
    var r={
      loss_points:pts('#loss-raw'),loss_smoothed_points:pts('#loss-smooth'),
      throughput_points:pts('#eps-raw'),ratio_lines:count('polyline.ratio'),
      memory_bands:count('polygon.mem-band'),epoch_markers:count('circle.epoch-train'),
      eval_markers:count('rect.epoch-eval'),class_bars:count('rect.class-bar'),
      confusion_cells:count('rect.cm-cell'),roc_curves:count('polyline.roc'),
      charts:count('svg.chart'),empty_charts:[]
    };
    var charts=document.querySelectorAll('svg.chart');
    for(var i=0;i<charts.length;i++){
      var plot=charts[i].querySelector('g.plot');
      var box=plot?plot.getBBox():{width:0,height:0};
      if(!(box.width>0&&box.height>0)){r.empty_charts.push(charts[i].id);}
    }
    var pre=document.createElement('pre');pre.id='selfcheck';pre.textContent=JSON.stringify(r);
    document.body.appendChild(pre);
    document.body.setAttribute('data-rendered','ok');
  });
})();
"#;

/// The whole page. `live`: training is still running (the page reloads itself).
pub fn render(stats: &StatsFile, live: bool) -> String {
    let h = &stats.header;
    let iters = &stats.iterations;
    let mut s = String::with_capacity(64 * 1024 + iters.len() * 64);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n");
    if live {
        let _ = writeln!(
            s,
            "<meta http-equiv=\"refresh\" content=\"{RELOAD_SECONDS}\">"
        );
    }
    let _ = writeln!(
        s,
        "<title>dl4rs training report{}</title>",
        if live { " (live)" } else { "" }
    );
    let _ = writeln!(
        s,
        "<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head><body><main>"
    );
    let _ = writeln!(s, "<h1>dl4rs training report</h1>");
    if live {
        let _ = writeln!(
            s,
            "<p class=\"banner\" id=\"live\">Training in progress: this page is rewritten after every epoch and reloads itself every {RELOAD_SECONDS} s.</p>"
        );
    } else if !stats.finished {
        let _ = writeln!(
            s,
            "<p class=\"banner\">The run did not finish (stopped or still running): showing everything up to its last flush{}.</p>",
            if stats.truncated {
                "; a cut-short last line was ignored"
            } else {
                ""
            }
        );
    }

    // Headline figures.
    let last_eval = stats.evaluations.last();
    let mut kpis: Vec<(String, String)> = Vec::new();
    if let Some(r) = iters.last() {
        kpis.push((
            format!("{}", r.iteration),
            format!("iterations, {} epochs", stats.epochs.len()),
        ));
        if let Some(e) = stats.epochs.last() {
            kpis.push((
                format!("{:.4}", e.train_loss),
                "training loss, last epoch".into(),
            ));
        }
        kpis.push((format!("{:.1} s", r.time_s), "training time".into()));
        let total: u64 = r.ws.iter().map(|w| w.block + w.spilled + w.pinned).sum();
        kpis.push((
            human(total as f64),
            format!("workspaces held ({} workspaces)", stats.workspaces.len()),
        ));
    }
    if let Some(e) = last_eval {
        if let Some(a) = e.accuracy {
            kpis.push((
                format!("{:.2} %", a * 100.0),
                format!("{} accuracy", e.split),
            ));
        }
        if let Some(l) = e.loss {
            kpis.push((format!("{l:.4}"), format!("{} loss", e.split)));
        }
    }
    s.push_str("<section><div class=\"kpis\">");
    for (v, label) in &kpis {
        let _ = write!(
            s,
            "<div class=\"kpi\"><b>{}</b><span>{}</span></div>",
            esc(v),
            esc(label)
        );
    }
    s.push_str("</div></section>\n");

    if iters.is_empty() {
        s.push_str("<section><p>No iterations recorded yet.</p></section>\n");
    } else {
        let _ = writeln!(s, "<section><h2>Loss</h2>{}</section>", loss_chart(stats));
        let _ = writeln!(s, "<section><h2>Workspace memory, every thread</h2>");
        match memory_chart(stats) {
            Some(c) => s.push_str(&c),
            None => s.push_str("<p>No workspaces recorded (workspaces off?).</p>"),
        }
        let _ = writeln!(
            s,
            "<p class=\"note\">Stacked per workspace: block + heap spills + pinned bytes at each workspace's last cycle end, sampled every iteration from every thread. The first cycles learn (spills, red ticks), then the blocks serve every cycle: a flat top is the steady state.</p>{}</section>",
            memory_table(stats)
        );
        let _ = writeln!(
            s,
            "<section><h2>Examples per second</h2>{}</section>",
            throughput_chart(stats)
        );
        let _ = writeln!(s, "<section><h2>Update : parameter ratio</h2>");
        match ratio_chart(stats) {
            Some(c) => s.push_str(&c),
            None => s.push_str("<p>No parameter statistics recorded yet.</p>"),
        }
        let _ = writeln!(
            s,
            "<p class=\"note\">Mean |update| over mean |parameter| per parameter array, every {} iterations (DL4J's chart: around 1e-3 is healthy; much higher is unstable, much lower learns slowly).</p>{}</section>",
            h.param_stats_every,
            param_table(stats)
        );
    }

    if let Some(e) = last_eval {
        let _ = writeln!(
            s,
            "<section><h2>Evaluation ({}, after epoch {})</h2>",
            esc(&e.split),
            e.epoch + 1
        );
        let mut rows = Vec::new();
        if let Some(a) = e.accuracy {
            rows.push(("accuracy".to_string(), format!("{:.2} %", a * 100.0)));
        }
        if let Some(f) = e.macro_f1 {
            rows.push(("macro F1".to_string(), format!("{:.4}", f)));
        }
        if let Some(l) = e.loss {
            rows.push(("loss".to_string(), format!("{l:.4}")));
        }
        for (k, v) in &e.metrics {
            rows.push((k.clone(), format!("{v:.4}")));
        }
        s.push_str(&table(&rows));
        if let Some(c) = accuracy_chart(stats) {
            s.push_str(&c);
        }
        if !e.classes.is_empty() {
            s.push_str("<h2>Per class</h2>");
            s.push_str(&class_bars(e));
        }
        if !e.confusion.is_empty() {
            s.push_str("<h2>Confusion matrix</h2>");
            s.push_str(&confusion(e));
        }
        if let Some(c) = roc_chart(e) {
            s.push_str("<h2>ROC</h2>");
            s.push_str(&c);
        }
        s.push_str("</section>\n");
    }

    let _ = writeln!(
        s,
        "<section><h2>Network</h2><pre>{}</pre></section>",
        esc(&h.summary)
    );
    let mut run = h.run.clone();
    run.push(("network kind".into(), h.model_kind.clone()));
    run.push(("parameters".into(), h.num_params.to_string()));
    run.push((
        "stats schema".into(),
        format!("{} version {}", h.format, h.version),
    ));
    let _ = writeln!(
        s,
        "<section><h2>Run</h2>{}<details><summary>network configuration (JSON)</summary><pre>{}</pre></details></section>",
        table(&run),
        esc(&serde_json::to_string_pretty(&h.conf).unwrap_or_default())
    );
    s.push_str("<p class=\"note\">Written by dl4rs (self-contained: no network access needed).</p>\n</main></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"type":"header","format":"dl4rs-stats","version":1,"created_unix_s":0,"model_kind":"MultiLayerNetwork","num_params":2,"summary":"<net>","conf":null,"params":[{"key":"0_W","shape":[1,1],"len":1},{"key":"0_b","shape":[1],"len":1}],"run":[["epochs","1"]],"param_stats_every":1}"#;

    #[test]
    fn live_reports_reload_and_final_ones_do_not() {
        let text = format!(
            "{HEADER}\n{}\n{}\n",
            r#"{"type":"workspace","slot":0,"uid":1,"id":"WS","thread":"main","thread_index":1,"cyclic":false}"#,
            r#"{"type":"iter","i":1,"epoch":0,"time_s":0.1,"score":null,"batch":4,"eps":40,"lr":0.1,"p":[1,2],"g":[0.1,0.2],"ws":[[0,4096,100,0,0,1]]}"#
        );
        let stats = StatsFile::parse(&text, "t").unwrap();
        let live = render(&stats, true);
        assert!(live.contains("http-equiv=\"refresh\"") && live.contains("id=\"live\""));
        let done = render(&stats, false);
        assert!(!done.contains("http-equiv=\"refresh\""));
        assert!(
            done.contains("did not finish"),
            "no end line: the page says so"
        );
        // HTML in names is escaped; a NaN score is left out of the loss line.
        assert!(done.contains("&lt;net&gt;") && !done.contains("<net>"));
        assert!(done.contains("data-n=\"0\""));
        assert_eq!(done.matches("class=\"mem-band\"").count(), 1);
    }

    #[test]
    fn stats_file_sits_beside_the_report() {
        assert_eq!(
            stats_path_for(Path::new("out/run.html")),
            PathBuf::from("out/run.stats.jsonl")
        );
    }
}
