//! Counters that the generator's shards bump while a run is under way and that the progress bar
//! (another thread) reads. Relaxed atomics: they are statistics, read once a few times a second.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// What phase a run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting = 0,
    WarmingUp = 1,
    Measuring = 2,
    /// Producers have stopped; consumers read what is left.
    Draining = 3,
    Done = 4,
}

#[derive(Default)]
pub struct LiveCounters {
    phase: AtomicU8,
    pub produced_messages: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub acked_messages: AtomicU64,
    pub consumed_messages: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl LiveCounters {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::WarmingUp,
            2 => Phase::Measuring,
            3 => Phase::Draining,
            _ => Phase::Done,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
