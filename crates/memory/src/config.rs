//! Workspace configuration: every knob ND4J's `WorkspaceConfiguration` has, with its defaults,
//! plus dl4rs's shrink policy. This module owns validation of a configuration; it does not touch
//! memory. A configuration that contradicts itself is an error here, before any workspace exists.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::WorkspaceError;

/// How much memory a workspace reserves when it (re)allocates its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum AllocationPolicy {
    /// Exactly the initial or learned size.
    Strict,
    /// The size plus `size * overallocation_limit`. For a cyclic workspace the limit is the
    /// number of extra slots and must be a whole number >= 1.
    #[default]
    Overallocate,
}

/// How a workspace decides the size of its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LearningPolicy {
    /// Measure the first cycle that allocates, then allocate a block of that peak.
    #[default]
    FirstLoop,
    /// Measure `cycles_before_initialization` cycles, then allocate the peak seen. With
    /// `cycles_before_initialization == 0` the workspace only initializes when asked
    /// (`Workspace::initialize_workspace`).
    OverTime,
    /// Never learn: only `initial_size` is allocated.
    None,
}

/// What happens to an allocation that does not fit the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SpillPolicy {
    /// Served from the heap, tracked, released at the end of the cycle.
    #[default]
    External,
    /// As `External`, and the block grows to the cycle's size when the cycle ends.
    Reallocate,
    /// The allocation fails with [`WorkspaceError::WorkspaceFull`].
    Fail,
}

/// When the bump offset goes back to the start of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ResetPolicy {
    /// At the end of every cycle: the normal scoped workspace.
    #[default]
    BlockLeft,
    /// Only when an allocation does not fit at the end: a ring (cyclic workspace), used by
    /// the async prefetch iterators. An allocation stays valid until the ring passes over it.
    EndOfBuffer,
}

/// Where the block lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LocationPolicy {
    /// Anonymous memory.
    #[default]
    Ram,
    /// A memory-mapped file: the given path, or a private temporary file when `None`. The block
    /// is exactly `initial_size` bytes (no overallocation); learning is not allowed.
    ///
    /// - **Your file's size**: a missing file is created; an existing file shorter than
    ///   `initial_size` is **extended** with zero bytes to `initial_size` (and stays that long);
    ///   a longer one is never truncated: only its first `initial_size` bytes are mapped. The
    ///   contents are kept: data written in one cycle is in the file (and visible to an
    ///   `uninitialized` allocation) in the next.
    /// - **Exclusive**: while mapped, the file belongs to this workspace alone. A second
    ///   workspace given the same file (on any thread, through any path or link) fails with
    ///   [`WorkspaceError::MmapInUse`] naming the holder; another process is refused too, by
    ///   an exclusive advisory lock (`flock`) held for the mapping's lifetime. Don't let
    ///   programs that ignore advisory locks write or truncate the file meanwhile.
    /// - **Lifetime**: the mapping, the lock and the claim on the file end when the last array
    ///   referencing the block is dropped (after `destroy`, stale arrays still hold it, though
    ///   they can't be read). Your file is never deleted. A temporary file is unlinked as soon
    ///   as it is mapped (on Unix; elsewhere when the mapping ends), so none is left behind,
    ///   even if the process is killed; its disk space returns when the mapping ends.
    /// - A block retired because it was borrowed at a cycle end (see
    ///   [`WorkspaceError::BorrowedAtCycleEnd`]) is not replaced by heap memory: the mapping
    ///   serves again once those borrows end; meanwhile allocations spill to the heap (counted
    ///   in the statistics) or, with `SpillPolicy::Fail`, fail with
    ///   [`WorkspaceError::MappedBlockBorrowed`].
    Mmap(Option<PathBuf>),
}

/// dl4rs's answer to "nothing ever shrinks" (ND4J's `maxCycle` only grows): after
/// `after_cycles` consecutive cycles that each needed less than `below_fraction` of the block,
/// the block is reallocated to the largest of those cycles (plus overallocation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShrinkPolicy {
    /// How many consecutive small cycles trigger a shrink. Must be >= 1.
    pub after_cycles: u32,
    /// A cycle is small when its (overallocated) need is below this fraction of the block.
    /// In (0, 1].
    pub below_fraction: f64,
}

impl Default for ShrinkPolicy {
    fn default() -> Self {
        Self {
            after_cycles: 8,
            below_fraction: 0.5,
        }
    }
}

/// The configuration of one workspace. Defaults are ND4J's: nothing allocated up front, learn
/// on the first loop, overallocate by 30 %, spill to the heap, reset at the end of each cycle.
///
/// ```
/// use dl4rs_memory::{WorkspaceConfig, LearningPolicy, SpillPolicy};
///
/// let cfg = WorkspaceConfig::builder()
///     .initial_size(1 << 20)
///     .policy_learning(LearningPolicy::None)
///     .policy_spill(SpillPolicy::Fail)
///     .build()
///     .unwrap();
/// assert_eq!(cfg.overallocation_limit, 0.3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkspaceConfig {
    /// Bytes allocated when the workspace is created (before overallocation). For a
    /// memory-mapped workspace the file's mapped length: see [`LocationPolicy::Mmap`] for what
    /// happens to an existing file of another length.
    pub initial_size: usize,
    /// Floor applied to a learned size.
    pub min_size: usize,
    /// Cap on the learned size and on the initial size after overallocation; 0 = unlimited.
    pub max_size: usize,
    /// Extra fraction added on (re)allocation (`Overallocate`). For cyclic workspaces the
    /// number of extra slots.
    pub overallocation_limit: f64,
    /// `OverTime` learning: initialize when this many cycles have ended.
    pub cycles_before_initialization: u32,
    /// See [`AllocationPolicy`].
    pub policy_allocation: AllocationPolicy,
    /// See [`LearningPolicy`].
    pub policy_learning: LearningPolicy,
    /// See [`SpillPolicy`].
    pub policy_spill: SpillPolicy,
    /// See [`ResetPolicy`].
    pub policy_reset: ResetPolicy,
    /// See [`LocationPolicy`].
    pub policy_location: LocationPolicy,
    /// Optional shrink policy; `None` (the default) never shrinks, as ND4J.
    pub shrink: Option<ShrinkPolicy>,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        Self {
            initial_size: 0,
            min_size: 0,
            max_size: 0,
            overallocation_limit: 0.3,
            cycles_before_initialization: 0,
            policy_allocation: AllocationPolicy::Overallocate,
            policy_learning: LearningPolicy::FirstLoop,
            policy_spill: SpillPolicy::External,
            policy_reset: ResetPolicy::BlockLeft,
            policy_location: LocationPolicy::Ram,
            shrink: None,
        }
    }
}

impl WorkspaceConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> WorkspaceConfigBuilder {
        WorkspaceConfigBuilder {
            config: Self::default(),
        }
    }

    /// Whether this is a ring (cyclic workspace).
    pub fn is_cyclic(&self) -> bool {
        self.policy_reset == ResetPolicy::EndOfBuffer
    }

    /// Checks that the configuration does not contradict itself.
    pub fn validate(&self) -> Result<(), WorkspaceError> {
        let invalid = |field: &'static str, reason: String| {
            Err(WorkspaceError::InvalidConfig { field, reason })
        };
        let limit = self.overallocation_limit;
        if !limit.is_finite() || limit < 0.0 {
            return invalid(
                "overallocation_limit",
                format!("expected a finite value >= 0, found {limit}"),
            );
        }
        if self.max_size > 0 && self.min_size > self.max_size {
            return invalid(
                "min_size",
                format!(
                    "min_size {} is larger than max_size {}: lower min_size or raise max_size",
                    self.min_size, self.max_size
                ),
            );
        }
        if self.is_cyclic()
            && self.policy_allocation == AllocationPolicy::Overallocate
            && (limit < 1.0 || limit.fract() != 0.0)
        {
            return invalid(
                "overallocation_limit",
                format!(
                    "a cyclic workspace (ResetPolicy::EndOfBuffer) with Overallocate counts extra \
                     ring slots, so the limit must be a whole number >= 1; found {limit}"
                ),
            );
        }
        if let LocationPolicy::Mmap(path) = &self.policy_location {
            if self.policy_learning != LearningPolicy::None {
                return invalid(
                    "policy_learning",
                    format!(
                        "a workspace backed by a memory-mapped file has a fixed size and can't \
                         learn: use LearningPolicy::None (found {:?})",
                        self.policy_learning
                    ),
                );
            }
            if self.initial_size == 0 {
                return invalid(
                    "initial_size",
                    format!(
                        "a memory-mapped workspace needs initial_size > 0 (the file's length); \
                         path: {}",
                        path.as_ref()
                            .map_or("<temporary file>".to_string(), |p| p.display().to_string())
                    ),
                );
            }
            if self.is_cyclic() {
                return invalid(
                    "policy_reset",
                    "a memory-mapped workspace can't be cyclic: use ResetPolicy::BlockLeft"
                        .to_string(),
                );
            }
        }
        if let Some(shrink) = &self.shrink {
            if shrink.after_cycles == 0 {
                return invalid(
                    "shrink.after_cycles",
                    "expected at least 1 cycle, found 0".to_string(),
                );
            }
            let f = shrink.below_fraction;
            if !(f > 0.0 && f <= 1.0) {
                return invalid(
                    "shrink.below_fraction",
                    format!("expected a fraction in (0, 1], found {f}"),
                );
            }
            if self.policy_learning == LearningPolicy::None {
                return invalid(
                    "shrink",
                    "a shrink policy needs learning (LearningPolicy::None never resizes)"
                        .to_string(),
                );
            }
        }
        Ok(())
    }
}

/// Builder for [`WorkspaceConfig`]; `build` validates.
#[derive(Debug, Clone)]
pub struct WorkspaceConfigBuilder {
    config: WorkspaceConfig,
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident : $ty:ty),* $(,)?) => {
        $(
            #[$doc]
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl WorkspaceConfigBuilder {
    setter! {
        /// Bytes allocated at creation.
        initial_size: usize,
        /// Floor for learned sizes.
        min_size: usize,
        /// Cap for learned sizes (0 = none).
        max_size: usize,
        /// Overallocation fraction (extra slots for rings).
        overallocation_limit: f64,
        /// Cycles measured before an `OverTime` workspace initializes.
        cycles_before_initialization: u32,
        /// Allocation policy.
        policy_allocation: AllocationPolicy,
        /// Learning policy.
        policy_learning: LearningPolicy,
        /// Spill policy.
        policy_spill: SpillPolicy,
        /// Reset policy.
        policy_reset: ResetPolicy,
        /// Location policy.
        policy_location: LocationPolicy,
    }

    /// Enables the shrink policy.
    pub fn shrink(mut self, policy: ShrinkPolicy) -> Self {
        self.config.shrink = Some(policy);
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<WorkspaceConfig, WorkspaceError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nd4j_defaults() {
        let c = WorkspaceConfig::default();
        assert_eq!(c.initial_size, 0);
        assert_eq!(c.max_size, 0);
        assert_eq!(c.overallocation_limit, 0.3);
        assert_eq!(c.policy_allocation, AllocationPolicy::Overallocate);
        assert_eq!(c.policy_learning, LearningPolicy::FirstLoop);
        assert_eq!(c.policy_spill, SpillPolicy::External);
        assert_eq!(c.policy_reset, ResetPolicy::BlockLeft);
        assert_eq!(c.policy_location, LocationPolicy::Ram);
        c.validate().unwrap();
    }

    #[test]
    fn contradictions_are_errors() {
        let mmap_learning = WorkspaceConfig::builder()
            .initial_size(4096)
            .policy_location(LocationPolicy::Mmap(None))
            .build()
            .unwrap_err();
        assert!(
            mmap_learning.to_string().contains("can't learn"),
            "{mmap_learning}"
        );

        let ring = WorkspaceConfig::builder()
            .policy_reset(ResetPolicy::EndOfBuffer)
            .overallocation_limit(0.5)
            .build()
            .unwrap_err();
        assert!(ring.to_string().contains("whole number >= 1"), "{ring}");

        let minmax = WorkspaceConfig::builder()
            .min_size(10)
            .max_size(5)
            .build()
            .unwrap_err();
        assert!(minmax.to_string().contains("min_size 10"), "{minmax}");

        let nan = WorkspaceConfig::builder()
            .overallocation_limit(f64::NAN)
            .build()
            .unwrap_err();
        assert!(nan.to_string().contains("finite"), "{nan}");

        let shrink = WorkspaceConfig::builder()
            .policy_learning(LearningPolicy::None)
            .shrink(ShrinkPolicy::default())
            .build()
            .unwrap_err();
        assert!(shrink.to_string().contains("shrink"), "{shrink}");

        let mmap_empty = WorkspaceConfig::builder()
            .policy_learning(LearningPolicy::None)
            .policy_location(LocationPolicy::Mmap(None))
            .build()
            .unwrap_err();
        assert!(
            mmap_empty.to_string().contains("initial_size > 0"),
            "{mmap_empty}"
        );
    }

    #[test]
    fn serde_round_trip() {
        let c = WorkspaceConfig::builder()
            .initial_size(123)
            .policy_reset(ResetPolicy::EndOfBuffer)
            .overallocation_limit(3.0)
            .shrink(ShrinkPolicy::default())
            .build()
            .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: WorkspaceConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c, back);
        // Missing fields take their defaults.
        let partial: WorkspaceConfig = serde_json::from_str(r#"{"initial_size": 5}"#).unwrap();
        assert_eq!(partial.initial_size, 5);
        assert_eq!(partial.overallocation_limit, 0.3);
    }
}
