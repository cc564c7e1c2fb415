//! What the process knows about itself for the reports: its peak resident memory, and the
//! time the calling thread has spent on a CPU.

/// VmHWM from /proc/self/status (0 where unavailable).
pub fn peak_rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Nanoseconds the calling thread has run on a CPU (the first field of
/// /proc/thread-self/schedstat); `None` where unavailable. On a machine shared with other
/// work this is steadier than wall time: waiting for a CPU does not count.
pub fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
}
