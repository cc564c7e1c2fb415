//! [`ConfusionMatrix`]: counts of (actual class, predicted class) pairs, sized once.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Counts of (actual, predicted) class pairs; rows are actual classes, columns predicted ones.
///
/// ```
/// use dl4rs_eval::Evaluation;
/// use dl4rs_array::{AsView, NdArray};
///
/// let labels = NdArray::<f32>::from_slice(&[2, 2], &[1.0, 0.0, 0.0, 1.0]).unwrap();
/// let out = NdArray::<f32>::from_slice(&[2, 2], &[0.9, 0.1, 0.8, 0.2]).unwrap();
/// let mut ev = Evaluation::new(2);
/// ev.eval(&labels, &out, None).unwrap();
/// let cm = ev.confusion_matrix();
/// assert_eq!(cm.count(0, 0), 1);
/// assert_eq!(cm.count(1, 0), 1); // class 1 predicted as class 0
/// println!("{cm}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    n: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            n: num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.n
    }

    /// How many examples of class `actual` were predicted as `predicted` (0 out of range).
    pub fn count(&self, actual: usize, predicted: usize) -> u64 {
        if actual < self.n && predicted < self.n {
            self.counts[actual * self.n + predicted]
        } else {
            0
        }
    }

    /// Examples whose actual class is `class` (the row sum).
    pub fn actual_total(&self, class: usize) -> u64 {
        (0..self.n).map(|p| self.count(class, p)).sum()
    }

    /// Examples predicted as `class` (the column sum).
    pub fn predicted_total(&self, class: usize) -> u64 {
        (0..self.n).map(|a| self.count(a, class)).sum()
    }

    /// All examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Correctly classified examples (the trace).
    pub fn correct(&self) -> u64 {
        (0..self.n).map(|c| self.count(c, c)).sum()
    }

    /// Adds one example; callers guarantee both indices are in range.
    #[inline]
    pub(crate) fn add(&mut self, actual: usize, predicted: usize) {
        self.counts[actual * self.n + predicted] += 1;
    }

    /// Adds `other`'s counts; callers check the sizes match.
    pub(crate) fn add_all(&mut self, other: &ConfusionMatrix) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.counts.fill(0);
    }
}

/// A table with predicted classes as columns and actual classes as rows, DL4J style: each row
/// ends with `| index = name` when names are given through [`ConfusionMatrix::display_with`].
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_table(f, &[])
    }
}

impl ConfusionMatrix {
    /// A displayable table that names the classes (`names[i]` for class `i`).
    pub fn display_with<'a>(&'a self, names: &'a [String]) -> impl fmt::Display + 'a {
        struct Named<'a>(&'a ConfusionMatrix, &'a [String]);
        impl fmt::Display for Named<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write_table(f, self.1)
            }
        }
        Named(self, names)
    }

    fn write_table(&self, f: &mut fmt::Formatter<'_>, names: &[String]) -> fmt::Result {
        let widest = self
            .counts
            .iter()
            .max()
            .copied()
            .unwrap_or(0)
            .max(self.n as u64);
        let w = widest.to_string().len().max(1) + 1;
        for p in 0..self.n {
            write!(f, "{p:>w$}")?;
        }
        writeln!(f)?;
        writeln!(f, "{}", "-".repeat(w * self.n))?;
        for a in 0..self.n {
            for p in 0..self.n {
                write!(f, "{:>w$}", self.count(a, p))?;
            }
            match names.get(a) {
                Some(name) => writeln!(f, " | {a} = {name}")?,
                None => writeln!(f, " | {a}")?,
            }
        }
        writeln!(f)?;
        write!(f, "Rows: actual class, columns: predicted class")
    }
}
