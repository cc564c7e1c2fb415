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
/// with it): glibc's malloc with one arena, no trimming of the heap top, and a fixed mmap
/// threshold of 128 KiB, so the small-block heap is its high-water mark and every larger block
/// (workspace blocks, the prefetch ring) is mapped and unmapped exactly. Without it samples
/// moved by whole MiB for reasons that are the allocator's, not the library's: trimming and
/// re-growing the heap top (±1 MiB between samples with one arena), a new arena when threads
/// happened to contend (one 4 MiB step after 300,000 cycles, flat for the 700,000 after it),
/// and, with large blocks on the heap, fragmentation steps when a new epoch's ring was
/// allocated next to the old one. With it, growth after warm-up is memory held for good.
pub const SOAK_MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "1"),
    (
        "GLIBC_TUNABLES",
        "glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=1073741824:\
         glibc.malloc.mmap_threshold=131072",
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
    /// Resident anonymous memory in bytes (see [`resident_bytes`]).
    pub rss_bytes: u64,
    /// Bytes the program holds on the heap (allocated and not freed), when the caller counts
    /// them (a counting global allocator); 0 otherwise.
    pub live_heap_bytes: u64,
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
    /// Live heap bytes at the end of the warm-up and their largest value after it (0 when
    /// not counted).
    pub baseline_live_heap: u64,
    /// Largest live heap bytes after the warm-up.
    pub max_live_heap: u64,
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
        if self.baseline_live_heap > 0 {
            out.push_str(&format!(
                "live heap after warm-up: baseline {} KiB, max {} KiB ({:+.3} %)\n",
                self.baseline_live_heap / 1024,
                self.max_live_heap / 1024,
                100.0 * (self.max_live_heap as f64 / self.baseline_live_heap as f64 - 1.0)
            ));
        }
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

/// [`resident_bytes`] once it has settled: the smallest of 20 readings 1 ms apart. At the end
/// of an epoch the prefetch thread is finishing, and its 1 MiB ring (a mapping of its own)
/// goes a moment later; a single reading saw it in some rounds and not in others.
fn settled_resident_bytes() -> u64 {
    let mut least = resident_bytes();
    for _ in 0..19 {
        std::thread::sleep(std::time::Duration::from_millis(1));
        least = least.min(resident_bytes());
    }
    least
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

const SOAK_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// The mixed workload repeats one pseudo-random schedule of this many cycles, so its largest
/// demand is met within the first period (inside the warm-up). With a schedule that never
/// repeats, a rare cycle that needs more than any before it (12 buffers all near the largest
/// size: the spills to the heap peak) raised the heap's high-water mark by 1 MiB at a random
/// round in 2 of 3 release runs: new extremes of the input, not memory the library kept.
const SOAK_PERIOD: u64 = 1024;

/// The mixed workspace workload's state: configurations and buffers kept across cycles.
struct SoakMemory {
    outer: dl_memory::WorkspaceConfig,
    inner: dl_memory::WorkspaceConfig,
    ring: dl_memory::WorkspaceConfig,
    kept: Vec<dl_memory::Buffer<f32>>,
    rng: SoakRng,
    done: u64,
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
                .initial_size(1 << 20)
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
            rng: SoakRng(SOAK_SEED),
            done: 0,
            checksum: 0.0,
        })
    }

    /// One cycle (of a schedule repeating every [`SOAK_PERIOD`] cycles): outer scope with 2–12
    /// buffers of 1–16,384 floats, a nested inner scope with 1–4 more, three ring allocations,
    /// in one cycle of eight a detached copy (1,024 values) kept across cycles (at most 8, the
    /// oldest dropped), and an allocation scoped out of the workspaces.
    fn cycle(&mut self) -> Result<(), String> {
        use dl_memory::{Buffer, get_and_activate_workspace, scope_out_of_workspaces};
        let e = |e: dl_memory::WorkspaceError| e.to_string();
        if self.done.is_multiple_of(SOAK_PERIOD) {
            self.rng = SoakRng(SOAK_SEED);
        }
        self.done += 1;
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
            // A detached copy of the start of a live buffer, kept across cycles. Always 1,024
            // values: with sizes as random as the workspace buffers', these heap blocks kept
            // across cycles fragmented the heap, and its high-water mark crept by 2-7 % over
            // 10^6 cycles while the live heap showed no trend (the allocator, not the library).
            let i = self.rng.below(n as u64);
            if let Some(b) = &live[i] {
                let len = b.len().min(1024);
                let head = &b.read().map_err(e)?[..len];
                let mut copy = [0f32; 1024];
                copy[..len].copy_from_slice(head);
                if self.kept.len() == 8 {
                    self.kept.remove(0);
                }
                self.kept
                    .push(Buffer::from_slice_detached(&copy).map_err(e)?);
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

/// Runs the soak; `progress` sees every sample as it is taken; `live_heap` (a counting global
/// allocator's live bytes), when given, is sampled with RSS, to tell memory held from
/// fragmentation.
pub fn soak(
    config: &SoakConfig,
    live_heap: Option<&dyn Fn() -> usize>,
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
        // Rounds end on epoch boundaries (whole epochs of 16 batches, the last round takes the
        // rest), so every sample is taken with the prefetch thread's epoch finished.
        let epoch = (TRAIN / BATCH) as u64;
        let goal = if round == config.rounds {
            config.iterations
        } else {
            config.iterations * r / rounds / epoch * epoch
        };
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
            rss_bytes: settled_resident_bytes(),
            live_heap_bytes: live_heap.map_or(0, |f| f() as u64),
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
    let base = config.warmup_rounds.max(1) as usize - 1;
    Ok(SoakReport {
        baseline_live_heap: samples[base].live_heap_bytes,
        max_live_heap: samples[base..]
            .iter()
            .map(|s| s.live_heap_bytes)
            .max()
            .unwrap_or(0),
        baseline_rss,
        max_rss: after.iter().copied().max().unwrap_or(0),
        min_rss: after.iter().copied().min().unwrap_or(0),
        evaluations,
        workspace_bytes: memory.workspace_bytes(),
        tolerance: config.tolerance,
        samples,
    })
}
