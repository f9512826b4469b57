//! Fetch and ListOffsets against the real `corelog` binary.

mod fetch_support;

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use fetch_support::{batch, log_counter, populate, Broker, Client, Stored, TOPIC_ID};

const TOPIC: &str = "events";
/// Records per batch in partition 0.
const RECORDS_PER_BATCH: i64 = 5;
/// Batches in partition 0.
const BATCHES: i64 = 10;
/// Timestamp of record `o` of partition 0: strictly increasing with the offset.
fn ts_of(o: i64) -> i64 {
    1_700_000_000_000 + o * 10
}
/// Partition 1's largest timestamp, carried by its offset `MAX_TS_OFFSET` (mid-batch).
const MAX_TS: i64 = 1_800_000_000_000;
const MAX_TS_OFFSET: i64 = 4;

/// Partition 0: 10 batches of 5 records, timestamps increasing; partition 1: two batches of 3
/// records whose largest timestamp sits in the middle of the second; partition 2: empty.
fn setup() -> (tempfile::TempDir, Vec<Stored>) {
    let dir = tempfile::tempdir().unwrap();
    let value = [b'v'; 100];
    let p0: Vec<Vec<u8>> = (0..BATCHES)
        .map(|b| {
            let recs: Vec<(i64, &[u8])> = (0..RECORDS_PER_BATCH)
                .map(|r| (ts_of(b * RECORDS_PER_BATCH + r), &value[..]))
                .collect();
            batch(&recs)
        })
        .collect();
    let p1 = vec![
        batch(&[(1000, b"a"), (1001, b"b"), (1002, b"c")]),
        batch(&[(2000, b"d"), (MAX_TS, b"e"), (3000, b"f")]),
    ];
    let stored = populate(dir.path(), TOPIC, vec![p0, p1, Vec::new()]);
    assert_eq!(stored[0].end_offset, BATCHES * RECORDS_PER_BATCH);
    (dir, stored)
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

struct Fetch {
    version: i16,
    topic: String,
    parts: Vec<(i32, i64, i32)>,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
    session: (i32, i32),
}

impl Fetch {
    fn new(version: i16, parts: &[(i32, i64, i32)]) -> Fetch {
        Fetch {
            version,
            topic: TOPIC.to_string(),
            parts: parts.to_vec(),
            max_bytes: 50 << 20,
            min_bytes: 0,
            max_wait_ms: 0,
            session: (0, -1),
        }
    }

    fn request(&self) -> FetchRequest {
        let mut t = FetchTopic::default();
        if self.version >= 13 {
            t.topic_id = if self.topic == TOPIC {
                uuid::Uuid::parse_str(TOPIC_ID).unwrap()
            } else {
                uuid::Uuid::from_u128(7)
            };
        } else {
            t.topic = topic_name(&self.topic);
        }
        t.partitions = self
            .parts
            .iter()
            .map(|&(p, offset, max)| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.fetch_offset = offset;
                fp.partition_max_bytes = max;
                fp.log_start_offset = -1;
                fp.current_leader_epoch = -1;
                fp.last_fetched_epoch = -1;
                fp
            })
            .collect();
        let mut r = FetchRequest::default();
        if self.version < 15 {
            r.replica_id = kafka_protocol::messages::BrokerId(-1);
        }
        r.max_wait_ms = self.max_wait_ms;
        r.min_bytes = self.min_bytes;
        r.max_bytes = self.max_bytes;
        r.session_id = self.session.0;
        r.session_epoch = self.session.1;
        r.topics = vec![t];
        r
    }

    fn send(&self, c: &mut Client) -> FetchResponse {
        c.call(ApiKey::Fetch, self.version, &self.request())
    }
}

fn partitions(r: &FetchResponse) -> Vec<PartitionData> {
    assert_eq!(r.responses.len(), 1);
    r.responses[0].partitions.clone()
}

fn records(p: &PartitionData) -> Vec<u8> {
    p.records.clone().expect("records are never null").to_vec()
}

/// Every advertised version that clients use returns the stored batches byte for byte, with the
/// partition's offsets; a fetch from the middle of a batch starts at that batch.
#[test]
fn fetch_returns_stored_batches_byte_for_byte() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    let end = stored[0].end_offset;
    for version in [4, 7, 10, 11, 12, 13, 15, 16] {
        let r = Fetch::new(
            version,
            &[(0, 0, 10 << 20), (1, 0, 10 << 20), (2, 0, 1 << 20)],
        )
        .send(&mut c);
        if version >= 7 {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.session_id, 0, "no fetch session is created");
        }
        if version >= 13 {
            assert_eq!(
                r.responses[0].topic_id,
                uuid::Uuid::parse_str(TOPIC_ID).unwrap()
            );
        } else {
            assert_eq!(r.responses[0].topic.as_str(), TOPIC);
        }
        let ps = partitions(&r);
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[0].error_code, 0, "v{version}");
        assert_eq!(records(&ps[0]), stored[0].all(), "v{version}");
        assert_eq!(ps[0].high_watermark, end);
        assert_eq!(ps[0].last_stable_offset, end);
        if version >= 5 {
            assert_eq!(ps[0].log_start_offset, 0);
        }
        assert_eq!(records(&ps[1]), stored[1].all(), "v{version}");
        assert_eq!(ps[1].high_watermark, 6);
        assert_eq!(ps[2].error_code, 0);
        assert!(records(&ps[2]).is_empty());
        assert_eq!(ps[2].high_watermark, 0);
    }
    // From the middle of batch 1 (offsets 5..=9): the whole of batch 1 onwards.
    let r = Fetch::new(12, &[(0, 7, 10 << 20)]).send(&mut c);
    assert_eq!(
        records(&partitions(&r)[0]),
        stored[0].bytes(1, BATCHES as usize)
    );
    // read_committed is accepted and (without transactions) the same.
    let mut f = Fetch::new(12, &[(0, 40, 10 << 20)]).request();
    f.isolation_level = 1;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &f);
    assert_eq!(
        records(&partitions(&r)[0]),
        stored[0].bytes(8, BATCHES as usize)
    );
    broker.stop();
}

/// partition_max_bytes and max_bytes cut at batch boundaries; the first partition with data
/// returns at least one whole batch however small the limits (KIP-74).
#[test]
fn fetch_limits() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    let batch_len = stored[0].batches[0].1.len() as i32;
    // Two and a bit batches fit: exactly two come back.
    let r = Fetch::new(12, &[(0, 0, 2 * batch_len + 10)]).send(&mut c);
    assert_eq!(records(&partitions(&r)[0]), stored[0].bytes(0, 2));
    // One byte: still one whole batch (first partition, nothing read yet) ...
    let r = Fetch::new(12, &[(0, 0, 1), (1, 0, 1)]).send(&mut c);
    let ps = partitions(&r);
    assert_eq!(records(&ps[0]), stored[0].bytes(0, 1));
    // ... but not for the next partition, which only gets what fits.
    assert!(records(&ps[1]).is_empty());
    assert_eq!(ps[1].high_watermark, 6);
    // max_bytes bounds the whole response: three batches of partition 0, none of partition 1.
    let mut f = Fetch::new(12, &[(0, 0, 10 << 20), (1, 0, 10 << 20)]);
    f.max_bytes = 3 * batch_len + 1;
    let ps = partitions(&f.send(&mut c));
    assert_eq!(records(&ps[0]), stored[0].bytes(0, 3));
    assert!(records(&ps[1]).is_empty());
    // max_bytes smaller than a batch: still one batch (KIP-74).
    f.max_bytes = 1;
    let ps = partitions(&f.send(&mut c));
    assert_eq!(records(&ps[0]), stored[0].bytes(0, 1));
    assert!(records(&ps[1]).is_empty());
    broker.stop();
}

#[test]
fn fetch_errors() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    let end = stored[0].end_offset;
    // At the high watermark: no error, nothing to send.
    let p = &partitions(&Fetch::new(12, &[(0, end, 1 << 20)]).send(&mut c))[0];
    assert_eq!(p.error_code, 0);
    assert!(records(p).is_empty());
    // Past it, and before the log start: OFFSET_OUT_OF_RANGE with the partition's offsets.
    for offset in [end + 1, -5] {
        let p = &partitions(&Fetch::new(12, &[(0, offset, 1 << 20)]).send(&mut c))[0];
        assert_eq!(p.error_code, 1, "offset {offset}");
        assert_eq!(p.high_watermark, end);
        assert_eq!(p.log_start_offset, 0);
        assert!(records(p).is_empty());
    }
    // Unknown partition of a known topic.
    let p = &partitions(&Fetch::new(12, &[(9, 0, 1 << 20)]).send(&mut c))[0];
    assert_eq!(p.error_code, 3);
    // Unknown topic by name, and by id from v13.
    let mut f = Fetch::new(12, &[(0, 0, 1 << 20)]);
    f.topic = "nope".into();
    assert_eq!(partitions(&f.send(&mut c))[0].error_code, 3);
    f.version = 13;
    assert_eq!(partitions(&f.send(&mut c))[0].error_code, 100);
    // An error answers at once even with min_bytes unmet and a long max_wait.
    let mut f = Fetch::new(12, &[(0, end + 1, 1 << 20)]);
    f.min_bytes = 1;
    f.max_wait_ms = 10_000;
    let start = Instant::now();
    assert_eq!(partitions(&f.send(&mut c))[0].error_code, 1);
    assert!(start.elapsed() < Duration::from_secs(5));
    broker.stop();
}

/// KIP-227: the broker creates no sessions; an incremental fetch gets FETCH_SESSION_ID_NOT_FOUND
/// and a full one keeps working.
#[test]
fn fetch_sessions_are_declined() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    for version in [7, 12, 16] {
        // Asks to create a session (epoch 0): served in full, session id 0 = not created.
        let mut f = Fetch::new(version, &[(0, 0, 10 << 20)]);
        f.session = (0, 0);
        let r = f.send(&mut c);
        assert_eq!((r.error_code, r.session_id), (0, 0));
        assert_eq!(records(&partitions(&r)[0]), stored[0].all());
        // Incremental on a session that does not exist.
        f.session = (1234, 1);
        let r = f.send(&mut c);
        assert_eq!((r.error_code, r.session_id), (70, 0));
        assert!(r.responses.is_empty());
    }
    broker.stop();
}

/// With fewer than min_bytes available the fetch waits about max_wait_ms; with enough it answers
/// at once.
#[test]
fn fetch_long_poll() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    let end = stored[0].end_offset;
    const WAIT_MS: u64 = 400;
    let mut f = Fetch::new(12, &[(0, end, 1 << 20), (2, 0, 1 << 20)]);
    f.min_bytes = 1;
    f.max_wait_ms = WAIT_MS as i32;
    let start = Instant::now();
    let ps = partitions(&f.send(&mut c));
    let waited = start.elapsed();
    assert!(records(&ps[0]).is_empty() && records(&ps[1]).is_empty());
    assert!(
        waited >= Duration::from_millis(WAIT_MS - 20),
        "answered after {waited:?}"
    );
    assert!(waited < Duration::from_millis(WAIT_MS + 3000), "{waited:?}");
    // Data available: min_bytes is met, no waiting.
    let mut f = Fetch::new(12, &[(0, 0, 1 << 20)]);
    f.min_bytes = 1;
    f.max_wait_ms = 30_000;
    let start = Instant::now();
    assert_eq!(records(&partitions(&f.send(&mut c))[0]), stored[0].all());
    assert!(start.elapsed() < Duration::from_secs(10));
    // min_bytes above what exists: the full wait, then whatever there is.
    let mut f = Fetch::new(12, &[(1, 0, 1 << 20)]);
    f.min_bytes = 1 << 20;
    f.max_wait_ms = WAIT_MS as i32;
    let start = Instant::now();
    assert_eq!(records(&partitions(&f.send(&mut c))[0]), stored[1].all());
    assert!(start.elapsed() >= Duration::from_millis(WAIT_MS - 20));
    broker.stop();
}

/// The record bytes go out by splice: the broker's shutdown line counts them (each spliced byte
/// twice, file→pipe and pipe→socket). With `corelog.fetch.zero.copy=false` the same bytes are
/// sent copied and nothing is spliced.
#[test]
fn fetch_is_zero_copy_and_the_copying_path_matches() {
    let (dir, stored) = setup();
    let mut sent = 0u64;
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    for offset in [0, 12, 33] {
        let ps =
            partitions(&Fetch::new(12, &[(0, offset, 10 << 20), (1, 0, 10 << 20)]).send(&mut c));
        let first = (offset / RECORDS_PER_BATCH) as usize;
        assert_eq!(records(&ps[0]), stored[0].bytes(first, BATCHES as usize));
        assert_eq!(records(&ps[1]), stored[1].all());
        sent += (records(&ps[0]).len() + records(&ps[1]).len()) as u64;
    }
    drop(c);
    let log = broker.stop();
    assert_eq!(
        log_counter(&log, "fetch totals", "fetch_zero_copy_bytes"),
        sent
    );
    assert_eq!(log_counter(&log, "fetch totals", "fetch_copied_bytes"), 0);
    assert_eq!(log_counter(&log, "fetch totals", "spliced_bytes"), 2 * sent);

    let broker = Broker::start(dir.path(), &["corelog.fetch.zero.copy=false"]);
    let mut c = broker.connect();
    let ps = partitions(&Fetch::new(12, &[(0, 0, 10 << 20), (1, 0, 10 << 20)]).send(&mut c));
    assert_eq!(records(&ps[0]), stored[0].all());
    assert_eq!(records(&ps[1]), stored[1].all());
    let copied = (stored[0].all().len() + stored[1].all().len()) as u64;
    drop(c);
    let log = broker.stop();
    assert_eq!(
        log_counter(&log, "fetch totals", "fetch_zero_copy_bytes"),
        0
    );
    assert_eq!(
        log_counter(&log, "fetch totals", "fetch_copied_bytes"),
        copied
    );
    assert_eq!(log_counter(&log, "fetch totals", "spliced_bytes"), 0);
}

fn list_offsets(
    c: &mut Client,
    version: i16,
    topic: &str,
    queries: &[(i32, i64)],
) -> Vec<(i16, i64, i64)> {
    let mut t = ListOffsetsTopic::default();
    t.name = topic_name(topic);
    t.partitions = queries
        .iter()
        .map(|&(p, ts)| {
            let mut lp = ListOffsetsPartition::default();
            lp.partition_index = p;
            lp.timestamp = ts;
            lp.current_leader_epoch = -1;
            lp
        })
        .collect();
    let mut r = ListOffsetsRequest::default();
    r.replica_id = kafka_protocol::messages::BrokerId(-1);
    r.topics = vec![t];
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, version, &r);
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset, p.timestamp))
        .collect()
}

#[test]
fn list_offsets_special_and_by_time() {
    let (dir, stored) = setup();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = broker.connect();
    let end = stored[0].end_offset;
    for version in [1, 4, 7, 8] {
        let got = list_offsets(
            &mut c,
            version,
            TOPIC,
            &[(0, -2), (0, -1), (2, -2), (2, -1)],
        );
        assert_eq!(
            got,
            vec![(0, 0, -1), (0, end, -1), (0, 0, -1), (0, 0, -1)],
            "v{version}"
        );
    }
    // By time: exact records, also in the middle of a batch.
    let got = list_offsets(
        &mut c,
        7,
        TOPIC,
        &[
            (0, 0),
            (0, ts_of(0)),
            (0, ts_of(7)),
            (0, ts_of(7) - 3),
            (0, ts_of(end - 1)),
            (0, ts_of(end - 1) + 1),
            (2, 0),
        ],
    );
    assert_eq!(
        got,
        vec![
            (0, 0, ts_of(0)),
            (0, 0, ts_of(0)),
            (0, 7, ts_of(7)),
            (0, 7, ts_of(7)),
            (0, end - 1, ts_of(end - 1)),
            (0, -1, -1),
            (0, -1, -1),
        ]
    );
    // MAX_TIMESTAMP (v7+): the record carrying the largest timestamp, mid-batch; -1 when empty.
    let got = list_offsets(&mut c, 7, TOPIC, &[(0, -3), (1, -3), (2, -3)]);
    assert_eq!(
        got,
        vec![
            (0, end - 1, ts_of(end - 1)),
            (0, MAX_TS_OFFSET, MAX_TS),
            (0, -1, -1)
        ]
    );
    // Partition 1 by time: timestamps are not monotonic; the first record at or after.
    let got = list_offsets(&mut c, 7, TOPIC, &[(1, 1001), (1, 1500), (1, 2500)]);
    assert_eq!(got, vec![(0, 1, 1001), (0, 3, 2000), (0, 4, MAX_TS)]);
    // EARLIEST_LOCAL (v8).
    assert_eq!(list_offsets(&mut c, 8, TOPIC, &[(0, -4)]), vec![(0, 0, -1)]);
    // Unknown topic and partition.
    assert_eq!(list_offsets(&mut c, 7, "nope", &[(0, -1)])[0].0, 3);
    assert_eq!(list_offsets(&mut c, 7, TOPIC, &[(5, -1)])[0].0, 3);
    broker.stop();
}
