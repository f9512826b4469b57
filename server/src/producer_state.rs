//! Idempotent-producer state: per (producer id, partition), on the partition's owner shard.
//!
//! For each producer that wrote to a partition we keep its epoch and the sequence and offset
//! ranges of its last [`MAX_CACHED_BATCHES`] batches, as Kafka's `ProducerStateManager` does.
//! A Produce batch with a producer id is checked against it before it is appended:
//!
//! - the same epoch and exactly the sequence range of a cached batch: a duplicate (a retry of a
//!   batch that was written): answered with the original offsets, nothing appended;
//! - an epoch older than the producer's: INVALID_PRODUCER_EPOCH (Kafka ≥ 2.7 answers this, not
//!   PRODUCER_FENCED, on the produce path);
//! - a newer epoch must start at sequence 0, the same epoch must continue at last sequence + 1
//!   (wrapping from `i32::MAX` to 0): otherwise OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer the partition has no state for may start at any sequence (Kafka accepts this
//!   since KIP-360: its state may have been removed with the log that held it).
//!
//! The state survives restarts: a snapshot file in the partition directory (written at a
//! graceful shutdown) holds the state as of an offset, and on open the log after that offset is
//! replayed from batch headers (all of it when there is no usable snapshot).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;

use corelog_engine::batch::BatchHeader;
use corelog_engine::partition::Partition;
use serde::{Deserialize, Serialize};

use crate::handlers::error;

/// Batches remembered per producer and partition for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, matching the producer's
/// `max.in.flight.requests.per.connection` limit of 5 under idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

/// The snapshot file in each partition directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";

/// Where a batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

/// One producer's state on one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMeta>,
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMeta),
    /// Refuse it with this Kafka error code.
    Refuse(i16, String),
}

/// The sequence number of the last record of a batch: `base + last_offset_delta`, wrapping past
/// `i32::MAX` to 0 as Kafka's `DefaultRecordBatch.incrementSequence` does.
pub fn last_sequence(base_seq: i32, last_offset_delta: i32) -> i32 {
    if base_seq > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - base_seq) - 1
    } else {
        base_seq + last_offset_delta
    }
}

/// Whether `next` directly follows `last` (Kafka's `inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
    /// Base offset of the active segment when the last snapshot was taken: a snapshot is taken
    /// whenever the log rolls past it (as Kafka does at each roll), which bounds the replay
    /// after a crash to about one segment.
    #[serde(skip)]
    snapshot_segment: i64,
}

/// The snapshot file's contents.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The state covers every batch below this offset.
    offset: i64,
    producers: PartitionProducers,
}

impl PartitionProducers {
    #[cfg(test)]
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks a batch of `producer_id` against the producer's state (Kafka's duplicate check,
    /// then `checkProducerEpoch`, then `checkSequence`).
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, last_seq: i32) -> Verdict {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Verdict::Append;
        };
        if epoch == entry.epoch {
            if let Some(b) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Verdict::Duplicate(*b);
            }
        }
        if epoch < entry.epoch {
            return Verdict::Refuse(
                error::INVALID_PRODUCER_EPOCH,
                format!(
                    "Epoch of producer {producer_id} is {epoch}, which is smaller than the last seen epoch {}",
                    entry.epoch
                ),
            );
        }
        if epoch != entry.epoch {
            if first_seq != 0 {
                return Verdict::Refuse(
                    error::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!(
                        "Invalid sequence number for new epoch of producer {producer_id}: {epoch} \
                         (request epoch), {first_seq} (seq. number), {} (current producer epoch)",
                        entry.epoch
                    ),
                );
            }
            return Verdict::Append;
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, first_seq) => Verdict::Refuse(
                error::OUT_OF_ORDER_SEQUENCE_NUMBER,
                format!(
                    "Out of order sequence number for producer {producer_id}: {first_seq} \
                     (incoming seq. number), {} (current end sequence number)",
                    last.last_seq
                ),
            ),
            _ => Verdict::Append,
        }
    }

    /// The offset of the first record of the oldest transaction still open on this partition
    /// (the last stable offset is the lower of this and the high watermark).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        None
    }

    /// Records an appended batch (a new epoch forgets the old epoch's batches).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta) {
        let entry = self.producers.entry(producer_id).or_default();
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(batch);
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets a batch recorded before its append failed.
    pub fn forget(&mut self, producer_id: i64, base_offset: i64) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.batches.retain(|b| b.base_offset != base_offset);
        }
    }

    /// Sets the append time of a recorded batch (known only once a LogAppendTime append ran).
    pub fn set_log_append_time(&mut self, producer_id: i64, base_offset: i64, time_ms: i64) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            for b in entry
                .batches
                .iter_mut()
                .filter(|b| b.base_offset == base_offset)
            {
                b.log_append_time = time_ms;
            }
        }
    }

    /// Rebuilds state from a batch read back from the log. Control batches (transaction
    /// markers) carry no sequence numbers and are skipped.
    pub fn replay(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.is_control() || header.base_sequence < 0 {
            return;
        }
        let log_append_time =
            if header.timestamp_type() == corelog_engine::batch::TimestampType::LogAppendTime {
                header.max_timestamp
            } else {
                -1
            };
        self.record(
            header.producer_id,
            header.producer_epoch,
            BatchMeta {
                first_seq: header.base_sequence,
                last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                log_append_time,
            },
        );
    }

    /// Writes the state as of `offset` to `dir`'s snapshot file (temp file, rename; fsynced when
    /// `durable`). A snapshot lost or torn in a crash is ignored on load (the log is replayed
    /// instead), and one whose offset is beyond the recovered log end too, so `offset` may be the
    /// log's next offset even while writes below it are in flight.
    pub fn write_snapshot(&self, dir: &Path, offset: i64, durable: bool) -> io::Result<()> {
        let snapshot = Snapshot {
            offset,
            producers: self.clone(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        let path = dir.join(SNAPSHOT_FILE);
        // The log's recovery removes leftover `*.tmp` files of a partition directory.
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        if durable {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// Loads a partition's state: the snapshot (if it is readable and not beyond the log end),
    /// then the log's batches after it.
    pub fn load(partition: &Partition) -> io::Result<PartitionProducers> {
        let log = partition.log();
        let end = log.log_end_offset();
        let snapshot = std::fs::read(log.dir().join(SNAPSHOT_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Snapshot>(&b).ok())
            .filter(|s| s.offset <= end && s.offset >= log.log_start_offset());
        let (mut state, from) = match snapshot {
            Some(s) => (s.producers, s.offset),
            None => (PartitionProducers::default(), log.log_start_offset()),
        };
        log.for_each_batch_header(from, |h| state.replay(h))?;
        state.snapshot_segment = active_segment(partition);
        Ok(state)
    }

    /// Takes a snapshot (not fsynced: it only shortens recovery) if the log rolled since the
    /// last one. Called after appends on the owner shard; a roll happens once per segment, so
    /// this small synchronous write is rare.
    pub fn snapshot_if_rolled(&mut self, partition: &Partition) {
        let active = active_segment(partition);
        if active == self.snapshot_segment {
            return;
        }
        self.snapshot_segment = active;
        let (dir, next) = {
            let log = partition.log();
            (log.dir().to_path_buf(), log.next_offset())
        };
        if let Err(e) = self.write_snapshot(&dir, next, false) {
            tracing::warn!(dir = %dir.display(), error = %e, "producer state snapshot failed");
        }
    }
}

/// One partition's producer state, shared by the requests the shard runs for it.
pub type SharedProducers = Rc<RefCell<PartitionProducers>>;

fn active_segment(partition: &Partition) -> i64 {
    partition
        .log()
        .segments()
        .last()
        .map_or(0, |s| s.base_offset)
}

/// A shard's producer state, by partition.
#[derive(Default)]
pub struct ShardProducers {
    table: RefCell<HashMap<(String, u32), SharedProducers>>,
}

impl ShardProducers {
    /// Loads (once) the state of a partition this shard has just opened.
    pub fn open(&self, topic: &str, partition: u32, log: &Partition) -> io::Result<()> {
        let key = (topic.to_string(), partition);
        if self.table.borrow().contains_key(&key) {
            return Ok(());
        }
        let state = PartitionProducers::load(log)?;
        self.table
            .borrow_mut()
            .insert(key, Rc::new(RefCell::new(state)));
        Ok(())
    }

    pub fn get(&self, topic: &str, partition: u32) -> Option<SharedProducers> {
        self.table
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn remove(&self, topic: &str, partition: u32) {
        self.table
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
    }

    /// Snapshots every partition's state at its next offset (graceful shutdown, after the logs
    /// were made durable).
    pub fn snapshot_all(&self, storage: &corelog_engine::storage::ShardStorage) {
        let table: Vec<_> = self
            .table
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((topic, p), state) in table {
            let Some(log) = storage.partition(&topic, p) else {
                continue;
            };
            let (dir, end) = {
                let l = log.log();
                (l.dir().to_path_buf(), l.next_offset())
            };
            if let Err(e) = state.borrow().write_snapshot(&dir, end, true) {
                tracing::warn!(topic = %topic, partition = p, error = %e, "producer state snapshot failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq,
            base_offset,
            last_offset: base_offset + i64::from(last_seq - first_seq),
            log_append_time: -1,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = PartitionProducers::default();
        // Unknown producer: any sequence is accepted.
        assert_eq!(s.check(7, 0, 3, 4), Verdict::Append);
        s.record(7, 0, meta(0, 4, 0));
        s.record(7, 0, meta(5, 9, 5));
        assert_eq!(s.check(7, 0, 10, 12), Verdict::Append);
        assert_eq!(s.check(7, 0, 0, 4), Verdict::Duplicate(meta(0, 4, 0)));
        assert_eq!(s.check(7, 0, 5, 9), Verdict::Duplicate(meta(5, 9, 5)));
        let code = |v: Verdict| match v {
            Verdict::Refuse(c, _) => c,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            code(s.check(7, 0, 11, 12)),
            error::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert_eq!(
            code(s.check(7, 0, 3, 4)),
            error::OUT_OF_ORDER_SEQUENCE_NUMBER,
            "overlapping a cached batch without matching it"
        );
        assert_eq!(code(s.check(7, -1, 10, 10)), error::INVALID_PRODUCER_EPOCH);
        assert_eq!(
            code(s.check(7, 1, 10, 10)),
            error::OUT_OF_ORDER_SEQUENCE_NUMBER,
            "a new epoch starts at 0"
        );
        assert_eq!(s.check(7, 1, 0, 0), Verdict::Append);
        s.record(7, 1, meta(0, 0, 10));
        assert_eq!(code(s.check(7, 0, 10, 12)), error::INVALID_PRODUCER_EPOCH);
        assert_eq!(s.entry(7).unwrap().batches.len(), 1);
        // Only the last five batches are remembered.
        for i in 1..=6 {
            s.record(7, 1, meta(i, i, 10 + i64::from(i)));
        }
        assert_eq!(s.entry(7).unwrap().batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(
            code(s.check(7, 1, 1, 1)),
            error::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert!(matches!(s.check(7, 1, 2, 2), Verdict::Duplicate(_)));
        s.forget(7, 16);
        assert_eq!(s.check(7, 1, 6, 6), Verdict::Append);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(10, 4), 14);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut s = PartitionProducers::default();
        s.record(1, 0, meta(i32::MAX - 2, i32::MAX, 0));
        assert_eq!(s.check(1, 0, 0, 3), Verdict::Append);
        assert!(matches!(s.check(1, 0, 1, 3), Verdict::Refuse(..)));
    }

    #[test]
    fn snapshots_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PartitionProducers::default();
        s.record(3, 2, meta(0, 9, 100));
        s.write_snapshot(dir.path(), 110, true).unwrap();
        let bytes = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let back: Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.offset, 110);
        assert_eq!(back.producers, s);
    }
}
