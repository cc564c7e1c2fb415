//! The MPI backend with real processes: each test launches this test binary again under
//! `mpiexec -n 2`, where the `worker` test (a no-op otherwise) runs one scenario as a rank.
//! Needs the feature `mpi` and an MPI installation (`.ci/run` installs MPICH).
//!
//! - two ranks sharing gradients equal one process on the union of their batches, with zero
//!   heap allocations per steady-state round on each rank (Rust-side: MPI's own C allocations
//!   are not counted by a Rust global allocator);
//! - parameter averaging equals two replicas averaged by hand;
//! - a rank with bad data: both ranks stop with an error naming what happened;
//! - a rank that hangs: the other's collective times out and ends the job;
//! - a rank that dies: the job ends (mpiexec sees it) instead of hanging.

use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dl4rs_data::InMemoryDataSetIterator;
use dl4rs_distributed::{Collective, DistributedTrainer, MpiCollective, TrainingMode};
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;

mod common;

use common::{AllocationsPerIteration, averaged_by_hand, data, max_rel_diff, net};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const SCENARIO: &str = "DL4RS_MPI_SCENARIO";

/// Runs `scenario` on two ranks: mpiexec's exit status, its output (stdout, stderr, then the
/// status and the time, so that a failed assertion shows how the job ended), the time.
fn launch(scenario: &str) -> (ExitStatus, String, Duration) {
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let out = Command::new("mpiexec")
        .args(["-n", "2"])
        .arg(&exe)
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .output()
        .expect("mpiexec (install MPICH: apt-get install mpich libmpich-dev)");
    let elapsed = started.elapsed();
    let text = format!(
        "{}{}\nmpiexec: {} after {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status,
        elapsed
    );
    (out.status, text, elapsed)
}

#[test]
fn two_ranks_equal_one_process_and_allocate_nothing() {
    let (status, text, _) = launch("union");
    assert!(status.success(), "{text}");
    assert!(
        text.contains("rank 0 ok") && text.contains("rank 1 ok"),
        "{text}"
    );
}

#[test]
fn parameter_averaging_equals_replicas_averaged_by_hand() {
    let (status, text, _) = launch("averaging");
    assert!(status.success(), "{text}");
    assert!(
        text.contains("rank 0 ok") && text.contains("rank 1 ok"),
        "{text}"
    );
}

#[test]
fn a_rank_with_bad_data_stops_both_with_errors() {
    let (status, text, _) = launch("baddata");
    assert!(status.success(), "{text}");
    assert!(
        text.contains("rank 0 stopped: rank 0: 1 other rank(s) failed"),
        "{text}"
    );
    assert!(text.contains("rank 1 stopped: rank 1: "), "{text}");
}

#[test]
fn a_hung_rank_ends_the_job_within_the_timeout() {
    let (status, text, elapsed) = launch("hang");
    assert!(!status.success(), "{text}");
    // The reason arrives (it was sometimes lost when the rank called MPI_Abort: see
    // MpiCollective::abort). mpiexec returns 75, this rank's code, or 9 when it reports the
    // peer it killed (SIGKILL) first: a failure either way.
    assert!(matches!(status.code(), Some(75 | 9)), "{text}");
    assert!(text.contains("did not complete within 2.0 s"), "{text}");
    assert!(text.contains("exiting with code 75"), "{text}");
    assert!(elapsed < Duration::from_secs(25), "{elapsed:?}: {text}");
}

#[test]
fn a_killed_rank_ends_the_job() {
    let (status, text, elapsed) = launch("exit");
    assert!(!status.success(), "{text}");
    // MPICH's process manager names the dead rank and ends the others.
    assert!(
        text.contains("BAD TERMINATION") || text.contains("KILLED"),
        "{text}"
    );
    assert!(elapsed < Duration::from_secs(25), "{elapsed:?}: {text}");
}

/// The rank side: runs only when launched by one of the tests above.
#[test]
fn worker() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let timeout = if scenario == "hang" { 2 } else { 60 };
    let world = MpiCollective::init(Duration::from_secs(timeout)).unwrap();
    let rank = Collective::<f64>::rank(&world);
    match scenario.as_str() {
        "union" => union(world),
        "averaging" => averaging(world),
        "baddata" => {
            let mut model = net::<f32>(Updater::sgd(0.1), 11);
            let mut t = DistributedTrainer::builder(world).build().unwrap();
            let mut it = InMemoryDataSetIterator::new(data::<f32>(64, rank == 1), 8).unwrap();
            let err = t.fit(&mut model, &mut it, 1).unwrap_err();
            println!("rank {rank} stopped: {err}");
        }
        "hang" | "exit" => {
            let mut model = net::<f32>(Updater::sgd(0.1), 11);
            if rank == 1 {
                model.add_listener(Box::new(Stop {
                    hang: scenario == "hang",
                }));
            }
            let mut t = DistributedTrainer::builder(world).build().unwrap();
            let mut it = InMemoryDataSetIterator::new(data::<f32>(64, false), 8).unwrap();
            let _ = t.fit(&mut model, &mut it, 5);
            panic!("rank {rank}: training went on past a dead peer");
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("rank {rank} ok");
}

/// Rank 1, after its second round: hangs, or is killed (SIGKILL).
struct Stop {
    hang: bool,
}

impl TrainingListener<f32> for Stop {
    fn iteration_done(&mut self, _m: &dyn Model<f32>, i: &IterationInfo) -> Result<(), NnError> {
        if i.iteration == 2 {
            if self.hang {
                std::thread::sleep(Duration::from_secs(60));
            }
            // Killed outright, as by the OOM killer or a lost node.
            let _ = Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(())
    }
}

fn union(world: MpiCollective) {
    let rank = Collective::<f64>::rank(&world);
    let mut model = net::<f64>(Updater::sgd(0.1), 11);
    let mut t = DistributedTrainer::builder(world).build().unwrap();
    t.broadcast_model(&mut model).unwrap();
    let mut it = InMemoryDataSetIterator::new(data::<f64>(64, false), 8).unwrap();
    t.fit(&mut model, &mut it, 2).unwrap();
    let counts = Arc::new(Mutex::new(Vec::with_capacity(16)));
    model.add_listener(Box::new(AllocationsPerIteration {
        alloc: &ALLOC,
        last: None,
        counts: counts.clone(),
    }));
    t.fit(&mut model, &mut it, 1).unwrap();
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.iter().all(|&c| c == 0),
        "rank {rank}: allocations per round {counts:?}"
    );

    let mine = model.params().to_vec().unwrap();
    let mut root = mine.clone();
    t.collective_mut().broadcast(&mut root, 0).unwrap();
    assert_eq!(mine, root, "replicas bit-identical");
    if rank == 0 {
        let mut single = net::<f64>(Updater::sgd(0.1), 11);
        let mut it = InMemoryDataSetIterator::new(data::<f64>(64, false), 16).unwrap();
        single.fit_iter(&mut it, 3).unwrap();
        let expected = single.params().to_vec().unwrap();
        let d = max_rel_diff(&mine, &expected);
        // Only the order of the sums differs (see tests/local_training.rs).
        assert!(d < 1e-12, "relative difference {d:e}");
        assert_eq!(t.stats().rounds, 12);
    }
}

fn averaging(world: MpiCollective) {
    let rank = Collective::<f64>::rank(&world);
    let mut model = net::<f64>(Updater::nesterovs(0.05), 11);
    let mut t = DistributedTrainer::builder(world)
        .training_mode(TrainingMode::ParameterAveraging)
        .averaging_frequency(2)
        .build()
        .unwrap();
    let mut it = InMemoryDataSetIterator::new(data::<f64>(64, false), 8).unwrap();
    t.fit(&mut model, &mut it, 1).unwrap();
    if rank == 0 {
        assert_eq!(
            model.params().to_vec().unwrap(),
            averaged_by_hand(Updater::nesterovs(0.05), 11, 64, 8, 2)
        );
    }
}
