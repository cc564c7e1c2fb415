//! Where a network's arrays live, as DL4J lays it out (reference §2.4–2.6), for every network
//! shape:
//!
//! * **training forward**: the inputs, every vertex's activations and forward caches live in
//!   the all-layers-activations workspace for one iteration; each vertex call gets a fresh cycle
//!   of the layer-working-memory workspace for its scratch;
//! * **backprop**: activation gradients go to a pool of workspaces (`WS_LAYER_ACT_k`); a pool
//!   workspace is opened for a vertex's backward call and closed as soon as every gradient it
//!   holds has been consumed, so a chain ping-pongs between two and a graph holds only the
//!   gradients still waiting for their consumer;
//! * **inference**: activations go to the same pool, each closed after its last consumer has
//!   run (DL4J's `vertexOutputsFullyConsumedByStep`), so a residual chain of any depth holds
//!   about three activations; outputs are detached or placed in the caller's workspace.
//!
//! The pool schedule is computed once per network ([`Schedule`]) from the execution order, so
//! a step just follows it. Workspace ids carry a per-network number, so two networks on one
//! thread never share a workspace.

use std::sync::atomic::{AtomicU64, Ordering};

use dl4rs_memory::{
    AllocationPolicy, LearningPolicy, SpillPolicy, WorkspaceConfig, WorkspaceScope,
};

use crate::error::NnError;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr, LayerWorkspaceMgrBuilder};

static NETWORK_IDS: AtomicU64 = AtomicU64::new(1);

/// The most pool workspaces open at once; a schedule that needs more is an error at build
/// time (it would take a graph with more than this many activations alive at one step).
pub(crate) const MAX_POOL: usize = 64;

fn ws_config(overallocation: f64, learning: LearningPolicy, cycles: u32) -> WorkspaceConfig {
    WorkspaceConfig {
        overallocation_limit: overallocation,
        policy_learning: learning,
        cycles_before_initialization: cycles,
        policy_spill: SpillPolicy::Reallocate,
        policy_allocation: AllocationPolicy::Overallocate,
        ..WorkspaceConfig::default()
    }
}

/// Where a vertex reads from (graph input `k` or vertex `v` in execution order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    Input(usize),
    Node(usize),
}

/// The pool schedule for inference and backprop.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    /// Inference: the pool workspace of each vertex's output (`None`: an output, detached).
    pub infer_slot: Vec<Option<usize>>,
    /// Inference: `(pool workspace, vertex)` to close after each vertex (the vertex whose
    /// output it held).
    pub infer_close: Vec<Vec<(usize, usize)>>,
    /// Backprop: the pool workspace each vertex's input gradients are created in.
    pub bp_slot: Vec<Option<usize>>,
    /// Backprop: per input position, whether its gradient starts the consumer's epsilon
    /// (else it is added to the one already there).
    pub bp_first: Vec<Vec<bool>>,
    /// Backprop: pool workspaces to close after each vertex's backward call.
    pub bp_close: Vec<Vec<usize>>,
    /// Pool workspaces needed.
    pub slots: usize,
    /// Inference: the most pool workspaces open at once.
    pub infer_peak: usize,
}

struct Pool {
    free: Vec<usize>,
    count: usize,
    open: usize,
    peak: usize,
}

impl Pool {
    fn take(&mut self) -> usize {
        self.open += 1;
        self.peak = self.peak.max(self.open);
        self.free.pop().unwrap_or_else(|| {
            self.count += 1;
            self.count - 1
        })
    }
    fn give(&mut self, slot: usize) {
        self.open -= 1;
        self.free.push(slot);
    }
}

impl Schedule {
    /// The schedule for vertices (in execution order) reading `inputs`, with `outputs`.
    /// `grad_needed[v]`: whether vertex `v`'s output needs a gradient (it or a vertex before
    /// it has parameters); backprop stops where nothing upstream learns.
    pub fn new(
        inputs: &[Vec<Src>],
        outputs: &[usize],
        grad_needed: &[bool],
    ) -> Result<Schedule, NnError> {
        let n = inputs.len();
        let mut last_use = vec![None; n];
        for (v, ins) in inputs.iter().enumerate() {
            for s in ins {
                if let Src::Node(u) = *s {
                    last_use[u] = Some(v);
                }
            }
        }
        let mut s = Schedule {
            infer_slot: vec![None; n],
            infer_close: vec![Vec::new(); n],
            bp_slot: vec![None; n],
            bp_first: inputs.iter().map(|i| vec![false; i.len()]).collect(),
            bp_close: vec![Vec::new(); n],
            ..Schedule::default()
        };
        // Inference: a vertex's output takes a pool workspace until its last consumer ran.
        let mut pool = Pool {
            free: Vec::new(),
            count: 0,
            open: 0,
            peak: 0,
        };
        for (v, ins) in inputs.iter().enumerate() {
            if !outputs.contains(&v) {
                s.infer_slot[v] = Some(pool.take());
            }
            for (i, src) in ins.iter().enumerate() {
                if let Src::Node(u) = *src
                    && last_use[u] == Some(v)
                    && !ins[..i].contains(src)
                    && let Some(slot) = s.infer_slot[u]
                {
                    s.infer_close[v].push((slot, u));
                    pool.give(slot);
                }
            }
        }
        s.infer_peak = pool.peak;
        let infer_count = pool.count;
        // Backprop: a vertex's input gradients take a pool workspace until every epsilon in
        // it has been consumed. Inputs that need no gradient are like network inputs.
        let inputs: Vec<Vec<Src>> = inputs
            .iter()
            .map(|ins| {
                ins.iter()
                    .map(|s| match *s {
                        Src::Node(u) if !grad_needed[u] => Src::Input(usize::MAX),
                        other => other,
                    })
                    .collect()
            })
            .collect();
        let mut pool = Pool {
            free: Vec::new(),
            count: 0,
            open: 0,
            peak: 0,
        };
        let mut refs = Vec::new();
        let mut eps_slot: Vec<Option<usize>> = vec![None; n];
        for v in (0..n).rev() {
            let produces = inputs[v].iter().any(|x| matches!(x, Src::Node(_)));
            if produces {
                let slot = pool.take();
                if refs.len() <= slot {
                    refs.resize(slot + 1, 0usize);
                }
                s.bp_slot[v] = Some(slot);
                for (i, src) in inputs[v].iter().enumerate() {
                    if let Src::Node(u) = *src
                        && eps_slot[u].is_none()
                    {
                        eps_slot[u] = Some(slot);
                        refs[slot] += 1;
                        s.bp_first[v][i] = true;
                    }
                }
            }
            if let Some(e) = eps_slot[v] {
                refs[e] -= 1;
                if refs[e] == 0 {
                    s.bp_close[v].push(e);
                    pool.give(e);
                }
            }
            if let Some(slot) = s.bp_slot[v]
                && refs[slot] == 0
                && !s.bp_close[v].contains(&slot)
            {
                s.bp_close[v].push(slot);
                pool.give(slot);
            }
        }
        s.slots = infer_count.max(pool.count);
        if s.slots > MAX_POOL {
            return Err(NnError::config(format!(
                "the network would hold {} activation workspaces open at once (at most \
                 {MAX_POOL}): the graph is too wide",
                s.slots
            )));
        }
        Ok(s)
    }
}

/// The workspaces of one network and the managers that route array types to them.
pub(crate) struct NetWorkspaces {
    pub all_act: (String, WorkspaceConfig),
    /// Network outputs during evaluation.
    pub output: (String, WorkspaceConfig),
    pub working: (String, WorkspaceConfig),
    /// Masks made by vertices at inference (outlive the pool workspace of their vertex).
    pub masks: (String, WorkspaceConfig),
    /// One cycle per iteration of a layer's inner loop (a time step, an image): DL4J's
    /// `WS_RNN_LOOP_WORKING_MEM`, for `RnnFfLoopWorkingMem` / `RnnBpLoopWorkingMem`.
    pub rnn_loop: (String, WorkspaceConfig),
    pub pool: Vec<(String, WorkspaceConfig)>,
    /// Forward pass in training: everything kept for backprop in ALL_ACT.
    pub train: LayerWorkspaceMgr,
    /// Backprop: gradients in pool workspace `k`.
    pub backprop: Vec<LayerWorkspaceMgr>,
    /// Inference: activations in pool workspace `k`.
    pub infer: Vec<LayerWorkspaceMgr>,
    /// Inference, outputs: activations detached.
    pub infer_last: LayerWorkspaceMgr,
    /// Inference, outputs into a caller's workspace (cached by id).
    pub infer_user: Option<(String, LayerWorkspaceMgr)>,
    /// Moves masks into the mask workspace.
    pub mask_mgr: LayerWorkspaceMgr,
    /// Workspaces off.
    pub none: LayerWorkspaceMgr,
}

fn with_working(
    b: LayerWorkspaceMgrBuilder,
    working: &(String, WorkspaceConfig),
    rnn_loop: &(String, WorkspaceConfig),
) -> LayerWorkspaceMgrBuilder {
    let b = [ArrayType::FfWorkingMem, ArrayType::BpWorkingMem]
        .into_iter()
        .fold(b, |b, t| b.with(t, &working.0, working.1.clone()));
    [
        ArrayType::RnnFfLoopWorkingMem,
        ArrayType::RnnBpLoopWorkingMem,
    ]
    .into_iter()
    .fold(b, |b, t| b.with(t, &rnn_loop.0, rnn_loop.1.clone()))
}

impl NetWorkspaces {
    /// Workspaces for a network of `vertices` vertices with `slots` pool workspaces.
    pub fn new(vertices: usize, slots: usize) -> Result<Self, NnError> {
        let n = NETWORK_IDS.fetch_add(1, Ordering::Relaxed);
        let count = vertices.max(1) as u32;
        let all_act = (
            format!("WS_ALL_LAYERS_ACT#{n}"),
            ws_config(0.05, LearningPolicy::FirstLoop, 0),
        );
        let output = (format!("WS_OUTPUT_MEM#{n}"), all_act.1.clone());
        let masks = (format!("WS_MASKS#{n}"), all_act.1.clone());
        let working = (
            format!("WS_LAYER_WORKING_MEM#{n}"),
            ws_config(0.02, LearningPolicy::OverTime, 2 * count),
        );
        let rnn_loop = (
            format!("WS_RNN_LOOP_WORKING_MEM#{n}"),
            ws_config(0.05, LearningPolicy::FirstLoop, 0),
        );
        let pool_cfg = ws_config(0.02, LearningPolicy::OverTime, count);
        let pool: Vec<_> = (0..slots)
            .map(|k| (format!("WS_LAYER_ACT_{}#{n}", k + 1), pool_cfg.clone()))
            .collect();
        let train = with_working(LayerWorkspaceMgr::builder(), &working, &rnn_loop)
            .with(ArrayType::Input, &all_act.0, all_act.1.clone())
            .with(ArrayType::Activations, &all_act.0, all_act.1.clone())
            .with(ArrayType::FfCache, &all_act.0, all_act.1.clone())
            .with(ArrayType::UpdaterWorkingMem, &all_act.0, all_act.1.clone())
            .no_workspace_for(ArrayType::ActivationGrad)
            .build()?;
        let backprop = pool
            .iter()
            .map(|(id, cfg)| {
                let mut m = train.clone();
                m.set_workspace(ArrayType::ActivationGrad, id, cfg.clone());
                m
            })
            .collect();
        let infer_base = |activations: Option<&(String, WorkspaceConfig)>| {
            let b = with_working(LayerWorkspaceMgr::builder(), &working, &rnn_loop).with(
                ArrayType::FfCache,
                &working.0,
                working.1.clone(),
            );
            let b = match activations {
                Some((id, cfg)) => b.with(ArrayType::Activations, id, cfg.clone()),
                None => b.no_workspace_for(ArrayType::Activations),
            };
            b.default_no_workspace().build()
        };
        let infer = pool
            .iter()
            .map(|p| infer_base(Some(p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetWorkspaces {
            infer,
            infer_last: infer_base(None)?,
            mask_mgr: infer_base(Some(&masks))?,
            none: LayerWorkspaceMgr::no_workspaces(),
            infer_user: None,
            backprop,
            train,
            output,
            all_act,
            working,
            masks,
            rnn_loop,
            pool,
        })
    }

    pub fn scope(which: &(String, WorkspaceConfig)) -> Result<WorkspaceScope, NnError> {
        Ok(
            dl4rs_memory::get_workspace_for_current_thread(&which.1, &which.0)?
                .notify_scope_entered()?,
        )
    }

    /// Ids of the workspaces (all-layers activations, working memory, loop working memory,
    /// then the pool).
    pub fn ids(&self) -> Vec<&str> {
        let mut ids = vec![
            self.all_act.0.as_str(),
            self.working.0.as_str(),
            self.rnn_loop.0.as_str(),
        ];
        ids.extend(self.pool.iter().map(|p| p.0.as_str()));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Vec<Src>> {
        (0..n)
            .map(|v| {
                if v == 0 {
                    vec![Src::Input(0)]
                } else {
                    vec![Src::Node(v - 1)]
                }
            })
            .collect()
    }

    #[test]
    fn a_chain_ping_pongs() {
        let s = Schedule::new(&chain(6), &[5], &[true; 6]).unwrap();
        assert_eq!(s.slots, 2);
        assert_eq!(
            &s.infer_slot[..5],
            &[Some(0), Some(1), Some(0), Some(1), Some(0)]
        );
        assert_eq!(s.infer_slot[5], None);
        assert_eq!(s.infer_peak, 2);
        // Backprop: vertex 5 makes eps[4] in a slot; eps[v] is released after v ran.
        assert_eq!(s.bp_slot[0], None);
        assert!(s.bp_first.iter().skip(1).all(|f| f == &[true]));
    }

    #[test]
    fn residual_blocks_hold_three() {
        // x -> (d1 -> d2) + x -> ... 10 blocks.
        let mut ins = vec![vec![Src::Input(0)]];
        let mut x = 0;
        for _ in 0..10 {
            let d1 = ins.len();
            ins.push(vec![Src::Node(x)]);
            ins.push(vec![Src::Node(d1)]);
            ins.push(vec![Src::Node(d1 + 1), Src::Node(x)]);
            x = d1 + 2;
        }
        ins.push(vec![Src::Node(x)]);
        let out = ins.len() - 1;
        let s = Schedule::new(&ins, &[out], &vec![true; ins.len()]).unwrap();
        assert_eq!(s.infer_peak, 3);
        assert!(s.slots <= 4, "{}", s.slots);
        // The skip input's gradient is added to the one the branch started.
        let add = 3;
        assert_eq!(s.bp_first[add], vec![true, true]);
        assert_eq!(s.bp_first[1], vec![false]);
    }
}
