//! Compaction's part of the partition log: choosing what to clean, swapping cleaned segments in
//! for the ones they replace, crash-safely, and completing a swap that a crash interrupted when
//! the log opens.
//!
//! The swap, for a result that replaces segments `R` with outputs `N` (each output is named by
//! the base offset of the first segment it replaces, so `N ⊆ R`):
//! 1. (cleaner thread) every output is written to `<base>.cleaned` (its aborted-transaction
//!    index, if it has entries, to `<base>.txnindex.cleaned`) and fdatasynced, the
//!    recovery-point checkpoint fsynced (recovery must keep trusting the replaced range: a
//!    cleaned segment may end before the next one begins, which past the recovery point reads
//!    as a torn tail) and the directory fsynced;
//! 2. (cleaner thread) the commit: the swap marker [`SWAP_MARKER_FILE`] naming `R`, `N` and the
//!    outputs' sizes is written to a temporary file, fsynced, renamed into place and the
//!    directory fsynced. Before this point a crash leaves the old segments (the `.cleaned` files
//!    are removed when the log opens); after it, the new ones (the log's open finishes the
//!    swap). If the shard then finds the log changed meanwhile (retention or DeleteRecords
//!    removed a segment the job read), it withdraws the commit (marker first, then outputs); a
//!    crash before that finishes a stale swap, which is harmless: the outputs hold cleaned
//!    copies of segments whose removal already moved the (checkpointed) log start past them;
//! 3. (shard) each `<base>.cleaned` is renamed over `<base>.log` (and `<base>.txnindex.cleaned`
//!    over `<base>.txnindex`);
//! 4. (shard) the segments of `R` not in `N` are deleted, and the outputs' index files written;
//! 5. (shard) the marker is removed; the directory fsync that makes that durable runs on the
//!    reaper thread.
//!
//! So the shard does renames, unlinks and small writes, never an fsync: a directory fsync waits
//! for a journal commit, and doing them on the shard stalled every partition it serves (p99
//! produce latency 2.6x while the cleaner ran, `perf/compaction-latency.sh`). No segment data is
//! read or written there. `open` refuses (rather than guesses) a marker whose outputs are
//! neither waiting as `.cleaned` nor in place with their recorded size.
//!
//! Every step after the commit is idempotent, so finishing a swap twice is harmless. Reads in
//! flight hold `Arc<LogFile>`s of the old files, which stay readable until they are dropped.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::PartitionLog;
use crate::cleaner::{CleanedSegments, CleaningJob, CleaningReport, InputSegment, CLEANED_SUFFIX};
use crate::segment::{self, LogFile, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::txn_index::{TXN_INDEX_CLEANED_SUFFIX, TXN_INDEX_SUFFIX};

/// Per-partition checkpoint of the cleaner (Kafka's `cleaner-offset-checkpoint`, kept per
/// partition here): every offset below it has been through a cleaning pass; what follows is
/// dirty.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// The marker that commits a swap: which segments are replaced and which outputs replace them.
pub const SWAP_MARKER_FILE: &str = "cleaner-swap";

/// The steps of a swap, for tests that stop after one of them (a simulated crash).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SwapStep {
    /// Nothing of the swap done: only the `.cleaned` files exist.
    NotCommitted,
    /// The marker is durable.
    Committed,
    /// Some of the outputs (this many) are renamed over the old segments.
    Renamed(usize),
    /// All outputs renamed, the replaced segments deleted and new index files written.
    OldDeleted,
    /// The marker is removed: the swap is complete.
    Done,
}

impl PartitionLog {
    /// On the shard: whether this log is due for cleaning at `now_ms` under its config, and if
    /// so the job that cleans it. `None` for logs without the compact policy.
    ///
    /// The cleanable range runs from the first segment to the first uncleanable offset: the
    /// earliest of the active segment's base, the first segment whose newest timestamp is within
    /// `min.compaction.lag.ms` of `now_ms`, the recovery point (only segments known to be
    /// fully durable are cleaned: recovery treats the ones after it as a possibly torn tail),
    /// and `first_unstable_offset`, the first record of the oldest transaction still open on
    /// the partition (`None`: none is open), as in Kafka: whether an open transaction's records
    /// stay or go is not known yet.
    /// The log is due when its dirty share (bytes of segments at or after the cleaner
    /// checkpoint) is above `min.cleanable.dirty.ratio`, or when dirty data has waited longer
    /// than `max.compaction.lag.ms`. Reads only the small checkpoint file.
    pub fn plan_cleaning(
        &self,
        now_ms: i64,
        first_unstable_offset: Option<i64>,
    ) -> Option<CleaningJob> {
        let config = &self.config;
        if !config.cleanup_policy.compact || self.failed {
            return None;
        }
        let last = self.segments.len() - 1;
        let mut uncleanable = self.segments[last].base_offset.min(self.recovery_point);
        if let Some(unstable) = first_unstable_offset {
            uncleanable = uncleanable.min(unstable);
        }
        if config.min_compaction_lag_ms > 0 {
            let lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
            if let Some(young) = self.segments[..last]
                .iter()
                .find(|s| s.max_timestamp > now_ms.saturating_sub(lag))
            {
                uncleanable = uncleanable.min(young.base_offset);
            }
        }
        // Segments whose whole range lies below the first uncleanable offset.
        let count = (0..last)
            .take_while(|&i| self.segments[i + 1].base_offset <= uncleanable)
            .count();
        if count == 0 {
            return None;
        }
        let end = self.segments[count].base_offset;
        let (checkpoint, horizon) = self.cleaner_state;
        let checkpoint = checkpoint.clamp(self.segments[0].base_offset, end);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut first_dirty = None;
        for i in 0..count {
            let size = u64::from(self.segments[i].size);
            if self.segments[i + 1].base_offset <= checkpoint {
                clean_bytes += size;
            } else {
                dirty_bytes += size;
                first_dirty.get_or_insert(i);
            }
        }
        let Some(first_dirty) = first_dirty else {
            // Nothing new, but a kept tombstone's delete horizon has passed: clean to remove it.
            if horizon.is_some_and(|h| h <= now_ms) {
                return Some(self.job(0.0, count, checkpoint, end, now_ms, false));
            }
            return None;
        };
        let total = clean_bytes + dirty_bytes;
        let dirty_ratio = if total == 0 {
            1.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        // max.compaction.lag.ms: the first dirty segment's first batch is the oldest dirty data
        // (its time-index entry holds that batch's max timestamp).
        let seg = &self.segments[first_dirty];
        let oldest_dirty = seg
            .time_index
            .entries()
            .first()
            .map_or(seg.max_timestamp, |e| e.timestamp);
        let forced_by_max_lag = config.max_compaction_lag_ms != u64::MAX
            && oldest_dirty >= 0
            && now_ms.saturating_sub(oldest_dirty)
                > i64::try_from(config.max_compaction_lag_ms).unwrap_or(i64::MAX);
        // Kafka cleans a log whose ratio is strictly above the minimum.
        if !(dirty_ratio > config.min_cleanable_dirty_ratio || forced_by_max_lag) {
            return None;
        }
        Some(self.job(
            dirty_ratio,
            count,
            checkpoint,
            end,
            now_ms,
            forced_by_max_lag,
        ))
    }

    fn job(
        &self,
        dirty_ratio: f64,
        count: usize,
        checkpoint: i64,
        end: i64,
        now_ms: i64,
        forced_by_max_lag: bool,
    ) -> CleaningJob {
        let config = &self.config;
        let segments = self.segments[..count]
            .iter()
            .map(|s| InputSegment {
                base_offset: s.base_offset,
                file: s.file.clone(),
                size: s.size,
                txn_entries: s.txn_index.entries().to_vec(),
            })
            .collect();
        let aborted = self.aborted_txns(self.segments[0].base_offset, end);
        CleaningJob {
            dirty_ratio,
            dir: self.dir.clone(),
            segments,
            first_dirty_offset: checkpoint,
            first_uncleanable_offset: end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            segment_bytes: config.segment_bytes,
            index_interval_bytes: config.index_interval_bytes,
            forced_by_max_lag,
            aborted,
        }
    }

    /// The cleaner checkpoint: the first offset no cleaning pass has covered yet.
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_state.0.max(self.segments[0].base_offset)
    }

    /// On the shard: swaps a finished job's segments in (crash-safely), or discards them when
    /// the log changed meanwhile (retention or DeleteRecords removed a segment it read, or
    /// another pass replaced one). Renames, unlinks and small writes, no fsync; no segment data
    /// is read or written here.
    pub fn install_cleaned(&mut self, cleaned: CleanedSegments) -> io::Result<CleaningReport> {
        self.install_cleaned_until(cleaned, SwapStep::Done)
    }

    /// [`PartitionLog::install_cleaned`] that stops after `stop` and leaves the files as they
    /// are, as a crash there would. For crash tests: drop the log afterwards and reopen it.
    #[doc(hidden)]
    pub fn install_cleaned_until(
        &mut self,
        mut cleaned: CleanedSegments,
        stop: SwapStep,
    ) -> io::Result<CleaningReport> {
        let mut report = CleaningReport {
            segments_before: cleaned.replaced.len(),
            segments_after: cleaned.outputs.len(),
            bytes_before: cleaned.replaced.iter().map(|s| u64::from(s.size)).sum(),
            bytes_after: cleaned.outputs.iter().map(|s| u64::from(s.size)).sum(),
            records_removed: cleaned.removed.records,
            tombstones_removed: cleaned.removed.tombstones,
            keyless_removed: cleaned.removed.keyless,
            cleaned_up_to: cleaned.cleaned_up_to,
            installed: false,
        };
        let position = if self.failed {
            None
        } else {
            self.position_of(&cleaned.replaced)
        };
        // An abort recorded after the job was planned, for records it read: the pass may have
        // kept them (and let them hide committed records). Cleaned again next time.
        let (from, upper) = cleaned.aborted_range;
        let position = position.filter(|_| self.aborted_txns(from, upper) == cleaned.aborted);
        let Some(first) = position else {
            cleaned.discard();
            return Ok(report);
        };
        if stop == SwapStep::NotCommitted {
            // The crash comes before the commit: the .cleaned files stay behind.
            cleaned.withdraw_commit();
            cleaned.consumed = true;
            return Ok(report);
        }
        // The cleaner thread committed the swap (the marker is durable); the files belong to
        // the log now: a failure below is finished by the next open.
        assert!(
            cleaned.committed,
            "a cleaned result is committed before it is installed"
        );
        let replaced: Vec<i64> = cleaned.replaced.iter().map(|s| s.base_offset).collect();
        let installed: Vec<i64> = cleaned.outputs.iter().map(|s| s.base_offset).collect();
        cleaned.consumed = true;
        if stop == SwapStep::Committed {
            return Ok(report);
        }
        let outputs = std::mem::take(&mut cleaned.outputs);
        let new_segments = match self.finish_swap(outputs, &replaced, &installed, stop) {
            Ok(Some(segments)) => segments,
            Ok(None) => return Ok(report),
            Err(e) => {
                // The files are half swapped and only the next open can finish: like Kafka
                // taking the log dir offline, the log refuses appends and further cleaning.
                self.failed = true;
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "finishing the cleaner swap in {} failed: {e}",
                        self.dir.display()
                    ),
                ));
            }
        };
        let count = replaced.len();
        for old in self.segments.splice(first..first + count, new_segments) {
            // Unlinked or renamed over: the last close, which frees the blocks (slow for a big
            // file), happens on the reaper thread whenever the last read holding it is done.
            old.file.retire();
        }
        self.cleaner_state = (cleaned.cleaned_up_to, cleaned.removed.earliest_horizon);
        write_cleaner_checkpoint(
            &self.dir,
            cleaned.cleaned_up_to,
            cleaned.removed.earliest_horizon,
        )?;
        report.installed = true;
        Ok(report)
    }

    /// Steps 3 to 5 of the swap: the outputs renamed into place, the replaced segments deleted,
    /// index files written, the marker removed. Returns the new segments, or `None` when a test
    /// stopped it after `stop`.
    fn finish_swap(
        &self,
        outputs: Vec<crate::segment::Segment>,
        replaced: &[i64],
        installed: &[i64],
        stop: SwapStep,
    ) -> io::Result<Option<Vec<crate::segment::Segment>>> {
        for (n, out) in outputs.iter().enumerate() {
            if stop == SwapStep::Renamed(n) {
                return Ok(None);
            }
            // The index first: once the `.log` is in place the output counts as renamed.
            if !out.txn_index.is_empty() {
                fs::rename(
                    segment::file_path(&self.dir, out.base_offset, TXN_INDEX_CLEANED_SUFFIX),
                    segment::file_path(&self.dir, out.base_offset, TXN_INDEX_SUFFIX),
                )?;
            }
            fs::rename(
                segment::file_path(&self.dir, out.base_offset, CLEANED_SUFFIX),
                segment::file_path(&self.dir, out.base_offset, LOG_SUFFIX),
            )?;
        }
        for base in replaced {
            if !installed.contains(base) {
                segment::delete_files(&self.dir, *base)?;
            }
        }
        let mut new_segments = Vec::with_capacity(outputs.len());
        for mut out in outputs {
            // The same inode, under its final name.
            out.file = Arc::new(LogFile::open(
                &segment::file_path(&self.dir, out.base_offset, LOG_SUFFIX),
                false,
            )?);
            out.seal(&self.dir)?;
            new_segments.push(out);
        }
        if stop == SwapStep::OldDeleted {
            return Ok(None);
        }
        fs::remove_file(self.dir.join(SWAP_MARKER_FILE))?;
        // The removal is made durable off the shard (a directory fsync waits for a journal
        // commit). Until it is, a power cut can bring the marker back; `open` then finishes the
        // swap again, which is idempotent while the outputs stand as they were installed.
        crate::reaper::sync_dir(self.dir.clone());
        Ok(Some(new_segments))
    }

    /// Where the segments a job read sit in the log now, if they are all still there, unchanged
    /// and sealed.
    fn position_of(&self, replaced: &[InputSegment]) -> Option<usize> {
        let first = replaced.first()?;
        let at = self
            .segments
            .iter()
            .position(|s| s.base_offset == first.base_offset)?;
        // The active segment is never replaced.
        if at + replaced.len() >= self.segments.len() {
            return None;
        }
        let same = replaced.iter().zip(&self.segments[at..]).all(|(r, s)| {
            r.base_offset == s.base_offset
                && Arc::ptr_eq(&r.file, &s.file)
                && r.size == s.size
                && r.txn_entries == s.txn_index.entries()
        });
        same.then_some(at)
    }
}

/// The cleaner checkpoint file: `<first dirty offset>[ <earliest delete horizon>]`.
pub(super) fn read_cleaner_checkpoint(dir: &Path) -> (i64, Option<i64>) {
    let text = fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)).unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse::<i64>().ok());
    let offset = fields.next().flatten().unwrap_or(0);
    (offset, fields.next().flatten())
}

/// Writes the cleaner checkpoint atomically (temporary file and rename). Not fsynced: losing it
/// only makes the next pass clean more than it needs to.
fn write_cleaner_checkpoint(dir: &Path, offset: i64, horizon: Option<i64>) -> io::Result<()> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let tmp = path.with_extension("tmp");
    let text = match horizon {
        Some(h) => format!("{offset} {h}\n"),
        None => format!("{offset}\n"),
    };
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path)
}

fn encode_marker(replaced: &[i64], installed: &[i64], sizes: &[u32]) -> String {
    fn list<T: ToString>(v: &[T]) -> String {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
    }
    format!(
        "replaced {}\ninstalled {}\nsizes {}\n",
        list(replaced),
        list(installed),
        list(sizes)
    )
}

/// A swap marker: the replaced segments' bases, the outputs' bases and their sizes in bytes.
type Marker = (Vec<i64>, Vec<i64>, Vec<u64>);

fn decode_marker(text: &str) -> Option<Marker> {
    let mut lines = text.lines();
    let mut field = |name: &str| -> Option<Vec<i64>> {
        let rest = lines.next()?.strip_prefix(name)?;
        rest.split_whitespace().map(|b| b.parse().ok()).collect()
    };
    let replaced = field("replaced")?;
    let installed = field("installed")?;
    let sizes = field("sizes")?;
    let ok = !replaced.is_empty()
        && installed.iter().all(|b| replaced.contains(b))
        && sizes.len() == installed.len()
        && sizes.iter().all(|&s| s >= 0);
    ok.then(|| {
        (
            replaced,
            installed,
            sizes.iter().map(|&s| s as u64).collect(),
        )
    })
}

/// The commit of a swap (on the cleaner thread): the marker naming the replaced segments, the
/// outputs and their sizes, written durably.
pub(crate) fn write_swap_marker(
    dir: &Path,
    replaced: &[i64],
    installed: &[i64],
    sizes: &[u32],
) -> io::Result<()> {
    write_durably(
        dir,
        SWAP_MARKER_FILE,
        encode_marker(replaced, installed, sizes).as_bytes(),
    )
}

/// Writes a small file so that after a crash it is either absent (or old) or complete: a
/// temporary file, fsynced, renamed into place, the directory fsynced.
fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    LogFile::open_dir(dir)?.sync_blocking()
}

/// Called by [`PartitionLog::open`] before it lists the segments: finishes a swap whose marker
/// is there (the commit happened), and removes the outputs of a swap that never committed.
pub(super) fn recover_swap(dir: &Path) -> io::Result<()> {
    let marker = dir.join(SWAP_MARKER_FILE);
    match fs::read_to_string(&marker) {
        Ok(text) => {
            let (replaced, installed, sizes) = decode_marker(&text).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unreadable cleaner swap marker {}", marker.display()),
                )
            })?;
            // Every output must be there, still waiting or already renamed (then its `.log` has
            // the output's size). Anything else is not a state a swap leaves: refuse to guess
            // rather than delete the replaced segments.
            for (&base, &size) in installed.iter().zip(&sizes) {
                let waiting = segment::file_path(dir, base, CLEANED_SUFFIX).exists();
                let renamed = fs::metadata(segment::file_path(dir, base, LOG_SUFFIX))
                    .is_ok_and(|m| m.len() == size);
                if !waiting && !renamed {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "cleaner swap marker {} names output {base} ({size} bytes), which is \
                             missing",
                            marker.display()
                        ),
                    ));
                }
            }
            for &base in &installed {
                // The aborted-transaction index first, as the swap does (an output without
                // entries has none; one renamed before the crash is in place).
                match fs::rename(
                    segment::file_path(dir, base, TXN_INDEX_CLEANED_SUFFIX),
                    segment::file_path(dir, base, TXN_INDEX_SUFFIX),
                ) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                let cleaned = segment::file_path(dir, base, CLEANED_SUFFIX);
                match fs::rename(&cleaned, segment::file_path(dir, base, LOG_SUFFIX)) {
                    // Missing: renamed before the crash.
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                // Whatever index files are there may describe the old segment: rebuild them.
                remove_if_exists(&segment::file_path(dir, base, INDEX_SUFFIX))?;
                remove_if_exists(&segment::file_path(dir, base, TIME_INDEX_SUFFIX))?;
            }
            for &base in &replaced {
                if !installed.contains(&base) {
                    segment::delete_files(dir, base)?;
                }
            }
            LogFile::open_dir(dir)?.sync_blocking()?;
            fs::remove_file(&marker)?;
            LogFile::open_dir(dir)?.sync_blocking()?;
            tracing::info!(dir = %dir.display(), replaced = ?replaced, installed = ?installed, "finished a cleaner swap that a crash interrupted");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Outputs of a pass that never committed.
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name_str = name.to_string_lossy();
        if segment::parse_file_name(&name_str, CLEANED_SUFFIX).is_some()
            || segment::parse_file_name(&name_str, TXN_INDEX_CLEANED_SUFFIX).is_some()
        {
            fs::remove_file(dir.join(&name))?;
            tracing::info!(dir = %dir.display(), file = ?name, "removed the output of a cleaner pass that a crash interrupted");
        }
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_nonsense() {
        let text = encode_marker(&[0, 10, 20], &[0, 20], &[100, 0]);
        assert_eq!(
            decode_marker(&text),
            Some((vec![0, 10, 20], vec![0, 20], vec![100, 0]))
        );
        assert_eq!(decode_marker("replaced 0 1\ninstalled 5\nsizes 1\n"), None);
        assert_eq!(decode_marker("replaced 0 1\ninstalled 0\nsizes\n"), None);
        assert_eq!(decode_marker("replaced\ninstalled\nsizes\n"), None);
        assert_eq!(decode_marker("garbage"), None);
    }
}
