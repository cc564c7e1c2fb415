//! InMemoryDataSetIterator: each example exactly once per epoch for several batch sizes
//! (partial last batch kept or dropped), seeded shuffling per epoch, reset mid-epoch, the
//! DL4J contract flags, object safety, and batches allocated in the current workspace.

mod common;

use common::{ids, numbered};
use dl4rs_data::{DataSetIterator, InMemoryDataSetIterator, Lazy};
use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};

/// All batches of the current epoch, as example ids, each batch made inside a workspace
/// cycle and read before the cycle ends.
fn epoch(it: &mut dyn DataSetIterator) -> Vec<Vec<usize>> {
    let cfg = WorkspaceConfig::default();
    let mut out = Vec::new();
    while it.has_next() {
        let _cycle = get_and_activate_workspace(&cfg, "IT_EPOCH").unwrap();
        let b = it.next().unwrap().unwrap();
        assert_eq!(b.features.workspace_id(), Some("IT_EPOCH"));
        assert_eq!(b.labels.workspace_id(), Some("IT_EPOCH"));
        out.push(ids(&b));
    }
    assert!(it.next().is_none(), "next() after has_next() == false");
    out
}

#[test]
fn every_example_once_per_epoch() {
    let n = 23;
    for batch in [1, 4, 5, 7, 22, 23, 24, 100] {
        for drop_last in [false, true] {
            for shuffle in [None, Some(5u64)] {
                let mut it = InMemoryDataSetIterator::new(numbered(n), batch)
                    .unwrap()
                    .drop_last(drop_last);
                if let Some(seed) = shuffle {
                    it = it.with_shuffle(seed);
                }
                for _ in 0..3 {
                    let batches = epoch(&mut it);
                    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
                    let full = n / batch;
                    let rest = n % batch;
                    let mut expected = vec![batch; full];
                    if rest > 0 && !drop_last {
                        expected.push(rest);
                    }
                    assert_eq!(sizes, expected, "batch {batch} drop {drop_last}");
                    assert_eq!(batches.len(), it.batches_per_epoch());
                    let mut seen: Vec<usize> = batches.concat();
                    if shuffle.is_none() {
                        let want: Vec<usize> = (0..seen.len()).collect();
                        assert_eq!(seen, want, "file order");
                    }
                    seen.sort_unstable();
                    seen.dedup();
                    let delivered = if drop_last { full * batch } else { n };
                    assert_eq!(seen.len(), delivered, "no repeats");
                    it.reset().unwrap();
                }
            }
        }
    }
}

#[test]
fn shuffle_is_deterministic_per_seed_and_differs_across_epochs() {
    let make = |seed| {
        InMemoryDataSetIterator::new(numbered(40), 8)
            .unwrap()
            .with_shuffle(seed)
    };
    let (mut a, mut b, mut c) = (make(11), make(11), make(12));
    let mut epochs_a = Vec::new();
    for e in 0..3 {
        assert_eq!(a.epoch(), e);
        let ea = epoch(&mut a);
        assert_eq!(ea, epoch(&mut b), "same seed, same order in epoch {e}");
        assert_ne!(ea, epoch(&mut c), "different seed");
        epochs_a.push(ea);
        for it in [&mut a, &mut b, &mut c] {
            it.reset().unwrap();
        }
    }
    assert_ne!(epochs_a[0], epochs_a[1]);
    assert_ne!(epochs_a[1], epochs_a[2]);
    // Epoch e uses seed + e: epoch 1 of seed 11 is epoch 0 of seed 12.
    assert_eq!(epochs_a[1], {
        let mut d = make(12);
        epoch(&mut d)
    });
    // And it is shuffle_indices(0..n, seed + e).
    let mut order: Vec<usize> = (0..40).collect();
    dl4rs_data::shuffle_indices(&mut order, 13);
    assert_eq!(epochs_a[2].concat(), order);
}

#[test]
fn reset_mid_epoch_starts_over() {
    let mut it = InMemoryDataSetIterator::new(numbered(10), 3).unwrap();
    let first = ids(&it.next().unwrap().unwrap());
    assert_eq!(first, [0, 1, 2]);
    let _ = it.next();
    it.reset().unwrap();
    assert_eq!(it.epoch(), 1);
    assert_eq!(epoch(&mut it).concat(), (0..10).collect::<Vec<_>>());

    let mut s = InMemoryDataSetIterator::new(numbered(10), 3)
        .unwrap()
        .with_shuffle(4);
    let _ = s.next();
    s.reset().unwrap();
    let mut all = epoch(&mut s).concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "a full epoch after a mid-epoch reset"
    );
}

#[test]
fn contract_flags_and_object_safety() {
    let it = InMemoryDataSetIterator::new(numbered(10), 4).unwrap();
    let mut boxed: Box<dyn DataSetIterator<f32>> = Box::new(it);
    assert!(boxed.reset_supported());
    assert!(
        !boxed.async_supported(),
        "all data is in memory: DL4J says false"
    );
    assert_eq!(boxed.batch(), 4);
    assert_eq!(boxed.input_columns(), 3);
    assert_eq!(boxed.total_outcomes(), 2);
    assert_eq!(boxed.total_examples(), Some(10));
    assert_eq!(epoch(&mut boxed).len(), 3);
    // Box<dyn _> is itself an iterator, for generic code.
    fn count<I: DataSetIterator>(mut it: I) -> usize {
        let mut k = 0;
        while let Some(b) = it.next() {
            k += b.unwrap().num_examples();
        }
        k
    }
    boxed.reset().unwrap();
    assert_eq!(count(boxed), 10);
    // Ready to be moved to a prefetch thread later.
    fn is_send<T: Send>(_: &T) {}
    is_send(&InMemoryDataSetIterator::new(numbered(1), 1).unwrap());
}

#[test]
fn bad_arguments_and_edge_cases() {
    assert_eq!(
        InMemoryDataSetIterator::new(numbered(3), 0)
            .unwrap_err()
            .to_string(),
        "InMemoryDataSetIterator::new: expected a batch size of at least 1, found 0"
    );
    let (_, empty) = numbered(2).split_test_and_train(2).unwrap();
    let mut it = InMemoryDataSetIterator::new(empty, 4).unwrap();
    assert!(!it.has_next());
    assert!(it.next().is_none());
    it.reset().unwrap();
    assert!(!it.has_next());
}

#[test]
fn workspace_data_is_detached_and_batches_without_a_workspace_are_heap() {
    let it = {
        let _cycle = get_and_activate_workspace(&WorkspaceConfig::default(), "IT_SRC").unwrap();
        let ds = numbered(5).migrate().unwrap();
        InMemoryDataSetIterator::new(ds, 2).unwrap()
    };
    let mut it = it;
    assert!(!it.data().is_attached());
    let b = it.next().unwrap().unwrap();
    assert!(!b.is_attached());
    assert_eq!(ids(&b), [0, 1]);
    assert_eq!(ids(&it.into_data().unwrap()), [0, 1, 2, 3, 4]);
}

#[test]
fn a_batch_kept_past_its_cycle_is_an_error_not_data() {
    let mut it = InMemoryDataSetIterator::new(numbered(4), 2).unwrap();
    let cfg = WorkspaceConfig::default();
    let (stale, kept) = {
        let _cycle = get_and_activate_workspace(&cfg, "IT_STALE").unwrap();
        let a = it.next().unwrap().unwrap();
        let b = it.next().unwrap().unwrap().detach().unwrap();
        (a, b)
    };
    assert!(stale.features.to_vec().is_err());
    assert_eq!(ids(&kept), [2, 3]);
}

#[test]
fn masks_are_batched_too() {
    use dl4rs_array::NdArray;
    let m: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let ds = numbered(6)
        .with_masks(
            None,
            Some(NdArray::from_slice_detached(&[6, 1], &m).unwrap()),
        )
        .unwrap();
    let mut it = InMemoryDataSetIterator::new(ds, 4).unwrap().with_shuffle(1);
    while let Some(b) = it.next() {
        let b = b.unwrap();
        let want: Vec<f32> = ids(&b).iter().map(|&i| i as f32).collect();
        assert!(b.features_mask.is_none());
        assert_eq!(b.labels_mask.unwrap().to_vec().unwrap(), want);
    }
}

#[test]
fn lazy_batches_are_the_rows_next_would_gather_and_survive_a_reshuffle() {
    let n = 23;
    let mut eager = InMemoryDataSetIterator::new(numbered(n), 5)
        .unwrap()
        .with_shuffle(3);
    let mut lazy = InMemoryDataSetIterator::new(numbered(n), 5)
        .unwrap()
        .with_shuffle(3);
    let cfg = WorkspaceConfig::default();
    let mut kept = Vec::new();
    for _ in 0..3 {
        while eager.has_next() {
            assert!(lazy.has_next());
            let want = ids(&eager.next().unwrap().unwrap());
            let Some(Ok(Lazy::Rows(rows))) = lazy.next_lazy() else {
                panic!("an in-memory iterator hands out rows");
            };
            assert_eq!(rows.rows(), want.as_slice());
            assert_eq!(rows.num_examples(), want.len());
            {
                // Gathered into the current workspace, as next() would be.
                let _cycle = get_and_activate_workspace(&cfg, "IT_LAZY").unwrap();
                let b = rows.gather().unwrap();
                assert_eq!(b.features.workspace_id(), Some("IT_LAZY"));
                assert_eq!(ids(&b), want);
            }
            kept.push((rows, want));
        }
        assert!(lazy.next_lazy().is_none());
        eager.reset().unwrap();
        lazy.reset().unwrap();
    }
    // Row batches held across reshuffles still name their own epoch's rows.
    for (rows, want) in &kept {
        assert_eq!(ids(&rows.gather().unwrap()), *want);
    }
    // The data set comes back (a copy while row batches still share it).
    assert_eq!(ids(&lazy.into_data().unwrap()).len(), n);
}

#[test]
fn other_iterators_hand_out_ready_batches() {
    // The default next_lazy is next(): a boxed iterator forwards to the in-memory one, an
    // iterator without its own next_lazy gives Ready batches.
    struct Once(Option<dl4rs_data::DataSet>);
    impl DataSetIterator for Once {
        fn next(&mut self) -> Option<Result<dl4rs_data::DataSet, dl4rs_data::DataError>> {
            self.0.take().map(Ok)
        }
        fn has_next(&self) -> bool {
            self.0.is_some()
        }
        fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
            Ok(())
        }
        fn reset_supported(&self) -> bool {
            false
        }
        fn async_supported(&self) -> bool {
            false
        }
        fn batch(&self) -> usize {
            4
        }
        fn total_outcomes(&self) -> usize {
            1
        }
        fn input_columns(&self) -> usize {
            1
        }
        fn total_examples(&self) -> Option<usize> {
            None
        }
    }
    let mut once = Once(Some(numbered(4)));
    assert!(matches!(once.next_lazy(), Some(Ok(Lazy::Ready(_)))));
    let mut boxed: Box<dyn DataSetIterator> =
        Box::new(InMemoryDataSetIterator::new(numbered(4), 2).unwrap());
    assert!(matches!(boxed.next_lazy(), Some(Ok(Lazy::Rows(_)))));
}
