//! Activation functions: the forward map on a batch (in place) and the backward pass (the
//! gradient with respect to the input, given the saved input or output). Element-wise ones map
//! to the kernels' `Unary`; softmax works along each row.

use dl4rs_array::ops::{self, Unary};
use dl4rs_array::{ArrayView, AsViewMut, DataType, NdArray};
use dl4rs_kernels::GradFrom;
use serde::{Deserialize, Serialize};

use crate::error::NnError;

/// An activation function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// `x`.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for x >= 0, `alpha * x` below.
    LeakyRelu {
        /// Slope for x < 0 (DL4J default 0.01).
        alpha: f64,
    },
    /// `x` for x > 0, `alpha * (e^x - 1)` below.
    Elu {
        /// Scale for x <= 0 (DL4J default 1.0).
        alpha: f64,
    },
    /// `tanh x`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Softmax along each row.
    Softmax,
    /// `ln(1 + e^x)`.
    Softplus,
    /// GELU (tanh approximation).
    Gelu,
}

impl Activation {
    /// Leaky ReLU with DL4J's default slope 0.01.
    pub fn leaky_relu() -> Activation {
        Activation::LeakyRelu { alpha: 0.01 }
    }

    /// ELU with DL4J's default alpha 1.0.
    pub fn elu() -> Activation {
        Activation::Elu { alpha: 1.0 }
    }

    pub(crate) fn unary<T: DataType>(self) -> Option<Unary<T>> {
        Some(match self {
            Activation::Identity => Unary::Identity,
            Activation::Relu => Unary::Relu,
            Activation::LeakyRelu { alpha } => Unary::LeakyRelu(T::from_f64(alpha)),
            Activation::Elu { alpha } => Unary::Elu(T::from_f64(alpha)),
            Activation::Tanh => Unary::Tanh,
            Activation::Sigmoid => Unary::Sigmoid,
            Activation::Softplus => Unary::Softplus,
            Activation::Gelu => Unary::Gelu,
            Activation::Softmax => return None,
        })
    }

    /// Whether the backward pass needs the pre-activation input (else the output suffices).
    pub fn needs_input_for_backprop(self) -> bool {
        match self.unary::<f64>() {
            Some(u) => u.grad_from() == GradFrom::Input,
            None => false,
        }
    }

    /// Applies the activation to a `[batch, n]` array in place.
    pub fn apply_in_place<T: DataType>(self, z: &mut NdArray<T>) -> Result<(), NnError> {
        match self.unary::<T>() {
            Some(Unary::Identity) => Ok(()),
            Some(u) => Ok(ops::unary_assign(u, z)?),
            None => {
                let shape = z.shape();
                let last = shape.len().saturating_sub(1);
                let rows: usize = shape[..last].iter().product();
                let cols = shape.get(last).copied().unwrap_or(1);
                let mut w = z.write()?;
                let data = w.as_slice_mut().ok_or_else(|| {
                    NnError::Input("softmax activation needs a contiguous array".into())
                })?;
                softmax_rows_in_place(data, rows, cols);
                Ok(())
            }
        }
    }

    /// `grad_in = dL/dx` given `grad_out = dL/dy`, the input `x` and the output `y` of the
    /// activation (both `[batch, n]`); written into `grad_in`.
    pub fn backprop<T: DataType>(
        self,
        input: Option<&ArrayView<'_, T>>,
        output: &ArrayView<'_, T>,
        grad_out: &ArrayView<'_, T>,
        grad_in: &mut impl AsViewMut<T>,
    ) -> Result<(), NnError> {
        let mut gi = grad_in.view_mut();
        let mut w = gi.write()?;
        let gi = w
            .as_slice_mut()
            .ok_or_else(|| NnError::Input("activation gradient must be contiguous".into()))?;
        let go = grad_out.read()?;
        let go = go
            .as_slice()
            .ok_or_else(|| NnError::Input("gradient must be contiguous".into()))?;
        match self.unary::<T>() {
            Some(Unary::Identity) => gi.copy_from_slice(go),
            Some(u) => {
                let saved = if u.grad_from() == GradFrom::Input {
                    input.ok_or_else(|| {
                        NnError::Input(format!("{self:?} backprop needs the pre-activation input"))
                    })?
                } else {
                    output
                };
                let s = saved.read()?;
                let s = s
                    .as_slice()
                    .ok_or_else(|| NnError::Input("activation input must be contiguous".into()))?;
                dl4rs_kernels::unary_grad(u, s, go, gi)?;
            }
            None => {
                let y = output.read()?;
                let y = y
                    .as_slice()
                    .ok_or_else(|| NnError::Input("softmax output must be contiguous".into()))?;
                let shape = output.shape();
                let cols = shape.last().copied().unwrap_or(1);
                let rows = y.len().checked_div(cols).unwrap_or(0);
                dl4rs_kernels::softmax_rows_backward(y, go, rows, cols, gi)?;
            }
        }
        Ok(())
    }
}

fn softmax_rows_in_place<T: DataType>(data: &mut [T], rows: usize, cols: usize) {
    if cols == 0 {
        return;
    }
    for row in data.chunks_exact_mut(cols).take(rows) {
        let max = row
            .iter()
            .fold(T::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        let mut sum = T::ZERO;
        for v in row.iter_mut() {
            *v = (*v - max).vexp();
            sum += *v;
        }
        let inv = T::ONE / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}
