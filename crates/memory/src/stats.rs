//! Statistics: a snapshot per workspace ([`WorkspaceStats`]) and the thread's table of them
//! ([`AllocationReport`], ND4J's `printAllocationStatisticsForCurrentThread`). Read-only
//! copies; taking one never changes a workspace.

use std::fmt;

/// A snapshot of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceStats {
    /// Workspace id.
    pub id: String,
    /// Whether it is a ring.
    pub cyclic: bool,
    /// Size of the block in bytes (0 before learning).
    pub block_bytes: usize,
    /// Bump offset in the block.
    pub offset: usize,
    /// Bytes allocated in the current cycle (block and spills).
    pub this_cycle_bytes: usize,
    /// Bytes allocated in the last completed cycle.
    pub last_cycle_bytes: usize,
    /// Largest cycle seen (what learning sizes the block from).
    pub max_cycle_bytes: usize,
    /// For rings: the slot size; otherwise the learned size before overallocation.
    pub initial_block_bytes: usize,
    /// Bytes currently spilled to the heap.
    pub spilled_bytes: usize,
    /// Number of spilled allocations currently tracked.
    pub spilled_count: usize,
    /// Bytes currently pinned (ring allocations of oversize cycles).
    pub pinned_bytes: usize,
    /// Number of pinned allocations.
    pub pinned_count: usize,
    /// Completed cycles.
    pub cycles: u64,
    /// Ring laps (steps) completed.
    pub steps: u64,
    /// Current generation.
    pub generation: u64,
    /// Whether a scope of it is open.
    pub is_open: bool,
    /// Whether a borrow scope of it is open.
    pub is_borrowed: bool,
    /// Blocks retired because they were borrowed at a cycle end (misuse count).
    pub retired_blocks: u64,
    /// Of those, the cycle ends whose scope was dropped instead of `close()`d, so no caller
    /// received the `BorrowedAtCycleEnd` error (the report shows them as a warning).
    pub dropped_while_borrowed: u64,
    /// Ring allocations that skipped a still-borrowed slot.
    pub ring_conflicts: u64,
    /// Times the shrink policy gave memory back.
    pub shrinks: u64,
    /// The last misuse detected at a cycle end, if any.
    pub last_misuse: Option<String>,
}

impl WorkspaceStats {
    /// Misuse and waste worth a person's attention, one line each (empty when all is well):
    /// cycles that ended with arrays still borrowed (in particular scopes dropped in that
    /// state, whose error nobody received) and ring slots skipped because they were borrowed.
    /// [`AllocationReport`]'s table prints them under the workspace's row.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.retired_blocks > 0 {
            let last = self
                .last_misuse
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("");
            out.push(format!(
                "warning: {} cycle end(s) with arrays still borrowed ({} of them in a scope that \
                 was dropped, not close()d, so no error was returned); each retired its block \
                 instead of reusing it. Last: {last} Fix: drop read()/write() guards before \
                 the scope ends; close() the scope to get the error.",
                self.retired_blocks, self.dropped_while_borrowed
            ));
        }
        if self.ring_conflicts > 0 {
            out.push(format!(
                "note: {} ring allocation(s) skipped a slot that was still borrowed (served \
                 from the heap instead).",
                self.ring_conflicts
            ));
        }
        out
    }

    /// Whether [`WorkspaceStats::warnings`] has anything to say.
    pub fn has_warnings(&self) -> bool {
        self.retired_blocks > 0 || self.ring_conflicts > 0
    }
}

/// Formats a byte count for people: `1.50 MiB`.
pub fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// The calling thread's workspaces, in creation order. `Display` prints a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocationReport {
    /// One entry per workspace.
    pub workspaces: Vec<WorkspaceStats>,
}

impl AllocationReport {
    /// Sum of block sizes.
    pub fn total_block_bytes(&self) -> usize {
        self.workspaces.iter().map(|w| w.block_bytes).sum()
    }

    /// Every workspace's warnings, each prefixed with the workspace id.
    pub fn warnings(&self) -> Vec<String> {
        self.workspaces
            .iter()
            .flat_map(|w| w.warnings().into_iter().map(|l| format!("{}: {l}", w.id)))
            .collect()
    }

    /// The entry for `id`.
    pub fn get(&self, id: &str) -> Option<&WorkspaceStats> {
        self.workspaces.iter().find(|w| w.id == id)
    }
}

impl fmt::Display for AllocationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<26} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8} {:>6}",
            "workspace", "block", "last cycle", "max cycle", "spilled", "pinned", "cycles", "open"
        )?;
        if self.workspaces.is_empty() {
            return writeln!(f, "(no workspaces on this thread)");
        }
        for w in &self.workspaces {
            writeln!(
                f,
                "{:<26} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8} {:>6}",
                w.id,
                human_bytes(w.block_bytes),
                human_bytes(w.last_cycle_bytes),
                human_bytes(w.max_cycle_bytes),
                human_bytes(w.spilled_bytes),
                human_bytes(w.pinned_bytes),
                w.cycles,
                if w.is_open { "yes" } else { "no" }
            )?;
            for warning in w.warnings() {
                writeln!(f, "  ! {warning}")?;
            }
        }
        writeln!(
            f,
            "total block memory: {}",
            human_bytes(self.total_block_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(10 << 20), "10.00 MiB");
    }
}
