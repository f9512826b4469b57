//! Groups and committed offsets on disk: records appended to the group's `__consumer_offsets`
//! partition through the engine (so they get the engine's durability: with
//! `corelog.acks.all.durable`, a commit is answered only once its record is fdatasynced), and
//! replayed into memory when the shard starts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use corelog_engine::batch::codec::{decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::{BatchBuilder, BatchHeader, ControlRecordType};
use corelog_engine::partition::now_ms;

use super::group::{Committed, Group};
use super::records::{GroupValue, Key, OffsetValue};
use super::{partition_for, ShardGroups, OFFSETS_TOPIC};
use crate::broker::{owner_of, ShardState};
use crate::internal_topic;

/// `baseSequence` of a transactional offsets batch: the coordinator's writes are not
/// deduplicated by sequence, but a batch with a producer id needs one (Kafka writes 0 too).
const TXN_OFFSETS_BASE_SEQUENCE: i32 = 0;

/// A key and its value (None: a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Appends `records` (one batch) to the group's offsets partition and answers once they reached
/// the broker's acks=all point; returns the offset of the first record.
pub async fn write(
    state: &ShardState,
    group_id: &str,
    records: Vec<KeyValue>,
) -> Result<i64, String> {
    write_batch(state, group_id, records, None).await
}

/// A transactional producer's id and epoch, for the batch of a TxnOffsetCommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// [`write`] of a transactional batch: the producer's id and epoch and the transactional bit, as
/// Kafka's coordinator writes a TxnOffsetCommit, so that the transaction's marker in this
/// partition ends it (also when the log is replayed).
pub async fn write_transactional(
    state: &ShardState,
    group_id: &str,
    records: Vec<KeyValue>,
    producer: TxnProducer,
) -> Result<i64, String> {
    write_batch(state, group_id, records, Some(producer)).await
}

async fn write_batch(
    state: &ShardState,
    group_id: &str,
    records: Vec<KeyValue>,
    producer: Option<TxnProducer>,
) -> Result<i64, String> {
    let partition_count = super::offsets_partitions(&state.broker);
    let p = partition_for(group_id, partition_count);
    let partition = state
        .local_partition(OFFSETS_TOPIC, p)
        .ok_or_else(|| format!("{OFFSETS_TOPIC}-{p} is not open on shard {}", state.id))?;
    let now = now_ms();
    let mut batch = BatchBuilder::new(now);
    if let Some(t) = producer {
        batch = batch
            .producer(t.producer_id, t.producer_epoch, TXN_OFFSETS_BASE_SEQUENCE)
            .transactional(true);
    }
    for (key, value) in &records {
        batch.push_record(Some(key), value.as_deref(), &[], now);
    }
    let info = internal_topic::append(&state.broker, &partition, batch.build()).await?;
    Ok(info.base_offset)
}

/// Writes the group's metadata record (with the leader's not yet applied `assignments`).
pub async fn store_group(
    state: &ShardState,
    group: &Rc<RefCell<Group>>,
    assignments: Option<&HashMap<String, Bytes>>,
) -> Result<(), String> {
    let (id, value) = {
        let g = group.borrow();
        (g.id.clone(), g.record_value(assignments))
    };
    let key = Key::Group { group: id.clone() }.encode();
    let offset = write(state, &id, vec![(key, Some(value.encode()))]).await?;
    let mut g = group.borrow_mut();
    g.metadata_log_offset = g.metadata_log_offset.max(offset);
    Ok(())
}

/// Rebuilds this shard's groups from the offsets partitions it owns.
pub async fn load(state: &ShardState) -> io::Result<()> {
    let count = super::offsets_partitions(&state.broker);
    let started = Instant::now();
    let mut records = 0u64;
    for p in 0..count {
        if owner_of(&state.broker, OFFSETS_TOPIC, p) != state.id {
            continue;
        }
        let Some(partition) = state.local_partition(OFFSETS_TOPIC, p) else {
            continue;
        };
        records += internal_topic::replay(&partition, |batch, header| {
            replay_batch(&state.groups, (p, count), batch, header)
        })
        .await?;
    }
    let groups = state.groups.count();
    if records > 0 {
        tracing::info!(
            shard = state.id,
            records,
            groups,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded consumer groups"
        );
    }
    Ok(())
}

/// Applies the records of one stored batch; returns how many it held.
///
/// The log is compacted, so a batch is not what the coordinator wrote: its records are those the
/// cleaner kept, each at `baseOffset + its own offsetDelta` (the batch's offset range may hold
/// fewer records than offsets, and there are gaps between batches); its `baseTimestamp` may be a
/// delete horizon (attribute bit 6), which replay ignores as it reads no batch timestamps; its
/// body may be compressed by any codec (the cleaner recompresses with the batch's own); and it
/// may hold no record at all (Kafka's cleaner keeps an emptied batch that carries producer
/// state). Tombstones delete their key.
fn replay_batch(
    groups: &ShardGroups,
    (partition, partition_count): (u32, u32),
    batch: &[u8],
    header: &BatchHeader,
) -> Result<u64, String> {
    if header.record_count == 0 {
        return Ok(0);
    }
    let (_, decoded) =
        decode_batch_records(batch, MAX_DECOMPRESSED_BATCH_BYTES).map_err(|e| e.to_string())?;
    if header.is_control() {
        // A transaction's marker: its offsets in this partition become committed, or are
        // dropped (replay applies them as `on_marker` did before the restart).
        if let Some(kind) = decoded
            .first()
            .and_then(|r| r.key.as_deref())
            .and_then(ControlRecordType::from_key)
        {
            super::txn_offsets::complete(
                groups,
                (partition, partition_count),
                header.producer_id,
                kind == ControlRecordType::Commit,
            );
        }
        return Ok(0);
    }
    let txn = header.is_transactional().then_some(header.producer_id);
    for r in &decoded {
        let log_offset = header.base_offset + i64::from(r.offset_delta);
        debug_assert!(log_offset <= header.last_offset(), "record past its batch");
        if let Some(key) = &r.key {
            replay(groups, log_offset, key, r.value.as_deref(), txn);
        }
    }
    Ok(decoded.len() as u64)
}

/// Applies one `__consumer_offsets` record. A record that does not decode is skipped with a
/// warning (a newer broker's record type, say); it never stops the broker.
///
/// `txn`: the producer id when the record is part of a transaction (a TxnOffsetCommit): its
/// offset is pending until the transaction's marker.
fn replay(
    groups: &ShardGroups,
    log_offset: i64,
    key: &[u8],
    value: Option<&[u8]>,
    txn: Option<i64>,
) {
    let key = match Key::decode(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(log_offset, error = %e, "skipping an unreadable {OFFSETS_TOPIC} key");
            return;
        }
    };
    let now = Instant::now();
    match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => match value {
            None => {
                if let Some(g) = groups.get(&group) {
                    g.borrow_mut().offsets.remove(&(topic, partition));
                }
            }
            Some(v) => match OffsetValue::decode(v) {
                Ok(v) => {
                    let committed = Committed {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp_ms: v.commit_timestamp_ms,
                        log_offset,
                    };
                    let group = groups.get_or_create(&group, now, v.commit_timestamp_ms);
                    let mut group = group.borrow_mut();
                    match txn {
                        Some(producer_id) => {
                            group
                                .pending_txn_offsets
                                .entry(producer_id)
                                .or_default()
                                .insert((topic, partition), committed);
                        }
                        None => group.apply_offset(&topic, partition, committed),
                    }
                }
                Err(e) => tracing::warn!(log_offset, error = %e, "skipping an offset record"),
            },
        },
        Key::Group { group } => match value {
            None => groups.remove(&group),
            Some(v) => match GroupValue::decode(v) {
                Ok(v) => {
                    let g = groups.get_or_create(&group, now, v.state_timestamp_ms);
                    let mut g = g.borrow_mut();
                    g.restore(v, now);
                    g.metadata_log_offset = log_offset;
                }
                Err(e) => tracing::warn!(log_offset, error = %e, "skipping a group record"),
            },
        },
    }
}
