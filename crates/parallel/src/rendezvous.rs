//! The waiting of a round, without a sleeping hand-off where one can be avoided: a [`Signal`]
//! (a counter others wait on) and a [`Barrier`] among the trainers, both allocation-free.
//!
//! A waiter first *spins* for a while — a plain load loop on the counter, yielding its CPU
//! every [`YIELD_EVERY`] — and only then parks on a condition variable (OpenMP's blocktime,
//! as `dl4rs_kernels::KernelTeam`). On these VMs waking a parked thread costs tens of
//! microseconds (an inter-processor interrupt into a halted vCPU), a W1 round ~1 ms: a round
//! made of sleeping hand-offs loses a fifth of its time to them. A spinning trainer sees its
//! next batch, or the other trainers' arrival, within nanoseconds.
//!
//! On 2 cores a spinner must not take a core that someone with work needs:
//!
//! * the spin is a plain load loop without `spin_loop()` (PAUSE): KVM's pause-loop exiting
//!   deschedules a vCPU that executes PAUSE in a tight loop (measured for the kernel team);
//! * it yields every [`YIELD_EVERY`], so a thread the scheduler put on the same CPU (the
//!   coordinator, woken to hand out batches) runs at once;
//! * a gap of [`PREEMPTED`] between two polls means the spinner was descheduled (the CPUs are
//!   oversubscribed: a build, another process): it parks at once instead of spinning on, and
//!   its thread parks without spinning for a backoff ([`Patience`]);
//! * the spin phase is bounded by the caller's [`Patience`]: the coordinator, who has nothing
//!   to compute, parks at once while the trainers compute.
//!
//! Parking uses the store-then-check handshake with `SeqCst` on both sides: a notifier
//! changes the counter, then loads `sleepers`; a parker increments `sleepers` (holding the
//! lock), then loads the counter. In the single order of `SeqCst` operations one comes first,
//! so either the parker sees the new value, or the notifier sees the sleeper and takes the
//! lock — which it can only get once the parker is inside `Condvar::wait` — releases it and
//! notifies. No wake-up is lost. A parker also lowers the signal's `wake_at` to its target
//! *before* its check, and a notifier that leaves the value below `wake_at` wakes nobody: the
//! coordinator, waiting for every trainer to take its job, is woken once per round, not once
//! per trainer (each spurious wake-up took a trainer's CPU for a context switch). The same
//! order argument covers it: a notifier that sees the old `wake_at` changed the value before
//! the parker's check, which then sees the new value. Aborting (a failure, or stopping the trainers) sets a flag, then notifies
//! every signal the same way; every wait checks the flag.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A spinner yields its CPU this often (`sched_yield`, ~1 µs when nobody else wants it).
pub(crate) const YIELD_EVERY: Duration = Duration::from_micros(20);

/// A gap between two polls (normally ~100 ns apart) that means the spinner was descheduled
/// by another tenant. Longer than the kernel team's 100 µs: the coordinator, woken between
/// rounds onto a spinning trainer's CPU, takes it for up to ~100 µs (listeners, two batches),
/// which is the protocol working, not oversubscription; another tenant's time slice is
/// milliseconds.
pub(crate) const PREEMPTED: Duration = Duration::from_micros(300);

/// How long a waiter spins before it parks, and what it remembers of recent preemption: one
/// per waiting thread (each trainer, the coordinator), passed to every wait it makes.
///
/// A spin that finds its thread descheduled (a gap of [`PREEMPTED`]) parks at once, and the
/// thread's next waits park without spinning for a backoff: 2 ms, doubling up to 320 ms
/// while it recurs, halving after each wait a spin ended cleanly (as the kernel team's
/// stalls). On a machine whose other CPU is taken (a build, a CPU hog) a spinning trainer
/// only keeps the thread it waits for off the CPU, and a `yield_now` there can hand the CPU to
/// the other tenant for a whole time slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    spin: Duration,
    backoff: Duration,
    calm_from: Option<Instant>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(2);
const BACKOFF_MAX: Duration = Duration::from_millis(320);

impl Patience {
    /// Park at once (the coordinator while the trainers compute).
    pub(crate) const fn park() -> Patience {
        Patience::spin(Duration::ZERO)
    }

    /// Spin up to `spin` before parking.
    pub(crate) const fn spin(spin: Duration) -> Patience {
        Patience {
            spin,
            backoff: Duration::ZERO,
            calm_from: None,
        }
    }

    /// How long the next wait may spin.
    fn budget(&self, now: Instant) -> Duration {
        match self.calm_from {
            Some(t) if now < t => Duration::ZERO,
            _ => self.spin,
        }
    }

    fn preempted(&mut self, now: Instant) {
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.calm_from = Some(now + self.backoff);
    }

    fn clean(&mut self) {
        self.backoff /= 2;
        if self.backoff < BACKOFF_MIN {
            self.backoff = Duration::ZERO;
        }
    }
}

/// The wait ended because the trainers are being stopped or one of them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aborted;

/// The flag every wait checks (one per pool).
#[derive(Debug, Default)]
pub(crate) struct AbortFlag(AtomicBool);

impl AbortFlag {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the flag; the caller then [`Signal::wake_all`]s every signal of the pool.
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A monotonic counter threads wait on (`wait` until it reaches a target).
#[derive(Debug)]
pub(crate) struct Signal {
    value: AtomicU64,
    sleepers: AtomicUsize,
    /// The lowest target of the parked waiters (`u64::MAX`: none since the last wake-up).
    wake_at: AtomicU64,
    /// Waits that ended parked rather than spinning (statistics).
    parks: AtomicU64,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Default for Signal {
    fn default() -> Signal {
        Signal {
            value: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            parks: AtomicU64::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }
}

impl Signal {
    /// The current value (`Acquire`: what was written before the matching `add` is visible).
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// How many waits parked so far.
    pub(crate) fn parks(&self) -> u64 {
        self.parks.load(Ordering::Relaxed)
    }

    /// Adds `n` and wakes the parked waiters if the value reached one's target (a notifier
    /// takes no lock otherwise).
    pub(crate) fn add(&self, n: u64) {
        let value = self.value.fetch_add(n, Ordering::SeqCst) + n;
        if self.sleepers.load(Ordering::SeqCst) > 0 && value >= self.wake_at.load(Ordering::SeqCst)
        {
            // The woken waiters that are not done yet lower it again before they park.
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            self.wake_all();
        }
    }

    /// Wakes every parked waiter (after the value or the abort flag changed).
    pub(crate) fn wake_all(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this after a parker's check (it holds the lock from its
            // check until `Condvar::wait` releases it); notifying *after* releasing it spares
            // the woken parker a contended re-lock (measured: every park cost 4 futex calls
            // and 2 more context switches when notified under the lock).
            drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
            self.wake.notify_all();
        }
    }

    /// Waits until the value is at least `target`, spinning for `patience` first; returns the
    /// value, or [`Aborted`] once `abort` is set (checked first: an aborted round's values
    /// mean nothing).
    pub(crate) fn wait_for(
        &self,
        target: u64,
        patience: &mut Patience,
        abort: &AbortFlag,
    ) -> Result<u64, Aborted> {
        let check = || {
            if abort.is_set() {
                return Some(Err(Aborted));
            }
            let v = self.value.load(Ordering::SeqCst);
            (v >= target).then_some(Ok(v))
        };
        if let Some(r) = check() {
            return r;
        }
        let start = Instant::now();
        let budget = patience.budget(start);
        if !budget.is_zero() {
            let mut last = start;
            let mut yielded = start;
            loop {
                // A few polls between clock reads: a poll is a load, a clock read ~20 ns.
                for _ in 0..16 {
                    if let Some(r) = check() {
                        patience.clean();
                        return r;
                    }
                }
                let now = Instant::now();
                if now - last >= PREEMPTED {
                    patience.preempted(now);
                    break;
                }
                if now - start >= budget {
                    break;
                }
                if now - yielded >= YIELD_EVERY {
                    std::thread::yield_now();
                    yielded = Instant::now();
                    if yielded - now >= PREEMPTED {
                        patience.preempted(yielded);
                        break;
                    }
                }
                last = Instant::now();
            }
        }
        self.parks.fetch_add(1, Ordering::Relaxed);
        let mut held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            self.wake_at.fetch_min(target, Ordering::SeqCst);
            if let Some(r) = check() {
                break r;
            }
            held = self.wake.wait(held).unwrap_or_else(PoisonError::into_inner);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Signal {
    /// Waits until the value differs from `seen` (it only grows: until it passes `seen`; see
    /// [`Signal::wait_for`]).
    pub(crate) fn wait_change(
        &self,
        seen: u64,
        patience: &mut Patience,
        abort: &AbortFlag,
    ) -> Result<u64, Aborted> {
        self.wait_for(seen + 1, patience, abort)
    }
}

/// How an arrival at a [`Barrier`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// This arrival completed the barrier.
    Last,
    /// Others have yet to arrive.
    Early(Ticket),
}

/// An early arrival at a [`Barrier`]: the count of barriers passed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// A reusable barrier of a fixed number of threads (the trainers of a combining round).
#[derive(Debug, Default)]
pub(crate) struct Barrier {
    arrived: AtomicUsize,
    /// Completed barriers.
    passed: Signal,
}

impl Barrier {
    /// Arrives and waits until `parties` threads have; returns [`Aborted`] when the flag is
    /// set meanwhile (a failed party never arrives). Everything a party wrote before arriving
    /// is visible to every party after the barrier (the arrival is `AcqRel` on one counter,
    /// the release a `SeqCst` increment every waiter acquires).
    #[cfg(test)]
    pub(crate) fn wait(
        &self,
        parties: usize,
        patience: &mut Patience,
        abort: &AbortFlag,
    ) -> Result<(), Aborted> {
        match self.arrive(parties) {
            Arrival::Last => Ok(()),
            Arrival::Early(ticket) => self.wait_passed(ticket, patience, abort),
        }
    }

    /// Arrives without waiting: [`Arrival::Last`] when this arrival completed the barrier
    /// (the others are released), else a ticket to check ([`Barrier::passed`]) and wait
    /// for ([`Barrier::wait_passed`]), so the party can do other work in between.
    pub(crate) fn arrive(&self, parties: usize) -> Arrival {
        // Read before arriving: the last arrival of this barrier increments it.
        let passed = self.passed.get();
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == parties {
            // Reset before releasing: a released party's next arrival sees 0 (it acquires
            // `passed`, which is incremented after this store).
            self.arrived.store(0, Ordering::Relaxed);
            self.passed.add(1);
            return Arrival::Last;
        }
        Arrival::Early(Ticket(passed))
    }

    /// Whether the barrier `ticket` arrived at is complete.
    pub(crate) fn passed(&self, ticket: Ticket) -> bool {
        self.passed.get() != ticket.0
    }

    /// Waits until the barrier `ticket` arrived at is complete (what a waiting arrival does).
    pub(crate) fn wait_passed(
        &self,
        ticket: Ticket,
        patience: &mut Patience,
        abort: &AbortFlag,
    ) -> Result<(), Aborted> {
        self.passed
            .wait_change(ticket.0, patience, abort)
            .map(|_| ())
    }

    /// How many parties parked at the barrier so far.
    pub(crate) fn parks(&self) -> u64 {
        self.passed.parks()
    }

    /// Wakes the parked parties (after the abort flag was set).
    pub(crate) fn wake_all(&self) {
        self.passed.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_signal_wakes_spinning_and_parked_waiters() {
        for patience in [Patience::park(), Patience::spin(Duration::from_millis(5))] {
            let s = Arc::new(Signal::default());
            let abort = Arc::new(AbortFlag::default());
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (s, abort) = (Arc::clone(&s), Arc::clone(&abort));
                    std::thread::spawn(move || {
                        let mut seen = 0;
                        for target in 1..=1000 {
                            let mut patience = patience;
                            seen = s.wait_for(target, &mut patience, &abort).unwrap();
                            assert!(seen >= target);
                        }
                        seen
                    })
                })
                .collect();
            for _ in 0..1000 {
                s.add(1);
            }
            for w in waiters {
                assert_eq!(w.join().unwrap(), 1000);
            }
        }
    }

    #[test]
    fn parked_waiters_with_different_targets_all_wake() {
        // Each waiter parks for its own target; an add below a target must not lose the
        // wake-up of a waiter whose target it reaches.
        for round in 0..50u64 {
            let s = Arc::new(Signal::default());
            let abort = Arc::new(AbortFlag::default());
            let waiters: Vec<_> = [3u64, 1, 7, 5]
                .into_iter()
                .map(|target| {
                    let (s, abort) = (Arc::clone(&s), Arc::clone(&abort));
                    std::thread::spawn(move || {
                        let seen = s.wait_for(target, &mut Patience::park(), &abort).unwrap();
                        assert!(seen >= target, "woke at {seen} for {target}");
                    })
                })
                .collect();
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            for _ in 0..7 {
                s.add(1);
            }
            for w in waiters {
                w.join().unwrap();
            }
        }
    }

    #[test]
    fn abort_ends_every_wait() {
        let s = Arc::new(Signal::default());
        let b = Arc::new(Barrier::default());
        let abort = Arc::new(AbortFlag::default());
        let waiters: Vec<_> = (0..2)
            .map(|k| {
                let (s, b, abort) = (Arc::clone(&s), Arc::clone(&b), Arc::clone(&abort));
                std::thread::spawn(move || {
                    if k == 0 {
                        s.wait_for(1, &mut Patience::park(), &abort).map(|_| ())
                    } else {
                        // Two parties, only one arrives.
                        b.wait(2, &mut Patience::spin(Duration::from_micros(50)), &abort)
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        abort.set();
        s.wake_all();
        b.wake_all();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(Aborted));
        }
    }

    #[test]
    fn a_barrier_orders_every_round() {
        // Three parties, thousands of rounds: after barrier r every party sees the value
        // every other party wrote before it; one party arrives early and works before it
        // waits (`arrive`, `passed`, `wait_passed`) every other round.
        let parties = 3;
        let rounds = 3000;
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..parties).map(|_| AtomicU64::new(0)).collect());
        let b = Arc::new(Barrier::default());
        let abort = Arc::new(AbortFlag::default());
        let threads: Vec<_> = (0..parties)
            .map(|k| {
                let (slots, b, abort) = (Arc::clone(&slots), Arc::clone(&b), Arc::clone(&abort));
                std::thread::spawn(move || {
                    let mut patience =
                        Patience::spin(Duration::from_micros(if k == 0 { 0 } else { 30 }));
                    for r in 1..=rounds {
                        slots[k].store(r, Ordering::Relaxed);
                        if k == 1 && r % 2 == 0 {
                            // Arrive, work while the others have not, then wait.
                            if let Arrival::Early(ticket) = b.arrive(parties) {
                                let mut polls = 0u32;
                                while !b.passed(ticket) && polls < 1000 {
                                    polls += 1;
                                }
                                b.wait_passed(ticket, &mut patience, &abort).unwrap();
                            }
                        } else {
                            b.wait(parties, &mut patience, &abort).unwrap();
                        }
                        for s in slots.iter() {
                            assert!(s.load(Ordering::Relaxed) >= r);
                        }
                        // A second barrier so that nobody writes r + 1 before all have read.
                        b.wait(parties, &mut patience, &abort).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
