//! The group coordinator's replay of `__consumer_offsets` at start-up over a log shaped as the
//! cleaner leaves it: gaps between batches and between segments, batches holding fewer records
//! than their offset range, tombstones deleting offsets and groups, a batch whose
//! `baseTimestamp` is a delete horizon (attribute bit 6), compressed batches. The log is written
//! by hand, byte by byte, then a real corelog starts on it and is asked what it knows.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{write_topics, Broker, Client};
use corelog_engine::batch::codec::compress;
use corelog_engine::batch::{Compression, DELETE_HORIZON_BIT};
use corelog_engine::partition::now_ms;
use corelog_engine::storage::partition_dir;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The topic whose offsets the groups commit.
const TOPIC: &str = "t";
/// One offsets partition, so that every group lives in the hand-written log.
const SETTINGS: &[&str] = &["offsets.topic.num.partitions=1"];

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Kafka's offset commit key (version 1).
fn offset_key(group: &str, partition: i32) -> Vec<u8> {
    let mut out = 1i16.to_be_bytes().to_vec();
    put_string(&mut out, group);
    put_string(&mut out, TOPIC);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// Kafka's offset commit value (version 3), committed now (so that retention keeps it).
fn offset_value(offset: i64) -> Vec<u8> {
    let mut out = 3i16.to_be_bytes().to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    put_string(&mut out, "");
    out.extend_from_slice(&now_ms().to_be_bytes());
    out
}

/// Kafka's group metadata key (version 2).
fn group_key(group: &str) -> Vec<u8> {
    let mut out = 2i16.to_be_bytes().to_vec();
    put_string(&mut out, group);
    out
}

/// Kafka's group metadata value (version 3) of an empty consumer group.
fn empty_group_value() -> Vec<u8> {
    let mut out = 3i16.to_be_bytes().to_vec();
    put_string(&mut out, "consumer");
    out.extend_from_slice(&0i32.to_be_bytes()); // generation
    out.extend_from_slice(&(-1i16).to_be_bytes()); // protocol: null
    out.extend_from_slice(&(-1i16).to_be_bytes()); // leader: null
    out.extend_from_slice(&now_ms().to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // members
    out
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One record at `offset_delta` of its batch; a `None` value is a tombstone.
struct Rec {
    offset_delta: i32,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

fn rec(offset_delta: i32, key: Vec<u8>, value: Option<Vec<u8>>) -> Rec {
    Rec {
        offset_delta,
        key,
        value,
    }
}

/// A stored v2 batch at `base_offset` covering `last_offset_delta + 1` offsets, holding only
/// `records` (at their own deltas), its body compressed with `codec`, and with
/// `delete_horizon_ms` in `baseTimestamp` (attribute bit 6) when given.
fn stored_batch(
    base_offset: i64,
    last_offset_delta: i32,
    records: &[Rec],
    codec: Compression,
    delete_horizon_ms: Option<i64>,
) -> Vec<u8> {
    producer_batch(
        base_offset,
        last_offset_delta,
        records,
        codec,
        delete_horizon_ms,
        None,
    )
}

/// Attribute bits of a transactional batch and of a control batch.
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// The producer of a transactional batch: its id, and whether the batch is its marker.
#[derive(Clone, Copy)]
struct TxnBatch {
    producer_id: i64,
    control: bool,
}

/// [`stored_batch`] written by a transactional producer (a TxnOffsetCommit, or its marker).
fn producer_batch(
    base_offset: i64,
    last_offset_delta: i32,
    records: &[Rec],
    codec: Compression,
    delete_horizon_ms: Option<i64>,
    txn: Option<TxnBatch>,
) -> Vec<u8> {
    let now = now_ms();
    let base_timestamp = delete_horizon_ms.unwrap_or(now);
    let mut body = Vec::new();
    for r in records {
        let mut rec = vec![0u8]; // attributes
        put_varint(&mut rec, now - base_timestamp); // timestamp delta
        put_varint(&mut rec, i64::from(r.offset_delta));
        put_varint(&mut rec, r.key.len() as i64);
        rec.extend_from_slice(&r.key);
        match &r.value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0); // headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let body = compress(codec, &body);
    let mut attributes = i16::from(codec.id());
    if delete_horizon_ms.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    if let Some(t) = txn {
        attributes |= TRANSACTIONAL_BIT;
        if t.control {
            attributes |= CONTROL_BIT;
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&txn.map_or(-1, |t| t.producer_id).to_be_bytes()); // producerId
    b.extend_from_slice(&txn.map_or(-1i16, |_| 0).to_be_bytes()); // producerEpoch
                                                                  // baseSequence: -1 but for a transactional data batch (Kafka's coordinator writes 0).
    let base_sequence = txn.map_or(-1i32, |t| if t.control { -1 } else { 0 });
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Writes the offsets partition as the cleaner could have left it. Segment 0 holds offsets 0-9,
/// segment 20 offsets 22-30; the recovery point (20) says segment 0 was durable, so its early
/// end (10, not 20) is a compaction gap, not a torn write.
fn write_compacted_offsets_log(data: &Path) {
    let dir = partition_dir(data, OFFSETS_TOPIC, 0);
    std::fs::create_dir_all(&dir).unwrap();
    let horizon = now_ms() + 24 * 3600 * 1000;
    let segment0 = [
        // Offsets 0-4, records only at 1, 2, 4.
        stored_batch(
            0,
            4,
            &[
                rec(1, offset_key("g1", 0), Some(offset_value(100))),
                rec(2, offset_key("g5", 0), Some(offset_value(50))),
                rec(4, offset_key("g1", 1), Some(offset_value(200))),
            ],
            Compression::None,
            None,
        ),
        // Gap 5-6; offsets 7-9, gzip, records at 7 and 9.
        stored_batch(
            7,
            2,
            &[
                rec(0, offset_key("g2", 0), Some(offset_value(300))),
                rec(2, group_key("g2"), Some(empty_group_value())),
            ],
            Compression::Gzip,
            None,
        ),
    ]
    .concat();
    let segment20 = [
        // Gap 10-21 across the segment boundary; a cleaned batch with a delete horizon:
        // tombstones for g1's partition 1 and for all of g5, an overwrite of g2's offset.
        stored_batch(
            22,
            4,
            &[
                rec(0, offset_key("g1", 1), None),
                rec(2, offset_key("g2", 0), Some(offset_value(301))),
                rec(3, offset_key("g5", 0), None),
                rec(4, group_key("g5"), None),
            ],
            Compression::Snappy,
            Some(horizon),
        ),
        // Offsets 27-30, zstd, one record at the very end.
        stored_batch(
            27,
            3,
            &[rec(3, offset_key("g1", 2), Some(offset_value(400)))],
            Compression::Zstd,
            None,
        ),
    ]
    .concat();
    std::fs::write(dir.join(format!("{:020}.log", 0)), segment0).unwrap();
    std::fs::write(dir.join(format!("{:020}.log", 20)), segment20).unwrap();
    std::fs::write(dir.join("recovery-point-offset"), "20\n").unwrap();
}

/// Every committed offset of `group` on `TOPIC`: partition -> offset.
fn committed(c: &mut Client, group: &str) -> BTreeMap<i32, i64> {
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(StrBytes::from_string(group.to_string()));
    r.topics = None; // all
    let response = c.call(7, &r);
    assert_eq!(response.error_code, 0, "OffsetFetch {group}");
    let mut out = BTreeMap::new();
    for t in response.topics {
        assert_eq!(t.name.as_str(), TOPIC);
        for p in t.partitions {
            assert_eq!(p.error_code, 0, "OffsetFetch {group} {}", p.partition_index);
            out.insert(p.partition_index, p.committed_offset);
        }
    }
    out
}

/// The groups the broker knows, with their states.
fn groups(c: &mut Client) -> BTreeMap<String, String> {
    let response = c.call(4, &ListGroupsRequest::default());
    assert_eq!(response.error_code, 0);
    response
        .groups
        .into_iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect()
}

/// A standalone commit (no generation) of `offset` for `group` on partition 0.
fn commit(c: &mut Client, group: &str, offset: i64) {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_leader_epoch = -1;
    p.committed_metadata = Some(StrBytes::from_static_str(""));
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str(TOPIC));
    t.partitions = vec![p];
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(StrBytes::from_string(group.to_string()));
    r.generation_id_or_member_epoch = -1;
    r.member_id = StrBytes::from_static_str("");
    r.topics = vec![t];
    let response = c.call(8, &r);
    assert_eq!(
        response.topics[0].partitions[0].error_code, 0,
        "commit {group}"
    );
}

fn assert_replayed(c: &mut Client, g1_partition0: i64) {
    assert_eq!(
        committed(c, "g1"),
        BTreeMap::from([(0, g1_partition0), (2, 400)]),
        "g1: partition 1's tombstone applied, the record after the gaps read"
    );
    assert_eq!(
        committed(c, "g2"),
        BTreeMap::from([(0, 301)]),
        "g2: the overwrite wins"
    );
    assert_eq!(committed(c, "g5"), BTreeMap::new(), "g5: deleted");
    let listed = groups(c);
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        ["g1", "g2"],
        "g5's group tombstone removed it: {listed:?}"
    );
    assert_eq!(listed["g2"], "Empty", "g2's metadata record restored");
}

#[test]
fn replay_reads_a_compacted_offsets_log() {
    let data = tempfile::tempdir().unwrap();
    write_topics(
        data.path(),
        &[
            (OFFSETS_TOPIC, 1, &[("cleanup.policy", "compact")]),
            (TOPIC, 3, &[]),
        ],
    );
    write_compacted_offsets_log(data.path());
    let mut broker = Broker::start(data.path(), SETTINGS);
    let mut c = broker.client();
    assert_replayed(&mut c, 100);

    // Appends go on after the hand-written end (offset 31), and the next replay, after a
    // graceful stop and after a crash, sees them together with the compacted part.
    commit(&mut c, "g1", 101);
    assert_replayed(&mut c, 101);
    drop(c);
    broker.stop();
    broker.restart();
    assert_replayed(&mut broker.client(), 101);
    commit(&mut broker.client(), "g1", 102);
    broker.kill();
    broker.restart();
    assert_replayed(&mut broker.client(), 102);
    broker.stop();
    let last = common::log_batches(data.path(), OFFSETS_TOPIC, 0)
        .last()
        .map(|h| h.base_offset);
    assert_eq!(last, Some(32), "two commits appended at 31 and 32");
}

/// `__consumer_offsets` is created on first use with the configs Kafka gives it, its
/// `segment.bytes` from the broker's `offsets.topic.segment.bytes`.
#[test]
fn the_offsets_topic_is_created_as_kafka_creates_it() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;

    let data = tempfile::tempdir().unwrap();
    write_topics(data.path(), &[(TOPIC, 1, &[])]);
    let broker = Broker::start(
        data.path(),
        &[
            "offsets.topic.num.partitions=1",
            "offsets.topic.segment.bytes=2097152",
        ],
    );
    let mut c = broker.client();
    commit(&mut c, "g", 7);
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = 2; // TOPIC
    resource.resource_name = StrBytes::from_static_str(OFFSETS_TOPIC);
    resource.configuration_keys = Some(
        ["cleanup.policy", "segment.bytes", "compression.type"]
            .map(StrBytes::from_static_str)
            .to_vec(),
    );
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    let response = c.call(4, &request);
    assert_eq!(response.results[0].error_code, 0);
    let configs: BTreeMap<String, Option<String>> = response.results[0]
        .configs
        .iter()
        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
        .collect();
    let some = |v: &str| Some(v.to_string());
    assert_eq!(
        configs,
        BTreeMap::from([
            ("cleanup.policy".to_string(), some("compact")),
            ("compression.type".to_string(), some("producer")),
            ("segment.bytes".to_string(), some("2097152")),
        ])
    );
    assert_eq!(committed(&mut c, "g"), BTreeMap::from([(0, 7)]));
}

/// One transactional offset record of `producer_id` at `offset`: g1's offset of `partition`.
fn txn_offset(offset: i64, producer_id: i64, partition: i32, value: i64) -> Vec<u8> {
    let txn = TxnBatch {
        producer_id,
        control: false,
    };
    let records = [rec(
        0,
        offset_key("g1", partition),
        Some(offset_value(value)),
    )];
    producer_batch(offset, 0, &records, Compression::None, None, Some(txn))
}

/// The marker of `producer_id` at `offset` (key: version 0, type 1 commit / 0 abort; value:
/// version 0, coordinator epoch 0).
fn marker(offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
    let txn = TxnBatch {
        producer_id,
        control: true,
    };
    let key = vec![0, 0, 0, u8::from(commit)];
    let records = [rec(0, key, Some(vec![0; 6]))];
    producer_batch(offset, 0, &records, Compression::None, None, Some(txn))
}

/// g1's offsets with OffsetFetch v7 `require_stable`: partition -> (error code, offset).
fn committed_stable(c: &mut Client) -> BTreeMap<i32, (i16, i64)> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str(TOPIC));
    t.partition_indexes = vec![0, 1, 2];
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("g1"));
    r.topics = Some(vec![t]);
    r.require_stable = true;
    let response = c.call(7, &r);
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, (p.error_code, p.committed_offset)))
        .collect()
}

/// Offsets committed inside transactions (TxnOffsetCommit records: transactional batches of the
/// producer) count only once their commit marker follows; an abort marker drops them; those of a
/// transaction with no marker yet stay pending: absent from a plain OffsetFetch, and
/// UNSTABLE_OFFSET_COMMIT (88) to a `require_stable` one (what read_committed consumers send).
#[test]
fn replay_pairs_transactional_offsets_with_their_markers() {
    let data = tempfile::tempdir().unwrap();
    write_topics(
        data.path(),
        &[
            (OFFSETS_TOPIC, 1, &[("cleanup.policy", "compact")]),
            (TOPIC, 3, &[]),
        ],
    );
    let dir = partition_dir(data.path(), OFFSETS_TOPIC, 0);
    std::fs::create_dir_all(&dir).unwrap();
    let log = [
        txn_offset(0, 7, 0, 10),
        txn_offset(1, 8, 1, 20),
        marker(2, 7, true),
        marker(3, 8, false),
        txn_offset(4, 9, 2, 30),
    ]
    .concat();
    std::fs::write(dir.join(format!("{:020}.log", 0)), log).unwrap();
    let broker = Broker::start(data.path(), SETTINGS);
    let mut c = broker.client();
    assert_eq!(
        committed(&mut c, "g1"),
        BTreeMap::from([(0, 10)]),
        "producer 7 committed, 8 aborted, 9 is still open"
    );
    assert_eq!(
        committed_stable(&mut c),
        BTreeMap::from([(0, (0, 10)), (1, (0, -1)), (2, (88, -1))])
    );
}
