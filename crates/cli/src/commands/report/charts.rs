//! The report's charts and tables, each drawn from a stats file as an SVG or HTML fragment:
//! loss, throughput, update:parameter ratios, workspace memory, accuracy, per-class bars, the
//! confusion matrix, ROC curves, and the parameter and memory tables.

use std::fmt::Write as _;

use dl4rs::nn::stats::{EvalRecord, IterationRecord, StatsFile, WorkspaceInfo};

use super::svg::*;

pub(super) fn ema(values: &[(f64, f64)], window: f64) -> Vec<(f64, f64)> {
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

pub(super) fn x_axis(iters: &[IterationRecord]) -> Axis {
    let last = iters.last().map_or(1.0, |r| r.iteration as f64);
    let first = iters.first().map_or(0.0, |r| r.iteration as f64);
    Axis::new(first.min(last - 1.0).max(0.0), last.max(1.0))
}

pub(super) fn loss_chart(stats: &StatsFile) -> String {
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

pub(super) fn throughput_chart(stats: &StatsFile) -> String {
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

pub(super) fn ratio_chart(stats: &StatsFile) -> Option<String> {
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
pub(super) fn held(w: &dl4rs::nn::stats::WsSample) -> f64 {
    (w.block + w.spilled + w.pinned) as f64
}

pub(super) fn workspace_label(w: &WorkspaceInfo) -> String {
    format!(
        "{} (thread {}) / {}{}",
        w.thread,
        w.thread_index,
        w.id,
        if w.cyclic { " (ring)" } else { "" }
    )
}

pub(super) fn memory_chart(stats: &StatsFile) -> Option<String> {
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

pub(super) fn accuracy_chart(stats: &StatsFile) -> Option<String> {
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

pub(super) fn class_bars(e: &EvalRecord) -> String {
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

pub(super) fn confusion(e: &EvalRecord) -> String {
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

pub(super) fn roc_chart(e: &EvalRecord) -> Option<String> {
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

pub(super) fn table(rows: &[(String, String)]) -> String {
    let mut s = String::from("<div class=\"scroll\"><table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table></div>\n");
    s
}

pub(super) fn param_table(stats: &StatsFile) -> String {
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

pub(super) fn memory_table(stats: &StatsFile) -> String {
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
