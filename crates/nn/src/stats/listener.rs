//! [`StatsListener`] (DL4J's name): records every iteration into a preallocated ring of
//! fixed-size records and appends them to the stats file every `flush_every` iterations, at
//! each epoch end and at [`StatsHandle::finish`]. The hot path makes no heap allocation: the
//! ring, the per-parameter arrays, the copy of the parameters (for updates), the view of the
//! workspaces and the text buffer are all sized at the first iteration and reused; lines are
//! formatted with `write!` into the reused buffer and written with one `write` call per
//! flush (nothing is buffered elsewhere, so a killed run keeps every flushed line).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dl4rs_array::DataType;
use dl4rs_memory::{ProcessWorkspace, process_workspaces_into};

use super::format::{
    EvalRecord, ParamInfo, STATS_FORMAT, STATS_VERSION, StatsHeader, WorkspaceInfo,
};
use crate::error::NnError;
use crate::listeners::{IterationInfo, TrainingListener};
use crate::model::Model;

/// How a [`StatsListener`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    /// Iterations kept in the ring before they are written (the most a killed run loses).
    pub flush_every: usize,
    /// Iterations between parameter, gradient and update statistics (1: every iteration;
    /// they read every parameter; the default, 20, keeps their cost near 1 % of W1's iteration).
    pub param_stats_every: u64,
    /// Most workspaces recorded per iteration (more are left out of the samples).
    pub max_workspaces: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            flush_every: 100,
            param_stats_every: 20,
            max_workspaces: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Scalars {
    iteration: u64,
    epoch: u64,
    time_s: f64,
    score: f64,
    batch: usize,
    eps: f64,
    lr: f64,
    has_params: bool,
    has_update: bool,
    n_ws: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    slot: usize,
    block: u64,
    used: u64,
    spilled: u64,
    pinned: u64,
    cycles: u64,
}

struct EpochSums {
    epoch: u64,
    sum: f64,
    count: u64,
    last_iteration: u64,
}

struct State<T: DataType> {
    path: PathBuf,
    file: File,
    cfg: StatsConfig,
    started: Instant,
    last_call: Option<Instant>,
    run: Vec<(String, String)>,
    header_written: bool,
    /// Per parameter array: its range in the flat array.
    ranges: Vec<std::ops::Range<usize>>,
    /// The ring: `len` records in use.
    scalars: Vec<Scalars>,
    /// `3 * ranges.len()` per record: mean |p|, |g|, |u|.
    magnitudes: Vec<f32>,
    /// `max_workspaces` per record.
    samples: Vec<Sample>,
    len: usize,
    /// Parameters after the iteration before a statistics iteration.
    prev: Vec<T>,
    prev_of: Option<u64>,
    /// Workspaces already given a slot: (uid, slot).
    known: Vec<(u64, usize)>,
    view: Vec<ProcessWorkspace>,
    /// Text waiting to be written (workspace lines, then the ring's lines).
    out: String,
    epoch: Option<EpochSums>,
    finished: bool,
}

/// Records training statistics into a stats file (see the [module](super) and
/// `docs/stats-format.md`). Add it to a network with `add_listener(Box::new(listener))`; keep a
/// [`StatsHandle`] (from [`StatsListener::handle`]) to add evaluations, end epochs and finish.
pub struct StatsListener<T: DataType> {
    state: Arc<Mutex<State<T>>>,
}

/// The other end of a [`StatsListener`]: run information, evaluations, epoch ends, flushes.
pub struct StatsHandle<T: DataType> {
    state: Arc<Mutex<State<T>>>,
}

impl<T: DataType> Clone for StatsHandle<T> {
    fn clone(&self) -> Self {
        StatsHandle {
            state: self.state.clone(),
        }
    }
}

fn lock<T: DataType>(state: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> NnError {
    NnError::File {
        path: path.display().to_string(),
        message: format!("{what}: {e}"),
    }
}

/// A JSON number, or `null` when not finite.
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_finite() {
            write!(f, "{}", self.0)
        } else {
            f.write_str("null")
        }
    }
}

struct Num32(f32);

impl std::fmt::Display for Num32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_finite() {
            write!(f, "{}", self.0)
        } else {
            f.write_str("null")
        }
    }
}

impl<T: DataType> StatsListener<T> {
    /// Records into `path` (created, or truncated) with the default [`StatsConfig`].
    pub fn new(path: impl AsRef<Path>) -> Result<Self, NnError> {
        StatsListener::with_config(path, StatsConfig::default())
    }

    /// Records into `path` with `cfg`.
    pub fn with_config(path: impl AsRef<Path>, cfg: StatsConfig) -> Result<Self, NnError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err(dir, "can't create the stats directory", e))?;
        }
        let file =
            File::create(&path).map_err(|e| io_err(&path, "can't create the stats file", e))?;
        let cfg = StatsConfig {
            flush_every: cfg.flush_every.max(1),
            param_stats_every: cfg.param_stats_every.max(1),
            max_workspaces: cfg.max_workspaces.max(1),
        };
        Ok(StatsListener {
            state: Arc::new(Mutex::new(State {
                path,
                file,
                cfg,
                started: Instant::now(),
                last_call: None,
                run: Vec::new(),
                header_written: false,
                ranges: Vec::new(),
                scalars: Vec::new(),
                magnitudes: Vec::new(),
                samples: Vec::new(),
                len: 0,
                prev: Vec::new(),
                prev_of: None,
                known: Vec::new(),
                view: Vec::new(),
                out: String::new(),
                epoch: None,
                finished: false,
            })),
        })
    }

    /// A handle for the code that runs the training.
    pub fn handle(&self) -> StatsHandle<T> {
        StatsHandle {
            state: self.state.clone(),
        }
    }
}

impl<T: DataType> StatsHandle<T> {
    /// The stats file.
    pub fn path(&self) -> PathBuf {
        lock(&self.state).path.clone()
    }

    /// The run's configuration (name, value), written in the header: call before training.
    pub fn set_run_info(&self, run: Vec<(String, String)>) {
        lock(&self.state).run = run;
    }

    /// Ends the current epoch: writes the ring and the epoch's record, and flushes.
    pub fn end_epoch(&self) -> Result<(), NnError> {
        let mut s = lock(&self.state);
        s.flush_ring();
        s.close_epoch();
        s.between_iterations();
        s.write_out()
    }

    /// Writes an evaluation (after the ring, so records stay in order).
    pub fn record_evaluation(&self, eval: &EvalRecord) -> Result<(), NnError> {
        let mut s = lock(&self.state);
        s.flush_ring();
        let mut value = serde_json::to_value(eval).map_err(|e| NnError::File {
            path: s.path.display().to_string(),
            message: format!("can't encode the evaluation: {e}"),
        })?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("type".into(), "eval".into());
        }
        s.out.push_str(&value.to_string());
        s.out.push('\n');
        s.between_iterations();
        s.write_out()
    }

    /// Writes what the ring holds (and notes workspaces created since the last iteration).
    pub fn flush(&self) -> Result<(), NnError> {
        let mut s = lock(&self.state);
        s.flush_ring();
        s.between_iterations();
        s.write_out()
    }

    /// Ends the run: writes the ring, the last epoch's record and the `end` line.
    pub fn finish(&self) -> Result<(), NnError> {
        let mut s = lock(&self.state);
        s.flush_ring();
        s.close_epoch();
        s.between_iterations();
        if !s.finished {
            let t = s.started.elapsed().as_secs_f64();
            let _ = writeln!(s.out, "{{\"type\":\"end\",\"time_s\":{}}}", Num(t));
            s.finished = true;
        }
        s.write_out()
    }
}

impl<T: DataType> State<T> {
    fn write_out(&mut self) -> Result<(), NnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(self.out.as_bytes());
        self.out.clear();
        result.map_err(|e| io_err(&self.path, "can't write the stats file", e))
    }

    fn header(&mut self, net: &dyn Model<T>) -> Result<(), NnError> {
        let table = net.param_table();
        let header = StatsHeader {
            format: STATS_FORMAT.into(),
            version: STATS_VERSION,
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            model_kind: format!("{:?}", net.kind()),
            num_params: net.num_params(),
            summary: net.summary(),
            conf: net
                .conf_json()
                .ok()
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or(serde_json::Value::Null),
            params: table
                .iter()
                .map(|e| ParamInfo {
                    key: e.key.clone(),
                    shape: e.shape.clone(),
                    len: e.range.len(),
                })
                .collect(),
            run: std::mem::take(&mut self.run),
            param_stats_every: self.cfg.param_stats_every,
        };
        let mut value = serde_json::to_value(&header).map_err(|e| NnError::File {
            path: self.path.display().to_string(),
            message: format!("can't encode the header: {e}"),
        })?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("type".into(), "header".into());
        }
        self.out.push_str(&value.to_string());
        self.out.push('\n');
        self.ranges = table.iter().map(|e| e.range.clone()).collect();
        let ring = self.cfg.flush_every;
        self.scalars = vec![Scalars::default(); ring];
        self.magnitudes = vec![0.0; ring * 3 * self.ranges.len()];
        self.samples = vec![Sample::default(); ring * self.cfg.max_workspaces];
        self.prev = vec![T::ZERO; net.num_params()];
        self.known = Vec::with_capacity(self.cfg.max_workspaces);
        self.view = Vec::with_capacity(self.cfg.max_workspaces * 2);
        // Room for a full ring of lines, so flushing never grows it in steady state.
        let per_line = 160 + self.ranges.len() * 3 * 16 + self.cfg.max_workspaces * 8 * 12;
        self.out.reserve(per_line * (ring + 2) + 4096);
        self.header_written = true;
        self.write_out()
    }

    /// Appends the epoch record of the epoch in progress, if any.
    fn close_epoch(&mut self) {
        if let Some(e) = self.epoch.take() {
            let t = self.started.elapsed().as_secs_f64();
            let _ = writeln!(
                self.out,
                "{{\"type\":\"epoch\",\"epoch\":{},\"iteration\":{},\"train_loss\":{},\"time_s\":{}}}",
                e.epoch,
                e.last_iteration,
                Num(e.sum / e.count.max(1) as f64),
                Num(t)
            );
        }
    }

    /// Formats the ring's records into `out` and empties the ring (no allocation once `out`
    /// has grown to a full ring).
    fn flush_ring(&mut self) {
        let n_params = self.ranges.len();
        for r in 0..self.len {
            let s = self.scalars[r];
            let out = &mut self.out;
            let _ = write!(
                out,
                "{{\"type\":\"iter\",\"i\":{},\"epoch\":{},\"time_s\":{},\"score\":{},\"batch\":{},\"eps\":{},\"lr\":{}",
                s.iteration,
                s.epoch,
                Num(s.time_s),
                Num(s.score),
                s.batch,
                Num(s.eps),
                Num(s.lr)
            );
            if s.has_params {
                let m = &self.magnitudes[r * 3 * n_params..(r + 1) * 3 * n_params];
                for (k, name) in ["p", "g", "u"].iter().enumerate() {
                    if k == 2 && !s.has_update {
                        continue;
                    }
                    let _ = write!(out, ",\"{name}\":[");
                    for j in 0..n_params {
                        if j > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{}", Num32(m[k * n_params + j]));
                    }
                    out.push(']');
                }
            }
            out.push_str(",\"ws\":[");
            let base = r * self.cfg.max_workspaces;
            for (j, w) in self.samples[base..base + s.n_ws].iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "[{},{},{},{},{},{}]",
                    w.slot, w.block, w.used, w.spilled, w.pinned, w.cycles
                );
            }
            out.push_str("]}\n");
        }
        self.len = 0;
    }

    /// Reads every thread's workspaces; gives new ones a slot (and their `workspace` line);
    /// with `Some(r)`, stores the samples in the ring's record `r`. Returns the samples kept.
    fn scan_workspaces(&mut self, record: Option<usize>) -> usize {
        if !self.header_written {
            return 0;
        }
        process_workspaces_into(&mut self.view);
        let max = self.cfg.max_workspaces;
        let mut n_ws = 0;
        for k in 0..self.view.len() {
            if n_ws == max {
                break;
            }
            let w = &self.view[k];
            let slot = match self.known.iter().find(|(uid, _)| *uid == w.uid) {
                Some(&(_, slot)) => slot,
                None => {
                    // A workspace seen for the first time (not steady state): its line.
                    let slot = self.known.len();
                    self.known.push((w.uid, slot));
                    let info = WorkspaceInfo {
                        slot,
                        uid: w.uid,
                        id: w.id.to_string(),
                        thread: w.thread.to_string(),
                        thread_index: w.thread_index,
                        cyclic: w.cyclic,
                    };
                    if let Ok(mut value) = serde_json::to_value(&info) {
                        if let serde_json::Value::Object(map) = &mut value {
                            map.insert("type".into(), "workspace".into());
                        }
                        self.out.push_str(&value.to_string());
                        self.out.push('\n');
                    }
                    slot
                }
            };
            if let Some(r) = record {
                let s = w.snapshot;
                self.samples[r * max + n_ws] = Sample {
                    slot,
                    block: s.block_bytes,
                    used: s.used_bytes,
                    spilled: s.spilled_bytes,
                    pinned: s.pinned_bytes,
                    cycles: s.cycles,
                };
            }
            n_ws += 1;
        }
        self.view.clear();
        n_ws
    }

    /// Between epochs (evaluation, reports): new workspaces get their slot now, not in the
    /// next iteration, and the next iteration's examples/s don't count this pause.
    fn between_iterations(&mut self) {
        self.scan_workspaces(None);
        if self.last_call.is_some() {
            self.last_call = Some(Instant::now());
        }
    }

    /// Parameter, gradient and update magnitudes into the ring's record `r`.
    fn param_stats(
        &mut self,
        net: &dyn Model<T>,
        r: usize,
        update: bool,
        keep: bool,
    ) -> Result<(), NnError> {
        let params = net.params().read()?;
        let grads = net.gradients().read()?;
        let (Some(p), Some(g)) = (params.as_slice(), grads.as_slice()) else {
            return Ok(());
        };
        let n_params = self.ranges.len();
        let m = &mut self.magnitudes[r * 3 * n_params..(r + 1) * 3 * n_params];
        for (j, range) in self.ranges.iter().enumerate() {
            let len = range.len().max(1) as f64;
            let (sp, sg, su) = magnitudes(
                &p[range.clone()],
                &g[range.clone()],
                &mut self.prev[range.clone()],
                update,
                keep,
            );
            m[j] = (sp / len) as f32;
            m[n_params + j] = (sg / len) as f32;
            m[2 * n_params + j] = (su / len) as f32;
        }
        Ok(())
    }

    fn record(&mut self, net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError> {
        if !self.header_written {
            self.header(net)?;
        }
        // Epoch bookkeeping: a new epoch closes the previous one (when nobody called
        // `end_epoch`).
        if self.epoch.as_ref().is_some_and(|e| e.epoch != info.epoch) {
            self.flush_ring();
            self.close_epoch();
        }
        let e = self.epoch.get_or_insert(EpochSums {
            epoch: info.epoch,
            sum: 0.0,
            count: 0,
            last_iteration: 0,
        });
        if info.score.is_finite() {
            e.sum += info.score;
            e.count += 1;
        }
        e.last_iteration = info.iteration;

        let now = Instant::now();
        let dt = now
            .duration_since(self.last_call.unwrap_or(self.started))
            .as_secs_f64();
        self.last_call = Some(now);
        let r = self.len;
        let every = self.cfg.param_stats_every;
        let stats_now = info.iteration.is_multiple_of(every);
        let keep = (info.iteration + 1).is_multiple_of(every);
        let update = stats_now && self.prev_of == Some(info.iteration.wrapping_sub(1));
        if stats_now {
            self.param_stats(net, r, update, keep)?;
        } else if keep {
            // Only the copy the next iteration's updates are measured against.
            let params = net.params().read()?;
            if let Some(p) = params.as_slice() {
                self.prev.copy_from_slice(p);
            }
        }
        if stats_now || keep {
            self.prev_of = keep.then_some(info.iteration);
        }

        // Every thread's workspaces, as of their last cycle end.
        let n_ws = self.scan_workspaces(Some(r));

        self.scalars[r] = Scalars {
            iteration: info.iteration,
            epoch: info.epoch,
            time_s: now.duration_since(self.started).as_secs_f64(),
            score: info.score,
            batch: info.batch_size,
            eps: if dt > 0.0 {
                info.batch_size as f64 / dt
            } else {
                f64::NAN
            },
            lr: net.global_conf().updater.learning_rate(),
            has_params: stats_now,
            has_update: update,
            n_ws,
        };
        self.len += 1;
        if self.len == self.cfg.flush_every {
            self.flush_ring();
            self.write_out()?;
        }
        Ok(())
    }
}

/// Sums of |p|, |g| and |p - prev| over one parameter array (the last only when `update`,
/// else NaN), then `prev = p` when `keep`. One simple loop per sum, so each vectorizes.
fn magnitudes<T: DataType>(
    p: &[T],
    g: &[T],
    prev: &mut [T],
    update: bool,
    keep: bool,
) -> (f64, f64, f64) {
    let sp = sum_abs(p, None);
    let sg = sum_abs(g, None);
    let su = if update {
        sum_abs(p, Some(prev))
    } else {
        f64::NAN
    };
    if keep {
        prev.copy_from_slice(p);
    }
    (sp, sg, su)
}

/// Sum of |a| (or |a - b|): 8 lanes of `T` per block of 1,024 values, block sums in f64 (so
/// long arrays lose no precision). `abs` as a comparison and a negation, which compile to
/// vector instructions for both element types.
#[inline]
fn sum_abs<T: DataType>(a: &[T], b: Option<&[T]>) -> f64 {
    const LANES: usize = 8;
    const BLOCK: usize = 1024;
    #[inline(always)]
    fn abs<T: DataType>(v: T) -> T {
        if v < T::ZERO { -v } else { v }
    }
    let mut total = 0.0f64;
    for (k, block) in a.chunks(BLOCK).enumerate() {
        let mut acc = [T::ZERO; LANES];
        let mut rest = T::ZERO;
        match b {
            None => {
                let mut c = block.chunks_exact(LANES);
                for x in &mut c {
                    for i in 0..LANES {
                        acc[i] += abs(x[i]);
                    }
                }
                for &x in c.remainder() {
                    rest += abs(x);
                }
            }
            Some(b) => {
                let bb = &b[k * BLOCK..k * BLOCK + block.len()];
                let mut c = block.chunks_exact(LANES);
                let mut d = bb.chunks_exact(LANES);
                for (x, y) in (&mut c).zip(&mut d) {
                    for i in 0..LANES {
                        acc[i] += abs(x[i] - y[i]);
                    }
                }
                for (&x, &y) in c.remainder().iter().zip(d.remainder()) {
                    rest += abs(x - y);
                }
            }
        }
        total += acc.iter().map(|v| v.to_f64()).sum::<f64>() + rest.to_f64();
    }
    total
}

impl<T: DataType> TrainingListener<T> for StatsListener<T> {
    fn iteration_done(&mut self, net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError> {
        lock(&self.state).record(net, info)
    }
}
