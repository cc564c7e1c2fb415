//! A batch on its way to a trainer, and its preparation there before the gradient.
//!
//! **Rows are gathered by their trainer.** An in-memory source hands out which rows make a
//! batch (`Lazy::Rows`); each trainer gathers its own into its workspace `PW_BATCH`,
//! all at the same time. On W1 the coordinator's two gathers, one after the other, were most
//! of what the trainers waited for between rounds.
//!
//! **A batch in the source's memory is copied first.** A prefetch ring keeps a batch valid
//! only until the consumer's next `next()`, and a source that allocates in the current
//! workspace makes it in the coordinator's, whose cycle ends after the hand-out. So the
//! trainer copies such a batch into `PW_BATCH` (learned like any workspace) and counts it
//! copied before the coordinator goes on: the source's memory is never read after its
//! contract ends, and the copy lives in memory nobody else reuses. A batch on the heap is
//! read where it is.
//!
//! **Rows can be gathered by another trainer.** One waiting at a barrier for a trainer still
//! on its round gathers that trainer's next rows for it ([`gather_for_another`]), onto the
//! heap (the waiting trainer's workspaces are its own), into the other's inbox: a batch-sized
//! data set made by the first such gather and reused by every later one.

use dl4rs_array::DataType;
use dl4rs_data::{DataSet, MultiDataSet, RowBatch};
use dl4rs_memory::{
    WorkspaceConfig, WorkspaceScope, get_and_activate_workspace, scope_out_of_workspaces,
};
use dl4rs_nn::{Model, NnError};

use crate::mailbox::Inbox;
use crate::rendezvous::Signal;

/// The id of the workspace a trainer copies its batch into.
pub const BATCH_WORKSPACE: &str = "PW_BATCH";

/// A batch on its way to a trainer.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Batch<T: DataType> {
    Single(DataSet<T>),
    Multi(MultiDataSet<T>),
    /// Rows the trainer gathers itself (`Lazy::Rows`).
    Rows(RowBatch<DataSet<T>>),
    MultiRows(RowBatch<MultiDataSet<T>>),
}

impl<T: DataType> Batch<T> {
    /// Whether the batch stays valid for as long as it is held, wherever the source puts its
    /// next one: rows to gather, or every array on the heap. Otherwise (a ring slot, the
    /// coordinator's workspace) its trainer copies it first.
    pub(crate) fn outlives_the_source(&self) -> bool {
        match self {
            Batch::Single(d) => d.is_held_by(None),
            Batch::Multi(d) => d.is_held_by(None),
            Batch::Rows(_) | Batch::MultiRows(_) => true,
        }
    }

    /// Whether the trainer copies or gathers it before its gradient (told to copy it, or
    /// rows to gather).
    pub(crate) fn needs_preparing(&self, copy: bool) -> bool {
        copy || matches!(self, Batch::Rows(_) | Batch::MultiRows(_))
    }

    /// Its examples (`None` for a multi data set whose arrays disagree).
    pub(crate) fn examples(&self) -> Option<usize> {
        match self {
            Batch::Single(d) => Some(d.num_examples()),
            Batch::Multi(d) => d.num_examples().ok(),
            Batch::Rows(r) => Some(r.num_examples()),
            Batch::MultiRows(r) => Some(r.num_examples()),
        }
    }

    pub(crate) fn copy(self, into_workspace: bool) -> Result<Batch<T>, NnError> {
        Ok(match (self, into_workspace) {
            (Batch::Single(d), true) => Batch::Single(d.migrate()?),
            (Batch::Single(d), false) => Batch::Single(d.detach()?),
            (Batch::Multi(d), true) => Batch::Multi(d.migrate()?),
            (Batch::Multi(d), false) => Batch::Multi(d.detach()?),
            (Batch::Rows(r), _) => Batch::Single(r.gather()?),
            (Batch::MultiRows(r), _) => Batch::Multi(r.gather()?),
        })
    }

    pub(crate) fn gradient(&self, m: &mut dyn Model<T>) -> Result<(f64, usize), NnError> {
        Ok(match self {
            Batch::Single(d) => (m.compute_gradient_data_set(d)?, d.num_examples()),
            Batch::Multi(d) => (m.compute_gradient_multi(d)?, d.num_examples()?),
            Batch::Rows(r) => (m.compute_gradient_data_set(&r.gather()?)?, r.num_examples()),
            Batch::MultiRows(r) => (m.compute_gradient_multi(&r.gather()?)?, r.num_examples()),
        })
    }
}

/// A batch ready to train on (copied or gathered, see the module's notes) and the
/// `PW_BATCH` scope it lives in, open until its gradient is computed.
pub(crate) struct Ready<T: DataType> {
    // Declared first: dropped before the scope it lives in.
    pub batch: Batch<T>,
    pub scope: Option<WorkspaceScope>,
    /// Gathered by another trainer into this one's inbox (which it goes back to).
    pub delivered: bool,
}

/// Another trainer's rows (`batch`, rows of an in-memory source) gathered onto the heap:
/// into one of its inboxes (an earlier such batch of theirs, overwritten: nothing is
/// allocated), or, the first time, into new arrays, with a copy of them as its second
/// inbox (`Some`).
pub(crate) fn gather_for_another<T: DataType>(
    batch: Batch<T>,
    inbox: Inbox<T>,
) -> Result<(Batch<T>, Option<Batch<T>>), NnError> {
    Ok(match (batch, inbox) {
        (Batch::Rows(r), Inbox::Reuse(Batch::Single(mut d))) => {
            r.gather_into(&mut d)?;
            (Batch::Single(d), None)
        }
        (Batch::MultiRows(r), Inbox::Reuse(Batch::Multi(mut d))) => {
            r.gather_into(&mut d)?;
            (Batch::Multi(d), None)
        }
        (batch, _) => {
            // New arrays, on the heap whatever workspace this trainer has open.
            let _heap = scope_out_of_workspaces();
            let spare = match &batch {
                Batch::Rows(r) => Some(Batch::Single(r.gather()?)),
                Batch::MultiRows(r) => Some(Batch::Multi(r.gather()?)),
                _ => None,
            };
            (batch.copy(false)?, spare)
        }
    })
}

/// The batch ready to train on: copied into `PW_BATCH` when told to (and counted in
/// `copied`: the coordinator may take the source's next one), rows gathered there (onto the
/// heap with workspaces off), a batch on the heap as it is.
pub(crate) fn prepare<T: DataType>(
    batch: Batch<T>,
    copy: bool,
    workspaces: bool,
    copied: &Signal,
    config: &WorkspaceConfig,
) -> Result<Ready<T>, NnError> {
    if !batch.needs_preparing(copy) {
        return Ok(Ready {
            batch,
            scope: None,
            delivered: false,
        });
    }
    let scope = if workspaces {
        Some(get_and_activate_workspace(config, BATCH_WORKSPACE)?)
    } else {
        None
    };
    let batch = batch.copy(workspaces)?;
    if copy {
        // The source's batch is dropped: the coordinator may take the next one.
        copied.add(1);
    }
    Ok(Ready {
        batch,
        scope,
        delivered: false,
    })
}
