//! MultiDataSet: construction checks, shuffle keeps rows aligned across arrays and masks,
//! split / merge / detach / migrate semantics, conversion from DataSet, the in-memory
//! iterator.

use dl4rs_array::NdArray;
use dl4rs_data::{DataSet, InMemoryMultiDataSetIterator, Lazy, MultiDataSet, MultiDataSetIterator};
use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};

/// `n` examples: a = [i], b = [10i, 10i+1], y = [100i], masks [i, i] / [-i].
fn multi(n: usize) -> MultiDataSet {
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..n)
        .flat_map(|i| [10. * i as f32, 10. * i as f32 + 1.])
        .collect();
    let y: Vec<f32> = (0..n).map(|i| 100. * i as f32).collect();
    let am: Vec<f32> = (0..n).flat_map(|i| [i as f32, i as f32]).collect();
    let ym: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
    MultiDataSet::new(
        vec![
            NdArray::from_slice_detached(&[n, 1], &a).unwrap(),
            NdArray::from_slice_detached(&[n, 2], &b).unwrap(),
        ],
        vec![NdArray::from_slice_detached(&[n, 1], &y).unwrap()],
    )
    .unwrap()
    .with_masks(
        vec![
            Some(NdArray::from_slice_detached(&[n, 2], &am).unwrap()),
            None,
        ],
        vec![Some(NdArray::from_slice_detached(&[n], &ym).unwrap())],
    )
    .unwrap()
}

/// Example ids of each row, checking every array and mask agrees on them.
fn ids(m: &MultiDataSet) -> Vec<usize> {
    let a = m.features[0].to_vec().unwrap();
    let b = m.features[1].to_vec().unwrap();
    let y = m.labels[0].to_vec().unwrap();
    let am = m.features_masks[0].as_ref().unwrap().to_vec().unwrap();
    let ym = m.labels_masks[0].as_ref().unwrap().to_vec().unwrap();
    assert!(m.features_masks[1].is_none());
    (0..a.len())
        .map(|r| {
            let i = a[r];
            assert_eq!([b[2 * r], b[2 * r + 1]], [10. * i, 10. * i + 1.]);
            assert_eq!(y[r], 100. * i);
            assert_eq!([am[2 * r], am[2 * r + 1]], [i, i]);
            assert_eq!(ym[r], -i);
            i as usize
        })
        .collect()
}

#[test]
fn shuffle_keeps_rows_aligned_across_arrays_and_masks() {
    let mut m = multi(17);
    m.shuffle(3).unwrap();
    let order = ids(&m);
    assert_ne!(order, (0..17).collect::<Vec<_>>());
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..17).collect::<Vec<_>>());
    // Same seed, same permutation as shuffle_indices.
    let mut want: Vec<usize> = (0..17).collect();
    dl4rs_data::shuffle_indices(&mut want, 3);
    assert_eq!(order, want);
    let mut again = multi(17);
    again.shuffle(3).unwrap();
    assert_eq!(ids(&again), order);
}

#[test]
fn split_and_merge() {
    let m = multi(10);
    assert_eq!(m.num_examples().unwrap(), 10);
    assert_eq!((m.num_features_arrays(), m.num_labels_arrays()), (2, 1));
    let (train, test) = m.split_test_and_train(7).unwrap();
    assert_eq!(ids(&train), (0..7).collect::<Vec<_>>());
    assert_eq!(ids(&test), (7..10).collect::<Vec<_>>());
    assert!(!train.is_attached() && !test.is_attached());
    let all = MultiDataSet::merge(&[test, train]).unwrap();
    assert_eq!(ids(&all), [7, 8, 9, 0, 1, 2, 3, 4, 5, 6]);
    let (empty, full) = multi(3).split_test_and_train(0).unwrap();
    assert_eq!(
        (empty.num_examples().unwrap(), full.num_examples().unwrap()),
        (0, 3)
    );
    assert_eq!(
        multi(3).split_test_and_train(4).unwrap_err().to_string(),
        "MultiDataSet::split_test_and_train: expected at most 3 training examples (the data \
         set's size), found 4"
    );
}

#[test]
fn merge_errors() {
    let mut other = multi(2);
    other.labels_masks[0] = None;
    assert_eq!(
        MultiDataSet::merge(&[multi(2), other])
            .unwrap_err()
            .to_string(),
        "MultiDataSet::merge: data set 1 has masks [\"features_masks[0]\"], expected the same \
         masks as data set 0, [\"features_masks[0]\", \"labels_masks[0]\"] (all or none must \
         have each one)"
    );
    let mut other = multi(2);
    other.features[1] = NdArray::zeros(&[2, 3]).unwrap();
    assert_eq!(
        MultiDataSet::merge(&[multi(2), other])
            .unwrap_err()
            .to_string(),
        "MultiDataSet::merge: data set 1 has features[1] of shape [2, 3], expected [_, [2]] like \
         data set 0"
    );
    let mut other = multi(2);
    other.labels.clear();
    other.labels_masks.clear();
    assert_eq!(
        MultiDataSet::merge(&[multi(2), other])
            .unwrap_err()
            .to_string(),
        "MultiDataSet::merge: data set 1 has 2 features and 0 labels arrays, expected 2 and 1 \
         like data set 0"
    );
    assert!(MultiDataSet::<f32>::merge(&[]).is_err());
}

#[test]
fn construction_and_num_examples_checks() {
    let a = NdArray::<f32>::zeros(&[3, 1]).unwrap();
    let b = NdArray::<f32>::zeros(&[4, 1]).unwrap();
    assert_eq!(
        MultiDataSet::new(vec![a.dup().unwrap()], vec![b])
            .unwrap_err()
            .to_string(),
        "MultiDataSet::new: labels[0] has 4 examples (shape [4, 1]), expected 3 like features[0]"
    );
    assert_eq!(
        MultiDataSet::<f32>::new(vec![], vec![])
            .unwrap_err()
            .to_string(),
        "MultiDataSet::new: expected at least one features array, found none"
    );
    let mut m = multi(3);
    m.labels_masks[0] = Some(NdArray::zeros(&[2]).unwrap());
    assert_eq!(
        m.num_examples().unwrap_err().to_string(),
        "MultiDataSet::num_examples: labels_masks[0] has 2 examples (shape [2]), expected 3 like \
         features[0]"
    );
    let m = MultiDataSet::new(vec![a], vec![]).unwrap();
    assert_eq!(m.num_examples().unwrap(), 3);
    assert!(
        MultiDataSet::new(vec![NdArray::<f32>::zeros(&[1]).unwrap()], vec![])
            .unwrap()
            .with_masks(vec![], vec![])
            .is_err()
    );
}

#[test]
fn detach_and_migrate() {
    let cfg = WorkspaceConfig::default();
    let kept = {
        let _cycle = get_and_activate_workspace(&cfg, "MULTI_WS").unwrap();
        let m = multi(4).migrate().unwrap();
        assert!(m.is_attached());
        assert_eq!(m.features[0].workspace_id(), Some("MULTI_WS"));
        assert!(m.labels_masks[0].as_ref().unwrap().is_attached());
        // Splitting a workspace set stays in the workspace; detach copies out.
        let (a, _b) = m.split_test_and_train(2).unwrap();
        assert!(a.is_attached());
        a.detach().unwrap()
    };
    assert!(!kept.is_attached());
    assert_eq!(ids(&kept), [0, 1]);
    // Without a workspace, migrate leaves heap data as it is.
    assert!(!multi(2).migrate().unwrap().is_attached());
}

#[test]
fn from_and_into_data_set() {
    let x = NdArray::<f32>::from_slice(&[2, 2], &[1., 2., 3., 4.]).unwrap();
    let y = NdArray::<f32>::from_slice(&[2, 1], &[0., 1.]).unwrap();
    let mask = NdArray::<f32>::from_slice(&[2], &[1., 0.]).unwrap();
    let d = DataSet::new(x, y)
        .unwrap()
        .with_masks(None, Some(mask))
        .unwrap();
    let m = MultiDataSet::from(d);
    assert_eq!((m.num_features_arrays(), m.num_labels_arrays()), (1, 1));
    assert!(m.features_masks[0].is_none());
    assert_eq!(
        m.labels_masks[0].as_ref().unwrap().to_vec().unwrap(),
        [1., 0.]
    );
    let back = DataSet::try_from(m).unwrap();
    assert_eq!(back.features.to_vec().unwrap(), [1., 2., 3., 4.]);
    assert!(back.labels_mask.is_some());
    assert!(DataSet::try_from(multi(2)).is_err());
}

#[test]
fn in_memory_iterator_every_example_once_per_epoch() {
    for batch in [1, 3, 4, 10, 11] {
        let mut it = InMemoryMultiDataSetIterator::new(multi(10), batch)
            .unwrap()
            .with_shuffle(8);
        assert_eq!((it.batch(), it.total_examples()), (batch, Some(10)));
        assert!(it.reset_supported() && !it.async_supported());
        let mut epochs = Vec::new();
        for _ in 0..2 {
            let mut seen = Vec::new();
            while let Some(b) = it.next() {
                let b = b.unwrap();
                assert!(b.num_examples().unwrap() <= batch);
                seen.extend(ids(&b));
            }
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
            epochs.push(seen);
            it.reset().unwrap();
        }
        if batch < 10 {
            assert_ne!(epochs[0], epochs[1]);
        }
    }
    let mut plain = InMemoryMultiDataSetIterator::new(multi(5), 2).unwrap();
    let mut boxed: Box<dyn MultiDataSetIterator> =
        Box::new(InMemoryMultiDataSetIterator::new(multi(5), 5).unwrap());
    assert_eq!(ids(&plain.next().unwrap().unwrap()), [0, 1]);
    assert_eq!(ids(&boxed.next().unwrap().unwrap()), [0, 1, 2, 3, 4]);
    assert!(!boxed.has_next());
    assert!(InMemoryMultiDataSetIterator::new(multi(2), 0).is_err());
}

#[test]
fn in_memory_iterator_hands_out_the_rows_next_would_gather() {
    let mut eager = InMemoryMultiDataSetIterator::new(multi(10), 3)
        .unwrap()
        .with_shuffle(4);
    let mut lazy: Box<dyn MultiDataSetIterator> = Box::new(
        InMemoryMultiDataSetIterator::new(multi(10), 3)
            .unwrap()
            .with_shuffle(4),
    );
    let cfg = WorkspaceConfig::default();
    for _ in 0..2 {
        while let Some(b) = eager.next() {
            let want = ids(&b.unwrap());
            let Some(Ok(Lazy::Rows(rows))) = lazy.next_lazy() else {
                panic!("an in-memory iterator hands out rows");
            };
            assert_eq!(rows.rows(), want.as_slice());
            let _cycle = get_and_activate_workspace(&cfg, "MULTI_LAZY").unwrap();
            let got = rows.gather().unwrap();
            assert!(got.features[0].is_attached());
            assert_eq!(ids(&got), want);
        }
        assert!(lazy.next_lazy().is_none());
        eager.reset().unwrap();
        lazy.reset().unwrap();
    }
}
