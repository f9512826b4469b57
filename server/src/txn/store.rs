//! Transaction state on disk: records of the transactional id's `__transaction_state` partition,
//! appended through the engine (with `corelog.acks.all.durable`, a state change is acted on only
//! once its record is fdatasynced), and replayed into memory when the shard starts.

use std::io;
use std::time::Instant;

use corelog_engine::batch::codec::{decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::{BatchBuilder, BatchHeader, BATCH_HEADER_BYTES};
use corelog_engine::partition::{now_ms, AckPoint};

use super::metadata::TxnMetadata;
use super::records::{decode_key, encode_key, TxnValue};
use super::{state_partition_for, txn_state_partitions, ShardTxns, TXN_STATE_TOPIC};
use crate::broker::{owner_of, ShardState};

/// Bytes read per step while replaying a transaction state partition at start-up.
const REPLAY_READ_BYTES: u32 = 1024 * 1024;

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
    let ack = if state.broker.config.acks_all_durable {
        AckPoint::Durable
    } else {
        AckPoint::Written
    };
    partition
        .append(batch.build(), ack)
        .await
        .map_err(|e| format!("writing to {TXN_STATE_TOPIC}-{p}: {e:?}"))?;
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
        let mut offset = partition.log().log_start_offset();
        loop {
            let slice = partition
                .read(offset, REPLAY_READ_BYTES, true)
                .await
                .map_err(|e| io::Error::other(format!("{TXN_STATE_TOPIC}-{p}: {e}")))?;
            let Some(range) = slice.range else { break };
            let mut buf = vec![0u8; range.len as usize];
            range.file.read_exact_at(&mut buf, range.position)?;
            let read_from = offset;
            let mut pos = 0usize;
            while pos + BATCH_HEADER_BYTES <= buf.len() {
                let header = BatchHeader::parse(&buf[pos..])
                    .map_err(|e| io::Error::other(format!("{TXN_STATE_TOPIC}-{p}: {e:?}")))?;
                let end = pos + header.total_bytes();
                if end > buf.len() {
                    break;
                }
                records += replay_batch(&state.txns, &buf[pos..end], &header)
                    .map_err(|e| io::Error::other(format!("{TXN_STATE_TOPIC}-{p}: {e}")))?;
                // Compaction leaves gaps between batches: the next one is found from here.
                offset = header.next_offset();
                pos = end;
            }
            if offset == read_from {
                return Err(io::Error::other(format!(
                    "{TXN_STATE_TOPIC}-{p}: no whole batch at offset {offset}"
                )));
            }
            if offset >= slice.high_watermark {
                break;
            }
        }
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
