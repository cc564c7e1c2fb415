//! Property test: random programs of enter / close (in any order) / borrow / scope-out /
//! allocate / write / read / detach / dup / copy / destroy run against a heap-only model.
//! Every read returns exactly the model's values, or, when the model says the array's cycle is
//! over, exactly the catalogued error; placement (attached or not, which workspace) and the
//! current workspace always match the model. Runs under each debug mode too.
//!
//! 2,000 cases by default; `PROPTEST_CASES` overrides (the valgrind run in CI uses fewer).

use dl4rs_memory::*;
use proptest::prelude::*;

const WORKSPACES: usize = 3;
const NAMES: [&str; WORKSPACES] = ["M_LEARN", "M_REALLOC", "M_FIXED"];

fn config(k: usize) -> WorkspaceConfig {
    match k {
        0 => WorkspaceConfig::default(),
        1 => WorkspaceConfig::builder()
            .policy_allocation(AllocationPolicy::Strict)
            .policy_spill(SpillPolicy::Reallocate)
            .build()
            .unwrap(),
        _ => WorkspaceConfig::builder()
            .initial_size(2048)
            .policy_learning(LearningPolicy::None)
            .build()
            .unwrap(),
    }
}

fn handle(k: usize) -> Workspace {
    get_workspace_for_current_thread(&config(k), NAMES[k]).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Enter(usize),
    Close(usize),
    Borrow(usize),
    ScopeOut,
    Alloc(usize, u32),
    Write(usize, u32),
    Read(usize),
    Detach(usize),
    Dup(usize),
    CopyTo(usize, usize),
    Destroy(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..WORKSPACES).prop_map(Op::Enter),
        4 => any::<usize>().prop_map(Op::Close),
        1 => (0..WORKSPACES).prop_map(Op::Borrow),
        1 => Just(Op::ScopeOut),
        6 => (0..300usize, any::<u32>()).prop_map(|(n, v)| Op::Alloc(n, v)),
        3 => (any::<usize>(), any::<u32>()).prop_map(|(h, v)| Op::Write(h, v)),
        5 => any::<usize>().prop_map(Op::Read),
        2 => any::<usize>().prop_map(Op::Detach),
        1 => any::<usize>().prop_map(Op::Dup),
        1 => (any::<usize>(), 0..WORKSPACES).prop_map(|(h, k)| Op::CopyTo(h, k)),
        1 => (0..WORKSPACES).prop_map(Op::Destroy),
    ]
}

fn debug_mode_strategy() -> impl Strategy<Value = DebugMode> {
    prop_oneof![
        6 => Just(DebugMode::Disabled),
        1 => Just(DebugMode::SpillEverything),
        1 => Just(DebugMode::BypassEverything),
        1 => Just(DebugMode::PoisonOnReset),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Enter,
    Reenter,
    Borrow,
    ScopeOut,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    k: usize,
}

/// Where the model says an array lives: the heap, or workspace `k` in a given instance
/// (bumped by destroy) and generation (bumped by each cycle end).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Heap,
    Ws { k: usize, instance: u32, born: u64 },
}

struct Model {
    frames: Vec<Frame>,
    open: [bool; WORKSPACES],
    borrowed: [bool; WORKSPACES],
    generation: [u64; WORKSPACES],
    instance: [u32; WORKSPACES],
    bypass: bool,
}

impl Model {
    fn current(&self) -> Option<usize> {
        match self.frames.last() {
            Some(f) if f.kind != Kind::ScopeOut => Some(f.k),
            _ => None,
        }
    }

    fn place(&self, k: Option<usize>, len: usize) -> Place {
        match k {
            Some(k) if len > 0 && !self.bypass => Place::Ws {
                k,
                instance: self.instance[k],
                born: self.generation[k],
            },
            _ => Place::Heap,
        }
    }

    /// `Ok` if valid; else whether the error is "destroyed" (true) or "stale" (false).
    fn valid(&self, place: Place) -> Result<(), bool> {
        match place {
            Place::Heap => Ok(()),
            Place::Ws { k, instance, born } => {
                if instance != self.instance[k] {
                    Err(true)
                } else if born != self.generation[k] {
                    Err(false)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Closes frame `index`; returns every frame index removed (descending), which for a
    /// cycle end includes the nested frames of that workspace.
    fn close(&mut self, index: usize) -> Vec<usize> {
        let frame = self.frames[index];
        let mut removed: Vec<usize> = if frame.kind == Kind::Enter {
            (0..self.frames.len())
                .filter(|&j| self.frames[j].k == frame.k && self.frames[j].kind != Kind::ScopeOut)
                .collect()
        } else {
            vec![index]
        };
        removed.sort_unstable_by(|a, b| b.cmp(a));
        for &j in &removed {
            self.frames.remove(j);
        }
        match frame.kind {
            Kind::Enter => {
                self.open[frame.k] = false;
                self.borrowed[frame.k] = false;
                self.generation[frame.k] += 1;
            }
            Kind::Borrow => self.borrowed[frame.k] = false,
            Kind::Reenter | Kind::ScopeOut => {}
        }
        removed
    }
}

struct Handle {
    buf: Buffer<u32>,
    place: Place,
    values: Vec<u32>,
}

fn check_placement(h: &Handle) {
    match h.place {
        Place::Heap => assert!(!h.buf.is_attached(), "expected heap: {:?}", h.buf),
        Place::Ws { k, .. } => {
            assert!(h.buf.is_attached(), "expected attached to {}", NAMES[k]);
            assert_eq!(h.buf.workspace_id(), Some(NAMES[k]));
        }
    }
}

fn expect_invalid(err: WorkspaceError, destroyed: bool) {
    if destroyed {
        assert!(
            matches!(err, WorkspaceError::WorkspaceDestroyed { .. }),
            "{err}"
        );
    } else {
        assert!(matches!(err, WorkspaceError::StaleArray { .. }), "{err}");
    }
}

fn run(ops: Vec<Op>, debug: DebugMode) {
    destroy_all_workspaces_for_current_thread();
    set_debug_mode(debug);
    let mut model = Model {
        frames: Vec::new(),
        open: [false; WORKSPACES],
        borrowed: [false; WORKSPACES],
        generation: [0; WORKSPACES],
        instance: [0; WORKSPACES],
        bypass: debug == DebugMode::BypassEverything,
    };
    let mut scopes: Vec<WorkspaceScope> = Vec::new();
    let mut handles: Vec<Handle> = Vec::new();
    let mut nested: Vec<WorkspaceScope> = Vec::new();

    for op in ops {
        match op {
            Op::Enter(k) => {
                let result = handle(k).notify_scope_entered();
                if model.bypass {
                    scopes.push(result.unwrap());
                    model.frames.push(Frame {
                        kind: Kind::ScopeOut,
                        k,
                    });
                } else if model.open[k] {
                    if model.current() == Some(k) {
                        scopes.push(result.unwrap());
                        model.frames.push(Frame {
                            kind: Kind::Reenter,
                            k,
                        });
                    } else {
                        let err = result.unwrap_err();
                        assert!(matches!(err, WorkspaceError::AlreadyOpen { .. }), "{err}");
                    }
                } else {
                    scopes.push(result.unwrap());
                    model.frames.push(Frame {
                        kind: Kind::Enter,
                        k,
                    });
                    model.open[k] = true;
                }
            }
            Op::Close(i) => {
                if model.frames.is_empty() {
                    continue;
                }
                let index = i % model.frames.len();
                let mut closing = None;
                for r in model.close(index) {
                    let scope = scopes.remove(r);
                    if r == index {
                        closing = Some(scope);
                    } else {
                        // A nested frame removed with its cycle: closing it is a no-op, and
                        // it must be one after the cycle ended, so close it last.
                        nested.push(scope);
                    }
                }
                closing.unwrap().close().unwrap();
                for scope in nested.drain(..) {
                    scope.close().unwrap();
                }
            }
            Op::Borrow(k) => {
                let result = handle(k).notify_scope_borrowed();
                if model.bypass {
                    scopes.push(result.unwrap());
                    model.frames.push(Frame {
                        kind: Kind::ScopeOut,
                        k,
                    });
                } else if !model.open[k] {
                    assert!(matches!(result, Err(WorkspaceError::NotOpen { .. })));
                } else if model.borrowed[k] {
                    assert!(matches!(
                        result,
                        Err(WorkspaceError::AlreadyBorrowed { .. })
                    ));
                } else {
                    scopes.push(result.unwrap());
                    model.frames.push(Frame {
                        kind: Kind::Borrow,
                        k,
                    });
                    model.borrowed[k] = true;
                }
            }
            Op::ScopeOut => {
                scopes.push(scope_out_of_workspaces());
                model.frames.push(Frame {
                    kind: Kind::ScopeOut,
                    k: 0,
                });
            }
            Op::Alloc(len, value) => {
                let mut buf = Buffer::<u32>::uninitialized(len).unwrap();
                buf.write().unwrap().fill(value);
                let h = Handle {
                    buf,
                    place: model.place(model.current(), len),
                    values: vec![value; len],
                };
                check_placement(&h);
                handles.push(h);
            }
            Op::Write(i, value) => {
                if handles.is_empty() {
                    continue;
                }
                let i = i % handles.len();
                let valid = model.valid(handles[i].place);
                let h = &mut handles[i];
                match (h.buf.write(), valid) {
                    (Ok(mut data), Ok(())) => {
                        data.fill(value);
                        h.values.fill(value);
                    }
                    (Err(err), Err(destroyed)) => expect_invalid(err, destroyed),
                    (result, expected) => {
                        panic!("write: got ok={}, model {:?}", result.is_ok(), expected)
                    }
                }
            }
            Op::Read(i) => {
                if handles.is_empty() {
                    continue;
                }
                let h = &handles[i % handles.len()];
                match (h.buf.read(), model.valid(h.place)) {
                    (Ok(data), Ok(())) => assert_eq!(&*data, &h.values[..]),
                    (Err(err), Err(destroyed)) => expect_invalid(err, destroyed),
                    (result, expected) => {
                        panic!("read: got ok={}, model {:?}", result.is_ok(), expected)
                    }
                }
            }
            Op::Detach(i) | Op::Dup(i) | Op::CopyTo(i, _) => {
                if handles.is_empty() {
                    continue;
                }
                let h = &handles[i % handles.len()];
                let (result, target) = match op {
                    Op::Detach(_) => (h.buf.detach(), Ok(None)),
                    Op::Dup(_) => (h.buf.dup(), Ok(model.current())),
                    Op::CopyTo(_, k) => (
                        h.buf.copy_to(&handle(k)),
                        if model.bypass || model.open[k] {
                            Ok(Some(k))
                        } else {
                            Err(())
                        },
                    ),
                    _ => unreachable!(),
                };
                match (result, model.valid(h.place), target) {
                    (Ok(buf), Ok(()), Ok(target)) => {
                        let copy = Handle {
                            buf,
                            place: model.place(target, h.values.len()),
                            values: h.values.clone(),
                        };
                        check_placement(&copy);
                        assert_eq!(&*copy.buf.read().unwrap(), &copy.values[..]);
                        handles.push(copy);
                    }
                    (Err(err), Err(destroyed), _) => expect_invalid(err, destroyed),
                    (Err(err), Ok(()), Err(())) => {
                        assert!(matches!(err, WorkspaceError::NotOpen { .. }), "{err}")
                    }
                    (result, valid, target) => panic!(
                        "copy: got ok={}, model valid {valid:?}, target {target:?}",
                        result.is_ok()
                    ),
                }
            }
            Op::Destroy(k) => {
                handle(k).destroy().unwrap();
                model.instance[k] += 1;
                model.generation[k] = 0;
                model.open[k] = false;
                model.borrowed[k] = false;
                let mut i = 0;
                while i < model.frames.len() {
                    if model.frames[i].k == k && model.frames[i].kind != Kind::ScopeOut {
                        model.frames.remove(i);
                        drop(scopes.remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
        }
        assert_eq!(
            current_workspace().map(|w| w.id().to_string()),
            model
                .current()
                .filter(|_| !model.bypass)
                .map(|k| NAMES[k].to_string()),
            "current workspace"
        );
    }
    while let Some(scope) = scopes.pop() {
        drop(scope);
    }
    assert!(current_workspace().is_none());
    set_debug_mode(DebugMode::Disabled);
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn workspace_matches_heap_model(
        ops in proptest::collection::vec(op(), 1..80),
        debug in debug_mode_strategy(),
    ) {
        run(ops, debug);
    }
}
