//! The log cleaner: compaction of `cleanup.policy=compact` partitions, as Kafka does it. For
//! each key only the record with the highest offset is kept; offsets never change (gaps appear);
//! tombstones (null values) are kept for `delete.retention.ms` after their segment is first
//! cleaned; the active segment is never touched.
//!
//! Cleaning runs in three steps, so that the shard that owns a partition never blocks on it:
//! 1. on the shard, [`crate::log::PartitionLog::plan_cleaning`] decides whether the log is due
//!    (`min.cleanable.dirty.ratio`, `min/max.compaction.lag.ms`) and describes the segments to
//!    clean in a [`CleaningJob`] (their files are shared handles: sealed segments never change);
//! 2. on a background thread, [`CleaningJob::run`] reads those segments, builds the key → latest
//!    offset map, and writes the cleaned segments to new files (fdatasynced), at a bounded rate;
//! 3. on the shard, [`crate::log::PartitionLog::install_cleaned`] swaps the new segments in
//!    crash-safely (see [`crate::log::compaction`]), unless the log changed meanwhile in a way
//!    that makes the result stale, in which case it is discarded.

use std::io;

/// The limits one cleaner works under (Kafka's `log.cleaner.*` broker settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerLimits {
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset map. A log with more
    /// distinct keys is cleaned in several passes, each up to where its map filled.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.io.max.bytes.per.second`: read plus written bytes per second.
    pub io_max_bytes_per_second: u64,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        CleanerLimits {
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_max_bytes_per_second: u64::MAX,
        }
    }
}

/// Work for the cleaner thread: which segments of one partition to clean and how. `Send`.
#[derive(Debug)]
pub struct CleaningJob {
    /// How dirty the log was when planned (dirty bytes / cleanable bytes): the shard cleans the
    /// dirtiest log first.
    pub dirty_ratio: f64,
}

/// A finished job's output, waiting to be installed on the shard. `Send`. Dropping it without
/// installing removes its files.
#[derive(Debug)]
pub struct CleanedSegments {}

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleaningReport {
    /// False when the log changed while the job ran and the result was discarded.
    pub installed: bool,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

/// Paces a cleaner's I/O to `io_max_bytes_per_second`.
#[derive(Debug)]
pub struct Throttle {}

impl Throttle {
    pub fn new(_bytes_per_second: u64) -> Throttle {
        Throttle {}
    }
}

impl CleaningJob {
    /// Cleans the job's segments into new files. Blocking I/O: run it on a cleaner thread,
    /// never on a shard.
    pub fn run(
        self,
        _limits: &CleanerLimits,
        _throttle: &mut Throttle,
    ) -> io::Result<CleanedSegments> {
        Err(io::Error::other("the cleaner is not built yet"))
    }
}
