// The soak driver, shared by `dl4rs bench soak` (`soak.rs`, which `include!`s this file) and
// the CI-sized test `crates/nn/tests/soak.rs` (which includes it too). It uses the library
// crates only through the aliases `dl_array`, `dl_data`, `dl_eval`, `dl_memory` and `dl_nn`,
// which the including file brings into scope (`use dl4rs::memory as dl_memory;` in the
// program, `use dl4rs_memory as dl_memory;` in the test).
//
// What it runs, in `rounds` equal rounds: `cycles` workspace cycles of a mixed workload (an
// outer learning workspace with a varying number and size of buffers, a nested inner
// workspace, a fixed-size ring that laps, buffers detached to the heap and kept across cycles,
// allocations scoped out of workspaces) and `iterations` training iterations of a small MLP
// fed by an `AsyncDataSetIterator` (prefetch thread, ring workspace), with an evaluation on a
// held-out set at the end of every round. Resident anonymous memory (/proc/self/statm,
// resident - shared) is sampled after
// every round; the first `warmup_rounds` are warm-up, and every later sample must stay within
// `tolerance` (a fraction) of the sample taken at the end of the warm-up.

/// The environment the soak runs in (the test and `dl4rs bench soak` start a child process
/// with it): glibc's malloc with one arena, no trimming of the heap top and no mmap for
/// blocks under 16 MiB, so resident memory is the heap's high-water mark. Without it the
/// samples move by whole MiB for reasons that are the allocator's, not the library's: trimming
/// and re-growing the heap top (±1 MiB between samples with one arena), and a new arena when
/// threads happen to contend (one 4 MiB step after 300,000 cycles in a run here, flat for the
/// 700,000 after it). With it, growth after warm-up means memory held (or fragmented) for good.
pub const SOAK_MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "1"),
    (
        "GLIBC_TUNABLES",
        "glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=1073741824:\
         glibc.malloc.mmap_threshold=16777216",
    ),
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Workspace cycles of the mixed workload, in all.
    pub cycles: u64,
    /// Training iterations (batches), in all.
    pub iterations: u64,
    /// Rounds the work is split into; RSS is sampled after each.
    pub rounds: u32,
    /// Rounds of warm-up before the baseline sample.
    pub warmup_rounds: u32,
    /// Allowed RSS change after warm-up, as a fraction of the baseline (0.02 = 2 %).
    pub tolerance: f64,
}

/// One RSS sample.
#[derive(Debug, Clone, Copy)]
pub struct SoakSample {
    /// 1-based round.
    pub round: u32,
    /// Workspace cycles done so far.
    pub cycles: u64,
    /// Training iterations done so far.
    pub iterations: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Accuracy on the held-out set after this round.
    pub accuracy: f64,
    /// Seconds since the start.
    pub seconds: f64,
}

/// What a soak saw.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Every sample, in order.
    pub samples: Vec<SoakSample>,
    /// The sample at the end of the warm-up, in bytes.
    pub baseline_rss: u64,
    /// Largest and smallest RSS after the warm-up, in bytes.
    pub max_rss: u64,
    /// Smallest RSS after the warm-up, in bytes.
    pub min_rss: u64,
    /// Evaluations run.
    pub evaluations: u64,
    /// Bytes of the workload's workspaces at the end (outer, inner, ring).
    pub workspace_bytes: usize,
    /// The tolerance the report is checked against.
    pub tolerance: f64,
}

impl SoakReport {
    /// Largest relative change from the baseline after warm-up (positive: growth).
    pub fn max_drift(&self) -> f64 {
        let base = self.baseline_rss.max(1) as f64;
        let up = self.max_rss as f64 / base - 1.0;
        let down = self.min_rss as f64 / base - 1.0;
        if up.abs() >= down.abs() { up } else { down }
    }

    /// Whether RSS stayed within the tolerance after warm-up.
    pub fn within_tolerance(&self) -> bool {
        self.max_drift().abs() <= self.tolerance
    }

    /// One line per sample and a verdict.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let last = self.samples.last();
        out.push_str(&format!(
            "soak: {} workspace cycles, {} training iterations, {} evaluations in {:.1} s\n",
            last.map_or(0, |s| s.cycles),
            last.map_or(0, |s| s.iterations),
            self.evaluations,
            last.map_or(0.0, |s| s.seconds)
        ));
        out.push_str(&format!(
            "RSS after warm-up: baseline {} KiB, min {} KiB, max {} KiB, largest drift {:+.3} % \
             (allowed ±{:.1} %): {}\n",
            self.baseline_rss / 1024,
            self.min_rss / 1024,
            self.max_rss / 1024,
            100.0 * self.max_drift(),
            100.0 * self.tolerance,
            if self.within_tolerance() {
                "ok"
            } else {
                "EXCEEDED"
            }
        ));
        out.push_str(&format!(
            "workspaces at the end: {} bytes; accuracy {:.3} after the first round, {:.3} at the end\n",
            self.workspace_bytes,
            self.samples.first().map_or(0.0, |s| s.accuracy),
            last.map_or(0.0, |s| s.accuracy)
        ));
        out
    }
}

/// Resident memory of this process that is not backed by files, in bytes: `resident - shared`
/// from `/proc/self/statm` (pages of 4 KiB), or 0 where unavailable. File-backed pages (the
/// program's code, shared libraries) are left out: the kernel drops and re-reads them under
/// memory pressure from other processes, which moved the total by a whole MiB both ways in
/// runs here, while a leak shows up in anonymous memory.
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: Vec<u64> = statm
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match pages.as_slice() {
        [_, resident, shared, ..] => resident.saturating_sub(*shared) * 4096,
        _ => 0,
    }
}

/// A xorshift generator: the workload's sizes are pseudo-random but the same every run.
struct SoakRng(u64);

impl SoakRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// The mixed workspace workload's state: configurations and buffers kept across cycles.
struct SoakMemory {
    outer: dl_memory::WorkspaceConfig,
    inner: dl_memory::WorkspaceConfig,
    ring: dl_memory::WorkspaceConfig,
    kept: Vec<dl_memory::Buffer<f32>>,
    rng: SoakRng,
    checksum: f64,
}

impl SoakMemory {
    fn new() -> Result<Self, String> {
        use dl_memory::{
            AllocationPolicy, LearningPolicy, ResetPolicy, SpillPolicy, WorkspaceConfig,
        };
        let e = |e: dl_memory::WorkspaceError| e.to_string();
        Ok(SoakMemory {
            outer: WorkspaceConfig::builder()
                .initial_size(64 * 1024)
                .policy_learning(LearningPolicy::OverTime)
                .build()
                .map_err(e)?,
            inner: WorkspaceConfig::builder()
                .initial_size(16 * 1024)
                .build()
                .map_err(e)?,
            ring: WorkspaceConfig::builder()
                .initial_size(32 * 1024)
                .policy_reset(ResetPolicy::EndOfBuffer)
                .policy_allocation(AllocationPolicy::Strict)
                .policy_learning(LearningPolicy::None)
                .policy_spill(SpillPolicy::External)
                .build()
                .map_err(e)?,
            kept: Vec::with_capacity(8),
            rng: SoakRng(0x2545_F491_4F6C_DD1D),
            checksum: 0.0,
        })
    }

    /// One cycle: outer scope with 2–12 buffers of 1–16,384 floats, a nested inner scope with
    /// 1–4 more, ring allocations, one buffer in eight detached and kept (at most 8 kept,
    /// the oldest dropped), and an allocation scoped out of the workspaces.
    fn cycle(&mut self) -> Result<(), String> {
        use dl_memory::{Buffer, get_and_activate_workspace, scope_out_of_workspaces};
        let e = |e: dl_memory::WorkspaceError| e.to_string();
        let outer = get_and_activate_workspace(&self.outer, "SOAK_OUTER").map_err(e)?;
        let n = 2 + self.rng.below(11);
        let mut live: [Option<Buffer<f32>>; 12] = Default::default();
        for (i, slot) in live.iter_mut().take(n).enumerate() {
            let len = 1 + self.rng.below(16_384);
            let mut b = Buffer::<f32>::uninitialized(len).map_err(e)?;
            b.write().map_err(e)?.fill(i as f32);
            *slot = Some(b);
        }
        {
            let inner = get_and_activate_workspace(&self.inner, "SOAK_INNER").map_err(e)?;
            for _ in 0..1 + self.rng.below(4) {
                let b = Buffer::<f32>::zeros(1 + self.rng.below(2_048)).map_err(e)?;
                self.checksum += f64::from(b.read().map_err(e)?[0]);
            }
            inner.close().map_err(e)?;
        }
        {
            let ring = get_and_activate_workspace(&self.ring, "SOAK_RING").map_err(e)?;
            for _ in 0..3 {
                let mut b = Buffer::<f32>::uninitialized(1 + self.rng.below(3_000)).map_err(e)?;
                b.write().map_err(e)?.fill(1.0);
            }
            ring.close().map_err(e)?;
        }
        if self.rng.below(8) == 0 {
            let i = self.rng.below(n as u64);
            if let Some(b) = &live[i] {
                if self.kept.len() == 8 {
                    self.kept.remove(0);
                }
                self.kept.push(b.detach().map_err(e)?);
            }
        }
        {
            let _out = scope_out_of_workspaces();
            let b = Buffer::<f32>::zeros(1 + self.rng.below(256)).map_err(e)?;
            self.checksum += b.len() as f64;
        }
        for b in live.iter().flatten() {
            self.checksum += f64::from(b.read().map_err(e)?[0]);
        }
        drop(live);
        outer.close().map_err(e)
    }

    fn workspace_bytes(&self) -> usize {
        let report = dl_memory::allocation_report();
        ["SOAK_OUTER", "SOAK_INNER", "SOAK_RING"]
            .iter()
            .filter_map(|id| report.get(id).map(|s| s.block_bytes))
            .sum()
    }
}

/// Synthetic 4-class data: 16 features in [0, 1); the class is the quarter of the features
/// with the largest sum.
fn soak_data(examples: usize, seed: u64) -> Result<dl_data::DataSet<f32>, String> {
    use dl_array::NdArray;
    let e = |e: dl_array::ArrayError| e.to_string();
    let features = NdArray::<f32>::rand_uniform(&[examples, 16], 0.0, 1.0, seed).map_err(e)?;
    let x = features.to_vec().map_err(e)?;
    let mut labels = vec![0f32; examples * 4];
    for (i, row) in x.chunks(16).enumerate() {
        let sums: Vec<f32> = row.chunks(4).map(|q| q.iter().sum()).collect();
        let best = (0..4)
            .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
            .unwrap_or(0);
        labels[i * 4 + best] = 1.0;
    }
    let labels = NdArray::<f32>::from_slice(&[examples, 4], &labels).map_err(e)?;
    dl_data::DataSet::new(features, labels).map_err(|e| e.to_string())
}

fn soak_network() -> Result<dl_nn::MultiLayerNetwork<f32>, String> {
    use dl_nn::*;
    let conf = NeuralNetConfiguration::builder()
        .seed(3)
        .updater(Updater::adam(1e-2))
        .list()
        .layer(
            LayerConf::dense(32)
                .n_in(16)
                .activation(Activation::Relu)
                .build(),
        )
        .layer(
            LayerConf::output(LossFunction::Mcxent, 4)
                .activation(Activation::Softmax)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    MultiLayerNetwork::new(conf).map_err(|e| e.to_string())
}

/// Runs the soak; `progress` sees every sample as it is taken.
pub fn soak(
    config: &SoakConfig,
    progress: &mut dyn FnMut(&SoakSample),
) -> Result<SoakReport, String> {
    use dl_data::{AsyncDataSetIterator, DataSetIterator, InMemoryDataSetIterator};
    const BATCH: usize = 32;
    const TRAIN: usize = 512; // 16 batches per epoch
    if config.rounds == 0 || config.warmup_rounds >= config.rounds {
        return Err(format!(
            "expected at least one round after the warm-up, found {} rounds with {} of warm-up",
            config.rounds, config.warmup_rounds
        ));
    }
    let ne = |e: dl_nn::NnError| e.to_string();
    let de = |e: dl_data::DataError| e.to_string();
    let start = std::time::Instant::now();
    let mut memory = SoakMemory::new()?;
    let mut net = soak_network()?;
    let source = InMemoryDataSetIterator::new(soak_data(TRAIN, 1)?, BATCH).map_err(de)?;
    let mut train = AsyncDataSetIterator::new(Box::new(source), 2).map_err(de)?;
    let mut test = InMemoryDataSetIterator::new(soak_data(256, 2)?, 64).map_err(de)?;
    let mut samples = Vec::with_capacity(config.rounds as usize);
    let (mut cycles, mut iterations, mut evaluations) = (0u64, 0u64, 0u64);
    let rounds = u64::from(config.rounds);
    for round in 1..=config.rounds {
        let r = u64::from(round);
        while cycles < config.cycles * r / rounds {
            memory.cycle()?;
            cycles += 1;
        }
        let goal = config.iterations * r / rounds;
        while iterations < goal {
            if !train.has_next() {
                train.reset().map_err(de)?;
            }
            let Some(batch) = train.next() else {
                return Err("the async iterator ended right after a reset".into());
            };
            net.fit(&batch.map_err(de)?).map_err(ne)?;
            iterations += 1;
        }
        test.reset().map_err(de)?;
        let evaluation = net.evaluate(&mut test).map_err(ne)?;
        evaluations += 1;
        let sample = SoakSample {
            round,
            cycles,
            iterations,
            rss_bytes: resident_bytes(),
            accuracy: evaluation.accuracy(),
            seconds: start.elapsed().as_secs_f64(),
        };
        progress(&sample);
        samples.push(sample);
    }
    std::hint::black_box(memory.checksum);
    let after: Vec<u64> = samples[config.warmup_rounds as usize..]
        .iter()
        .map(|s| s.rss_bytes)
        .collect();
    let baseline_rss = if config.warmup_rounds == 0 {
        after[0]
    } else {
        samples[config.warmup_rounds as usize - 1].rss_bytes
    };
    Ok(SoakReport {
        baseline_rss,
        max_rss: after.iter().copied().max().unwrap_or(0),
        min_rss: after.iter().copied().min().unwrap_or(0),
        evaluations,
        workspace_bytes: memory.workspace_bytes(),
        tolerance: config.tolerance,
        samples,
    })
}
