//! `LayerWorkspaceMgr`: which workspace each kind of array a layer creates goes to. Layers ask
//! for arrays by [`ArrayType`] and never name workspaces, so the same layer code places its
//! activations in the all-layers workspace while training, in a ping-pong workspace during
//! inference, and on the heap with workspaces off (DL4J's design since 1.0.0-beta, §2.3 of the
//! reference). The network builds the managers; this module owns the routing and the
//! validation of where a returned array lives.

use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_memory::{
    WorkspaceConfig, WorkspaceScope, check_if_workspace_exists_and_active,
    get_workspace_for_current_thread, scope_out_of_workspaces,
};
use serde::{Deserialize, Serialize};

use crate::error::NnError;

/// The kinds of arrays layers create (all nine of DL4J's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArrayType {
    /// A layer's input, kept for backprop.
    Input,
    /// A layer's output activations.
    Activations,
    /// Activation gradients ("epsilons") returned by backprop.
    ActivationGrad,
    /// Forward-pass scratch, invalid once the layer's forward method returns.
    FfWorkingMem,
    /// Backprop scratch, invalid once backprop returns.
    BpWorkingMem,
    /// Scratch for one RNN time step, forward.
    RnnFfLoopWorkingMem,
    /// Scratch for one RNN time step, backward.
    RnnBpLoopWorkingMem,
    /// Updater scratch.
    UpdaterWorkingMem,
    /// Forward values kept for backprop (pre-activations).
    FfCache,
}

impl ArrayType {
    /// Every array type.
    pub const ALL: [ArrayType; 9] = [
        ArrayType::Input,
        ArrayType::Activations,
        ArrayType::ActivationGrad,
        ArrayType::FfWorkingMem,
        ArrayType::BpWorkingMem,
        ArrayType::RnnFfLoopWorkingMem,
        ArrayType::RnnBpLoopWorkingMem,
        ArrayType::UpdaterWorkingMem,
        ArrayType::FfCache,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Unset,
    ScopedOut,
    Workspace { id: String, config: WorkspaceConfig },
}

/// Routes each [`ArrayType`] to a workspace (or to the heap).
///
/// ```
/// use dl4rs_nn::{ArrayType, LayerWorkspaceMgr};
/// use dl4rs_memory::WorkspaceConfig;
///
/// let mgr = LayerWorkspaceMgr::builder()
///     .with(ArrayType::Activations, "ACT", WorkspaceConfig::default())
///     .default_no_workspace()
///     .build()
///     .unwrap();
/// let _act = mgr.notify_scope_entered(ArrayType::Activations).unwrap();
/// let a = mgr.create::<f32>(ArrayType::Activations, &[2, 3]).unwrap();
/// assert_eq!(a.workspace_id(), Some("ACT"));
/// let g = mgr.create::<f32>(ArrayType::BpWorkingMem, &[2, 3]).unwrap();
/// assert!(!g.is_attached()); // scoped out: heap
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWorkspaceMgr {
    slots: [Slot; 9],
}

/// Builder for [`LayerWorkspaceMgr`].
#[derive(Debug, Clone)]
pub struct LayerWorkspaceMgrBuilder {
    slots: [Slot; 9],
}

impl LayerWorkspaceMgrBuilder {
    /// Routes `ty` to the workspace `id` with `config`.
    pub fn with(mut self, ty: ArrayType, id: &str, config: WorkspaceConfig) -> Self {
        self.slots[ty.index()] = Slot::Workspace {
            id: id.to_string(),
            config,
        };
        self
    }

    /// Routes `ty` to the heap.
    pub fn no_workspace_for(mut self, ty: ArrayType) -> Self {
        self.slots[ty.index()] = Slot::ScopedOut;
        self
    }

    /// Routes every type not yet configured to the workspace `id`.
    pub fn default_workspace(mut self, id: &str, config: WorkspaceConfig) -> Self {
        for slot in &mut self.slots {
            if *slot == Slot::Unset {
                *slot = Slot::Workspace {
                    id: id.to_string(),
                    config: config.clone(),
                };
            }
        }
        self
    }

    /// Routes every type not yet configured to the heap.
    pub fn default_no_workspace(mut self) -> Self {
        for slot in &mut self.slots {
            if *slot == Slot::Unset {
                *slot = Slot::ScopedOut;
            }
        }
        self
    }

    /// The manager. Types left unconfigured are an error when used.
    pub fn build(self) -> Result<LayerWorkspaceMgr, NnError> {
        for slot in &self.slots {
            if let Slot::Workspace { config, .. } = slot {
                config.validate()?;
            }
        }
        Ok(LayerWorkspaceMgr { slots: self.slots })
    }
}

impl LayerWorkspaceMgr {
    /// A builder with every type unconfigured.
    pub fn builder() -> LayerWorkspaceMgrBuilder {
        LayerWorkspaceMgrBuilder {
            slots: std::array::from_fn(|_| Slot::Unset),
        }
    }

    /// Every type on the heap (for running a layer outside a network).
    pub fn no_workspaces() -> LayerWorkspaceMgr {
        LayerWorkspaceMgr {
            slots: std::array::from_fn(|_| Slot::ScopedOut),
        }
    }

    /// Routes `ty` to the workspace `id` (replacing its previous route).
    pub fn set_workspace(&mut self, ty: ArrayType, id: &str, config: WorkspaceConfig) {
        self.slots[ty.index()] = Slot::Workspace {
            id: id.to_string(),
            config,
        };
    }

    /// Routes `ty` to the heap.
    pub fn set_scoped_out(&mut self, ty: ArrayType) {
        self.slots[ty.index()] = Slot::ScopedOut;
    }

    /// Whether `ty` goes to the heap.
    pub fn is_scoped_out(&self, ty: ArrayType) -> bool {
        self.slots[ty.index()] == Slot::ScopedOut
    }

    /// The workspace id `ty` goes to, if any.
    pub fn workspace_name(&self, ty: ArrayType) -> Option<&str> {
        match &self.slots[ty.index()] {
            Slot::Workspace { id, .. } => Some(id),
            _ => None,
        }
    }

    fn unset(ty: ArrayType) -> NnError {
        NnError::config(format!(
            "no workspace configuration has been provided for array type {ty:?}: configure it \
             with LayerWorkspaceMgr::builder().with(..) or no_workspace_for(..)"
        ))
    }

    /// Opens a scope of `ty`'s workspace (a scope-out scope when `ty` goes to the heap).
    pub fn notify_scope_entered(&self, ty: ArrayType) -> Result<WorkspaceScope, NnError> {
        match &self.slots[ty.index()] {
            Slot::Unset => Err(Self::unset(ty)),
            Slot::ScopedOut => Ok(scope_out_of_workspaces()),
            Slot::Workspace { id, config } => {
                Ok(get_workspace_for_current_thread(config, id)?.notify_scope_entered()?)
            }
        }
    }

    /// Whether `ty`'s workspace is open (always true for heap types).
    pub fn is_workspace_open(&self, ty: ArrayType) -> bool {
        match &self.slots[ty.index()] {
            Slot::Unset => false,
            Slot::ScopedOut => true,
            Slot::Workspace { id, .. } => check_if_workspace_exists_and_active(id),
        }
    }

    fn alloc<T: DataType>(
        &self,
        ty: ArrayType,
        shape: &[usize],
        zero: bool,
    ) -> Result<NdArray<T>, NnError> {
        match &self.slots[ty.index()] {
            Slot::Unset => Err(Self::unset(ty)),
            Slot::ScopedOut => Ok(NdArray::zeros_detached(shape)?),
            Slot::Workspace { id, config } => {
                let ws = get_workspace_for_current_thread(config, id)?;
                Ok(if zero {
                    NdArray::zeros_in(&ws, shape)?
                } else {
                    NdArray::create_uninitialized_in(&ws, shape)?
                })
            }
        }
    }

    /// Zeros of array type `ty` (its workspace must be open).
    pub fn create<T: DataType>(
        &self,
        ty: ArrayType,
        shape: &[usize],
    ) -> Result<NdArray<T>, NnError> {
        self.alloc(ty, shape, true)
    }

    /// An array of type `ty` with unspecified contents: write it fully before reading.
    pub fn create_uninitialized<T: DataType>(
        &self,
        ty: ArrayType,
        shape: &[usize],
    ) -> Result<NdArray<T>, NnError> {
        self.alloc(ty, shape, false)
    }

    /// A copy of `array` as type `ty`.
    pub fn dup<T: DataType>(
        &self,
        ty: ArrayType,
        array: &impl AsView<T>,
    ) -> Result<NdArray<T>, NnError> {
        let view = array.view();
        let mut out = self.create_uninitialized(ty, view.shape())?;
        out.assign(&view)?;
        Ok(out)
    }

    /// Moves `array` to `ty`'s place: detached when `ty` goes to the heap, else copied into
    /// its workspace unless already there (ND4J `leverageTo`).
    pub fn leverage_to<T: DataType>(
        &self,
        ty: ArrayType,
        array: NdArray<T>,
    ) -> Result<NdArray<T>, NnError> {
        match &self.slots[ty.index()] {
            Slot::Unset => Err(Self::unset(ty)),
            Slot::ScopedOut => Ok(array.detach()?),
            Slot::Workspace { id, .. } => Ok(array.leverage_to(id)?),
        }
    }

    /// Checks that `array` lives where `ty` says. `Err((expected, found))` describes a
    /// misplaced array; a detached array in a workspace type is accepted unless
    /// `error_if_detached`.
    pub fn validate_array_location<T: DataType>(
        &self,
        ty: ArrayType,
        array: &NdArray<T>,
        error_if_detached: bool,
    ) -> Result<(), (String, String)> {
        let found = array.workspace_id();
        match (&self.slots[ty.index()], found) {
            (Slot::ScopedOut, Some(ws)) => Err((
                "detached (no workspace)".into(),
                format!("workspace \"{ws}\""),
            )),
            (Slot::Workspace { id, .. }, None) if error_if_detached => {
                Err((format!("workspace \"{id}\""), "detached (heap)".into()))
            }
            (Slot::Workspace { id, .. }, Some(ws)) if ws != id => {
                Err((format!("workspace \"{id}\""), format!("workspace \"{ws}\"")))
            }
            _ => Ok(()),
        }
    }
}
