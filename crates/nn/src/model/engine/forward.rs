//! The forward pass: every vertex in execution order, each in the workspace its pass puts it
//! in (the all-layers workspace in training, the liveness pool at inference, detached for
//! feed-forward), with its inputs' masks, validated after each call.

use dl4rs_array::{ArrayView, AsView, DataType};
use dl4rs_memory::WorkspaceScope;

use super::{Arrays, Engine, MaskSrc, Masks, Op, Pass, validate};
use crate::error::NnError;
use crate::layers::{LayerInput, MaskOut};
use crate::model::workspaces::{MAX_POOL, NetWorkspaces, Src};
use crate::vertex::{self, VertexInputs};
use crate::workspace_mgr::ArrayType;

impl<T: DataType> Engine<T> {
    /// Runs the forward pass; activations end in `self.acts` (in the pool ones are dropped
    /// after their last consumer, so only outputs remain).
    pub fn forward(
        &mut self,
        x: &Arrays<'_, T>,
        x_masks: &Masks<'_, T>,
        pass: Pass,
        training: bool,
    ) -> Result<(), NnError> {
        let batch = self.check_inputs(x)?;
        let enabled = match pass {
            Pass::Train => self.training_enabled(),
            _ => self.inference_enabled(),
        };
        let mut scopes: [Option<WorkspaceScope>; MAX_POOL] = std::array::from_fn(|_| None);
        let mut mask_scope: Option<WorkspaceScope> = None;
        for v in 0..self.ops.len() {
            let ctx = self.ctx(training, self.meta[v].layer_index, batch);
            let Engine {
                ops,
                meta,
                acts,
                caches,
                masks,
                mask_src,
                ws,
                schedule,
                store,
                ..
            } = self;
            let slot = schedule.infer_slot[v];
            let mgr = match (enabled, pass) {
                (false, _) => &ws.none,
                (true, Pass::Train) => &ws.train,
                (true, Pass::Detached) => &ws.infer_last,
                (true, Pass::Infer { into_user }) => match slot {
                    Some(k) => {
                        scopes[k] = None;
                        scopes[k] = Some(NetWorkspaces::scope(&ws.pool[k])?);
                        &ws.infer[k]
                    }
                    None if into_user => match &ws.infer_user {
                        Some((_, m)) => m,
                        None => &ws.infer_last,
                    },
                    None => &ws.infer_last,
                },
            };
            let _working = if enabled {
                Some(NetWorkspaces::scope(&ws.working)?)
            } else {
                None
            };
            let node = &meta[v];
            let source_mask = |s: Src| match s {
                Src::Input(k) => MaskSrc::Input(k),
                Src::Node(u) => mask_src[u],
            };
            let mask_of = |m: MaskSrc| -> Option<ArrayView<'_, T>> {
                match m {
                    MaskSrc::None => None,
                    MaskSrc::Input(k) => x_masks.get(k),
                    MaskSrc::Node(u) => masks[u].as_ref().map(AsView::view),
                }
            };
            let get = |i: usize| -> Result<LayerInput<'_, T>, NnError> {
                let src = node.inputs[i];
                let activations = match src {
                    Src::Input(k) => x.get(k),
                    Src::Node(u) => acts[u].as_ref().map(AsView::view),
                }
                .ok_or_else(|| {
                    NnError::config(format!(
                        "vertex \"{}\": input {i} was not computed (internal order error)",
                        node.name
                    ))
                })?;
                Ok(LayerInput {
                    activations,
                    mask: mask_of(source_mask(src)),
                })
            };
            let in_mask = source_mask(node.inputs[0]);
            let (out, cache, mask) = match &mut ops[v] {
                Op::Layer(layer) => {
                    let input = get(0)?;
                    let info = layer.info();
                    if !info.input_type.matches(input.activations.shape()) {
                        return Err(NnError::Layer {
                            index: node.layer_index,
                            kind: info.kind,
                            name: format!(" \"{}\"", node.name),
                            message: format!(
                                "expected input of shape {} ({}), found {:?}",
                                info.input_type.shape_text(),
                                info.input_type,
                                input.activations.shape()
                            ),
                        });
                    }
                    let params =
                        store
                            .params
                            .view()
                            .slice_axis(0, node.params.start, node.params.end, 1)?;
                    let f = layer.forward(&input, &params, &ctx, mgr)?;
                    (f.activations, f.cache, f.mask)
                }
                Op::Vertex(conf) => {
                    let inputs = VertexInputs {
                        len: node.inputs.len(),
                        get: &get,
                    };
                    let out = vertex::forward(conf, &inputs, &ctx, mgr)?;
                    (out.activations, None, out.mask)
                }
            };
            let op_name = match pass {
                Pass::Train => "Feed forward to layer (training)",
                Pass::Infer { .. } => "Output of layer (inference)",
                Pass::Detached => "Feed forward to layer (inference)",
            };
            validate(op_name, mgr, ArrayType::Activations, v, node, &ops[v], &out)?;
            acts[v] = Some(out);
            caches[v] = cache;
            mask_src[v] = match mask {
                MaskOut::Same => in_mask,
                MaskOut::Cleared => MaskSrc::None,
                MaskOut::New(m) => {
                    let m = if enabled && slot.is_some() && matches!(pass, Pass::Infer { .. }) {
                        if mask_scope.is_none() {
                            mask_scope = Some(NetWorkspaces::scope(&ws.masks)?);
                        }
                        ws.mask_mgr.leverage_to(ArrayType::Activations, m)?
                    } else {
                        m
                    };
                    masks[v] = Some(m);
                    MaskSrc::Node(v)
                }
            };
            if matches!(pass, Pass::Infer { .. }) {
                for &(k, u) in &schedule.infer_close[v] {
                    acts[u] = None;
                    if enabled {
                        scopes[k] = None;
                    }
                }
            }
        }
        if matches!(pass, Pass::Infer { .. }) {
            // Masks made at inference are dropped with their workspace's cycle.
            for m in &mut self.masks {
                *m = None;
            }
            drop(mask_scope);
        }
        drop(scopes);
        Ok(())
    }
}
