//! The distributed crate's error type: configuration mistakes, a rank that failed or stopped
//! answering, and the network and data errors of the local replica.

use thiserror::Error;

/// Everything distributed training can fail with.
#[derive(Debug, Error)]
pub enum DistributedError {
    /// The trainer was configured wrongly (caught by `build()`).
    #[error("invalid distributed configuration: {0}")]
    Config(String),
    /// The local replica failed (bad data, a shape mismatch, ...); every other rank was told.
    #[error("rank {rank}: {source}")]
    Local {
        /// This rank.
        rank: usize,
        /// What failed.
        #[source]
        source: Box<dl4rs_nn::NnError>,
    },
    /// Another rank failed in the same round (its own message is on its standard error).
    #[error(
        "rank {rank}: {failed} other rank(s) failed in round {round} (their messages are on their \
         standard error); stopping"
    )]
    RemoteFailure {
        /// This rank.
        rank: usize,
        /// How many ranks reported a failure.
        failed: usize,
        /// The round (0-based, counted over all epochs).
        round: u64,
    },
    /// A collective did not complete in time: a rank stopped answering (killed, hung, or
    /// partitioned).
    #[error(
        "rank {rank}: {op} did not complete within {seconds:.1} s: another rank stopped answering \
         (killed, hung, or unreachable). Raise the timeout if ranks legitimately take longer \
         (`collective_timeout`), else look at the other ranks' output"
    )]
    Timeout {
        /// This rank.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// The timeout.
        seconds: f64,
    },
    /// The group was aborted by one of its members.
    #[error("rank {rank}: the group was aborted by rank {by}: {reason}")]
    Aborted {
        /// This rank.
        rank: usize,
        /// The member that aborted.
        by: usize,
        /// Why.
        reason: String,
    },
    /// A buffer passed to a collective does not fit.
    #[error("{op}: buffers of {found} values, expected {expected} (the same length on every rank)")]
    Length {
        /// The collective.
        op: &'static str,
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// Data loading failed.
    #[error(transparent)]
    Data(Box<dl4rs_data::DataError>),
    /// The network failed outside a round (broadcast, parameter copies).
    #[error(transparent)]
    Nn(Box<dl4rs_nn::NnError>),
    /// An array operation failed.
    #[error(transparent)]
    Array(Box<dl4rs_array::ArrayError>),
}

// Boxed: the network's error is large, and every collective returns this type.
impl From<dl4rs_nn::NnError> for DistributedError {
    fn from(e: dl4rs_nn::NnError) -> Self {
        DistributedError::Nn(Box::new(e))
    }
}

impl From<dl4rs_data::DataError> for DistributedError {
    fn from(e: dl4rs_data::DataError) -> Self {
        DistributedError::Data(Box::new(e))
    }
}

impl From<dl4rs_array::ArrayError> for DistributedError {
    fn from(e: dl4rs_array::ArrayError) -> Self {
        DistributedError::Array(Box::new(e))
    }
}
