//! Aborted transactions, per segment (Kafka's `.txnindex` files).
//!
//! When an abort marker is appended, the transaction it ends is recorded here: its producer, the
//! offset of its first record in this partition, the offset of the abort marker, and the last
//! stable offset at that moment. A read_committed Fetch returns, for the range it sends, the
//! aborted transactions that overlap it ([`crate::log::PartitionLog::aborted_txns`]), and the
//! consumer drops their records. Entries live in the segment that holds the marker, so they go
//! with it (retention, DeleteRecords) and a search from the fetched segment onwards finds every
//! transaction that ends at or after the fetch offset.
//!
//! Contract (the engine helper of issue 7 fills in the file format, loading, recovery and the
//! cleaner's use of it).

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

impl crate::log::PartitionLog {
    /// Records an aborted transaction whose abort marker (at `txn.last_offset`) was just
    /// appended. Called on the owner shard after the marker's append completed, in marker
    /// order.
    pub fn record_aborted_txn(&mut self, txn: AbortedTxn) -> std::io::Result<()> {
        let _ = txn;
        Ok(())
    }

    /// The aborted transactions that overlap `[from_offset, upper_offset)`: those whose marker is
    /// at or after `from_offset` and whose first offset is below `upper_offset`, in marker order.
    pub fn aborted_txns(&self, from_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        let _ = (from_offset, upper_offset);
        Vec::new()
    }

    /// Forgets the entries whose marker is at or after `offset` (producer-state recovery replays
    /// the log from a snapshot at `offset` and records them again).
    pub fn truncate_aborted_txns(&mut self, offset: i64) -> std::io::Result<()> {
        let _ = offset;
        Ok(())
    }
}

impl crate::partition::Partition {
    /// [`crate::log::PartitionLog::record_aborted_txn`] on this partition's log.
    pub fn record_aborted_txn(&self, txn: AbortedTxn) -> std::io::Result<()> {
        self.log_mut().record_aborted_txn(txn)
    }

    /// [`crate::log::PartitionLog::truncate_aborted_txns`] on this partition's log.
    pub fn truncate_aborted_txns(&self, offset: i64) -> std::io::Result<()> {
        self.log_mut().truncate_aborted_txns(offset)
    }
}
