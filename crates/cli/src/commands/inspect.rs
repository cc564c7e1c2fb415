//! `dl4rs evaluate`, `dl4rs predict` and `dl4rs summary`: use a saved model (sequence data:
//! [`super::sequence`] and [`super::sequence_predict`]).

use std::path::{Path, PathBuf};

use clap::Args;
use dl4rs::array::NdArray;
use dl4rs::data::normalizer::DataNormalization;
use dl4rs::data::{InMemoryDataSetIterator, fashion_mnist};
use dl4rs::eval::Evaluation;
use dl4rs::nn::{LossFunction, Model, ModelSerializer};

use super::CliError;

/// Options of `dl4rs evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The model file written by `dl4rs train`.
    #[arg(long)]
    pub model: PathBuf,
    /// `bundled`, `auto` or a directory (as for `train`: Fashion-MNIST IDX files, or sequences
    /// in DL4J's CSV layout); the test split is used.
    #[arg(long, default_value = "auto")]
    pub data: String,
}

/// Options of `dl4rs predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// A CSV file: one example per line, `n_in` numbers (the network's input scale, e.g.
    /// pixels / 255). A first line that is not numeric is taken as a header. For a sequence
    /// model, a directory holding `features/0.csv, 1.csv, …` (one line per time step, any
    /// length; e.g. `data/sequences/fashion-rows/test`): one prediction per sequence.
    #[arg(long)]
    pub input: PathBuf,
}

/// Options of `dl4rs summary`.
#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
}

/// A model file of either kind (MultiLayerNetwork or ComputationGraph).
fn restore(path: &Path) -> Result<Box<dyn Model<f32>>, CliError> {
    Ok(ModelSerializer::restore::<f32>(path, false)?.into_model())
}

/// Values per example of the model's single input and output.
fn sizes(net: &dyn Model<f32>, path: &Path) -> Result<(usize, usize), CliError> {
    let (inputs, outputs) = (net.input_types(), net.output_types());
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(CliError::Usage(format!(
            "{}: the model has {} inputs and {} outputs; this command handles one of each",
            path.display(),
            inputs.len(),
            outputs.len()
        )));
    }
    Ok((inputs[0].1.flat_size(), outputs[0].1.flat_size()))
}

/// Runs `dl4rs evaluate`.
pub fn evaluate(args: EvaluateArgs) -> Result<(), CliError> {
    let mut net = restore(&args.model)?;
    let dir = Path::new(&args.data);
    if super::sequence::is_sequence_dir(dir) {
        return super::sequence::evaluate(net.as_mut(), &args.model, dir);
    }
    let (n_in, n_out) = sizes(net.as_ref(), &args.model)?;
    let (_, test, description) = super::train::load_data(&args.data)?;
    if test.num_inputs() != n_in {
        return Err(CliError::Usage(format!(
            "the model expects {n_in} inputs but the data has {}",
            test.num_inputs()
        )));
    }
    println!("data: {description}");
    let mut it = InMemoryDataSetIterator::new(test, 500)?;
    let mut eval = if n_out == fashion_mnist::NUM_CLASSES {
        Evaluation::with_labels(fashion_mnist::CLASS_NAMES)
    } else {
        Evaluation::new(n_out)
    };
    net.do_evaluation(&mut it, &mut [&mut eval])?;
    println!("{}", eval.stats());
    Ok(())
}

/// Parses a CSV of examples; errors name the file, line and column.
pub fn read_csv(path: &Path, columns: usize) -> Result<(Vec<f32>, usize), CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "{}: can't read the input file: {e}",
            path.display()
        ))
    })?;
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 && fields.iter().any(|f| f.parse::<f32>().is_err()) {
            continue; // header
        }
        if fields.len() != columns {
            return Err(CliError::Usage(format!(
                "{}: line {}: expected {columns} values (the model's inputs), found {}",
                path.display(),
                i + 1,
                fields.len()
            )));
        }
        for (c, f) in fields.iter().enumerate() {
            let v: f32 = f.parse().map_err(|_| {
                CliError::Usage(format!(
                    "{}: line {}, column {}: {f:?} is not a number",
                    path.display(),
                    i + 1,
                    c + 1
                ))
            })?;
            values.push(v);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(CliError::Usage(format!(
            "{}: no examples in the file",
            path.display()
        )));
    }
    Ok((values, rows))
}

/// Runs `dl4rs predict`: classes and probabilities, or for a regression model the values in
/// the targets' units (a stored label normalizer is reverted).
pub fn predict(args: PredictArgs) -> Result<(), CliError> {
    let mut net = restore(&args.model)?;
    if super::sequence_predict::is_sequence_input(&args.input) {
        return super::sequence_predict::predict(net.as_mut(), &args.model, &args.input);
    }
    if args.input.is_dir() {
        return Err(CliError::Usage(format!(
            "--input {}: expected a CSV file of examples, or a directory of sequences holding \
             features/0.csv, features/1.csv, … (one line per time step); found a directory \
             without features/",
            args.input.display()
        )));
    }
    let (n_in, n_out) = sizes(net.as_ref(), &args.model)?;
    let (values, rows) = read_csv(&args.input, n_in)?;
    let mut x = NdArray::<f32>::from_slice(&[rows, n_in], &values)?;
    // A model trained on normalized data stores its normalizer: apply it to raw inputs.
    let normalizer = ModelSerializer::restore_normalizer(&args.model)?;
    if let Some(normalizer) = &normalizer {
        DataNormalization::<f32>::transform_features(normalizer, &mut x)?;
    }
    let mut out = net
        .output_arrays(&[dl4rs::array::AsView::view(&x)], false)?
        .pop()
        .ok_or_else(|| CliError::Usage("the model produced no output".into()))?;
    let regression = matches!(
        net.output_loss(0),
        Some(LossFunction::Mse | LossFunction::L1)
    ) || normalizer.as_ref().is_some_and(|n| n.fits_labels());
    if regression {
        if let Some(n) = &normalizer {
            DataNormalization::<f32>::revert_labels(n, &mut out)?;
        }
        let values = out.to_vec()?;
        let header: Vec<String> = (0..n_out).map(|c| format!("value{c}")).collect();
        println!("row,{}", header.join(","));
        for r in 0..rows {
            let row: Vec<String> = values[r * n_out..(r + 1) * n_out]
                .iter()
                .map(|v| format!("{v:.6}"))
                .collect();
            println!("{r},{}", row.join(","));
        }
        return Ok(());
    }
    let probs = out.to_vec()?;
    let names = (n_out == fashion_mnist::NUM_CLASSES).then_some(fashion_mnist::CLASS_NAMES);
    println!(
        "row,class,probability{}",
        if names.is_some() { ",name" } else { "" }
    );
    for r in 0..rows {
        let row = &probs[r * n_out..(r + 1) * n_out];
        let (best, p) =
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        match names {
            Some(n) => println!("{r},{best},{p:.4},{}", n[best]),
            None => println!("{r},{best},{p:.4}"),
        }
    }
    Ok(())
}

/// Runs `dl4rs summary`.
pub fn summary(args: SummaryArgs) -> Result<(), CliError> {
    let net = restore(&args.model)?;
    print!("{}", net.summary());
    println!(
        "trained iterations: {}, epochs: {}",
        net.iteration_count(),
        net.epoch_count()
    );
    Ok(())
}
