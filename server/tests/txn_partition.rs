//! The partition side of transactions over the wire, without the transaction coordinator:
//! transactional batches written by hand (a producer id from a non-transactional
//! InitProducerId, the transactional attribute set) open transactions that bound the last
//! stable offset (LSO); read_committed Fetch and ListOffsets stop there; the producer's
//! non-transactional batches are refused while its transaction is open; DescribeProducers (and
//! Kafka's `kafka-transactions describe-producers`) shows the open transaction; a crash keeps it
//! open (producer-state replay).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{write_topics, Broker, Client};
use corelog_engine::batch::{BatchBuilder, BatchHeader};
use corelog_engine::partition::now_ms;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    BrokerId, DescribeProducersRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest,
    ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const TOPIC: &str = "tx";
const TXN_STATE_TOPIC: &str = "__transaction_state";
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 7;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_RECORD: i16 = 87;

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A batch of `records` records; with a producer `(id, epoch, sequence, transactional)`.
fn batch(records: usize, producer: Option<(i64, i16, i32, bool)>, timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(timestamp);
    if let Some((pid, epoch, seq, transactional)) = producer {
        b = b.producer(pid, epoch, seq).transactional(transactional);
    }
    for i in 0..records {
        b.push_record(Some(format!("k{i}").as_bytes()), Some(b"v"), &[], timestamp);
    }
    b.build()
}

fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = name(topic);
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 30_000;
    r.topic_data = vec![t];
    let response = c.call(PRODUCE_VERSION, &r);
    response.responses[0].partition_responses[0].clone()
}

fn init_producer_id(c: &mut Client) -> (i64, i16) {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = None;
    r.transaction_timeout_ms = 60_000;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    let response = c.call(4, &r);
    assert_eq!(response.error_code, NONE);
    (response.producer_id.0, response.producer_epoch)
}

/// Fetches `partitions` (partition, offset) of TOPIC at `isolation`, at once.
fn fetch(c: &mut Client, isolation: i8, partitions: &[(i32, i64)]) -> Vec<PartitionData> {
    fetch_waiting(c, isolation, partitions, 0, 0)
}

/// [`fetch`] as a long poll: waits up to `max_wait_ms` for `min_bytes`.
fn fetch_waiting(
    c: &mut Client,
    isolation: i8,
    partitions: &[(i32, i64)],
    min_bytes: i32,
    max_wait_ms: i32,
) -> Vec<PartitionData> {
    let mut t = FetchTopic::default();
    t.topic = name(TOPIC);
    t.partitions = partitions
        .iter()
        .map(|&(p, offset)| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.fetch_offset = offset;
            fp.partition_max_bytes = 1 << 20;
            fp.log_start_offset = -1;
            fp.current_leader_epoch = -1;
            fp.last_fetched_epoch = -1;
            fp
        })
        .collect();
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(-1);
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = min_bytes;
    r.max_bytes = 10 << 20;
    r.session_id = 0;
    r.session_epoch = -1;
    r.isolation_level = isolation;
    r.topics = vec![t];
    let response = c.call(FETCH_VERSION, &r);
    assert_eq!(response.error_code, NONE);
    response.responses[0].partitions.clone()
}

/// The (base offset, record count) of each batch in a fetched `records` field.
fn batches(p: &PartitionData) -> Vec<(i64, i32)> {
    let bytes = p.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = BatchHeader::parse(&bytes[at..]).expect("a batch header");
        out.push((h.base_offset, h.record_count));
        at += h.total_bytes();
    }
    assert_eq!(at, bytes.len(), "whole batches");
    out
}

/// ListOffsets of TOPIC's `partition` at `timestamp` and `isolation`: (error, offset).
fn list_offset(c: &mut Client, partition: i32, timestamp: i64, isolation: i8) -> (i16, i64) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = timestamp;
    p.current_leader_epoch = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = name(TOPIC);
    t.partitions = vec![p];
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(-1);
    r.isolation_level = isolation;
    r.topics = vec![t];
    let response = c.call(LIST_OFFSETS_VERSION, &r);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn broker(dir: &std::path::Path) -> Broker {
    write_topics(dir, &[(TOPIC, 2, &[]), (TXN_STATE_TOPIC, 1, &[])]);
    Broker::start(
        dir,
        &["corelog.shards=2", "transaction.state.log.num.partitions=1"],
    )
}

/// Writes, on TOPIC: p0 = [0: plain, 1..=2: pid's transaction, 3: plain], p1 = [0: pid's
/// transaction]. Returns (pid, epoch, timestamp of the transactional batches).
fn write_open_transaction(c: &mut Client) -> (i64, i16, i64) {
    let (pid, epoch) = init_producer_id(c);
    let t0 = now_ms() - 60_000;
    let t1 = t0 + 10_000;
    let t2 = t0 + 20_000;
    let r = produce(c, TOPIC, 0, batch(1, None, t0));
    assert_eq!((r.error_code, r.base_offset), (NONE, 0));
    let r = produce(c, TOPIC, 0, batch(2, Some((pid, epoch, 0, true)), t1));
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 1),
        "{:?}",
        r.error_message
    );
    let r = produce(c, TOPIC, 1, batch(1, Some((pid, epoch, 0, true)), t1));
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 0),
        "{:?}",
        r.error_message
    );
    let r = produce(c, TOPIC, 0, batch(1, None, t2));
    assert_eq!((r.error_code, r.base_offset), (NONE, 3));
    (pid, epoch, t1)
}

/// Open transactions bound the LSO: read_committed Fetch returns nothing at or past it, every
/// response carries it, ListOffsets read_committed answers it; the producer's
/// non-transactional batch is INVALID_TXN_STATE; a transactional batch needs a producer id;
/// `__transaction_state` refuses client writes; DescribeProducers shows the transaction.
#[test]
fn open_transactions_bound_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let mut c = broker.client();
    let (pid, epoch, t1) = write_open_transaction(&mut c);

    // read_committed: p0 stops before the transaction (LSO 1), p1 has nothing stable.
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 0), (1, 0)]);
    assert_eq!(ps[0].error_code, NONE);
    assert_eq!(batches(&ps[0]), vec![(0, 1)]);
    assert_eq!((ps[0].high_watermark, ps[0].last_stable_offset), (4, 1));
    assert_eq!(
        ps[0].aborted_transactions.as_deref().map(<[_]>::len),
        Some(0)
    );
    assert_eq!(batches(&ps[1]), vec![]);
    assert_eq!((ps[1].high_watermark, ps[1].last_stable_offset), (1, 0));
    // At the LSO (and between it and the high watermark): empty, no error.
    for offset in [1, 2, 4] {
        let ps = fetch(&mut c, READ_COMMITTED, &[(0, offset)]);
        assert_eq!(ps[0].error_code, NONE, "offset {offset}");
        assert_eq!(batches(&ps[0]), vec![], "offset {offset}");
        assert_eq!(ps[0].last_stable_offset, 1);
    }
    // Past the high watermark: still out of range.
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 5)]);
    assert_eq!(ps[0].error_code, 1, "OFFSET_OUT_OF_RANGE");
    // read_uncommitted: everything, and the LSO in the response too (as Kafka).
    let ps = fetch(&mut c, READ_UNCOMMITTED, &[(0, 0), (1, 0)]);
    assert_eq!(batches(&ps[0]), vec![(0, 1), (1, 2), (3, 1)]);
    assert_eq!((ps[0].high_watermark, ps[0].last_stable_offset), (4, 1));
    assert_eq!(batches(&ps[1]), vec![(0, 1)]);
    assert_eq!(ps[1].last_stable_offset, 0);

    // ListOffsets: latest is the LSO for read_committed, the high watermark otherwise.
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 1));
    assert_eq!(list_offset(&mut c, 1, LATEST, READ_COMMITTED), (NONE, 0));
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_UNCOMMITTED), (NONE, 4));
    assert_eq!(list_offset(&mut c, 0, EARLIEST, READ_COMMITTED), (NONE, 0));
    // By time: the transaction's records are past the LSO for read_committed.
    assert_eq!(list_offset(&mut c, 0, t1, READ_UNCOMMITTED), (NONE, 1));
    assert_eq!(list_offset(&mut c, 0, t1, READ_COMMITTED), (NONE, -1));
    assert_eq!(list_offset(&mut c, 0, 0, READ_COMMITTED), (NONE, 0));

    // The producer's non-transactional batch while its transaction is open.
    let r = produce(
        &mut c,
        TOPIC,
        0,
        batch(1, Some((pid, epoch, 2, false)), now_ms()),
    );
    assert_eq!(r.error_code, INVALID_TXN_STATE, "{:?}", r.error_message);
    // Its next transactional batch is fine (and does not move the transaction's start).
    let r = produce(
        &mut c,
        TOPIC,
        0,
        batch(1, Some((pid, epoch, 2, true)), now_ms()),
    );
    assert_eq!((r.error_code, r.base_offset), (NONE, 4));
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 1));
    // An older epoch is refused as for any idempotent producer.
    let r = produce(
        &mut c,
        TOPIC,
        0,
        batch(1, Some((pid, epoch - 1, 0, true)), now_ms()),
    );
    assert_eq!(r.error_code, INVALID_PRODUCER_EPOCH);
    // A transactional batch with no producer id.
    let no_pid = BatchBuilder::new(now_ms())
        .transactional(true)
        .record(Some(b"k"), Some(b"v"), &[], now_ms())
        .build();
    assert_eq!(BatchHeader::parse(&no_pid).unwrap().producer_id, -1);
    let r = produce(&mut c, TOPIC, 0, no_pid);
    assert_eq!(r.error_code, INVALID_RECORD, "{:?}", r.error_message);
    // Client writes to the transaction state topic.
    let r = produce(&mut c, TXN_STATE_TOPIC, 0, batch(1, None, now_ms()));
    assert_eq!(r.error_code, INVALID_TOPIC_EXCEPTION);

    // DescribeProducers: the open transaction's start, last sequence, timestamp.
    let mut t = TopicRequest::default();
    t.name = name(TOPIC);
    t.partition_indexes = vec![0, 1, 7];
    let mut r = DescribeProducersRequest::default();
    r.topics = vec![t];
    let response = c.call(0, &r);
    let ps = &response.topics[0].partitions;
    assert_eq!(ps.len(), 3);
    assert_eq!(ps[0].error_code, NONE);
    assert_eq!(ps[0].active_producers.len(), 1);
    let p = &ps[0].active_producers[0];
    assert_eq!((p.producer_id.0, p.producer_epoch), (pid, i32::from(epoch)));
    assert_eq!((p.last_sequence, p.current_txn_start_offset), (2, 1));
    assert_eq!(p.coordinator_epoch, -1, "no marker yet");
    assert!(p.last_timestamp > t1);
    assert_eq!(ps[1].active_producers[0].current_txn_start_offset, 0);
    assert_eq!(ps[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // Kafka's own tool reads the same through the Admin client.
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/kafka-tool.sh"))
        .arg("kafka-transactions")
        .arg("--bootstrap-server")
        .arg(format!("127.0.0.1:{}", broker.port))
        .args(["describe-producers", "--topic", TOPIC, "--partition", "0"])
        .output()
        .expect("run scripts/kafka-tool.sh (Java and Kafka's jars)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ]
    );
    let row: Vec<String> = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(row[0], pid.to_string());
    assert_eq!(row[1], epoch.to_string());
    assert_eq!(row[3], "2");
    assert_eq!(row[5], "1");
}

/// A crash (SIGKILL, no snapshot at exit) with an open transaction: after the restart the
/// producer-state replay finds the transaction again and the LSO stays at its start.
#[test]
fn an_open_transaction_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = broker(dir.path());
    let mut c = broker.client();
    let (pid, epoch, _) = write_open_transaction(&mut c);
    drop(c);
    broker.kill();
    broker.restart();
    let mut c = broker.client();
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 0), (1, 0)]);
    assert_eq!((ps[0].high_watermark, ps[0].last_stable_offset), (4, 1));
    assert_eq!(batches(&ps[0]), vec![(0, 1)]);
    assert_eq!((ps[1].high_watermark, ps[1].last_stable_offset), (1, 0));
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 1));
    // And the producer is still in its transaction.
    let r = produce(
        &mut c,
        TOPIC,
        1,
        batch(1, Some((pid, epoch, 1, false)), now_ms()),
    );
    assert_eq!(r.error_code, INVALID_TXN_STATE);
    // A graceful restart (snapshot) keeps it too.
    drop(c);
    broker.stop();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 1));
    assert_eq!(list_offset(&mut c, 1, LATEST, READ_COMMITTED), (NONE, 0));
}

/// How long a librdkafka transaction step may take.
const TXN_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// A long poll's wait in the test, far above how long a woken one takes.
const LONG_POLL_MS: i32 = 20_000;

fn txn_producer(port: u16, transactional_id: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "0")
        .create()
        .expect("rdkafka transactional producer");
    p.init_transactions(TXN_STEP_TIMEOUT)
        .expect("init_transactions");
    p
}

/// Sends `count` records to TOPIC's `partition` and waits until they are written.
fn send(p: &BaseProducer, partition: i32, count: usize) {
    for i in 0..count {
        let payload = format!("r{i}");
        p.send(
            BaseRecord::<(), _>::to(TOPIC)
                .partition(partition)
                .payload(&payload),
        )
        .unwrap_or_else(|(e, _)| panic!("send: {e}"));
    }
    p.flush(TXN_STEP_TIMEOUT).expect("flush");
}

/// (high watermark, LSO) of TOPIC's `partition` as a read_committed Fetch reports them.
fn offsets(c: &mut Client, partition: i32) -> (i64, i64) {
    let ps = fetch(c, READ_COMMITTED, &[(partition, 0)]);
    assert_eq!(ps[0].error_code, NONE);
    (ps[0].high_watermark, ps[0].last_stable_offset)
}

fn aborted(p: &PartitionData) -> Vec<(i64, i64)> {
    p.aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect()
}

/// librdkafka's transactional producer against the coordinator: the LSO holds at an open
/// transaction's first offset and moves with its commit or abort marker; a read_committed
/// Fetch gets the aborted transaction's producer and first offset; a read_committed long poll
/// waiting at the LSO wakes when a commit moves it.
#[test]
fn librdkafka_transactions_move_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let mut c = broker.client();
    let p = txn_producer(broker.port, "txp-1");

    // Commit: 3 records on p0, 2 on p1.
    p.begin_transaction().expect("begin");
    send(&p, 0, 3);
    send(&p, 1, 2);
    assert_eq!(
        offsets(&mut c, 0),
        (3, 0),
        "open: the LSO is the transaction's start"
    );
    assert_eq!(offsets(&mut c, 1), (2, 0));
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 0));
    p.commit_transaction(TXN_STEP_TIMEOUT).expect("commit");
    // EndTxn is answered once the markers are written: the LSO moved past them.
    assert_eq!(offsets(&mut c, 0), (4, 4));
    assert_eq!(offsets(&mut c, 1), (3, 3));
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 0)]);
    let got = batches(&ps[0]);
    assert_eq!(
        got.last().map(|b| b.0),
        Some(3),
        "the commit marker is sent: {got:?}"
    );
    assert_eq!(aborted(&ps[0]), vec![]);

    // Abort: 2 records on p0 from offset 4.
    p.begin_transaction().expect("begin");
    send(&p, 0, 2);
    assert_eq!(offsets(&mut c, 0), (6, 4));
    p.abort_transaction(TXN_STEP_TIMEOUT).expect("abort");
    assert_eq!(offsets(&mut c, 0), (7, 7));
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 7));
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 0)]);
    let pid = {
        let d = describe_producers(&mut c, 0);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].current_txn_start_offset, -1);
        d[0].producer_id.0
    };
    assert_eq!(aborted(&ps[0]), vec![(pid, 4)]);
    // From past the aborted transaction's marker, it is not listed.
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 7)]);
    assert_eq!(aborted(&ps[0]), vec![]);
    // read_uncommitted gets no list.
    let ps = fetch(&mut c, READ_UNCOMMITTED, &[(0, 0)]);
    assert_eq!(aborted(&ps[0]), vec![]);

    // A long poll at the LSO while a transaction is open wakes when its commit moves the LSO.
    p.begin_transaction().expect("begin");
    send(&p, 0, 1);
    assert_eq!(offsets(&mut c, 0), (8, 7));
    let port = broker.port;
    let poll = std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let start = Instant::now();
        let ps = fetch_waiting(&mut c, READ_COMMITTED, &[(0, 7)], 1, LONG_POLL_MS);
        (start.elapsed(), batches(&ps[0]), ps[0].last_stable_offset)
    });
    // Let the poll park (it returns at once only if it finds data: it must not).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !poll.is_finished(),
        "read_committed returned data past the LSO"
    );
    p.commit_transaction(TXN_STEP_TIMEOUT).expect("commit");
    let (waited, got, lso) = poll.join().unwrap();
    assert!(
        waited < Duration::from_millis(LONG_POLL_MS as u64 / 2),
        "not woken: {waited:?}"
    );
    assert_eq!(lso, 9);
    assert_eq!(got.first().map(|b| b.0), Some(7), "{got:?}");
}

fn describe_producers(
    c: &mut Client,
    partition: i32,
) -> Vec<kafka_protocol::messages::describe_producers_response::ProducerState> {
    let mut t = TopicRequest::default();
    t.name = name(TOPIC);
    t.partition_indexes = vec![partition];
    let mut r = DescribeProducersRequest::default();
    r.topics = vec![t];
    let response = c.call(0, &r);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    p.active_producers.clone()
}

/// kill -9 with a librdkafka transaction open: after the restart the LSO is still the
/// transaction's start (producer-state replay), until a new producer with the same
/// transactional id makes the coordinator abort it; the abort is then listed.
#[test]
fn an_open_librdkafka_transaction_holds_the_lso_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = broker(dir.path());
    let mut c = broker.client();
    let first = txn_producer(broker.port, "txp-crash");
    first.begin_transaction().expect("begin");
    send(&first, 0, 3);
    assert_eq!(offsets(&mut c, 0), (3, 0));
    drop(first);
    drop(c);
    broker.kill();
    broker.restart();
    let mut c = broker.client();
    assert_eq!(
        offsets(&mut c, 0),
        (3, 0),
        "the replay reopened the transaction"
    );
    assert_eq!(list_offset(&mut c, 0, LATEST, READ_COMMITTED), (NONE, 0));
    let pid = describe_producers(&mut c, 0)[0].producer_id.0;
    // The same transactional id again: the coordinator aborts the open transaction.
    let _second = txn_producer(broker.port, "txp-crash");
    let deadline = Instant::now() + TXN_STEP_TIMEOUT;
    loop {
        let (hw, lso) = offsets(&mut c, 0);
        if lso == hw && hw == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transaction was not aborted: hw {hw}, lso {lso}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ps = fetch(&mut c, READ_COMMITTED, &[(0, 0)]);
    assert_eq!(aborted(&ps[0]), vec![(pid, 0)]);
}
