//! The SVG primitives of the report: axes with round ticks, a chart frame, colours, number and
//! byte formatting, escaping.

use std::fmt::Write as _;

pub(super) const PALETTE: [&str; 12] = [
    "#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d", "#7c3aed", "#0d9488",
];

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn human(bytes: f64) -> String {
    dl4rs::memory::human_bytes(bytes.max(0.0) as usize)
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks over `range`.
pub(super) fn nice_step(range: f64, n: f64) -> f64 {
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

pub(super) fn fmt_num(v: f64) -> String {
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
pub(super) struct Axis {
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) log: bool,
}

impl Axis {
    pub(super) fn new(min: f64, max: f64) -> Axis {
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
    pub(super) fn log(min: f64, max: f64) -> Axis {
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
    pub(super) fn frac(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-300).log10() } else { v };
        ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }

    /// (value, label) ticks.
    pub(super) fn ticks(&self, fmt: &dyn Fn(f64) -> String) -> Vec<(f64, String)> {
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

pub(super) const W: f64 = 720.0;
pub(super) const H: f64 = 300.0;
pub(super) const ML: f64 = 72.0;
pub(super) const MR: f64 = 16.0;
pub(super) const MT: f64 = 14.0;
pub(super) const MB: f64 = 46.0;

pub(super) struct Chart {
    pub(super) id: &'static str,
    pub(super) x: Axis,
    pub(super) y: Axis,
    pub(super) x_label: String,
    pub(super) y_label: String,
    pub(super) y_fmt: Box<dyn Fn(f64) -> String>,
    pub(super) body: String,
    pub(super) legend: Vec<(String, String)>,
}

impl Chart {
    pub(super) fn new(id: &'static str, x: Axis, y: Axis, x_label: &str, y_label: &str) -> Chart {
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

    pub(super) fn px(&self, v: f64) -> f64 {
        ML + self.x.frac(v) * (W - ML - MR)
    }

    pub(super) fn py(&self, v: f64) -> f64 {
        H - MB - self.y.frac(v) * (H - MT - MB)
    }

    pub(super) fn points(&self, pts: &[(f64, f64)]) -> String {
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
    pub(super) fn polyline(
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

    pub(super) fn svg(&self, title: &str) -> String {
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
