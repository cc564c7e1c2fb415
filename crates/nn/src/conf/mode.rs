//! `WorkspaceMode` (DL4J's, with its deprecated aliases) and the settings every network
//! configuration shares ([`GlobalConf`]: seed, updater, regularization, workspace modes,
//! defaults for layers).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::activation::Activation;
use crate::error::NnError;
use crate::updater::{Regularization, Updater};
use crate::weight_init::WeightInit;

/// Whether training or inference runs in workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WorkspaceMode {
    /// Workspaces on (the default).
    #[default]
    Enabled,
    /// Every array on the heap.
    None,
}

#[allow(non_upper_case_globals)]
impl WorkspaceMode {
    /// DL4J's pre-1.0 "one external workspace" mode: now the same as `Enabled`.
    #[deprecated(note = "SINGLE and SEPARATE were merged into Enabled in DL4J 1.0.0-beta")]
    pub const Single: WorkspaceMode = WorkspaceMode::Enabled;
    /// DL4J's pre-1.0 "separate FF/BP workspaces" mode: now the same as `Enabled`.
    #[deprecated(note = "SINGLE and SEPARATE were merged into Enabled in DL4J 1.0.0-beta")]
    pub const Separate: WorkspaceMode = WorkspaceMode::Enabled;
}

static DEPRECATION_WARNED: AtomicBool = AtomicBool::new(false);

impl WorkspaceMode {
    /// Parses `ENABLED`/`NONE` (any case), and the deprecated `SINGLE`/`SEPARATE` as
    /// `Enabled` with a one-time warning on stderr.
    pub fn parse(name: &str) -> Result<WorkspaceMode, String> {
        match name.to_ascii_uppercase().as_str() {
            "ENABLED" => Ok(WorkspaceMode::Enabled),
            "NONE" => Ok(WorkspaceMode::None),
            "SINGLE" | "SEPARATE" => {
                if !DEPRECATION_WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: workspace mode {name} is deprecated (DL4J 1.0.0-beta merged \
                         SINGLE and SEPARATE into ENABLED); using ENABLED"
                    );
                }
                Ok(WorkspaceMode::Enabled)
            }
            other => Err(format!(
                "unknown workspace mode {other:?}: expected ENABLED or NONE (SINGLE and \
                 SEPARATE are accepted as deprecated aliases of ENABLED)"
            )),
        }
    }
}

impl Serialize for WorkspaceMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            WorkspaceMode::Enabled => "ENABLED",
            WorkspaceMode::None => "NONE",
        })
    }
}

impl<'de> Deserialize<'de> for WorkspaceMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        WorkspaceMode::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The settings shared by [`crate::MultiLayerConfiguration`] and
/// [`crate::ComputationGraphConfiguration`] (DL4J's global `NeuralNetConfiguration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalConf {
    /// Seed for initialization and dropout.
    pub seed: u64,
    /// The updater.
    pub updater: Updater,
    /// Regularization of weights.
    #[serde(default)]
    pub regularization: Regularization,
    /// Workspaces in training.
    #[serde(default)]
    pub training_workspace_mode: WorkspaceMode,
    /// Workspaces in inference.
    #[serde(default)]
    pub inference_workspace_mode: WorkspaceMode,
    /// Default weight initialization.
    #[serde(default)]
    pub weight_init: WeightInit,
    /// Default activation.
    #[serde(default)]
    pub activation: Activation,
    /// Standard backprop, or truncated BPTT over sequences.
    #[serde(default, skip_serializing_if = "BackpropType::is_standard")]
    pub backprop_type: BackpropType,
    /// Truncated BPTT: time steps per segment (DL4J default 20).
    #[serde(default = "default_tbptt", skip_serializing_if = "is_default_tbptt")]
    pub tbptt_forward_length: usize,
    /// Truncated BPTT: steps backprop goes back from a segment's end (DL4J default 20; at
    /// most the forward length).
    #[serde(default = "default_tbptt", skip_serializing_if = "is_default_tbptt")]
    pub tbptt_backward_length: usize,
}

/// How gradients are computed over sequences (DL4J's `BackpropType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BackpropType {
    /// Backprop through the whole series.
    #[default]
    Standard,
    /// Truncated BPTT: the series is fitted in segments of `tbptt_forward_length` steps, the
    /// recurrent state carried from one segment to the next, gradients cut at segment
    /// boundaries (and `tbptt_backward_length` steps back from a segment's end), one updater
    /// step per segment.
    #[serde(rename = "TruncatedBPTT")]
    TruncatedBptt,
}

impl BackpropType {
    fn is_standard(&self) -> bool {
        *self == BackpropType::Standard
    }
}

fn default_tbptt() -> usize {
    20
}

fn is_default_tbptt(n: &usize) -> bool {
    *n == default_tbptt()
}

impl Default for GlobalConf {
    /// Seed 12345, SGD 0.1, Xavier init, identity activation, workspaces enabled.
    fn default() -> Self {
        GlobalConf {
            seed: 12345,
            updater: Updater::default(),
            regularization: Regularization::default(),
            training_workspace_mode: WorkspaceMode::Enabled,
            inference_workspace_mode: WorkspaceMode::Enabled,
            weight_init: WeightInit::XavierNormal,
            activation: Activation::Identity,
            backprop_type: BackpropType::Standard,
            tbptt_forward_length: default_tbptt(),
            tbptt_backward_length: default_tbptt(),
        }
    }
}

impl GlobalConf {
    /// Checks the updater and regularization.
    pub fn validate(&self) -> Result<(), NnError> {
        self.updater.validate().map_err(NnError::Config)?;
        let (f, b) = (self.tbptt_forward_length, self.tbptt_backward_length);
        if f == 0 || b == 0 || b > f {
            return Err(NnError::config(format!(
                "truncated BPTT lengths: expected 0 < tbptt_backward_length <= \
                 tbptt_forward_length, found forward {f}, backward {b}"
            )));
        }
        let r = self.regularization;
        if [r.l1, r.l2, r.weight_decay]
            .iter()
            .any(|v| !(v.is_finite() && *v >= 0.0))
        {
            return Err(NnError::config(format!(
                "regularization coefficients must be finite and >= 0, found {r:?}"
            )));
        }
        Ok(())
    }
}
