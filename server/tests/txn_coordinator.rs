//! The transaction coordinator against a real `corelog` process (issue 7), at the protocol level
//! (kafka-protocol's encoders, so every error code is the broker's own):
//!
//! - fencing and error codes: a second InitProducerId bumps the epoch and the old epoch gets
//!   PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before the versions that know it) on
//!   AddPartitionsToTxn, AddOffsetsToTxn and EndTxn; INVALID_TRANSACTION_TIMEOUT,
//!   INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE, UNKNOWN_TOPIC_OR_PARTITION with
//!   OPERATION_NOT_ATTEMPTED; a commit and an abort run to the end (markers in every partition,
//!   on both shards), retries of a finished EndTxn; InitProducerId during an Ongoing transaction
//!   aborts it; ListTransactions' filters; DescribeTransactions; `transaction.version` is not
//!   advertised;
//! - durability: the state survives SIGKILL (same producer id, the next init bumps the epoch, an
//!   Ongoing transaction is still Ongoing and is aborted by that init), and Kafka's own
//!   `kafka-dump-log --transaction-log-decoder` reads `__transaction_state`;
//! - timeouts: an Ongoing transaction older than its timeout is aborted with its epoch bumped,
//!   so the producer that opened it is fenced;
//! - Kafka's `kafka-transactions` tool lists and describes transactions.

mod common;
mod interop_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    ApiVersionsRequest, DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest,
    GroupId, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use common::Client;
use interop_support::{create_topic, repo_root, run_with_timeout, unique_topic, Broker};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// A transaction timeout no test reaches (except the timeout test's own).
const LONG_TIMEOUT_MS: i32 = 60_000;
/// How long a condition the broker reaches by itself (a timeout abort) may take.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one Kafka CLI tool run may take (a JVM start on a loaded 2-core machine).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Settings of every broker here: two shards (a transaction's partitions and its coordinator
/// spread over both), topics of 4 partitions, few internal partitions (fast creation).
const PROPS: &[(&str, &str)] = &[
    ("corelog.shards", "2"),
    ("num.partitions", "4"),
    ("transaction.state.log.num.partitions", "4"),
    ("offsets.topic.num.partitions", "4"),
    ("corelog.metrics.listener", ""),
];

fn client(b: &Broker) -> Client {
    Client::connect(b.addr().port())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn init(c: &mut Client, version: i16, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = Some(TransactionalId(s(id)));
    r.transaction_timeout_ms = timeout_ms;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    c.call(version, &r)
}

/// InitProducerId that must succeed: (producer id, epoch).
fn init_ok(c: &mut Client, id: &str, timeout_ms: i32) -> (i64, i16) {
    let r = init(c, 4, id, timeout_ms);
    assert_eq!(r.error_code, NONE, "InitProducerId {id}");
    (r.producer_id.0, r.producer_epoch)
}

fn add_partitions(
    c: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    topics: &[(&str, &[i32])],
) -> AddPartitionsToTxnResponse {
    let mut r = AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = TransactionalId(s(id));
    r.v3_and_below_producer_id = ProducerId(pid);
    r.v3_and_below_producer_epoch = epoch;
    r.v3_and_below_topics = topics
        .iter()
        .map(|(t, ps)| {
            let mut topic = AddPartitionsToTxnTopic::default();
            topic.name = TopicName(s(t));
            topic.partitions = ps.to_vec();
            topic
        })
        .collect();
    c.call(version, &r)
}

/// Every partition's error code, by (topic, partition).
fn add_errors(r: &AddPartitionsToTxnResponse) -> BTreeMap<(String, i32), i16> {
    let mut out = BTreeMap::new();
    for t in &r.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            out.insert(
                (t.name.to_string(), p.partition_index),
                p.partition_error_code,
            );
        }
    }
    out
}

/// The one error code all partitions of an AddPartitionsToTxn got.
fn add_error(
    c: &mut Client,
    version: i16,
    id: &str,
    pe: (i64, i16),
    topics: &[(&str, &[i32])],
) -> i16 {
    let errors = add_errors(&add_partitions(c, version, id, pe, topics));
    let codes: Vec<i16> = errors.values().copied().collect();
    assert!(!codes.is_empty(), "no partition results");
    assert!(
        codes.iter().all(|c| *c == codes[0]),
        "different errors: {errors:?}"
    );
    codes[0]
}

fn add_offsets(
    c: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    group: &str,
) -> i16 {
    let mut r = AddOffsetsToTxnRequest::default();
    r.transactional_id = TransactionalId(s(id));
    r.producer_id = ProducerId(pid);
    r.producer_epoch = epoch;
    r.group_id = GroupId(s(group));
    c.call(version, &r).error_code
}

fn end_txn(c: &mut Client, version: i16, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let mut r = EndTxnRequest::default();
    r.transactional_id = TransactionalId(s(id));
    r.producer_id = ProducerId(pid);
    r.producer_epoch = epoch;
    r.committed = commit;
    c.call(version, &r).error_code
}

/// DescribeTransactions of one id.
#[derive(Debug)]
struct Described {
    error: i16,
    state: String,
    producer_id: i64,
    epoch: i16,
    timeout_ms: i32,
    start_ms: i64,
    partitions: Vec<(String, i32)>,
}

fn describe(c: &mut Client, id: &str) -> Described {
    let mut r = DescribeTransactionsRequest::default();
    r.transactional_ids = vec![TransactionalId(s(id))];
    let response = c.call(0, &r);
    assert_eq!(response.transaction_states.len(), 1);
    let t = &response.transaction_states[0];
    assert_eq!(t.transactional_id.as_str(), id);
    let mut partitions: Vec<(String, i32)> = t
        .topics
        .iter()
        .flat_map(|td| td.partitions.iter().map(|p| (td.topic.to_string(), *p)))
        .collect();
    partitions.sort();
    Described {
        error: t.error_code,
        state: t.transaction_state.to_string(),
        producer_id: t.producer_id.0,
        epoch: t.producer_epoch,
        timeout_ms: t.transaction_timeout_ms,
        start_ms: t.transaction_start_time_ms,
        partitions,
    }
}

fn list(
    c: &mut Client,
    version: i16,
    states: &[&str],
    pids: &[i64],
    duration_ms: i64,
) -> ListTransactionsResponse {
    let mut r = ListTransactionsRequest::default();
    r.state_filters = states.iter().map(|v| s(v)).collect();
    r.producer_id_filters = pids.iter().map(|p| ProducerId(*p)).collect();
    r.duration_filter = duration_ms;
    let response = c.call(version, &r);
    assert_eq!(response.error_code, NONE);
    response
}

fn listed_ids(r: &ListTransactionsResponse) -> Vec<(String, i64, String)> {
    r.transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
            )
        })
        .collect()
}

/// The latest offset (high watermark) of a partition.
fn latest_offset(c: &mut Client, topic: &str, partition: i32) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(s(topic));
    t.partitions = vec![p];
    let mut r = ListOffsetsRequest::default();
    r.replica_id = kafka_protocol::messages::BrokerId(-1);
    r.topics = vec![t];
    let response = c.call(1, &r);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "ListOffsets {topic}-{partition}");
    p.offset
}

/// Polls `cond` until it holds, or fails naming `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {CONDITION_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kafka's placement of a group or transactional id (Java's String.hashCode, sign bit masked).
fn java_partition(key: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % partitions
}

/// After an EndTxn: corelog answers once the transaction is complete (asserted at once); a Kafka
/// broker (`CORELOG_INTEROP_BOOTSTRAP`) answers after the prepare record, so wait there.
fn settle(broker: &Broker, c: &mut Client, id: &str) {
    if broker.is_spawned() {
        return;
    }
    wait_for("the transaction completed", || {
        describe(c, id).state.starts_with("Complete")
    });
}

/// InitProducerId during an Ongoing transaction: corelog aborts it and answers at once; Kafka
/// answers CONCURRENT_TRANSACTIONS while it aborts, and the client retries.
fn init_retrying(broker: &Broker, c: &mut Client, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        let r = init(c, 4, id, LONG_TIMEOUT_MS);
        if r.error_code == CONCURRENT_TRANSACTIONS && !broker.is_spawned() {
            assert!(Instant::now() < deadline, "still CONCURRENT_TRANSACTIONS");
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(r.error_code, NONE, "InitProducerId {id}");
        return (r.producer_id.0, r.producer_epoch);
    }
}

#[test]
fn fencing_error_codes_and_a_transaction_to_the_end() {
    let started = Instant::now();
    let broker = Broker::start_with(PROPS);
    let mut c = client(&broker);
    // Unique ids: an external broker keeps those of earlier runs.
    let id = &unique_topic("txn-a");
    let never = &unique_topic("txn-never");

    // transaction.version is not advertised (clients use the v1 flow).
    let versions = c.call(3, &ApiVersionsRequest::default());
    assert!(
        versions
            .finalized_features
            .iter()
            .all(|f| f.name.as_str() != "transaction.version" || f.max_version_level < 2),
        "transaction.version >= 2 advertised"
    );
    assert!(versions
        .supported_features
        .iter()
        .all(|f| f.name.as_str() != "transaction.version" || f.max_version < 2));

    // FindCoordinator for a transactional id: this broker (v3 single key, v4 batched).
    let mut fc = FindCoordinatorRequest::default();
    fc.key_type = 1;
    fc.key = s(id);
    let r = c.call(3, &fc);
    assert_eq!(
        (r.error_code, r.port),
        (NONE, i32::from(broker.addr().port()))
    );
    fc.key = s("");
    fc.coordinator_keys = vec![s(id), s(never)];
    let r = c.call(4, &fc);
    assert_eq!(r.coordinators.len(), 2);
    for co in &r.coordinators {
        assert_eq!(
            (co.error_code, co.port),
            (NONE, i32::from(broker.addr().port()))
        );
    }

    // Timeouts outside 1..=transaction.max.timeout.ms.
    for bad in [0, -1, 900_001] {
        let r = init(&mut c, 4, id, bad);
        assert_eq!(r.error_code, INVALID_TRANSACTION_TIMEOUT, "timeout {bad}");
    }

    let topic = &unique_topic("txn-coordinator-t");
    create_topic(&broker.bootstrap(), topic, 4);
    let (pid, e0) = init_ok(&mut c, id, LONG_TIMEOUT_MS);
    assert_eq!(e0, 0);
    let d = describe(&mut c, id);
    assert_eq!(
        (d.error, d.state.as_str(), d.producer_id, d.epoch),
        (NONE, "Empty", pid, 0)
    );
    assert_eq!((d.timeout_ms, d.start_ms), (LONG_TIMEOUT_MS, -1));

    // A second init keeps the producer id and bumps the epoch: the first producer is a zombie.
    let (pid2, e1) = init_ok(&mut c, id, LONG_TIMEOUT_MS);
    assert_eq!((pid2, e1), (pid, 1));
    let zombie = (pid, 0);
    let live = (pid, 1);
    assert_eq!(
        add_error(&mut c, 3, id, zombie, &[(topic, &[0])]),
        PRODUCER_FENCED
    );
    assert_eq!(
        add_error(&mut c, 1, id, zombie, &[(topic, &[0])]),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(add_offsets(&mut c, 3, id, zombie, "grp"), PRODUCER_FENCED);
    assert_eq!(
        add_offsets(&mut c, 0, id, zombie, "grp"),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(end_txn(&mut c, 3, id, zombie, true), PRODUCER_FENCED);
    assert_eq!(end_txn(&mut c, 1, id, zombie, true), INVALID_PRODUCER_EPOCH);
    // Another producer id, or an id never initialized.
    assert_eq!(
        add_error(&mut c, 3, id, (pid + 1, 1), &[(topic, &[0])]),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end_txn(&mut c, 3, id, (pid + 1, 1), true),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        add_error(&mut c, 3, never, live, &[(topic, &[0])]),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end_txn(&mut c, 3, never, live, false),
        INVALID_PRODUCER_ID_MAPPING
    );
    // No transaction to end.
    assert_eq!(end_txn(&mut c, 3, id, live, true), INVALID_TXN_STATE);
    assert_eq!(end_txn(&mut c, 3, id, live, false), INVALID_TXN_STATE);
    // An unknown partition: nothing is added.
    let errors = add_errors(&add_partitions(
        &mut c,
        3,
        id,
        live,
        &[(topic, &[0, 9]), ("txn-no-such-topic", &[0])],
    ));
    assert_eq!(errors[&(topic.to_string(), 0)], OPERATION_NOT_ATTEMPTED);
    assert_eq!(errors[&(topic.to_string(), 9)], UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        errors[&("txn-no-such-topic".to_string(), 0)],
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(describe(&mut c, id).state, "Empty");

    // A transaction on all four partitions (both shards) and the group's offsets partition.
    let before: Vec<i64> = (0..4).map(|p| latest_offset(&mut c, topic, p)).collect();
    assert_eq!(add_error(&mut c, 3, id, live, &[(topic, &[0, 1])]), NONE);
    assert_eq!(add_error(&mut c, 2, id, live, &[(topic, &[2, 3])]), NONE);
    assert_eq!(
        add_error(&mut c, 3, id, live, &[(topic, &[1])]),
        NONE,
        "already in"
    );
    assert_eq!(add_offsets(&mut c, 3, id, live, "grp"), NONE);
    let d = describe(&mut c, id);
    let offsets_partitions = c.ensure_topic("__consumer_offsets") as i32;
    let offsets_partition = java_partition("grp", offsets_partitions);
    let mut want: Vec<(String, i32)> = (0..4).map(|p| (topic.to_string(), p)).collect();
    want.push(("__consumer_offsets".to_string(), offsets_partition));
    want.sort();
    assert_eq!((d.state.as_str(), d.epoch), ("Ongoing", 1));
    assert_eq!(d.partitions, want);
    assert!(d.start_ms > 0, "start time {}", d.start_ms);

    // ListTransactions and its filters.
    let all = listed_ids(&list(&mut c, 1, &[], &[], -1));
    assert!(
        all.contains(&(id.to_string(), pid, "Ongoing".to_string())),
        "{all:?}"
    );
    let ongoing = listed_ids(&list(&mut c, 0, &["Ongoing"], &[], -1));
    assert_eq!(ongoing, vec![(id.to_string(), pid, "Ongoing".to_string())]);
    assert!(listed_ids(&list(&mut c, 0, &["Empty"], &[], -1)).is_empty());
    assert!(listed_ids(&list(&mut c, 0, &[], &[pid + 1], -1)).is_empty());
    let unknown = list(&mut c, 0, &["NoSuchState"], &[], -1);
    assert_eq!(unknown.unknown_state_filters, vec![s("NoSuchState")]);
    assert!(unknown.transaction_states.is_empty());
    // v1: running longer than an hour (no), longer than 0 ms (yes, once a millisecond passed).
    assert!(listed_ids(&list(&mut c, 1, &[], &[], 3_600_000)).is_empty());
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(listed_ids(&list(&mut c, 1, &["Ongoing"], &[], 0)).len(), 1);

    // Commit: a marker in every partition, then CompleteCommit with no partitions.
    let offsets_before = latest_offset(&mut c, "__consumer_offsets", offsets_partition);
    assert_eq!(end_txn(&mut c, 3, id, live, true), NONE);
    settle(&broker, &mut c, id);
    let d = describe(&mut c, id);
    assert_eq!((d.state.as_str(), d.epoch), ("CompleteCommit", 1));
    assert!(d.partitions.is_empty());
    for p in 0..4 {
        assert_eq!(
            latest_offset(&mut c, topic, p),
            before[p as usize] + 1,
            "commit marker in {p}"
        );
    }
    assert_eq!(
        latest_offset(&mut c, "__consumer_offsets", offsets_partition),
        offsets_before + 1,
        "commit marker in the group's offsets partition"
    );
    // Retries and the other ending.
    assert_eq!(end_txn(&mut c, 3, id, live, true), NONE, "retried commit");
    assert_eq!(end_txn(&mut c, 3, id, live, false), INVALID_TXN_STATE);

    // Abort: the same, with abort markers.
    assert_eq!(add_error(&mut c, 3, id, live, &[(topic, &[2])]), NONE);
    let d = describe(&mut c, id);
    assert_eq!(
        d.partitions,
        vec![(topic.to_string(), 2)],
        "a new transaction starts empty"
    );
    assert_eq!(end_txn(&mut c, 0, id, live, false), NONE);
    settle(&broker, &mut c, id);
    assert_eq!(describe(&mut c, id).state, "CompleteAbort");
    assert_eq!(latest_offset(&mut c, topic, 2), before[2] + 2);
    assert_eq!(end_txn(&mut c, 3, id, live, false), NONE, "retried abort");
    assert_eq!(end_txn(&mut c, 3, id, live, true), INVALID_TXN_STATE);

    // InitProducerId while a transaction is Ongoing: it is aborted (fenced epoch 2, abort
    // marker), then the epoch is bumped again for the new producer.
    assert_eq!(add_error(&mut c, 3, id, live, &[(topic, &[3])]), NONE);
    let (pid3, e3) = init_retrying(&broker, &mut c, id);
    assert_eq!((pid3, e3), (pid, 3));
    assert_eq!(
        latest_offset(&mut c, topic, 3),
        before[3] + 2,
        "abort marker"
    );
    let d = describe(&mut c, id);
    assert_eq!((d.state.as_str(), d.epoch), ("Empty", 3));
    assert_eq!(end_txn(&mut c, 3, id, live, false), PRODUCER_FENCED);

    // Unknown and empty ids in DescribeTransactions.
    assert_eq!(describe(&mut c, never).error, TRANSACTIONAL_ID_NOT_FOUND);
    assert_eq!(describe(&mut c, "").error, 42);
    broker.stop();
    eprintln!(
        "fencing_error_codes_and_a_transaction_to_the_end: {:?}",
        started.elapsed()
    );
}

#[test]
fn state_survives_a_crash_and_kafkas_decoder_reads_it() {
    let started = Instant::now();
    let mut broker = Broker::start_with(PROPS);
    let mut c = client(&broker);
    let topic = "txn-durable-t";
    c.ensure_topic(topic);
    let (pid, e0) = init_ok(&mut c, "txn-d", LONG_TIMEOUT_MS);
    assert_eq!(
        add_error(&mut c, 3, "txn-d", (pid, e0), &[(topic, &[0, 3])]),
        NONE
    );
    let (pid_c, ec) = init_ok(&mut c, "txn-done", LONG_TIMEOUT_MS);
    assert_eq!(
        add_error(&mut c, 3, "txn-done", (pid_c, ec), &[(topic, &[1])]),
        NONE
    );
    assert_eq!(end_txn(&mut c, 3, "txn-done", (pid_c, ec), true), NONE);
    let before = describe(&mut c, "txn-d");
    drop(c);

    broker.kill_and_restart();
    let mut c = client(&broker);
    let after = describe(&mut c, "txn-d");
    assert_eq!(
        (
            after.error,
            after.state.as_str(),
            after.producer_id,
            after.epoch
        ),
        (NONE, "Ongoing", pid, e0)
    );
    assert_eq!(
        after.partitions,
        vec![(topic.to_string(), 0), (topic.to_string(), 3)]
    );
    assert_eq!(
        (after.start_ms, after.timeout_ms),
        (before.start_ms, LONG_TIMEOUT_MS)
    );
    let done = describe(&mut c, "txn-done");
    assert_eq!(
        (done.state.as_str(), done.producer_id),
        ("CompleteCommit", pid_c)
    );
    // The old producer can still finish its transaction... until a new one initializes: the
    // Ongoing transaction is aborted and the epoch bumped past the fencing one.
    let (pid2, e2) = init_ok(&mut c, "txn-d", LONG_TIMEOUT_MS);
    assert_eq!((pid2, e2), (pid, e0 + 2));
    assert_eq!(
        end_txn(&mut c, 3, "txn-d", (pid, e0), true),
        PRODUCER_FENCED
    );
    let (pid_c2, ec2) = init_ok(&mut c, "txn-done", LONG_TIMEOUT_MS);
    assert_eq!((pid_c2, ec2), (pid_c, ec + 1));

    // Kafka's own decoder reads our records.
    let dir = broker.data_dir().expect("a started corelog");
    let p = java_partition("txn-d", 4);
    let segment = dir
        .join(format!("__transaction_state-{p}"))
        .join("00000000000000000000.log");
    let out = run_with_timeout(
        Command::new("bash")
            .arg(repo_root().join("scripts/kafka-tool.sh"))
            .arg("kafka-dump-log")
            .arg("--transaction-log-decoder")
            .arg("--print-data-log")
            .arg("--files")
            .arg(&segment),
        TOOL_TIMEOUT,
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafka-dump-log: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "\"transactionalId\":\"txn-d\"".to_string(),
        format!("\"producerId\":{pid},\"producerEpoch\":{e0},\"transactionTimeoutMs\":{LONG_TIMEOUT_MS},\"transactionStatus\":\"Ongoing\""),
        format!("\"transactionPartitions\":[{{\"topic\":\"{topic}\",\"partitionIds\":[0,3]}}]"),
        "\"transactionStatus\":\"PrepareAbort\"".to_string(),
        "\"transactionStatus\":\"CompleteAbort\"".to_string(),
    ] {
        assert!(text.contains(&want), "kafka-dump-log lacks {want}:\n{text}");
    }
    broker.stop();
    eprintln!(
        "state_survives_a_crash_and_kafkas_decoder_reads_it: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() {
    let started = Instant::now();
    let mut props = PROPS.to_vec();
    props.push((
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "100",
    ));
    let broker = Broker::start_with(&props);
    let mut c = client(&broker);
    let topic = "txn-timeout-t";
    c.ensure_topic(topic);
    // The broker refuses a timeout over its maximum, takes a short one.
    let (pid, e0) = init_ok(&mut c, "txn-slow", 500);
    let (_, busy_epoch) = init_ok(&mut c, "txn-busy", LONG_TIMEOUT_MS);
    assert_eq!(
        add_error(&mut c, 3, "txn-slow", (pid, e0), &[(topic, &[1])]),
        NONE
    );
    let busy_pid = describe(&mut c, "txn-busy").producer_id;
    assert_eq!(
        add_error(
            &mut c,
            3,
            "txn-busy",
            (busy_pid, busy_epoch),
            &[(topic, &[2])]
        ),
        NONE
    );
    let hw = latest_offset(&mut c, topic, 1);
    wait_for("the timed-out transaction aborted", || {
        describe(&mut c, "txn-slow").state == "CompleteAbort"
    });
    let d = describe(&mut c, "txn-slow");
    assert_eq!(
        (d.producer_id, d.epoch),
        (pid, e0 + 1),
        "aborted under a bumped epoch"
    );
    assert_eq!(latest_offset(&mut c, topic, 1), hw + 1, "abort marker");
    // The producer that opened it is fenced.
    assert_eq!(
        end_txn(&mut c, 3, "txn-slow", (pid, e0), true),
        PRODUCER_FENCED
    );
    assert_eq!(
        add_error(&mut c, 3, "txn-slow", (pid, e0), &[(topic, &[1])]),
        PRODUCER_FENCED
    );
    // A transaction within its timeout stays.
    assert_eq!(describe(&mut c, "txn-busy").state, "Ongoing");
    assert!(broker.log().contains("aborting a timed-out transaction"));
    broker.stop();
    eprintln!(
        "a_timed_out_transaction_is_aborted_and_its_producer_fenced: {:?}",
        started.elapsed()
    );
}

/// Runs `kafka-transactions ARGS` against the broker; its stdout.
fn kafka_transactions(broker: &Broker, args: &[&str]) -> String {
    let out = run_with_timeout(
        Command::new("bash")
            .arg(repo_root().join("scripts/kafka-tool.sh"))
            .arg("kafka-transactions")
            .arg("--bootstrap-server")
            .arg(broker.bootstrap())
            .args(args),
        TOOL_TIMEOUT,
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-transactions {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn kafkas_transactions_tool_lists_and_describes() {
    let started = Instant::now();
    let broker = Broker::start_with(PROPS);
    let mut c = client(&broker);
    let topic = "txn-tool-t";
    c.ensure_topic(topic);
    let (pid, epoch) = init_ok(&mut c, "txn-tool", LONG_TIMEOUT_MS);
    assert_eq!(
        add_error(&mut c, 3, "txn-tool", (pid, epoch), &[(topic, &[0, 2])]),
        NONE
    );
    let (idle_pid, _) = init_ok(&mut c, "txn-tool-idle", LONG_TIMEOUT_MS);

    let listed = kafka_transactions(&broker, &["list"]);
    let row = |id: &str| -> Vec<String> {
        listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // TransactionalId Coordinator ProducerId TransactionState
    assert_eq!(
        row("txn-tool")[2..],
        [pid.to_string(), "Ongoing".to_string()]
    );
    assert_eq!(
        row("txn-tool-idle")[2..],
        [idle_pid.to_string(), "Empty".to_string()]
    );

    let described = kafka_transactions(&broker, &["describe", "--transactional-id", "txn-tool"]);
    let line = described
        .lines()
        .find(|l| l.contains("txn-tool"))
        .unwrap_or_else(|| panic!("no row:\n{described}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // CoordinatorId TransactionalId ProducerId ProducerEpoch TransactionState
    // TransactionTimeoutMs CurrentTransactionStartTimeMs TransactionDurationMs TopicPartitions
    assert_eq!(
        cols[1..6],
        [
            "txn-tool",
            &pid.to_string(),
            &epoch.to_string(),
            "Ongoing",
            &LONG_TIMEOUT_MS.to_string()
        ]
    );
    let parts = cols[8];
    assert!(
        parts.contains(&format!("{topic}-0")) && parts.contains(&format!("{topic}-2")),
        "partitions: {line}"
    );
    broker.stop();
    eprintln!(
        "kafkas_transactions_tool_lists_and_describes: {:?}",
        started.elapsed()
    );
}
