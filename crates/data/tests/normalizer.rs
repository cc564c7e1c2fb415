//! Normalizers: streaming fit equals whole-data fit (1e-12), transform/revert round trip,
//! constant columns, masks, label fitting, JSON round trips, the preprocessing wrapper.

use dl4rs_array::NdArray;
use dl4rs_data::normalizer::{
    DataNormalization, ImagePreProcessingScaler, Normalizer, NormalizerMinMaxScaler,
    NormalizerStandardize, PreProcessedIterator,
};
use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};

const N: usize = 103;
const C: usize = 4;

/// Column 0 large offset, column 1 small spread, column 2 constant, column 3 mixed sign.
fn data() -> DataSet<f64> {
    let f: Vec<f64> = (0..N)
        .flat_map(|i| {
            let x = i as f64;
            [
                1.0e4 + (x * 0.37).sin() * 3.0,
                (x * 1.3).cos() * 1e-3,
                7.25,
                x - 50.0 + (x * x * 0.01).sin(),
            ]
        })
        .collect();
    let l: Vec<f64> = (0..N)
        .flat_map(|i| [i as f64 * 2.0, 5.0 - i as f64])
        .collect();
    DataSet::new(
        NdArray::from_slice_detached(&[N, C], &f).unwrap(),
        NdArray::from_slice_detached(&[N, 2], &l).unwrap(),
    )
    .unwrap()
}

/// Two-pass reference statistics of column `j` of a row-major `[n, c]` table.
fn reference(values: &[f64], c: usize, j: usize) -> (f64, f64, f64, f64) {
    let col: Vec<f64> = values.chunks(c).map(|r| r[j]).collect();
    let n = col.len() as f64;
    let mean = col.iter().sum::<f64>() / n;
    let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let min = col.iter().copied().fold(f64::INFINITY, f64::min);
    let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn streaming_fit_equals_whole_data_fit() {
    let d = data();
    let values = d.features.to_vec().unwrap();
    let labels = d.labels.to_vec().unwrap();
    let mut whole = NormalizerStandardize::new().fit_labels(true);
    whole.fit_data(&d).unwrap();
    for batch in [1, 7, 10, 64, N, 1000] {
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), batch).unwrap();
        it.next(); // fit resets first
        let mut s = NormalizerStandardize::new().fit_labels(true);
        s.fit(&mut it).unwrap();
        assert!(it.has_next(), "fit rewinds the iterator afterwards");
        assert_eq!(it.epoch(), 2, "reset before and after");
        let mut m = NormalizerMinMaxScaler::new();
        m.fit(&mut it).unwrap();
        let fs = s.feature_stats().unwrap();
        assert_eq!(fs.count, N as u64);
        for j in 0..C {
            let (mean, std, min, max) = reference(&values, C, j);
            assert!(
                close(s.mean().unwrap()[j], mean, 1e-12),
                "mean {j} batch {batch}"
            );
            assert!(
                close(s.std().unwrap()[j], std, 1e-12),
                "std {j} batch {batch}"
            );
            assert!(close(whole.mean().unwrap()[j], mean, 1e-12));
            assert!(close(whole.std().unwrap()[j], std, 1e-12));
            assert_eq!((m.min().unwrap()[j], m.max().unwrap()[j]), (min, max));
        }
        let ls = s.label_stats().unwrap();
        for j in 0..2 {
            let (mean, std, min, max) = reference(&labels, 2, j);
            assert!(close(ls.mean[j], mean, 1e-12) && close(ls.std[j], std, 1e-12));
            assert_eq!((ls.min[j], ls.max[j]), (min, max));
        }
    }
    // The constant column has std 0 exactly.
    assert_eq!(whole.std().unwrap()[2], 0.0);
}

#[test]
fn transform_then_revert_restores_the_data() {
    let original = data();
    let normalizers: Vec<Normalizer> = vec![
        NormalizerStandardize::new().into(),
        NormalizerStandardize::new().fit_labels(true).into(),
        NormalizerMinMaxScaler::new().into(),
        NormalizerMinMaxScaler::with_range(-2.0, 3.0)
            .unwrap()
            .fit_labels(true)
            .into(),
        ImagePreProcessingScaler::with_range(-1.0, 1.0)
            .unwrap()
            .into(),
    ];
    for mut n in normalizers {
        n.fit_data(&original).unwrap();
        let mut d = original.dup().unwrap();
        n.transform(&mut d).unwrap();
        assert_ne!(
            d.features.to_vec().unwrap(),
            original.features.to_vec().unwrap()
        );
        n.revert(&mut d).unwrap();
        for (a, b) in [
            (&d.features, &original.features),
            (&d.labels, &original.labels),
        ] {
            for (x, y) in a.to_vec().unwrap().iter().zip(b.to_vec().unwrap()) {
                assert!(close(*x, y, 1e-6), "{n:?}: {x} vs {y}");
            }
        }
        // f32 data too: the normalized values are rounded to f32 (~6e-8 relative), which the
        // revert scales back up by the column's spread (up to 255 for the image scaler).
        let x32: Vec<f32> = original
            .features
            .to_vec()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut a = NdArray::<f32>::from_slice(&[N, C], &x32).unwrap();
        n.transform_features(&mut a).unwrap();
        n.revert_features(&mut a).unwrap();
        for (x, y) in a.to_vec().unwrap().iter().zip(&x32) {
            assert!(close(f64::from(*x), f64::from(*y), 1e-4), "{x} vs {y}");
        }
    }
}

#[test]
fn standardized_columns_have_zero_mean_and_unit_std_constant_columns_centred() {
    let mut d = data();
    let mut s = NormalizerStandardize::new();
    s.fit_data(&d).unwrap();
    s.transform(&mut d).unwrap();
    let v = d.features.to_vec().unwrap();
    for j in 0..C {
        let (mean, std, _, _) = reference(&v, C, j);
        assert!(mean.abs() < 1e-9, "column {j} mean {mean}");
        let want = if j == 2 { 0.0 } else { 1.0 };
        assert!((std - want).abs() < 1e-9, "column {j} std {std}");
    }
    // Constant column: only centred (std 0 taken as 1), so it becomes exactly 0.
    assert!(v.chunks(C).all(|r| r[2] == 0.0));
    // Labels untouched without fit_labels.
    assert_eq!(d.labels.to_vec().unwrap(), data().labels.to_vec().unwrap());
}

#[test]
fn min_max_maps_to_the_target_range_and_constants_to_low() {
    let mut d = data();
    let mut m = NormalizerMinMaxScaler::with_range(-1.0, 1.0).unwrap();
    m.fit_data(&d).unwrap();
    m.transform(&mut d).unwrap();
    let v = d.features.to_vec().unwrap();
    for j in [0, 1, 3] {
        let (_, _, min, max) = reference(&v, C, j);
        assert!(
            (min + 1.0).abs() < 1e-12 && (max - 1.0).abs() < 1e-12,
            "{j}"
        );
    }
    assert!(v.chunks(C).all(|r| r[2] == -1.0));
    assert_eq!(m.target_range(), (-1.0, 1.0));
    assert!(NormalizerMinMaxScaler::with_range(1.0, 1.0).is_err());
    assert_eq!(
        NormalizerMinMaxScaler::with_range(2.0, f64::NAN)
            .unwrap_err()
            .to_string(),
        "NormalizerMinMaxScaler::with_range: expected a finite target range with low < high, \
         found [2, NaN]"
    );
}

#[test]
fn image_scaler_needs_no_fit_and_leaves_labels() {
    let x = NdArray::<f32>::from_slice(&[1, 1, 2, 2], &[0., 51., 102., 255.]).unwrap();
    let y = NdArray::<f32>::from_slice(&[1, 2], &[3., 4.]).unwrap();
    let mut d = DataSet::new(x, y).unwrap();
    let s = ImagePreProcessingScaler::new();
    assert!(DataNormalization::<f32>::is_fitted(&s));
    s.transform(&mut d).unwrap();
    assert_eq!(d.features.to_vec().unwrap(), [0.0, 0.2, 0.4, 1.0]);
    assert_eq!(d.labels.to_vec().unwrap(), [3., 4.]);
    let s = ImagePreProcessingScaler::with_range(-1.0, 1.0)
        .unwrap()
        .with_max_value(1.0)
        .unwrap();
    let mut a = NdArray::<f64>::from_slice(&[1, 3], &[0.0, 0.5, 1.0]).unwrap();
    s.transform_features(&mut a).unwrap();
    assert_eq!(a.to_vec().unwrap(), [-1.0, 0.0, 1.0]);
}

#[test]
fn masked_sequence_steps_are_ignored_by_fit_and_left_by_transform() {
    // [2 examples, 1 feature, 3 steps]; example 1 has only its first step real.
    let x = NdArray::<f64>::from_slice(&[2, 1, 3], &[1., 2., 3., 4., 0., 0.]).unwrap();
    let y = NdArray::<f64>::zeros(&[2, 1, 3]).unwrap();
    let mask = NdArray::<f64>::from_slice(&[2, 3], &[1., 1., 1., 1., 0., 0.]).unwrap();
    let mut d = DataSet::new(x, y)
        .unwrap()
        .with_masks(Some(mask.dup().unwrap()), Some(mask))
        .unwrap();
    let mut s = NormalizerStandardize::new();
    s.fit_data(&d).unwrap();
    assert_eq!(s.mean().unwrap(), [2.5]);
    assert_eq!(s.feature_stats().unwrap().count, 4);
    let std = s.std().unwrap()[0];
    assert!((std - 1.25f64.sqrt()).abs() < 1e-15);
    s.transform(&mut d).unwrap();
    let v = d.features.to_vec().unwrap();
    assert_eq!(&v[4..], [0.0, 0.0], "padding stays zero");
    assert!((v[3] - 1.5 / std).abs() < 1e-12);
}

#[test]
fn errors() {
    let s = NormalizerStandardize::new();
    let mut d = data();
    assert!(!DataNormalization::<f64>::is_fitted(&s));
    assert_eq!(
        s.transform(&mut d).unwrap_err().to_string(),
        "NormalizerStandardize::transform: expected a fitted normalizer (call fit or fit_data \
         first), found an unfitted one"
    );
    let mut s = NormalizerStandardize::new();
    s.fit_data(&d).unwrap();
    let mut wrong = NdArray::<f64>::zeros(&[2, 3]).unwrap();
    assert_eq!(
        s.transform_features(&mut wrong).unwrap_err().to_string(),
        "features: expected 4 columns (axis 1) like the data the normalizer was fitted on, \
         found shape [2, 3]"
    );
    let mut flat = NdArray::<f64>::zeros(&[4]).unwrap();
    assert_eq!(
        s.transform_features(&mut flat).unwrap_err().to_string(),
        "features: expected an array with at least 2 axes ([examples, columns, ...]), found \
         shape [4]"
    );
    assert_eq!(
        Normalizer::from_name("zscore").unwrap_err().to_string(),
        "Normalizer::from_name: expected one of standardize, minmax, image, found \"zscore\""
    );
}

/// An iterator that cannot reset.
struct OneShot(InMemoryDataSetIterator<f64>);

impl DataSetIterator<f64> for OneShot {
    fn next(&mut self) -> Option<Result<DataSet<f64>, dl4rs_data::DataError>> {
        self.0.next()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        Err(dl4rs_data::DataError::Invalid {
            op: "OneShot::reset",
            message: "no".into(),
        })
    }
    fn reset_supported(&self) -> bool {
        false
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        self.0.batch()
    }
    fn total_outcomes(&self) -> usize {
        self.0.total_outcomes()
    }
    fn input_columns(&self) -> usize {
        self.0.input_columns()
    }
    fn total_examples(&self) -> Option<usize> {
        self.0.total_examples()
    }
}

#[test]
fn fit_needs_a_resettable_iterator() {
    let mut it = OneShot(InMemoryDataSetIterator::new(data(), 10).unwrap());
    let e = NormalizerStandardize::new().fit(&mut it).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DataNormalization::fit: expected an iterator that supports reset (fit reads one full \
         epoch and rewinds it), found one that does not"
    );
}

#[test]
fn json_round_trips() {
    let d = data();
    let mut s = NormalizerStandardize::new().fit_labels(true);
    s.fit_data(&d).unwrap();
    let back = NormalizerStandardize::from_json(&s.to_json().unwrap()).unwrap();
    assert_eq!(back, s);
    let mut m = NormalizerMinMaxScaler::with_range(-3.0, 0.5).unwrap();
    m.fit_data(&d).unwrap();
    assert_eq!(
        NormalizerMinMaxScaler::from_json(&m.to_json().unwrap()).unwrap(),
        m
    );
    let i = ImagePreProcessingScaler::with_range(0.0, 2.0).unwrap();
    assert_eq!(
        ImagePreProcessingScaler::from_json(&i.to_json().unwrap()).unwrap(),
        i
    );

    for n in [Normalizer::from(s.clone()), m.clone().into(), i.into()] {
        let json = n.to_json().unwrap();
        let back = Normalizer::from_json(&json).unwrap();
        assert_eq!(back, n);
        // Same results after the round trip (bit for bit).
        let (mut a, mut b) = (d.dup().unwrap(), d.dup().unwrap());
        n.transform(&mut a).unwrap();
        back.transform(&mut b).unwrap();
        assert_eq!(a.features.to_vec().unwrap(), b.features.to_vec().unwrap());
    }
    let json = Normalizer::from(s).to_json().unwrap();
    assert!(json.contains("\"type\": \"standardize\""), "{json}");

    // Bad JSON: syntax, and statistics that would break transform.
    let e = Normalizer::from_json("{\"type\": \"standardize\"").unwrap_err();
    assert!(
        e.to_string().starts_with("Normalizer: invalid JSON: "),
        "{e}"
    );
    let bad = r#"{"type":"min_max","low":0.0,"high":1.0,"fit_labels":false,
        "features":{"count":1,"mean":[1.0],"std":[0.0],"min":[2.0],"max":[1.0]},"labels":null}"#;
    assert_eq!(
        Normalizer::from_json(bad).unwrap_err().to_string(),
        "NormalizerMinMaxScaler: column 0: expected finite statistics with std >= 0 and min <= \
         max, found mean 1, std 0, min 2, max 1"
    );
    let bad = r#"{"type":"image_scaler","low":1.0,"high":0.0,"max_value":255.0}"#;
    assert!(Normalizer::from_json(bad).is_err());
}

#[test]
fn pre_processed_iterator_normalizes_every_batch() {
    let d = data();
    let mut raw = InMemoryDataSetIterator::new(d.dup().unwrap(), 10).unwrap();
    let mut n = Normalizer::from_name("standardize").unwrap();
    n.fit(&mut raw).unwrap();
    let mut it = PreProcessedIterator::new(raw, n.clone());
    assert_eq!(it.total_examples(), Some(N));
    assert!(!it.async_supported());
    let mut got = Vec::new();
    while let Some(b) = it.next() {
        got.extend(b.unwrap().features.to_vec().unwrap());
    }
    let mut want = d;
    n.transform(&mut want).unwrap();
    assert_eq!(got, want.features.to_vec().unwrap());
    it.reset().unwrap();
    assert!(it.has_next());
    let (_inner, back) = it.into_parts();
    assert_eq!(back, n);
}
