//! The text table `summary()` prints for either kind of network: one row per layer or vertex
//! (index, name, type, inputs, output type, parameters), then the totals and settings.

use crate::conf::GlobalConf;

/// One row of the table.
pub(crate) struct Row {
    pub index: String,
    pub name: String,
    pub kind: String,
    pub inputs: String,
    pub output: String,
    pub params: usize,
}

pub(crate) fn table(title: &str, rows: &[Row], total: usize, global: &GlobalConf) -> String {
    let width = |f: fn(&Row) -> &str, min: usize| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let (wi, wn, wk, win, wo) = (
        width(|r| &r.index, 4),
        width(|r| &r.name, 12),
        width(|r| &r.kind, 12),
        width(|r| &r.inputs, 6),
        width(|r| &r.output, 6),
    );
    let total_width = wi + wn + wk + win + wo + 10 + 5;
    let line = "=".repeat(total_width);
    let mut s = format!("{title}\n{line}\n");
    s.push_str(&format!(
        "{:<wi$} {:<wn$} {:<wk$} {:<win$} {:<wo$} {:>10}\n",
        "#", "name", "type", "inputs", "output", "params"
    ));
    s.push_str(&"-".repeat(total_width));
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{:<wi$} {:<wn$} {:<wk$} {:<win$} {:<wo$} {:>10}\n",
            r.index, r.name, r.kind, r.inputs, r.output, r.params
        ));
    }
    s.push_str(&"-".repeat(total_width));
    s.push('\n');
    s.push_str(&format!(
        "total parameters: {total}   updater: {:?}   workspaces: training {:?}, inference {:?}\n",
        global.updater, global.training_workspace_mode, global.inference_workspace_mode
    ));
    s.push_str(&line);
    s.push('\n');
    s
}
