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
use dl4rs::nn::stats::{ClassMetrics, EvalRecord, RocCurve, StatsFile};
use dl4rs::nn::{Model, StatsListener};

mod charts;
mod svg;

use charts::*;
use svg::*;

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
        (
            "weight init".to_string(),
            format!(
                "{:?}",
                args.weight_init.unwrap_or(super::train::Init::HeUniform)
            ),
        ),
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
