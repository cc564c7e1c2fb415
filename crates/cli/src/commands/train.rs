//! `dl4rs train`: the main job. Trains a network — the built-in MLP (784-256-128-10, Adam), or
//! any MultiLayerNetwork or ComputationGraph configuration given as JSON (`--config`), sized from
//! the data where it leaves sizes out — on Fashion-MNIST (the bundled 8,000/2,000 split, or the
//! full 60,000/10,000 set when installed or given with `--data`) or a CSV file, with a progress
//! bar, then prints the evaluation, the workspace memory report and the heap allocations per
//! steady-state iteration, and saves the model. Sequence directories (and `--model lstm`) are
//! handed to [`super::sequence`].
//!
//! CSV defaults are the ones that work: features are standardized (fitted on the training rows,
//! saved in the model), and regression targets too, reverted for evaluation and `predict`
//! (DL4J's `fitLabel(true)`); a regression run also prints a linear least-squares baseline.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::{AsView, NdArray};
use dl4rs::data::normalizer::{DataNormalization, Normalizer};
use dl4rs::data::records::{CsvRecordReader, RecordReaderDataSetIterator};
use dl4rs::data::{
    AsyncDataSetIterator, DataSet, DataSetIterator, InMemoryDataSetIterator, fashion_mnist,
};
use dl4rs::eval::{Evaluation, RegressionEvaluation};
use dl4rs::memory::CountingAllocator;
use dl4rs::nn::{
    Activation, InputType, LayerConf, LossFunction, Model, ModelSerializer, MultiLayerNetwork,
    NeuralNetConfiguration, PoolingType, Updater, WeightInit, WorkspaceMode,
};
use indicatif::ProgressBar;

use super::CliError;
use super::distributed::DistMode;
use super::progress::{ProgressListener, print_memory, progress_bar};

/// Options of `dl4rs train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Data: `bundled` (the embedded 8,000/2,000 split), `auto` (the full set when installed
    /// at /usr/share/datasets/fashion-mnist, else bundled), or a directory with the four IDX
    /// files.
    #[arg(long, default_value = "auto")]
    pub data: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Workspaces for training and inference (default: enabled, or the configuration's).
    #[arg(long, value_enum)]
    pub workspaces: Option<Mode>,
    /// A built-in architecture, sized from the data.
    #[arg(long, value_enum, default_value_t = ModelArg::Mlp)]
    pub model: ModelArg,
    /// A network configuration in JSON (what `to_json` writes: a MultiLayerNetwork or a
    /// ComputationGraph); the input size and the number of outputs are taken from the data
    /// where it leaves them out. Overrides `--model`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to save the trained model.
    #[arg(long, default_value = "dl4rs-model.safetensors")]
    pub out: PathBuf,
    /// Weight initialization of every layer (default: he-uniform; xavier-uniform for
    /// `--model lstm`).
    #[arg(long, value_enum)]
    pub weight_init: Option<Init>,
    /// CSV data (`--data file.csv`): the 0-based column holding the label (classification) or
    /// the first target (regression).
    #[arg(long)]
    pub label_column: Option<usize>,
    /// CSV classification: number of classes (labels are integers 0..classes).
    #[arg(long)]
    pub classes: Option<usize>,
    /// CSV regression instead of classification: targets are `--label-column..=--label-to`.
    #[arg(long)]
    pub regression: bool,
    /// CSV regression: last target column (inclusive; default: `--label-column`).
    #[arg(long)]
    pub label_to: Option<usize>,
    /// CSV: lines to skip at the top (headers; of every file, for sequences).
    #[arg(long, default_value_t = 0)]
    pub skip_lines: usize,
    /// CSV field delimiter (also of sequence files).
    #[arg(long, default_value_t = ',')]
    pub delimiter: char,
    /// CSV: fraction of the (shuffled) rows held out for the evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Feature normalizer, fitted on the training rows and saved with the model (default for
    /// CSV: standardize, with the targets of a regression standardized too; `none` opts out).
    #[arg(long, value_enum)]
    pub normalizer: Option<NormalizerArg>,
    /// Threads for the matrix products (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Train through ParallelWrapper with this many trainer threads (at least 2; each gets
    /// its share of the cores for its products). Default: one model on this thread.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Write an HTML report of the training (rewritten every epoch, reloading itself while
    /// training runs) and its stats file beside it (`NAME.stats.jsonl`).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Train as one rank of an MPI job: `mpiexec -n N dl4rs train --distributed ...` (needs a
    /// dl4rs built with `--features distributed`). Every rank trains its stride of the
    /// batches; rank 0 prints, evaluates and saves.
    #[arg(long)]
    pub distributed: bool,
    /// `--distributed`: share gradients every iteration, or average parameters.
    #[arg(long, value_enum, default_value_t = DistMode::SharedGradients)]
    pub training_mode: DistMode,
    /// `--distributed --training-mode averaging`: iterations between parameter averages.
    #[arg(long, default_value_t = 5)]
    pub averaging_frequency: usize,
    /// `--distributed`: seconds a collective may take before the job is ended (a rank that
    /// stopped answering).
    #[arg(long, default_value_t = 120.0)]
    pub collective_timeout: f64,
    /// Sequence data: truncated BPTT in segments of K time steps (forward and backward length
    /// K; the recurrent state carried between segments, one updater step per segment). Needs
    /// a network that outputs a sequence: `--model lstm` then ends in an RnnOutputLayer, a
    /// `--config` must (labels are per step, on each sequence's last step).
    #[arg(long, value_name = "K")]
    pub tbptt: Option<usize>,
}

/// Workspace mode on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Workspaces on.
    Enabled,
    /// Workspaces off.
    None,
}

impl From<Mode> for WorkspaceMode {
    fn from(m: Mode) -> WorkspaceMode {
        match m {
            Mode::Enabled => WorkspaceMode::Enabled,
            Mode::None => WorkspaceMode::None,
        }
    }
}

/// Built-in architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Two ReLU hidden layers (256, 128), softmax + cross-entropy or identity + MSE.
    Mlp,
    /// LeNet-5 for square single-channel images given as rows (28 x 28 = 784 values): conv
    /// 5x5x20, max-pool 2x2, conv 5x5x50, max-pool 2x2, dense 500 ReLU, dropout 0.5, output.
    Lenet,
    /// An LSTM sequence classifier for data in DL4J's CSV sequence layout (`--data DIR` with
    /// `train/` and `test/`; default: the bundled Fashion-MNIST rows): LSTM 64 (tanh), the
    /// last unmasked step, softmax output. The built-in for any sequence directory.
    Lstm,
}

/// Normalizer on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NormalizerArg {
    /// No normalization.
    None,
    /// Zero mean, unit variance per column.
    Standardize,
    /// Each column to [0, 1].
    Minmax,
    /// Pixels 0..255 to [0, 1].
    Image,
}

/// Weight initialization on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Init {
    /// Xavier/Glorot uniform.
    XavierUniform,
    /// Xavier/Glorot normal.
    XavierNormal,
    /// He uniform.
    HeUniform,
    /// He normal.
    HeNormal,
    /// U(±1/sqrt(fan_in)) (PyTorch's default for linear layers).
    Uniform,
}

impl From<Init> for WeightInit {
    fn from(i: Init) -> WeightInit {
        match i {
            Init::XavierUniform => WeightInit::XavierUniform,
            Init::XavierNormal => WeightInit::XavierNormal,
            Init::HeUniform => WeightInit::HeUniform,
            Init::HeNormal => WeightInit::HeNormal,
            Init::Uniform => WeightInit::Uniform,
        }
    }
}

/// Loads `auto`, `bundled` or a directory; returns (train, test, description).
pub fn load_data(spec: &str) -> Result<(DataSet, DataSet, String), CliError> {
    match spec {
        "bundled" => {
            let (train, test) = fashion_mnist::bundled()?;
            Ok((
                train,
                test,
                "Fashion-MNIST, bundled split (8,000 train / 2,000 test)".into(),
            ))
        }
        "auto" => match fashion_mnist::default_location() {
            Some(dir) => load_dir(&dir),
            None => load_data("bundled"),
        },
        dir => load_dir(&PathBuf::from(dir)),
    }
}

fn load_dir(dir: &std::path::Path) -> Result<(DataSet, DataSet, String), CliError> {
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "--data {}: not a directory (expected `bundled`, `auto`, or a directory with the \
             Fashion-MNIST IDX files)",
            dir.display()
        )));
    }
    let (train, test) = fashion_mnist::load_dir(dir)?;
    let text = format!(
        "Fashion-MNIST from {} ({} train / {} test)",
        dir.display(),
        train.num_examples(),
        test.num_examples()
    );
    Ok((train, test, text))
}

/// The main job's MLP (two ReLU hidden layers of 256 and 128) for `n_in` inputs and `n_out`
/// outputs: softmax + cross-entropy, or identity + MSE for regression.
pub fn network(
    args: &TrainArgs,
    n_in: usize,
    n_out: usize,
    regression: bool,
) -> Result<MultiLayerNetwork<f32>, CliError> {
    let mode = WorkspaceMode::from(args.workspaces.unwrap_or(Mode::Enabled));
    let output = if regression {
        LayerConf::output(LossFunction::Mse, n_out).activation(Activation::Identity)
    } else {
        LayerConf::output(LossFunction::Mcxent, n_out).activation(Activation::Softmax)
    };
    let list = NeuralNetConfiguration::builder()
        .seed(args.seed)
        .updater(Updater::adam(args.lr))
        .weight_init(args.weight_init.unwrap_or(Init::HeUniform).into())
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list();
    if args.model == ModelArg::Lenet {
        let side = (n_in as f64).sqrt().round() as usize;
        if side * side != n_in || side < 16 {
            return Err(CliError::Usage(format!(
                "--model lenet reads square single-channel images (28 x 28 = 784 values per \
                 row); the data has {n_in} values per example"
            )));
        }
        let conf = list
            .layer(LayerConf::convolution(20, [5, 5]).name("conv1"))
            .layer(LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]).name("pool1"))
            .layer(LayerConf::convolution(50, [5, 5]).name("conv2"))
            .layer(LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]).name("pool2"))
            .layer(
                LayerConf::dense(500)
                    .activation(Activation::Relu)
                    .name("dense"),
            )
            // Dropout (retain 0.5) on the 500 dense units: 90.7 % instead of 89.7 % on the full
            // Fashion-MNIST set, 86.5 % instead of 86.2 % on the bundled split (10 epochs;
            // docs/benchmarks.md, "The main job").
            .layer(LayerConf::dropout(0.5).named("dropout"))
            .layer(output.name("output"))
            .set_input_type(InputType::convolutional_flat(side, side, 1))
            .build()?;
        return Ok(MultiLayerNetwork::new(conf)?);
    }
    let conf = list
        .layer(
            LayerConf::dense(256)
                .n_in(n_in)
                .activation(Activation::Relu)
                .name("hidden1"),
        )
        .layer(
            LayerConf::dense(128)
                .activation(Activation::Relu)
                .name("hidden2"),
        )
        .layer(output.name("output"))
        .build()?;
    Ok(MultiLayerNetwork::new(conf)?)
}

/// Runs `dl4rs train`.
pub fn run(args: TrainArgs, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.epochs == 0 || args.batch == 0 {
        return Err(CliError::Usage(
            "--epochs and --batch must be at least 1".into(),
        ));
    }
    if args.tbptt == Some(0) {
        return Err(CliError::Usage(
            "--tbptt 0: a truncated-BPTT segment is at least 1 time step (e.g. --tbptt 10)".into(),
        ));
    }
    let pool = super::thread_pool(args.threads)?;
    pool.install(|| train(&args, alloc))
}

fn train(args: &TrainArgs, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if let Some(dir) = super::sequence::sequence_dir(args)? {
        return super::sequence::train(args, alloc, &dir);
    }
    if let Some(k) = args.tbptt {
        return Err(CliError::Usage(format!(
            "--tbptt {k}: truncated BPTT trains a recurrent network on sequence data (--model \
             lstm, or --data DIR in the CSV sequence layout); --data {} is not sequence data, \
             so {} trains as a feed-forward network: drop --tbptt",
            args.data,
            args.config
                .as_ref()
                .map_or(format!("--model {:?}", args.model).to_lowercase(), |p| p
                    .display()
                    .to_string())
        )));
    }
    // Joined on the thread that trains: MPI is initialized "funneled" to it.
    let mut rank = super::distributed::init(args)?;
    let root = rank.as_ref().is_none_or(|r| r.is_root());
    let job = if args.data.ends_with(".csv") || args.label_column.is_some() {
        csv_job(args)?
    } else {
        let (train, test, description) = load_data(&args.data)?;
        Job {
            train_raw: DataSet::new(
                NdArray::zeros_detached(&[1, 1])?,
                NdArray::zeros_detached(&[1, 1])?,
            )?,
            train,
            test,
            description,
            regression: false,
            class_names: Some(
                fashion_mnist::CLASS_NAMES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            normalizer: None,
            prefetch: false,
        }
    };
    let n_out = job.train.num_outcomes();
    let mut net = build_model(args, job.train.num_inputs(), n_out, job.regression)?;
    if root {
        println!("data: {}", job.description);
        if let Some(r) = &rank {
            println!("{}", r.describe());
        }
        print!("{}", net.summary());
    }
    let n_train = job.train.num_examples();
    let train_iter = InMemoryDataSetIterator::new(job.train, args.batch)?.with_shuffle(args.seed);
    // Listeners see rounds: one batch per rank (distributed) or per worker (ParallelWrapper).
    let per_round = match (rank.as_ref(), args.workers) {
        (Some(r), _) => r.size(),
        (None, Some(w)) if w >= 2 => w,
        _ => 1,
    };
    let per_epoch = train_iter.batches_per_epoch().div_ceil(per_round) as u64;
    let bar = if root {
        progress_bar(per_epoch * args.epochs as u64)?
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        (per_epoch as usize) * args.epochs,
    )));
    net.add_listener(Box::new(
        ProgressListener::new(bar.clone(), alloc, counts.clone(), per_epoch)
            .all_threads(args.workers.is_some()),
    ));
    // CSV data is fed by a prefetch thread (its own cyclic workspace), as DL4J's fit does.
    let mut iterator: Box<dyn DataSetIterator<f32> + Send> = if job.prefetch {
        Box::new(AsyncDataSetIterator::new(Box::new(train_iter), 2)?)
    } else {
        Box::new(train_iter)
    };
    if let Some(rank) = rank.as_mut() {
        rank.fit(net.as_mut(), iterator.as_mut(), args.epochs)?;
    } else if let Some(workers) = args.workers {
        if args.report.is_some() {
            return Err(CliError::Usage(
                "--report and --workers together are not supported yet: drop one".into(),
            ));
        }
        net = super::train_parallel::fit(net, &mut iterator, workers, args.epochs)?;
    } else {
        match &args.report {
            Some(html) => super::report::train_with_report(
                net.as_mut(),
                iterator.as_mut(),
                args,
                html,
                &super::report::ReportJob {
                    test: &job.test,
                    class_names: job.class_names.as_deref(),
                    description: &job.description,
                    regression: job.regression,
                },
            )?,
            None => net.fit_iter(iterator.as_mut(), args.epochs)?,
        }
    }
    drop(iterator);
    bar.finish();
    if !root {
        return Ok(());
    }
    let train_secs = started.elapsed().as_secs_f64();
    println!(
        "trained {} epochs on {} examples in {:.1} s ({:.0} examples/s)",
        args.epochs,
        n_train,
        train_secs,
        (n_train * args.epochs) as f64 / train_secs
    );
    if let Some(r) = &rank {
        println!("{}", r.traffic());
    }

    let summary_line = if job.regression {
        let (eval, baseline) = evaluate_regression(
            net.as_mut(),
            &job.test,
            &job.train_raw,
            job.normalizer.as_ref(),
        )?;
        println!("{}", eval.stats());
        println!(
            "linear least-squares baseline (fitted on the same training rows): R² {:.4}",
            baseline
        );
        format!(
            "test R²: {:.4} (MSE {:.4}, in the targets' units)",
            eval.average_r_squared(),
            eval.average_mean_squared_error()
        )
    } else {
        let mut eval = match &job.class_names {
            Some(names) => Evaluation::with_labels(names.clone()),
            None => Evaluation::new(n_out),
        };
        let mut test_iter = InMemoryDataSetIterator::new(job.test, 500)?;
        net.do_evaluation(&mut test_iter, &mut [&mut eval])?;
        println!("{}", eval.stats());
        format!("test accuracy: {:.2}%", eval.accuracy() * 100.0)
    };

    print_memory(&counts, args.workers.is_some());
    match &job.normalizer {
        Some(n) => ModelSerializer::write_model_with_normalizer(net.as_ref(), &args.out, true, n)?,
        None => ModelSerializer::write_model(net.as_ref(), &args.out, true)?,
    }
    println!("model saved to {}", args.out.display());
    println!("{summary_line}");
    Ok(())
}

/// The network to train: a configuration file, or a built-in architecture.
fn build_model(
    args: &TrainArgs,
    n_in: usize,
    n_out: usize,
    regression: bool,
) -> Result<Box<dyn Model<f32>>, CliError> {
    let net: Box<dyn Model<f32>> = match &args.config {
        Some(path) => super::config::load(
            path,
            InputType::feed_forward(n_in),
            n_out,
            args.workspaces.map(Into::into),
        )?,
        None => match args.model {
            ModelArg::Mlp | ModelArg::Lenet => Box::new(network(args, n_in, n_out, regression)?),
            ModelArg::Lstm => {
                return Err(CliError::Usage(
                    "--model lstm reads sequences: --data DIR with DIR/train and DIR/test in \
                     DL4J's CSV sequence layout (features/0.csv, … and labels/0.csv, …)"
                        .into(),
                ));
            }
        },
    };
    let inputs = net.input_types();
    let outputs = net.output_types();
    let source = args
        .config
        .as_ref()
        .map_or("the network".to_string(), |p| p.display().to_string());
    if inputs.len() != 1 || inputs[0].1.flat_size() != n_in {
        return Err(CliError::Usage(format!(
            "{source}: the network reads {} but the data has one input of {n_in} values per \
             example: remove the input size from the configuration to take it from the data",
            inputs
                .iter()
                .map(|(n, t)| format!("\"{n}\": {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if outputs.len() != 1 || outputs[0].1.flat_size() != n_out {
        return Err(CliError::Usage(format!(
            "{source}: the network outputs {} but the data has {n_out} {} per example",
            outputs
                .iter()
                .map(|(n, t)| format!("\"{n}\": {t}"))
                .collect::<Vec<_>>()
                .join(", "),
            if regression { "targets" } else { "classes" }
        )));
    }
    Ok(net)
}

/// Regression metrics in the targets' units (outputs reverted through the label normalizer),
/// and the R² of a linear least-squares fit on the same training rows.
fn evaluate_regression(
    net: &mut dyn Model<f32>,
    test: &DataSet,
    train_raw: &DataSet,
    normalizer: Option<&Normalizer>,
) -> Result<(RegressionEvaluation, f64), CliError> {
    let mut eval = RegressionEvaluation::new(test.num_outcomes());
    let mut it = InMemoryDataSetIterator::new(test.dup()?, 500)?;
    while let Some(batch) = it.next() {
        let batch = batch?;
        let mut out = net
            .output_arrays(&[batch.features.view()], false)?
            .pop()
            .ok_or_else(|| CliError::Usage("the network produced no output".into()))?;
        if let Some(n) = normalizer {
            DataNormalization::<f32>::revert_labels(n, &mut out)?;
        }
        eval.eval(&batch.labels, &out, None)?;
    }
    let baseline = super::baseline::least_squares_r2(train_raw, test)?;
    Ok((eval, baseline))
}

/// What to train on.
struct Job {
    train: DataSet,
    /// Regression: the training rows with targets in their own units (for the baseline).
    train_raw: DataSet,
    /// Features normalized, labels in their own units.
    test: DataSet,
    description: String,
    regression: bool,
    class_names: Option<Vec<String>>,
    normalizer: Option<Normalizer>,
    prefetch: bool,
}

/// Reads a CSV, shuffles and splits it, fits the normalizer on the training rows.
fn csv_job(args: &TrainArgs) -> Result<Job, CliError> {
    let label = args.label_column.ok_or_else(|| {
        CliError::Usage(
            "CSV data needs --label-column N (0-based) and --classes K or --regression".into(),
        )
    })?;
    if !(0.0..1.0).contains(&args.test_fraction) {
        return Err(CliError::Usage(format!(
            "--test-fraction must be in [0, 1), found {}",
            args.test_fraction
        )));
    }
    let mut reader = CsvRecordReader::new(args.skip_lines, args.delimiter);
    reader.initialize(&args.data)?;
    let iter = if args.regression {
        RecordReaderDataSetIterator::<f32>::regression(
            reader,
            args.batch,
            label,
            args.label_to.unwrap_or(label),
        )?
    } else {
        let classes = args.classes.ok_or_else(|| {
            CliError::Usage("CSV classification needs --classes K (or use --regression)".into())
        })?;
        RecordReaderDataSetIterator::<f32>::classification(reader, args.batch, label, classes)?
    };
    let mut all = iter.to_dataset()?;
    let n = all.num_examples();
    all.shuffle(args.seed)?;
    let n_test = ((n as f64) * args.test_fraction).round() as usize;
    if n_test == 0 || n_test >= n {
        return Err(CliError::Usage(format!(
            "{}: {n} rows can't be split with --test-fraction {}: need at least one training and one test row",
            args.data, args.test_fraction
        )));
    }
    let (mut train, mut test) = all.split_test_and_train(n - n_test)?;
    let raw_labels = train.labels.dup()?;
    let normalizer = match args.normalizer.unwrap_or(NormalizerArg::Standardize) {
        NormalizerArg::None => None,
        other => {
            let name = format!("{other:?}").to_lowercase();
            // Regression targets are normalized too (and reverted for evaluation and
            // predict), except by the image scaler, which knows only pixels.
            let fit_labels = args.regression && other != NormalizerArg::Image;
            let mut normalizer = Normalizer::from_name(&name)?.fit_labels(fit_labels);
            normalizer.fit_data(&train)?;
            normalizer.transform(&mut train)?;
            DataNormalization::<f32>::transform_features(&normalizer, &mut test.features)?;
            Some(normalizer)
        }
    };
    // The baseline sees the network's features and the targets in their own units.
    let train_raw = DataSet::new(train.features.dup()?, raw_labels)?;
    Ok(Job {
        description: format!(
            "{} ({} rows: {} train / {} test, {} features, {}{})",
            args.data,
            n,
            n - n_test,
            n_test,
            train.num_inputs(),
            if args.regression {
                "regression"
            } else {
                "classification"
            },
            normalizer
                .as_ref()
                .map_or(", no normalizer".to_string(), |n| format!(
                    ", normalizer {}{}",
                    n.name(),
                    if n.fits_labels() {
                        " (features and targets)"
                    } else {
                        ""
                    }
                ))
        ),
        train,
        train_raw,
        test,
        regression: args.regression,
        class_names: None,
        normalizer,
        prefetch: true,
    })
}
