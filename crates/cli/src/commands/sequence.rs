//! `dl4rs train` on sequence data in DL4J's CSV sequence layout: `DIR/train/features/0.csv, …`
//! (one line per time step, one column per channel) with `DIR/train/labels/0.csv, …` (one
//! line: the class index), the same under `DIR/test/`. Sequences of any length are aligned
//! at the end with masks (one label per sequence), standardized per channel (fitted on the
//! training sequences, padding ignored, saved with the model), reshuffled every epoch and fed
//! by the async prefetch thread, whose ring grows to the longest batch. The network is the
//! built-in LSTM classifier (`--model lstm`) or a JSON configuration (`--config`), sized from
//! the files: input channels and number of classes. Then the evaluation on `test/`, the
//! workspace report and the heap allocations per steady-state iteration, as for the other data.
//! `--workers N` trains through ParallelWrapper and `--distributed` as one MPI rank, as for
//! the other data; `--tbptt K` trains in truncated-BPTT segments of K steps (one process).
//!
//! A network whose output is one vector per sequence (e.g. `LastTimeStep` + `Output`) gets
//! labels `[batch, classes]`; one whose output is a sequence (`RnnOutputLayer`) gets DL4J's
//! `[batch, classes, time]` labels with the label mask on each sequence's last step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dl4rs::data::normalizer::{DataNormalization, Normalizer, PreProcessedIterator};
use dl4rs::data::records::{SequenceRecordReaderDataSetIterator, SequenceSplit};
use dl4rs::data::{AsyncDataSetIterator, DataSetIterator, fashion_mnist};
use dl4rs::eval::Evaluation;
use dl4rs::memory::CountingAllocator;
use dl4rs::nn::{InputType, Model, ModelSerializer};

use super::CliError;
use super::progress::ProgressListener;
use super::progress::{print_memory, progress_bar};
use super::train::{ModelArg, NormalizerArg, TrainArgs};

/// The bundled sequence set (Fashion-MNIST images read row by row, cut to 8..28 steps), in the
/// source tree this binary was built from.
pub const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sequences/fashion-rows"
);

/// Whether `dir` holds sequence data: a `train/features` directory.
pub fn is_sequence_dir(dir: &Path) -> bool {
    dir.join("train").join("features").is_dir()
}

/// The sequence directory `dl4rs train` should read, if its arguments ask for sequences:
/// `--data DIR` in the sequence layout, or `--model lstm` (the bundled set by default).
pub fn sequence_dir(args: &TrainArgs) -> Result<Option<PathBuf>, CliError> {
    let lstm = args.model == ModelArg::Lstm && args.config.is_none();
    let dir = match args.data.as_str() {
        "auto" | "bundled" if lstm => PathBuf::from(BUNDLED),
        "auto" | "bundled" => return Ok(None),
        d => PathBuf::from(d),
    };
    if is_sequence_dir(&dir) {
        if let Some(k) = args.tbptt
            && (args.workers.is_some() || args.distributed)
        {
            // The trainers compute each batch's gradient over the whole series.
            return Err(CliError::Usage(format!(
                "--tbptt {k} with --workers or --distributed is not supported: data-parallel \
                 trainers share whole-sequence gradients; drop one"
            )));
        }
        if args.label_column.is_some() || args.regression || args.classes.is_some() {
            return Err(CliError::Usage(format!(
                "--data {}: sequence data takes its labels from labels/ and its number of \
                 classes from the files: drop --label-column, --classes and --regression",
                dir.display()
            )));
        }
        return Ok(Some(dir));
    }
    if lstm {
        return Err(CliError::Usage(format!(
            "--model lstm: {} is not sequence data: expected DIR/train/features/0.csv, … (one \
             line per time step), DIR/train/labels/0.csv, … (the class index) and the same \
             under DIR/test/ (e.g. --data data/sequences/fashion-rows)",
            dir.display()
        )));
    }
    Ok(None)
}

/// The two splits, read and checked against each other.
struct SequenceData {
    train: SequenceSplit,
    test: SequenceSplit,
    channels: usize,
    classes: usize,
    class_names: Option<Vec<String>>,
    description: String,
}

impl SequenceData {
    fn load(dir: &Path, args: &TrainArgs) -> Result<Self, CliError> {
        let read = |split: &str| {
            SequenceSplit::read_with(dir.join(split), args.skip_lines, args.delimiter)
        };
        let (train, test) = (read("train")?, read("test")?);
        let channels = train.num_channels();
        if test.num_channels() != channels {
            return Err(CliError::Usage(format!(
                "{}: the test sequences have {} channels (columns) per step but the training \
                 sequences have {channels}",
                test.dir().display(),
                test.num_channels()
            )));
        }
        // Classes from both splits, so a test label the training files lack is still valid.
        let classes = train.num_classes()?.max(test.num_classes()?);
        let bundled = std::fs::canonicalize(dir).ok() == std::fs::canonicalize(BUNDLED).ok();
        let class_names = (bundled && classes == fashion_mnist::NUM_CLASSES).then(|| {
            fashion_mnist::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let (lo, hi) = train.length_range();
        let shown = if bundled {
            "the bundled Fashion-MNIST rows (data/sequences/fashion-rows)".to_string()
        } else {
            dir.display().to_string()
        };
        let description = format!(
            "sequences from {shown} ({} train / {} test, {channels} channels per step, \
             {lo}..{hi} steps, {classes} classes; aligned at the end with masks)",
            train.len(),
            test.len()
        );
        Ok(SequenceData {
            train,
            test,
            channels,
            classes,
            class_names,
            description,
        })
    }
}

/// The network to train, checked against the data's sizes.
fn build(args: &TrainArgs, data: &SequenceData) -> Result<Box<dyn Model<f32>>, CliError> {
    let net = match &args.config {
        Some(path) => super::config::load_with(
            path,
            InputType::recurrent(data.channels),
            data.classes,
            args.workspaces.map(Into::into),
            args.tbptt,
        )?,
        // On sequences the built-in network is the LSTM (the default `--model mlp` included:
        // an MLP reads rows); LeNet reads images.
        None if args.model == ModelArg::Lenet => {
            return Err(CliError::Usage(
                "--model lenet reads images; sequence data trains --model lstm (the default \
                 here) or a --config"
                    .into(),
            ));
        }
        None => super::rnn_model::lstm_classifier(args, data.channels, data.classes)?,
    };
    let source = args
        .config
        .as_ref()
        .map_or("the network".to_string(), |p| p.display().to_string());
    let inputs = net.input_types();
    let outputs = net.output_types();
    let reads_sequences = matches!(inputs.as_slice(), [(_, InputType::Recurrent { size, .. })] if *size == data.channels);
    if !reads_sequences {
        return Err(CliError::Usage(format!(
            "{source}: the network reads {} but the data is one input of sequences with {} \
             channels per step: remove the input size from the configuration to take it from \
             the data",
            types(&inputs),
            data.channels
        )));
    }
    let classes_out = match outputs.as_slice() {
        [(_, InputType::FeedForward { size })] | [(_, InputType::Recurrent { size, .. })] => *size,
        _ => 0,
    };
    if classes_out != data.classes {
        return Err(CliError::Usage(format!(
            "{source}: the network outputs {} but the data has {} classes (one vector per \
             sequence, or a sequence of them)",
            types(&outputs),
            data.classes
        )));
    }
    if let Some(k) = args.tbptt
        && one_output_per_sequence(net.as_ref())
    {
        // Truncated BPTT cuts the labels along time with the features: they must be per step.
        return Err(CliError::Usage(format!(
            "--tbptt {k}: truncated BPTT needs a network that outputs a sequence (ending in \
             an RnnOutputLayer or RnnLossLayer; labels per step), but {source} outputs {} \
             (one vector per sequence, e.g. LastTimeStep + Output): change its head or drop \
             --tbptt",
            types(&outputs)
        )));
    }
    Ok(net)
}

fn types(list: &[(String, InputType)]) -> String {
    list.iter()
        .map(|(n, t)| format!("\"{n}\": {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A source of batches over `split`: shuffled when `shuffle` is given, labels per sequence
/// when `per_sequence`, normalized when a normalizer is given.
fn batches(
    split: &SequenceSplit,
    batch: usize,
    classes: usize,
    shuffle: Option<u64>,
    per_sequence: bool,
    normalizer: Option<&Normalizer>,
) -> Result<Box<dyn DataSetIterator<f32> + Send>, CliError> {
    let mut it: SequenceRecordReaderDataSetIterator<f32> = split.classification(batch, classes)?;
    if let Some(seed) = shuffle {
        it = it.with_shuffle(seed);
    }
    if per_sequence {
        it = it.with_labels_per_sequence();
    }
    Ok(match normalizer {
        Some(n) => Box::new(PreProcessedIterator::new(it, n.clone())),
        None => Box::new(it),
    })
}

/// Whether `net` gives one vector per sequence (e.g. `LastTimeStep` + `Output`) rather than
/// one per step (`RnnOutputLayer`).
fn one_output_per_sequence(net: &dyn Model<f32>) -> bool {
    matches!(
        net.output_types().first(),
        Some((_, InputType::FeedForward { .. }))
    )
}

/// The evaluation of `net` on `split` (labels one-hot in `0..classes`, features through the
/// model's normalizer when it has one).
fn evaluate_split(
    net: &mut dyn Model<f32>,
    split: &SequenceSplit,
    classes: usize,
    class_names: Option<&[String]>,
    normalizer: Option<&Normalizer>,
) -> Result<Evaluation, CliError> {
    let per_sequence = one_output_per_sequence(net);
    let mut eval = match class_names {
        Some(names) => Evaluation::with_labels(names.to_vec()),
        None => Evaluation::new(classes),
    };
    // Per-step outputs are evaluated at their unmasked steps (the network's do_evaluation
    // does DL4J's evalTimeSeries): with AlignEnd, each sequence's last step.
    let mut it = batches(split, 500, classes, None, per_sequence, normalizer)?;
    net.do_evaluation(it.as_mut(), &mut [&mut eval])?;
    Ok(eval)
}

/// `dl4rs evaluate --model FILE --data DIR`: the saved `net` (with its stored normalizer) on
/// `DIR/test`.
pub fn evaluate(net: &mut dyn Model<f32>, model_path: &Path, dir: &Path) -> Result<(), CliError> {
    let test = SequenceSplit::read(dir.join("test"))?;
    let (inputs, outputs) = (net.input_types(), net.output_types());
    let channels = match inputs.as_slice() {
        [(_, InputType::Recurrent { size, .. })] => *size,
        _ => 0,
    };
    if channels != test.num_channels() {
        return Err(CliError::Usage(format!(
            "{}: the model reads {} but {} holds sequences of {} channels per step",
            model_path.display(),
            types(&inputs),
            test.dir().display(),
            test.num_channels()
        )));
    }
    let classes = outputs.first().map_or(0, |(_, t)| match *t {
        InputType::FeedForward { size } | InputType::Recurrent { size, .. } => size,
        _ => 0,
    });
    let needed = test.num_classes()?;
    if needed > classes {
        return Err(CliError::Usage(format!(
            "{}: the model has {classes} classes but {} has labels up to {}",
            model_path.display(),
            test.dir().display(),
            needed - 1
        )));
    }
    let normalizer = ModelSerializer::restore_normalizer(model_path)?;
    let bundled = std::fs::canonicalize(dir).ok() == std::fs::canonicalize(BUNDLED).ok();
    let names: Option<Vec<String>> =
        (bundled && classes == fashion_mnist::NUM_CLASSES).then(|| {
            fashion_mnist::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
    println!(
        "data: {} test sequences from {}{}",
        test.len(),
        dir.display(),
        normalizer.as_ref().map_or(String::new(), |n| format!(
            ", normalizer {} (from the model)",
            n.name()
        ))
    );
    let eval = evaluate_split(net, &test, classes, names.as_deref(), normalizer.as_ref())?;
    println!("{}", eval.stats());
    println!("test accuracy: {:.2}%", eval.accuracy() * 100.0);
    Ok(())
}

/// Runs `dl4rs train` on the sequences in `dir`: on this thread, through ParallelWrapper
/// (`--workers N`) or as one rank of an MPI job (`--distributed`; rank 0 prints, evaluates
/// and saves).
pub fn train(
    args: &TrainArgs,
    alloc: &'static CountingAllocator,
    dir: &Path,
) -> Result<(), CliError> {
    // Joined on the thread that trains: MPI is initialized "funneled" to it.
    let mut rank = super::distributed::init(args)?;
    let root = rank.as_ref().is_none_or(|r| r.is_root());
    if args.workers.is_some() && args.report.is_some() {
        return Err(CliError::Usage(
            "--report and --workers together are not supported yet: drop one".into(),
        ));
    }
    let data = SequenceData::load(dir, args)?;
    let mut net = build(args, &data)?;
    if root {
        println!("data: {}", data.description);
        if let Some(r) = &rank {
            println!("{}", r.describe());
        }
        print!("{}", net.summary());
        if let Some(k) = args.tbptt {
            println!(
                "truncated BPTT: segments of {k} time steps (forward and backward length {k}), \
                 state carried between segments, one updater step per segment"
            );
        }
    }
    // One vector per sequence (LastTimeStep + Output) or a sequence of them (RnnOutputLayer).
    let per_sequence = one_output_per_sequence(net.as_ref());
    let normalizer = match args.normalizer.unwrap_or(NormalizerArg::Standardize) {
        NormalizerArg::None => None,
        other => {
            let mut n = Normalizer::from_name(&format!("{other:?}").to_lowercase())?;
            // Per channel, over every unmasked step of every training sequence.
            let mut fit_on = batches(&data.train, 500, data.classes, None, per_sequence, None)?;
            DataNormalization::<f32>::fit(&mut n, fit_on.as_mut())?;
            Some(n)
        }
    };
    let mut source = batches(
        &data.train,
        args.batch,
        data.classes,
        Some(args.seed),
        per_sequence,
        normalizer.as_ref(),
    )?;
    // Listeners see rounds: one batch per rank (distributed) or per worker (ParallelWrapper).
    let per_round = match (rank.as_ref(), args.workers) {
        (Some(r), _) => r.size(),
        (None, Some(w)) if w >= 2 => w,
        _ => 1,
    };
    let per_epoch = data.train.len().div_ceil(args.batch).div_ceil(per_round) as u64;
    let bar = if root {
        progress_bar(per_epoch * args.epochs as u64)?
    } else {
        indicatif::ProgressBar::hidden()
    };
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        per_epoch as usize * args.epochs,
    )));
    net.add_listener(Box::new(
        ProgressListener::new(bar.clone(), alloc, counts.clone(), per_epoch)
            .all_threads(args.workers.is_some()),
    ));
    let started = Instant::now();
    if let Some(rank) = rank.as_mut() {
        // The plain iterator: the trainer keeps its batch while it reads the other ranks'
        // (a prefetch ring would reuse the slot), inside its own input workspace.
        rank.fit(net.as_mut(), source.as_mut(), args.epochs)?;
    } else if let Some(workers) = args.workers {
        // ParallelWrapper prefetches on its own ring and copies each batch, masks included,
        // into the trainer's workspace.
        net = super::train_parallel::fit(net, &mut source, workers, args.epochs)?;
    } else {
        // The prefetch thread's ring grows as longer batches arrive (and never shrinks).
        let mut train_iter = AsyncDataSetIterator::new(source, 2)?;
        match &args.report {
            Some(html) => {
                // The report evaluates a data set after every epoch: the test split as one
                // padded batch with its masks (the bundled 1,000 sequences: about 3 MB), on
                // the heap.
                let mut all = batches(
                    &data.test,
                    data.test.len(),
                    data.classes,
                    None,
                    per_sequence,
                    normalizer.as_ref(),
                )?;
                let test = all
                    .next()
                    .ok_or_else(|| CliError::Usage("the test split is empty".into()))??
                    .detach()?;
                super::report::train_with_report(
                    net.as_mut(),
                    &mut train_iter,
                    args,
                    html,
                    &super::report::ReportJob {
                        test: &test,
                        class_names: data.class_names.as_deref(),
                        description: &data.description,
                        regression: false,
                    },
                )?;
            }
            None => net.fit_iter(&mut train_iter, args.epochs)?,
        }
    }
    bar.finish();
    if !root {
        return Ok(());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "trained {} epochs on {} sequences in {secs:.1} s ({:.0} sequences/s)",
        args.epochs,
        data.train.len(),
        (data.train.len() * args.epochs) as f64 / secs
    );
    if let Some(r) = &rank {
        println!("{}", r.traffic());
    }

    let eval = evaluate_split(
        net.as_mut(),
        &data.test,
        data.classes,
        data.class_names.as_deref(),
        normalizer.as_ref(),
    )?;
    println!("{}", eval.stats());
    print_memory(&counts, args.workers.is_some());
    match &normalizer {
        Some(n) => ModelSerializer::write_model_with_normalizer(net.as_ref(), &args.out, true, n)?,
        None => ModelSerializer::write_model(net.as_ref(), &args.out, true)?,
    }
    println!("model saved to {}", args.out.display());
    println!("test accuracy: {:.2}%", eval.accuracy() * 100.0);
    Ok(())
}
