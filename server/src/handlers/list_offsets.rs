//! ListOffsets (key 2): offsets by special timestamp or by time.
//!
//! - EARLIEST (-2) and EARLIEST_LOCAL (-4): the log start offset (all data is local).
//! - LATEST (-1): the high watermark; for read_committed (`isolation_level` 1) the last stable
//!   offset (the first offset of the oldest open transaction, if below the high watermark).
//! - MAX_TIMESTAMP (-3): the offset and timestamp of the first record carrying the largest
//!   timestamp of the log.
//! - A timestamp `t >= 0`: the first offset whose record timestamp is `>= t`, with that
//!   record's timestamp; offset and timestamp -1 when no record is that late.
//!
//! The engine answers at batch granularity (the first batch whose max timestamp is late
//! enough); an uncompressed batch is then read and decoded to find the exact record. A
//! compressed batch is not decompressed (the broker has no codecs): the answer is its base
//! offset and its max timestamp — never past the wanted record, so a consumer that starts there
//! skips nothing, it may only see a few earlier records of that batch.
//!
//! read_committed never answers past the last stable offset (as Kafka's `fetchOffsetByTimestamp`
//! with an isolation level): MAX_TIMESTAMP and a timestamp lookup whose record is at or past the
//! LSO answer "no offset" (-1).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use corelog_engine::batch::codec::{decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::BatchHeader;
use corelog_engine::partition::{Partition, ReadError};

use super::fetch::{read_range, READ_COMMITTED};
use super::{encode, error, Reply, Request};
use crate::broker::{on_owner, shard};

/// Oldest version advertised: v1 (v0's list of old-style offsets is not implemented).
pub const MIN_VERSION: i16 = 1;
/// Newest version advertised: v8 adds EARLIEST_LOCAL (KIP-405). v9 adds EARLIEST_PENDING_UPLOAD
/// (tiered storage) and v10 a timeout for remote lookups: neither means anything here.
pub const MAX_VERSION: i16 = 8;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// Offset and timestamp answered when nothing matches (Kafka's UNKNOWN_OFFSET / NO_TIMESTAMP).
const UNKNOWN_OFFSET: i64 = -1;
const NO_TIMESTAMP: i64 = -1;
/// Leader epoch answered: unknown, so clients do not try to validate it with
/// OffsetForLeaderEpoch (which this broker does not speak yet).
const UNKNOWN_LEADER_EPOCH: i32 = -1;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: ListOffsetsRequest = request.decode()?;
    let state = shard();
    let snapshot = state.broker.metadata.snapshot();
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let meta = snapshot.topic(t.name.as_str()).cloned();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.leader_epoch = UNKNOWN_LEADER_EPOCH;
            let known = meta.as_ref().is_some_and(|m| {
                p.partition_index >= 0 && (p.partition_index as u32) < m.partitions
            });
            let (code, offset, timestamp) = if known {
                let topic = t.name.to_string();
                let partition = p.partition_index as u32;
                let timestamp = p.timestamp;
                let committed = body.isolation_level == READ_COMMITTED;
                on_owner(&t.name.clone(), partition, move |state| async move {
                    match state.local_partition(&topic, partition) {
                        Some(part) => {
                            // read_committed's upper bound: the LSO (the high watermark for
                            // read_uncommitted).
                            let upper = if committed {
                                let hw = part.log().high_watermark();
                                state
                                    .producers
                                    .get(&topic, partition)
                                    .map_or(hw, |s| s.borrow().last_stable_offset(hw))
                            } else {
                                part.log().high_watermark()
                            };
                            lookup(&part, timestamp, upper).await
                        }
                        None => (
                            error::UNKNOWN_TOPIC_OR_PARTITION,
                            UNKNOWN_OFFSET,
                            NO_TIMESTAMP,
                        ),
                    }
                })
                .await
            } else {
                (
                    error::UNKNOWN_TOPIC_OR_PARTITION,
                    UNKNOWN_OFFSET,
                    NO_TIMESTAMP,
                )
            };
            r.error_code = code;
            r.offset = offset;
            r.timestamp = timestamp;
            partitions.push(r);
        }
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name;
        tr.partitions = partitions;
        topics.push(tr);
    }
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    encode(&response, request.version)
}

/// On the owner shard: `(error, offset, timestamp)` for one partition, answering nothing at or
/// past `upper` (the high watermark, or the LSO for read_committed).
async fn lookup(part: &Partition, timestamp: i64, upper: i64) -> (i16, i64, i64) {
    let (code, offset, ts) = lookup_all(part, timestamp, upper).await;
    if (timestamp >= 0 || timestamp == MAX_TIMESTAMP) && offset >= upper {
        return (code, UNKNOWN_OFFSET, NO_TIMESTAMP);
    }
    (code, offset, ts)
}

/// `(error, offset, timestamp)` by the whole written log (LATEST answers `upper`).
async fn lookup_all(part: &Partition, timestamp: i64, upper: i64) -> (i16, i64, i64) {
    let (start, hw, max_ts) = {
        let log = part.log();
        let max_ts = log
            .segments()
            .iter()
            .map(|s| s.max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        (log.log_start_offset(), log.high_watermark(), max_ts)
    };
    let by_time = match timestamp {
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            return (error::NONE, start, NO_TIMESTAMP);
        }
        LATEST_TIMESTAMP => return (error::NONE, upper.min(hw), NO_TIMESTAMP),
        MAX_TIMESTAMP if max_ts < 0 || start == hw => {
            return (error::NONE, UNKNOWN_OFFSET, NO_TIMESTAMP);
        }
        MAX_TIMESTAMP => max_ts,
        t if t < 0 => return (error::NONE, UNKNOWN_OFFSET, NO_TIMESTAMP),
        t => t,
    };
    match first_record_at_or_after(part, by_time, start).await {
        Ok(Some((offset, ts))) => (error::NONE, offset, ts),
        Ok(None) => (error::NONE, UNKNOWN_OFFSET, NO_TIMESTAMP),
        Err(e) => {
            tracing::error!(topic = %part.topic, partition = part.partition, error = %e, "list offsets failed");
            (error::KAFKA_STORAGE_ERROR, UNKNOWN_OFFSET, NO_TIMESTAMP)
        }
    }
}

/// The first record at or after the log start `start` with timestamp `>= timestamp`: its offset
/// and timestamp (records of a batch that DeleteRecords cut into are skipped, as Kafka does).
async fn first_record_at_or_after(
    part: &Partition,
    timestamp: i64,
    start: i64,
) -> Result<Option<(i64, i64)>, ReadError> {
    let Some((base_offset, batch_max_ts)) = part.offset_for_timestamp(timestamp).await? else {
        return Ok(None);
    };
    // Read exactly that batch (a 1-byte limit with min_one_batch returns the first batch whole).
    let slice = match part.read(base_offset, 1, true).await {
        Ok(s) => s,
        // Retention may have removed it meanwhile: answer at batch granularity.
        Err(ReadError::OffsetOutOfRange { .. }) => return Ok(Some((base_offset, batch_max_ts))),
        Err(e) => return Err(e),
    };
    let Some(range) = slice.range else {
        return Ok(Some((base_offset, batch_max_ts)));
    };
    let bytes = read_range(&range).await.map_err(ReadError::Io)?;
    let corrupt = || ReadError::Corrupt {
        position: range.position,
    };
    let header = BatchHeader::parse(&bytes).map_err(|_| corrupt())?;
    match decode_batch_records(&bytes, MAX_DECOMPRESSED_BATCH_BYTES) {
        Ok((_, records)) => {
            let log_append_time =
                header.timestamp_type() == corelog_engine::batch::TimestampType::LogAppendTime;
            for r in records {
                let ts = if log_append_time {
                    header.max_timestamp
                } else {
                    header.base_timestamp.wrapping_add(r.timestamp_delta)
                };
                let offset = header.base_offset + r.offset_delta as i64;
                if ts >= timestamp && offset >= start {
                    return Ok(Some((offset, ts)));
                }
            }
            Ok(Some((header.base_offset.max(start), header.max_timestamp)))
        }
        Err(_) => Err(corrupt()),
    }
}
