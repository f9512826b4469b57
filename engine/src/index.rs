//! Sparse per-segment indexes: offset → file position, and timestamp → offset.
//!
//! Both are kept in memory (a segment's index is small: one entry per `index.interval.bytes` of
//! log) and written to disk beside the segment when it is sealed. The on-disk form is Kafka's:
//! big-endian fixed-size entries, offsets relative to the segment's base offset. Index files are a
//! cache of what the log itself says: on recovery a missing or implausible index is rebuilt from the
//! log, so they are never fsynced.

use std::fmt;

/// Bytes per offset index entry on disk: relative offset (u32) + file position (u32).
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes per time index entry on disk: timestamp (i64) + relative offset (u32).
pub const TIME_ENTRY_BYTES: usize = 12;

/// Why an index file could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// The file's length is not a whole number of entries.
    PartialEntry { bytes: usize },
    /// Entries are not strictly increasing.
    NotMonotonic { entry: usize },
    /// An entry points past the end of the segment.
    PastEnd { entry: usize },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::PartialEntry { bytes } => {
                write!(f, "index length {bytes} is not a whole number of entries")
            }
            IndexError::NotMonotonic { entry } => {
                write!(f, "index entry {entry} does not increase")
            }
            IndexError::PastEnd { entry } => {
                write!(f, "index entry {entry} points past the segment's end")
            }
        }
    }
}

impl std::error::Error for IndexError {}

/// One offset index entry: the batch starting at `position` has base offset `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Sparse offset index of one segment. Every entry points at the start of a batch, so any entry is
/// a batch boundary: both lookups (by offset and by position) land on boundaries.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// Adds an entry. Entries must grow in both offset and position: the invariant is asserted
    /// because a violation would make every later lookup wrong.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset && position > last.position,
                "offset index must grow: last {last:?}, new ({relative_offset}, {position})"
            );
        }
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// The last entry whose offset is `<= relative_offset`; `None` means "scan from position 0".
    pub fn floor_by_offset(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry whose position is `<= position`; `None` means "scan from position 0".
    pub fn floor_by_position(&self, position: u32) -> Option<OffsetEntry> {
        let n = self.entries.partition_point(|e| e.position <= position);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops every entry at or past `position` (used when a segment's tail is truncated).
    pub fn truncate_to_position(&mut self, position: u32) {
        let n = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(n);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes an index file and checks it is plausible for a segment of `segment_bytes`.
    pub fn decode(bytes: &[u8], segment_bytes: u32) -> Result<Self, IndexError> {
        if bytes.len() % OFFSET_ENTRY_BYTES != 0 {
            return Err(IndexError::PartialEntry { bytes: bytes.len() });
        }
        let mut index = OffsetIndex::new();
        for (i, chunk) in bytes.chunks_exact(OFFSET_ENTRY_BYTES).enumerate() {
            let relative_offset = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes"));
            let position = u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes"));
            if position >= segment_bytes {
                return Err(IndexError::PastEnd { entry: i });
            }
            if let Some(last) = index.entries.last() {
                if relative_offset <= last.relative_offset || position <= last.position {
                    return Err(IndexError::NotMonotonic { entry: i });
                }
            }
            index.entries.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        Ok(index)
    }
}

/// One time index entry: the batch at `relative_offset` is where the segment's running max
/// timestamp first reached `timestamp`; every batch before it has a smaller max timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Sparse time index of one segment, sampled at the offset index's interval with an entry only
/// when the running max timestamp has grown, plus a final entry when the segment is sealed, so
/// the last entry of a sealed segment holds its max timestamp and where it was reached.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Adds an entry if `timestamp` is larger than the last one (the index is monotonic in both).
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(last) if timestamp <= last.timestamp => {}
            Some(last) => {
                assert!(
                    relative_offset > last.relative_offset,
                    "time index offsets must grow"
                );
                self.entries.push(TimeEntry {
                    timestamp,
                    relative_offset,
                });
            }
            None => self.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            }),
        }
    }

    /// Where a search for the first batch with max timestamp `>= timestamp` may start: the
    /// offset of the last entry whose timestamp is `<= timestamp` (every batch before it has a
    /// smaller max timestamp, so none can match), or `None` to start at the segment's beginning.
    pub fn search_start(&self, timestamp: i64) -> Option<u32> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        n.checked_sub(1).map(|i| self.entries[i].relative_offset)
    }

    /// The segment's max timestamp and the offset where it was reached, if any entry exists.
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(n);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Decodes a time index file; `relative_end` is the segment's next relative offset.
    pub fn decode(bytes: &[u8], relative_end: u32) -> Result<Self, IndexError> {
        if bytes.len() % TIME_ENTRY_BYTES != 0 {
            return Err(IndexError::PartialEntry { bytes: bytes.len() });
        }
        let mut index = TimeIndex::new();
        for (i, chunk) in bytes.chunks_exact(TIME_ENTRY_BYTES).enumerate() {
            let timestamp = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
            let relative_offset = u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
            if relative_offset >= relative_end {
                return Err(IndexError::PastEnd { entry: i });
            }
            if let Some(last) = index.entries.last() {
                if timestamp <= last.timestamp || relative_offset <= last.relative_offset {
                    return Err(IndexError::NotMonotonic { entry: i });
                }
            }
            index.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn floor_lookups() {
        let mut idx = OffsetIndex::new();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(25, 9000);
        assert_eq!(idx.floor_by_offset(0).unwrap().position, 0);
        assert_eq!(idx.floor_by_offset(9).unwrap().position, 0);
        assert_eq!(idx.floor_by_offset(10).unwrap().position, 4096);
        assert_eq!(idx.floor_by_offset(1000).unwrap().position, 9000);
        assert_eq!(idx.floor_by_position(4095).unwrap().relative_offset, 0);
        assert_eq!(idx.floor_by_position(9000).unwrap().relative_offset, 25);
        idx.truncate_to_position(4096);
        assert_eq!(idx.len(), 1);
        assert!(OffsetIndex::new().floor_by_offset(3).is_none());
    }

    #[test]
    #[should_panic(expected = "offset index must grow")]
    fn non_monotonic_push_is_refused() {
        let mut idx = OffsetIndex::new();
        idx.push(5, 100);
        idx.push(5, 200);
    }

    #[test]
    fn damaged_files_are_rejected() {
        let mut idx = OffsetIndex::new();
        idx.push(0, 0);
        idx.push(3, 100);
        let bytes = idx.encode();
        assert!(OffsetIndex::decode(&bytes, 200).is_ok());
        assert_eq!(
            OffsetIndex::decode(&bytes[..9], 200).unwrap_err(),
            IndexError::PartialEntry { bytes: 9 }
        );
        assert_eq!(
            OffsetIndex::decode(&bytes, 100).unwrap_err(),
            IndexError::PastEnd { entry: 1 }
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(
            OffsetIndex::decode(&swapped, 200).unwrap_err(),
            IndexError::NotMonotonic { entry: 1 }
        );
    }

    #[test]
    fn time_index_search() {
        let mut t = TimeIndex::new();
        t.maybe_push(100, 0);
        t.maybe_push(90, 3); // not larger: skipped
        t.maybe_push(200, 5);
        t.maybe_push(300, 9);
        assert_eq!(t.len(), 3);
        assert_eq!(t.search_start(50), None);
        assert_eq!(t.search_start(100), Some(0));
        assert_eq!(t.search_start(199), Some(0));
        assert_eq!(t.search_start(250), Some(5));
        assert_eq!(t.search_start(1000), Some(9));
        let decoded = TimeIndex::decode(&t.encode(), 10).unwrap();
        assert_eq!(decoded.entries(), t.entries());
        assert!(TimeIndex::decode(&t.encode(), 9).is_err());
    }

    proptest! {
        /// Lookups agree with a linear scan over any monotonic index, and encoding round-trips.
        #[test]
        fn lookups_match_linear_scan(steps in proptest::collection::vec((1u32..50, 1u32..5000), 0..200), probe in 0u32..20_000) {
            let mut idx = OffsetIndex::new();
            let (mut off, mut pos) = (0u32, 0u32);
            for (i, (d_off, d_pos)) in steps.iter().enumerate() {
                if i > 0 { off += d_off; pos += d_pos; }
                idx.push(off, pos);
            }
            let by_off = idx.entries().iter().rev().find(|e| e.relative_offset <= probe).copied();
            prop_assert_eq!(idx.floor_by_offset(probe), by_off);
            let by_pos = idx.entries().iter().rev().find(|e| e.position <= probe * 10).copied();
            prop_assert_eq!(idx.floor_by_position(probe * 10), by_pos);
            let decoded = OffsetIndex::decode(&idx.encode(), pos + 1).unwrap();
            prop_assert_eq!(decoded.entries(), idx.entries());
        }
    }
}
