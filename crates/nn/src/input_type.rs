//! `InputType`: the shape of what flows between layers, per example, as DL4J names it. A
//! configuration's `set_input_type` walks the layers with it, infers every `n_in`, and inserts
//! the preprocessors a layer needs to read its input (`crate::preprocessor`).
//!
//! Layouts are DL4J's: feed-forward `[batch, size]`, convolutional NCHW
//! `[batch, channels, height, width]`, recurrent `[batch, size, time]`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a layer's input or output (per example; the batch axis is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum InputType {
    /// `[batch, size]`.
    FeedForward {
        /// Features per example.
        size: usize,
    },
    /// `[batch, channels, height, width]` (NCHW).
    Convolutional {
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// Images flattened to rows `[batch, height * width * channels]`, as the IDX and CSV
    /// readers give them; a layer that wants images gets a `FeedForwardToCnn` preprocessor.
    ConvolutionalFlat {
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Channels.
        channels: usize,
    },
    /// `[batch, size, time]`.
    Recurrent {
        /// Features per time step.
        size: usize,
        /// Time steps, when fixed.
        #[serde(default)]
        time_series_length: Option<usize>,
    },
}

/// What a layer reads: which input types it accepts without a preprocessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// `[batch, size]` rows (dense, output, batch-norm layers).
    FeedForward,
    /// NCHW images.
    Convolutional,
    /// `[batch, size, time]` sequences.
    Recurrent,
    /// Any shape (element-wise layers: activation, dropout).
    Any,
}

impl InputType {
    /// `FeedForward { size }`.
    pub fn feed_forward(size: usize) -> InputType {
        InputType::FeedForward { size }
    }

    /// `Convolutional` with DL4J's argument order `(height, width, channels)`.
    pub fn convolutional(height: usize, width: usize, channels: usize) -> InputType {
        InputType::Convolutional {
            channels,
            height,
            width,
        }
    }

    /// Flattened images `(height, width, channels)`, as DL4J's `convolutionalFlat`.
    pub fn convolutional_flat(height: usize, width: usize, channels: usize) -> InputType {
        InputType::ConvolutionalFlat {
            height,
            width,
            channels,
        }
    }

    /// `Recurrent { size, time_series_length: None }`.
    pub fn recurrent(size: usize) -> InputType {
        InputType::Recurrent {
            size,
            time_series_length: None,
        }
    }

    /// `Recurrent` with a fixed number of time steps.
    pub fn recurrent_with_length(size: usize, time_series_length: usize) -> InputType {
        InputType::Recurrent {
            size,
            time_series_length: Some(time_series_length),
        }
    }

    /// Values per example (time steps count when fixed; 0 elements per step otherwise unknown).
    /// `usize::MAX` when the product overflows (validated configurations never do: see
    /// [`InputType::checked_flat_size`]).
    pub fn flat_size(&self) -> usize {
        self.checked_flat_size().unwrap_or(usize::MAX)
    }

    /// [`InputType::flat_size`], or `None` when the sizes' product overflows `usize` (a
    /// configuration read from an untrusted file can claim any size).
    pub fn checked_flat_size(&self) -> Option<usize> {
        match *self {
            InputType::FeedForward { size } => Some(size),
            InputType::Convolutional {
                channels,
                height,
                width,
            }
            | InputType::ConvolutionalFlat {
                height,
                width,
                channels,
            } => channels.checked_mul(height)?.checked_mul(width),
            InputType::Recurrent {
                size,
                time_series_length,
            } => size.checked_mul(time_series_length.unwrap_or(1)),
        }
    }

    /// The size a feed-forward layer sees: `size` for rows, `channels * height * width` for
    /// flattened images, `size` per step for sequences.
    pub fn feature_size(&self) -> usize {
        match *self {
            InputType::Recurrent { size, .. } => size,
            other => other.flat_size(),
        }
    }

    /// Whether an array of `shape` (batch axis first) has this type.
    pub fn matches(&self, shape: &[usize]) -> bool {
        match *self {
            InputType::FeedForward { size } => matches!(shape, [_, n] if *n == size),
            InputType::ConvolutionalFlat { .. } => {
                matches!(shape, [_, n] if *n == self.flat_size())
            }
            InputType::Convolutional {
                channels,
                height,
                width,
            } => shape.len() == 4 && shape[1..] == [channels, height, width],
            InputType::Recurrent {
                size,
                time_series_length,
            } => {
                shape.len() == 3
                    && shape[1] == size
                    && time_series_length.is_none_or(|t| t == shape[2])
            }
        }
    }

    /// The expected shape for error messages, with `batch` (and `time`) left symbolic.
    pub fn shape_text(&self) -> String {
        match *self {
            InputType::FeedForward { size } => format!("[batch, {size}]"),
            InputType::ConvolutionalFlat { .. } => format!("[batch, {}]", self.flat_size()),
            InputType::Convolutional {
                channels,
                height,
                width,
            } => format!("[batch, {channels}, {height}, {width}]"),
            InputType::Recurrent {
                size,
                time_series_length: Some(t),
            } => format!("[batch, {size}, {t}]"),
            InputType::Recurrent { size, .. } => format!("[batch, {size}, time]"),
        }
    }

    /// Whether this is the feed-forward family (rows), flattened images included.
    pub fn is_feed_forward(&self) -> bool {
        matches!(
            self,
            InputType::FeedForward { .. } | InputType::ConvolutionalFlat { .. }
        )
    }

    /// The same kind with a new feature count along axis 1 (size or channels).
    pub(crate) fn with_axis1(&self, n: usize) -> InputType {
        match *self {
            InputType::FeedForward { .. } | InputType::ConvolutionalFlat { .. } => {
                InputType::FeedForward { size: n }
            }
            InputType::Convolutional { height, width, .. } => InputType::Convolutional {
                channels: n,
                height,
                width,
            },
            InputType::Recurrent {
                time_series_length, ..
            } => InputType::Recurrent {
                size: n,
                time_series_length,
            },
        }
    }

    /// The length of axis 1 (size or channels).
    pub(crate) fn axis1(&self) -> usize {
        match *self {
            InputType::FeedForward { size } | InputType::Recurrent { size, .. } => size,
            InputType::ConvolutionalFlat { .. } => self.flat_size(),
            InputType::Convolutional { channels, .. } => channels,
        }
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InputType::FeedForward { size } => write!(f, "FeedForward({size})"),
            InputType::Convolutional {
                channels,
                height,
                width,
            } => write!(f, "Convolutional(c={channels}, h={height}, w={width})"),
            InputType::ConvolutionalFlat {
                height,
                width,
                channels,
            } => write!(f, "ConvolutionalFlat(h={height}, w={width}, c={channels})"),
            InputType::Recurrent {
                size,
                time_series_length: Some(t),
            } => write!(f, "Recurrent(size={size}, t={t})"),
            InputType::Recurrent { size, .. } => write!(f, "Recurrent(size={size})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_layouts() {
        assert!(InputType::feed_forward(3).matches(&[5, 3]));
        assert!(!InputType::feed_forward(3).matches(&[5, 4]));
        assert!(InputType::convolutional(4, 5, 2).matches(&[1, 2, 4, 5]));
        assert!(InputType::convolutional_flat(4, 5, 2).matches(&[7, 40]));
        assert!(InputType::recurrent(3).matches(&[2, 3, 9]));
        assert!(!InputType::recurrent_with_length(3, 8).matches(&[2, 3, 9]));
        assert_eq!(InputType::convolutional(4, 5, 2).feature_size(), 40);
        assert_eq!(InputType::recurrent(3).feature_size(), 3);
    }

    #[test]
    fn json_round_trip() {
        for t in [
            InputType::feed_forward(3),
            InputType::convolutional(28, 28, 1),
            InputType::convolutional_flat(28, 28, 1),
            InputType::recurrent_with_length(4, 10),
        ] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<InputType>(&json).unwrap(), t);
        }
    }
}
