//! Shared by the ParallelWrapper tests: small networks, deterministic data, iterators.

#![allow(dead_code)]

use dl4rs_array::{DataType, NdArray};
use dl4rs_data::records::{
    AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator,
};
use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_nn::*;

/// An MLP `inputs`-`hidden` (tanh)-`classes` (softmax, cross-entropy).
pub fn mlp<T: DataType>(
    inputs: usize,
    hidden: usize,
    classes: usize,
    updater: Updater,
) -> MultiLayerNetwork<T> {
    let conf = NeuralNetConfiguration::builder()
        .seed(7)
        .updater(updater)
        .list()
        .layer(
            LayerConf::dense(hidden)
                .n_in(inputs)
                .activation(Activation::Tanh),
        )
        .layer(LayerConf::output(LossFunction::Mcxent, classes).activation(Activation::Softmax))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

/// `rows` examples: uniform features, one-hot labels from a fixed rule.
pub fn data<T: DataType>(rows: usize, inputs: usize, classes: usize, seed: u64) -> DataSet<T> {
    let x = NdArray::<T>::rand_uniform(&[rows, inputs], T::from_f64(-1.0), T::ONE, seed).unwrap();
    let xs = x.to_vec().unwrap();
    let mut y = vec![T::ZERO; rows * classes];
    for r in 0..rows {
        let s: f64 = xs[r * inputs..(r + 1) * inputs]
            .iter()
            .map(|v| v.to_f64())
            .sum();
        let c = ((s.abs() * 3.0) as usize + r % 2) % classes;
        y[r * classes + c] = T::ONE;
    }
    let y = NdArray::from_slice_detached(&[rows, classes], &y).unwrap();
    DataSet::new(x, y).unwrap()
}

/// An in-memory iterator (no shuffle) as a boxed, sendable source.
pub fn source<T: DataType>(d: &DataSet<T>, batch: usize) -> Box<dyn DataSetIterator<T> + Send> {
    Box::new(InMemoryDataSetIterator::new(d.dup().unwrap(), batch).unwrap())
}

/// Largest absolute difference.
pub fn max_diff<T: DataType>(a: &NdArray<T>, b: &NdArray<T>) -> f64 {
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs())
        .fold(0.0, f64::max)
}

/// Threads of this process whose name starts with `prefix` (Linux: /proc/self/task).
pub fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

/// The threads named with `prefix` once they have had up to a second to leave: what a test
/// of joined threads counts. `JoinHandle::join` returns when the thread's tid futex is
/// cleared, which Linux does early in the thread's exit, before it drops the thread's
/// `/proc/self/task` entry; under load a joined thread can stay listed for a few milliseconds
/// (seen after this session's changes made exits more often overlap the count). A thread
/// that was *not* joined and keeps running stays counted.
pub fn threads_left(prefix: &str) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let n = threads_named(prefix);
        if n == 0 || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether at least `n` threads named with `prefix` are listed within a second: a thread
/// takes its name itself once it runs, and a test may look right after the spawn (the
/// coordinator posts rounds ahead without waiting for the trainers to take them).
pub fn threads_present(prefix: &str, n: usize) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        if threads_named(prefix) >= n {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `n` variable-length sequences of `channels` values per step, in batches of `batch`, padded
/// to each batch's longest and aligned at the end with masks (`[batch, classes]` labels when
/// `per_sequence`, else per step with the labels mask). Sequence `i` is the longest of its
/// group of `group` (`lengths[(i / group) % len]` steps) when `i % group == 0`, shorter
/// otherwise, so batches of `group` have exactly those lengths and every batch has padding.
pub fn sequence_batches<T: DataType>(
    n: usize,
    batch: usize,
    group: usize,
    lengths: &[usize],
    channels: usize,
    classes: usize,
    per_sequence: bool,
) -> SequenceRecordReaderDataSetIterator<T> {
    let (mut f, mut l) = (Vec::new(), Vec::new());
    for i in 0..n {
        let longest = lengths[(i / group) % lengths.len()];
        let len = if i % group == 0 {
            longest
        } else {
            1 + (i * 7) % longest
        };
        let text: String = (0..len)
            .map(|t| {
                let row: Vec<String> = (0..channels)
                    .map(|c| format!("{:.4}", ((i * 5 + 3 * t + 7 * c) % 13) as f64 / 13.0 - 0.5))
                    .collect();
                row.join(",") + "\n"
            })
            .collect();
        f.push((format!("{i}.csv"), text));
        l.push((format!("{i}.csv"), format!("{}\n", (i + len) % classes)));
    }
    let read = |files: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut r = CsvSequenceRecordReader::new(0, ',');
        r.initialize_strs(&pairs).unwrap();
        r
    };
    let it = SequenceRecordReaderDataSetIterator::classification(
        read(&f),
        read(&l),
        batch,
        classes,
        AlignmentMode::AlignEnd,
    )
    .unwrap();
    if per_sequence {
        it.with_labels_per_sequence()
    } else {
        it
    }
}
