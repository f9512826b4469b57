//! Aborted transactions, per segment (Kafka's `.txnindex` files).
//!
//! When an abort marker is appended, the transaction it ends is recorded here: its producer, the
//! offset of its first record in this partition, the offset of the abort marker, and the last
//! stable offset at that moment. A read_committed Fetch returns, for the range it sends, the
//! aborted transactions that overlap it ([`crate::log::PartitionLog::aborted_txns`]), and the
//! consumer drops their records. Entries live in the segment that holds the marker, so they go
//! with it (retention, DeleteRecords, topic deletion, the cleaner's merges) and a search from the
//! fetched segment onwards finds every transaction that ends at or after the fetch offset (a
//! transaction's records all lie at or before its marker, so no earlier segment can hold the
//! entry of a transaction that is still running at the fetch offset).
//!
//! The file is Kafka's layout: back-to-back 34-byte big-endian entries `version i16 (0),
//! producer_id i64, first_offset i64, last_offset i64, last_stable_offset i64`, in marker order.
//! Each segment keeps its entries in memory too (loaded when the log opens), so searches read no
//! file. An entry is written (page cache) when it is recorded, and the file is fdatasynced by the
//! partition's next flush, like the segment data it indexes; see
//! [`crate::log::PartitionLog::record_aborted_txn`] for how a marker's acknowledgement covers its
//! entry. When the log opens, a torn trailing entry is cut off and entries whose marker is past
//! the recovered end of their segment are dropped (the marker itself was lost with the tail).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::segment::{self, LogFile};

/// Suffix of a segment's aborted-transaction index: `<base offset>.txnindex`.
pub const TXN_INDEX_SUFFIX: &str = "txnindex";
/// Suffix of a cleaned output's index, written beside `<base>.cleaned` and renamed with it.
pub const TXN_INDEX_CLEANED_SUFFIX: &str = "txnindex.cleaned";
/// Bytes per entry on disk.
pub const TXN_ENTRY_BYTES: usize = 34;
/// The only entry version Kafka writes.
pub const TXN_ENTRY_VERSION: i16 = 0;

/// One aborted transaction of one producer in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
    /// The partition's last stable offset when the marker was written (Kafka keeps it; the
    /// fetch path does not need it).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry as stored in a `.txnindex` file.
    pub fn encode(&self) -> [u8; TXN_ENTRY_BYTES] {
        let mut out = [0u8; TXN_ENTRY_BYTES];
        out[0..2].copy_from_slice(&TXN_ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// Decodes one stored entry; `None` for an unknown version or an impossible range.
    pub fn decode(bytes: &[u8]) -> Option<AbortedTxn> {
        let bytes: &[u8; TXN_ENTRY_BYTES] = bytes.get(..TXN_ENTRY_BYTES)?.try_into().ok()?;
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        if i16::from_be_bytes([bytes[0], bytes[1]]) != TXN_ENTRY_VERSION {
            return None;
        }
        let txn = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        (txn.first_offset >= 0 && txn.first_offset <= txn.last_offset).then_some(txn)
    }

    /// Whether this transaction's records (`first_offset..=last_offset`, the marker included)
    /// hold `offset`.
    pub fn covers(&self, offset: i64) -> bool {
        (self.first_offset..=self.last_offset).contains(&offset)
    }
}

/// One segment's aborted transactions: every entry whose abort marker lies in the segment, in
/// marker order, and the open index file while entries are being appended.
#[derive(Debug, Default)]
pub struct TxnIndex {
    entries: Vec<AbortedTxn>,
    /// Opened on the first append and closed when the segment is sealed, so that only the
    /// active segment (in practice) holds a descriptor.
    file: Option<Arc<LogFile>>,
}

impl TxnIndex {
    /// An index holding `entries` (the cleaner's merged output), with no file open.
    pub fn with_entries(entries: Vec<AbortedTxn>) -> TxnIndex {
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].last_offset < w[1].last_offset),
            "aborted transactions are kept in marker order"
        );
        TxnIndex {
            entries,
            file: None,
        }
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Loads the index of the segment at `base_offset` whose batches end before `next_offset`.
    /// A missing file is an empty index. Whole valid entries are kept up to the first that is
    /// torn (a partial trailing entry), unreadable, out of marker order, or whose marker lies
    /// outside the segment (cut off with a torn tail of the log); the file is truncated there.
    /// Returns the index and how many bytes were cut.
    pub fn load(dir: &Path, base_offset: i64, next_offset: i64) -> io::Result<(TxnIndex, u64)> {
        let path = segment::file_path(dir, base_offset, TXN_INDEX_SUFFIX);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((TxnIndex::default(), 0)),
            Err(e) => return Err(e),
        };
        let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / TXN_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(TXN_ENTRY_BYTES) {
            let Some(txn) = AbortedTxn::decode(chunk) else {
                break;
            };
            let in_segment = (base_offset..next_offset).contains(&txn.last_offset);
            let in_order = entries
                .last()
                .is_none_or(|prev| prev.last_offset < txn.last_offset);
            if !in_segment || !in_order {
                break;
            }
            entries.push(txn);
        }
        let keep = (entries.len() * TXN_ENTRY_BYTES) as u64;
        let cut = bytes.len() as u64 - keep;
        if cut > 0 {
            tracing::warn!(
                file = %path.display(),
                kept_entries = entries.len(),
                cut_bytes = cut,
                "aborted-transaction index truncated (torn entry, or markers past the recovered log end)"
            );
            LogFile::open(&path, false)?.truncate(keep)?;
        }
        Ok((
            TxnIndex {
                entries,
                file: None,
            },
            cut,
        ))
    }

    /// Appends `txn` to the file (page cache) and to memory. Returns the file, which the caller
    /// must fdatasync before the entry counts as durable, and whether it was created now (then
    /// its directory entry needs an fsync too). Nothing is kept in memory if the write fails.
    pub fn append(
        &mut self,
        dir: &Path,
        base_offset: i64,
        txn: AbortedTxn,
    ) -> io::Result<(Arc<LogFile>, bool)> {
        if let Some(last) = self.entries.last() {
            assert!(
                txn.last_offset > last.last_offset,
                "abort markers are recorded in offset order: {} after {}",
                txn.last_offset,
                last.last_offset
            );
        }
        let mut created = false;
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let path = segment::file_path(dir, base_offset, TXN_INDEX_SUFFIX);
                created = !path.exists();
                let f = Arc::new(LogFile::open(&path, true)?);
                self.file = Some(f.clone());
                f
            }
        };
        let position = (self.entries.len() * TXN_ENTRY_BYTES) as u64;
        file.write_all_at(&txn.encode(), position)?;
        self.entries.push(txn);
        Ok((file, created))
    }

    /// Drops the entries whose marker is at or after `offset` (file truncated too). Returns
    /// whether any was dropped.
    pub fn truncate(&mut self, dir: &Path, base_offset: i64, offset: i64) -> io::Result<bool> {
        let keep = self.entries.partition_point(|t| t.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(false);
        }
        let len = (keep * TXN_ENTRY_BYTES) as u64;
        match &self.file {
            Some(f) => f.truncate(len)?,
            None => {
                let path = segment::file_path(dir, base_offset, TXN_INDEX_SUFFIX);
                match LogFile::open(&path, false) {
                    Ok(f) => f.truncate(len)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.entries.truncate(keep);
        Ok(true)
    }

    /// Closes the file (the segment is sealed; a late append reopens it).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Pushes onto `out` the entries with a marker at or after `from_offset` and a first
    /// offset below `upper_offset`.
    pub fn collect(&self, from_offset: i64, upper_offset: i64, out: &mut Vec<AbortedTxn>) {
        let start = self
            .entries
            .partition_point(|t| t.last_offset < from_offset);
        out.extend(
            self.entries[start..]
                .iter()
                .filter(|t| t.first_offset < upper_offset),
        );
    }

    /// Writes `entries` as a complete index file at `path` and fdatasyncs it (the cleaner's
    /// output, before the swap commits).
    pub fn write_file(path: &Path, entries: &[AbortedTxn]) -> io::Result<()> {
        use std::io::Write;
        let mut bytes = Vec::with_capacity(entries.len() * TXN_ENTRY_BYTES);
        for e in entries {
            bytes.extend_from_slice(&e.encode());
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(&bytes)?;
        file.sync_data()
    }
}

impl crate::log::PartitionLog {
    /// Records an aborted transaction whose abort marker (at `txn.last_offset`) was appended
    /// (its write completed). Called on the owner shard in marker order (asserted). The entry
    /// goes to the index of the segment that holds the marker, in the page cache at once;
    /// the partition's next flush fdatasyncs it, and [`crate::partition::Partition::wait_durable`]
    /// for any offset past the marker waits for that too. So to acknowledge a marker at
    /// `AckPoint::Durable` with its entry covered: append it at `AckPoint::Written`, record the
    /// entry, then `wait_durable(marker_offset + 1)`. An I/O error leaves nothing recorded
    /// (Kafka answers KAFKA_STORAGE_ERROR).
    pub fn record_aborted_txn(&mut self, txn: AbortedTxn) -> io::Result<()> {
        assert!(
            txn.first_offset <= txn.last_offset,
            "an aborted transaction starts at or before its marker: {txn:?}"
        );
        // Its own write completed, but an earlier append may still be in flight (writes end in
        // any order), so the marker may lie past the written mark: only its offset must be
        // assigned.
        assert!(
            txn.last_offset < self.next_offset,
            "the abort marker at {} is not appended (next offset {})",
            txn.last_offset,
            self.next_offset
        );
        if let Some(last) = self.last_aborted_marker() {
            assert!(
                txn.last_offset > last,
                "abort markers are recorded in offset order: {} after {last}",
                txn.last_offset
            );
        }
        let Some(i) = self
            .segments
            .partition_point(|s| s.base_offset <= txn.last_offset)
            .checked_sub(1)
        else {
            // The marker's segment is gone already (DeleteRecords or retention passed it):
            // its entry would have gone with it.
            return Ok(());
        };
        let base = self.segments[i].base_offset;
        let (file, created) = self.segments[i].txn_index.append(&self.dir, base, txn)?;
        self.note_txn_index_write(file, created, txn.last_offset);
        Ok(())
    }

    /// The offset of the last abort marker recorded, if any entry is left.
    fn last_aborted_marker(&self) -> Option<i64> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.txn_index.entries().last())
            .map(|t| t.last_offset)
    }

    /// The aborted transactions that overlap `[from_offset, upper_offset)`: those whose marker is
    /// at or after `from_offset` and whose first offset is below `upper_offset`, in marker order.
    /// Searches the segment that holds `from_offset` and every later one (a transaction's marker
    /// may lie segments after its first record); reads no file.
    pub fn aborted_txns(&self, from_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        if upper_offset <= from_offset {
            return out;
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= from_offset)
            .saturating_sub(1);
        for seg in &self.segments[first..] {
            seg.txn_index.collect(from_offset, upper_offset, &mut out);
        }
        out
    }

    /// Forgets the entries whose marker is at or after `offset` (producer-state recovery replays
    /// the log from a snapshot at `offset` and records them again). The files are truncated
    /// (not fsynced: a crash that undoes it is followed by the same recovery).
    pub fn truncate_aborted_txns(&mut self, offset: i64) -> io::Result<()> {
        for seg in self.segments.iter_mut().rev() {
            let base = seg.base_offset;
            let changed = seg.txn_index.truncate(&self.dir, base, offset)?;
            if !changed && seg.txn_index.entries().last().is_some() {
                // Entries are in marker order across segments: nothing earlier is affected.
                break;
            }
        }
        self.forget_unsynced_txn_entries(offset);
        Ok(())
    }
}

impl crate::partition::Partition {
    /// [`crate::log::PartitionLog::record_aborted_txn`] on this partition's log.
    pub fn record_aborted_txn(&self, txn: AbortedTxn) -> std::io::Result<()> {
        self.log_mut().record_aborted_txn(txn)
    }

    /// [`crate::log::PartitionLog::aborted_txns`] on this partition's log.
    pub fn aborted_txns(&self, from_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        self.log().aborted_txns(from_offset, upper_offset)
    }

    /// [`crate::log::PartitionLog::truncate_aborted_txns`] on this partition's log.
    pub fn truncate_aborted_txns(&self, offset: i64) -> std::io::Result<()> {
        self.log_mut().truncate_aborted_txns(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let t = AbortedTxn {
            producer_id: 0x0102030405060708,
            first_offset: 7,
            last_offset: 9,
            last_stable_offset: 5,
        };
        let bytes = t.encode();
        assert_eq!(&bytes[0..2], &[0, 0], "version 0");
        assert_eq!(
            &bytes[2..10],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "producer id, big-endian"
        );
        assert_eq!(&bytes[18..26], &9i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(t));
        let mut v1 = bytes;
        v1[1] = 1;
        assert_eq!(AbortedTxn::decode(&v1), None, "unknown version");
        assert_eq!(AbortedTxn::decode(&bytes[..33]), None, "short");
        assert_eq!(
            AbortedTxn::decode(&txn(1, 9, 7).encode()),
            None,
            "backwards"
        );
    }

    #[test]
    fn append_truncate_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::default();
        for t in [txn(1, 0, 3), txn(2, 1, 5), txn(1, 6, 8)] {
            index.append(dir.path(), 0, t).unwrap();
        }
        let path = segment::file_path(dir.path(), 0, TXN_INDEX_SUFFIX);
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * 34);
        let mut out = Vec::new();
        index.collect(4, 100, &mut out);
        assert_eq!(out, vec![txn(2, 1, 5), txn(1, 6, 8)]);
        out.clear();
        index.collect(0, 1, &mut out);
        assert_eq!(
            out,
            vec![txn(1, 0, 3)],
            "first offset below the upper bound only"
        );
        assert!(index.truncate(dir.path(), 0, 5).unwrap());
        assert_eq!(index.entries(), &[txn(1, 0, 3)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), 34);
        let (loaded, cut) = TxnIndex::load(dir.path(), 0, 100).unwrap();
        assert_eq!((loaded.entries(), cut), (&[txn(1, 0, 3)][..], 0));
    }

    #[test]
    fn a_torn_trailing_entry_is_cut_and_markers_past_the_end_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment::file_path(dir.path(), 10, TXN_INDEX_SUFFIX);
        let mut bytes = Vec::new();
        for t in [txn(1, 10, 12), txn(1, 13, 20), txn(2, 14, 30)] {
            bytes.extend_from_slice(&t.encode());
        }
        bytes.extend_from_slice(&txn(3, 31, 33).encode()[..20]);
        fs::write(&path, &bytes).unwrap();
        let (index, cut) = TxnIndex::load(dir.path(), 10, 40).unwrap();
        assert_eq!(index.entries().len(), 3);
        assert_eq!(cut, 20);
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * 34);
        // The log's tail was cut at 25: the marker at 30 is gone, and so is its entry.
        let (index, cut) = TxnIndex::load(dir.path(), 10, 25).unwrap();
        assert_eq!(index.entries(), &[txn(1, 10, 12), txn(1, 13, 20)]);
        assert_eq!(cut, 34);
        // Garbage is cut like a torn entry, never a panic.
        fs::write(&path, [0xffu8; 50]).unwrap();
        let (index, cut) = TxnIndex::load(dir.path(), 10, 25).unwrap();
        assert!(index.is_empty());
        assert_eq!(cut, 50);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }
}
