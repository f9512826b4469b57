//! A partition as its shard serves it: the [`PartitionLog`] state machine plus the I/O that
//! carries out its plans through the shard's ring (writes, fdatasyncs via the [`Flusher`], and the
//! header reads that turn an offset into a file position).
//!
//! A partition lives on exactly one shard, so its state sits in a `RefCell` with no lock; borrows
//! are never held across an `.await`.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::batch::{BatchHeader, ValidatedBatch, BATCH_HEADER_BYTES};
use crate::flush::{Flusher, Notify};
use crate::log::{
    AppendError, AppendInfo, FileRange, LogConfig, PartitionLog, PlannedWrite, RecoveryReport,
};
use crate::runtime::ops;
use crate::segment::LogFile;

/// Bytes read per ring read while walking batch headers to find an offset's position. The
/// walk starts at a sparse-index entry, so one read usually covers it.
pub const HEADER_SCAN_READ_BYTES: usize = 16 * 1024;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPoint {
    /// The batch is in the page cache and readable (Kafka acks=1 on a single node).
    Written,
    /// The batch has been fdatasynced (corelog's acks=all by default: stronger than Kafka).
    Durable,
}

/// Why a read could not be served.
#[derive(Debug)]
pub enum ReadError {
    /// The offset is outside [log start, high watermark] (Kafka: OFFSET_OUT_OF_RANGE).
    OffsetOutOfRange {
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The log's bytes do not parse where they must (never served; Kafka: KAFKA_STORAGE_ERROR).
    Corrupt {
        position: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::OffsetOutOfRange {
                log_start_offset,
                high_watermark,
            } => {
                write!(
                    f,
                    "offset out of range [{log_start_offset}, {high_watermark}]"
                )
            }
            ReadError::Corrupt { position } => {
                write!(f, "log data does not parse at byte {position}")
            }
            ReadError::Io(e) => write!(f, "log read failed: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The answer to a read: at most one file range of whole batches, plus the partition's offsets
/// at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub range: Option<FileRange>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The bound the read stopped at: every batch of the range ends below it. The high
    /// watermark for [`Partition::read`]; for [`Partition::read_bounded`] the bound it was
    /// given, lowered to the high watermark if above it.
    pub upper_offset: i64,
}

/// One partition on its shard.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub partition: u32,
    log: RefCell<PartitionLog>,
    flusher: Rc<Flusher>,
    /// Whether this partition is in the flusher's dirty list (so it is listed once).
    pub(crate) queued_for_flush: Cell<bool>,
    /// Fires whenever the written mark advances.
    written: Notify,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Partition {
    pub fn open(
        topic: &str,
        partition: u32,
        dir: &Path,
        config: LogConfig,
        flusher: Rc<Flusher>,
    ) -> io::Result<(Rc<Self>, RecoveryReport)> {
        let (log, report) = PartitionLog::open(dir, config)?;
        let p = Rc::new(Partition {
            topic: topic.to_string(),
            partition,
            log: RefCell::new(log),
            flusher,
            queued_for_flush: Cell::new(false),
            written: Notify::default(),
        });
        Ok((p, report))
    }

    /// Read access to the log's state (offsets, segments, config). Do not hold across awaits.
    pub fn log(&self) -> std::cell::Ref<'_, PartitionLog> {
        self.log.borrow()
    }

    pub(crate) fn log_mut(&self) -> std::cell::RefMut<'_, PartitionLog> {
        self.log.borrow_mut()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log.borrow_mut().set_config(config);
    }

    /// Resolves the next time the written mark (the high watermark) advances, or the log fails.
    /// Cheap: a generation counter and a waker list, no timer and no polling. Take the future
    /// *before* checking the offsets it guards (it fires for any advance after its creation), and
    /// await it on this partition's shard.
    pub fn data_arrived(&self) -> crate::flush::Notified<'_> {
        self.written.notified()
    }

    /// DeleteRecords: makes `offset` the log start offset (if it is higher) and deletes the
    /// segments wholly below it. Reads below the new start answer OFFSET_OUT_OF_RANGE; ranges
    /// already handed out stay readable. `Err(None)`: `offset` is past the high watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, Option<io::Error>> {
        self.log.borrow_mut().delete_records_before(offset)
    }

    /// Retention: rolls the active segment if it is `segment.ms` old at `now_ms`, so that an
    /// idle partition's data becomes deletable. Returns whether it rolled.
    pub fn roll_if_due(self: &Rc<Self>, now_ms: i64) -> io::Result<bool> {
        let rolled = self.log.borrow_mut().roll_if_due(now_ms)?;
        // The sealed segment is flushed now, as after a roll on the append path.
        if rolled && self.log.borrow().sealed_segments_await_flush() {
            self.flusher.mark_dirty(self);
            self.flusher.request();
        }
        Ok(rolled)
    }

    /// Retention: deletes the sealed segments past `retention.ms` / `retention.bytes` at
    /// `now_ms` (delete policy only) and moves the log start offset past them. Ranges already
    /// handed out stay readable; the files' unlink and last close happen off the shard.
    pub fn apply_retention(
        &self,
        now_ms: i64,
    ) -> io::Result<crate::log::retention::RetentionReport> {
        self.log.borrow_mut().apply_retention(now_ms)
    }

    /// Compaction, step 1 (on this shard): the cleaning job this partition is due for, if any.
    /// Nothing at or past `first_unstable_offset` (the first record of the oldest open
    /// transaction; `None` when none is open) is cleaned.
    pub fn plan_cleaning(
        &self,
        now_ms: i64,
        first_unstable_offset: Option<i64>,
    ) -> Option<crate::cleaner::CleaningJob> {
        self.log
            .borrow()
            .plan_cleaning(now_ms, first_unstable_offset)
    }

    /// Compaction, step 3 (on this shard): installs what the cleaner thread produced.
    pub fn install_cleaned(
        &self,
        cleaned: crate::cleaner::CleanedSegments,
    ) -> io::Result<crate::cleaner::CleaningReport> {
        self.log.borrow_mut().install_cleaned(cleaned)
    }

    /// Appends a record set (one or more v2 batches, validated here) and answers once it has
    /// reached `ack`. Offsets are assigned in call order; writes are issued at once, so many
    /// appends are in flight together and a durable ack shares its fdatasync with every other
    /// append of the shard that is waiting (group commit).
    pub async fn append(
        self: &Rc<Self>,
        mut record_set: Vec<u8>,
        ack: AckPoint,
    ) -> Result<AppendInfo, AppendError> {
        let plan = self
            .log
            .borrow_mut()
            .plan_append(&mut record_set, now_ms())?;
        let (written, _) = ops::write_all_at(plan.file.raw_fd(), record_set, plan.position).await;
        self.finish_append(plan, written, ack).await
    }

    /// Appends one client batch that the caller validated ([`ValidatedBatch::client`]): its
    /// CRC is not computed a second time. The bytes are copied once into the buffer the ring
    /// writes from, with the assigned base offset (not CRC-covered) set there. Under
    /// LogAppendTime the broker rewrites the timestamps and the CRC: [`Partition::append`].
    ///
    /// The write stays on the ring (an io-wq worker on ext4, which has no async buffered
    /// writes) rather than a `pwrite` on the shard: writing inline saved ~25% of the broker's
    /// CPU per MiB but lost throughput whenever writeback throttled the shard (measured in
    /// the commit that reverted it).
    pub async fn append_client_batch<B: AsRef<[u8]>>(
        self: &Rc<Self>,
        batch: ValidatedBatch<B>,
        ack: AckPoint,
    ) -> Result<AppendInfo, AppendError> {
        if !self.log.borrow().places_batches_unchanged() {
            return self.append(batch.bytes().to_vec(), ack).await;
        }
        let plan = self
            .log
            .borrow_mut()
            .plan_validated(batch.header(), now_ms())?;
        let mut record_set = batch.bytes().to_vec();
        record_set[..BASE_OFFSET_BYTES].copy_from_slice(&plan.info.base_offset.to_be_bytes());
        let (written, _) = ops::write_all_at(plan.file.raw_fd(), record_set, plan.position).await;
        self.finish_append(plan, written, ack).await
    }

    /// Completes a planned append once its write returned: advances the written mark, wakes
    /// readers, schedules the flush and waits for `ack`.
    async fn finish_append(
        self: &Rc<Self>,
        plan: PlannedWrite,
        written: io::Result<()>,
        ack: AckPoint,
    ) -> Result<AppendInfo, AppendError> {
        if let Err(e) = written {
            self.log.borrow_mut().fail();
            self.written.notify_all();
            return Err(AppendError::Io(e));
        }
        let flush_now = {
            let mut log = self.log.borrow_mut();
            log.complete_write(plan.ticket, Instant::now());
            log.flush_due(Instant::now())
        };
        self.written.notify_all();
        self.flusher.mark_dirty(self);
        if flush_now {
            self.flusher.request();
        }
        if ack == AckPoint::Durable {
            self.wait_durable(plan.info.last_offset + 1).await?;
        }
        Ok(plan.info)
    }

    /// Waits until every offset below `offset` is fdatasynced, and the aborted-transaction index
    /// entries of the abort markers below it too, asking the flusher for a flush once the writes
    /// below `offset` have all completed (earlier writes may still be in flight).
    pub async fn wait_durable(self: &Rc<Self>, offset: i64) -> Result<(), AppendError> {
        loop {
            let (written, durable, index_durable) = {
                let log = self.log.borrow();
                if log.is_failed() {
                    return Err(AppendError::LogFailed);
                }
                (
                    log.log_end_offset(),
                    log.durable_offset(),
                    log.txn_index_durable_below(offset),
                )
            };
            if durable >= offset && index_durable {
                return Ok(());
            }
            if written < offset {
                self.written.notified().await;
                continue;
            }
            let flushed = self.flusher.next_flush();
            self.flusher.mark_dirty(self);
            self.flusher.request();
            flushed.await;
        }
    }

    /// Reads whole batches starting with the one that holds `offset`, up to `max_bytes` (but at
    /// least one batch when `min_one_batch`, as Kafka does for the first partition of a fetch),
    /// never past the high watermark, from a single segment. Returns a file range: no bytes of
    /// the records are copied.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
    ) -> Result<ReadSlice, ReadError> {
        self.read_bounded(offset, max_bytes, min_one_batch, i64::MAX)
            .await
    }

    /// [`Partition::read`] that also stops at `upper_offset` (a read_committed fetch passes the
    /// last stable offset): the range holds only whole batches whose last offset is below
    /// `min(upper_offset, high watermark)`, the bound reported in [`ReadSlice::upper_offset`]. A
    /// batch that straddles the bound is left out (the LSO is always a batch's base offset, so
    /// none does). An `offset` in `[bound, high watermark]` answers an empty range, not an
    /// error; outside `[log start, high watermark]` it is OFFSET_OUT_OF_RANGE as for `read`.
    pub async fn read_bounded(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        upper_offset: i64,
    ) -> Result<ReadSlice, ReadError> {
        let mut offset = offset;
        loop {
            let (mut span, high_watermark, log_start_offset, upper, upper_from) = {
                let log = self.log.borrow();
                let (hw, start) = (log.high_watermark(), log.log_start_offset());
                let upper = upper_offset.min(hw);
                let empty = ReadSlice {
                    range: None,
                    high_watermark: hw,
                    log_start_offset: start,
                    upper_offset: upper,
                };
                if offset == hw {
                    return Ok(empty);
                }
                match log.locate(offset) {
                    Some(_) if offset >= upper => return Ok(empty),
                    Some(span) => {
                        // Where to start looking for the bound's batch, if it lies in this
                        // segment (a later segment's base at or below it means it does not).
                        let next_base = log
                            .segments()
                            .iter()
                            .map(|s| s.base_offset)
                            .find(|&b| b > span.base_offset);
                        let upper_from = if upper < hw && next_base.is_none_or(|n| n > upper) {
                            let seg = log
                                .segments()
                                .iter()
                                .find(|s| s.base_offset == span.base_offset)
                                .expect("located segment");
                            Some(
                                seg.index
                                    .floor_by_offset(seg.relative(upper))
                                    .map_or(0, |e| e.position),
                            )
                        } else {
                            None
                        };
                        (span, hw, start, upper, upper_from)
                    }
                    None => {
                        return Err(ReadError::OffsetOutOfRange {
                            log_start_offset: start,
                            high_watermark: hw,
                        })
                    }
                }
            };
            let mut scanner = HeaderScanner::new(span.file.clone(), span.end);
            if let Some(mut position) = upper_from {
                // The range ends where the first batch reaching the bound begins.
                while position < span.end {
                    let header = scanner.header_at(position).await?;
                    if header.last_offset() >= upper {
                        span.end = position;
                        break;
                    }
                    position += header.total_bytes() as u32;
                }
            }
            // Walk from the index entry to the batch that holds `offset`.
            let mut position = span.from;
            let mut first = None;
            while position < span.end {
                let header = scanner.header_at(position).await?;
                if header.last_offset() >= offset {
                    first = Some(header);
                    break;
                }
                position += header.total_bytes() as u32;
            }
            let first = first.filter(|h| h.last_offset() < upper);
            let Some(first) = first else {
                // `offset` falls in a gap at the end of this segment (go on at the next one), or
                // its batch reaches the bound (nothing to send).
                let next = self
                    .log
                    .borrow()
                    .segments()
                    .iter()
                    .map(|s| s.base_offset)
                    .find(|&b| b > span.base_offset);
                match next {
                    Some(next) if next < upper => {
                        offset = next;
                        continue;
                    }
                    _ => {
                        return Ok(ReadSlice {
                            range: None,
                            high_watermark,
                            log_start_offset,
                            upper_offset: upper,
                        })
                    }
                }
            };
            let first_bytes = first.total_bytes() as u32;
            let end = self
                .end_within(
                    &span,
                    &mut scanner,
                    position,
                    first_bytes,
                    max_bytes,
                    min_one_batch,
                )
                .await?;
            let range = (end > position).then(|| FileRange {
                file: span.file,
                position: position as u64,
                len: end - position,
            });
            return Ok(ReadSlice {
                range,
                high_watermark,
                log_start_offset,
                upper_offset: upper,
            });
        }
    }

    /// Where a read that starts with a batch of `first_bytes` at `start` ends: the last batch
    /// boundary within `max_bytes`, found by jumping to the last index entry inside the limit and
    /// walking headers from there (or the first batch's end, when it alone is larger and
    /// `min_one_batch` asks for it).
    async fn end_within(
        &self,
        span: &crate::log::SegmentSpan,
        scanner: &mut HeaderScanner,
        start: u32,
        first_bytes: u32,
        max_bytes: u32,
        min_one_batch: bool,
    ) -> Result<u32, ReadError> {
        let limit = start as u64 + max_bytes as u64;
        let end = if span.end as u64 <= limit {
            span.end
        } else {
            // Jump to the last index entry inside the limit, then walk to the last boundary.
            let jump = {
                let log = self.log.borrow();
                log.segments()
                    .iter()
                    .find(|s| s.base_offset == span.base_offset)
                    .and_then(|s| s.index.floor_by_position(limit as u32))
                    .map_or(start, |e| e.position.max(start))
            };
            let mut boundary = jump;
            loop {
                if boundary >= span.end {
                    break;
                }
                let header = scanner.header_at(boundary).await?;
                let next = boundary as u64 + header.total_bytes() as u64;
                if next > limit {
                    break;
                }
                boundary = next as u32;
            }
            if boundary == start && min_one_batch {
                start + first_bytes
            } else {
                boundary
            }
        };
        Ok(end)
    }

    /// The first batch whose max timestamp is `>= timestamp`: its base offset and max timestamp
    /// (Kafka's ListOffsets by timestamp, at batch granularity). `None` if no such batch is written.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let spans = {
            let log = self.log.borrow();
            let mut spans = Vec::new();
            for (i, seg) in log.segments().iter().enumerate() {
                if seg.max_timestamp < timestamp {
                    continue;
                }
                let from = seg
                    .time_index
                    .search_start(timestamp)
                    .and_then(|rel| seg.index.floor_by_offset(rel))
                    .map_or(0, |e| e.position);
                spans.push((seg.file.clone(), from, log.segment_written_end(i)));
            }
            spans
        };
        for (file, from, end) in spans {
            let mut scanner = HeaderScanner::new(file, end);
            let mut position = from;
            while position < end {
                let header = scanner.header_at(position).await?;
                if header.max_timestamp >= timestamp {
                    return Ok(Some((header.base_offset, header.max_timestamp)));
                }
                position += header.total_bytes() as u32;
            }
        }
        Ok(None)
    }
}

/// Walks batch headers of one segment through the ring, reading ahead in chunks.
struct HeaderScanner {
    file: Arc<LogFile>,
    end: u32,
    buf: Vec<u8>,
    buf_start: u32,
}

impl HeaderScanner {
    fn new(file: Arc<LogFile>, end: u32) -> Self {
        HeaderScanner {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The header of the batch at `position`, which must lie wholly below `end`.
    async fn header_at(&mut self, position: u32) -> Result<BatchHeader, ReadError> {
        let corrupt = ReadError::Corrupt {
            position: position as u64,
        };
        if position as u64 + BATCH_HEADER_BYTES as u64 > self.end as u64 {
            return Err(corrupt);
        }
        let buffered = position >= self.buf_start
            && (position - self.buf_start) as usize + BATCH_HEADER_BYTES <= self.buf.len();
        if !buffered {
            let want = HEADER_SCAN_READ_BYTES.min((self.end - position) as usize);
            let buf = std::mem::take(&mut self.buf);
            let mut buf = buf;
            buf.clear();
            buf.resize(want, 0);
            let (result, mut buf) = ops::read_at(self.file.raw_fd(), buf, position as u64).await;
            let n = result.map_err(ReadError::Io)?;
            buf.truncate(n);
            self.buf = buf;
            self.buf_start = position;
            if n < BATCH_HEADER_BYTES {
                return Err(corrupt);
            }
        }
        let at = (position - self.buf_start) as usize;
        let header = BatchHeader::parse(&self.buf[at..]).map_err(|_| ReadError::Corrupt {
            position: position as u64,
        })?;
        if position as u64 + header.total_bytes() as u64 > self.end as u64 {
            return Err(corrupt);
        }
        Ok(header)
    }
}

/// Bytes of a batch's `baseOffset` field, at its start.
const BASE_OFFSET_BYTES: usize = 8;
