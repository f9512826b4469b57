//! Produce (key 0): append one record batch per partition, as received, to each partition's log.
//!
//! The request is decoded on the connection's shard; each partition's batch is validated (header
//! and CRC only, never decoded into records), checked against the idempotent-producer state and
//! appended on the partition's owner shard, all partitions concurrently; the response is
//! assembled here, in request order.
//!
//! Kafka behaviours followed:
//! - Produce v0-v2 were removed in Kafka 4.0 but are still advertised because of a librdkafka
//!   bug (KAFKA-18659); a request at those versions is refused by closing the connection.
//! - From v3 a partition's records must be exactly one v2 batch (`ProduceRequest.validateRecords`):
//!   otherwise INVALID_RECORD.
//! - acks must be -1, 0 or 1 (else INVALID_REQUIRED_ACKS for every partition). acks=0 gets no
//!   response; if any partition failed the connection is closed so the client notices, as Kafka
//!   does.
//! - acks=-1 with the topic's `min.insync.replicas` above 1 is NOT_ENOUGH_REPLICAS (one node is an
//!   ISR of one).
//! - A batch larger than `max.message.bytes` (topic) / `message.max.bytes` (broker) is
//!   MESSAGE_TOO_LARGE; a bad CRC or length CORRUPT_MESSAGE; a control batch, non-zero base offset
//!   or inconsistent producer fields INVALID_RECORD; a CreateTime timestamp outside
//!   `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` INVALID_TIMESTAMP.
//! - On a compacted topic (`cleanup.policy` with `compact`) every record needs a key
//!   (`LogValidator.validateKey`): a batch with a keyless record is INVALID_RECORD with the
//!   partition's log start offset and, from v8, Kafka's message (quoting the first three
//!   offending records) and `record_errors` naming each of them by its index in the batch. Only
//!   compacted topics pay for decoding records ([`keyless_records`]).
//! - I/O failures of the log are KAFKA_STORAGE_ERROR.
//! - Transactions (KIP-98): a transactional batch (which must carry a producer id: the batch
//!   validator answers INVALID_RECORD otherwise) opens its producer's transaction on the
//!   partition if none is open there; a non-transactional batch from a producer with an open
//!   transaction on the partition is INVALID_TXN_STATE. A fenced producer's batch is
//!   INVALID_PRODUCER_EPOCH once a marker of a newer epoch was written (the marker moves the
//!   partition's producer epoch). Client writes to `__transaction_state` are refused like those
//!   to `__consumer_offsets`.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use corelog_engine::batch::codec::{decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::{BatchError, ClientBatchError, TimestampType, ValidatedBatch};
use corelog_engine::log::AppendError;
use corelog_engine::partition::{now_ms, AckPoint};
use corelog_engine::runtime::{self, JoinHandle};

use super::{encode, error, Reply, Request};
use crate::broker::{on_owner, shard, BrokerContext, ShardState};
use crate::metadata::TopicMeta;
use crate::producer_state::{last_sequence, BatchMeta, Verdict};

/// Advertised in ApiVersions (Kafka 4 advertises 0 for librdkafka's sake, KAFKA-18659).
pub const MIN_VERSION: i16 = 0;
/// The oldest version actually served: v0-v2 were removed in Kafka 4.0 (KIP-896).
pub const MIN_SERVED_VERSION: i16 = 3;
/// v12 is the same as v11 for non-transactional use; v13 names topics by id.
pub const MAX_VERSION: i16 = 11;

/// "No offset" in a Produce response.
const NO_OFFSET: i64 = -1;
/// "No timestamp" in a batch header or a Produce response.
const NO_TIMESTAMP: i64 = -1;
/// The most bytes a compressed batch for a compacted topic may decompress to while its keys are
/// checked. Kafka streams and has no such bound; here a small body claiming gigabytes must not
/// take a shard's memory, and 64 MiB is far above what a producer's 1 MiB batch holds.
const KEY_CHECK_MAX_DECOMPRESSED_BYTES: usize = MAX_DECOMPRESSED_BATCH_BYTES;
/// How many record errors Kafka spells out in a partition's error message (all of them still go
/// into `record_errors`).
const RECORD_ERRORS_IN_MESSAGE: usize = 3;

/// What one partition of the request is checked against, taken from the topic's configs
/// (falling back to the broker's defaults) on the connection's shard.
#[derive(Debug, Clone, Copy)]
struct Limits {
    acks: i16,
    ack: AckPoint,
    /// `max.message.bytes`: the largest batch accepted, in bytes.
    max_message_bytes: usize,
    /// `min.insync.replicas`.
    min_insync_replicas: u32,
    /// Whether the topic keeps producers' timestamps (CreateTime).
    create_time: bool,
    /// `message.timestamp.before.max.ms`: how far in the past a timestamp may be, in ms.
    timestamp_before_max_ms: Option<i64>,
    /// `message.timestamp.after.max.ms`: how far in the future a timestamp may be, in ms.
    timestamp_after_max_ms: Option<i64>,
    /// `cleanup.policy` includes `compact`: every record must have a key.
    keys_required: bool,
}

impl Limits {
    fn of(broker: &BrokerContext, topic: &TopicMeta, acks: i16, ack: AckPoint) -> Limits {
        let config = |key: &str| topic.configs.get(key);
        let log_config = broker.log_config(topic);
        Limits {
            acks,
            ack,
            max_message_bytes: config("max.message.bytes")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(broker.config.message_max_bytes) as usize,
            min_insync_replicas: config("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(broker.config.min_insync_replicas),
            create_time: log_config.timestamp_type == TimestampType::CreateTime,
            timestamp_before_max_ms: config("message.timestamp.before.max.ms")
                .and_then(|v| v.parse().ok()),
            timestamp_after_max_ms: config("message.timestamp.after.max.ms")
                .and_then(|v| v.parse().ok()),
            keys_required: log_config.cleanup_policy.compact,
        }
    }
}

/// One partition's answer.
#[derive(Debug, Clone)]
struct Outcome {
    error_code: i16,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    message: Option<String>,
    /// Records of the batch refused one by one: (index in the batch, why). Produce v8+.
    record_errors: Vec<(i32, String)>,
}

impl Outcome {
    fn error(code: i16, message: impl Into<String>) -> Outcome {
        Outcome {
            error_code: code,
            base_offset: NO_OFFSET,
            log_append_time: NO_TIMESTAMP,
            log_start_offset: NO_OFFSET,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }

    /// Kafka's answer when records of the batch failed validation (its
    /// `RecordValidationException`): INVALID_RECORD, a message quoting the first
    /// [`RECORD_ERRORS_IN_MESSAGE`] record errors, every one of them in `record_errors`, and
    /// the partition's log start offset.
    fn invalid_records(record_errors: Vec<(i32, String)>, log_start_offset: i64) -> Outcome {
        debug_assert!(!record_errors.is_empty(), "a refusal names its records");
        let shown: Vec<String> = record_errors
            .iter()
            .take(RECORD_ERRORS_IN_MESSAGE)
            .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
            .collect();
        Outcome {
            error_code: error::INVALID_RECORD,
            base_offset: NO_OFFSET,
            log_append_time: NO_TIMESTAMP,
            log_start_offset,
            message: Some(format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                record_errors.len(),
                shown.join(", ")
            )),
            record_errors,
        }
    }
}

enum Pending {
    Done(Outcome),
    Running(JoinHandle<Outcome>),
}

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    if request.version < MIN_SERVED_VERSION {
        // Kafka 4 closes the connection: the request cannot be parsed at these versions.
        return Err(format!(
            "Produce v{} is not served (removed in Kafka 4.0; v{MIN_SERVED_VERSION} is the oldest)",
            request.version
        ));
    }
    let body: ProduceRequest = request.decode()?;
    let broker = shard().broker.clone();
    let acks = body.acks;
    let ack = match acks {
        0 | 1 => Some(AckPoint::Written),
        -1 if broker.config.acks_all_durable => Some(AckPoint::Durable),
        -1 => Some(AckPoint::Written),
        _ => None,
    };
    let snapshot = broker.metadata.snapshot();
    let mut topics = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let meta: Option<Arc<TopicMeta>> = snapshot.topic(topic.name.as_str()).cloned();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let pending = match (ack, &meta) {
                (None, _) => Pending::Done(Outcome::error(
                    error::INVALID_REQUIRED_ACKS,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                )),
                // Kafka refuses client writes to its internal topics: only the coordinator
                // writes `__consumer_offsets` records.
                (Some(_), Some(meta))
                    if meta.name == crate::groups::OFFSETS_TOPIC
                        || meta.name == crate::txn::TXN_STATE_TOPIC =>
                {
                    Pending::Done(Outcome::error(
                        error::INVALID_TOPIC_EXCEPTION,
                        format!("Cannot append to internal topic {}", meta.name),
                    ))
                }
                (Some(ack), Some(meta)) if index >= 0 && (index as u32) < meta.partitions => {
                    let limits = Limits::of(&broker, meta, acks, ack);
                    let name = meta.name.clone();
                    let records = data.records;
                    Pending::Running(runtime::spawn(async move {
                        let topic = name.clone();
                        on_owner(&topic, index as u32, move |state| {
                            append_partition(state, name, index as u32, records, limits)
                        })
                        .await
                    }))
                }
                _ => Pending::Done(Outcome::error(
                    error::UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.",
                )),
            };
            partitions.push((index, pending));
        }
        topics.push((topic.name, partitions));
    }

    let mut responses = Vec::with_capacity(topics.len());
    let mut failed = false;
    for (name, partitions) in topics {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for (index, pending) in partitions {
            let outcome = match pending {
                Pending::Done(o) => o,
                Pending::Running(handle) => handle.await,
            };
            failed |= outcome.error_code != error::NONE;
            let mut r = PartitionProduceResponse::default();
            r.index = index;
            r.error_code = outcome.error_code;
            r.base_offset = outcome.base_offset;
            r.log_append_time_ms = outcome.log_append_time;
            r.log_start_offset = outcome.log_start_offset;
            r.error_message = outcome.message.map(StrBytes::from_string);
            r.record_errors = outcome
                .record_errors
                .into_iter()
                .map(|(index, message)| {
                    let mut e = BatchIndexAndErrorMessage::default();
                    e.batch_index = index;
                    e.batch_index_error_message = Some(StrBytes::from_string(message));
                    e
                })
                .collect();
            partition_responses.push(r);
        }
        let mut t = TopicProduceResponse::default();
        t.name = name;
        t.partition_responses = partition_responses;
        responses.push(t);
    }
    if acks == 0 {
        if failed {
            // No response goes back under acks=0: Kafka closes the connection instead so that
            // the client learns that something went wrong (and refreshes its metadata).
            return Err("acks=0 produce failed on some partition; closing the connection".into());
        }
        return Ok(Reply::None);
    }
    let mut response = ProduceResponse::default();
    response.responses = responses;
    encode(&response, request.version)
}

/// Validates and appends one partition's batch; runs on the partition's owner shard.
async fn append_partition(
    state: Rc<ShardState>,
    topic: String,
    partition: u32,
    records: Option<Bytes>,
    limits: Limits,
) -> Outcome {
    let Some(log) = state.storage.partition(&topic, partition) else {
        return Outcome::error(
            error::UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic-partition.",
        );
    };
    let one_batch =
        "Produce requests with version 3 and above may only contain exactly one record batch";
    let records = match records {
        Some(r) if !r.is_empty() => r,
        _ => return Outcome::error(error::INVALID_RECORD, one_batch),
    };
    if limits.acks == -1 && limits.min_insync_replicas > 1 {
        return Outcome::error(
            error::NOT_ENOUGH_REPLICAS,
            format!(
                "The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of {}",
                limits.min_insync_replicas
            ),
        );
    }
    if records.len() > limits.max_message_bytes {
        return Outcome::error(
            error::MESSAGE_TOO_LARGE,
            format!(
                "The record batch of {} bytes is larger than the maximum allowed of {} bytes (max.message.bytes)",
                records.len(),
                limits.max_message_bytes
            ),
        );
    }
    let batch = match ValidatedBatch::client(records) {
        Ok(b) => b,
        Err(ClientBatchError::Invalid(e)) => {
            return Outcome::error(e.kafka_error_code(), e.to_string())
        }
        Err(ClientBatchError::NotExactlyOneBatch) => {
            return Outcome::error(error::INVALID_RECORD, one_batch)
        }
    };
    let header = *batch.header();
    if limits.create_time {
        let now = now_ms();
        let earliest = limits
            .timestamp_before_max_ms
            .map_or(i64::MIN, |ms| now.saturating_sub(ms));
        let latest = limits
            .timestamp_after_max_ms
            .map_or(i64::MAX, |ms| now.saturating_add(ms));
        for ts in [header.base_timestamp, header.max_timestamp] {
            // -1 is "no timestamp" and is never out of range.
            if ts != NO_TIMESTAMP && (ts < earliest || ts > latest) {
                return Outcome::error(
                    error::INVALID_TIMESTAMP,
                    format!("Timestamp {ts} of the record batch is out of range. The timestamp should be within [{earliest}, {latest}]"),
                );
            }
        }
    }
    if limits.keys_required {
        match keyless_records(batch.bytes()) {
            Ok(keyless) if keyless.is_empty() => {}
            Ok(keyless) => {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                );
                let errors = keyless.into_iter().map(|i| (i, message.clone())).collect();
                return Outcome::invalid_records(errors, log.log().log_start_offset());
            }
            Err(e) => return Outcome::error(e.kafka_error_code(), e.to_string()),
        }
    }
    // Idempotence: check the producer's state, and record the batch at the offsets the append
    // is about to get. Nothing awaits between here and the append's offset assignment (its
    // first poll), so the prediction holds and concurrent batches of a producer see each other.
    let producers = if header.has_producer_id() {
        state.producers.get(&topic, partition)
    } else {
        None
    };
    let mut recorded = None;
    if let Some(producers) = &producers {
        let (pid, epoch) = (header.producer_id, header.producer_epoch);
        let first_seq = header.base_sequence;
        let last_seq = last_sequence(first_seq, header.last_offset_delta);
        let verdict = producers.borrow().check(pid, epoch, first_seq, last_seq);
        match verdict {
            Verdict::Append => {}
            Verdict::Duplicate(original) => {
                if limits.ack == AckPoint::Durable {
                    if let Err(e) = log.wait_durable(original.last_offset + 1).await {
                        return Outcome::error(error::KAFKA_STORAGE_ERROR, e.to_string());
                    }
                }
                return Outcome {
                    error_code: error::NONE,
                    base_offset: original.base_offset,
                    log_append_time: original.log_append_time,
                    log_start_offset: log.log().log_start_offset(),
                    message: None,
                    record_errors: Vec::new(),
                };
            }
            Verdict::Refuse(code, message) => return Outcome::error(code, message),
        }
        let transactional = header.is_transactional();
        if let Some((code, message)) = producers.borrow().check_txn(pid, transactional) {
            return Outcome::error(code, message);
        }
        let base_offset = log.log().next_offset();
        producers.borrow_mut().record_batch(
            pid,
            epoch,
            BatchMeta {
                first_seq,
                last_seq,
                base_offset,
                last_offset: base_offset + i64::from(header.last_offset_delta),
                log_append_time: NO_TIMESTAMP,
            },
            transactional,
            header.max_timestamp,
        );
        recorded = Some((pid, base_offset));
    }

    match log.append_client_batch(batch, limits.ack).await {
        Ok(info) => {
            if let (Some((pid, predicted)), Some(producers)) = (recorded, &producers) {
                debug_assert_eq!(predicted, info.base_offset, "predicted base offset");
                let mut producers = producers.borrow_mut();
                if let Some(t) = info.log_append_time {
                    producers.set_log_append_time(pid, predicted, t);
                }
                producers.snapshot_if_rolled(&log);
            }
            Outcome {
                error_code: error::NONE,
                base_offset: info.base_offset,
                log_append_time: info.log_append_time.unwrap_or(NO_TIMESTAMP),
                log_start_offset: info.log_start_offset,
                message: None,
                record_errors: Vec::new(),
            }
        }
        Err(e) => {
            if let (Some((pid, base_offset)), Some(producers)) = (recorded, &producers) {
                producers.borrow_mut().forget(pid, base_offset);
            }
            let code = match &e {
                AppendError::InvalidBatch(b) => b.kafka_error_code(),
                AppendError::BatchLargerThanSegment { .. } => error::RECORD_BATCH_TOO_LARGE,
                AppendError::LogFailed | AppendError::Io(_) => error::KAFKA_STORAGE_ERROR,
            };
            tracing::debug!(topic = %topic, partition, error = %e, "append refused");
            Outcome::error(code, e.to_string())
        }
    }
}

/// The indexes (within the batch) of the records that have no key. Decodes every record, after
/// decompressing the body (at most [`KEY_CHECK_MAX_DECOMPRESSED_BYTES`]) and a second CRC pass
/// over the batch; this is the price of compacted topics only, the append path of the others
/// never decodes records.
fn keyless_records(batch: &[u8]) -> Result<Vec<i32>, BatchError> {
    let (_, records) = decode_batch_records(batch, KEY_CHECK_MAX_DECOMPRESSED_BYTES)?;
    Ok(records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(index, _)| index as i32)
        .collect())
}
