//! One workspace's state machine: ND4J's `Nd4jWorkspace` (learning, overallocation, spills,
//! pinned ring allocations, trimmed mode) expressed over [`Chunk`]s, plus dl4rs's shrink
//! policy and the retire-instead-of-reuse rule for blocks still borrowed at a cycle end.
//!
//! This state is owned by the thread's manager and touched only by the owning thread; the only
//! things other threads see are the atomics in [`WsShared`] and in each chunk. It does not know
//! about scopes or the current workspace (that is `manager.rs`) nor about element types.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use crate::chunk::Attached;
use crate::chunk::{Chunk, RawMem, Validity, WsShared, align_up};
use crate::config::{
    AllocationPolicy, LearningPolicy, LocationPolicy, SpillPolicy, WorkspaceConfig,
};
use crate::debug::DebugMode;
use crate::error::{OpenWorkspaces, WorkspaceError};
use crate::mapped::OpenFailure;
use crate::registry::{self, CycleSnapshot, Published};
use crate::stats::WorkspaceStats;

/// Poison byte: 0xFF.. is a NaN for both f32 and f64, so a read of unwritten memory shows.
const POISON: u8 = 0xFF;

pub(crate) struct WorkspaceState {
    pub(crate) shared: Arc<WsShared>,
    pub(crate) config: WorkspaceConfig,
    block: Option<Arc<Chunk>>,
    /// A memory-mapped block retired because it was borrowed at a cycle end. A mapped file
    /// can't be replaced by fresh memory (its data lives in the file), so it comes back as the
    /// block as soon as the borrows that retired it have ended.
    retired_mapping: Option<Arc<Chunk>>,
    /// Block size in bytes (kept when a borrowed block is retired, so it is reallocated).
    current_size: usize,
    offset: usize,
    /// Linear position of offset 0 in the current ring lap.
    lap_base: u64,
    cycle_allocations: usize,
    last_cycle_allocations: usize,
    max_cycle: usize,
    cycles_count: u64,
    steps_count: u64,
    steps_number: u64,
    is_init: bool,
    is_used: bool,
    reset_planned: bool,
    trimmed_mode: bool,
    trimmed_step: u64,
    initial_block_size: usize,
    externals: Vec<Arc<Chunk>>,
    spilled_bytes: usize,
    pinned: VecDeque<(u64, usize, Arc<Chunk>)>,
    pinned_bytes: usize,
    pub(crate) borrowed: bool,
    retired_blocks: u64,
    dropped_while_borrowed: u64,
    ring_conflicts: u64,
    shrinks: u64,
    small_cycles: u32,
    recent_peak: usize,
    last_misuse: Option<String>,
    /// What the process-wide view ([`crate::process_workspaces`]) reads.
    published: Arc<Published>,
}

impl WorkspaceState {
    pub(crate) fn new(id: &str, config: WorkspaceConfig) -> Result<Self, WorkspaceError> {
        config.validate()?;
        let steps_number =
            if config.is_cyclic() && config.policy_allocation == AllocationPolicy::Overallocate {
                config.overallocation_limit as u64 + 1
            } else {
                1
            };
        let mut ws = WorkspaceState {
            shared: WsShared::new(id),
            current_size: config.initial_size,
            config,
            block: None,
            retired_mapping: None,
            offset: 0,
            lap_base: 0,
            cycle_allocations: 0,
            last_cycle_allocations: 0,
            max_cycle: 0,
            cycles_count: 0,
            steps_count: 0,
            steps_number,
            is_init: false,
            is_used: true,
            reset_planned: false,
            trimmed_mode: false,
            trimmed_step: 0,
            initial_block_size: 0,
            externals: Vec::new(),
            spilled_bytes: 0,
            pinned: VecDeque::new(),
            pinned_bytes: 0,
            borrowed: false,
            retired_blocks: 0,
            dropped_while_borrowed: 0,
            ring_conflicts: 0,
            shrinks: 0,
            small_cycles: 0,
            recent_peak: 0,
            last_misuse: None,
            published: Arc::new(Published::default()),
        };
        ws.init()?;
        ws.publish(0);
        registry::register(
            ws.shared.uid,
            &ws.shared.id,
            ws.cyclic(),
            ws.published.clone(),
        );
        Ok(ws)
    }

    fn id(&self) -> &str {
        &self.shared.id
    }

    pub(crate) fn is_open(&self) -> bool {
        self.shared.open.load(SeqCst)
    }

    fn cyclic(&self) -> bool {
        self.config.is_cyclic()
    }

    fn overallocated(&self, size: usize) -> usize {
        if self.config.policy_allocation == AllocationPolicy::Overallocate {
            size.saturating_add((size as f64 * self.config.overallocation_limit) as usize)
        } else {
            size
        }
    }

    /// ND4J `init()`: allocate the initial size (overallocated once, capped at `max_size`).
    fn init(&mut self) -> Result<(), WorkspaceError> {
        if self.current_size == 0 {
            return Ok(());
        }
        if let LocationPolicy::Mmap(path) = &self.config.policy_location {
            let mem = RawMem::mmap(path.as_deref(), self.current_size, &self.shared).map_err(
                |failure| match failure {
                    OpenFailure::InUse { path, held_by } => WorkspaceError::MmapInUse {
                        workspace: self.id().to_string(),
                        path: path.display().to_string(),
                        held_by,
                    },
                    OpenFailure::Io { path, error } => WorkspaceError::Mmap {
                        workspace: self.id().to_string(),
                        path: path.display().to_string(),
                        message: error.to_string(),
                    },
                },
            )?;
            self.install_block(mem);
        } else {
            let mut size = self.overallocated(self.current_size);
            if self.config.max_size > 0 {
                size = size.min(self.config.max_size);
            }
            self.allocate_block(size)?;
        }
        self.is_init = true;
        Ok(())
    }

    fn allocate_block(&mut self, size: usize) -> Result<(), WorkspaceError> {
        let size = align_up(size).ok_or(WorkspaceError::OutOfMemory {
            workspace: self.id().to_string(),
            bytes: size,
        })?;
        let mem = RawMem::zeroed(size).ok_or_else(|| WorkspaceError::OutOfMemory {
            workspace: self.id().to_string(),
            bytes: size,
        })?;
        self.install_block(mem);
        Ok(())
    }

    fn install_block(&mut self, mem: RawMem) {
        self.current_size = mem.len();
        let validity = if self.cyclic() {
            Validity::Ring {
                size: mem.len() as u64,
            }
        } else {
            Validity::Generation
        };
        let slot = if self.config.policy_allocation == AllocationPolicy::Overallocate {
            self.initial_block_size
        } else {
            0
        };
        self.block = Some(Arc::new(Chunk::new(
            mem,
            self.shared.clone(),
            validity,
            slot,
        )));
        self.offset = 0;
        self.lap_base = 0;
    }

    /// Brings back a block retired because it was borrowed at a cycle end: a fresh heap block
    /// of the same size, or, for a memory-mapped workspace, the retired mapping itself once
    /// nothing borrows it any more. `Ok(false)`: the mapping is still borrowed.
    fn restore_block(&mut self) -> Result<bool, WorkspaceError> {
        if self.block.is_some() {
            return Ok(true);
        }
        if !matches!(self.config.policy_location, LocationPolicy::Mmap(_)) {
            self.allocate_block(self.current_size)?;
            return Ok(true);
        }
        match &self.retired_mapping {
            // The generation was bumped when it was retired, so every array in it is stale;
            // with no borrow left (read after that bump, SeqCst) no reference into it exists or
            // can start, so it can serve a new cycle.
            Some(chunk) if chunk.borrow_count() == 0 => {
                self.block = self.retired_mapping.take();
                self.offset = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn stamp(&self) -> u64 {
        self.shared.generation.load(SeqCst)
    }

    /// Serves `bytes` (already aligned, > 0).
    pub(crate) fn alloc(
        &mut self,
        bytes: usize,
        zero: bool,
        debug: DebugMode,
    ) -> Result<Attached, WorkspaceError> {
        if !self.is_used {
            // Toggled off: bypass the block, and don't learn from it (ND4J testToggle1).
            return self.external(bytes, false);
        }
        if debug == DebugMode::SpillEverything {
            self.cycle_allocations += bytes;
            return self.external(bytes, false);
        }
        if self.block.is_none() && self.current_size > 0 && !self.restore_block()? {
            // A retired memory-mapped block is still borrowed: serve from the heap (counted
            // as spilled, shown in the statistics), or fail under SpillPolicy::Fail.
            if self.config.policy_spill == SpillPolicy::Fail {
                return Err(WorkspaceError::MappedBlockBorrowed {
                    workspace: self.id().to_string(),
                    borrows: self
                        .retired_mapping
                        .as_ref()
                        .map_or(0, |c| c.borrow_count()),
                });
            }
            self.cycle_allocations += bytes;
            return self.external(bytes, false);
        }
        let cyclic = self.cyclic();
        let trimmer = (cyclic
            && self.initial_block_size > 0
            && bytes + self.cycle_allocations > self.initial_block_size)
            || self.trimmed_mode;
        if trimmer && self.config.policy_spill == SpillPolicy::Reallocate && !self.trimmed_mode {
            self.trimmed_mode = true;
            self.trimmed_step = self.steps_count;
        }
        if !trimmer {
            if self.offset + bytes > self.current_size
                && cyclic
                && self.current_size > 0
                && bytes <= self.current_size
            {
                // The ring's tail is too short: wrap to the next lap.
                self.lap_base += self.current_size as u64;
                self.offset = 0;
                self.reset_planned = true;
            }
            if self.offset + bytes <= self.current_size {
                if let Some(found) = self.bump(bytes, zero, debug == DebugMode::PoisonOnReset) {
                    return Ok(found);
                }
                // A ring page is still borrowed: the slot was skipped, serve from the heap.
                self.cycle_allocations += bytes;
                return self.external(bytes, false);
            }
        }
        match self.config.policy_spill {
            SpillPolicy::Fail => Err(WorkspaceError::WorkspaceFull {
                workspace: self.id().to_string(),
                requested: bytes,
                offset: self.offset,
                capacity: self.current_size,
            }),
            SpillPolicy::External | SpillPolicy::Reallocate => {
                self.cycle_allocations += bytes;
                self.external(bytes, trimmer)
            }
        }
    }

    /// The fast path: bump the offset. `None` when a ring page in the way is still borrowed.
    /// `poison` (DebugMode::PoisonOnReset) fills an uninitialized ring allocation with NaN
    /// bytes: a ring has no cycle end at which its slots could be poisoned, so each slot is
    /// poisoned as it is handed out again.
    fn bump(&mut self, bytes: usize, zero: bool, poison: bool) -> Option<Attached> {
        let block = self.block.as_ref()?;
        let offset = self.offset;
        let stamp = match block.validity() {
            Validity::Ring { .. } => {
                let start = self.lap_base + offset as u64;
                let conflict = block.publish_write(start + bytes as u64, offset, bytes);
                self.offset += bytes;
                if conflict {
                    self.ring_conflicts += 1;
                    return None;
                }
                start
            }
            _ => {
                self.offset += bytes;
                self.stamp()
            }
        };
        self.cycle_allocations += bytes;
        let fill = if zero {
            Some(0)
        } else if poison && matches!(block.validity(), Validity::Ring { .. }) {
            Some(POISON)
        } else {
            None
        };
        if let Some(byte) = fill {
            // SAFETY: `[offset, offset + bytes)` lies past every allocation of this cycle (the
            // offset only grows within a cycle; a ring's within a lap) and is in bounds
            // (`offset + bytes <= current_size`, checked by the caller). Scoped block:
            // allocations of earlier cycles are invalid (generation bumped at their cycle end,
            // when the borrow count was seen to be zero, or the block would have been retired),
            // so no reference into the range exists or can start. Ring: `publish_write` made
            // every allocation overlapping the range invalid (write end moved past it) and then
            // saw no borrow on its pages, so no reference exists and any new `acquire` fails.
            unsafe { block.fill(offset, bytes, byte) };
        }
        Some(Attached {
            chunk: block.clone(),
            offset,
            stamp,
        })
    }

    fn external(&mut self, bytes: usize, pinned: bool) -> Result<Attached, WorkspaceError> {
        let mem = RawMem::zeroed(bytes).ok_or_else(|| WorkspaceError::OutOfMemory {
            workspace: self.id().to_string(),
            bytes,
        })?;
        // A ring's spills are never reused, so they stay valid; a scoped workspace's spills
        // die with their cycle like the block's memory.
        let validity = if self.cyclic() {
            Validity::Forever
        } else {
            Validity::Generation
        };
        let chunk = Arc::new(Chunk::new(mem, self.shared.clone(), validity, 0));
        if pinned {
            self.pinned
                .push_back((self.steps_count, bytes, chunk.clone()));
            self.pinned_bytes += bytes;
        } else {
            self.externals.push(chunk.clone());
            self.spilled_bytes += bytes;
        }
        Ok(Attached {
            chunk,
            offset: 0,
            stamp: self.stamp(),
        })
    }

    fn free_externals(&mut self) {
        // The memory itself goes when the last array holding it drops.
        self.externals.clear();
        self.spilled_bytes = 0;
    }

    /// Start of a cycle (the outermost scope entry).
    pub(crate) fn enter(&mut self) {
        self.shared.open.store(true, SeqCst);
        if self.block.is_none() && self.retired_mapping.is_some() {
            // A mapped block retired at an earlier cycle end comes back once it is unborrowed
            // (no error path for a mapping: `restore_block` only reinstates it).
            let _ = self.restore_block();
        }
        if !self.cyclic() || self.reset_planned {
            self.free_externals();
            self.reset_planned = false;
        }
        if !self.cyclic() {
            self.offset = 0;
        }
        self.cycle_allocations = 0;
    }

    /// End of a cycle (the outermost scope closed). Returns the misuse it detected, if any,
    /// after leaving the workspace consistent.
    /// A `BorrowedAtCycleEnd` error comes back with an empty `open` list for the caller (the
    /// manager) to fill in.
    pub(crate) fn close(&mut self, debug: DebugMode) -> Result<(), WorkspaceError> {
        self.shared.open.store(false, SeqCst);
        // The cycle's spills, before learning frees them.
        let spilled = self.spilled_bytes;
        self.borrowed = false;
        let cyclic = self.cyclic();
        // Invalidate first, then look at the borrow counters: the owner half of the handshake
        // described in chunk.rs.
        let generation = self.shared.generation.fetch_add(1, SeqCst);
        let mut misuse = None;
        if !cyclic && let Some(block) = &self.block {
            let borrows = block.borrow_count();
            if borrows > 0 {
                let retired = self.block.take();
                if matches!(self.config.policy_location, LocationPolicy::Mmap(_)) {
                    self.retired_mapping = retired;
                }
                self.retired_blocks += 1;
                let err = WorkspaceError::BorrowedAtCycleEnd {
                    workspace: self.id().to_string(),
                    generation,
                    borrows,
                    open: OpenWorkspaces::default(),
                };
                self.last_misuse = Some(err.to_string());
                misuse = Some(err);
            }
        }

        self.cycles_count += 1;
        if self.cycles_count > 1 && (self.cycles_count - 1).is_multiple_of(self.steps_number) {
            self.steps_count += 1;
        }
        self.is_used = true;
        self.max_cycle = self.max_cycle.max(self.cycle_allocations);

        let learning = self.config.policy_learning;
        if learning != LearningPolicy::None
            && self.max_cycle > 0
            && debug != DebugMode::SpillEverything
        {
            if !cyclic || self.reset_planned {
                self.free_externals();
            }
            // ND4J initializes an OverTime workspace only at exactly cycle N, so one whose first
            // N cycles allocated nothing never learns and spills forever; dl4rs also learns at
            // the first later cycle that allocates.
            let cycles = u64::from(self.config.cycles_before_initialization);
            let over_time_due = learning == LearningPolicy::OverTime
                && cycles > 0
                && (self.cycles_count == cycles
                    || (self.cycles_count > cycles && self.current_size == 0));
            let first_loop_due = learning == LearningPolicy::FirstLoop && self.current_size == 0;
            let outgrown = self.current_size > 0
                && self.cycle_allocations > 0
                && self.config.policy_spill == SpillPolicy::Reallocate
                && !cyclic;
            if over_time_due || first_loop_due || outgrown {
                self.initialize()?;
            }
        }

        while let Some(&(step, bytes, _)) = self.pinned.front() {
            if step + 2 < self.steps_count {
                self.pinned.pop_front();
                self.pinned_bytes -= bytes;
            } else {
                break;
            }
        }
        if self.trimmed_mode && self.trimmed_step + 2 < self.steps_count {
            self.initial_block_size = self.max_cycle;
            self.initialize()?;
            self.trimmed_mode = false;
            self.offset = 0;
        }
        self.last_cycle_allocations = self.cycle_allocations;

        if !cyclic {
            self.offset = 0;
            if debug == DebugMode::PoisonOnReset
                && let Some(block) = &self.block
            {
                // SAFETY: the generation was bumped above and the block's borrow count was then
                // zero (else it was retired), so no reference into it exists or can start.
                unsafe { block.fill(0, self.current_size, POISON) };
            }
            self.apply_shrink()?;
        } else if self.initial_block_size > self.cycle_allocations
            && !self.trimmed_mode
            && self.offset > 0
        {
            // One cycle = one slot of the ring.
            let slot = self.initial_block_size;
            self.offset = self.offset.div_ceil(slot).saturating_mul(slot);
        }
        self.cycle_allocations = 0;
        self.publish(spilled);
        match misuse {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn apply_shrink(&mut self) -> Result<(), WorkspaceError> {
        let Some(policy) = self.config.shrink else {
            return Ok(());
        };
        if self.block.is_none() || self.current_size == 0 {
            return Ok(());
        }
        let need = self.overallocated(self.last_cycle_allocations);
        if (need as f64) < self.current_size as f64 * policy.below_fraction {
            self.small_cycles += 1;
            self.recent_peak = self.recent_peak.max(self.last_cycle_allocations);
        } else {
            self.small_cycles = 0;
            self.recent_peak = 0;
        }
        if self.small_cycles >= policy.after_cycles {
            self.max_cycle = self.recent_peak;
            self.block = None;
            self.current_size = 0;
            self.is_init = false;
            self.small_cycles = 0;
            self.recent_peak = 0;
            self.shrinks += 1;
            if self.max_cycle > 0 {
                self.initialize()?;
            }
        }
        Ok(())
    }

    /// ND4J `initializeWorkspace()`: (re)allocate the block from what was learned.
    pub(crate) fn initialize(&mut self) -> Result<(), WorkspaceError> {
        let cyclic = self.cyclic();
        let cfg = &self.config;
        if (self.current_size < self.max_cycle || self.current_size < self.cycle_allocations)
            && cfg.policy_spill == SpillPolicy::Reallocate
            && (cfg.max_size == 0 || self.max_cycle < cfg.max_size)
            && !cyclic
        {
            // Grow. Arrays in the old block keep it alive until they drop.
            self.block = None;
            self.is_init = false;
        }
        if self.trimmed_mode && self.trimmed_step + 2 < self.steps_count {
            self.block = None;
            self.is_init = false;
        }
        if self.is_init || self.config.policy_learning == LearningPolicy::None {
            return Ok(());
        }
        let mut size = self.max_cycle;
        if self.config.max_size > 0 {
            size = size.min(self.config.max_size);
        }
        if cyclic {
            size = align_up((size as f64 * 1.3).ceil() as usize).unwrap_or(usize::MAX);
            self.max_cycle = size;
        }
        self.initial_block_size = size;
        size = self.overallocated(size).max(self.config.min_size);
        if !cyclic || self.reset_planned {
            self.free_externals();
        }
        self.allocate_block(size)?;
        self.is_init = true;
        Ok(())
    }

    /// The scope whose cycle end just reported `BorrowedAtCycleEnd` was dropped, not closed:
    /// nobody saw the error, so the report must.
    pub(crate) fn note_dropped_while_borrowed(&mut self) {
        self.dropped_while_borrowed += 1;
    }

    pub(crate) fn toggle_use(&mut self, on: bool) {
        self.is_used = on;
    }

    /// Marks every array of this workspace invalid; memory goes when the last one drops.
    pub(crate) fn destroy(&mut self) {
        self.shared.destroyed.store(true, SeqCst);
        self.shared.generation.fetch_add(1, SeqCst);
        self.shared.open.store(false, SeqCst);
        self.block = None;
        self.retired_mapping = None;
        self.current_size = 0;
        self.free_externals();
        self.pinned.clear();
        self.pinned_bytes = 0;
    }

    /// Publishes the fixed-size snapshot the process-wide view reads (no allocation).
    fn publish(&self, spilled: usize) {
        self.published.publish(&CycleSnapshot {
            block_bytes: if self.block.is_some() {
                self.current_size as u64
            } else {
                0
            },
            used_bytes: self.last_cycle_allocations as u64,
            spilled_bytes: spilled.max(self.spilled_bytes) as u64,
            pinned_bytes: self.pinned_bytes as u64,
            max_cycle_bytes: self.max_cycle as u64,
            cycles: self.cycles_count,
        });
    }

    pub(crate) fn stats(&self) -> WorkspaceStats {
        WorkspaceStats {
            id: self.id().to_string(),
            cyclic: self.cyclic(),
            block_bytes: if self.block.is_some() {
                self.current_size
            } else {
                0
            },
            offset: self.offset,
            this_cycle_bytes: self.cycle_allocations,
            last_cycle_bytes: self.last_cycle_allocations,
            max_cycle_bytes: self.max_cycle,
            initial_block_bytes: self.initial_block_size,
            spilled_bytes: self.spilled_bytes,
            spilled_count: self.externals.len(),
            pinned_bytes: self.pinned_bytes,
            pinned_count: self.pinned.len(),
            cycles: self.cycles_count,
            steps: self.steps_count,
            generation: self.stamp(),
            is_open: self.is_open(),
            is_borrowed: self.borrowed,
            retired_blocks: self.retired_blocks,
            dropped_while_borrowed: self.dropped_while_borrowed,
            ring_conflicts: self.ring_conflicts,
            shrinks: self.shrinks,
            last_misuse: self.last_misuse.clone(),
        }
    }
}

impl Drop for WorkspaceState {
    /// Leaves the process-wide view (destroyed, or its thread exited).
    fn drop(&mut self) {
        registry::unregister(self.shared.uid);
    }
}
