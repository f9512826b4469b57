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
//! Transactions (KIP-98) add, per producer and partition, its open transaction: the offset of
//! its first transactional batch since its last marker. The oldest open transaction bounds the
//! last stable offset (LSO = min(high watermark, [`PartitionProducers::first_unstable_offset`])),
//! which read_committed fetches stop at. A marker ([`crate::txn::markers`]) ends it in two steps
//! around its append: [`PartitionProducers::begin_marker`] when its offset is assigned (the
//! producer's epoch moves at once, so a fenced zombie is refused from then on) and
//! [`PartitionProducers::finish_marker`] once it is written; until then the transaction still
//! holds the LSO back, so a read_committed consumer never passes data whose marker (and, for an
//! abort, its aborted-transaction index entry) is not in the log yet. Markers finish in offset
//! order whatever order their writes complete in, so aborts are indexed in marker order.
//!
//! The state survives restarts: a snapshot file in the partition directory (written at a
//! graceful shutdown, and when the log rolls) holds the state as of an offset, open transactions
//! included, and on open the log after that offset is replayed (all of it when there is no usable
//! snapshot): batch headers, plus the control record of each marker (commit or abort), whose
//! abort is recorded again in the log's aborted-transaction index. No snapshot is taken while a
//! marker is between its two steps (it would hold a state that no offset of the log describes).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;

use corelog_engine::batch::{BatchHeader, ControlRecordType};
use corelog_engine::log::PartitionLog;
use corelog_engine::partition::Partition;
use corelog_engine::txn_index::AbortedTxn;
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

/// "None" for a timestamp, a sequence, a coordinator epoch or an offset in DescribeProducers.
pub const NONE_I64: i64 = -1;
const NO_COORDINATOR_EPOCH: i32 = -1;
/// The largest control batch read back while replaying the log. A marker is one small record
/// (about 80 bytes); anything larger is not a marker written by a coordinator and is skipped.
const MAX_CONTROL_BATCH_BYTES: usize = 64 * 1024;

fn no_timestamp() -> i64 {
    NONE_I64
}

fn no_coordinator_epoch() -> i32 {
    NO_COORDINATOR_EPOCH
}

/// One producer's state on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMeta>,
    /// The max timestamp of its last batch or marker (DescribeProducers), -1 if none.
    /// (Snapshots written before transactions lack the transaction fields: they default.)
    #[serde(default = "no_timestamp")]
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker, -1 if none.
    #[serde(default = "no_coordinator_epoch")]
    pub coordinator_epoch: i32,
    /// Its open transaction here: the offset of its first transactional batch since its last
    /// marker.
    #[serde(default)]
    pub txn_first_offset: Option<i64>,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: NONE_I64,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            txn_first_offset: None,
        }
    }
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence of its last record here, -1 if none is remembered.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

/// A marker whose offset is assigned but whose write has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Closing {
    marker_offset: i64,
    producer_id: i64,
    /// The transaction it ends (None: the producer had none open here).
    first_offset: Option<i64>,
    commit: bool,
    /// Its write finished (it leaves the queue once every marker before it has too).
    done: bool,
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
    /// The open transactions by first offset (producer id): derived from `producers`, so that
    /// the LSO, asked for by every read_committed fetch, is not a scan of every producer.
    #[serde(skip)]
    open_txns: BTreeMap<i64, i64>,
    /// Markers between [`PartitionProducers::begin_marker`] and their write's end, in offset
    /// order. Never in a snapshot (none is taken while this is not empty).
    #[serde(skip)]
    closing: VecDeque<Closing>,
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
        let open = self.open_txns.keys().next().copied();
        let closing = self.closing.iter().filter_map(|c| c.first_offset).min();
        match (open, closing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last stable offset given the partition's high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |f| f.min(high_watermark))
    }

    /// Kafka's rule for a data batch of a producer with an open transaction here: it must be
    /// transactional (INVALID_TXN_STATE otherwise). Checked after [`PartitionProducers::check`].
    pub fn check_txn(&self, producer_id: i64, transactional: bool) -> Option<(i16, String)> {
        let first = self.producers.get(&producer_id)?.txn_first_offset?;
        if transactional {
            return None;
        }
        Some((
            error::INVALID_TXN_STATE,
            format!(
                "Expected transactional write from producer {producer_id} (its transaction in this partition started at offset {first})"
            ),
        ))
    }

    /// Records an appended data batch of a producer (see [`PartitionProducers::record`]): a
    /// transactional one opens the producer's transaction here if none is open.
    pub fn record_batch(
        &mut self,
        producer_id: i64,
        epoch: i16,
        batch: BatchMeta,
        transactional: bool,
        max_timestamp: i64,
    ) {
        self.record(producer_id, epoch, batch);
        let entry = self.producers.entry(producer_id).or_default();
        entry.last_timestamp = max_timestamp;
        if transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.base_offset);
            let previous = self.open_txns.insert(batch.base_offset, producer_id);
            assert!(
                previous.is_none(),
                "two transactions start at offset {}",
                batch.base_offset
            );
        }
    }

    /// A marker of `producer_id` gets `marker_offset` (its append is about to be planned, with
    /// nothing awaited in between): the producer's epoch becomes the marker's (refused with
    /// INVALID_PRODUCER_EPOCH if older), and its open transaction, if any, is closing; it still
    /// holds the LSO back until [`PartitionProducers::finish_marker`].
    pub fn begin_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        marker_offset: i64,
        timestamp: i64,
    ) -> Result<(), (i16, String)> {
        if let Some(entry) = self.producers.get(&producer_id) {
            if epoch < entry.epoch {
                return Err((
                    error::INVALID_PRODUCER_EPOCH,
                    format!(
                        "Epoch of producer {producer_id} is {}, which is newer than the marker's epoch {epoch}",
                        entry.epoch
                    ),
                ));
            }
        }
        if let Some(last) = self.closing.back() {
            assert!(
                last.marker_offset < marker_offset,
                "markers begin in offset order ({} then {marker_offset})",
                last.marker_offset
            );
        }
        let entry = self.producers.entry(producer_id).or_default();
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        let first_offset = entry.txn_first_offset.take();
        if let Some(first) = first_offset {
            self.open_txns.remove(&first);
        }
        self.closing.push_back(Closing {
            marker_offset,
            producer_id,
            first_offset,
            commit,
            done: false,
        });
        Ok(())
    }

    /// The marker at `marker_offset` was written (`written`) or its append failed. Returns the
    /// aborted transactions to index now, in marker order: those of every marker up to the
    /// first one still being written. A failed marker's transaction is open again (the
    /// coordinator retries it); `high_watermark` is the partition's, for the entries' LSO.
    pub fn finish_marker(
        &mut self,
        marker_offset: i64,
        written: bool,
        high_watermark: i64,
    ) -> Vec<AbortedTxn> {
        let at = self
            .closing
            .iter()
            .position(|c| c.marker_offset == marker_offset && !c.done)
            .expect("finish_marker of a marker that began");
        if !written {
            // Nothing to index, and its offset may be predicted again by the next marker (an
            // append that failed before its write assigned nothing): it leaves at once.
            let c = self.closing.remove(at).expect("found above");
            if let Some(first) = c.first_offset {
                let entry = self.producers.entry(c.producer_id).or_default();
                if entry.txn_first_offset.is_none() {
                    entry.txn_first_offset = Some(first);
                    self.open_txns.insert(first, c.producer_id);
                }
            }
        } else {
            self.closing[at].done = true;
        }
        let mut aborted = Vec::new();
        while self.closing.front().is_some_and(|c| c.done) {
            let c = self.closing.pop_front().expect("front exists");
            if !c.commit {
                aborted.push(AbortedTxn {
                    producer_id: c.producer_id,
                    first_offset: c.first_offset.unwrap_or(c.marker_offset),
                    last_offset: c.marker_offset,
                    last_stable_offset: 0,
                });
            }
        }
        // Each entry's LSO is the one once its marker is written, here the same for all.
        let lso = self.last_stable_offset(high_watermark);
        for a in &mut aborted {
            a.last_stable_offset = lso;
        }
        aborted
    }

    /// The producers as DescribeProducers reports them, by producer id.
    pub fn describe(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerInfo {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(NONE_I64),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Rebuilds the derived open-transaction index (after deserializing a snapshot).
    fn rebuild_open_txns(&mut self) {
        self.open_txns = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| e.txn_first_offset.map(|f| (f, pid)))
            .collect();
    }

    /// Records an appended batch (a new epoch forgets the old epoch's batches).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta) {
        let entry = self.producers.entry(producer_id).or_default();
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        debug_assert!(
            entry
                .batches
                .back()
                .is_none_or(|b| b.base_offset < batch.base_offset),
            "batches of a producer are recorded in offset order"
        );
        entry.batches.push_back(batch);
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets a batch recorded before its append failed.
    pub fn forget(&mut self, producer_id: i64, base_offset: i64) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.batches.retain(|b| b.base_offset != base_offset);
            if entry.txn_first_offset == Some(base_offset) {
                entry.txn_first_offset = None;
                self.open_txns.remove(&base_offset);
            }
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

    /// Rebuilds state from a batch read back from the log. A marker (control batch) comes with
    /// its control record (`control`: its type and coordinator epoch; None if unreadable, then
    /// it is skipped) and ends the producer's open transaction; for an abort the aborted
    /// transaction to index is returned.
    pub fn replay(
        &mut self,
        header: &BatchHeader,
        control: Option<(ControlRecordType, i32)>,
    ) -> Option<AbortedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        if header.is_control() {
            let (kind, coordinator_epoch) = control?;
            let entry = self.producers.entry(header.producer_id).or_default();
            if entry.epoch != header.producer_epoch {
                entry.epoch = header.producer_epoch;
                entry.batches.clear();
            }
            entry.coordinator_epoch = coordinator_epoch;
            entry.last_timestamp = header.max_timestamp;
            let first = entry.txn_first_offset.take();
            if let Some(f) = first {
                self.open_txns.remove(&f);
            }
            if kind == ControlRecordType::Commit {
                return None;
            }
            let marker = header.base_offset;
            return Some(AbortedTxn {
                producer_id: header.producer_id,
                first_offset: first.unwrap_or(marker),
                last_offset: marker,
                last_stable_offset: self.last_stable_offset(marker + 1),
            });
        }
        if header.base_sequence < 0 {
            return None;
        }
        let log_append_time =
            if header.timestamp_type() == corelog_engine::batch::TimestampType::LogAppendTime {
                header.max_timestamp
            } else {
                -1
            };
        self.record_batch(
            header.producer_id,
            header.producer_epoch,
            BatchMeta {
                first_seq: header.base_sequence,
                last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                log_append_time,
            },
            header.is_transactional(),
            header.max_timestamp,
        );
        None
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
    /// then the log's batches after it. The aborted-transaction index entries from the replay's
    /// start on are forgotten and recorded again as the replay meets the abort markers.
    pub fn load(partition: &Partition) -> io::Result<PartitionProducers> {
        let (mut state, from, aborted) = {
            let log = partition.log();
            let end = log.log_end_offset();
            let snapshot = std::fs::read(log.dir().join(SNAPSHOT_FILE))
                .ok()
                .and_then(|b| Snapshot::parse(&b))
                .filter(|s| s.offset <= end && s.offset >= log.log_start_offset());
            let (mut state, from) = match snapshot {
                Some(s) => (s.producers, s.offset),
                None => (PartitionProducers::default(), log.log_start_offset()),
            };
            let mut aborted = Vec::new();
            let mut failure = None;
            log.for_each_batch_header(from, |h| {
                let control = if h.is_control() && h.has_producer_id() {
                    match read_control_record(&log, h) {
                        Ok(c) => c,
                        Err(e) => {
                            failure.get_or_insert(e);
                            None
                        }
                    }
                } else {
                    None
                };
                aborted.extend(state.replay(h, control));
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            (state, from, aborted)
        };
        partition.truncate_aborted_txns(from)?;
        for txn in aborted {
            partition.record_aborted_txn(txn)?;
        }
        state.snapshot_segment = active_segment(partition);
        Ok(state)
    }

    /// Takes a snapshot (not fsynced: it only shortens recovery) if the log rolled since the
    /// last one. Called after appends on the owner shard; a roll happens once per segment, so
    /// this small synchronous write is rare.
    pub fn snapshot_if_rolled(&mut self, partition: &Partition) {
        let active = active_segment(partition);
        if active == self.snapshot_segment || !self.closing.is_empty() {
            // With a marker in flight, the next append (or marker) takes it.
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

impl Snapshot {
    /// Reads a snapshot file's bytes; None if they are not a snapshot (torn, or another format:
    /// the log is then replayed from its start).
    fn parse(bytes: &[u8]) -> Option<Snapshot> {
        let mut s: Snapshot = serde_json::from_slice(bytes).ok()?;
        s.producers.rebuild_open_txns();
        Some(s)
    }
}

/// The control record of the marker `header` (read from the log): its type and coordinator
/// epoch. None if it is not a well-formed marker (skipped, as Kafka skips unknown control
/// records).
fn read_control_record(
    log: &PartitionLog,
    header: &BatchHeader,
) -> io::Result<Option<(ControlRecordType, i32)>> {
    let total = header.total_bytes();
    if total > MAX_CONTROL_BATCH_BYTES {
        return Ok(None);
    }
    let Some(span) = log.locate(header.base_offset) else {
        return Ok(None);
    };
    // Walk from the index entry to the batch (a few header reads: markers are found near an
    // index entry, and replays only cover about one segment).
    let mut position = span.from;
    let mut buf = [0u8; corelog_engine::batch::BATCH_HEADER_BYTES];
    while (position as usize) + buf.len() <= span.end as usize {
        span.file.read_exact_at(&mut buf, u64::from(position))?;
        let Ok(h) = BatchHeader::parse(&buf) else {
            return Ok(None);
        };
        if h.base_offset == header.base_offset {
            let mut batch = vec![0u8; total];
            span.file.read_exact_at(&mut batch, u64::from(position))?;
            let Ok(records) = corelog_engine::batch::decode_records(&batch) else {
                return Ok(None);
            };
            let Some(record) = records.first() else {
                return Ok(None);
            };
            let kind = record.key.as_deref().and_then(ControlRecordType::from_key);
            let coordinator_epoch = record
                .value
                .as_deref()
                .filter(|v| v.len() >= 6)
                .map_or(NO_COORDINATOR_EPOCH, |v| {
                    i32::from_be_bytes([v[2], v[3], v[4], v[5]])
                });
            return Ok(kind.map(|k| (k, coordinator_epoch)));
        }
        if h.base_offset > header.base_offset {
            return Ok(None);
        }
        position += h.total_bytes() as u32;
    }
    Ok(None)
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

/// A shard's producer state, by topic, then partition (keyed by topic name so that a lookup
/// from the produce and fetch paths borrows the name instead of allocating a key).
#[derive(Default)]
pub struct ShardProducers {
    table: RefCell<HashMap<String, HashMap<u32, SharedProducers>>>,
}

impl ShardProducers {
    /// Loads (once) the state of a partition this shard has just opened.
    pub fn open(&self, topic: &str, partition: u32, log: &Partition) -> io::Result<()> {
        if self.get(topic, partition).is_some() {
            return Ok(());
        }
        let state = PartitionProducers::load(log)?;
        self.table
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, Rc::new(RefCell::new(state)));
        Ok(())
    }

    pub fn get(&self, topic: &str, partition: u32) -> Option<SharedProducers> {
        self.table.borrow().get(topic)?.get(&partition).cloned()
    }

    pub fn remove(&self, topic: &str, partition: u32) {
        let mut table = self.table.borrow_mut();
        if let Some(partitions) = table.get_mut(topic) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                table.remove(topic);
            }
        }
    }

    /// Snapshots every partition's state at its next offset (graceful shutdown, after the logs
    /// were made durable).
    pub fn snapshot_all(&self, storage: &corelog_engine::storage::ShardStorage) {
        let table: Vec<_> = self
            .table
            .borrow()
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(|(p, state)| ((topic.clone(), *p), state.clone()))
            })
            .collect();
        for ((topic, p), state) in table {
            let Some(log) = storage.partition(&topic, p) else {
                continue;
            };
            let (dir, end) = {
                let l = log.log();
                (l.dir().to_path_buf(), l.next_offset())
            };
            let state = state.borrow();
            if !state.closing.is_empty() {
                // A marker still being written: the snapshot on disk (older) stays valid.
                continue;
            }
            if let Err(e) = state.write_snapshot(&dir, end, true) {
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
        let back = Snapshot::parse(&bytes).unwrap();
        assert_eq!(back.offset, 110);
        assert_eq!(back.producers, s);
    }
}

#[cfg(test)]
mod txn_tests {
    use super::*;
    use corelog_engine::batch::{control_batch, BatchBuilder};

    fn meta(first_seq: i32, last_seq: i32, base_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq,
            base_offset,
            last_offset: base_offset + i64::from(last_seq - first_seq),
            log_append_time: -1,
        }
    }

    fn code<T: std::fmt::Debug>(r: Result<T, (i16, String)>) -> i16 {
        match r {
            Err((c, _)) => c,
            Ok(v) => panic!("expected a refusal, got {v:?}"),
        }
    }

    /// Open transactions bound the LSO; a commit marker releases its transaction only once
    /// written; an abort is returned for indexing with the transaction's first offset.
    #[test]
    fn transactions_open_close_and_bound_the_lso() {
        let mut s = PartitionProducers::default();
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.last_stable_offset(5), 5);
        s.record_batch(1, 0, meta(0, 4, 10), true, 1000);
        s.record_batch(2, 0, meta(0, 0, 15), true, 1001);
        // A second transactional batch does not move the transaction's start.
        s.record_batch(1, 0, meta(5, 5, 16), true, 1002);
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert_eq!(s.last_stable_offset(17), 10);
        assert_eq!(s.last_stable_offset(8), 8, "never past the high watermark");
        // A non-transactional batch of a producer with an open transaction is refused; of
        // another producer (or a transactional one) it is not.
        assert_eq!(
            s.check_txn(1, false).map(|(c, _)| c),
            Some(error::INVALID_TXN_STATE)
        );
        assert_eq!(s.check_txn(1, true), None);
        assert_eq!(s.check_txn(3, false), None);

        s.begin_marker(1, 0, 0, true, 17, 2000).unwrap();
        assert_eq!(
            s.first_unstable_offset(),
            Some(10),
            "a marker being written still holds the LSO"
        );
        assert_eq!(
            s.check_txn(1, false),
            None,
            "the producer may go on at once"
        );
        assert_eq!(
            s.finish_marker(17, true, 18),
            Vec::new(),
            "a commit is not indexed"
        );
        assert_eq!(s.first_unstable_offset(), Some(15));

        s.begin_marker(2, 0, 5, false, 18, 2001).unwrap();
        let aborted = s.finish_marker(18, true, 19);
        assert_eq!(
            aborted,
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 15,
                last_offset: 18,
                last_stable_offset: 19,
            }]
        );
        assert_eq!(s.first_unstable_offset(), None);
        let described = s.describe();
        assert_eq!(described.len(), 2);
        assert_eq!(
            described[1],
            ProducerInfo {
                producer_id: 2,
                epoch: 0,
                last_sequence: 0,
                last_timestamp: 2001,
                coordinator_epoch: 5,
                current_txn_start_offset: -1,
            }
        );
        // A marker with no open transaction (Kafka writes it anyway) indexes an abort that
        // starts at the marker itself.
        s.begin_marker(9, 0, 0, false, 19, 2002).unwrap();
        assert_eq!(s.finish_marker(19, true, 20)[0].first_offset, 19);
    }

    /// Markers whose writes complete out of order are indexed in offset order, and each one
    /// holds the LSO until every marker before it finished.
    #[test]
    fn markers_finish_in_offset_order() {
        let mut s = PartitionProducers::default();
        s.record_batch(3, 0, meta(0, 0, 0), true, 1);
        s.record_batch(4, 0, meta(0, 0, 1), true, 1);
        s.begin_marker(3, 0, 0, false, 2, 1).unwrap();
        s.begin_marker(4, 0, 0, false, 3, 1).unwrap();
        assert_eq!(
            s.finish_marker(3, true, 4),
            Vec::new(),
            "waits for offset 2"
        );
        assert_eq!(s.first_unstable_offset(), Some(0));
        let aborted = s.finish_marker(2, true, 4);
        let order: Vec<_> = aborted
            .iter()
            .map(|a| (a.producer_id, a.last_offset))
            .collect();
        assert_eq!(order, vec![(3, 2), (4, 3)]);
        assert_eq!(s.first_unstable_offset(), None);
    }

    /// A marker's epoch: older than the producer's is refused; newer fences the producer's
    /// older-epoch batches (a zombie); a failed marker leaves the transaction open.
    #[test]
    fn marker_epochs_fence_and_failures_reopen() {
        let mut s = PartitionProducers::default();
        s.record_batch(5, 3, meta(0, 0, 0), true, 1);
        assert_eq!(
            code(s.begin_marker(5, 2, 0, true, 1, 1)),
            error::INVALID_PRODUCER_EPOCH
        );
        assert_eq!(
            s.first_unstable_offset(),
            Some(0),
            "a refused marker changes nothing"
        );
        // The coordinator fences the producer (timeout abort with epoch + 1).
        s.begin_marker(5, 4, 0, false, 1, 1).unwrap();
        assert!(matches!(
            s.check(5, 3, 1, 1),
            Verdict::Refuse(c, _) if c == error::INVALID_PRODUCER_EPOCH
        ));
        assert_eq!(s.finish_marker(1, true, 2).len(), 1);

        s.record_batch(5, 4, meta(0, 0, 2), true, 1);
        s.begin_marker(5, 4, 0, true, 3, 1).unwrap();
        assert_eq!(s.finish_marker(3, false, 3), Vec::new());
        assert_eq!(
            s.first_unstable_offset(),
            Some(2),
            "open again after a failed marker"
        );
        assert_eq!(s.describe()[0].current_txn_start_offset, 2);
        // A marker failing while an earlier one is still being written leaves at once: the
        // next marker may be given the same offset.
        s.record_batch(5, 4, meta(1, 1, 4), true, 1);
        s.begin_marker(5, 4, 0, false, 3, 1).unwrap();
        s.record_batch(6, 0, meta(0, 0, 5), true, 1);
        s.begin_marker(6, 0, 0, false, 6, 1).unwrap();
        assert_eq!(s.finish_marker(6, false, 6), Vec::new());
        s.begin_marker(6, 0, 0, false, 6, 1).unwrap();
        assert_eq!(
            s.finish_marker(6, true, 7),
            Vec::new(),
            "waits for offset 3"
        );
        let order: Vec<_> = s
            .finish_marker(3, true, 7)
            .iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect();
        assert_eq!(order, vec![(5, 2, 3), (6, 5, 6)]);
        // A failed append forgets the transaction it opened.
        let mut t = PartitionProducers::default();
        t.record_batch(6, 0, meta(0, 0, 7), true, 1);
        t.forget(6, 7);
        assert_eq!(t.first_unstable_offset(), None);
    }

    /// Snapshots carry open transactions; a snapshot of the format before transactions (no
    /// transaction fields) still loads.
    #[test]
    fn snapshots_carry_open_transactions_and_read_the_old_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PartitionProducers::default();
        s.record_batch(3, 2, meta(0, 9, 100), true, 5);
        s.record_batch(4, 0, meta(0, 0, 110), false, 6);
        s.write_snapshot(dir.path(), 111, true).unwrap();
        let bytes = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let back = Snapshot::parse(&bytes).unwrap();
        assert_eq!(back.producers, s);
        assert_eq!(back.producers.first_unstable_offset(), Some(100));

        let old = br#"{"offset":12,"producers":{"producers":{"7":{"epoch":1,"batches":[
            {"first_seq":0,"last_seq":2,"base_offset":9,"last_offset":11,"log_append_time":-1}]}}}}"#;
        let back = Snapshot::parse(old).unwrap();
        assert_eq!(back.offset, 12);
        assert_eq!(back.producers.first_unstable_offset(), None);
        let d = back.producers.describe();
        assert_eq!((d[0].producer_id, d[0].last_sequence), (7, 2));
        assert_eq!((d[0].last_timestamp, d[0].coordinator_epoch), (-1, -1));
        assert!(
            Snapshot::parse(b"{\"offset\":").is_none(),
            "a torn file is ignored"
        );
    }

    /// Replay: a transactional batch opens a transaction, a commit marker closes it, an abort
    /// marker closes it and yields its index entry; marker epochs and coordinator epochs are
    /// taken from the log.
    #[test]
    fn replay_opens_and_closes_transactions() {
        let header = |bytes: Vec<u8>, base_offset: i64| {
            let mut h = BatchHeader::parse(&bytes).unwrap();
            h.base_offset = base_offset;
            h
        };
        let data = |pid: i64, epoch: i16, seq: i32, txn: bool, at: i64| {
            header(
                BatchBuilder::new(50)
                    .producer(pid, epoch, seq)
                    .transactional(txn)
                    .record(Some(b"k"), Some(b"v"), &[], 50)
                    .build(),
                at,
            )
        };
        let marker = |pid: i64, epoch: i16, kind: ControlRecordType, at: i64| {
            header(control_batch(pid, epoch, kind, 3, 60), at)
        };
        let mut s = PartitionProducers::default();
        assert_eq!(s.replay(&data(1, 0, 0, true, 0), None), None);
        assert_eq!(s.replay(&data(2, 0, 0, true, 1), None), None);
        assert_eq!(s.replay(&data(3, 0, 0, false, 2), None), None);
        assert_eq!(s.first_unstable_offset(), Some(0));
        let commit = Some((ControlRecordType::Commit, 3));
        assert_eq!(
            s.replay(&marker(1, 0, ControlRecordType::Commit, 3), commit),
            None
        );
        assert_eq!(s.first_unstable_offset(), Some(1));
        let abort = Some((ControlRecordType::Abort, 3));
        let entry = s.replay(&marker(2, 1, ControlRecordType::Abort, 4), abort);
        assert_eq!(
            entry,
            Some(AbortedTxn {
                producer_id: 2,
                first_offset: 1,
                last_offset: 4,
                last_stable_offset: 5,
            })
        );
        assert_eq!(s.first_unstable_offset(), None);
        let d = s.describe();
        assert_eq!(
            (d[1].epoch, d[1].coordinator_epoch, d[1].last_timestamp),
            (1, 3, 60)
        );
        // An unreadable control record is skipped.
        s.replay(&data(1, 0, 1, true, 5), None);
        assert_eq!(
            s.replay(&marker(1, 0, ControlRecordType::Abort, 6), None),
            None
        );
        assert_eq!(s.first_unstable_offset(), Some(5));
    }
}
