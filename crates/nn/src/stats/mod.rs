//! Training statistics for people to look at: [`StatsListener`] records score, examples/s,
//! learning rate, per-parameter magnitudes (parameters, gradients, updates: DL4J's
//! update:parameter ratio) and every thread's workspace memory per iteration, allocation-free,
//! into a versioned JSON-lines stats file ([`format`], `docs/stats-format.md`) that
//! [`StatsFile::read`] reads back (the `dl4rs report` command draws it).

pub mod format;
mod listener;

pub use format::{
    ClassMetrics, EpochRecord, EvalRecord, IterationRecord, ParamInfo, RocCurve, STATS_FORMAT,
    STATS_VERSION, StatsFile, StatsHeader, WorkspaceInfo, WsSample,
};
pub use listener::{StatsConfig, StatsHandle, StatsListener};
