//! Produce and InitProducerId against the real broker, over the wire.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{log_batches, write_topics, Broker, Client};
use corelog_engine::batch::{validate_batch, BatchBuilder};
use corelog_engine::partition::now_ms;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    InitProducerIdRequest, MetadataRequest, ProduceRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const PRODUCE_VERSION: i16 = 9;

const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_REQUEST: i16 = 42;
const INVALID_TIMESTAMP: i16 = 32;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_RECORD: i16 = 87;

/// A plain batch of `records` records.
fn batch(records: usize, seed: u8) -> Vec<u8> {
    batch_at(records, seed, now_ms())
}

fn batch_at(records: usize, seed: u8, timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(timestamp);
    for i in 0..records {
        b.push_record(
            Some(&[seed, i as u8][..]),
            Some(&[seed; 40][..]),
            &[],
            timestamp,
        );
    }
    b.build()
}

/// An idempotent producer's batch.
fn producer_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let ts = now_ms();
    let mut b = BatchBuilder::new(ts).producer(pid, epoch, seq);
    for i in 0..records {
        b.push_record(None, Some(format!("{seq}-{i}").as_bytes()), &[], ts);
    }
    b.build()
}

fn produce(acks: i16, parts: &[(&str, i32, Option<Vec<u8>>)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (topic, partition, records) in parts {
        let mut p = PartitionProduceData::default();
        p.index = *partition;
        p.records = records.clone().map(Bytes::from);
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partition_data.push(p),
            None => {
                let mut t = TopicProduceData::default();
                t.name = TopicName(StrBytes::from_string(topic.to_string()));
                t.partition_data = vec![p];
                topics.push(t);
            }
        }
    }
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 30_000;
    r.topic_data = topics;
    r
}

/// Produces one batch to one partition and returns the partition's answer.
fn produce_one(
    c: &mut Client,
    acks: i16,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> PartitionProduceResponse {
    let response = c.call(
        PRODUCE_VERSION,
        &produce(acks, &[(topic, partition, Some(records))]),
    );
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

fn init_producer_id(c: &mut Client) -> (i64, i16) {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = None;
    r.transaction_timeout_ms = 60_000;
    r.producer_id = kafka_protocol::messages::ProducerId(-1);
    r.producer_epoch = -1;
    let response = c.call(4, &r);
    assert_eq!(response.error_code, NONE);
    (response.producer_id.0, response.producer_epoch)
}

#[test]
fn acks_0_1_and_all_round_trip_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["corelog.shards=2", "num.partitions=4"]);
    let mut c = broker.client();
    assert_eq!(c.ensure_topic("rt"), 4);

    // One request for all four partitions (on both shards), acks=1.
    let sent: Vec<Vec<u8>> = (0..4).map(|p| batch(3, p as u8)).collect();
    let parts: Vec<_> = (0..4)
        .map(|p| ("rt", p, Some(sent[p as usize].clone())))
        .collect();
    let response = c.call(PRODUCE_VERSION, &produce(1, &parts));
    let answers = &response.responses[0].partition_responses;
    assert_eq!(answers.len(), 4);
    for (p, a) in answers.iter().enumerate() {
        assert_eq!(a.index, p as i32, "partitions answered in request order");
        assert_eq!(a.error_code, NONE);
        assert_eq!(a.base_offset, 0);
        assert_eq!(a.log_append_time_ms, -1);
        assert_eq!(a.log_start_offset, 0);
    }
    // acks=all (durable) and acks=0 (no response at all) to partition 0.
    let a = produce_one(&mut c, -1, "rt", 0, batch(2, 9));
    assert_eq!((a.error_code, a.base_offset), (NONE, 3));
    let correlation = c.send(
        PRODUCE_VERSION,
        &produce(0, &[("rt", 0, Some(batch(1, 10)))]),
    );
    // The next response on the connection is the Metadata one: acks=0 got none.
    let mut all_topics = MetadataRequest::default();
    all_topics.topics = None;
    let metadata = c.send(9, &all_topics);
    assert!(metadata > correlation);
    let m = c.receive::<MetadataRequest>(9, metadata);
    assert_eq!(m.topics.len(), 1);
    // Every later produce sees the acks=0 batch's offset taken.
    let a = produce_one(&mut c, 1, "rt", 0, batch(1, 11));
    assert_eq!((a.error_code, a.base_offset), (NONE, 6));

    broker.stop();
    let p0 = log_batches(dir.path(), "rt", 0);
    let offsets: Vec<(i64, i32)> = p0.iter().map(|h| (h.base_offset, h.record_count)).collect();
    assert_eq!(offsets, vec![(0, 3), (3, 2), (5, 1), (6, 1)]);
    assert_eq!(p0[0].crc, validate_batch(&sent[0]).unwrap().crc);
    for p in 1..4u32 {
        let headers = log_batches(dir.path(), "rt", p);
        assert_eq!(headers.len(), 1, "partition {p}");
        assert_eq!(
            headers[0].crc,
            validate_batch(&sent[p as usize]).unwrap().crc
        );
    }
}

#[test]
fn refused_batches_get_kafka_error_codes_and_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    write_topics(
        dir.path(),
        &[
            ("plain", 2, &[]),
            ("small", 1, &[("max.message.bytes", "300")]),
            ("isr2", 1, &[("min.insync.replicas", "2")]),
            (
                "recent",
                1,
                &[
                    ("message.timestamp.before.max.ms", "3600000"),
                    ("message.timestamp.after.max.ms", "3600000"),
                ],
            ),
        ],
    );
    let mut broker = Broker::start(dir.path(), &["corelog.shards=2"]);
    let mut c = broker.client();

    let code = |c: &mut Client, acks: i16, topic: &str, partition: i32, records: Vec<u8>| {
        produce_one(c, acks, topic, partition, records).error_code
    };
    // acks other than -1, 0, 1.
    assert_eq!(
        code(&mut c, 2, "plain", 0, batch(1, 1)),
        INVALID_REQUIRED_ACKS
    );
    assert_eq!(
        code(&mut c, -2, "plain", 0, batch(1, 1)),
        INVALID_REQUIRED_ACKS
    );
    // Unknown topic and partition.
    assert_eq!(
        code(&mut c, 1, "nope", 0, batch(1, 1)),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        code(&mut c, 1, "plain", 2, batch(1, 1)),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        code(&mut c, 1, "plain", -1, batch(1, 1)),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // A flipped byte: CRC mismatch.
    let mut corrupt = batch(2, 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(code(&mut c, 1, "plain", 0, corrupt), CORRUPT_MESSAGE);
    // A length field longer than the bytes.
    let mut truncated = batch(2, 1);
    truncated.truncate(truncated.len() - 5);
    assert_eq!(code(&mut c, 1, "plain", 0, truncated), CORRUPT_MESSAGE);
    // Two batches, no batch, a control batch, a non-zero base offset: INVALID_RECORD.
    let two = [batch(1, 1), batch(1, 2)].concat();
    assert_eq!(code(&mut c, 1, "plain", 0, two), INVALID_RECORD);
    assert_eq!(code(&mut c, 1, "plain", 0, Vec::new()), INVALID_RECORD);
    let response = c.call(PRODUCE_VERSION, &produce(1, &[("plain", 0, None)]));
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        INVALID_RECORD
    );
    let control = BatchBuilder::new(now_ms())
        .producer(5, 0, 0)
        .control(true)
        .record(
            Some(&[0, 0, 0, 0][..]),
            Some(&[0, 0, 0, 0, 0, 0][..]),
            &[],
            now_ms(),
        )
        .build();
    assert_eq!(code(&mut c, 1, "plain", 0, control), INVALID_RECORD);
    let offset_set = BatchBuilder::new(now_ms())
        .base_offset(7)
        .record(None, Some(&b"v"[..]), &[], now_ms())
        .build();
    assert_eq!(code(&mut c, 1, "plain", 0, offset_set), INVALID_RECORD);
    // max.message.bytes of the topic.
    assert_eq!(code(&mut c, 1, "small", 0, batch(1, 1)), NONE);
    let big = batch(10, 1);
    assert!(big.len() > 300);
    assert_eq!(code(&mut c, 1, "small", 0, big), MESSAGE_TOO_LARGE);
    // min.insync.replicas 2 on one node: acks=all refused, acks=1 fine.
    assert_eq!(
        code(&mut c, -1, "isr2", 0, batch(1, 1)),
        NOT_ENOUGH_REPLICAS
    );
    assert_eq!(code(&mut c, 1, "isr2", 0, batch(1, 1)), NONE);
    // Timestamps outside message.timestamp.before/after.max.ms.
    let hour = 3_600_000;
    assert_eq!(
        code(&mut c, 1, "recent", 0, batch_at(1, 1, now_ms() - 2 * hour)),
        INVALID_TIMESTAMP
    );
    assert_eq!(
        code(&mut c, 1, "recent", 0, batch_at(1, 1, now_ms() + 2 * hour)),
        INVALID_TIMESTAMP
    );
    assert_eq!(
        code(&mut c, 1, "recent", 0, batch_at(1, 1, now_ms() - hour / 2)),
        NONE
    );
    // Without the settings any timestamp goes.
    assert_eq!(code(&mut c, 1, "plain", 1, batch_at(1, 1, 1)), NONE);

    // acks=0 with a refused batch: no response, the connection is closed (as Kafka does).
    let mut c0 = broker.client();
    c0.send(
        PRODUCE_VERSION,
        &produce(0, &[("nope", 0, Some(batch(1, 1)))]),
    );
    assert!(c0.is_closed_within(Duration::from_secs(10)));
    // Produce v0-v2 are advertised (librdkafka) but refused by closing the connection.
    let mut old = broker.client();
    let mut v3 = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(
        &produce(1, &[("plain", 0, Some(batch(1, 1)))]),
        &mut v3,
        3,
    )
    .unwrap();
    // Produce v0-v2 use request header v1; the broker refuses before it reads the body.
    old.send_raw(0, 2, 1, &v3);
    assert!(old.is_closed_within(Duration::from_secs(10)));

    broker.stop();
    assert!(log_batches(dir.path(), "plain", 0).is_empty());
    assert_eq!(log_batches(dir.path(), "plain", 1).len(), 1);
    assert_eq!(log_batches(dir.path(), "small", 0).len(), 1);
    assert_eq!(log_batches(dir.path(), "isr2", 0).len(), 1);
    assert_eq!(log_batches(dir.path(), "recent", 0).len(), 1);
}

#[test]
fn idempotent_producers_get_duplicates_answered_and_gaps_and_old_epochs_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["corelog.shards=2"]);
    let mut c = broker.client();
    c.ensure_topic("idem");
    let (pid, epoch) = init_producer_id(&mut c);
    assert_eq!(epoch, 0);
    let (other, _) = init_producer_id(&mut c);
    assert_ne!(pid, other, "producer ids are unique");

    let first = producer_batch(pid, 0, 0, 3);
    let a = produce_one(&mut c, -1, "idem", 0, first.clone());
    assert_eq!((a.error_code, a.base_offset), (NONE, 0));
    let a = produce_one(&mut c, -1, "idem", 0, producer_batch(pid, 0, 3, 2));
    assert_eq!((a.error_code, a.base_offset), (NONE, 3));
    // A retry of either batch: the original offsets, nothing appended.
    let a = produce_one(&mut c, -1, "idem", 0, first.clone());
    assert_eq!((a.error_code, a.base_offset), (NONE, 0));
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 0, 3, 2));
    assert_eq!((a.error_code, a.base_offset), (NONE, 3));
    // A gap, and a sequence overlapping without matching a batch.
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 0, 7, 1));
    assert_eq!(a.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(a.base_offset, -1);
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 0, 1, 1));
    assert_eq!(a.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A new epoch must start at 0; then the old epoch is refused.
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 1, 5, 1));
    assert_eq!(a.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 1, 0, 1));
    assert_eq!((a.error_code, a.base_offset), (NONE, 5));
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(pid, 0, 5, 1));
    assert_eq!(a.error_code, INVALID_PRODUCER_EPOCH);
    // Producers are independent; state is per partition.
    let a = produce_one(&mut c, 1, "idem", 0, producer_batch(other, 0, 0, 1));
    assert_eq!((a.error_code, a.base_offset), (NONE, 6));
    // A transactional id gets its own producer id, which is none of the idempotent ones; an
    // empty one is an invalid request, as Kafka's coordinator answers.
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx")));
    r.transaction_timeout_ms = 60_000;
    let txn = c.call(4, &r);
    assert_eq!((txn.error_code, txn.producer_epoch), (NONE, 0));
    assert!(txn.producer_id.0 != pid && txn.producer_id.0 != other);
    r.transactional_id = Some(TransactionalId(StrBytes::from_static_str("")));
    assert_eq!(c.call(4, &r).error_code, INVALID_REQUEST);

    broker.stop();
    let headers = log_batches(dir.path(), "idem", 0);
    let got: Vec<(i64, i64, i32)> = headers
        .iter()
        .map(|h| (h.base_offset, h.producer_id, h.base_sequence))
        .collect();
    assert_eq!(
        got,
        vec![(0, pid, 0), (3, pid, 3), (5, pid, 0), (6, other, 0)],
        "duplicates were not appended again"
    );
}

#[test]
fn producer_state_survives_restarts_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["corelog.shards=2", "num.partitions=2"]);
    let mut c = broker.client();
    c.ensure_topic("durable");
    let (pid, _) = init_producer_id(&mut c);
    for p in 0..2 {
        let a = produce_one(&mut c, -1, "durable", p, producer_batch(pid, 0, 0, 4));
        assert_eq!((a.error_code, a.base_offset), (NONE, 0));
    }

    // Graceful restart: state comes from the snapshot.
    broker.stop();
    assert!(dir
        .path()
        .join("durable-0")
        .join("producer-state.snapshot")
        .exists());
    broker.restart();
    let mut c = broker.client();
    let a = produce_one(&mut c, -1, "durable", 0, producer_batch(pid, 0, 0, 4));
    assert_eq!(
        (a.error_code, a.base_offset),
        (NONE, 0),
        "duplicate after restart"
    );
    let a = produce_one(&mut c, -1, "durable", 0, producer_batch(pid, 0, 6, 1));
    assert_eq!(a.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let a = produce_one(&mut c, -1, "durable", 0, producer_batch(pid, 0, 4, 2));
    assert_eq!((a.error_code, a.base_offset), (NONE, 4));
    // Producer ids issued after a restart were never issued before.
    let (next, _) = init_producer_id(&mut c);
    assert!(next > pid);

    // A crash: the snapshot is older than the log, the rest is replayed from the log.
    broker.kill();
    broker.restart();
    let mut c = broker.client();
    let a = produce_one(&mut c, -1, "durable", 0, producer_batch(pid, 0, 4, 2));
    assert_eq!(
        (a.error_code, a.base_offset),
        (NONE, 4),
        "duplicate after a crash"
    );
    let a = produce_one(&mut c, -1, "durable", 1, producer_batch(pid, 0, 0, 4));
    assert_eq!((a.error_code, a.base_offset), (NONE, 0));
    let a = produce_one(&mut c, -1, "durable", 0, producer_batch(pid, 0, 6, 1));
    assert_eq!((a.error_code, a.base_offset), (NONE, 6));
    broker.stop();
    assert_eq!(log_batches(dir.path(), "durable", 0).len(), 3);
    assert_eq!(log_batches(dir.path(), "durable", 1).len(), 1);
}

#[test]
fn producer_state_is_snapshotted_at_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["corelog.shards=1", "log.segment.bytes=1024"]);
    let mut c = broker.client();
    c.ensure_topic("rolled");
    let (pid, _) = init_producer_id(&mut c);
    let mut offsets = Vec::new();
    for i in 0..20 {
        let a = produce_one(&mut c, -1, "rolled", 0, producer_batch(pid, 0, i * 2, 2));
        assert_eq!(a.error_code, NONE);
        offsets.push(a.base_offset);
    }
    // A crash: no shutdown snapshot, only those taken at rolls.
    broker.kill();
    let snapshot = dir.path().join("rolled-0").join("producer-state.snapshot");
    let text = std::fs::read_to_string(&snapshot).expect("a snapshot taken at a roll");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(value["offset"].as_i64().unwrap() > 0);
    broker.restart();
    let mut c = broker.client();
    for i in [16, 19] {
        let a = produce_one(&mut c, -1, "rolled", 0, producer_batch(pid, 0, i * 2, 2));
        assert_eq!((a.error_code, a.base_offset), (NONE, offsets[i as usize]));
    }
    let a = produce_one(&mut c, -1, "rolled", 0, producer_batch(pid, 0, 40, 1));
    assert_eq!((a.error_code, a.base_offset), (NONE, 40));
    broker.stop();
}
