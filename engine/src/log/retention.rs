//! Retention: rolling the active segment once it is `segment.ms` old, and deleting whole
//! segments by `retention.ms` and `retention.bytes` under the delete policy.
//!
//! Both run on the partition's shard and take the wall clock as an argument (`now_ms`), so tests
//! drive time. Deletion is segment-granular, oldest first, as Kafka's: a segment goes when its
//! newest timestamp is more than `retention.ms` old, or while the partition would still hold at
//! least `retention.bytes` without it. The active segment never goes (it must roll first, by
//! `segment.bytes` or `segment.ms`), nor a segment that writes in flight still land in.
//!
//! Crash safety: the new log start offset is checkpointed before any file goes, and opening the
//! log deletes segments wholly below the checkpoint; files go by rename to `*.deleted` (removed
//! at open) and the reaper thread unlinks them. So a crash at any point leaves the old log or the
//! new one, never a log whose start is below a segment that is gone.

use std::io;

use super::{write_checkpoint, PartitionLog, LOG_START_OFFSET_FILE};

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Base offsets of the deleted segments, oldest first.
    pub deleted_segments: Vec<i64>,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Of those, how many went because of `retention.ms` (the rest: `retention.bytes`).
    pub deleted_by_time: usize,
    /// The log start offset after the pass.
    pub log_start_offset: i64,
}

impl RetentionReport {
    pub fn is_empty(&self) -> bool {
        self.deleted_segments.is_empty()
    }
}

impl PartitionLog {
    /// Whether the active segment is at least `segment.ms` old at `now_ms` (and not empty).
    pub(super) fn roll_due(&self, now_ms: i64) -> bool {
        let active = self.segments.last().expect("active segment");
        active.size > 0 && active.age_ms(now_ms) >= self.config.segment_ms
    }

    /// Rolls the active segment if it is `segment.ms` old, without waiting for an append (an
    /// idle partition's data must become deletable too). Returns whether it rolled.
    pub fn roll_if_due(&mut self, now_ms: i64) -> io::Result<bool> {
        if self.failed || !self.roll_due(now_ms) {
            return Ok(false);
        }
        self.roll()?;
        Ok(true)
    }

    /// Deletes the oldest segments that `retention.ms` / `retention.bytes` no longer keep, when
    /// the cleanup policy includes `delete`, and moves the log start offset to the first segment
    /// left (never backwards: DeleteRecords may already have moved it further).
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<RetentionReport> {
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset,
            ..RetentionReport::default()
        };
        if self.failed || !self.config.cleanup_policy.delete {
            return Ok(report);
        }
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        if retention_ms == u64::MAX && retention_bytes == u64::MAX {
            return Ok(report);
        }
        let mut remaining: u64 = self.segments.iter().map(|s| s.size as u64).sum();
        let mut count = 0;
        let mut by_time = 0;
        // Never the active segment (the last one).
        for seg in &self.segments[..self.segments.len() - 1] {
            if seg.next_offset > self.written_offset {
                // Writes still in flight land in this segment: it is not whole yet.
                break;
            }
            let size = seg.size as u64;
            let expired = retention_ms != u64::MAX
                && now_ms.saturating_sub(seg.largest_timestamp_ms()) > retention_ms as i64;
            let oversize = retention_bytes != u64::MAX && remaining - size >= retention_bytes;
            if !expired && !oversize {
                break;
            }
            by_time += expired as usize;
            remaining -= size;
            count += 1;
        }
        if count == 0 {
            return Ok(report);
        }
        let new_start = self.segments[count].base_offset.max(self.log_start_offset);
        assert!(
            new_start <= self.written_offset,
            "retention cannot start the log past its end"
        );
        if new_start > self.log_start_offset {
            // Before any file goes: a crash after this reopens with the segments below the new
            // start deleted (see `open`), never with a start inside a missing segment.
            write_checkpoint(&self.dir.join(LOG_START_OFFSET_FILE), new_start)?;
            self.log_start_offset = new_start;
        }
        let mut failed = None;
        for seg in self.segments.drain(..count) {
            report.deleted_segments.push(seg.base_offset);
            report.deleted_bytes += seg.size as u64;
            // A file that cannot be renamed now is below the checkpointed start: the next
            // open deletes it.
            if let Err(e) = seg.retire(&self.dir) {
                failed.get_or_insert(e);
            }
        }
        self.dir_unsynced = true;
        if let Some(e) = failed {
            return Err(e);
        }
        report.deleted_by_time = by_time;
        report.log_start_offset = self.log_start_offset;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::batch::BatchBuilder;
    use crate::log::{CleanupPolicy, LogConfig, LOG_START_OFFSET_FILE};
    use crate::segment::{file_path, LOG_SUFFIX};

    /// The controllable clock's epoch: any wall-clock ms value works, the log reads no clock.
    const T0_MS: i64 = 1_800_000_000_000;
    /// Bytes of one test batch's value: with the header and framing, ~150-byte batches.
    const VALUE_BYTES: usize = 100;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    /// One record stamped `timestamp_ms`, its value derived from `seed`.
    fn batch(seed: u8, timestamp_ms: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new(timestamp_ms);
        b.push_record(Some(b"k"), Some(&[seed; VALUE_BYTES]), &[], timestamp_ms);
        b.build()
    }

    /// Appends one batch at `now_ms` (stamped `now_ms`) and completes its write.
    fn append(log: &mut PartitionLog, seed: u8, now_ms: i64) -> i64 {
        let mut bytes = batch(seed, now_ms);
        let plan = log.plan_append(&mut bytes, now_ms).expect("append");
        write(&plan, &bytes);
        log.complete_write(plan.ticket, Instant::now());
        plan.info.base_offset
    }

    fn write(plan: &crate::log::PlannedWrite, bytes: &[u8]) {
        OpenOptions::new()
            .write(true)
            .open(plan.file.path())
            .unwrap()
            .write_all_at(bytes, plan.position)
            .unwrap();
    }

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(dir, config).unwrap().0
    }

    fn bases(log: &PartitionLog) -> Vec<i64> {
        log.segments().iter().map(|s| s.base_offset).collect()
    }

    fn total_bytes(log: &PartitionLog) -> u64 {
        log.segments().iter().map(|s| s.size as u64).sum()
    }

    /// Files whose name starts with a segment's base offset (its log, indexes, `.deleted`s),
    /// once the reaper has done what it was given.
    fn files_of(dir: &Path, base: i64) -> Vec<String> {
        crate::reaper::wait_idle();
        let prefix = format!("{base:020}.");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        names.sort();
        names
    }

    /// A log of three sealed segments of two records (appended at T0, T0+10s, T0+20s) and an
    /// active one (T0+30s).
    fn four_segments(dir: &Path, config: LogConfig) -> PartitionLog {
        let mut log = open(dir, config);
        for s in 0..4u8 {
            let now = T0_MS + s as i64 * 10_000;
            append(&mut log, s * 2, now);
            append(&mut log, s * 2 + 1, now + 1);
            if s < 3 {
                log.roll().unwrap();
            }
        }
        assert_eq!(bases(&log), vec![0, 2, 4, 6]);
        log
    }

    #[test]
    fn segment_ms_rolls_an_idle_active_segment_by_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(
            dir.path(),
            LogConfig {
                segment_ms: 1_000,
                ..config()
            },
        );
        // Empty: never rolls, however old.
        assert!(!log.roll_if_due(T0_MS + 1_000_000).unwrap());
        append(&mut log, 1, T0_MS);
        assert!(!log.roll_if_due(T0_MS + 999).unwrap());
        // Age counts from the first append, not from later ones.
        append(&mut log, 2, T0_MS + 500);
        assert!(log.roll_if_due(T0_MS + 1_000).unwrap());
        assert_eq!(bases(&log), vec![0, 2]);
        // The new active segment is empty: nothing more to roll.
        assert!(!log.roll_if_due(T0_MS + 5_000).unwrap());
        // An append past segment.ms rolls on its own too (the clock is the append's).
        append(&mut log, 3, T0_MS + 6_000);
        append(&mut log, 4, T0_MS + 7_000);
        assert_eq!(bases(&log), vec![0, 2, 3]);
    }

    #[test]
    fn time_retention_deletes_sealed_segments_whose_newest_record_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = four_segments(
            dir.path(),
            LogConfig {
                segment_ms: 10_000,
                retention_ms: 15_000,
                ..config()
            },
        );
        // Segment 0's newest timestamp is T0+1: gone once more than 15 s older than now.
        let r = log.apply_retention(T0_MS + 15_001).unwrap();
        assert!(r.is_empty(), "exactly retention.ms old stays: {r:?}");
        let r = log.apply_retention(T0_MS + 15_002).unwrap();
        assert_eq!(r.deleted_segments, vec![0]);
        assert_eq!(r.deleted_by_time, 1);
        assert_eq!((r.log_start_offset, log.log_start_offset()), (2, 2));
        assert!(
            files_of(dir.path(), 0).is_empty(),
            "{:?}",
            files_of(dir.path(), 0)
        );
        // Much later: every sealed segment goes, the active one (newest T0+30001) stays even
        // though it is past retention too.
        let r = log.apply_retention(T0_MS + 1_000_000).unwrap();
        assert_eq!(r.deleted_segments, vec![2, 4]);
        assert_eq!(bases(&log), vec![6]);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 8);
        // Reads below the start are refused, from the start served.
        assert!(log.locate(5).is_none());
        assert!(log.locate(6).is_some());
        // Once it rolls, the old active segment goes too.
        assert!(log.roll_if_due(T0_MS + 1_000_000).unwrap());
        let r = log.apply_retention(T0_MS + 1_000_000).unwrap();
        assert_eq!(r.deleted_segments, vec![6]);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 8));
        assert_eq!(bases(&log), vec![8]);
        // The empty log still takes appends at the end.
        assert_eq!(append(&mut log, 9, T0_MS + 1_000_001), 8);
    }

    #[test]
    fn size_retention_keeps_the_partition_within_retention_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = four_segments(dir.path(), config());
        let sizes: Vec<u64> = log.segments().iter().map(|s| s.size as u64).collect();
        let total = total_bytes(&log);
        // Exactly the size of the newest three: the oldest goes (the rest is still >= the limit).
        log.set_config(LogConfig {
            retention_bytes: total - sizes[0],
            ..config()
        });
        let r = log.apply_retention(T0_MS).unwrap();
        assert_eq!(r.deleted_segments, vec![0]);
        assert_eq!(r.deleted_bytes, sizes[0]);
        assert_eq!(r.deleted_by_time, 0);
        assert_eq!(total_bytes(&log), total - sizes[0]);
        // One byte more than the newest two: the next one stays (without it the log would be
        // below the limit).
        log.set_config(LogConfig {
            retention_bytes: sizes[2] + sizes[3] + 1,
            ..config()
        });
        assert!(log.apply_retention(T0_MS).unwrap().is_empty());
        // A tiny limit: every sealed segment goes, never the active one.
        log.set_config(LogConfig {
            retention_bytes: 1,
            ..config()
        });
        let r = log.apply_retention(T0_MS).unwrap();
        assert_eq!(r.deleted_segments, vec![2, 4]);
        assert_eq!(bases(&log), vec![6]);
        assert_eq!(log.log_start_offset(), 6);
    }

    #[test]
    fn time_and_size_retention_together_and_only_under_the_delete_policy() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = four_segments(dir.path(), config());
        let sizes: Vec<u64> = log.segments().iter().map(|s| s.size as u64).collect();
        let both = LogConfig {
            retention_ms: 25_000,
            // Keeps the newest two segments by size.
            retention_bytes: sizes[2] + sizes[3],
            ..config()
        };
        // Compact alone: neither limit applies.
        log.set_config(LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..both.clone()
        });
        assert!(log.apply_retention(T0_MS + 1_000_000).unwrap().is_empty());
        // Unlimited both ways: nothing goes.
        log.set_config(LogConfig {
            retention_ms: u64::MAX,
            retention_bytes: u64::MAX,
            ..config()
        });
        assert!(log.apply_retention(T0_MS + 1_000_000).unwrap().is_empty());
        // compact,delete at T0+26002: segment 0 (newest T0+1) is past retention.ms, segment 1
        // (newest T0+10001) is not but the size limit takes it.
        log.set_config(LogConfig {
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: true,
            },
            ..both
        });
        let r = log.apply_retention(T0_MS + 26_002).unwrap();
        assert_eq!(r.deleted_segments, vec![0, 2]);
        assert_eq!(r.deleted_by_time, 1);
        assert_eq!(bases(&log), vec![4, 6]);
        assert_eq!(log.log_start_offset(), 4);
    }

    #[test]
    fn a_segment_with_writes_in_flight_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(
            dir.path(),
            LogConfig {
                retention_bytes: 1,
                ..config()
            },
        );
        append(&mut log, 0, T0_MS);
        // Planned, not written: the segment it lands in is sealed by the roll below.
        let mut bytes = batch(1, T0_MS);
        let plan = log.plan_append(&mut bytes, T0_MS).unwrap();
        log.roll().unwrap();
        append(&mut log, 2, T0_MS);
        assert_eq!(bases(&log), vec![0, 2]);
        assert!(log.apply_retention(T0_MS).unwrap().is_empty());
        assert_eq!(
            log.log_end_offset(),
            1,
            "offset 2's write is done, 1's is not"
        );
        write(&plan, &bytes);
        log.complete_write(plan.ticket, Instant::now());
        assert_eq!(log.log_end_offset(), 3);
        let r = log.apply_retention(T0_MS).unwrap();
        assert_eq!(r.deleted_segments, vec![0]);
        assert_eq!(log.log_start_offset(), 2);
    }

    #[test]
    fn retention_never_moves_the_start_back_from_delete_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = four_segments(dir.path(), config());
        // DeleteRecords into the middle of segment 2 (offsets 4, 5).
        assert_eq!(log.delete_records_before(5).unwrap(), 5);
        assert_eq!(bases(&log), vec![4, 6]);
        // Retention by size would keep from segment 4 on: the start stays at 5.
        log.set_config(LogConfig {
            retention_bytes: total_bytes(&log),
            ..config()
        });
        assert!(log.apply_retention(T0_MS).unwrap().is_empty());
        assert_eq!(log.log_start_offset(), 5);
        // Deleting segment 4 moves the start up to 6.
        log.set_config(LogConfig {
            retention_bytes: 1,
            ..config()
        });
        let r = log.apply_retention(T0_MS).unwrap();
        assert_eq!(r.deleted_segments, vec![4]);
        assert_eq!(log.log_start_offset(), 6);
    }

    #[test]
    fn the_start_survives_a_reopen_and_a_crash_before_the_files_went() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: 1,
            ..config()
        };
        let mut log = four_segments(dir.path(), cfg.clone());
        let r = log.apply_retention(T0_MS).unwrap();
        assert_eq!(r.deleted_segments, vec![0, 2, 4]);
        drop(log);
        let log = open(dir.path(), cfg.clone());
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(bases(&log), vec![6]);
        assert_eq!(log.log_end_offset(), 8);
        drop(log);

        // A crash between the checkpoint and the renames: the checkpoint says 4, the files of
        // segments 0 and 2 are still there (and one `.deleted` file the reaper never got to).
        let dir = tempfile::tempdir().unwrap();
        let log = four_segments(dir.path(), config());
        drop(log);
        std::fs::write(dir.path().join(LOG_START_OFFSET_FILE), "4\n").unwrap();
        let stray = dir.path().join("00000000000000000099.log.deleted");
        std::fs::write(&stray, b"gone").unwrap();
        let log = open(dir.path(), config());
        assert_eq!(log.log_start_offset(), 4);
        assert_eq!(bases(&log), vec![4, 6]);
        assert!(!file_path(dir.path(), 0, LOG_SUFFIX).exists());
        assert!(!stray.exists());
    }

    #[test]
    fn a_read_range_taken_before_deletion_still_reads_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = four_segments(dir.path(), config());
        let span = log.locate(0).expect("offset 0 is in the log");
        let mut before = vec![0u8; span.end as usize];
        span.file.read_exact_at(&mut before, 0).unwrap();
        log.set_config(LogConfig {
            retention_bytes: 1,
            ..config()
        });
        assert_eq!(
            log.apply_retention(T0_MS).unwrap().deleted_segments,
            vec![0, 2, 4]
        );
        assert!(files_of(dir.path(), 0).is_empty());
        assert!(log.locate(0).is_none());
        // The unlinked file is still open through the range's handle.
        let mut after = vec![0u8; span.end as usize];
        span.file.read_exact_at(&mut after, 0).unwrap();
        assert_eq!(before, after);
        assert_eq!(after[..8], 0i64.to_be_bytes(), "the first batch, offset 0");
        drop(span);
        crate::reaper::wait_idle();
    }

    #[test]
    fn a_recovered_active_segment_ages_from_its_first_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_ms: 10_000,
            ..config()
        };
        // Stamped long ago: after a restart the segment is old at once.
        let mut log = open(dir.path(), cfg.clone());
        append(&mut log, 0, T0_MS - 1_000_000_000_000);
        drop(log);
        let mut log = open(dir.path(), cfg);
        assert_eq!(
            log.segments()[0].first_append_ms,
            Some(T0_MS - 1_000_000_000_000)
        );
        assert!(log.roll_if_due(T0_MS).unwrap());
    }
}
