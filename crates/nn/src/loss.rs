//! Loss functions: the score of a batch (mean over examples, as DL4J) and its gradient with
//! respect to the output layer's pre-activation. The common pairs (softmax + multi-class
//! cross-entropy, sigmoid + binary cross-entropy) use the fused, numerically exact `(a - y) / B`.

use dl4rs_array::{ArrayView, AsView, AsViewMut, DataType, NdArray};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::NnError;

/// A loss function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossFunction {
    /// Multi-class cross-entropy `-Σ y ln a` (use with softmax).
    Mcxent,
    /// Negative log-likelihood: the same as `Mcxent` (DL4J's alias).
    NegativeLogLikelihood,
    /// Binary cross-entropy `-Σ y ln a + (1 - y) ln(1 - a)` (use with sigmoid).
    Xent,
    /// Mean squared error over the outputs.
    Mse,
    /// Mean absolute error over the outputs.
    L1,
}

fn contiguous<'a, T: DataType>(
    read: &'a dl4rs_array::ArrayRead<'_, T>,
    what: &str,
) -> Result<&'a [T], NnError> {
    read.as_slice()
        .ok_or_else(|| NnError::Input(format!("{what} must be contiguous (row-major)")))
}

impl LossFunction {
    fn check<T: DataType>(
        self,
        labels: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
    ) -> Result<(usize, usize), NnError> {
        if labels.shape() != output.shape() || output.shape().len() != 2 {
            return Err(NnError::Input(format!(
                "{self:?} loss: labels have shape {:?} but the network output has shape {:?}: \
                 expected equal [batch, outputs] shapes (one-hot labels for classification)",
                labels.shape(),
                output.shape()
            )));
        }
        Ok((output.shape()[0], output.shape()[1]))
    }

    fn eps<T: DataType>() -> T {
        T::from_f64(if size_of::<T>() == 4 { 1e-7 } else { 1e-12 })
    }

    /// The mean loss over the batch (DL4J: the masked sum divided by the batch size). `mask`
    /// is `[batch]` or `[batch, 1]` (per example) or the labels' shape (per output); entries
    /// whose mask is 0 contribute nothing. Sequences `[batch, n, time]` (a loss per time step)
    /// take a `[batch, time]` mask or one of the labels' shape, and the masked sum over all
    /// steps is divided by the number of examples, as DL4J's `RnnOutputLayer` does.
    pub fn score<T: DataType>(
        self,
        labels: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<T, NnError> {
        let (batch, n, steps) = if output.shape().len() == 3 {
            self.check_sequence(labels, output, mask)?
        } else {
            let (batch, n) = self.check(labels, output)?;
            (batch, n, 1)
        };
        let (yr, ar) = (labels.read()?, output.read()?);
        let (y, a) = (contiguous(&yr, "labels")?, contiguous(&ar, "output")?);
        let mr = match mask {
            Some(m) if output.shape().len() == 3 => Some(m.read()?),
            Some(m) => Some(self.check_mask(m, batch, n)?),
            None => None,
        };
        let m = match &mr {
            Some(r) => Some(contiguous(r, "mask")?),
            None => None,
        };
        let eps = Self::eps::<T>();
        let one = T::ONE;
        let mut total = T::ZERO;
        let per_step = output.shape().len() == 3 && m.is_some_and(|m| m.len() != y.len());
        for (i, (&yi, &ai)) in y.iter().zip(a).enumerate() {
            let w = if per_step {
                // A [batch, time] mask over [batch, n, time]: example i / (n t), step i % t.
                m.map_or(T::ONE, |m| m[i / (n * steps).max(1) * steps + i % steps])
            } else {
                mask_at(m, i, n, y.len())
            };
            if w == T::ZERO {
                continue;
            }
            let term = match self {
                LossFunction::Mcxent | LossFunction::NegativeLogLikelihood => {
                    if yi == T::ZERO {
                        continue;
                    }
                    -yi * clamp(ai, eps, one).ln()
                }
                LossFunction::Xent => {
                    let ai = clamp(ai, eps, one - eps);
                    -(yi * ai.ln() + (one - yi) * (one - ai).ln())
                }
                LossFunction::Mse => (ai - yi) * (ai - yi),
                LossFunction::L1 => (ai - yi).abs(),
            };
            total += if m.is_some() { term * w } else { term };
        }
        if matches!(self, LossFunction::Mse | LossFunction::L1) {
            total /= T::from_f64(n as f64);
        }
        Ok(total / T::from_f64(batch.max(1) as f64))
    }

    /// `(batch, n, time)` of a per-time-step loss over `[batch, n, time]`, after checking the
    /// labels and the mask (`[batch, time]` or the labels' shape).
    fn check_sequence<T: DataType>(
        self,
        labels: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(usize, usize, usize), NnError> {
        let &[b, n, t] = output.shape() else {
            return Err(NnError::Input(format!(
                "{self:?} loss: expected a [batch, n, time] output, found {:?}",
                output.shape()
            )));
        };
        if labels.shape() != output.shape() {
            return Err(NnError::Input(format!(
                "{self:?} loss: labels have shape {:?} but the network output has shape {:?}: \
                 expected equal [batch, outputs, time] shapes (one label vector per time step)",
                labels.shape(),
                output.shape()
            )));
        }
        if let Some(m) = mask
            && m.shape() != [b, t]
            && m.shape() != [b, n, t]
        {
            return Err(NnError::Input(format!(
                "{self:?} loss: the label mask has shape {:?}; expected [{b}, {t}] (one weight \
                 per example and time step) or [{b}, {n}, {t}] (one per output)",
                m.shape()
            )));
        }
        Ok((b, n, t))
    }

    fn check_mask<'m, T: DataType>(
        self,
        mask: &'m ArrayView<'_, T>,
        batch: usize,
        n: usize,
    ) -> Result<dl4rs_array::ArrayRead<'m, T>, NnError> {
        let shape = mask.shape();
        let ok = shape == [batch] || shape == [batch, 1] || shape == [batch, n];
        if !ok {
            return Err(NnError::Input(format!(
                "{self:?} loss: the label mask has shape {shape:?}; expected [{batch}], \
                 [{batch}, 1] (one weight per example) or [{batch}, {n}] (one per output)"
            )));
        }
        Ok(mask.read()?)
    }

    /// `grad = dL/dz` (z: the pre-activation of the output) for this loss after `activation`.
    /// `pre` is needed only for activations whose derivative uses the input.
    pub fn gradient<T: DataType>(
        self,
        activation: Activation,
        labels: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
        pre: Option<&ArrayView<'_, T>>,
        output: &ArrayView<'_, T>,
        grad: &mut impl AsViewMut<T>,
    ) -> Result<(), NnError> {
        let batch = labels.shape().first().copied().unwrap_or(0);
        self.gradient_over(batch, activation, labels, mask, pre, output, grad)
    }

    /// [`LossFunction::gradient`] with the sum over rows divided by `examples` instead of the
    /// number of rows: a per-time-step loss over rows `[batch * time, n]` is divided by the
    /// number of sequences, as DL4J's `RnnOutputLayer` does.
    #[allow(clippy::too_many_arguments)]
    pub fn gradient_over<T: DataType>(
        self,
        examples: usize,
        activation: Activation,
        labels: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
        pre: Option<&ArrayView<'_, T>>,
        output: &ArrayView<'_, T>,
        grad: &mut impl AsViewMut<T>,
    ) -> Result<(), NnError> {
        let (batch, n) = self.check(labels, output)?;
        let inv_b = T::ONE / T::from_f64(examples.max(1) as f64);
        let fused = matches!(
            (self, activation),
            (
                LossFunction::Mcxent | LossFunction::NegativeLogLikelihood,
                Activation::Softmax
            ) | (LossFunction::Xent, Activation::Sigmoid)
        );
        if fused {
            let (yr, ar) = (labels.read()?, output.read()?);
            let (y, a) = (contiguous(&yr, "labels")?, contiguous(&ar, "output")?);
            let mut g = grad.view_mut();
            let mut w = g.write()?;
            let g = w
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("loss gradient must be contiguous".into()))?;
            for ((gi, &ai), &yi) in g.iter_mut().zip(a).zip(y) {
                *gi = (ai - yi) * inv_b;
            }
            drop(w);
            return self.apply_mask(grad, mask, batch, n);
        }
        // dL/da, then through the activation.
        let mut dlda = NdArray::<T>::create_uninitialized(output.shape())?;
        {
            let (yr, ar) = (labels.read()?, output.read()?);
            let (y, a) = (contiguous(&yr, "labels")?, contiguous(&ar, "output")?);
            let mut w = dlda.write()?;
            let d = w.as_slice_mut().unwrap_or_default();
            let eps = Self::eps::<T>();
            let one = T::ONE;
            let inv_nb = inv_b / T::from_f64(n as f64);
            let two = T::from_f64(2.0);
            for ((di, &ai), &yi) in d.iter_mut().zip(a).zip(y) {
                *di = match self {
                    LossFunction::Mcxent | LossFunction::NegativeLogLikelihood => {
                        -yi / clamp(ai, eps, one) * inv_b
                    }
                    LossFunction::Xent => {
                        let ac = clamp(ai, eps, one - eps);
                        (ac - yi) / (ac * (one - ac)) * inv_b
                    }
                    LossFunction::Mse => two * (ai - yi) * inv_nb,
                    LossFunction::L1 => {
                        let d = ai - yi;
                        let s = if d > T::ZERO {
                            one
                        } else if d < T::ZERO {
                            -one
                        } else {
                            T::ZERO
                        };
                        s * inv_nb
                    }
                };
            }
        }
        activation.backprop(pre, output, &dlda.view(), grad)?;
        self.apply_mask(grad, mask, batch, n)
    }

    /// `grad *= mask` (broadcast per example or element).
    fn apply_mask<T: DataType>(
        self,
        grad: &mut impl AsViewMut<T>,
        mask: Option<&ArrayView<'_, T>>,
        batch: usize,
        n: usize,
    ) -> Result<(), NnError> {
        let Some(mask) = mask else { return Ok(()) };
        let mr = self.check_mask(mask, batch, n)?;
        let m = contiguous(&mr, "mask")?;
        let mut g = grad.view_mut();
        let mut w = g.write()?;
        let g = w
            .as_slice_mut()
            .ok_or_else(|| NnError::Input("loss gradient must be contiguous".into()))?;
        let total = g.len();
        for (i, gi) in g.iter_mut().enumerate() {
            *gi *= mask_at(Some(m), i, n, total);
        }
        Ok(())
    }
}

/// The mask weight of element `i` of a `[batch, n]` array: `m` holds one weight per element
/// (as long as the array) or one per example.
fn mask_at<T: DataType>(m: Option<&[T]>, i: usize, n: usize, total: usize) -> T {
    match m {
        None => T::ONE,
        Some(m) if m.len() == total => m[i],
        Some(m) => m[i / n.max(1)],
    }
}

fn clamp<T: DataType>(x: T, lo: T, hi: T) -> T {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}
