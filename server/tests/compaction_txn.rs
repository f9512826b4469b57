//! Compaction of a topic written by transactional producers, against a real `corelog` process,
//! read back with librdkafka (read_uncommitted, so that the log itself is seen):
//! - records of an aborted transaction are removed by the cleaner, and never hide the last
//!   committed value of their key;
//! - records of a committed transaction are compacted like any other;
//! - nothing at or past the first record of a transaction still open is cleaned (the broker
//!   passes the partition's first unstable offset to the cleaner): a value the open transaction
//!   overwrites, and plain values written after it, all stay until it commits; then they are
//!   compacted.

mod interop_support;
mod txn_support;

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::Producer;

use interop_support::*;
use txn_support::*;

/// Broker settings that make the cleaner and the roll check run often.
const FAST_CLEANER: &[(&str, &str)] = &[
    ("log.cleaner.backoff.ms", "100"),
    ("log.retention.check.interval.ms", "100"),
];
/// `segment.ms` of the topic: segments roll by age on the retention check.
const SEGMENT_MS: u64 = 300;
/// How long a transactional call (init, commit, abort) may take.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cleaner may take to reach an expected state.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a state must hold once reached (many cleaner passes at `log.cleaner.backoff.ms`).
const STABLE_FOR: Duration = Duration::from_millis(1500);
/// `transaction.timeout.ms` of the producers (longer than the test).
const TXN_TIMEOUT_MS: u32 = 120_000;

fn create_compacted_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let segment_ms = SEGMENT_MS.to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", &segment_ms)
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "3600000");
    let results = futures_executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(TXN_CALL_TIMEOUT)),
    ))
    .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("CreateTopics {name}: {code:?}"));
    }
}

/// Every record of the partition as (key, value), read_uncommitted (the log as it is).
fn read_log(bootstrap: &str, topic: &str) -> Vec<(String, String)> {
    read_partitions(
        bootstrap,
        topic,
        1,
        Isolation::ReadUncommitted,
        CLEAN_TIMEOUT,
        |_| true,
    )
    .remove(0)
    .into_iter()
    .map(|r| (r.key.unwrap_or_default(), r.value))
    .collect()
}

/// Polls until the log reads exactly `want`, then checks that it stays so.
fn wait_for_log(bootstrap: &str, topic: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let got = read_log(bootstrap, topic);
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not cleaned to {want:?} within {CLEAN_TIMEOUT:?}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A state reached only in passing would be a bug too (the cleaner going on past a bound).
    let until = Instant::now() + STABLE_FOR;
    while Instant::now() < until {
        assert_eq!(read_log(bootstrap, topic), want, "{topic} changed again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the partition's active segment starts at or after `offset` (it rolls by
/// `segment.ms` on the broker's retention check), so that everything below is in sealed segments.
fn wait_for_roll_past(broker: &Broker, topic: &str, offset: i64) {
    let Some(data) = broker.data_dir() else {
        // An external broker rolls by segment.ms at its next append.
        std::thread::sleep(Duration::from_millis(2 * SEGMENT_MS));
        return;
    };
    let dir = data.join(format!("{topic}-0"));
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let active_base = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".log")?.parse::<i64>().ok()
                    })
                    .max()
            })
            .ok()
            .flatten();
        if active_base.is_some_and(|b| b >= offset) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: the active segment starts at {active_base:?}, want at or after {offset}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kv(records: &[(&str, &str)]) -> Vec<(i32, String, String)> {
    records
        .iter()
        .map(|(k, v)| (0, k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_cleaner_removes_aborted_records_and_stops_at_an_open_transaction() {
    let broker = Broker::start_with(FAST_CLEANER);
    let b = broker.bootstrap();
    let topic = unique_topic("compact-txn");
    create_compacted_topic(&b, &topic);
    let plain = plain_producer(&b);
    send_and_wait(
        &plain,
        &topic,
        &kv(&[("k1", "plain-1"), ("k2", "plain-2"), ("k3", "plain-3")]),
    );
    // An aborted transaction overwrites k1 and k3 and writes a key of its own.
    let tx = txn_producer(&b, &unique_topic("compact-txn-a"), TXN_TIMEOUT_MS);
    tx.init_transactions(TXN_CALL_TIMEOUT).expect("init");
    tx.begin_transaction().expect("begin");
    send_and_wait(
        &tx,
        &topic,
        &kv(&[
            ("k1", "aborted-1"),
            ("k3", "aborted-3"),
            ("k9", "aborted-9"),
        ]),
    );
    tx.abort_transaction(TXN_CALL_TIMEOUT).expect("abort");
    // A committed one overwrites k2.
    tx.begin_transaction().expect("begin");
    let txn2 = send_and_wait(&tx, &topic, &kv(&[("k2", "txn-2")]))[0];
    tx.commit_transaction(TXN_CALL_TIMEOUT).expect("commit");
    // All of that (up to the commit marker after txn-2) in sealed segments before the next
    // transaction opens.
    wait_for_roll_past(&broker, &topic, txn2 + 2);
    let open = txn_producer(&b, &unique_topic("compact-txn-b"), TXN_TIMEOUT_MS);
    open.init_transactions(TXN_CALL_TIMEOUT).expect("init");
    open.begin_transaction().expect("begin");
    send_and_wait(&open, &topic, &kv(&[("k3", "open-3")]));
    send_and_wait(
        &plain,
        &topic,
        &kv(&[("k1", "after-1a"), ("k1", "after-1b")]),
    );
    // Below the open transaction: aborted records gone, k2's committed transactional value
    // kept over its plain one; k1 and k3 keep their last values below the open transaction.
    // From it on, nothing is touched.
    wait_for_log(
        &b,
        &topic,
        &[
            ("k1", "plain-1"),
            ("k3", "plain-3"),
            ("k2", "txn-2"),
            ("k3", "open-3"),
            ("k1", "after-1a"),
            ("k1", "after-1b"),
        ],
    );
    // Once it commits, the rest is compacted too.
    open.commit_transaction(TXN_CALL_TIMEOUT).expect("commit");
    wait_for_log(
        &b,
        &topic,
        &[("k2", "txn-2"), ("k3", "open-3"), ("k1", "after-1b")],
    );
    broker.stop();
}
