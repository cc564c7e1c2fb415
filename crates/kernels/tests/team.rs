//! Stress tests of [`KernelTeam`]'s synchronisation: every task index runs exactly once per
//! region, over many thousands of regions, with workers spinning (long blocktime), parking
//! after every region (zero blocktime) and in between; panics on the caller or a worker are
//! propagated without deadlock and leave the team usable; nested and concurrent regions run
//! inline; dropping a team joins its workers; gemm on a team gives the one-thread bits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dl4rs_kernels::{KernelTeam, MatMut, MatRef, Parallelism, gemm, gemm_scratch_len};

/// `regions` regions of `tasks` tasks; each task bumps its own counter and a shared one, and
/// (every `pause_every` regions) the caller pauses `pause` so workers go past their blocktime.
fn hammer(team: &KernelTeam, tasks: usize, regions: usize, pause_every: usize, pause: Duration) {
    hammer_with(team, tasks, regions, pause_every, pause, Duration::ZERO);
    hammer_with(
        team,
        tasks,
        regions,
        pause_every,
        pause,
        Duration::from_micros(3),
    );
}

/// As `hammer`, task 0 busy for `work` (so spinning workers do take their tasks and the
/// RUNNING -> DONE path is exercised, not only cancellation).
fn hammer_with(
    team: &KernelTeam,
    tasks: usize,
    regions: usize,
    pause_every: usize,
    pause: Duration,
    work: Duration,
) {
    let per_index: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
    let total = AtomicUsize::new(0);
    let mut on_workers = 0usize;
    for r in 0..regions {
        let worker_ran = AtomicUsize::new(0);
        let me = std::thread::current().id();
        team.run(tasks, |i| {
            if i == 0 && !work.is_zero() {
                let t = Instant::now();
                while t.elapsed() < work {}
            }
            per_index[i].fetch_add(1, Ordering::Relaxed);
            total.fetch_add(1, Ordering::Relaxed);
            if std::thread::current().id() != me {
                worker_ran.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Every task of this region has returned when run returns.
        assert_eq!(total.load(Ordering::Relaxed), (r + 1) * tasks, "region {r}");
        on_workers += worker_ran.load(Ordering::Relaxed);
        if pause_every > 0 && r % pause_every == pause_every - 1 {
            std::thread::sleep(pause);
        }
    }
    for (i, c) in per_index.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), regions, "task {i}");
    }
    eprintln!(
        "{} threads, blocktime {:?}, task 0 {work:?}: {regions} regions, {on_workers} tasks on workers",
        team.threads(),
        team.blocktime()
    );
}

#[test]
fn every_task_runs_once_spinning_workers() {
    let team = KernelTeam::with_blocktime(2, Duration::from_millis(50));
    hammer(&team, 2, 20_000, 0, Duration::ZERO);
}

#[test]
fn every_task_runs_once_parking_after_every_region() {
    // Blocktime zero: the worker parks after each region, so every post races the park
    // handshake (store sleeping / check state vs store state / check sleeping).
    let team = KernelTeam::with_blocktime(2, Duration::ZERO);
    hammer(&team, 2, 20_000, 0, Duration::ZERO);
    hammer(&team, 2, 300, 1, Duration::from_micros(200));
}

#[test]
fn every_task_runs_once_around_the_blocktime() {
    // Pauses about the blocktime: regions land while the worker spins, decides to park, or
    // sleeps.
    let team = KernelTeam::with_blocktime(2, Duration::from_micros(100));
    hammer(&team, 2, 2_000, 3, Duration::from_micros(90));
    team.set_blocktime(Duration::from_micros(5));
    hammer(&team, 2, 2_000, 2, Duration::from_micros(10));
}

#[test]
fn more_threads_than_cores_and_fewer_tasks_than_threads() {
    let team = KernelTeam::with_blocktime(4, Duration::from_micros(200));
    hammer(&team, 4, 3_000, 100, Duration::from_millis(1));
    hammer(&team, 3, 3_000, 0, Duration::ZERO);
    hammer(&team, 2, 3_000, 0, Duration::ZERO);
    hammer(&team, 1, 100, 0, Duration::ZERO);
    // More tasks than threads: inline, each once.
    hammer(&team, 7, 100, 0, Duration::ZERO);
}

#[test]
fn panics_propagate_without_deadlock_and_the_team_survives() {
    let team = KernelTeam::with_blocktime(2, Duration::from_micros(300));
    let on_worker = AtomicUsize::new(0);
    let me = std::thread::current().id();
    for round in 0..200 {
        let victim = round % 2; // 0: the caller's task, 1: the worker's (or its stand-in)
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(2, |i| {
                if i == 0 {
                    // Long enough that the spinning worker usually takes task 1 itself.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {}
                }
                if i == victim {
                    if std::thread::current().id() != me {
                        on_worker.fetch_add(1, Ordering::Relaxed);
                    }
                    panic!("task {i} fails on purpose");
                }
            })
        }));
        assert!(r.is_err(), "round {round}: the panic must reach the caller");
        // The team is usable at once.
        hammer(&team, 2, 20, 0, Duration::ZERO);
    }
    eprintln!(
        "{} of 100 worker-task panics happened on the worker",
        on_worker.load(Ordering::Relaxed)
    );
}

#[test]
fn nested_and_concurrent_regions_run_inline() {
    let team = KernelTeam::with_blocktime(2, Duration::from_millis(1));
    let count = AtomicUsize::new(0);
    team.run(2, |_| {
        // A region from inside a task: the team is busy, so it runs inline.
        team.run(2, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(count.load(Ordering::Relaxed), 4);

    // Two threads sharing one team: whoever does not get it runs inline; nothing is lost.
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..5_000 {
                    team.run(2, |_| {
                        total.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 2 * 5_000 * 2);
}

#[test]
fn dropping_a_team_joins_its_workers() {
    for blocktime in [Duration::ZERO, Duration::from_millis(5)] {
        for _ in 0..20 {
            let team = KernelTeam::with_blocktime(3, blocktime);
            hammer(&team, 3, 10, 0, Duration::ZERO);
            let t = Instant::now();
            drop(team);
            assert!(t.elapsed() < Duration::from_secs(5));
        }
    }
}

#[test]
fn a_late_worker_costs_the_caller_nothing() {
    // The worker is parked (blocktime zero, long pause): the caller finishes both tasks
    // itself rather than waiting for it to wake.
    let team = KernelTeam::with_blocktime(2, Duration::ZERO);
    let mut on_caller = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(2));
        let me = std::thread::current().id();
        let task1_on_caller = AtomicUsize::new(0);
        team.run(2, |i| {
            if i == 1 && std::thread::current().id() == me {
                task1_on_caller.fetch_add(1, Ordering::Relaxed);
            }
            if i == 0 {
                // Some work, shorter than any wake-up is likely to be... or not: both fine.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(2) {}
            }
        });
        on_caller += task1_on_caller.load(Ordering::Relaxed);
    }
    eprintln!("task 1 ran on the caller in {on_caller} of 50 regions after a pause");
}

#[test]
fn gemm_on_a_team_matches_one_thread_over_many_products() {
    static TEAM: std::sync::OnceLock<KernelTeam> = std::sync::OnceLock::new();
    let team = TEAM.get_or_init(|| KernelTeam::with_blocktime(2, Duration::from_micros(50)));
    for &(m, n, k) in &[
        (128usize, 256usize, 784usize),
        (64, 64, 64),
        (1, 4096, 64),
        (130, 10, 70),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
            .collect();
        let run = |par: Parallelism| {
            let mut c = vec![0.0f32; m * n];
            let mut s = vec![0.0f32; gemm_scratch_len::<f32>(m, n, k, par)];
            gemm(
                1.0,
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
                0.0,
                MatMut::row_major(&mut c, m, n).unwrap(),
                &mut s,
                par,
            )
            .unwrap();
            c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let one = run(Parallelism::None);
        for r in 0..200 {
            if r % 50 == 49 {
                std::thread::sleep(Duration::from_micros(100));
            }
            assert!(run(Parallelism::Team(team)) == one, "{m}x{n}x{k} round {r}");
        }
    }
}

#[test]
fn a_stalled_worker_sends_the_team_solo_for_a_backoff() {
    let team = KernelTeam::with_blocktime(2, Duration::from_millis(50));
    let _ = team.take_stats();
    let me = std::thread::current().id();
    let mut stalled = false;
    // Try until the worker takes task 1 (it may be descheduled when the test starts).
    for _ in 0..200 {
        let on_worker = AtomicUsize::new(0);
        team.run(2, |i| {
            if i == 1 && std::thread::current().id() != me {
                on_worker.store(1, Ordering::SeqCst);
                // A worker descheduled mid-task, as seen from the caller.
                std::thread::sleep(Duration::from_millis(2));
            } else if i == 0 {
                let t = Instant::now();
                while on_worker.load(Ordering::SeqCst) == 0
                    && t.elapsed() < Duration::from_millis(1)
                {}
            }
        });
        // (A caller descheduled during the worker's sleep may not see a stall: try again.)
        if on_worker.load(Ordering::SeqCst) == 1 && team.take_stats().stalls == 1 {
            stalled = true;
            break;
        }
        // Let any backoff from an earlier stall-less attempt run out.
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(stalled, "the worker never took a task, or never stalled");
    let after_stall = Instant::now();
    // Right after the stall the team backs off: the next regions run on the caller.
    let on_worker = AtomicUsize::new(0);
    for _ in 0..10 {
        team.run(2, |_| {
            if std::thread::current().id() != me {
                on_worker.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let s = team.take_stats();
    // (Unless this thread itself was descheduled past the 10 ms backoff.)
    if after_stall.elapsed() < Duration::from_millis(9) {
        assert_eq!(on_worker.load(Ordering::SeqCst), 0, "{s:?}");
        assert_eq!((s.regions, s.solo_regions), (10, 10), "{s:?}");
    }
    // After the backoff (10 ms) the worker is used again.
    std::thread::sleep(Duration::from_millis(15));
    let mut back = false;
    for _ in 0..2000 {
        team.run(2, |i| {
            if i == 0 {
                let t = Instant::now();
                while on_worker.load(Ordering::SeqCst) == 0
                    && t.elapsed() < Duration::from_micros(50)
                {}
            } else if std::thread::current().id() != me {
                on_worker.fetch_add(1, Ordering::SeqCst);
            }
        });
        if on_worker.load(Ordering::SeqCst) > 0 {
            back = true;
            break;
        }
    }
    assert!(back, "{:?}", team.take_stats());
}
