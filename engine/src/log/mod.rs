//! The partition log: an ordered list of segments, offsets assigned on append, and how far the log
//! is written and durable.
//!
//! [`PartitionLog`] is a synchronous state machine owned by one shard; the I/O it plans (writes,
//! fdatasyncs, header reads) is carried out by [`crate::partition::Partition`] through the shard's
//! ring. Offsets are assigned and byte ranges reserved *before* a write is submitted, so writes may
//! complete in any order: the written mark only advances over a contiguous prefix of completions.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{self, BatchError, BatchHeader};
use crate::segment::{self, LogFile, Segment, LOG_SUFFIX};
use crate::txn_index::{TxnIndex, TXN_INDEX_SUFFIX};

/// Compaction's part of the log: installing cleaned segments crash-safely, and finishing an
/// install that a crash interrupted when the log is opened.
pub mod compaction;
/// Retention's part of the log: rolling the active segment by age, deleting old segments.
pub mod retention;

/// Largest `segment.bytes`: positions inside a segment are 32-bit, as in Kafka.
pub const MAX_SEGMENT_BYTES: u32 = i32::MAX as u32;
/// Smallest `segment.bytes` Kafka accepts.
pub const MIN_SEGMENT_BYTES: u32 = 14;
/// Name of the per-partition checkpoint file: the base offset of the first segment that is not
/// known to be fully durable. Recovery CRC-scans from there.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset";
/// Name of the per-partition checkpoint file holding the log start offset once DeleteRecords
/// moved it past the first segment's base offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

pub use crate::batch::TimestampType;

/// `cleanup.policy`: what happens to old data. Kafka's default is `delete` alone; `compact,delete`
/// sets both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Whole segments are deleted by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// Older records of a key are removed by the cleaner, keeping each key's latest record.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parses Kafka's list form (`delete`, `compact`, `compact,delete`, in any order).
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',') {
            match part.trim() {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                "" => {}
                _ => return None,
            }
        }
        Some(policy)
    }
}

/// Per-partition log settings, under Kafka's topic-config names. Durations in ms and sizes in
/// bytes; `u64::MAX` stands for Kafka's "unlimited" (-1 or `Long.MAX_VALUE`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll the active segment once it is this old (and not empty).
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes of log between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `flush.messages`: fdatasync once this many messages are written but not durable.
    /// `u64::MAX` (Kafka's default) leaves flushing to durable acks and the OS.
    pub flush_messages: u64,
    /// `flush.ms`: fdatasync once written data has waited this long. `u64::MAX` = never.
    pub flush_ms: u64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`: a sealed segment whose newest timestamp is older than this is deleted
    /// (delete policy). `u64::MAX` = keep forever.
    pub retention_ms: u64,
    /// `retention.bytes`: the oldest segments are deleted while the partition is larger than
    /// this without them (delete policy). `u64::MAX` = no limit.
    pub retention_bytes: u64,
    /// `delete.retention.ms`: how long the cleaner keeps a tombstone (a null value) once it has
    /// first cleaned the segment that holds it, so that consumers can see the deletion.
    pub delete_retention_ms: u64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms`: a record is compacted within this long, whatever the dirty ratio.
    pub max_compaction_lag_ms: u64,
    /// `min.cleanable.dirty.ratio`: the share of the cleanable log that must be dirty (written
    /// since the last cleaning) before it is cleaned.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            cleanup_policy: CleanupPolicy::DELETE,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: u64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: u64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// Why an append was refused. Nothing is written to the log in any of these cases.
#[derive(Debug)]
pub enum AppendError {
    /// The record set is malformed (Kafka: CORRUPT_MESSAGE / INVALID_RECORD ...).
    InvalidBatch(BatchError),
    /// The record set alone is larger than a segment (Kafka: RECORD_BATCH_TOO_LARGE).
    BatchLargerThanSegment { bytes: usize, segment_bytes: u32 },
    /// An earlier write or fsync failed; the log accepts nothing more (Kafka: KAFKA_STORAGE_ERROR).
    LogFailed,
    /// Creating a segment or writing failed (Kafka: KAFKA_STORAGE_ERROR).
    Io(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::InvalidBatch(e) => write!(f, "invalid record batch: {e}"),
            AppendError::BatchLargerThanSegment {
                bytes,
                segment_bytes,
            } => {
                write!(
                    f,
                    "record set of {bytes} bytes exceeds segment.bytes {segment_bytes}"
                )
            }
            AppendError::LogFailed => write!(f, "log is offline after an I/O error"),
            AppendError::Io(e) => write!(f, "log I/O error: {e}"),
        }
    }
}

impl std::error::Error for AppendError {}

/// What an accepted append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub log_start_offset: i64,
}

/// An append whose offsets are assigned and bytes reserved, ready to be written.
#[derive(Debug)]
pub struct PlannedWrite {
    pub file: Arc<LogFile>,
    pub position: u64,
    pub info: AppendInfo,
    pub(crate) ticket: u64,
}

impl PlannedWrite {
    /// What [`PartitionLog::complete_write`] takes once the bytes are written.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }
}

#[derive(Debug)]
struct PendingWrite {
    ticket: u64,
    file: Arc<LogFile>,
    end_offset: i64,
    /// Where the write ends: (segment base offset, byte position in that segment).
    end_at: (i64, u32),
    done: bool,
}

/// What recovery found and did when the log was opened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Segments whose index files were missing or damaged and were rebuilt from the log.
    pub rebuilt_indexes: usize,
    /// Bytes cut from the end of the log (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Whole segments removed because they followed a corrupt point.
    pub removed_segments: usize,
    /// Bytes cut from aborted-transaction indexes (a torn entry, or entries whose marker was
    /// in the truncated tail).
    pub truncated_txn_index_bytes: u64,
}

/// A file range of committed batches: what a fetch sends, straight from the segment file.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<LogFile>,
    pub position: u64,
    pub len: u32,
}

/// The log of one partition.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, never empty; the last one is the active segment.
    pub(crate) segments: Vec<Segment>,
    dir_file: Arc<LogFile>,
    log_start_offset: i64,
    /// Offset for the next append (includes appends still being written).
    pub(crate) next_offset: i64,
    /// Every batch below this offset is written (in the page cache): the log end offset and,
    /// on a single node, the high watermark.
    written_offset: i64,
    /// Where `written_offset` is in the log: (segment base offset, byte position).
    written_at: (i64, u32),
    /// Every batch below this offset has been fdatasynced.
    durable_offset: i64,
    pending: VecDeque<PendingWrite>,
    next_ticket: u64,
    /// Files with written data not yet covered by an fdatasync, oldest first.
    unsynced: Vec<Arc<LogFile>>,
    /// The partition directory gained an entry (a new segment) that is not yet durable.
    dir_unsynced: bool,
    unflushed_messages: u64,
    oldest_unflushed: Option<Instant>,
    recovery_point: i64,
    failed: bool,
    /// The cleaner checkpoint and the earliest delete horizon of a kept tombstone, as in the
    /// `cleaner-offset-checkpoint` file: read once at open, kept here so that planning a
    /// cleaning (every `log.cleaner.backoff.ms`, on the shard) reads no file.
    cleaner_state: (i64, Option<i64>),
    /// An aborted-transaction index file gained an entry that no flush has taken yet.
    txn_index_unsynced: bool,
    /// Aborted-transaction entries recorded so far (a generation number: the n-th entry
    /// recorded is entry n), and how many of them a completed flush covered.
    txn_entries_recorded: u64,
    txn_entries_synced: u64,
    /// (marker offset, generation) of the entries not yet known durable, in marker order.
    txn_entries_unsynced: VecDeque<(i64, u64)>,
}

/// A flush in progress for one partition: the files to fdatasync and the written offset they cover.
#[derive(Debug)]
pub struct FlushPlan {
    pub files: Vec<Arc<LogFile>>,
    pub covers_offset: i64,
    /// How many aborted-transaction index entries (by generation) it makes durable.
    pub covers_txn_entries: u64,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering it as described in the crate docs.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<(Self, RecoveryReport)> {
        assert!((MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&config.segment_bytes));
        fs::create_dir_all(dir)?;
        // A cleaner swap interrupted by a crash is finished (or its uncommitted output removed)
        // before the segments are listed.
        compaction::recover_swap(dir)?;
        let mut bases = Vec::new();
        let mut txn_index_bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_file_name(&name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(base) = segment::parse_file_name(&name, TXN_INDEX_SUFFIX) {
                txn_index_bases.push(base);
            } else if name.ends_with(".tmp")
                || name
                    .rsplit_once('.')
                    .is_some_and(|(_, ext)| ext == segment::DELETED_SUFFIX)
            {
                // A checkpoint half written, or a deleted segment the reaper had not unlinked
                // (and may be unlinking right now).
                match fs::remove_file(dir.join(&*name)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        bases.sort_unstable();
        let recovery_point = read_checkpoint(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let mut report = RecoveryReport::default();
        let mut segments: Vec<Segment> = Vec::new();
        // Segments whose index files must be (re)written: those rebuilt from the log.
        let mut needs_seal: Vec<bool> = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            // A segment is trusted (index files, no CRC scan) only when a later segment starts
            // at or below the recovery point: then all of it was fdatasynced before the roll.
            let durable = next_base.is_some_and(|n| n <= recovery_point);
            let previous_end = segments.last().map(|s| s.next_offset);
            if durable {
                let (seg, rebuilt) = Segment::open_sealed(dir, base, config.index_interval_bytes)?;
                report.rebuilt_indexes += rebuilt as usize;
                segments.push(seg);
                needs_seal.push(rebuilt);
            } else {
                let (seg, truncated) = Segment::recover(dir, base, config.index_interval_bytes)?;
                report.rebuilt_indexes += 1;
                report.truncated_bytes += truncated;
                // Past the recovery point a segment must end where the next begins: a shortfall
                // means writes that were in flight at the crash never landed (their bytes were
                // reserved, never written), so everything after it is cut like a torn tail.
                let short = next_base.is_some_and(|n| seg.next_offset < n);
                segments.push(seg);
                needs_seal.push(true);
                if truncated > 0 || short {
                    for &later in &bases[i + 1..] {
                        let path = segment::file_path(dir, later, LOG_SUFFIX);
                        report.truncated_bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        segment::delete_files(dir, later)?;
                        report.removed_segments += 1;
                    }
                }
            }
            if let Some(end) = previous_end {
                let seg = segments.last().expect("just pushed");
                assert!(
                    seg.base_offset >= end,
                    "segment {} overlaps the previous one (ends {end})",
                    seg.base_offset
                );
            }
            if report.removed_segments > 0 {
                break;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0)?);
            needs_seal.push(false);
        }
        // Every segment but the active one is sealed: write index files that were rebuilt.
        let last = segments.len() - 1;
        for (seg, seal) in segments[..last].iter_mut().zip(&needs_seal) {
            if *seal {
                seg.seal(dir)?;
            }
        }
        let next_offset = segments[last].next_offset;
        // DeleteRecords may have moved the start past the first segment (and a crash may have
        // come between the checkpoint and the removal of the segments below it).
        let log_start_offset = read_checkpoint(&dir.join(LOG_START_OFFSET_FILE))
            .unwrap_or(0)
            .clamp(segments[0].base_offset, next_offset);
        while segments.len() > 1 && segments[1].base_offset <= log_start_offset {
            segment::delete_files(dir, segments[0].base_offset)?;
            segments.remove(0);
        }
        // Aborted-transaction indexes: entries whose marker did not survive recovery go (the
        // torn tail took the marker), a torn trailing entry is cut.
        for seg in segments.iter_mut() {
            let (index, cut) = TxnIndex::load(dir, seg.base_offset, seg.next_offset)?;
            report.truncated_txn_index_bytes += cut;
            seg.txn_index = index;
        }
        // An index whose segment is gone (a crash between the removal of a segment's files).
        for base in txn_index_bases {
            if !segments.iter().any(|s| s.base_offset == base) {
                match fs::remove_file(segment::file_path(dir, base, TXN_INDEX_SUFFIX)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        let last = segments.len() - 1;
        report.segments = segments.len();
        // `segment.ms` of the recovered active segment counts from its first batch's timestamp
        // (when it appended is not recorded), never from the future.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let first_ts = segments[last].first_batch_timestamp()?;
        segments[last].first_append_ms = first_ts.map(|ts| ts.min(now_ms));
        let dir_file = Arc::new(LogFile::open_dir(dir)?);
        let recovery_point = segments[last].base_offset;
        let written_at = (segments[last].base_offset, segments[last].size);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            dir_file,
            log_start_offset,
            next_offset,
            written_offset: next_offset,
            written_at,
            // What survived recovery is treated as durable: it was read back from the file. A
            // power cut before its fsync could still lose it, so the first flush covers it.
            durable_offset: next_offset,
            pending: VecDeque::new(),
            next_ticket: 0,
            unsynced: Vec::new(),
            // Segment files may have been created or removed since the directory was synced.
            dir_unsynced: true,
            unflushed_messages: 0,
            oldest_unflushed: None,
            recovery_point,
            failed: false,
            cleaner_state: compaction::read_cleaner_checkpoint(dir),
            txn_index_unsynced: false,
            txn_entries_recorded: 0,
            txn_entries_synced: 0,
            txn_entries_unsynced: VecDeque::new(),
        };
        log.write_recovery_point()?;
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The log end offset: everything below it is written and readable.
    pub fn log_end_offset(&self) -> i64 {
        self.written_offset
    }

    /// On a single node the high watermark is the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.written_offset
    }

    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Marks the log offline after an I/O error: Kafka takes the log dir offline; we refuse
    /// further appends on this partition rather than risk a hole in the log.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// Validates `record_set` (one or more v2 batches), assigns offsets (rewriting each batch's
    /// base offset, and its timestamp under LogAppendTime), rolls the segment if needed and
    /// reserves the bytes. The caller writes `record_set` at the planned position and then calls
    /// [`PartitionLog::complete_write`].
    pub fn plan_append(
        &mut self,
        record_set: &mut [u8],
        now_ms: i64,
    ) -> Result<PlannedWrite, AppendError> {
        if self.failed {
            return Err(AppendError::LogFailed);
        }
        let headers = batch::validate_record_set(record_set).map_err(AppendError::InvalidBatch)?;
        self.plan_headers(&headers, Some(record_set), now_ms)
    }

    /// Whether [`PartitionLog::plan_validated`] may place a batch as received: the broker
    /// rewrites nothing but the base offset (no LogAppendTime).
    pub fn places_batches_unchanged(&self) -> bool {
        self.config.timestamp_type == TimestampType::CreateTime
    }

    /// [`PartitionLog::plan_append`] for one batch that is already validated and is written as
    /// it is except for its base offset, which the caller writes as
    /// `PlannedWrite::info.base_offset` (the CRC does not cover it). Only when
    /// [`PartitionLog::places_batches_unchanged`].
    pub fn plan_validated(
        &mut self,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<PlannedWrite, AppendError> {
        if self.failed {
            return Err(AppendError::LogFailed);
        }
        assert!(
            self.places_batches_unchanged(),
            "plan_validated cannot rewrite timestamps"
        );
        self.plan_headers(std::slice::from_ref(header), None, now_ms)
    }

    /// Assigns offsets to validated `headers` (the batches of `record_set`, when given, whose
    /// header fields are rewritten in place), rolls the segment if needed and reserves the bytes.
    fn plan_headers(
        &mut self,
        headers: &[BatchHeader],
        mut record_set: Option<&mut [u8]>,
        now_ms: i64,
    ) -> Result<PlannedWrite, AppendError> {
        let bytes: usize = headers.iter().map(BatchHeader::total_bytes).sum();
        if bytes > self.config.segment_bytes as usize {
            return Err(AppendError::BatchLargerThanSegment {
                bytes,
                segment_bytes: self.config.segment_bytes,
            });
        }
        let record_count: i64 = headers.iter().map(|h| h.record_count as i64).sum();
        self.maybe_roll(bytes as u32, record_count, now_ms)
            .map_err(AppendError::Io)?;

        let base_offset = self.next_offset;
        let log_append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let active = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        let position = active.size;
        active.first_append_ms.get_or_insert(now_ms);
        let mut at = 0usize;
        let mut offset = base_offset;
        for header in headers {
            let total = header.total_bytes();
            let placed = match record_set.as_deref_mut() {
                Some(record_set) => {
                    let slice = &mut record_set[at..at + total];
                    batch::set_base_offset(slice, offset).expect("validated batch");
                    if let Some(ts) = log_append_time {
                        batch::set_log_append_time(slice, ts).expect("validated batch");
                    }
                    BatchHeader::parse(slice).expect("validated batch re-parses")
                }
                None => BatchHeader {
                    base_offset: offset,
                    ..*header
                },
            };
            active.place_batch(
                &placed,
                position + at as u32,
                self.config.index_interval_bytes,
            );
            offset = placed.next_offset();
            at += total;
        }
        assert!(offset > self.next_offset, "an append must advance the log");
        self.next_offset = offset;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let end_at = (active.base_offset, active.size);
        let file = active.file.clone();
        self.pending.push_back(PendingWrite {
            ticket,
            file,
            end_offset: offset,
            end_at,
            done: false,
        });
        Ok(PlannedWrite {
            file: active.file.clone(),
            position: position as u64,
            info: AppendInfo {
                base_offset,
                last_offset: offset - 1,
                log_append_time,
                log_start_offset: self.log_start_offset,
            },
            ticket,
        })
    }

    /// Records that a planned write reached the page cache; advances the written mark over the
    /// contiguous prefix of finished writes.
    pub fn complete_write(&mut self, ticket: u64, now: Instant) {
        let entry = self
            .pending
            .iter_mut()
            .find(|p| p.ticket == ticket)
            .expect("completing an unknown write");
        entry.done = true;
        while self.pending.front().is_some_and(|p| p.done) {
            let done = self.pending.pop_front().expect("front exists");
            assert!(
                done.end_offset > self.written_offset,
                "written offset must grow"
            );
            self.unflushed_messages += (done.end_offset - self.written_offset) as u64;
            self.written_offset = done.end_offset;
            self.written_at = done.end_at;
            // The file now holds written data that a later flush must cover (a write may land
            // in a segment that was sealed while it was in flight).
            if !self.unsynced.iter().any(|f| Arc::ptr_eq(f, &done.file)) {
                self.unsynced.push(done.file);
            }
            self.oldest_unflushed.get_or_insert(now);
        }
    }

    /// Whether `flush.messages` or `flush.ms` asks for an fdatasync now.
    pub fn flush_due(&self, now: Instant) -> bool {
        if self.sealed_segments_await_flush() {
            return true;
        }
        if self.written_offset == self.durable_offset {
            return false;
        }
        self.unflushed_messages >= self.config.flush_messages
            || self.oldest_unflushed.is_some_and(|t| {
                now.duration_since(t) >= Duration::from_millis(self.config.flush_ms)
            })
    }

    /// Whether every sealed segment is written but not yet known durable: then a flush moves
    /// the recovery point to the active segment. Kafka flushes a segment when it rolls, for the
    /// same reason: recovery trusts what lies below the recovery point, and the cleaner only
    /// compacts there (a cleaned segment may end short of the next one, which past the recovery
    /// point would read as a torn tail).
    pub fn sealed_segments_await_flush(&self) -> bool {
        let active_base = self.segments.last().expect("active segment").base_offset;
        self.recovery_point < active_base && self.written_offset >= active_base
    }

    /// Starts a flush: which files to fdatasync so that everything written so far is durable.
    pub fn begin_flush(&mut self) -> Option<FlushPlan> {
        if self.written_offset == self.durable_offset
            && !self.dir_unsynced
            && !self.txn_index_unsynced
        {
            return None;
        }
        // Files gain an entry here only when a write to them completes, so writes still in
        // flight are left to a later flush.
        let mut files = std::mem::take(&mut self.unsynced);
        if self.dir_unsynced {
            files.push(self.dir_file.clone());
            self.dir_unsynced = false;
        }
        self.txn_index_unsynced = false;
        self.unflushed_messages = 0;
        self.oldest_unflushed = None;
        Some(FlushPlan {
            files,
            covers_offset: self.written_offset,
            covers_txn_entries: self.txn_entries_recorded,
        })
    }

    /// Completes a flush: everything below `covers_offset` is durable. Once all sealed segments
    /// are durable the recovery point moves to the active segment.
    pub fn end_flush(&mut self, plan: &FlushPlan) -> io::Result<()> {
        // Rounds may overlap and end out of order; a later round's fdatasync began after every
        // write an earlier round covered had landed, so the furthest covered offset wins.
        assert!(
            plan.covers_offset <= self.written_offset,
            "a flush cannot cover unwritten data"
        );
        self.durable_offset = self.durable_offset.max(plan.covers_offset);
        self.txn_entries_synced = self.txn_entries_synced.max(plan.covers_txn_entries);
        while self
            .txn_entries_unsynced
            .front()
            .is_some_and(|&(_, generation)| generation <= self.txn_entries_synced)
        {
            self.txn_entries_unsynced.pop_front();
        }
        let active = self.segments.last().expect("active segment");
        // Recovery trusts the sealed segments below the recovery point, their
        // aborted-transaction entries included: those must be durable too.
        if self.durable_offset >= active.base_offset
            && self.recovery_point < active.base_offset
            && self.txn_index_durable_below(active.base_offset)
        {
            self.recovery_point = active.base_offset;
            self.write_recovery_point()?;
        }
        Ok(())
    }

    /// Whether every aborted-transaction entry whose marker is below `offset` is fdatasynced.
    pub fn txn_index_durable_below(&self, offset: i64) -> bool {
        self.txn_entries_unsynced
            .front()
            .is_none_or(|&(marker, _)| marker >= offset)
    }

    /// Bookkeeping after an aborted-transaction entry for the marker at `marker_offset` was
    /// written to `file` (`created`: the file is new): the next flush fdatasyncs it.
    pub(crate) fn note_txn_index_write(
        &mut self,
        file: Arc<LogFile>,
        created: bool,
        marker_offset: i64,
    ) {
        self.txn_entries_recorded += 1;
        self.txn_entries_unsynced
            .push_back((marker_offset, self.txn_entries_recorded));
        if !self.unsynced.iter().any(|f| Arc::ptr_eq(f, &file)) {
            self.unsynced.push(file);
        }
        self.dir_unsynced |= created;
        self.txn_index_unsynced = true;
    }

    /// Forgets the pending durability of entries whose marker is at or after `offset` (they
    /// were truncated away).
    pub(crate) fn forget_unsynced_txn_entries(&mut self, offset: i64) {
        self.txn_entries_unsynced
            .retain(|&(marker, _)| marker < offset);
    }

    fn write_recovery_point(&self) -> io::Result<()> {
        write_checkpoint(&self.dir.join(RECOVERY_POINT_FILE), self.recovery_point)
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u32,
        incoming_records: i64,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = self.segments.last().expect("active segment");
        if active.size == 0 {
            return Ok(());
        }
        let full = active.size as u64 + incoming_bytes as u64 > self.config.segment_bytes as u64;
        let old = self.roll_due(now_ms);
        let offsets_overflow =
            self.next_offset + incoming_records - active.base_offset > u32::MAX as i64;
        if full || old || offsets_overflow {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next offset.
    pub fn roll(&mut self) -> io::Result<()> {
        let base = self.next_offset;
        let new_segment = Segment::create(&self.dir, base)?;
        let dir = self.dir.clone();
        self.segments
            .last_mut()
            .expect("active segment")
            .seal(&dir)?;
        self.segments.push(new_segment);
        self.dir_unsynced = true;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never down) and deletes the
    /// segments that lie wholly below it; the active segment stays. The new start is
    /// checkpointed before any file is removed. Returns the log start offset afterwards, or
    /// `Err(None)` when `offset` is past the high watermark (Kafka: OFFSET_OUT_OF_RANGE).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, Option<io::Error>> {
        if offset > self.high_watermark() || offset < 0 {
            return Err(None);
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        write_checkpoint(&self.dir.join(LOG_START_OFFSET_FILE), offset).map_err(Some)?;
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[1].base_offset <= offset {
            // Renamed here, unlinked and closed on the reaper thread (see `crate::reaper`).
            let seg = self.segments.remove(0);
            seg.retire(&self.dir).map_err(Some)?;
            removed = true;
        }
        if removed {
            self.dir_unsynced = true;
        }
        Ok(self.log_start_offset)
    }

    /// Where the batch holding `offset` may be searched for: the segment's index in
    /// `self.segments`, and the byte range [from, end) to scan, where `end` is how far the
    /// segment is written. `None` if `offset` is not below the high watermark or is before the
    /// log start.
    pub fn locate(&self, offset: i64) -> Option<SegmentSpan> {
        if offset < self.log_start_offset || offset >= self.written_offset {
            return None;
        }
        let i = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)?;
        let seg = &self.segments[i];
        let from = seg
            .index
            .floor_by_offset(seg.relative(offset))
            .map_or(0, |e| e.position);
        Some(SegmentSpan {
            base_offset: seg.base_offset,
            file: seg.file.clone(),
            from,
            end: self.segment_written_end(i),
        })
    }

    /// Calls `f` with the header of every written batch whose last offset is `>= from_offset`,
    /// in offset order. Reads with blocking `pread`s: this is for start-up work such as rebuilding
    /// producer state after a snapshot, never for the request path (which uses the ring).
    pub fn for_each_batch_header(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> io::Result<()> {
        let mut buf = [0u8; batch::BATCH_HEADER_BYTES];
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.next_offset <= from_offset {
                continue;
            }
            let end = self.segment_written_end(i);
            let mut position = if from_offset > seg.base_offset {
                seg.index
                    .floor_by_offset(seg.relative(from_offset))
                    .map_or(0, |e| e.position)
            } else {
                0
            };
            while position < end {
                let corrupt = || {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "no batch header at byte {position} of segment {}",
                            seg.base_offset
                        ),
                    )
                };
                if ((end - position) as usize) < batch::BATCH_HEADER_BYTES {
                    return Err(corrupt());
                }
                seg.file.read_exact_at(&mut buf, position as u64)?;
                let header = BatchHeader::parse(&buf).map_err(|_| corrupt())?;
                let next = position as u64 + header.total_bytes() as u64;
                if next > end as u64 {
                    return Err(corrupt());
                }
                if header.last_offset() >= from_offset {
                    f(&header);
                }
                position = next as u32;
            }
        }
        Ok(())
    }

    /// How far segment `i` is written: the whole segment unless the written mark lies in it.
    pub fn segment_written_end(&self, i: usize) -> u32 {
        let seg = &self.segments[i];
        if self.written_offset >= seg.next_offset {
            seg.size
        } else if self.written_offset <= seg.base_offset {
            0
        } else {
            assert_eq!(
                self.written_at.0, seg.base_offset,
                "written mark inside segment {}",
                seg.base_offset
            );
            self.written_at.1
        }
    }
}

/// The part of one segment a read scans.
#[derive(Debug, Clone)]
pub struct SegmentSpan {
    pub base_offset: i64,
    pub file: Arc<LogFile>,
    pub from: u32,
    pub end: u32,
}

fn read_checkpoint(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Writes a small checkpoint atomically (temp file + rename), so it is either old or new.
fn write_checkpoint(path: &Path, value: i64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, format!("{value}\n"))?;
    fs::rename(&tmp, path)
}
