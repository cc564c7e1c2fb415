//! `dl4rs predict --model FILE --input DIR` on sequences: `DIR/features/0.csv, 1.csv, …` (one
//! split of DL4J's CSV sequence layout, e.g. `data/sequences/fashion-rows/test`; a `labels/`
//! directory is not needed), one line per time step, sequences of any length. They are fed as
//! training fed them: batched, aligned at the end (padded at the start) with a feature mask,
//! normalized by the model's stored normalizer with the padding left at zero. One line per
//! sequence: its class and probability, read from a one-vector-per-sequence output
//! (`LastTimeStep` + `Output`) directly, or from a per-step output (`RnnOutputLayer`) at the
//! sequence's last unmasked step.

use std::path::Path;

use dl4rs::array::{AsView, NdArray};
use dl4rs::data::fashion_mnist;
use dl4rs::data::normalizer::DataNormalization;
use dl4rs::data::records::CsvSequenceRecordReader;
use dl4rs::nn::{InputType, Model, ModelSerializer};

use super::CliError;

/// Sequences per forward pass (the padded batch is `BATCH x channels x longest`).
const BATCH: usize = 256;

/// Whether `path` is a directory of sequences (`path/features/`).
pub fn is_sequence_input(path: &Path) -> bool {
    path.join("features").is_dir()
}

/// One class (and its probability) per sequence, from the longest to the shortest input
/// alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Time steps of the sequence.
    pub steps: usize,
    /// The most probable class.
    pub class: usize,
    /// Its probability.
    pub probability: f32,
}

/// Runs `dl4rs predict` on the sequences under `dir` and prints one line per sequence.
pub fn predict(net: &mut dyn Model<f32>, model_path: &Path, dir: &Path) -> Result<(), CliError> {
    let predictions = predict_dir(net, model_path, dir)?;
    let classes = classes_of(net);
    let names = (classes == fashion_mnist::NUM_CLASSES).then_some(fashion_mnist::CLASS_NAMES);
    println!(
        "sequence,steps,class,probability{}",
        if names.is_some() { ",name" } else { "" }
    );
    for (i, p) in predictions.iter().enumerate() {
        match names {
            Some(n) => println!(
                "{i},{},{},{:.4},{}",
                p.steps, p.class, p.probability, n[p.class]
            ),
            None => println!("{i},{},{},{:.4}", p.steps, p.class, p.probability),
        }
    }
    Ok(())
}

fn classes_of(net: &dyn Model<f32>) -> usize {
    net.output_types().first().map_or(0, |(_, t)| match *t {
        InputType::FeedForward { size } | InputType::Recurrent { size, .. } => size,
        _ => 0,
    })
}

/// The predictions for `dir/features/*.csv`, in file order.
pub fn predict_dir(
    net: &mut dyn Model<f32>,
    model_path: &Path,
    dir: &Path,
) -> Result<Vec<Prediction>, CliError> {
    let inputs = net.input_types();
    let channels = match (inputs.as_slice(), net.output_types().len()) {
        ([(_, InputType::Recurrent { size, .. })], 1) => *size,
        _ => {
            return Err(CliError::Usage(format!(
                "{}: the model reads {} with {} output(s); predicting on sequences ({}) needs \
                 one recurrent input and one output",
                model_path.display(),
                inputs
                    .iter()
                    .map(|(n, t)| format!("\"{n}\": {t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                net.output_types().len(),
                dir.display()
            )));
        }
    };
    let mut reader = CsvSequenceRecordReader::new(0, ',');
    reader.initialize_numbered(dir.join("features"))?;
    let sequences = reader.sequences();
    for s in sequences {
        if s.num_columns() != channels || s.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: expected at least one time step of {channels} values (the model's input \
                 channels), found {} steps of {} values",
                s.name(),
                s.len(),
                s.num_columns()
            )));
        }
    }
    let normalizer = ModelSerializer::restore_normalizer(model_path)?;
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(BATCH) {
        let b = chunk.len();
        let t = chunk.iter().map(|s| s.len()).max().unwrap_or(0);
        // AlignEnd, as training: sequence i fills steps t - len .. t.
        let mut x = vec![0f32; b * channels * t];
        let mut m = vec![0f32; b * t];
        for (i, s) in chunk.iter().enumerate() {
            let start = t - s.len();
            for (k, row) in s.iter().enumerate() {
                m[i * t + start + k] = 1.0;
                for (c, &v) in row.iter().enumerate() {
                    x[(i * channels + c) * t + start + k] = v as f32;
                }
            }
        }
        let mut features = NdArray::<f32>::from_slice_detached(&[b, channels, t], &x)?;
        if let Some(n) = &normalizer {
            DataNormalization::<f32>::transform_features(n, &mut features)?;
            // The padding stays zero, as the masked transform of training batches leaves it.
            let mut v = features.to_vec()?;
            for (j, value) in v.iter_mut().enumerate() {
                let (i, step) = (j / (channels * t), j % t);
                if m[i * t + step] == 0.0 {
                    *value = 0.0;
                }
            }
            features = NdArray::from_slice_detached(&[b, channels, t], &v)?;
        }
        let mask = NdArray::<f32>::from_slice_detached(&[b, t], &m)?;
        let result = net
            .output_arrays_masked(&[features.view()], &[Some(mask)], false)?
            .pop()
            .ok_or_else(|| CliError::Usage("the model produced no output".into()))?;
        let shape = result.shape().to_vec();
        let values = result.to_vec()?;
        for (i, s) in chunk.iter().enumerate() {
            let row: Vec<f32> = match shape.as_slice() {
                // One vector per sequence.
                &[_, n] => values[i * n..(i + 1) * n].to_vec(),
                // One per step: the last unmasked step of sequence i.
                &[_, n, steps] if steps == t => {
                    let last = (0..t).rev().find(|&k| m[i * t + k] != 0.0).unwrap_or(t - 1);
                    (0..n).map(|c| values[(i * n + c) * t + last]).collect()
                }
                other => {
                    return Err(CliError::Usage(format!(
                        "{}: the model's output has shape {other:?}; expected [{b}, classes] \
                         or [{b}, classes, {t}] for {b} sequences of up to {t} steps",
                        model_path.display()
                    )));
                }
            };
            let (class, probability) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (c, &v)| {
                        if v > best.1 { (c, v) } else { best }
                    });
            out.push(Prediction {
                steps: s.len(),
                class,
                probability,
            });
        }
    }
    Ok(out)
}
