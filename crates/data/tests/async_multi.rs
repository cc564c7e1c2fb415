//! AsyncMultiDataSetIterator: every batch once per epoch, in order, for each prefetch size
//! over several epochs; reset mid-epoch; a source error and a source panic reach the
//! consumer; variable batch sizes exact (two feature and two label arrays of different widths,
//! with masks); the validity contract and its misuse (StaleRingSlot, detach); shutdown on
//! drop; flags; and the shield wrapper.

mod async_multi_common;

use std::sync::Arc;
use std::time::Duration;

use async_multi_common::{MultiSeqSource, check_batch};
use dl4rs_array::{ArrayError, NdArray};
use dl4rs_data::{
    AsyncMultiDataSetIterator, AsyncShieldMultiDataSetIterator, DEFAULT_MIN_RING_BYTES, DataError,
    InMemoryMultiDataSetIterator, MAX_PREFETCH, MultiDataSet, MultiDataSetIterator,
};
use dl4rs_memory::WorkspaceError;

/// Consumes one epoch, checking every value; alternates the two loop styles.
fn epoch(it: &mut AsyncMultiDataSetIterator, sizes: &[usize], epoch: u64, use_has_next: bool) {
    let mut k = 0;
    if use_has_next {
        while it.has_next() {
            assert!(it.has_next(), "has_next() twice keeps the batch");
            let m = it.next().expect("has_next() promised a batch").unwrap();
            check_batch(&m, epoch, k, sizes[k]).unwrap();
            assert_eq!(m.features[1].workspace_id(), Some(it.workspace_id()));
            assert_eq!(
                m.labels_masks[1].as_ref().unwrap().workspace_id(),
                Some(it.workspace_id())
            );
            k += 1;
        }
        assert!(it.next().is_none());
    } else {
        while let Some(m) = it.next() {
            check_batch(&m.unwrap(), epoch, k, sizes[k]).unwrap();
            k += 1;
        }
        assert!(!it.has_next());
    }
    assert_eq!(k, sizes.len(), "batches in epoch {epoch}");
    assert!(it.next().is_none(), "the epoch stays ended");
}

#[test]
fn every_batch_once_in_order_for_each_prefetch_size() {
    for prefetch in 1..=4 {
        for min_ring in [0, DEFAULT_MIN_RING_BYTES] {
            let sizes = vec![5; 23];
            let src = MultiSeqSource::new(sizes.clone()).boxed();
            let mut it =
                AsyncMultiDataSetIterator::with_min_ring_bytes(src, prefetch, min_ring).unwrap();
            assert_eq!(it.prefetch(), prefetch);
            for e in 0..4 {
                if e > 0 {
                    it.reset().unwrap();
                }
                epoch(&mut it, &sizes, e, e % 2 == 0);
            }
        }
    }
}

#[test]
fn reset_mid_epoch_then_a_full_epoch() {
    for prefetch in [1, 2, 4] {
        let sizes = vec![4; 20];
        let mut it = AsyncMultiDataSetIterator::with_min_ring_bytes(
            MultiSeqSource::new(sizes.clone()).boxed(),
            prefetch,
            0,
        )
        .unwrap();
        for k in 0..7 {
            check_batch(&it.next().unwrap().unwrap(), 0, k, 4).unwrap();
        }
        assert!(it.has_next()); // a peeked batch is dropped by the reset
        it.reset().unwrap();
        epoch(&mut it, &sizes, 1, true);
        // Reset right after construction, before anything was read, and twice in a row.
        it.reset().unwrap();
        it.reset().unwrap();
        epoch(&mut it, &sizes, 3, false);
    }
}

#[test]
fn a_source_error_reaches_the_consumer_after_the_earlier_batches() {
    for prefetch in [1, 3, 4] {
        let mut src = MultiSeqSource::constant(12, 3);
        src.fail_at = Some(5);
        let mut it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        for k in 0..5 {
            assert!(it.has_next());
            check_batch(&it.next().unwrap().unwrap(), 0, k, 3).unwrap();
        }
        assert!(it.has_next(), "the error is the next item");
        let err = it.next().unwrap().unwrap_err();
        assert!(matches!(err, DataError::Invalid { .. }), "{err}");
        assert!(
            err.to_string().contains("planned failure at batch 5"),
            "{err}"
        );
        assert!(!it.has_next(), "the epoch ends at the error");
        assert!(it.next().is_none());
        it.reset().unwrap();
        for k in 0..5 {
            check_batch(&it.next().unwrap().unwrap(), 1, k, 3).unwrap();
        }
        assert!(it.next().unwrap().is_err());
    }
}

#[test]
fn a_source_panic_reaches_the_consumer_as_an_error() {
    for prefetch in [1, 2, 4] {
        let mut src = MultiSeqSource::constant(12, 3);
        src.panic_at = Some(3);
        let mut it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        for k in 0..3 {
            check_batch(&it.next().unwrap().unwrap(), 0, k, 3).unwrap();
        }
        let err = it.next().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Prefetch {
                    op: "AsyncMultiDataSetIterator::next",
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("panicked"), "{msg}");
        assert!(msg.contains("planned panic at batch 3"), "{msg}");
        assert!(msg.contains("reset()"), "says what to do: {msg}");
        assert!(!it.has_next());
        assert!(it.next().is_none());
        // The thread survived the panic and handed the source back.
        it.reset().unwrap();
        for k in 0..3 {
            check_batch(&it.next().unwrap().unwrap(), 1, k, 3).unwrap();
        }
        assert!(matches!(it.next(), Some(Err(DataError::Prefetch { .. }))));
    }
}

#[test]
fn variable_batch_sizes_are_exact_across_epochs() {
    let cycle = [5, 50, 17, 128];
    let sizes: Vec<usize> = (0..40).map(|i| cycle[i % 4]).collect();
    for prefetch in [1, 2, 4] {
        for min_ring in [0, DEFAULT_MIN_RING_BYTES] {
            let mut it = AsyncMultiDataSetIterator::with_min_ring_bytes(
                MultiSeqSource::new(sizes.clone()).boxed(),
                prefetch,
                min_ring,
            )
            .unwrap();
            for e in 0..3 {
                if e > 0 {
                    it.reset().unwrap();
                }
                epoch(&mut it, &sizes, e, e % 2 == 1);
            }
        }
    }
    // Growing sizes: every batch is larger than all before it (trimmed mode, ring rebuilds).
    let growing: Vec<usize> = (1..=60).map(|i| i * 7).collect();
    let mut it = AsyncMultiDataSetIterator::with_min_ring_bytes(
        MultiSeqSource::new(growing.clone()).boxed(),
        2,
        0,
    )
    .unwrap();
    for e in 0..2 {
        if e > 0 {
            it.reset().unwrap();
        }
        epoch(&mut it, &growing, e, true);
    }
}

#[test]
fn a_batch_stays_valid_until_the_next_call_to_next() {
    for prefetch in 1..=4 {
        let mut it = AsyncMultiDataSetIterator::with_min_ring_bytes(
            MultiSeqSource::constant(30, 6).boxed(),
            prefetch,
            0,
        )
        .unwrap();
        for k in 0..25 {
            let m = it.next().unwrap().unwrap();
            // Let the thread run as far ahead as it can, and peek one more.
            std::thread::sleep(Duration::from_millis(2));
            assert!(it.has_next());
            std::thread::sleep(Duration::from_millis(2));
            check_batch(&m, 0, k, 6).unwrap();
        }
    }
}

#[test]
fn a_batch_kept_too_long_is_a_stale_ring_slot_error_and_detach_keeps_it() {
    for prefetch in 1..=4 {
        let mut it = AsyncMultiDataSetIterator::with_min_ring_bytes(
            MultiSeqSource::constant(30, 6).boxed(),
            prefetch,
            0,
        )
        .unwrap();
        // Batch 0 spills while the ring learns; keep batch 2, which lives in the ring.
        for k in 0..2 {
            check_batch(&it.next().unwrap().unwrap(), 0, k, 6).unwrap();
        }
        let kept = it.next().unwrap().unwrap();
        assert!(kept.is_attached());
        let copy = kept.dup().unwrap().detach().unwrap();
        assert!(!copy.is_attached());
        // prefetch + 3 slots: the batch prefetch + 3 places later was written over the kept one.
        for k in 3..3 + prefetch + 3 {
            check_batch(&it.next().unwrap().unwrap(), 0, k, 6).unwrap();
        }
        let err = check_batch(&kept, 0, 2, 6).unwrap_err();
        assert!(
            matches!(
                err,
                ArrayError::Workspace(WorkspaceError::StaleRingSlot { .. })
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(it.workspace_id()), "{msg}");
        assert!(msg.contains("detach()"), "{msg}");
        // MultiDataSet operations report it wrapped in a DataError.
        let wrapped = kept.dup().unwrap_err();
        assert!(
            matches!(
                wrapped,
                DataError::Array(ArrayError::Workspace(WorkspaceError::StaleRingSlot { .. }))
            ),
            "{wrapped}"
        );
        // The detached copy stays valid forever: after the epoch, a reset and the drop.
        while it.next().is_some() {}
        it.reset().unwrap();
        drop(it);
        check_batch(&copy, 0, 2, 6).unwrap();
    }
}

#[test]
fn drop_stops_and_joins_the_prefetch_thread() {
    for prefetch in [1, 2, 4] {
        // Blocked in send (queue full).
        let src = MultiSeqSource::constant(100, 4);
        let probe = Arc::clone(&src.probe);
        let mut it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        it.next().unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(Arc::strong_count(&probe), 2, "the thread holds the source");
        drop(it);
        assert_eq!(Arc::strong_count(&probe), 1, "joined, source dropped");

        // Busy in the source's next() (a slow source).
        let mut src = MultiSeqSource::constant(100, 4);
        src.delay = Some(Duration::from_millis(30));
        let probe = Arc::clone(&src.probe);
        let it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        drop(it);
        assert_eq!(Arc::strong_count(&probe), 1, "joined, source dropped");

        // Right after construction; after the end of the epoch; after a panic.
        let src = MultiSeqSource::constant(3, 4);
        let probe = Arc::clone(&src.probe);
        drop(AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap());
        assert_eq!(Arc::strong_count(&probe), 1);

        let src = MultiSeqSource::constant(3, 4);
        let probe = Arc::clone(&src.probe);
        let mut it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        while it.next().is_some() {}
        assert_eq!(
            Arc::strong_count(&probe),
            2,
            "the iterator has the source back"
        );
        drop(it);
        assert_eq!(Arc::strong_count(&probe), 1);

        let mut src = MultiSeqSource::constant(10, 4);
        src.panic_at = Some(1);
        let probe = Arc::clone(&src.probe);
        let mut it = AsyncMultiDataSetIterator::new(src.boxed(), prefetch).unwrap();
        it.next().unwrap().unwrap();
        assert!(it.next().unwrap().is_err());
        drop(it);
        assert_eq!(Arc::strong_count(&probe), 1);
    }
}

#[test]
fn reset_stops_and_joins_the_old_thread() {
    let mut src = MultiSeqSource::constant(100, 4);
    src.delay = Some(Duration::from_millis(5));
    let probe = Arc::clone(&src.probe);
    let mut it = AsyncMultiDataSetIterator::new(src.boxed(), 2).unwrap();
    for e in 1..=5 {
        it.next().unwrap().unwrap();
        it.reset().unwrap();
        assert_eq!(
            Arc::strong_count(&probe),
            2,
            "one thread at a time owns the source"
        );
        check_batch(&it.next().unwrap().unwrap(), e, 0, 4).unwrap();
    }
    drop(it);
    assert_eq!(Arc::strong_count(&probe), 1);
}

#[test]
fn arguments_and_flags() {
    for bad in [0, MAX_PREFETCH + 1, usize::MAX] {
        let err = AsyncMultiDataSetIterator::new(MultiSeqSource::constant(2, 2).boxed(), bad)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                DataError::Invalid {
                    op: "AsyncMultiDataSetIterator::new",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("expected a prefetch queue of 1 to 1024"),
            "{msg}"
        );
        assert!(msg.contains(&format!("found {bad}")), "{msg}");
        assert!(msg.contains("DEFAULT_PREFETCH"), "says what to do: {msg}");
    }
    // The same ring as the DataSet version: prefetch + 3 slots.
    let cfg = AsyncMultiDataSetIterator::<f32>::ring_config(2, 1 << 20).unwrap();
    assert!(cfg.is_cyclic());
    assert_eq!(cfg.overallocation_limit, 4.0);
    assert_eq!(cfg.min_size, 1 << 20);

    let it = AsyncMultiDataSetIterator::new(MultiSeqSource::constant(4, 2).boxed(), 2).unwrap();
    assert!(!it.async_supported(), "never wrapped twice");
    assert!(it.reset_supported());
    assert_eq!(it.batch(), 2);
    assert_eq!(it.total_examples(), Some(8));
    assert!(it.workspace_id().starts_with("AMDSI_ITER-"));
    let other = AsyncMultiDataSetIterator::new(MultiSeqSource::constant(1, 1).boxed(), 2).unwrap();
    assert_ne!(
        it.workspace_id(),
        other.workspace_id(),
        "one ring id per instance"
    );
    let debug = format!("{it:?}");
    assert!(debug.contains("AsyncMultiDataSetIterator"), "{debug}");
    assert!(debug.contains("AMDSI_ITER-"), "{debug}");

    fn assert_send<S: Send>() {}
    assert_send::<AsyncMultiDataSetIterator<f32>>();
    assert_send::<AsyncMultiDataSetIterator<f64>>();

    // A source that can't reset: reset() says so, and the iterator keeps going.
    let mut src = MultiSeqSource::constant(3, 2);
    src.resettable = false;
    let mut it = AsyncMultiDataSetIterator::new(src.boxed(), 1).unwrap();
    assert!(!it.reset_supported());
    check_batch(&it.next().unwrap().unwrap(), 0, 0, 2).unwrap();
    let err = it.reset().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("reset_supported() is false"), "{msg}");
    assert!(msg.contains("AsyncMultiDataSetIterator"), "{msg}");
    check_batch(&it.next().unwrap().unwrap(), 0, 1, 2).unwrap();
}

#[test]
fn shield_turns_prefetch_off_and_wrap_if_supported_follows_the_flag() {
    let shielded = AsyncShieldMultiDataSetIterator::new(MultiSeqSource::constant(3, 2));
    assert!(shielded.inner().async_supported());
    assert!(!shielded.async_supported());
    assert_eq!(shielded.total_examples(), Some(6));
    assert_eq!(shielded.batch(), 2);
    assert!(shielded.reset_supported());
    let mut it = AsyncMultiDataSetIterator::wrap_if_supported(Box::new(shielded), 2).unwrap();
    assert!(it.has_next());
    let b = it.next().unwrap().unwrap();
    assert!(
        !b.is_attached(),
        "not wrapped: made on this thread (no workspace open)"
    );
    check_batch(&b, 0, 0, 2).unwrap();
    it.reset().unwrap();
    check_batch(&it.next().unwrap().unwrap(), 1, 0, 2).unwrap();

    // A source that supports async is wrapped: its batches live in the prefetch ring.
    let mut it =
        AsyncMultiDataSetIterator::wrap_if_supported(MultiSeqSource::constant(3, 2).boxed(), 2)
            .unwrap();
    assert!(!it.async_supported());
    let b = it.next().unwrap().unwrap();
    assert!(
        b.features[0]
            .workspace_id()
            .unwrap()
            .starts_with("AMDSI_ITER-")
    );

    // InMemoryMultiDataSetIterator says async is pointless, but can still be wrapped explicitly.
    let x = NdArray::<f32>::from_slice(&[4, 1], &[0., 1., 2., 3.]).unwrap();
    let y = NdArray::<f32>::zeros(&[4, 2]).unwrap();
    let data = MultiDataSet::new(vec![x], vec![y]).unwrap();
    let mem = InMemoryMultiDataSetIterator::new(data, 3).unwrap();
    let mut it = AsyncMultiDataSetIterator::new(Box::new(mem), 2).unwrap();
    assert_eq!(
        it.next().unwrap().unwrap().features[0].to_vec().unwrap(),
        [0., 1., 2.]
    );
    assert_eq!(
        it.next().unwrap().unwrap().features[0].to_vec().unwrap(),
        [3.]
    );
    assert!(it.next().is_none());

    let mut shield = AsyncShieldMultiDataSetIterator::new(MultiSeqSource::constant(1, 1));
    shield.inner_mut().epoch = 7;
    assert_eq!(shield.into_inner().epoch, 7);
}
