//! The backward pass: vertices in reverse order, each vertex's input gradients created in the
//! pool workspace the schedule gives it and added into the epsilon of a vertex that already has
//! one; a pool workspace closes once every epsilon in it has been consumed.

use dl4rs_array::ops::{self, BinaryOp};
use dl4rs_array::{ArrayView, AsView, AsViewMut, DataType};
use dl4rs_memory::WorkspaceScope;

use super::{Batch, Engine, MaskSrc, Op, validate};
use crate::error::NnError;
use crate::layers::{Epsilon, LayerInput, Saved};
use crate::model::workspaces::{MAX_POOL, NetWorkspaces, Src};
use crate::vertex::{self, VertexInputs};
use crate::workspace_mgr::ArrayType;

impl<T: DataType> Engine<T> {
    pub(super) fn backward(&mut self, batch: &Batch<'_, T>) -> Result<(), NnError> {
        let enabled = self.training_enabled();
        let rows = self.check_inputs(&batch.features)?;
        let mut scopes: [Option<WorkspaceScope>; MAX_POOL] = std::array::from_fn(|_| None);
        for v in (0..self.ops.len()).rev() {
            if !self.grad_needed[v] {
                // Nothing at or before this vertex learns: no gradient to compute or pass.
                continue;
            }
            let mut ctx = self.ctx(true, self.meta[v].layer_index, rows);
            let output_index = self.outputs.iter().position(|&o| o == v);
            let my_eps = self.eps[v].take();
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
                sink,
                eps,
                grad_needed,
                ..
            } = self;
            let node = &meta[v];
            let slot = schedule.bp_slot[v];
            let mgr = match (enabled, slot) {
                (false, _) => &ws.none,
                (true, Some(k)) => {
                    scopes[k] = None;
                    scopes[k] = Some(NetWorkspaces::scope(&ws.pool[k])?);
                    &ws.backprop[k]
                }
                (true, None) => &ws.train,
            };
            let _working = if enabled {
                Some(NetWorkspaces::scope(&ws.working)?)
            } else {
                None
            };
            let epsilon = match (output_index, &my_eps) {
                (Some(k), _) => Epsilon::Labels {
                    labels: batch
                        .labels
                        .get(k)
                        .ok_or_else(|| NnError::Input("missing labels".into()))?,
                    mask: batch.labels_masks.get(k),
                },
                (None, Some(e)) => Epsilon::Gradient(e.view()),
                (None, None) => {
                    return Err(NnError::config(format!(
                        "vertex \"{}\" received no gradient during backprop (a vertex that \
                         feeds it returned none)",
                        node.name
                    )));
                }
            };
            let source_mask = |s: Src| match s {
                Src::Input(k) => MaskSrc::Input(k),
                Src::Node(u) => mask_src[u],
            };
            let mask_of = |m: MaskSrc| -> Option<ArrayView<'_, T>> {
                match m {
                    MaskSrc::None => None,
                    MaskSrc::Input(k) => batch.features_masks.get(k),
                    MaskSrc::Node(u) => masks[u].as_ref().map(AsView::view),
                }
            };
            let get = |i: usize| -> Result<LayerInput<'_, T>, NnError> {
                let src = node.inputs[i];
                let activations = match src {
                    Src::Input(k) => batch.features.get(k),
                    Src::Node(u) => acts[u].as_ref().map(AsView::view),
                }
                .ok_or_else(|| NnError::config("backprop: an input is missing"))?;
                Ok(LayerInput {
                    activations,
                    mask: mask_of(source_mask(src)),
                })
            };
            let output = acts[v]
                .as_ref()
                .ok_or_else(|| NnError::config("backprop: an activation is missing"))?
                .view();
            match &ops[v] {
                Op::Layer(layer) => {
                    let input = get(0)?;
                    ctx.need_input_gradient =
                        matches!(node.inputs[0], Src::Node(u) if grad_needed[u]);
                    let saved = Saved {
                        input: input.activations,
                        mask: input.mask,
                        output,
                        cache: caches[v].as_ref().map(AsView::view),
                    };
                    let params =
                        store
                            .params
                            .view()
                            .slice_axis(0, node.params.start, node.params.end, 1)?;
                    let mut grads = store.grads.view_mut().slice_axis(
                        0,
                        node.params.start,
                        node.params.end,
                        1,
                    )?;
                    sink[0] = layer.backward(&saved, epsilon, &params, &mut grads, &ctx, mgr)?;
                }
                Op::Vertex(conf) => {
                    if slot.is_some() {
                        let eps_view = match epsilon {
                            Epsilon::Gradient(g) => g,
                            Epsilon::Labels { .. } => {
                                return Err(NnError::config(format!(
                                    "output vertex \"{}\" ({}) has no loss: make the graph's \
                                     outputs output or loss layers to train it",
                                    node.name,
                                    conf.kind()
                                )));
                            }
                        };
                        let inputs = VertexInputs {
                            len: node.inputs.len(),
                            get: &get,
                        };
                        vertex::backward(conf, &inputs, &output, &eps_view, sink, mgr)?;
                    }
                }
            }
            for (i, src) in node.inputs.iter().enumerate() {
                let Some(g) = sink[i].take() else { continue };
                let Src::Node(u) = *src else { continue };
                if !grad_needed[u] {
                    continue;
                }
                validate(
                    "Backprop",
                    mgr,
                    ArrayType::ActivationGrad,
                    v,
                    node,
                    &ops[v],
                    &g,
                )?;
                if schedule.bp_first[v][i] {
                    eps[u] = Some(g);
                } else if let Some(e) = eps[u].as_mut() {
                    ops::binary_assign(BinaryOp::Add, e, &g)?;
                }
            }
            drop(my_eps);
            if enabled {
                for &k in &schedule.bp_close[v] {
                    scopes[k] = None;
                }
            }
        }
        drop(scopes);
        Ok(())
    }
}
