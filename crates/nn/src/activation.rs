//! Activation functions: the forward map on a batch (in place) and the backward pass (the
//! gradient with respect to the input, given the saved input or output). Element-wise ones map
//! to the array crate's `Unary`; softmax works along the last axis (the one softmax of
//! `dl4rs-array`, so 1 or n threads give the same bits).

use dl4rs_array::ops::GradFrom;
use dl4rs_array::ops::{self, Unary};
use dl4rs_array::{ArrayView, AsViewMut, DataType};
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

    /// `out = act(x)` (same shape; softmax along the last axis).
    pub fn apply_into<T: DataType>(
        self,
        x: &ArrayView<'_, T>,
        out: &mut impl AsViewMut<T>,
    ) -> Result<(), NnError> {
        match self.unary::<T>() {
            Some(u) => Ok(ops::unary_into(u, x, out)?),
            None => Ok(ops::softmax_last_axis_into(x, out)?),
        }
    }

    /// `grad_in = dL/dx` given `grad_out = dL/dy`, the input `x` and the output `y` of the
    /// activation (same shapes); written into `grad_in`.
    pub fn backprop<T: DataType>(
        self,
        input: Option<&ArrayView<'_, T>>,
        output: &ArrayView<'_, T>,
        grad_out: &ArrayView<'_, T>,
        grad_in: &mut impl AsViewMut<T>,
    ) -> Result<(), NnError> {
        match self.unary::<T>() {
            Some(Unary::Identity) => Ok(grad_in.view_mut().assign(grad_out)?),
            Some(u) => {
                let saved = if u.grad_from() == GradFrom::Input {
                    input.ok_or_else(|| {
                        NnError::Input(format!("{self:?} backprop needs the pre-activation input"))
                    })?
                } else {
                    output
                };
                Ok(ops::unary_grad_into(u, saved, grad_out, grad_in)?)
            }
            None => Ok(ops::softmax_backward_into(output, grad_out, grad_in)?),
        }
    }
}
