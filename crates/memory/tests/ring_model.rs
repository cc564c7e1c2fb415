//! Property test of the cyclic workspace (ring) against a model, with a reader on another
//! thread. Random programs allocate (zeroed, uninitialized or filled; some larger than the
//! ring), end cycles, read, hand arrays to the reader thread, drop them, wrap the ring by
//! filling it, and grow it (destroy and create it again, larger).
//!
//! The model keeps the ring's linear write position: an allocation at linear position `start`
//! is valid until the ring has written past `start + ring size`. Ring slots skipped because
//! the reader thread borrowed them (the only nondeterminism) are observed through
//! `ring_conflicts` and fed back to the model (a skipped allocation lives on the heap and stays
//! valid). On the main thread every read must give exactly the model's answer: the data, or
//! the catalogued error. On the reader thread every successful read must show exactly the
//! array's own values while the main thread keeps writing over the ring, so a slot is never
//! reused under a borrow. With `DebugMode::PoisonOnReset` the uninitialized allocations must
//! read NaN.
//!
//! 300 cases by default; `PROPTEST_CASES` overrides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use dl4rs_memory::*;
use proptest::prelude::*;

const ID: &str = "RING_MODEL";
const ALIGN_BYTES: usize = 64;

fn ring_config(bytes: usize) -> WorkspaceConfig {
    WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(bytes)
        .build()
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Fill {
    Zeros,
    Uninit,
    Value(f32),
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize, Fill),
    Cycle,
    Read(usize),
    Share(usize),
    Drop(usize),
    /// Allocate until the ring wraps once.
    Lap,
    /// Destroy the ring and create it again, larger.
    Grow,
}

fn fill() -> impl Strategy<Value = Fill> {
    prop_oneof![
        1 => Just(Fill::Zeros),
        1 => Just(Fill::Uninit),
        3 => (1u16..1000).prop_map(|v| Fill::Value(f32::from(v))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..700, fill()).prop_map(|(n, f)| Op::Alloc(n, f)),
        3 => Just(Op::Cycle),
        5 => any::<usize>().prop_map(Op::Read),
        4 => any::<usize>().prop_map(Op::Share),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => Just(Op::Lap),
        1 => Just(Op::Grow),
    ]
}

/// Where the model says an array lives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// In the ring of instance `instance`, at linear position `start`.
    Ring { instance: u32, start: u64 },
    /// On the heap (a skipped slot or an oversize allocation), attached to `instance`.
    Spill { instance: u32 },
}

struct Live {
    buf: Arc<Buffer<f32>>,
    place: Place,
    /// The values it must hold while valid (`None`: uninitialized, never written).
    value: Option<f32>,
}

struct Model {
    size: usize,
    instance: u32,
    offset: usize,
    lap_base: u64,
    write_end: u64,
    /// Skipped slots seen, over every instance.
    conflicts: u64,
}

impl Model {
    fn valid(&self, place: Place) -> Result<(), bool> {
        match place {
            Place::Ring { instance, .. } | Place::Spill { instance }
                if instance != self.instance =>
            {
                Err(true)
            }
            Place::Ring { start, .. } if self.write_end > start + self.size as u64 => Err(false),
            _ => Ok(()),
        }
    }

    /// Places an allocation of `bytes` (aligned); `conflict` is what the ring reported.
    fn alloc(&mut self, bytes: usize, conflict: bool) -> Place {
        if bytes > self.size {
            return Place::Spill {
                instance: self.instance,
            };
        }
        if self.offset + bytes > self.size {
            self.lap_base += self.size as u64;
            self.offset = 0;
        }
        let start = self.lap_base + self.offset as u64;
        self.offset += bytes;
        self.write_end = self.write_end.max(start + bytes as u64);
        if conflict {
            self.conflicts += 1;
            Place::Spill {
                instance: self.instance,
            }
        } else {
            Place::Ring {
                instance: self.instance,
                start,
            }
        }
    }
}

fn aligned(len: usize) -> usize {
    (len * 4).div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

type Shared = (Arc<Buffer<f32>>, Option<f32>);

/// The reader thread: keeps the last few arrays it was given and reads them over and over,
/// holding each borrow a little while. Any successful read must show the array's own values.
fn reader(
    rx: mpsc::Receiver<Option<Shared>>,
    failure: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut held: Vec<Shared> = Vec::new();
    let fail = |m: String| {
        failure.lock().unwrap().get_or_insert(m);
    };
    loop {
        loop {
            match rx.try_recv() {
                Ok(Some(item)) => {
                    held.push(item);
                    if held.len() > 6 {
                        held.remove(0);
                    }
                }
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if held.is_empty() {
            std::thread::yield_now();
            continue;
        }
        for (buf, value) in &held {
            match buf.read() {
                Ok(data) => {
                    for _ in 0..2000 {
                        std::hint::spin_loop();
                    }
                    if let Some(v) = value
                        && let Some(bad) = data.iter().find(|&&x| x != *v)
                    {
                        fail(format!(
                            "reader saw {bad} in an array of {v}: memory reused under a borrow"
                        ));
                    }
                }
                Err(
                    WorkspaceError::StaleRingSlot { .. }
                    | WorkspaceError::WorkspaceDestroyed { .. },
                ) => {}
                Err(other) => fail(format!("reader got an unexpected error: {other}")),
            }
        }
    }
}

fn conflicts(ring: &Workspace) -> u64 {
    ring.stats().unwrap().ring_conflicts
}

/// Returns the number of skipped (conflicting) slots seen.
fn run(ops: Vec<Op>, poison: bool) -> u64 {
    destroy_all_workspaces_for_current_thread();
    set_debug_mode(if poison {
        DebugMode::PoisonOnReset
    } else {
        DebugMode::Disabled
    });
    let mut model = Model {
        size: 2048,
        instance: 0,
        offset: 0,
        lap_base: 0,
        write_end: 0,
        conflicts: 0,
    };
    let mut ring = get_workspace_for_current_thread(&ring_config(model.size), ID).unwrap();
    let mut scope = Some(ring.notify_scope_entered().unwrap());
    let mut live: Vec<Live> = Vec::new();

    let (tx, rx) = mpsc::channel();
    let failure = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (failure, stop) = (failure.clone(), stop.clone());
        std::thread::spawn(move || reader(rx, failure, stop))
    };

    let alloc =
        |model: &mut Model, ring: &Workspace, live: &mut Vec<Live>, len: usize, fill: Fill| {
            let before = conflicts(ring);
            let mut buf = match fill {
                Fill::Zeros => Buffer::<f32>::zeros(len).unwrap(),
                _ => Buffer::<f32>::uninitialized(len).unwrap(),
            };
            let conflict = conflicts(ring) > before;
            let place = model.alloc(aligned(len), conflict);
            let value = match fill {
                Fill::Zeros => Some(0.0),
                Fill::Uninit => {
                    if poison && matches!(place, Place::Ring { .. }) {
                        assert!(
                            buf.read().unwrap().iter().all(|v| v.is_nan()),
                            "poisoned ring slot must read NaN"
                        );
                    }
                    None
                }
                Fill::Value(v) => {
                    buf.write().unwrap().fill(v);
                    Some(v)
                }
            };
            assert!(buf.is_attached());
            live.push(Live {
                buf: Arc::new(buf),
                place,
                value,
            });
        };

    for op in ops {
        match op {
            Op::Alloc(len, fill) => alloc(&mut model, &ring, &mut live, len, fill),
            Op::Lap => {
                let target = model.lap_base + model.size as u64;
                let mut guard = 0;
                while model.lap_base < target && guard < 64 {
                    alloc(&mut model, &ring, &mut live, 128, Fill::Value(7.0));
                    guard += 1;
                }
            }
            Op::Cycle => {
                drop(scope.take());
                scope = Some(ring.notify_scope_entered().unwrap());
            }
            Op::Read(i) if !live.is_empty() => {
                let l = &live[i % live.len()];
                match (l.buf.read(), model.valid(l.place)) {
                    (Ok(data), Ok(())) => {
                        if let Some(v) = l.value {
                            assert!(
                                data.iter().all(|&x| x == v),
                                "main thread read changed data"
                            );
                        }
                    }
                    (Err(WorkspaceError::StaleRingSlot { .. }), Err(false)) => {}
                    (Err(WorkspaceError::WorkspaceDestroyed { .. }), Err(true)) => {}
                    (got, want) => panic!(
                        "read of {:?}: got {:?}, model says {want:?}",
                        l.place,
                        got.map(|d| d.len())
                    ),
                }
                assert_eq!(l.buf.is_valid(), model.valid(l.place).is_ok());
            }
            Op::Share(i) if !live.is_empty() => {
                // usize::MAX: the newest array.
                let l = if i == usize::MAX {
                    &live[live.len() - 1]
                } else {
                    &live[i % live.len()]
                };
                tx.send(Some((l.buf.clone(), l.value))).unwrap();
            }
            Op::Drop(i) if !live.is_empty() => {
                live.remove(i % live.len());
            }
            Op::Grow => {
                drop(scope.take());
                ring.destroy().unwrap();
                model.instance += 1;
                model.size = (model.size + 1024).min(8192);
                model.offset = 0;
                model.lap_base = 0;
                model.write_end = 0;
                ring = get_workspace_for_current_thread(&ring_config(model.size), ID).unwrap();
                scope = Some(ring.notify_scope_entered().unwrap());
            }
            Op::Read(_) | Op::Share(_) | Op::Drop(_) => {}
        }
        if let Some(m) = failure.lock().unwrap().clone() {
            panic!("{m}");
        }
    }
    // Every array still agrees with the model at the end.
    for l in &live {
        assert_eq!(
            l.buf.is_valid(),
            model.valid(l.place).is_ok(),
            "{:?}",
            l.place
        );
    }
    stop.store(true, Ordering::SeqCst);
    let _ = tx.send(None);
    thread.join().unwrap();
    if let Some(m) = failure.lock().unwrap().clone() {
        panic!("{m}");
    }
    let skipped = model.conflicts;
    drop(scope);
    destroy_all_workspaces_for_current_thread();
    set_debug_mode(DebugMode::Disabled);
    skipped
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_model_with_a_reader_thread(
        ops in proptest::collection::vec(op(), 1..120),
        poison in proptest::bool::weighted(0.25),
    ) {
        run(ops, poison);
    }
}

/// A fixed program that makes the reader hold slots while the ring laps many times, so skipped
/// slots (conflicts) do happen and are checked.
#[test]
fn long_run_with_conflicts() {
    let mut ops = Vec::new();
    for i in 0..400 {
        ops.push(Op::Alloc(
            64 + (i % 5) * 40,
            Fill::Value((i % 900 + 1) as f32),
        ));
        ops.push(Op::Share(usize::MAX));
        if i % 7 == 0 {
            ops.push(Op::Cycle);
        }
        if i % 50 == 49 {
            ops.push(Op::Lap);
        }
        ops.push(Op::Read(i));
        if i % 3 == 0 {
            ops.push(Op::Drop(0));
        }
    }
    ops.push(Op::Grow);
    ops.push(Op::Alloc(100, Fill::Value(1.0)));
    let spilled = run(ops, false);
    eprintln!("long run: {spilled} ring slot(s) skipped because the reader borrowed them");
}
