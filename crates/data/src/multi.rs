//! [`MultiDataSet`]: several feature arrays and several label arrays per example, each with
//! an optional mask (DL4J's `org.nd4j.linalg.dataset.MultiDataSet`, for networks with several
//! inputs or outputs), the [`MultiDataSetIterator`] contract and
//! [`InMemoryMultiDataSetIterator`].
//!
//! Placement follows [`DataSet`]'s rule: operations that make new arrays (split, merge, dup)
//! put them on the heap when every input array is on the heap, else in the current workspace;
//! an iterator's `next()` allocates in the caller's current workspace.

use std::sync::Arc;

use dl4rs_array::{ArrayOps, AsView, DataType, NdArray, ops};
use dl4rs_memory::{Workspace, WorkspaceScope, scope_out_of_workspaces};

use crate::dataset::{DataSet, shuffle_indices};
use crate::error::{DataError, invalid};
use crate::lazy::{Lazy, LazyMultiDataSet, RowBatch};

/// Examples with several inputs and outputs: `features[k]` is input array `k`
/// (`[n, ...]`), `labels[k]` output array `k`; row `i` of every array is example `i`. Each
/// array has an optional mask (`features_masks[k]`, `labels_masks[k]`, `[n, ...]`).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::MultiDataSet;
///
/// let a = NdArray::<f32>::from_slice(&[3, 1], &[0., 1., 2.]).unwrap();
/// let b = NdArray::<f32>::from_slice(&[3, 2], &[0., 0., 1., 1., 2., 2.]).unwrap();
/// let y = NdArray::<f32>::from_slice(&[3, 1], &[0., 10., 20.]).unwrap();
/// let mut m = MultiDataSet::new(vec![a, b], vec![y]).unwrap();
/// m.shuffle(5).unwrap(); // one permutation for every array
/// let (train, test) = m.split_test_and_train(2).unwrap();
/// assert_eq!((train.num_examples().unwrap(), test.num_examples().unwrap()), (2, 1));
/// let all = MultiDataSet::merge(&[train, test]).unwrap();
/// let a = all.features[0].to_vec().unwrap();
/// let y = all.labels[0].to_vec().unwrap();
/// for i in 0..3 {
///     assert_eq!(y[i], a[i] * 10.0); // rows stayed aligned
/// }
/// ```
#[derive(Debug)]
pub struct MultiDataSet<T: DataType = f32> {
    /// The input arrays, each `[n, ...]`.
    pub features: Vec<NdArray<T>>,
    /// The output arrays, each `[n, ...]`.
    pub labels: Vec<NdArray<T>>,
    /// One optional mask per input array (same length as `features`).
    pub features_masks: Vec<Option<NdArray<T>>>,
    /// One optional mask per output array (same length as `labels`).
    pub labels_masks: Vec<Option<NdArray<T>>>,
}

fn place_like(heap: bool) -> Option<WorkspaceScope> {
    heap.then(scope_out_of_workspaces)
}

fn mismatch(what: &str, message: String) -> DataError {
    DataError::Mismatch {
        what: what.to_owned(),
        message,
    }
}

impl<T: DataType> MultiDataSet<T> {
    /// Input arrays `features` (at least one) and output arrays `labels` (possibly none, for
    /// unsupervised training), all with at least one axis and the same number of examples.
    pub fn new(features: Vec<NdArray<T>>, labels: Vec<NdArray<T>>) -> Result<Self, DataError> {
        let m = MultiDataSet {
            features_masks: features.iter().map(|_| None).collect(),
            labels_masks: labels.iter().map(|_| None).collect(),
            features,
            labels,
        };
        m.num_examples_for("MultiDataSet::new")?;
        Ok(m)
    }

    /// The data set with the given masks: one entry per input (resp. output) array.
    pub fn with_masks(
        mut self,
        features_masks: Vec<Option<NdArray<T>>>,
        labels_masks: Vec<Option<NdArray<T>>>,
    ) -> Result<Self, DataError> {
        self.features_masks = features_masks;
        self.labels_masks = labels_masks;
        self.num_examples_for("MultiDataSet::with_masks")?;
        Ok(self)
    }

    /// The number of examples, checking that every array and mask agrees on it (the fields
    /// are public, so this is checked on every call).
    pub fn num_examples(&self) -> Result<usize, DataError> {
        self.num_examples_for("MultiDataSet::num_examples")
    }

    fn named(&self) -> impl Iterator<Item = (String, &NdArray<T>)> {
        let f = self
            .features
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("features[{k}]"), a));
        let l = self
            .labels
            .iter()
            .enumerate()
            .map(|(k, a)| (format!("labels[{k}]"), a));
        let fm = self
            .features_masks
            .iter()
            .enumerate()
            .filter_map(|(k, a)| a.as_ref().map(|a| (format!("features_masks[{k}]"), a)));
        let lm = self
            .labels_masks
            .iter()
            .enumerate()
            .filter_map(|(k, a)| a.as_ref().map(|a| (format!("labels_masks[{k}]"), a)));
        f.chain(l).chain(fm).chain(lm)
    }

    fn num_examples_for(&self, what: &str) -> Result<usize, DataError> {
        if self.features.is_empty() {
            return Err(mismatch(
                what,
                "expected at least one features array, found none".into(),
            ));
        }
        if self.features_masks.len() != self.features.len()
            || self.labels_masks.len() != self.labels.len()
        {
            return Err(mismatch(
                what,
                format!(
                    "expected one mask entry per array ({} features, {} labels), found {} \
                     features masks and {} labels masks",
                    self.features.len(),
                    self.labels.len(),
                    self.features_masks.len(),
                    self.labels_masks.len()
                ),
            ));
        }
        let n = self.features[0].shape().first().copied();
        for (name, a) in self.named() {
            match a.shape().first() {
                None => {
                    return Err(mismatch(
                        what,
                        format!("{name}: expected an array with an examples axis, found a scalar"),
                    ));
                }
                Some(&rows) if Some(rows) != n => {
                    return Err(mismatch(
                        what,
                        format!(
                            "{name} has {rows} examples (shape {:?}), expected {} like features[0]",
                            a.shape(),
                            n.unwrap_or(0)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(n.unwrap_or(0))
    }

    /// Number of input arrays.
    pub fn num_features_arrays(&self) -> usize {
        self.features.len()
    }

    /// Number of output arrays.
    pub fn num_labels_arrays(&self) -> usize {
        self.labels.len()
    }

    /// Whether any array lives in a workspace.
    pub fn is_attached(&self) -> bool {
        self.named().any(|(_, a)| a.is_attached())
    }

    /// Whether every array is on the heap or in `workspace` (with `None`: on the heap): see
    /// [`DataSet::is_held_by`](DataSet::is_held_by).
    pub fn is_held_by(&self, workspace: Option<&Workspace>) -> bool {
        let masks = self
            .features_masks
            .iter()
            .chain(&self.labels_masks)
            .flatten();
        self.features
            .iter()
            .chain(&self.labels)
            .chain(masks)
            .all(|a| !a.is_attached() || workspace.is_some_and(|w| a.is_in(w)))
    }

    fn try_map(
        self,
        mut f: impl FnMut(NdArray<T>) -> Result<NdArray<T>, DataError>,
    ) -> Result<Self, DataError> {
        let mut opt = |m: Option<NdArray<T>>| m.map(&mut f).transpose();
        let features_masks = self
            .features_masks
            .into_iter()
            .map(&mut opt)
            .collect::<Result<_, _>>()?;
        let labels_masks = self
            .labels_masks
            .into_iter()
            .map(&mut opt)
            .collect::<Result<_, _>>()?;
        Ok(MultiDataSet {
            features: self
                .features
                .into_iter()
                .map(&mut f)
                .collect::<Result<_, _>>()?,
            labels: self
                .labels
                .into_iter()
                .map(&mut f)
                .collect::<Result<_, _>>()?,
            features_masks,
            labels_masks,
        })
    }

    pub(crate) fn try_map_ref(
        &self,
        mut f: impl FnMut(&NdArray<T>) -> Result<NdArray<T>, DataError>,
    ) -> Result<Self, DataError> {
        let mut opt = |m: &Option<NdArray<T>>| m.as_ref().map(&mut f).transpose();
        let features_masks = self
            .features_masks
            .iter()
            .map(&mut opt)
            .collect::<Result<_, _>>()?;
        let labels_masks = self
            .labels_masks
            .iter()
            .map(&mut opt)
            .collect::<Result<_, _>>()?;
        Ok(MultiDataSet {
            features: self.features.iter().map(&mut f).collect::<Result<_, _>>()?,
            labels: self.labels.iter().map(&mut f).collect::<Result<_, _>>()?,
            features_masks,
            labels_masks,
        })
    }

    /// `f(array, out's array)` for every array and its counterpart in `out` (same counts of
    /// inputs, outputs and masks, else an error).
    pub(crate) fn try_zip_into(
        &self,
        out: &mut Self,
        mut f: impl FnMut(&NdArray<T>, &mut NdArray<T>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let same_masks = |a: &[Option<NdArray<T>>], b: &[Option<NdArray<T>>]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.is_some() == y.is_some())
        };
        let same = self.features.len() == out.features.len()
            && self.labels.len() == out.labels.len()
            && same_masks(&self.features_masks, &out.features_masks)
            && same_masks(&self.labels_masks, &out.labels_masks);
        if !same {
            return Err(crate::error::invalid(
                "gather_rows_into",
                "expected an output with the source's inputs, outputs and masks, but they \
                 differ; gather into an earlier gather of the same source",
            ));
        }
        let pairs = self.features.iter().zip(out.features.iter_mut());
        for (a, o) in pairs.chain(self.labels.iter().zip(out.labels.iter_mut())) {
            f(a, o)?;
        }
        let masks = self
            .features_masks
            .iter()
            .zip(out.features_masks.iter_mut());
        let masks = masks.chain(self.labels_masks.iter().zip(out.labels_masks.iter_mut()));
        for (a, o) in masks {
            if let (Some(a), Some(o)) = (a, o) {
                f(a, o)?;
            }
        }
        Ok(())
    }

    /// ND4J `detach()`: heap copies of every array (heap arrays are kept as they are).
    pub fn detach(self) -> Result<Self, DataError> {
        self.try_map(|a| Ok(a.detach()?))
    }

    /// ND4J `migrate()`: copies every array into the current workspace; with none open the
    /// data set is returned as is.
    pub fn migrate(self) -> Result<Self, DataError> {
        self.try_map(|a| Ok(a.migrate()?))
    }

    /// A copy (on the heap when every array is on the heap, else in the current workspace).
    pub fn dup(&self) -> Result<Self, DataError> {
        let _heap = place_like(!self.is_attached());
        self.try_map_ref(|a| Ok(a.dup()?))
    }

    /// The examples `indices` (in that order, repeats allowed), placed like [`dup`](Self::dup).
    pub fn select_rows(&self, indices: &[usize]) -> Result<Self, DataError> {
        let n = self.num_examples_for("MultiDataSet::select_rows")?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(invalid(
                "MultiDataSet::select_rows",
                format!("example index {bad} is out of range for {n} examples"),
            ));
        }
        let _heap = place_like(!self.is_attached());
        self.try_map_ref(|a| Ok(a.gather_rows(indices)?))
    }

    /// DL4J `splitTestAndTrain(n)`: the first `n_train` examples and the rest, for every
    /// array alike (shuffle first for a random split).
    pub fn split_test_and_train(self, n_train: usize) -> Result<(Self, Self), DataError> {
        let n = self.num_examples_for("MultiDataSet::split_test_and_train")?;
        if n_train > n {
            return Err(invalid(
                "MultiDataSet::split_test_and_train",
                format!(
                    "expected at most {n} training examples (the data set's size), found {n_train}"
                ),
            ));
        }
        let _heap = place_like(!self.is_attached());
        let range = |s: usize, e: usize| {
            self.try_map_ref(|a| Ok(a.view().slice_axis(0, s, e, 1)?.dup()?))
        };
        Ok((range(0, n_train)?, range(n_train, n)?))
    }

    /// Reorders the examples in place with one seeded permutation
    /// ([`shuffle_indices`]) applied to every array and mask, so rows stay aligned. Arrays
    /// stay where they are (heap or workspace).
    pub fn shuffle(&mut self, seed: u64) -> Result<(), DataError> {
        let n = self.num_examples_for("MultiDataSet::shuffle")?;
        let mut perm: Vec<usize> = (0..n).collect();
        shuffle_indices(&mut perm, seed);
        let arrays = self
            .features
            .iter_mut()
            .chain(self.labels.iter_mut())
            .chain(self.features_masks.iter_mut().flatten())
            .chain(self.labels_masks.iter_mut().flatten());
        for a in arrays {
            permute_rows(a, &perm)?;
        }
        Ok(())
    }

    /// Concatenates data sets along the examples. They must have the same number of input
    /// and output arrays, agree in each array's shape apart from the examples, and either all
    /// have a given mask or none. The result is on the heap when every input is, else in the
    /// current workspace.
    pub fn merge(sets: &[MultiDataSet<T>]) -> Result<MultiDataSet<T>, DataError> {
        const OP: &str = "MultiDataSet::merge";
        let first = sets
            .first()
            .ok_or_else(|| invalid(OP, "expected at least one data set, found none"))?;
        for s in sets {
            s.num_examples_for(OP)?;
        }
        for (i, s) in sets.iter().enumerate().skip(1) {
            if s.features.len() != first.features.len() || s.labels.len() != first.labels.len() {
                return Err(mismatch(
                    OP,
                    format!(
                        "data set {i} has {} features and {} labels arrays, expected {} and {} \
                         like data set 0",
                        s.features.len(),
                        s.labels.len(),
                        first.features.len(),
                        first.labels.len()
                    ),
                ));
            }
            let a: Vec<_> = first.named().collect();
            let b: Vec<_> = s.named().collect();
            let names =
                |v: &[(String, &NdArray<T>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            if names(&a) != names(&b) {
                return Err(mismatch(
                    OP,
                    format!(
                        "data set {i} has masks {:?}, expected the same masks as data set 0, \
                         {:?} (all or none must have each one)",
                        names(&b)
                            .into_iter()
                            .filter(|n| n.contains("mask"))
                            .collect::<Vec<_>>(),
                        names(&a)
                            .into_iter()
                            .filter(|n| n.contains("mask"))
                            .collect::<Vec<_>>(),
                    ),
                ));
            }
            for ((name, x), (_, y)) in a.iter().zip(&b) {
                if x.shape().get(1..) != y.shape().get(1..) {
                    return Err(mismatch(
                        OP,
                        format!(
                            "data set {i} has {name} of shape {:?}, expected [_, {:?}] like data \
                             set 0",
                            y.shape(),
                            x.shape().get(1..).unwrap_or(&[])
                        ),
                    ));
                }
            }
        }
        let _heap = place_like(!sets.iter().any(MultiDataSet::is_attached));
        let concat = |pick: &dyn Fn(&MultiDataSet<T>) -> Option<&NdArray<T>>| -> Result<Option<NdArray<T>>, DataError> {
            if pick(first).is_none() {
                return Ok(None);
            }
            let views: Vec<_> = sets.iter().filter_map(pick).map(AsView::view).collect();
            Ok(Some(ops::concat(&views, 0)?))
        };
        let mut out = MultiDataSet {
            features: Vec::new(),
            labels: Vec::new(),
            features_masks: Vec::new(),
            labels_masks: Vec::new(),
        };
        for k in 0..first.features.len() {
            out.features.extend(concat(&|s| s.features.get(k))?);
            out.features_masks.push(concat(&|s| {
                s.features_masks.get(k).and_then(Option::as_ref)
            })?);
        }
        for k in 0..first.labels.len() {
            out.labels.extend(concat(&|s| s.labels.get(k))?);
            out.labels_masks
                .push(concat(&|s| s.labels_masks.get(k).and_then(Option::as_ref))?);
        }
        Ok(out)
    }
}

impl<T: DataType> From<DataSet<T>> for MultiDataSet<T> {
    /// One input array and one output array, with the data set's masks.
    fn from(d: DataSet<T>) -> Self {
        MultiDataSet {
            features: vec![d.features],
            labels: vec![d.labels],
            features_masks: vec![d.features_mask],
            labels_masks: vec![d.labels_mask],
        }
    }
}

impl<T: DataType> TryFrom<MultiDataSet<T>> for DataSet<T> {
    type Error = DataError;

    /// A multi data set with exactly one input and one output array.
    fn try_from(m: MultiDataSet<T>) -> Result<Self, DataError> {
        if m.features.len() != 1 || m.labels.len() != 1 {
            return Err(mismatch(
                "DataSet::try_from(MultiDataSet)",
                format!(
                    "expected 1 features and 1 labels array, found {} and {}",
                    m.features.len(),
                    m.labels.len()
                ),
            ));
        }
        let fm = m.features_masks.into_iter().next().flatten();
        let lm = m.labels_masks.into_iter().next().flatten();
        let (Some(f), Some(l)) = (m.features.into_iter().next(), m.labels.into_iter().next())
        else {
            return Err(invalid("DataSet::try_from(MultiDataSet)", "arrays missing"));
        };
        DataSet::new(f, l)?.with_masks(fm, lm)
    }
}

/// Row `i` of `a` becomes old row `perm[i]`, in place, following the permutation's cycles
/// with one row of scratch.
fn permute_rows<T: DataType>(a: &mut NdArray<T>, perm: &[usize]) -> Result<(), DataError> {
    if !a.is_contiguous() {
        let _heap = place_like(!a.is_attached());
        *a = a.dup()?;
    }
    let row: usize = a.shape()[1..].iter().product();
    let mut w = a.write()?;
    let Some(data) = w.as_slice_mut() else {
        return Err(invalid("MultiDataSet::shuffle", "array is not contiguous"));
    };
    let mut done = vec![false; perm.len()];
    let mut tmp = vec![T::default(); row];
    for start in 0..perm.len() {
        if done[start] || perm[start] == start {
            continue;
        }
        tmp.copy_from_slice(&data[start * row..(start + 1) * row]);
        let mut j = start;
        loop {
            done[j] = true;
            let k = perm[j];
            if k == start {
                data[j * row..(j + 1) * row].copy_from_slice(&tmp);
                break;
            }
            data.copy_within(k * row..(k + 1) * row, j * row);
            j = k;
        }
    }
    Ok(())
}

/// A source of multi-input/-output mini-batches, DL4J's `MultiDataSetIterator`; the same
/// contract as [`DataSetIterator`](crate::DataSetIterator) (batches allocated in the caller's
/// current workspace; see its docs for each method).
pub trait MultiDataSetIterator<T: DataType = f32> {
    /// The next mini-batch, or `None` at the end of the epoch.
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>>;
    /// The next mini-batch, possibly not gathered yet (see
    /// [`DataSetIterator::next_lazy`](crate::DataSetIterator::next_lazy)); the default is
    /// `next()`, [`Lazy::Ready`].
    fn next_lazy(&mut self) -> Option<Result<LazyMultiDataSet<T>, DataError>> {
        self.next().map(|b| b.map(Lazy::Ready))
    }
    /// Whether there is another batch this epoch.
    fn has_next(&self) -> bool;
    /// Starts the next epoch; fails when `reset_supported` is false.
    fn reset(&mut self) -> Result<(), DataError>;
    /// Whether `reset` works.
    fn reset_supported(&self) -> bool;
    /// Whether asynchronous prefetching is useful and safe (false for in-memory sources).
    fn async_supported(&self) -> bool;
    /// The (maximum) number of examples per batch.
    fn batch(&self) -> usize;
    /// Number of examples per epoch, when known.
    fn total_examples(&self) -> Option<usize>;
}

impl<T: DataType, I: MultiDataSetIterator<T> + ?Sized> MultiDataSetIterator<T> for Box<I> {
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        (**self).next()
    }
    fn next_lazy(&mut self) -> Option<Result<LazyMultiDataSet<T>, DataError>> {
        (**self).next_lazy()
    }
    fn has_next(&self) -> bool {
        (**self).has_next()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        (**self).reset()
    }
    fn reset_supported(&self) -> bool {
        (**self).reset_supported()
    }
    fn async_supported(&self) -> bool {
        (**self).async_supported()
    }
    fn batch(&self) -> usize {
        (**self).batch()
    }
    fn total_examples(&self) -> Option<usize> {
        (**self).total_examples()
    }
}

/// Mini-batches over a [`MultiDataSet`] held on the heap, in order or reshuffled every epoch
/// (epoch `e` uses `shuffle_indices(0..n, seed + e)`), the last batch holding the remainder.
/// `async_supported` is false (all data is in memory).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{InMemoryMultiDataSetIterator, MultiDataSet, MultiDataSetIterator};
///
/// let a = NdArray::<f32>::from_slice(&[5, 1], &[0., 1., 2., 3., 4.]).unwrap();
/// let y = NdArray::<f32>::from_slice(&[5, 1], &[0., 1., 2., 3., 4.]).unwrap();
/// let mut it = InMemoryMultiDataSetIterator::new(MultiDataSet::new(vec![a], vec![y]).unwrap(), 2)
///     .unwrap()
///     .with_shuffle(1);
/// let mut seen = Vec::new();
/// while let Some(b) = it.next() {
///     let b = b.unwrap();
///     assert_eq!(b.features[0].to_vec().unwrap(), b.labels[0].to_vec().unwrap());
///     seen.extend(b.features[0].to_vec().unwrap());
/// }
/// seen.sort_by(f32::total_cmp);
/// assert_eq!(seen, [0., 1., 2., 3., 4.]);
/// ```
#[derive(Debug)]
pub struct InMemoryMultiDataSetIterator<T: DataType = f32> {
    /// Shared with the row batches of `next_lazy`, as `InMemoryDataSetIterator`'s.
    data: Arc<MultiDataSet<T>>,
    batch: usize,
    order: Arc<Vec<usize>>,
    cursor: usize,
    epoch: u64,
    shuffle_seed: Option<u64>,
}

impl<T: DataType> InMemoryMultiDataSetIterator<T> {
    /// An iterator over `data` (detached to the heap) in batches of `batch` examples.
    pub fn new(data: MultiDataSet<T>, batch: usize) -> Result<Self, DataError> {
        if batch == 0 {
            return Err(invalid(
                "InMemoryMultiDataSetIterator::new",
                "expected a batch size of at least 1, found 0",
            ));
        }
        let n = data.num_examples_for("InMemoryMultiDataSetIterator::new")?;
        Ok(InMemoryMultiDataSetIterator {
            data: Arc::new(data.detach()?),
            batch,
            order: Arc::new((0..n).collect()),
            cursor: 0,
            epoch: 0,
            shuffle_seed: None,
        })
    }

    /// Reshuffles every epoch (epoch `e` with seed `seed + e`); restarts the current epoch.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self.start_epoch();
        self
    }

    /// The underlying data set.
    pub fn data(&self) -> &MultiDataSet<T> {
        &self.data
    }

    fn start_epoch(&mut self) {
        self.cursor = 0;
        let order = Arc::make_mut(&mut self.order);
        for (i, v) in order.iter_mut().enumerate() {
            *v = i;
        }
        if let Some(seed) = self.shuffle_seed {
            shuffle_indices(order, seed.wrapping_add(self.epoch));
        }
    }

    /// The next batch's rows (and advances past them); `None` at the end of the epoch.
    fn next_rows(&mut self) -> Option<RowBatch<MultiDataSet<T>>> {
        if !self.has_next() {
            return None;
        }
        let end = (self.cursor + self.batch).min(self.order.len());
        let rows = RowBatch::new(
            Arc::clone(&self.data),
            Arc::clone(&self.order),
            self.cursor..end,
        );
        self.cursor = end;
        Some(rows)
    }
}

impl<T: DataType> MultiDataSetIterator<T> for InMemoryMultiDataSetIterator<T> {
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        self.next_rows().map(|rows| rows.gather())
    }
    fn next_lazy(&mut self) -> Option<Result<LazyMultiDataSet<T>, DataError>> {
        self.next_rows().map(|rows| Ok(Lazy::Rows(rows)))
    }
    fn has_next(&self) -> bool {
        self.cursor < self.order.len()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        self.epoch = self.epoch.wrapping_add(1);
        self.start_epoch();
        Ok(())
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        self.batch
    }
    fn total_examples(&self) -> Option<usize> {
        Some(self.order.len())
    }
}
