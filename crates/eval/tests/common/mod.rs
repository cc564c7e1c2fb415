//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use dl4rs_array::{DataType, NdArray};

/// Heap array from rows of f64 (converted to T).
pub fn mat<T: DataType>(rows: usize, cols: usize, data: &[f64]) -> NdArray<T> {
    let v: Vec<T> = data.iter().map(|&x| T::from_f64(x)).collect();
    NdArray::from_slice_detached(&[rows, cols], &v).unwrap()
}

/// One-hot labels for the classes in `actual`.
pub fn one_hot<T: DataType>(classes: usize, actual: &[usize]) -> NdArray<T> {
    let mut d = vec![0.0; actual.len() * classes];
    for (i, &a) in actual.iter().enumerate() {
        d[i * classes + a] = 1.0;
    }
    mat(actual.len(), classes, &d)
}

/// Softmax-like outputs with 0.7 on the predicted class, the rest spread evenly.
pub fn outputs<T: DataType>(classes: usize, predicted: &[usize]) -> NdArray<T> {
    let other = 0.3 / (classes - 1) as f64;
    let mut d = vec![other; predicted.len() * classes];
    for (i, &p) in predicted.iter().enumerate() {
        d[i * classes + p] = 0.7;
    }
    mat(predicted.len(), classes, &d)
}

pub fn vec1<T: DataType>(data: &[f64]) -> NdArray<T> {
    let v: Vec<T> = data.iter().map(|&x| T::from_f64(x)).collect();
    NdArray::from_slice_detached(&[data.len()], &v).unwrap()
}

pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[track_caller]
pub fn assert_close(a: f64, b: f64) {
    assert!(close(a, b, 1e-9), "{a} != {b}");
}
