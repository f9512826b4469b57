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
//!
//! A pass works as Kafka's does:
//! - the *cleanable* range runs from the log's first segment to the first uncleanable offset
//!   (the active segment, a segment still inside `min.compaction.lag.ms`, or the first segment
//!   not yet known durable); its *dirty* part starts at the cleaner checkpoint, where the last
//!   pass stopped;
//! - the key map is built over the dirty part ([`keymap`]), up to where it fills: at a segment
//!   boundary, or inside the first dirty segment when not even that fits; the rest waits for the
//!   next pass;
//! - every segment from the log start to there is rewritten ([`rewrite`]): a record goes when
//!   the map holds a higher offset for its key, or when it is a tombstone whose delete horizon
//!   has passed; consecutive segments are merged into one output while they fit in
//!   `segment.bytes`.
//!
//! Transactions, as Kafka's cleaner treats them:
//! - nothing at or past the partition's first unstable offset (the first record of the oldest
//!   open transaction) is cleanable, so every transactional batch the cleaner sees has its
//!   commit or abort marker written;
//! - a transactional batch of an aborted transaction (its producer has an entry in the
//!   aborted-transaction index whose range holds the batch) is removed, and its keys are not put
//!   in the key map, so an aborted record never removes a committed one of the same key;
//! - records of committed transactions are compacted like any other;
//! - control batches (markers) are kept as they are. Kafka removes a marker once every record of
//!   its transaction is gone and `delete.retention.ms` has passed since (so that consumers that
//!   read the records also see the marker); corelog keeps them: they are small, one per
//!   transaction and partition;
//! - the aborted-transaction index entries of the segments merged into one output become that
//!   output's index (`<base>.txnindex.cleaned`, written and fdatasynced with the output before
//!   the swap commits, renamed with it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::BatchHeader;
use crate::segment::{self, LogFile, Segment};
use crate::txn_index::{AbortedTxn, TxnIndex, TXN_INDEX_CLEANED_SUFFIX};

pub mod keymap;
pub mod reader;
pub mod records;
pub mod rewrite;
pub mod throttle;

pub use keymap::KeyMap;
pub use rewrite::Removed;
pub use throttle::Throttle;

use reader::BatchReader;
use rewrite::{Outcome, Pass};

/// Suffix of a cleaned segment written but not yet swapped in: `<base offset>.cleaned`.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Bytes buffered before a write to a cleaned segment.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Bytes of a cleaned segment written between two starts of writeback.
pub const WRITEBACK_STEP_BYTES: u32 = 1 << 20;

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

/// A sealed segment as a job saw it when it was planned.
#[derive(Debug, Clone)]
pub(crate) struct InputSegment {
    pub base_offset: i64,
    pub file: Arc<LogFile>,
    pub size: u32,
    /// Its aborted-transaction index entries when planned.
    pub txn_entries: Vec<AbortedTxn>,
}

/// The aborted transactions a pass knows, by producer: which transactional batches it removes.
#[derive(Debug, Default)]
pub struct AbortedRanges {
    /// Per producer, the (first offset, marker offset) of its aborted transactions, sorted.
    by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedRanges {
    pub fn new(txns: &[AbortedTxn]) -> AbortedRanges {
        let mut by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>> =
            std::collections::HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedRanges { by_producer }
    }

    /// Whether the transactional batch `header` belongs to an aborted transaction: its producer
    /// aborted a transaction whose range holds the batch's base offset. (A producer's
    /// transactions in a partition follow one another, so its ranges do not overlap.)
    pub fn holds(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&header.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|&(first, _)| first <= header.base_offset);
        i.checked_sub(1)
            .is_some_and(|i| ranges[i].1 >= header.base_offset)
    }
}

/// Work for the cleaner thread: which segments of one partition to clean and how. `Send`.
#[derive(Debug)]
pub struct CleaningJob {
    /// How dirty the log was when planned (dirty bytes / cleanable bytes): the shard cleans the
    /// dirtiest log first.
    pub dirty_ratio: f64,
    pub(crate) dir: PathBuf,
    /// The cleanable segments, from the log's first one, in order.
    pub(crate) segments: Vec<InputSegment>,
    pub(crate) first_dirty_offset: i64,
    pub(crate) first_uncleanable_offset: i64,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: u64,
    pub(crate) segment_bytes: u32,
    pub(crate) index_interval_bytes: u32,
    pub(crate) forced_by_max_lag: bool,
    /// The aborted transactions that overlap the cleanable range (their markers may lie in any
    /// later segment, the active one included).
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// A finished job's output, waiting to be installed on the shard. `Send`. Dropping it without
/// installing removes its files.
#[derive(Debug)]
pub struct CleanedSegments {
    pub(crate) dir: PathBuf,
    /// The segments the output replaces (a prefix of the job's).
    pub(crate) replaced: Vec<InputSegment>,
    /// The new segments, each in `<base>.cleaned`, fdatasynced, with their indexes in memory.
    pub(crate) outputs: Vec<Segment>,
    /// The cleaner checkpoint once installed: every offset below it has been cleaned.
    pub(crate) cleaned_up_to: i64,
    pub(crate) removed: Removed,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    /// The aborted transactions the pass used and the range it asked them for: the install
    /// discards the result if the log's index answers differently now (an entry recorded late).
    pub(crate) aborted: Vec<AbortedTxn>,
    pub(crate) aborted_range: (i64, i64),
    /// Set once the files belong to the log (installed) or are already removed.
    pub(crate) consumed: bool,
    /// The swap marker naming these outputs is durable: a crash now finishes the swap.
    pub(crate) committed: bool,
}

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
    /// Records without a key found (and removed) in the compacted log.
    pub keyless_removed: u64,
    /// The new cleaner checkpoint (first offset not cleaned yet).
    pub cleaned_up_to: i64,
}

impl CleaningJob {
    /// The partition directory the job cleans.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the dirty part begins (the cleaner checkpoint).
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset
    }

    /// Where the cleanable range ends.
    pub fn first_uncleanable_offset(&self) -> i64 {
        self.first_uncleanable_offset
    }

    /// How many segments the cleanable range holds.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether `max.compaction.lag.ms` rather than the dirty ratio made the log due.
    pub fn forced_by_max_compaction_lag(&self) -> bool {
        self.forced_by_max_lag
    }

    /// The offset where segment `i`'s range ends (the next segment's base).
    fn boundary(&self, i: usize) -> i64 {
        self.segments
            .get(i + 1)
            .map_or(self.first_uncleanable_offset, |s| s.base_offset)
    }

    /// Cleans the job's segments into new files. Blocking I/O: run it on a cleaner thread,
    /// never on a shard.
    pub fn run(
        self,
        limits: &CleanerLimits,
        throttle: &mut Throttle,
    ) -> io::Result<CleanedSegments> {
        let mut map = KeyMap::with_buffer(limits.dedupe_buffer_bytes);
        let mut bytes_read = 0u64;
        let (mapped_end, rewrite_count) = self.build_map(&mut map, throttle, &mut bytes_read)?;
        let replaced = self.segments[..rewrite_count].to_vec();
        let aborted_range = (self.segments[0].base_offset, self.first_uncleanable_offset);
        let mut cleaned = CleanedSegments {
            dir: self.dir.clone(),
            replaced,
            outputs: Vec::new(),
            cleaned_up_to: mapped_end,
            removed: Removed::default(),
            bytes_read,
            bytes_written: 0,
            aborted: self.aborted.clone(),
            aborted_range,
            consumed: false,
            committed: false,
        };
        let aborted = AbortedRanges::new(&self.aborted);
        let pass = Pass {
            map: &map,
            mapped_end,
            now_ms: self.now_ms,
            delete_retention_ms: self.delete_retention_ms,
            aborted: &aborted,
        };
        let end = self.boundary(rewrite_count - 1);
        for (g, group) in group_segments(&cleaned.replaced, end, self.segment_bytes)
            .into_iter()
            .enumerate()
        {
            let inputs = cleaned.replaced[group].to_vec();
            let base = inputs[0].base_offset;
            let path = segment::file_path(&self.dir, base, CLEANED_SUFFIX);
            // Registered first, so that an error below still removes the file (Drop).
            let file = create_output(&path)?;
            let handle = LogFile::open(&path, false)?;
            cleaned.outputs.push(Segment::over_file(base, handle));
            let seg = cleaned.outputs.last_mut().expect("just pushed");
            let written = self.clean_group(
                &inputs,
                file,
                seg,
                &pass,
                throttle,
                &mut cleaned.removed,
                &mut cleaned.bytes_read,
            )?;
            cleaned.bytes_written += written;
            // The merged segments' aborted-transaction entries go with the output (their
            // markers are kept, so an output with entries is never empty).
            let entries: Vec<AbortedTxn> = inputs
                .iter()
                .flat_map(|i| i.txn_entries.iter().copied())
                .collect();
            if !entries.is_empty() {
                TxnIndex::write_file(
                    &segment::file_path(&self.dir, base, TXN_INDEX_CLEANED_SUFFIX),
                    &entries,
                )?;
                seg.txn_index = TxnIndex::with_entries(entries);
            }
            // An output with nothing left is not kept, except the log's first segment: it keeps
            // the log start where it was.
            if written == 0 && g > 0 && seg.txn_index.is_empty() {
                cleaned.outputs.pop();
                fs::remove_file(&path)?;
            }
        }
        // The outputs replace segments that recovery must keep treating as durable (it checks
        // that a segment past the recovery point ends where the next begins, which a cleaned
        // one need not): the recovery-point checkpoint, which the shard wrote (not fsynced)
        // before this job was planned, is made durable here, off the shard.
        match File::open(self.dir.join(crate::log::RECOVERY_POINT_FILE)) {
            Ok(checkpoint) => checkpoint.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // The new files' directory entries are durable before the swap can be committed.
        LogFile::open_dir(&self.dir)?.sync_blocking()?;
        // The commit, here and not on the shard: its fsyncs would stall every partition of the
        // shard (measured: p99 produce latency 2.6x with them on the shard). Committing before
        // the shard has checked that the log did not change meanwhile is safe: a stale result
        // only holds cleaned copies of segments that retention or DeleteRecords removed, and
        // if a crash lets `open` finish such a swap, the log start offset (checkpointed before
        // any removal) still hides them. The shard withdraws the commit when it discards.
        cleaned.commit()?;
        Ok(cleaned)
    }

    /// Builds the key map over the dirty part. Returns the offset up to which the map covers
    /// it and how many segments (from the first) the pass rewrites.
    fn build_map(
        &self,
        map: &mut KeyMap,
        throttle: &mut Throttle,
        bytes_read: &mut u64,
    ) -> io::Result<(i64, usize)> {
        let dirty_from = self.first_dirty_offset;
        let Some(first_dirty) = (0..self.segments.len()).find(|&i| self.boundary(i) > dirty_from)
        else {
            // Nothing dirty: a pass planned because a delete horizon passed rewrites it all.
            return Ok((dirty_from, self.segments.len()));
        };
        let aborted = AbortedRanges::new(&self.aborted);
        let mut mapped_end = dirty_from;
        let mut rewrite_count = first_dirty;
        for i in first_dirty..self.segments.len() {
            let input = &self.segments[i];
            let mut reader = BatchReader::new(input.file.clone(), input.base_offset, input.size);
            let mut full = false;
            // The end of the last batch of this segment whose keys are all in the map.
            let mut whole_batches_end = None;
            while let Some((header, _, bytes)) = reader.next_batch(throttle)? {
                *bytes_read += bytes.len() as u64;
                if header.last_offset() < dirty_from {
                    continue;
                }
                // Markers hold no user keys; an aborted transaction's records are removed, so
                // they must not hide an older committed record of their key.
                if !header.is_control() && !aborted.holds(&header) {
                    let invalid = |e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("batch at offset {}: {e}", header.base_offset),
                        )
                    };
                    let (_, body) = records::batch_body(bytes).map_err(invalid)?;
                    let records =
                        records::records(body.bytes(), header.record_count).map_err(invalid)?;
                    for record in &records {
                        let offset = header.base_offset + i64::from(record.offset_delta);
                        if offset < dirty_from {
                            continue;
                        }
                        if let Some(key) = record.key {
                            if !map.insert(key, offset) {
                                full = true;
                                break;
                            }
                        }
                    }
                }
                if full {
                    break;
                }
                whole_batches_end = Some(header.next_offset());
            }
            if !full {
                mapped_end = self.boundary(i);
                rewrite_count = i + 1;
                continue;
            }
            if i == first_dirty {
                // Not even one segment fits: clean up to the last whole batch that did.
                match whole_batches_end {
                    Some(end) if end > dirty_from => {
                        mapped_end = end;
                        rewrite_count = i + 1;
                    }
                    _ => {
                        return Err(io::Error::other(format!(
                            "log.cleaner.dedupe.buffer.size holds {} keys: too few for one batch \
                             at offset {dirty_from} of {}",
                            map.max_entries(),
                            self.dir.display()
                        )))
                    }
                }
            }
            break;
        }
        assert!(mapped_end > dirty_from, "a pass must make progress");
        Ok((mapped_end, rewrite_count))
    }

    /// Writes the cleaned batches of `inputs` to `file`, placing them in `seg`. Returns the
    /// bytes written.
    #[allow(clippy::too_many_arguments)]
    fn clean_group(
        &self,
        inputs: &[InputSegment],
        file: File,
        seg: &mut Segment,
        pass: &Pass<'_>,
        throttle: &mut Throttle,
        removed: &mut Removed,
        bytes_read: &mut u64,
    ) -> io::Result<u64> {
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut position = 0u32;
        // Where writeback was last started: the output is pushed to the disk as it is written,
        // so that the final fdatasync is short (a long one holds the ext4 journal, and every
        // acks=all fdatasync of the shards waits behind it).
        let mut writeback_from = 0u32;
        for input in inputs {
            let mut reader = BatchReader::new(input.file.clone(), input.base_offset, input.size);
            while let Some((header, _, bytes)) = reader.next_batch(throttle)? {
                *bytes_read += bytes.len() as u64;
                let outcome = rewrite::clean_batch(&header, bytes, pass, removed)?;
                let out: &[u8] = match &outcome {
                    Outcome::Copy => bytes,
                    Outcome::Rebuilt(rebuilt) => rebuilt,
                    Outcome::Dropped => continue,
                };
                let placed = BatchHeader::parse(out).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("cleaned batch: {e}"))
                })?;
                debug_assert!(crate::batch::validate_batch(out).is_ok());
                // place_batch asserts these; a damaged input is an error here, not a panic.
                if placed.base_offset < seg.next_offset
                    || placed.base_offset - seg.base_offset > i64::from(u32::MAX)
                {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "batch at offset {} out of order in segment {}",
                            placed.base_offset, input.base_offset
                        ),
                    ));
                }
                seg.place_batch(&placed, position, self.index_interval_bytes);
                writer.write_all(out)?;
                position += out.len() as u32;
                throttle.consume(out.len() as u64);
                if position - writeback_from >= WRITEBACK_STEP_BYTES {
                    writer.flush()?;
                    start_writeback(writer.get_ref(), writeback_from, position - writeback_from);
                    writeback_from = position;
                }
            }
        }
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        Ok(u64::from(position))
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to the disk, without
/// waiting (advisory: an error only means the final fdatasync does all the work).
fn start_writeback(file: &File, offset: u32, len: u32) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open for the
    // duration of the call (borrowed from `file`).
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            i64::from(offset),
            i64::from(len),
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Creates an output file. It must not exist: a second job on the same partition while one is
/// in flight fails here instead of overwriting the first one's output (the shard runs one job
/// per partition at a time; leftovers of a crash are removed when the log opens).
fn create_output(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Splits consecutive segments into groups that each become one output segment: a group grows
/// while its input bytes fit in `segment_bytes` and every offset of its range (up to the next
/// segment's base, `end` after the last) stays within a segment's 32-bit relative range
/// (Kafka's `groupSegmentsBySize`).
fn group_segments(segments: &[InputSegment], end: i64, segment_bytes: u32) -> Vec<Range<usize>> {
    let boundary = |i: usize| segments.get(i + 1).map_or(end, |s| s.base_offset);
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut bytes = u64::from(segments[start].size);
        while end < segments.len()
            && bytes + u64::from(segments[end].size) <= u64::from(segment_bytes)
            && boundary(end) - 1 - segments[start].base_offset <= i64::from(u32::MAX)
        {
            bytes += u64::from(segments[end].size);
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

impl CleanedSegments {
    /// The cleaner checkpoint the install will record.
    pub fn cleaned_up_to(&self) -> i64 {
        self.cleaned_up_to
    }

    /// What the pass removed.
    pub fn removed(&self) -> Removed {
        self.removed
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Removes the output files (a discarded result).
    /// Writes the swap marker durably (the commit of the swap).
    fn commit(&mut self) -> io::Result<()> {
        let replaced: Vec<i64> = self.replaced.iter().map(|s| s.base_offset).collect();
        let installed: Vec<i64> = self.outputs.iter().map(|s| s.base_offset).collect();
        let sizes: Vec<u32> = self.outputs.iter().map(|s| s.size).collect();
        // Marked first: if the marker made it but its directory fsync failed, discarding
        // must withdraw it.
        self.committed = true;
        crate::log::compaction::write_swap_marker(&self.dir, &replaced, &installed, &sizes)
    }

    /// Withdraws the commit: removes the swap marker. `false` if it is still there (then the
    /// outputs must stay for the next open to finish the swap).
    pub(crate) fn withdraw_commit(&mut self) -> bool {
        if !self.committed {
            return true;
        }
        let marker = self.dir.join(crate::log::compaction::SWAP_MARKER_FILE);
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", marker.display());
                false
            }
            _ => {
                self.committed = false;
                true
            }
        }
    }

    pub(crate) fn discard(&mut self) {
        if self.consumed {
            return;
        }
        self.consumed = true;
        // The marker goes before the outputs it names (a crash in between leaves only
        // uncommitted outputs, which `open` removes).
        if !self.withdraw_commit() {
            return;
        }
        for out in &self.outputs {
            // The last close of the unlinked file happens on the reaper thread.
            out.file.retire();
            for suffix in [CLEANED_SUFFIX, TXN_INDEX_CLEANED_SUFFIX] {
                let path = segment::file_path(&self.dir, out.base_offset, suffix);
                if let Err(e) = fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!("cannot remove {}: {e}", path.display());
                    }
                }
            }
        }
    }
}

impl Drop for CleanedSegments {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(base: i64, size: u32, _next: i64) -> InputSegment {
        let dir = std::env::temp_dir();
        InputSegment {
            base_offset: base,
            file: Arc::new(LogFile::open_dir(&dir).unwrap()),
            size,
            txn_entries: Vec::new(),
        }
    }

    #[test]
    fn groups_fit_in_a_segment_and_in_32_bit_offsets() {
        let segs = vec![
            input(0, 40, 10),
            input(10, 50, 20),
            input(20, 20, 30),
            input(30, 100, 40),
            input(40, 10, 50),
        ];
        assert_eq!(group_segments(&segs, 50, 100), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(group_segments(&segs, 50, 1000), vec![0..5]);
        // Offsets up to the end of the range must fit, gaps included.
        let far = vec![input(0, 1, 10), input(10, 1, 20)];
        assert_eq!(group_segments(&far, u32::MAX as i64 + 1, 1000), vec![0..2]);
        assert_eq!(
            group_segments(&far, u32::MAX as i64 + 2, 1000),
            vec![0..1, 1..2]
        );
    }
}
