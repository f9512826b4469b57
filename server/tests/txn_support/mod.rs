//! Helpers of the transactions suite (`tests/transactions.rs`): librdkafka producers (plain and
//! transactional) and consumers that read whole partitions with a given isolation level.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::sync::mpsc;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// A producer whose background thread serves delivery reports; each record carries the channel
/// its report goes to.
pub type TxnProducer = ThreadedProducer<Deliveries>;

/// Routes each delivery report (the record's offset, or why it was not delivered) to the channel
/// the record was sent with.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<mpsc::Sender<Result<i64, KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, to: Self::DeliveryOpaque) {
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have given up waiting (it panicked): nothing to tell then.
        let _ = to.send(r);
    }
}

/// How long one record's delivery may take (a broker restart included).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// librdkafka's reconnect backoff ceiling: short, so clients find a restarted broker quickly
/// (the default, 10 s, would dominate a test's run time).
const RECONNECT_BACKOFF_MAX_MS: &str = "500";
/// The consumers' `fetch.wait.max.ms`.
const FETCH_WAIT_MAX_MS: &str = "100";

/// How a consumer reads: Kafka's `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    ReadUncommitted,
}

impl Isolation {
    fn config(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// One record as a consumer saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
}

/// An idempotent (not transactional) producer.
pub fn plain_producer(bootstrap: &str) -> TxnProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS)
        .create_with_context(Deliveries)
        .expect("rdkafka producer")
}

/// A transactional producer (not yet initialized) with `transaction.timeout.ms`.
pub fn txn_producer(bootstrap: &str, transactional_id: &str, txn_timeout_ms: u32) -> TxnProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", txn_timeout_ms.to_string())
        .set("linger.ms", "5")
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        .set(
            "message.timeout.ms",
            (DELIVERY_TIMEOUT.as_millis() as u64)
                .min(u64::from(txn_timeout_ms))
                .to_string(),
        )
        .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS)
        .create_with_context(Deliveries)
        .expect("rdkafka transactional producer")
}

/// Sends `(partition, key, value)` records and waits for every delivery; panics on a failed one.
/// Returns the offsets, in the order of `records`.
pub fn send_and_wait(
    producer: &TxnProducer,
    topic: &str,
    records: &[(i32, String, String)],
) -> Vec<i64> {
    try_send_and_wait(producer, topic, records)
        .unwrap_or_else(|e| panic!("produce to {topic}: {e}"))
}

/// Like [`send_and_wait`], but returns the first delivery error instead of panicking.
pub fn try_send_and_wait(
    producer: &TxnProducer,
    topic: &str,
    records: &[(i32, String, String)],
) -> Result<Vec<i64>, KafkaError> {
    let mut reports = Vec::with_capacity(records.len());
    for (p, k, v) in records {
        let (tx, rx) = mpsc::channel();
        let mut rec = BaseRecord::with_opaque_to(topic, Box::new(tx))
            .partition(*p)
            .key(k.as_str())
            .payload(v.as_str());
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                // A full local queue empties as deliveries complete: retry for a while.
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                    rec = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
        reports.push(rx);
    }
    let mut offsets = Vec::with_capacity(reports.len());
    for rx in reports {
        match rx.recv_timeout(DELIVERY_TIMEOUT + Duration::from_secs(30)) {
            Ok(Ok(o)) => offsets.push(o),
            Ok(Err(e)) => return Err(e),
            Err(e) => panic!("no delivery report: {e}"),
        }
    }
    Ok(offsets)
}

/// A consumer that reads with `isolation`, reports partition EOFs, and (with `group`) belongs to
/// a consumer group without ever committing by itself.
pub fn consumer(bootstrap: &str, group: Option<&str>, isolation: Isolation) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation.config())
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A short fetch wait: an empty fetch (at the end, or stopped at the LSO) comes back
        // sooner, so a read reaches its EOFs sooner (default 500 ms).
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
        .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
    // librdkafka needs a group.id even for assign-only consumers.
    cfg.set("group.id", group.unwrap_or("corelog-txn-reader-no-commits"));
    cfg.create().expect("rdkafka consumer")
}

/// Reads partitions `0..partitions` of `topic` from the beginning with `isolation` until every
/// partition has reported EOF (at the high watermark for read_uncommitted, at the last stable
/// offset for read_committed) with no record received since, and `done` holds for what was read.
/// Returns the records per partition, in offset order. Panics after `timeout` with what it saw.
pub fn read_partitions(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: Isolation,
    timeout: Duration,
    done: impl Fn(&[Vec<Rec>]) -> bool,
) -> Vec<Vec<Rec>> {
    let c = consumer(bootstrap, None, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out: Vec<Vec<Rec>> = vec![Vec::new(); partitions as usize];
    let mut at_eof: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    loop {
        if at_eof.len() == partitions as usize && done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{isolation:?} read of {topic} not done within {timeout:?}; partitions at EOF: \
             {at_eof:?}; records per partition: {:?}; values: {:?}",
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            out.iter()
                .map(|v| v.iter().map(|r| r.value.as_str()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition();
                assert!((0..partitions).contains(&p), "record from partition {p}");
                at_eof.remove(&p);
                let value = m
                    .payload()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let key = m.key().map(|b| String::from_utf8_lossy(b).into_owned());
                let part = &mut out[p as usize];
                if let Some(last) = part.last() {
                    assert!(
                        m.offset() > last.offset,
                        "{topic}/{p}: offset {} after {}",
                        m.offset(),
                        last.offset
                    );
                }
                part.push(Rec {
                    partition: p,
                    offset: m.offset(),
                    key,
                    value,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_eof.insert(p);
            }
            // Transient (a restarted broker, a leader not known yet): librdkafka retries.
            Some(Err(e)) => eprintln!("{isolation:?} consumer of {topic}: {e}"),
        }
    }
}

/// The values of each partition, in offset order.
pub fn values(parts: &[Vec<Rec>]) -> Vec<Vec<String>> {
    parts
        .iter()
        .map(|p| p.iter().map(|r| r.value.clone()).collect())
        .collect()
}

/// The offsets the group `group` has committed for partitions `0..partitions` of `topic`, read
/// by a consumer of that group with `isolation` (read_committed asks for stable offsets only).
/// `None` for a partition without a committed offset.
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    isolation: Isolation,
) -> Vec<Option<i64>> {
    let c = consumer(bootstrap, Some(group), isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("OffsetFetch for group {group}: {e}"));
    (0..partitions)
        .map(|p| {
            let e = got
                .find_partition(topic, p)
                .unwrap_or_else(|| panic!("no {topic}/{p} in the OffsetFetch answer"));
            match e.offset() {
                Offset::Offset(o) => Some(o),
                Offset::Invalid => None,
                other => panic!("{topic}/{p}: committed offset {other:?}"),
            }
        })
        .collect()
}

/// The high watermark of each partition `0..partitions` of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c = consumer(bootstrap, None, Isolation::ReadUncommitted);
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
                .1
        })
        .collect()
}

/// A small pseudo-random number (no dependency for it): nanoseconds of the clock mixed.
pub fn pseudo_random(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % bound.max(1)
}
