//! Input preprocessors: the reshapes between the three array layouts that let a layer read
//! another family's output (DL4J's `InputPreProcessor`s). `set_input_type` inserts them where a
//! layer needs one; they are saved in the configuration JSON. Each is a copy into
//! `Activations` forward and into `ActivationGrad` backward (never a view of its input, so the
//! output's lifetime is the network's to decide), and each carries masks across the reshape:
//! a sequence mask `[batch, time]` becomes a row mask `[batch * time, 1]` and back.
//!
//! Row order when sequences become rows is DL4J's: example-major, `row = example * time + t`.

use dl4rs_array::{ArrayView, DataType, NdArray};
use serde::{Deserialize, Serialize};

use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{ACT, Forward, GRAD, LayerInput, MaskOut, StepContext};
use crate::workspace_mgr::LayerWorkspaceMgr;

/// A reshape between layouts, with its backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum InputPreProcessor {
    /// `[batch, c, h, w]` → `[batch, c*h*w]`.
    CnnToFeedForward {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Channels.
        channels: usize,
    },
    /// `[batch, c*h*w]` → `[batch, c, h, w]`.
    FeedForwardToCnn {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Channels.
        channels: usize,
    },
    /// `[batch, size, time]` → `[batch*time, size]`.
    RnnToFeedForward,
    /// `[batch*time, size]` → `[batch, size, time]` (batch from the step).
    FeedForwardToRnn,
    /// `[batch*time, c, h, w]` → `[batch, c*h*w, time]`.
    CnnToRnn {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Channels.
        channels: usize,
    },
    /// `[batch, c*h*w, time]` → `[batch*time, c, h, w]`.
    RnnToCnn {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Channels.
        channels: usize,
    },
}

fn err(p: &InputPreProcessor, message: String) -> NnError {
    NnError::Input(format!("{}: {message}", p.kind()))
}

impl InputPreProcessor {
    /// DL4J's class name.
    pub fn kind(&self) -> &'static str {
        match self {
            InputPreProcessor::CnnToFeedForward { .. } => "CnnToFeedForwardPreProcessor",
            InputPreProcessor::FeedForwardToCnn { .. } => "FeedForwardToCnnPreProcessor",
            InputPreProcessor::RnnToFeedForward => "RnnToFeedForwardPreProcessor",
            InputPreProcessor::FeedForwardToRnn => "FeedForwardToRnnPreProcessor",
            InputPreProcessor::CnnToRnn { .. } => "CnnToRnnPreProcessor",
            InputPreProcessor::RnnToCnn { .. } => "RnnToCnnPreProcessor",
        }
    }

    /// The type this produces from `input`, or why `input` does not fit.
    pub fn output_type(&self, input: &InputType) -> Result<InputType, String> {
        use InputPreProcessor as P;
        let bad = |want: &str| {
            Err(format!(
                "{} expects {want} input, found {input}",
                self.kind()
            ))
        };
        match (*self, *input) {
            (
                P::CnnToFeedForward {
                    height,
                    width,
                    channels,
                },
                InputType::Convolutional {
                    channels: c,
                    height: h,
                    width: w,
                },
            ) if (c, h, w) == (channels, height, width) => {
                Ok(InputType::feed_forward(input.flat_size()))
            }
            (P::CnnToFeedForward { .. }, _) => bad("matching convolutional"),
            (
                P::FeedForwardToCnn {
                    height,
                    width,
                    channels,
                },
                t,
            ) if t.is_feed_forward() && Some(t.flat_size()) == volume(height, width, channels) => {
                Ok(InputType::convolutional(height, width, channels))
            }
            (P::FeedForwardToCnn { .. }, _) => bad("feed-forward (height * width * channels)"),
            (P::RnnToFeedForward, InputType::Recurrent { size, .. }) => {
                Ok(InputType::feed_forward(size))
            }
            (P::RnnToFeedForward, _) => bad("recurrent"),
            (P::FeedForwardToRnn, t) if t.is_feed_forward() => {
                Ok(InputType::recurrent(t.flat_size()))
            }
            (P::FeedForwardToRnn, _) => bad("feed-forward"),
            (
                P::CnnToRnn {
                    height,
                    width,
                    channels,
                },
                InputType::Convolutional {
                    channels: c,
                    height: h,
                    width: w,
                },
            ) if (c, h, w) == (channels, height, width) => {
                Ok(InputType::recurrent(input.flat_size()))
            }
            (P::CnnToRnn { .. }, _) => bad("matching convolutional"),
            (
                P::RnnToCnn {
                    height,
                    width,
                    channels,
                },
                InputType::Recurrent { size, .. },
            ) if Some(size) == volume(height, width, channels) => {
                Ok(InputType::convolutional(height, width, channels))
            }
            (P::RnnToCnn { .. }, _) => bad("recurrent (size = height * width * channels)"),
        }
    }

    /// Forward: the reshaped copy (as `Activations`) and the reshaped mask.
    pub fn forward<T: DataType>(
        &self,
        input: &LayerInput<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        use InputPreProcessor as P;
        let x = input.activations;
        let shape = x.shape();
        let (out, mask) = match *self {
            P::CnnToFeedForward { .. } => {
                let (b, rest) = (shape[0], shape[1..].iter().product::<usize>());
                (mgr.dup(ACT, &x)?.reshape(&[b, rest])?, MaskOut::Same)
            }
            P::FeedForwardToCnn {
                height,
                width,
                channels,
            } => (
                mgr.dup(ACT, &x)?
                    .reshape(&[shape[0], channels, height, width])?,
                MaskOut::Same,
            ),
            P::RnnToFeedForward | P::RnnToCnn { .. } => {
                let (b, s, t) = (shape[0], shape[1], shape[2]);
                let rows = mgr.dup(ACT, &x.permute(&[0, 2, 1])?)?;
                let out = match *self {
                    P::RnnToCnn {
                        height,
                        width,
                        channels,
                    } => rows.reshape(&[b * t, channels, height, width])?,
                    _ => rows.reshape(&[b * t, s])?,
                };
                (out, self.mask_to_rows(input.mask, mgr)?)
            }
            P::FeedForwardToRnn | P::CnnToRnn { .. } => {
                let b = ctx.batch.max(1);
                let rows = shape[0];
                let size: usize = shape[1..].iter().product();
                if !rows.is_multiple_of(b) {
                    return Err(err(
                        self,
                        format!(
                            "{rows} rows do not fold into a mini-batch of {b} sequences: \
                             expected batch * time rows"
                        ),
                    ));
                }
                let t = rows / b;
                let folded = x.reshape(&[b, t, size])?;
                let out = mgr.dup(ACT, &folded.permute(&[0, 2, 1])?)?;
                let mask = match input.mask {
                    Some(m) if m.shape().iter().product::<usize>() == rows => {
                        MaskOut::New(mgr.dup(ACT, &m.reshape(&[b, t])?)?)
                    }
                    Some(m) => {
                        return Err(err(
                            self,
                            format!("mask of shape {:?} does not fit {rows} rows", m.shape()),
                        ));
                    }
                    None => MaskOut::Same,
                };
                (out, mask)
            }
        };
        Ok(Forward {
            activations: out,
            cache: None,
            mask,
        })
    }

    /// A `[batch, time]` mask as `[batch * time, 1]`.
    fn mask_to_rows<T: DataType>(
        &self,
        mask: Option<ArrayView<'_, T>>,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<MaskOut<T>, NnError> {
        match mask {
            None => Ok(MaskOut::Same),
            Some(m) => {
                let n: usize = m.shape().iter().product();
                Ok(MaskOut::New(mgr.dup(ACT, &m.reshape(&[n, 1])?)?))
            }
        }
    }

    /// Backward: `epsilon` (shaped like the output) reshaped back to `input_shape`, as
    /// `ActivationGrad`.
    pub fn backward<T: DataType>(
        &self,
        input_shape: &[usize],
        epsilon: &ArrayView<'_, T>,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        use InputPreProcessor as P;
        Ok(match *self {
            P::CnnToFeedForward { .. } | P::FeedForwardToCnn { .. } => {
                mgr.dup(GRAD, &epsilon.reshape(input_shape)?)?
            }
            P::RnnToFeedForward | P::RnnToCnn { .. } => {
                let (b, s, t) = (input_shape[0], input_shape[1], input_shape[2]);
                let folded = epsilon.reshape(&[b, t, s])?;
                mgr.dup(GRAD, &folded.permute(&[0, 2, 1])?)?
            }
            P::FeedForwardToRnn | P::CnnToRnn { .. } => {
                let rows_view = epsilon.permute(&[0, 2, 1])?;
                let rows = mgr.dup(GRAD, &rows_view)?;
                rows.reshape(input_shape)?
            }
        })
    }
}

/// The preprocessor a layer that accepts `wants` needs to read `input`, if any, or why none
/// can do it (DL4J's `getPreProcessorForInputType`).
pub fn preprocessor_for(
    input: &InputType,
    wants: crate::input_type::Accepts,
) -> Result<Option<InputPreProcessor>, String> {
    use crate::input_type::Accepts;
    Ok(match (wants, *input) {
        (Accepts::Any, _) => None,
        (Accepts::FeedForward, InputType::FeedForward { .. })
        | (Accepts::FeedForward, InputType::ConvolutionalFlat { .. })
        | (Accepts::Convolutional, InputType::Convolutional { .. })
        | (Accepts::Recurrent, InputType::Recurrent { .. }) => None,
        (
            Accepts::FeedForward,
            InputType::Convolutional {
                channels,
                height,
                width,
            },
        ) => Some(InputPreProcessor::CnnToFeedForward {
            height,
            width,
            channels,
        }),
        (Accepts::FeedForward, InputType::Recurrent { .. }) => {
            Some(InputPreProcessor::RnnToFeedForward)
        }
        (
            Accepts::Convolutional,
            InputType::ConvolutionalFlat {
                height,
                width,
                channels,
            },
        ) => Some(InputPreProcessor::FeedForwardToCnn {
            height,
            width,
            channels,
        }),
        (Accepts::Convolutional, other) => {
            return Err(format!(
                "a convolutional layer can't read {other} input without knowing the image \
                 shape: set the input type to InputType::convolutional(h, w, c) or \
                 convolutional_flat(h, w, c)"
            ));
        }
        (Accepts::Recurrent, InputType::FeedForward { .. })
        | (Accepts::Recurrent, InputType::ConvolutionalFlat { .. }) => {
            Some(InputPreProcessor::FeedForwardToRnn)
        }
        (
            Accepts::Recurrent,
            InputType::Convolutional {
                channels,
                height,
                width,
            },
        ) => Some(InputPreProcessor::CnnToRnn {
            height,
            width,
            channels,
        }),
    })
}

/// `height * width * channels`, or `None` when it overflows (sizes from an untrusted file).
fn volume(height: usize, width: usize, channels: usize) -> Option<usize> {
    height.checked_mul(width)?.checked_mul(channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input_type::Accepts;

    #[test]
    fn insertion_rules() {
        let cnn = InputType::convolutional(4, 5, 3);
        assert_eq!(
            preprocessor_for(&cnn, Accepts::FeedForward).unwrap(),
            Some(InputPreProcessor::CnnToFeedForward {
                height: 4,
                width: 5,
                channels: 3
            })
        );
        assert_eq!(
            preprocessor_for(&InputType::recurrent(3), Accepts::FeedForward).unwrap(),
            Some(InputPreProcessor::RnnToFeedForward)
        );
        assert_eq!(
            preprocessor_for(
                &InputType::convolutional_flat(28, 28, 1),
                Accepts::Convolutional
            )
            .unwrap(),
            Some(InputPreProcessor::FeedForwardToCnn {
                height: 28,
                width: 28,
                channels: 1
            })
        );
        assert_eq!(
            preprocessor_for(&InputType::feed_forward(3), Accepts::Recurrent).unwrap(),
            Some(InputPreProcessor::FeedForwardToRnn)
        );
        assert_eq!(
            preprocessor_for(&cnn, Accepts::Recurrent).unwrap(),
            Some(InputPreProcessor::CnnToRnn {
                height: 4,
                width: 5,
                channels: 3
            })
        );
        assert!(preprocessor_for(&InputType::feed_forward(3), Accepts::Convolutional).is_err());
        assert_eq!(preprocessor_for(&cnn, Accepts::Any).unwrap(), None);
    }

    #[test]
    fn output_types() {
        let p = InputPreProcessor::RnnToCnn {
            height: 2,
            width: 2,
            channels: 3,
        };
        assert_eq!(
            p.output_type(&InputType::recurrent(12)).unwrap(),
            InputType::convolutional(2, 2, 3)
        );
        assert!(p.output_type(&InputType::recurrent(11)).is_err());
        assert!(
            InputPreProcessor::RnnToFeedForward
                .output_type(&InputType::feed_forward(3))
                .is_err()
        );
    }
}
