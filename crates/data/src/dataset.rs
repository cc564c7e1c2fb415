//! [`DataSet`]: a batch (or a whole set) of examples, features and labels with optional masks,
//! as in DL4J's `org.nd4j.linalg.dataset.DataSet`.
//!
//! Placement rule for every operation that makes new arrays (split, select, batch, merge):
//! the result goes to the heap when the input is on the heap, and to the current workspace
//! (or the heap when none is open) when the input lives in a workspace. A heap data set split
//! inside a training loop's workspace therefore stays on the heap and outlives the cycle.

use dl4rs_array::{ArrayOps, AsView, DataType, NdArray, ops};
use dl4rs_memory::{Workspace, WorkspaceScope, scope_out_of_workspaces};

use crate::error::{DataError, invalid};

/// A set of examples: `features` `[n, inputs, ...]` and `labels` `[n, outcomes, ...]` (row `i`
/// of each is example `i`), with optional per-example masks (for variable-length sequences).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::DataSet;
///
/// let x = NdArray::<f32>::from_slice(&[4, 2], &[0., 0., 0., 1., 1., 0., 1., 1.]).unwrap();
/// let y = NdArray::<f32>::from_slice(&[4, 1], &[0., 1., 1., 0.]).unwrap();
/// let mut xor = DataSet::new(x, y).unwrap();
/// assert_eq!((xor.num_examples(), xor.num_inputs(), xor.num_outcomes()), (4, 2, 1));
///
/// xor.shuffle(7).unwrap(); // the same rows, in a seeded order
/// let (train, test) = xor.split_test_and_train(3).unwrap();
/// assert_eq!((train.num_examples(), test.num_examples()), (3, 1));
/// let all = DataSet::merge(&[train, test]).unwrap();
/// assert_eq!(all.num_examples(), 4);
/// ```
#[derive(Debug)]
pub struct DataSet<T: DataType = f32> {
    /// The inputs, `[n, inputs, ...]`.
    pub features: NdArray<T>,
    /// The targets, `[n, outcomes, ...]` (one-hot rows for classification).
    pub labels: NdArray<T>,
    /// Optional features mask, `[n, ...]` (1 = present, 0 = padding).
    pub features_mask: Option<NdArray<T>>,
    /// Optional labels mask, `[n, ...]`.
    pub labels_mask: Option<NdArray<T>>,
}

/// Keeps new arrays on the heap while it lives, when `heap` is set (see the module docs).
fn place_like(heap: bool) -> Option<WorkspaceScope> {
    heap.then(scope_out_of_workspaces)
}

fn check_rows<T: DataType>(
    what: &str,
    name: &str,
    a: &NdArray<T>,
    min_rank: usize,
    rows: Option<usize>,
) -> Result<(), DataError> {
    if a.ndim() < min_rank {
        return Err(DataError::Mismatch {
            what: what.to_owned(),
            message: format!(
                "expected {name} with at least {min_rank} axes ([examples, ...]), found shape {:?}",
                a.shape()
            ),
        });
    }
    if let Some(n) = rows
        && a.shape()[0] != n
    {
        return Err(DataError::Mismatch {
            what: what.to_owned(),
            message: format!(
                "{name} has {} examples (shape {:?}), expected {n} like the features",
                a.shape()[0],
                a.shape()
            ),
        });
    }
    Ok(())
}

impl<T: DataType> DataSet<T> {
    /// A data set from features `[n, inputs, ...]` and labels `[n, outcomes, ...]`; both need
    /// at least two axes and the same number of examples `n`.
    pub fn new(features: NdArray<T>, labels: NdArray<T>) -> Result<Self, DataError> {
        check_rows("DataSet::new", "features", &features, 2, None)?;
        let n = features.shape()[0];
        check_rows("DataSet::new", "labels", &labels, 2, Some(n))?;
        Ok(DataSet {
            features,
            labels,
            features_mask: None,
            labels_mask: None,
        })
    }

    /// The data set with the given masks (each `[n, ...]`, `n` the number of examples).
    pub fn with_masks(
        mut self,
        features_mask: Option<NdArray<T>>,
        labels_mask: Option<NdArray<T>>,
    ) -> Result<Self, DataError> {
        let n = self.num_examples();
        for (name, m) in [
            ("features mask", &features_mask),
            ("labels mask", &labels_mask),
        ] {
            if let Some(m) = m {
                check_rows("DataSet::with_masks", name, m, 1, Some(n))?;
            }
        }
        self.features_mask = features_mask;
        self.labels_mask = labels_mask;
        Ok(self)
    }

    /// Re-checks the invariants `new` and `with_masks` establish, since the fields are
    /// public and may have been replaced since.
    pub(crate) fn validate(&self, what: &str) -> Result<(), DataError> {
        check_rows(what, "features", &self.features, 2, None)?;
        let n = self.features.shape()[0];
        check_rows(what, "labels", &self.labels, 2, Some(n))?;
        for (name, m) in [
            ("features mask", &self.features_mask),
            ("labels mask", &self.labels_mask),
        ] {
            if let Some(m) = m {
                check_rows(what, name, m, 1, Some(n))?;
            }
        }
        Ok(())
    }

    /// Number of examples (rows).
    pub fn num_examples(&self) -> usize {
        self.features.shape().first().copied().unwrap_or(0)
    }

    /// Number of input columns: axis 1 of the features.
    pub fn num_inputs(&self) -> usize {
        self.features.shape().get(1).copied().unwrap_or(1)
    }

    /// Number of outcomes (classes for one-hot labels): axis 1 of the labels.
    pub fn num_outcomes(&self) -> usize {
        self.labels.shape().get(1).copied().unwrap_or(1)
    }

    /// Whether any array lives in a workspace.
    pub fn is_attached(&self) -> bool {
        self.arrays().any(NdArray::is_attached)
    }

    /// Whether every array is on the heap or in `workspace` (with `None`: on the heap). Such a
    /// data set stays valid for as long as that workspace's current cycle, whichever thread
    /// reads it: ParallelWrapper's trainers read batches made in the coordinator's round
    /// workspace where they are, and copy only those that live anywhere else (a prefetch ring).
    pub fn is_held_by(&self, workspace: Option<&Workspace>) -> bool {
        self.arrays()
            .all(|a| !a.is_attached() || workspace.is_some_and(|w| a.is_in(w)))
    }

    fn arrays(&self) -> impl Iterator<Item = &NdArray<T>> {
        [Some(&self.features), Some(&self.labels)]
            .into_iter()
            .chain([self.features_mask.as_ref(), self.labels_mask.as_ref()])
            .flatten()
    }

    fn map_arrays(
        self,
        mut f: impl FnMut(NdArray<T>) -> Result<NdArray<T>, dl4rs_array::ArrayError>,
    ) -> Result<Self, DataError> {
        Ok(DataSet {
            features: f(self.features)?,
            labels: f(self.labels)?,
            features_mask: self.features_mask.map(&mut f).transpose()?,
            labels_mask: self.labels_mask.map(&mut f).transpose()?,
        })
    }

    /// ND4J `detach()`: heap copies of every array (arrays already on the heap are kept as
    /// they are), so the data set outlives the workspace cycle it was made in.
    pub fn detach(self) -> Result<Self, DataError> {
        self.map_arrays(NdArray::detach)
    }

    /// ND4J `migrate()`: copies every array into the current workspace; with none open the
    /// data set is returned as is.
    pub fn migrate(self) -> Result<Self, DataError> {
        self.map_arrays(NdArray::migrate)
    }

    /// A copy (placed by the module's rule).
    pub fn dup(&self) -> Result<Self, DataError> {
        let _heap = place_like(!self.is_attached());
        self.map_ref(|a| a.dup())
    }

    fn map_ref(
        &self,
        mut f: impl FnMut(&NdArray<T>) -> Result<NdArray<T>, dl4rs_array::ArrayError>,
    ) -> Result<Self, DataError> {
        Ok(DataSet {
            features: f(&self.features)?,
            labels: f(&self.labels)?,
            features_mask: self.features_mask.as_ref().map(&mut f).transpose()?,
            labels_mask: self.labels_mask.as_ref().map(&mut f).transpose()?,
        })
    }

    /// The examples `indices` (in that order; repeats allowed), placed by the module's rule.
    pub fn select_rows(&self, indices: &[usize]) -> Result<Self, DataError> {
        let n = self.num_examples();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(invalid(
                "DataSet::select_rows",
                format!("example index {bad} is out of range for {n} examples"),
            ));
        }
        let _heap = place_like(!self.is_attached());
        self.map_ref(|a| a.gather_rows(indices))
    }

    fn range(&self, start: usize, end: usize) -> Result<Self, DataError> {
        self.map_ref(|a| a.view().slice_axis(0, start, end, 1)?.dup())
    }

    /// DL4J `splitTestAndTrain(n)`: the first `n_train` examples and the rest (shuffle first
    /// for a random split). `n_train` may be anything from 0 to `num_examples()`.
    pub fn split_test_and_train(self, n_train: usize) -> Result<(Self, Self), DataError> {
        self.validate("DataSet::split_test_and_train")?;
        let n = self.num_examples();
        if n_train > n {
            return Err(invalid(
                "DataSet::split_test_and_train",
                format!(
                    "expected at most {n} training examples (the data set's size), found {n_train}"
                ),
            ));
        }
        let _heap = place_like(!self.is_attached());
        Ok((self.range(0, n_train)?, self.range(n_train, n)?))
    }

    /// Splits into consecutive batches of `batch_size` examples (the last one may be
    /// smaller), placed by the module's rule.
    pub fn batch_by(&self, batch_size: usize) -> Result<Vec<Self>, DataError> {
        if batch_size == 0 {
            return Err(invalid(
                "DataSet::batch_by",
                "expected a batch size of at least 1, found 0",
            ));
        }
        let n = self.num_examples();
        let _heap = place_like(!self.is_attached());
        (0..n)
            .step_by(batch_size)
            .map(|start| self.range(start, (start + batch_size).min(n)))
            .collect()
    }

    /// Reorders the examples in place with a seeded Fisher–Yates shuffle (see
    /// [`shuffle_indices`]): the same seed always gives the same order. Arrays stay where
    /// they are (heap or workspace).
    pub fn shuffle(&mut self, seed: u64) -> Result<(), DataError> {
        self.validate("DataSet::shuffle")?;
        let mut perm: Vec<usize> = (0..self.num_examples()).collect();
        shuffle_indices(&mut perm, seed);
        permute_rows(&mut self.features, &perm)?;
        permute_rows(&mut self.labels, &perm)?;
        if let Some(m) = &mut self.features_mask {
            permute_rows(m, &perm)?;
        }
        if let Some(m) = &mut self.labels_mask {
            permute_rows(m, &perm)?;
        }
        Ok(())
    }

    /// Concatenates data sets along the examples. They must agree in feature and label shape
    /// (apart from the number of examples) and either all have a given mask or none. The
    /// result is on the heap when every input is, else in the current workspace.
    pub fn merge(sets: &[DataSet<T>]) -> Result<DataSet<T>, DataError> {
        let first = sets.first().ok_or_else(|| {
            invalid(
                "DataSet::merge",
                "expected at least one data set, found none",
            )
        })?;
        for s in sets {
            s.validate("DataSet::merge")?;
        }
        for (i, s) in sets.iter().enumerate().skip(1) {
            let pairs = [
                ("features", &first.features, &s.features),
                ("labels", &first.labels, &s.labels),
            ];
            for (name, a, b) in pairs {
                if a.shape()[1..] != b.shape()[1..] {
                    return Err(DataError::Mismatch {
                        what: "DataSet::merge".into(),
                        message: format!(
                            "data set {i} has {name} of shape {:?}, expected [_, {}] like data set 0",
                            b.shape(),
                            dims_tail(a.shape())
                        ),
                    });
                }
            }
            let masks = [
                ("features mask", &first.features_mask, &s.features_mask),
                ("labels mask", &first.labels_mask, &s.labels_mask),
            ];
            for (name, a, b) in masks {
                if a.is_some() != b.is_some() {
                    return Err(DataError::Mismatch {
                        what: "DataSet::merge".into(),
                        message: format!(
                            "data set {i} {} but data set 0 {}: all or none must have one",
                            if b.is_some() {
                                format!("has a {name}")
                            } else {
                                format!("has no {name}")
                            },
                            if a.is_some() { "has one" } else { "has none" },
                        ),
                    });
                }
            }
        }
        let _heap = place_like(!sets.iter().any(DataSet::is_attached));
        let mask = |pick: fn(&DataSet<T>) -> Option<&NdArray<T>>| {
            pick(first)
                .map(|_| concat_rows(sets.iter().filter_map(pick)))
                .transpose()
        };
        Ok(DataSet {
            features: concat_rows(sets.iter().map(|s| &s.features))?,
            labels: concat_rows(sets.iter().map(|s| &s.labels))?,
            features_mask: mask(|s| s.features_mask.as_ref())?,
            labels_mask: mask(|s| s.labels_mask.as_ref())?,
        })
    }
}

fn concat_rows<'a, T: DataType>(
    arrays: impl Iterator<Item = &'a NdArray<T>>,
) -> Result<NdArray<T>, dl4rs_array::ArrayError> {
    let views: Vec<_> = arrays.map(AsView::view).collect();
    ops::concat(&views, 0)
}

fn dims_tail(shape: &[usize]) -> String {
    shape[1..]
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seeded Fisher–Yates shuffle of `indices` in place, without allocating. Swap partner `j`
/// for position `i` comes from `dl4rs_array::random::splitmix(seed, i)` (scaled to `0..=i` by
/// a 128-bit multiply, so there is no modulo bias), hence the result depends only on the seed
/// and the length, on every platform.
///
/// ```
/// let mut order: Vec<usize> = (0..10).collect();
/// dl4rs_data::shuffle_indices(&mut order, 42);
/// let mut again: Vec<usize> = (0..10).collect();
/// dl4rs_data::shuffle_indices(&mut again, 42);
/// assert_eq!(order, again);
/// ```
pub fn shuffle_indices(indices: &mut [usize], seed: u64) {
    for i in (1..indices.len()).rev() {
        let r = dl4rs_array::random::splitmix(seed, i as u64);
        let j = ((u128::from(r) * (i as u128 + 1)) >> 64) as usize;
        indices.swap(i, j);
    }
}

/// Row `i` of `a` becomes old row `perm[i]`, in place (so the array keeps its placement),
/// following the permutation's cycles with one row of scratch.
fn permute_rows<T: DataType>(a: &mut NdArray<T>, perm: &[usize]) -> Result<(), DataError> {
    if !a.is_contiguous() {
        // Only arrays assembled by hand through the public fields can be strided.
        let _heap = place_like(!a.is_attached());
        *a = a.dup()?;
    }
    let row: usize = a.shape()[1..].iter().product();
    let mut w = a.write()?;
    let Some(data) = w.as_slice_mut() else {
        return Err(invalid("DataSet::shuffle", "array is not contiguous"));
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
