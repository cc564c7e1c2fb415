//! Exhaustive model test of the prefetch handoff, over the real ring.
//!
//! The iterator's protocol has four steps: the producer *makes* a batch (one ring cycle: it
//! writes into the ring) and *sends* it (blocking while the queue holds `prefetch` batches);
//! the consumer calls `next()` (takes the peeked batch, or one from the queue) and
//! `has_next()` (peeks one from the queue and keeps it). The ring's behaviour depends only on
//! the sequence of batches made, so we first replay that sequence on this thread with the
//! iterator's exact ring configuration, recording after each batch made which earlier batches
//! are still readable (and checking that a readable batch always holds its own values: a
//! batch written over must be an error, never data). Then a breadth-first search visits every
//! state reachable by any interleaving of the four steps and checks the safety property:
//! **every batch the consumer can still use (its current one, the peeked one, the queued ones
//! and the one waiting to be sent) is readable and exact.** It also checks the bound is tight:
//! some reachable state has the batch *before* the consumer's current one overwritten.

mod async_common;

use std::collections::{HashSet, VecDeque};

use async_common::{SeqSource, check_batch};
use dl4rs_array::ArrayError;
use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator};
use dl4rs_memory::{WorkspaceError, get_workspace_for_current_thread};

/// `ok[m][i]` for `i < m`: after `m` batches were made, batch `i` is readable (and exact).
fn ring_trace(prefetch: usize, min_ring: usize, sizes: &[usize], id: &str) -> Vec<Vec<bool>> {
    let config = AsyncDataSetIterator::<f32>::ring_config(prefetch, min_ring).unwrap();
    let ring = get_workspace_for_current_thread(&config, id).unwrap();
    let mut source = SeqSource::new(sizes.to_vec());
    let mut made: Vec<DataSet> = Vec::new();
    let mut ok = vec![Vec::new()];
    for _ in 0..sizes.len() {
        // Exactly what the prefetch thread does for one batch.
        let cycle = ring.notify_scope_entered().unwrap();
        let batch = source.next().unwrap().unwrap();
        drop(cycle);
        made.push(batch);
        let row = made
            .iter()
            .enumerate()
            .map(|(i, ds)| match check_batch(ds, 0, i, sizes[i]) {
                Ok(()) => true,
                Err(ArrayError::Workspace(WorkspaceError::StaleRingSlot { .. })) => false,
                Err(e) => panic!("batch {i}: unexpected error {e}"),
            })
            .collect();
        ok.push(row);
    }
    let stats = ring.stats().unwrap();
    assert_eq!(stats.ring_conflicts, 0, "no reader held a borrow");
    ring.destroy().unwrap();
    ok
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    made: usize,
    /// The producer made batch `made - 1` and has not sent it yet.
    holding: bool,
    queue: VecDeque<usize>,
    peeked: Option<usize>,
    current: Option<usize>,
}

/// Explores every interleaving; returns (states visited, whether some state had the batch
/// before the current one overwritten).
fn explore(prefetch: usize, n: usize, ok: &[Vec<bool>]) -> (usize, bool) {
    let start = State {
        made: 0,
        holding: false,
        queue: VecDeque::new(),
        peeked: None,
        current: None,
    };
    let mut seen = HashSet::new();
    let mut todo = vec![start.clone()];
    seen.insert(start);
    let mut previous_overwritten = false;
    while let Some(s) = todo.pop() {
        // Safety: everything the consumer can still use is readable and exact.
        let live = s
            .current
            .iter()
            .chain(s.peeked.iter())
            .chain(s.queue.iter())
            .copied()
            .chain(s.holding.then(|| s.made - 1));
        for i in live {
            assert!(
                ok[s.made][i],
                "prefetch {prefetch}: batch {i} still in use was overwritten after {} made \
                 (current {:?}, peeked {:?}, queue {:?}, holding {})",
                s.made, s.current, s.peeked, s.queue, s.holding
            );
        }
        if let Some(c) = s.current
            && c > 0
            && !ok[s.made][c - 1]
        {
            previous_overwritten = true;
        }
        let mut next = Vec::new();
        // Producer: make a batch (ring write).
        if !s.holding && s.made < n {
            let mut t = s.clone();
            t.made += 1;
            t.holding = true;
            next.push(t);
        }
        // Producer: send it (blocks while the queue is full).
        if s.holding && s.queue.len() < prefetch {
            let mut t = s.clone();
            t.queue.push_back(s.made - 1);
            t.holding = false;
            next.push(t);
        }
        // Consumer: next().
        if let Some(p) = s.peeked {
            let mut t = s.clone();
            t.current = Some(p);
            t.peeked = None;
            next.push(t);
        } else if !s.queue.is_empty() {
            let mut t = s.clone();
            t.current = t.queue.pop_front();
            next.push(t);
        }
        // Consumer: has_next() peeks.
        if s.peeked.is_none() && !s.queue.is_empty() {
            let mut t = s.clone();
            t.peeked = t.queue.pop_front();
            next.push(t);
        }
        for t in next {
            if seen.insert(t.clone()) {
                todo.push(t);
            }
        }
    }
    (seen.len(), previous_overwritten)
}

#[test]
fn no_interleaving_overwrites_a_batch_in_use() {
    let cycle = [5, 50, 17, 128];
    let variable: Vec<usize> = (0..24).map(|i| cycle[i % 4]).collect();
    let constant = vec![6; 24];
    let growing: Vec<usize> = (1..=24).map(|i| i * 5).collect();
    let mut total_states = 0;
    let mut run = 0;
    for prefetch in 1..=5 {
        // No floor (exactly prefetch + 3 slots), a floor that leaves a ragged tail, and the
        // default floor.
        for min_ring in [0, 1000, 5000, 1 << 20] {
            for (name, sizes) in [
                ("constant", &constant),
                ("variable", &variable),
                ("growing", &growing),
            ] {
                run += 1;
                let ok = ring_trace(prefetch, min_ring, sizes, &format!("MODEL_RING_{run}"));
                let (states, tight) = explore(prefetch, sizes.len(), &ok);
                total_states += states;
                if min_ring == 0 && name == "constant" {
                    assert!(
                        tight,
                        "prefetch {prefetch}: with exactly prefetch + 3 slots the batch before \
                         the current one is overwritten in some interleaving (the bound is tight)"
                    );
                }
            }
        }
    }
    eprintln!("{run} configurations, {total_states} reachable states checked");
    assert!(total_states > 10_000);
}
