//! DataSet semantics: construction checks, split, select, batch, merge, shuffle, detach,
//! migrate, and where the results live.

mod common;

use common::{ids, numbered};
use dl4rs_array::NdArray;
use dl4rs_data::{DataError, DataSet, shuffle_indices};
use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};

#[test]
fn new_checks_shapes() {
    let f = NdArray::<f32>::zeros_detached(&[4, 3]).unwrap();
    let l = NdArray::<f32>::zeros_detached(&[5, 2]).unwrap();
    let e = DataSet::new(f, l).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }));
    assert_eq!(
        e.to_string(),
        "DataSet::new: labels has 5 examples (shape [5, 2]), expected 4 like the features"
    );
    let f = NdArray::<f32>::zeros_detached(&[4]).unwrap();
    let l = NdArray::<f32>::zeros_detached(&[4, 2]).unwrap();
    assert_eq!(
        DataSet::new(f, l).unwrap_err().to_string(),
        "DataSet::new: expected features with at least 2 axes ([examples, ...]), found shape [4]"
    );
    let ds = numbered(4);
    let bad_mask = NdArray::<f32>::ones(&[3, 1]).unwrap();
    assert!(
        ds.with_masks(Some(bad_mask), None)
            .unwrap_err()
            .to_string()
            .contains("features mask has 3 examples")
    );
}

#[test]
fn accessors() {
    let ds = numbered(7);
    assert_eq!(
        (ds.num_examples(), ds.num_inputs(), ds.num_outcomes()),
        (7, 3, 2)
    );
    assert_eq!(ids(&ds), (0..7).collect::<Vec<_>>());
}

#[test]
fn split_test_and_train() {
    let (train, test) = numbered(10).split_test_and_train(7).unwrap();
    assert_eq!(ids(&train), (0..7).collect::<Vec<_>>());
    assert_eq!(ids(&test), (7..10).collect::<Vec<_>>());
    assert!(!train.is_attached() && !test.is_attached());

    let (all, none) = numbered(3).split_test_and_train(3).unwrap();
    assert_eq!((all.num_examples(), none.num_examples()), (3, 0));
    let (none, all) = numbered(3).split_test_and_train(0).unwrap();
    assert_eq!((none.num_examples(), all.num_examples()), (0, 3));

    let e = numbered(3).split_test_and_train(4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DataSet::split_test_and_train: expected at most 3 training examples (the data set's size), found 4"
    );
}

#[test]
fn heap_data_stays_on_the_heap_inside_a_workspace() {
    let ds = numbered(6);
    let (train, test, picked, batches) = {
        let _cycle = get_and_activate_workspace(&WorkspaceConfig::default(), "DS_HEAP").unwrap();
        let picked = ds.select_rows(&[5, 0, 5]).unwrap();
        let batches = ds.batch_by(4).unwrap();
        let (train, test) = ds.split_test_and_train(2).unwrap();
        (train, test, picked, batches)
    };
    // Usable after the cycle ended: none of them went to the workspace.
    assert_eq!(ids(&train), [0, 1]);
    assert_eq!(ids(&test), [2, 3, 4, 5]);
    assert_eq!(ids(&picked), [5, 0, 5]);
    assert_eq!(
        batches.iter().map(ids).collect::<Vec<_>>(),
        [vec![0, 1, 2, 3], vec![4, 5]]
    );
}

#[test]
fn select_and_batch_errors() {
    let ds = numbered(3);
    assert_eq!(
        ds.select_rows(&[0, 3]).unwrap_err().to_string(),
        "DataSet::select_rows: example index 3 is out of range for 3 examples"
    );
    assert_eq!(
        ds.batch_by(0).unwrap_err().to_string(),
        "DataSet::batch_by: expected a batch size of at least 1, found 0"
    );
}

#[test]
fn merge_concatenates_and_checks() {
    let a = numbered(5);
    let (x, y) = numbered(5).split_test_and_train(2).unwrap();
    let m = DataSet::merge(&[y, x, a]).unwrap();
    assert_eq!(ids(&m), [2, 3, 4, 0, 1, 0, 1, 2, 3, 4]);
    assert!(!m.is_attached());

    assert_eq!(
        DataSet::<f32>::merge(&[]).unwrap_err().to_string(),
        "DataSet::merge: expected at least one data set, found none"
    );
    let wide = DataSet::new(
        NdArray::<f32>::zeros_detached(&[2, 4]).unwrap(),
        NdArray::<f32>::zeros_detached(&[2, 2]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        DataSet::merge(&[numbered(1), wide])
            .unwrap_err()
            .to_string(),
        "DataSet::merge: data set 1 has features of shape [2, 4], expected [_, 3] like data set 0"
    );
    let masked = numbered(2)
        .with_masks(Some(NdArray::<f32>::ones(&[2, 1]).unwrap()), None)
        .unwrap();
    let e = DataSet::merge(&[numbered(1), masked])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data set 1 has a features mask but data set 0 has none"),
        "{e}"
    );
    let masked = numbered(2)
        .with_masks(Some(NdArray::<f32>::ones(&[2, 1]).unwrap()), None)
        .unwrap();
    let e = DataSet::merge(&[masked, numbered(1)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data set 1 has no features mask but data set 0 has one"),
        "{e}"
    );
}

#[test]
fn merge_keeps_masks() {
    let mask = |n: usize, v: f32| Some(NdArray::<f32>::full(&[n, 1], v).unwrap());
    let a = numbered(2).with_masks(mask(2, 1.0), None).unwrap();
    let b = numbered(3).with_masks(mask(3, 0.5), None).unwrap();
    let m = DataSet::merge(&[a, b]).unwrap();
    assert_eq!(
        m.features_mask.unwrap().to_vec().unwrap(),
        [1.0, 1.0, 0.5, 0.5, 0.5]
    );
    assert!(m.labels_mask.is_none());
}

#[test]
fn shuffle_is_a_seeded_permutation_of_rows() {
    let mut a = numbered(50);
    let mut b = numbered(50);
    let mut c = numbered(50);
    a.shuffle(1).unwrap();
    b.shuffle(1).unwrap();
    c.shuffle(2).unwrap();
    let (ia, ib, ic) = (ids(&a), ids(&b), ids(&c));
    assert_eq!(ia, ib, "same seed, same order");
    assert_ne!(ia, ic, "different seed, different order");
    assert_ne!(ia, (0..50).collect::<Vec<_>>());
    let mut sorted = ia.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");

    // It is exactly the order shuffle_indices gives.
    let mut order: Vec<usize> = (0..50).collect();
    shuffle_indices(&mut order, 1);
    assert_eq!(ia, order);
}

#[test]
fn shuffle_moves_masks_with_rows() {
    let n = 20;
    let m: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut ds = numbered(n)
        .with_masks(
            Some(NdArray::from_slice_detached(&[n, 1], &m).unwrap()),
            Some(NdArray::from_slice_detached(&[n], &m).unwrap()),
        )
        .unwrap();
    ds.shuffle(9).unwrap();
    let order: Vec<f32> = ids(&ds).iter().map(|&i| i as f32).collect();
    assert_eq!(ds.features_mask.as_ref().unwrap().to_vec().unwrap(), order);
    assert_eq!(ds.labels_mask.as_ref().unwrap().to_vec().unwrap(), order);
}

#[test]
fn shuffle_indices_is_uniform_enough() {
    // Every position gets every value about equally often over many seeds.
    let n = 5;
    let mut counts = [[0u32; 5]; 5];
    for seed in 0..5000 {
        let mut v: Vec<usize> = (0..n).collect();
        shuffle_indices(&mut v, seed);
        for (pos, &val) in v.iter().enumerate() {
            counts[pos][val] += 1;
        }
    }
    for row in counts {
        for c in row {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }
}

#[test]
fn detach_survives_the_cycle_and_migrate_moves_in() {
    let cfg = WorkspaceConfig::default();
    let kept = {
        let _cycle = get_and_activate_workspace(&cfg, "DS_DETACH").unwrap();
        let ds = numbered(4).migrate().unwrap();
        assert!(ds.features.is_attached() && ds.labels.is_attached());
        assert_eq!(ds.features.workspace_id(), Some("DS_DETACH"));
        assert_eq!(ids(&ds), [0, 1, 2, 3]);
        let stale = numbered(2).migrate().unwrap();
        let kept = ds.detach().unwrap();
        assert!(!kept.is_attached());
        (kept, stale)
    };
    let (kept, stale) = kept;
    assert_eq!(ids(&kept), [0, 1, 2, 3]);
    // The workspace copy died with its cycle: an error, not stale data.
    assert!(stale.features.to_vec().is_err());
    assert!(matches!(
        stale.select_rows(&[0]).unwrap_err(),
        DataError::Array(_)
    ));
    // migrate with no workspace open is a no-op.
    let heap = numbered(2).migrate().unwrap();
    assert!(!heap.is_attached());
}

#[test]
fn operations_on_workspace_data_go_to_the_current_workspace() {
    let _cycle = get_and_activate_workspace(&WorkspaceConfig::default(), "DS_WS").unwrap();
    let ds = numbered(4).migrate().unwrap();
    let (a, b) = ds.split_test_and_train(1).unwrap();
    assert_eq!(a.features.workspace_id(), Some("DS_WS"));
    assert_eq!(ids(&b), [1, 2, 3]);
    let mut d = b.dup().unwrap();
    d.shuffle(3).unwrap();
    assert_eq!(d.features.workspace_id(), Some("DS_WS"));
}

#[test]
fn replaced_fields_are_rechecked_not_a_panic() {
    let mut ds = numbered(4);
    ds.labels = NdArray::<f32>::zeros_detached(&[3, 2]).unwrap();
    let e = ds.shuffle(1).unwrap_err().to_string();
    assert_eq!(
        e,
        "DataSet::shuffle: labels has 3 examples (shape [3, 2]), expected 4 like the features"
    );
    let mut ds = numbered(4);
    ds.features = NdArray::<f32>::scalar(1.0).unwrap();
    assert!(DataSet::merge(&[numbered(1), ds]).is_err());
    let mut ds = numbered(4);
    ds.features_mask = Some(NdArray::<f32>::zeros_detached(&[5]).unwrap());
    assert!(dl4rs_data::InMemoryDataSetIterator::new(ds, 2).is_err());
    let mut ds = numbered(4);
    ds.labels = NdArray::<f32>::zeros_detached(&[1, 2]).unwrap();
    assert!(ds.split_test_and_train(2).is_err());
}

#[test]
fn is_held_by_names_the_one_workspace_whose_cycle_keeps_the_data_valid() {
    let cfg = WorkspaceConfig::default();
    let heap = numbered(3);
    assert!(heap.is_held_by(None), "heap arrays need no workspace");
    let outer = get_and_activate_workspace(&cfg, "DS_HELD_OUTER").unwrap();
    let a = outer.workspace().unwrap().clone();
    assert!(heap.is_held_by(Some(&a)));
    let in_a = numbered(3).migrate().unwrap();
    assert!(in_a.is_held_by(Some(&a)));
    assert!(
        !in_a.is_held_by(None),
        "attached, so not held by the heap alone"
    );
    {
        let inner = get_and_activate_workspace(&cfg, "DS_HELD_INNER").unwrap();
        let b = inner.workspace().unwrap();
        assert!(
            !in_a.is_held_by(Some(b)),
            "another workspace does not hold it"
        );
        let in_b = numbered(2).migrate().unwrap();
        assert!(in_b.is_held_by(Some(b)) && !in_b.is_held_by(Some(&a)));
    }
    // In `a` and on the heap: held by `a`, not by the heap alone.
    let mixed = DataSet::new(in_a.features, numbered(3).labels).unwrap();
    assert!(mixed.is_held_by(Some(&a)) && !mixed.is_held_by(None));
    drop(outer);
}
