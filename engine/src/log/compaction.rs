//! Compaction's part of the partition log: swapping cleaned segments in for the ones they
//! replace, crash-safely, and completing a swap that a crash interrupted when the log opens.

use std::io;

use super::PartitionLog;
use crate::cleaner::{CleanedSegments, CleaningJob, CleaningReport};

impl PartitionLog {
    /// On the shard: whether this log is due for cleaning at `now_ms` under its config, and if
    /// so the job that cleans it. `None` for logs without the compact policy.
    pub fn plan_cleaning(&self, _now_ms: i64) -> Option<CleaningJob> {
        None
    }

    /// On the shard: swaps a finished job's segments in (crash-safely), or discards them when
    /// the log changed meanwhile.
    pub fn install_cleaned(&mut self, _cleaned: CleanedSegments) -> io::Result<CleaningReport> {
        Ok(CleaningReport::default())
    }
}
