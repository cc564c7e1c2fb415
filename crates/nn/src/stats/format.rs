//! The stats file: JSON lines, one object per line, each with a `"type"`. Schema version
//! [`STATS_VERSION`] (documented in `docs/stats-format.md`):
//!
//! - `header` (first line): `format` (`"dl4rs-stats"`), `version`, `created_unix_s`,
//!   `model_kind`, `num_params`, `summary` (the network table), `conf` (the configuration JSON),
//!   `params` (`[{key, shape, len}]`, the order of the per-parameter arrays below), `run`
//!   (`[[name, value], ...]`, the run's configuration), `param_stats_every`.
//! - `workspace`: a workspace seen for the first time: `slot` (its number in `ws` samples),
//!   `uid`, `id`, `thread`, `thread_index`, `cyclic`.
//! - `iter`: one training iteration: `i` (iterations done), `epoch`, `time_s` (since the
//!   listener started), `score`, `batch`, `eps` (examples/s of this iteration), `lr`; every
//!   `param_stats_every` iterations `p`, `g`, `u`: mean |parameter|, |gradient| and |update|
//!   per parameter array (update = parameters after minus before the iteration); `ws`:
//!   `[[slot, block, used, spilled, pinned, cycles], ...]` bytes per workspace at its last cycle
//!   end, every thread's.
//! - `epoch`: `epoch`, `iteration`, `train_loss` (mean score of the epoch), `time_s`.
//! - `eval`: an evaluation ([`EvalRecord`]).
//! - `end`: the run finished (`time_s`).
//!
//! Numbers that are not finite are written `null` and read as NaN. Lines of unknown `type` are
//! skipped (additions within a version); a different `version` is an error. The file is
//! appended to at every flush, so a killed run keeps everything up to its last flush, and a
//! last line cut short by the kill is ignored ([`StatsFile::truncated`]).

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::NnError;

/// The `format` of a stats file's header.
pub const STATS_FORMAT: &str = "dl4rs-stats";
/// The schema version this build writes and reads.
pub const STATS_VERSION: u64 = 1;

/// One parameter array, in the order of the `p`/`g`/`u` arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// DL4J's key (`"0_W"`, `"dense1_b"`).
    pub key: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Number of values.
    pub len: usize,
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsHeader {
    /// Always [`STATS_FORMAT`].
    pub format: String,
    /// The schema version.
    pub version: u64,
    /// When the file was started (seconds since the Unix epoch).
    pub created_unix_s: f64,
    /// `"MultiLayerNetwork"` or `"ComputationGraph"`.
    pub model_kind: String,
    /// Number of parameters.
    pub num_params: usize,
    /// The network's summary table.
    pub summary: String,
    /// The network configuration (JSON).
    pub conf: serde_json::Value,
    /// The parameter arrays.
    pub params: Vec<ParamInfo>,
    /// The run's configuration, in order.
    pub run: Vec<(String, String)>,
    /// Iterations between parameter statistics.
    pub param_stats_every: u64,
}

/// A workspace of some thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// Its number in [`WsSample::slot`].
    pub slot: usize,
    /// Process-unique workspace number.
    pub uid: u64,
    /// Workspace id.
    pub id: String,
    /// Owning thread's name.
    pub thread: String,
    /// Owning thread's number.
    pub thread_index: u64,
    /// Whether it is a ring.
    pub cyclic: bool,
}

/// One workspace at one iteration (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WsSample {
    /// Which workspace ([`WorkspaceInfo::slot`]).
    pub slot: usize,
    /// Block size.
    pub block: u64,
    /// Bytes used in its last cycle.
    pub used: u64,
    /// Bytes spilled to the heap in its last cycle.
    pub spilled: u64,
    /// Bytes pinned.
    pub pinned: u64,
    /// Cycles completed.
    pub cycles: u64,
}

impl<'de> Deserialize<'de> for WsSample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [slot, block, used, spilled, pinned, cycles] = <[u64; 6]>::deserialize(d)?;
        Ok(WsSample {
            slot: slot as usize,
            block,
            used,
            spilled,
            pinned,
            cycles,
        })
    }
}

impl Serialize for WsSample {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [
            self.slot as u64,
            self.block,
            self.used,
            self.spilled,
            self.pinned,
            self.cycles,
        ]
        .serialize(s)
    }
}

fn nan_or<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nan_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    Ok(Option::<Vec<Option<f64>>>::deserialize(d)?
        .map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
}

/// One training iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iterations done, this one included.
    #[serde(rename = "i")]
    pub iteration: u64,
    /// Epoch.
    pub epoch: u64,
    /// Seconds since the listener started.
    #[serde(deserialize_with = "nan_or")]
    pub time_s: f64,
    /// Score (loss).
    #[serde(deserialize_with = "nan_or")]
    pub score: f64,
    /// Examples in the batch.
    pub batch: usize,
    /// Examples per second of this iteration.
    #[serde(rename = "eps", deserialize_with = "nan_or")]
    pub examples_per_s: f64,
    /// Learning rate.
    #[serde(deserialize_with = "nan_or")]
    pub lr: f64,
    /// Mean |parameter| per parameter array (every `param_stats_every` iterations).
    #[serde(rename = "p", default, deserialize_with = "nan_or_vec")]
    pub param_mean: Option<Vec<f64>>,
    /// Mean |gradient| per parameter array.
    #[serde(rename = "g", default, deserialize_with = "nan_or_vec")]
    pub grad_mean: Option<Vec<f64>>,
    /// Mean |update| per parameter array.
    #[serde(rename = "u", default, deserialize_with = "nan_or_vec")]
    pub update_mean: Option<Vec<f64>>,
    /// Every workspace's memory.
    #[serde(default)]
    pub ws: Vec<WsSample>,
}

/// The end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch (0-based).
    pub epoch: u64,
    /// Iterations done at its end.
    pub iteration: u64,
    /// Mean score over its iterations.
    #[serde(deserialize_with = "nan_or")]
    pub train_loss: f64,
    /// Seconds since the listener started.
    #[serde(deserialize_with = "nan_or")]
    pub time_s: f64,
}

/// Per-class figures of a classification evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// A ROC curve of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// Class name.
    pub name: String,
    /// Area under the curve.
    pub auc: f64,
    /// `[false positive rate, true positive rate]` points.
    pub points: Vec<[f64; 2]>,
}

/// An evaluation at the end of an epoch (or of the run).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Epoch (0-based) the evaluation follows.
    pub epoch: u64,
    /// Iterations done.
    pub iteration: u64,
    /// Which data (`"test"`).
    pub split: String,
    /// Loss on that data.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Accuracy (classification).
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Macro-averaged F1 (classification).
    #[serde(default)]
    pub macro_f1: Option<f64>,
    /// Per class (classification).
    #[serde(default)]
    pub classes: Vec<ClassMetrics>,
    /// Confusion matrix, `[actual][predicted]` counts (classification).
    #[serde(default)]
    pub confusion: Vec<Vec<u64>>,
    /// ROC curves, one per class, when computed.
    #[serde(default)]
    pub roc: Vec<RocCurve>,
    /// Other figures (`R²`, `MSE`, ...), in order.
    #[serde(default)]
    pub metrics: Vec<(String, f64)>,
}

/// A stats file, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFile {
    /// The header.
    pub header: StatsHeader,
    /// Workspaces, by slot.
    pub workspaces: Vec<WorkspaceInfo>,
    /// Iterations, in order.
    pub iterations: Vec<IterationRecord>,
    /// Epoch ends.
    pub epochs: Vec<EpochRecord>,
    /// Evaluations.
    pub evaluations: Vec<EvalRecord>,
    /// Whether the run wrote its `end` line.
    pub finished: bool,
    /// Whether the last line was cut short (a killed run) and ignored.
    pub truncated: bool,
}

fn err(path: &str, message: impl Into<String>) -> NnError {
    NnError::File {
        path: path.to_string(),
        message: message.into(),
    }
}

impl StatsFile {
    /// Reads a stats file.
    pub fn read(path: impl AsRef<Path>) -> Result<StatsFile, NnError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(
                &path.display().to_string(),
                format!("can't read the stats file: {e}"),
            )
        })?;
        StatsFile::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a stats file (`source` names it in errors).
    pub fn parse(text: &str, source: &str) -> Result<StatsFile, NnError> {
        let lines: Vec<&str> = text.lines().collect();
        let last_nonempty = lines.iter().rposition(|l| !l.trim().is_empty());
        let mut header: Option<StatsHeader> = None;
        let mut out = StatsFile {
            header: StatsHeader {
                format: String::new(),
                version: 0,
                created_unix_s: 0.0,
                model_kind: String::new(),
                num_params: 0,
                summary: String::new(),
                conf: serde_json::Value::Null,
                params: Vec::new(),
                run: Vec::new(),
                param_stats_every: 1,
            },
            workspaces: Vec::new(),
            iterations: Vec::new(),
            epochs: Vec::new(),
            evaluations: Vec::new(),
            finished: false,
            truncated: false,
        };
        for (n, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                // A run killed mid-write leaves a partial last line: everything before it is
                // whole (lines are written whole at each flush).
                Err(_) if Some(n) == last_nonempty && header.is_some() => {
                    out.truncated = true;
                    break;
                }
                Err(e) => {
                    return Err(err(
                        source,
                        format!("line {}: not a JSON stats record: {e}", n + 1),
                    ));
                }
            };
            let kind = value
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string();
            let kind = kind.as_str();
            if header.is_none() {
                let format = value.get("format").and_then(|f| f.as_str());
                if kind != "header" || format != Some(STATS_FORMAT) {
                    return Err(err(
                        source,
                        format!(
                            "not a dl4rs stats file: the first line must be a header with \
                             \"format\": \"{STATS_FORMAT}\" (written by StatsListener / dl4rs \
                             train --stats or --report)"
                        ),
                    ));
                }
                let version = value.get("version").and_then(|v| v.as_u64());
                if version != Some(STATS_VERSION) {
                    return Err(err(
                        source,
                        format!(
                            "stats schema version {} is not supported: this dl4rs reads \
                             version {STATS_VERSION}. Use the dl4rs version that wrote the \
                             file (or a newer one that reads it).",
                            value
                                .get("version")
                                .map_or("(missing)".to_string(), |v| v.to_string())
                        ),
                    ));
                }
                header = Some(
                    serde_json::from_value(value)
                        .map_err(|e| err(source, format!("line 1: bad header: {e}")))?,
                );
                continue;
            }
            let bad = |e: serde_json::Error| {
                err(source, format!("line {}: bad {kind} record: {e}", n + 1))
            };
            match kind {
                "workspace" => out
                    .workspaces
                    .push(serde_json::from_value(value).map_err(bad)?),
                "iter" => out
                    .iterations
                    .push(serde_json::from_value(value).map_err(bad)?),
                "epoch" => out.epochs.push(serde_json::from_value(value).map_err(bad)?),
                "eval" => out
                    .evaluations
                    .push(serde_json::from_value(value).map_err(bad)?),
                "end" => out.finished = true,
                _ => {} // an addition within this version: skipped
            }
        }
        out.header = header.ok_or_else(|| err(source, "empty stats file (no header line)"))?;
        out.workspaces.sort_by_key(|w| w.slot);
        Ok(out)
    }

    /// The workspace of `slot`.
    pub fn workspace(&self, slot: usize) -> Option<&WorkspaceInfo> {
        self.workspaces.iter().find(|w| w.slot == slot)
    }
}
