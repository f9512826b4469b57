//! Transaction state on disk: records of the transactional id's `__transaction_state` partition,
//! appended through the engine (with `corelog.acks.all.durable`, a state change is acted on only
//! once its record is fdatasynced), and replayed into memory when the shard starts.

use std::io;
use std::time::Instant;

use corelog_engine::batch::codec::{decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::{BatchBuilder, BatchHeader};
use corelog_engine::partition::now_ms;

use super::metadata::TxnMetadata;
use super::records::{decode_key, encode_key, TxnValue};
use super::{state_partition_for, txn_state_partitions, ShardTxns, TXN_STATE_TOPIC};
use crate::broker::{owner_of, ShardState};
use crate::internal_topic;

/// Appends the record of `transactional_id` (None: a tombstone) to its partition and answers
/// once it reached the broker's acks=all point. Runs on the coordinator shard.
pub async fn write(
    state: &ShardState,
    transactional_id: &str,
    value: Option<&TxnValue>,
) -> Result<(), String> {
    let p = state_partition_for(&state.broker, transactional_id);
    let partition = state
        .local_partition(TXN_STATE_TOPIC, p)
        .ok_or_else(|| format!("{TXN_STATE_TOPIC}-{p} is not open on shard {}", state.id))?;
    let now = now_ms();
    let key = encode_key(transactional_id);
    let value = value.map(TxnValue::encode);
    let mut batch = BatchBuilder::new(now);
    batch.push_record(Some(&key), value.as_deref(), &[], now);
    internal_topic::append(&state.broker, &partition, batch.build()).await?;
    Ok(())
}

/// Rebuilds this shard's transactional ids from the `__transaction_state` partitions it owns.
pub async fn load(state: &ShardState) -> io::Result<()> {
    if state
        .broker
        .metadata
        .snapshot()
        .topic(TXN_STATE_TOPIC)
        .is_none()
    {
        return Ok(());
    }
    let count = txn_state_partitions(&state.broker);
    let started = Instant::now();
    let mut records = 0u64;
    for p in 0..count {
        if owner_of(&state.broker, TXN_STATE_TOPIC, p) != state.id {
            continue;
        }
        let Some(partition) = state.local_partition(TXN_STATE_TOPIC, p) else {
            continue;
        };
        records += internal_topic::replay(&partition, |batch, header| {
            replay_batch(&state.txns, batch, header)
        })
        .await?;
    }
    if records > 0 {
        tracing::info!(
            shard = state.id,
            records,
            transactional_ids = state.txns.count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded transaction state"
        );
    }
    Ok(())
}

/// Applies the records of one stored batch; returns how many it held. As for
/// `__consumer_offsets`: a compacted batch holds the records the cleaner kept (any codec, maybe
/// none at all), and the last record of a key wins.
fn replay_batch(txns: &ShardTxns, batch: &[u8], header: &BatchHeader) -> Result<u64, String> {
    if header.is_control() || header.record_count == 0 {
        return Ok(0);
    }
    let (_, decoded) =
        decode_batch_records(batch, MAX_DECOMPRESSED_BATCH_BYTES).map_err(|e| e.to_string())?;
    for r in &decoded {
        let log_offset = header.base_offset + i64::from(r.offset_delta);
        let Some(key) = &r.key else { continue };
        let id = match decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(log_offset, error = %e, "skipping an unreadable {TXN_STATE_TOPIC} key");
                continue;
            }
        };
        match r.value.as_deref() {
            None => txns.remove(&id),
            Some(v) => match TxnValue::decode(v) {
                Ok(v) => {
                    txns.insert(TxnMetadata::from_value(&id, v));
                }
                Err(e) => {
                    tracing::warn!(log_offset, error = %e, "skipping a {TXN_STATE_TOPIC} value")
                }
            },
        }
    }
    Ok(decoded.len() as u64)
}
