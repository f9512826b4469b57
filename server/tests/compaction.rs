//! Compaction (`cleanup.policy=compact`, issue 6) against a real `corelog` process, checked with
//! an independent client (librdkafka through the `rdkafka` crate).
//!
//! - A compacted topic written with many overwrites and tombstones, read from the beginning by a
//!   librdkafka consumer once the cleaner is done: exactly one record per key, the key's latest
//!   value at the offset it was acknowledged at (offsets are preserved, gaps appear), tombstones
//!   kept while `delete.retention.ms` has not passed and gone once it has.
//! - SIGKILL while the cleaner runs, again and again: after every restart each key's latest
//!   acknowledged value is still there, no record appears twice and offsets only grow.
//!
//! Segments roll by `segment.ms` on the retention task's check (no append needed), so the whole
//! log becomes cleanable and the final state is exact, not a lower bound.

mod interop_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use interop_support::*;

/// How long the cleaner may take to reach the expected state.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long producing or reading one topic may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// A read of the whole topic ends after this long without a record (a trailing gap).
const READ_IDLE_END: Duration = Duration::from_millis(1500);
/// Broker settings that make the cleaner and the roll check run often.
const FAST_CLEANER: &[(&str, &str)] = &[
    ("log.cleaner.backoff.ms", "100"),
    ("log.retention.check.interval.ms", "100"),
];

/// One acknowledged record: its offset and value (None: a tombstone).
type Acked = (i64, Option<String>);

/// Collects delivery reports: key → every acknowledged (offset, value), in ack order.
#[derive(Default)]
struct Acks {
    by_key: Mutex<BTreeMap<String, Vec<Acked>>>,
    failures: Mutex<Vec<String>>,
}

struct AckContext(Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let key = String::from_utf8(m.key().expect("keyed").to_vec()).unwrap();
                let value = m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap());
                self.0
                    .by_key
                    .lock()
                    .unwrap()
                    .entry(key)
                    .or_default()
                    .push((m.offset(), value));
            }
            Err((e, _)) => self.0.failures.lock().unwrap().push(e.to_string()),
        }
    }
}

fn producer(bootstrap: &str, acks: &Arc<Acks>, codec: &str) -> ThreadedProducer<AckContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", codec)
        // Batches well below the tests' small segment.bytes (a batch never spans segments).
        .set("batch.size", "8192")
        .set("message.timeout.ms", "30000")
        .create_with_context(AckContext(acks.clone()))
        .expect("rdkafka producer")
}

/// Sends `value` (None: a tombstone) under `key` to partition 0, retrying a full local queue.
fn send(p: &ThreadedProducer<AckContext>, topic: &str, key: &str, value: Option<&str>) {
    loop {
        let mut record: BaseRecord<str, str> = BaseRecord::to(topic).partition(0).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        match p.send(record) {
            Ok(()) => return,
            Err((e, _)) => {
                assert!(
                    e.to_string().contains("Queue full"),
                    "send {key} to {topic}: {e}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn flush(p: &ThreadedProducer<AckContext>, acks: &Acks) {
    p.flush(STEP_TIMEOUT).expect("flush");
    let failures = acks.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} deliveries failed, the first: {:?}",
        failures.len(),
        failures.first()
    );
}

/// Creates a one-partition topic with `configs` through librdkafka's admin client.
fn create_topic_with(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = futures_executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(STEP_TIMEOUT)),
    ))
    .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("CreateTopics {name}: {code:?}"));
    }
}

/// Reads partition 0 of `topic` from the beginning up to its high watermark: every record as
/// (offset, key, value).
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, STEP_TIMEOUT)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut position = -1;
    let mut last_record_at = Instant::now();
    while position + 1 < high {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: stuck at {position} of {high}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                // Compaction may leave a gap between the last surviving record and the high
                // watermark: a consumer then simply gets nothing more (as from Kafka).
                if last_record_at.elapsed() > READ_IDLE_END {
                    break;
                }
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                last_record_at = Instant::now();
                assert!(
                    m.offset() > position,
                    "offsets must grow: {} after {position}",
                    m.offset()
                );
                position = m.offset();
                let key =
                    String::from_utf8(m.key().expect("every record has a key").to_vec()).unwrap();
                let value = m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap());
                out.push((m.offset(), key, value));
            }
        }
    }
    out
}

/// What a fully compacted log holds: each key's last acknowledged record, in offset order,
/// leaving out tombstones when `drop_tombstones`.
fn expected_latest(acks: &Acks, drop_tombstones: bool) -> Vec<(i64, String, Option<String>)> {
    let mut latest: Vec<_> = acks
        .by_key
        .lock()
        .unwrap()
        .iter()
        .map(|(k, records)| {
            let (offset, value) = records.iter().max_by_key(|r| r.0).unwrap().clone();
            (offset, k.clone(), value)
        })
        .filter(|(_, _, v)| !(drop_tombstones && v.is_none()))
        .collect();
    latest.sort();
    latest
}

/// Polls until reading the whole topic gives exactly `want`.
fn wait_for_compacted(bootstrap: &str, topic: &str, want: &[(i64, String, Option<String>)]) {
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let got = read_all(bootstrap, topic);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let extra = got.len() as i64 - want.len() as i64;
            let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
            panic!(
                "{topic} not compacted to each key's latest record within {CLEAN_TIMEOUT:?}: \
                 read {} records, want {} ({extra:+}); first missing: {missing:?}",
                got.len(),
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Overwrites `keys` keys `rounds` times; every 5th round deletes every 3rd key (a tombstone),
/// and the next round writes it again, so tombstones sit both in the middle and at the end.
fn write_overwrites(
    p: &ThreadedProducer<AckContext>,
    acks: &Acks,
    topic: &str,
    keys: usize,
    rounds: usize,
) {
    for round in 0..rounds {
        for k in 0..keys {
            let key = format!("key-{k:03}");
            let tombstone = k % 3 == 0 && (round % 5 == 4 || round == rounds - 1);
            let value = format!("{key}-round-{round}-{}", "x".repeat(40 + k % 17));
            send(p, topic, &key, (!tombstone).then_some(value.as_str()));
        }
    }
    flush(p, acks);
}

#[test]
fn a_librdkafka_consumer_reads_each_keys_latest_value_at_its_offset() {
    let broker = Broker::start_with(FAST_CLEANER);
    let bootstrap = broker.bootstrap();
    let compacted_configs: &[(&str, &str)] = &[
        ("cleanup.policy", "compact"),
        ("segment.bytes", "16384"),
        ("segment.ms", "300"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    // Tombstones kept (an hour) on one topic, removed at once on the other.
    let kept = unique_topic("compact-kept");
    let mut configs = compacted_configs.to_vec();
    configs.push(("delete.retention.ms", "3600000"));
    create_topic_with(&bootstrap, &kept, &configs);
    let dropped = unique_topic("compact-dropped");
    let mut configs = compacted_configs.to_vec();
    configs.push(("delete.retention.ms", "0"));
    create_topic_with(&bootstrap, &dropped, &configs);

    // A topic created with the delete policy and switched to compact while the broker runs.
    let switched = unique_topic("compact-switched");
    let mut configs = compacted_configs.to_vec();
    configs[0] = ("cleanup.policy", "delete");
    configs.push(("delete.retention.ms", "3600000"));
    create_topic_with(&bootstrap, &switched, &configs);

    for (topic, codec, drop_tombstones) in [
        (&kept, "lz4", false),
        (&dropped, "none", true),
        (&switched, "snappy", false),
    ] {
        let acks = Arc::new(Acks::default());
        let p = producer(&bootstrap, &acks, codec);
        write_overwrites(&p, &acks, topic, 60, 25);
        let written: usize = acks.by_key.lock().unwrap().values().map(Vec::len).sum();
        assert_eq!(written, 60 * 25);
        let want = expected_latest(&acks, drop_tombstones);
        assert!(want.len() < written / 10, "the workload overwrites");
        if topic == &switched {
            // Not compacted under the delete policy: every record is still there.
            std::thread::sleep(Duration::from_millis(800));
            assert_eq!(read_all(&bootstrap, topic).len(), written);
            alter_topic_config(&bootstrap, topic, "cleanup.policy", "compact");
        }
        wait_for_compacted(&bootstrap, topic, &want);
    }
    broker.stop();
}

#[test]
fn compact_delete_compacts_and_also_deletes_by_age() {
    let broker = Broker::start_with(FAST_CLEANER);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("compact-delete");
    create_topic_with(
        &bootstrap,
        &topic,
        &[
            ("cleanup.policy", "compact,delete"),
            ("segment.ms", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "3600000"),
            ("retention.ms", "600000"),
        ],
    );
    // Old records (an hour ago: past retention.ms) under keys old-*, then, in later segments,
    // current ones with overwrites under keys new-*.
    let acks = Arc::new(Acks::default());
    let p = producer(&bootstrap, &acks, "gzip");
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    for k in 0..20 {
        let key = format!("old-{k:02}");
        let record: BaseRecord<str, str> = BaseRecord::to(&topic)
            .partition(0)
            .key(key.as_str())
            .payload("old")
            .timestamp(hour_ago);
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    flush(&p, &acks);
    // Let the old records' segment roll (segment.ms) before the new ones arrive.
    std::thread::sleep(Duration::from_millis(700));
    for round in 0..10 {
        for k in 0..20 {
            let key = format!("new-{k:02}");
            send(&p, &topic, &key, Some(&format!("{key}-{round}")));
        }
    }
    flush(&p, &acks);
    let new_only = Acks {
        by_key: Mutex::new(
            acks.by_key
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with("new-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        failures: Mutex::default(),
    };
    // Retention removes the old segment (and moves the log start); the cleaner leaves one
    // record per new key. Under `compact` alone the old keys stay (checked by hand: read 40,
    // want 20).
    wait_for_compacted(&bootstrap, &topic, &expected_latest(&new_only, false));
    broker.stop();
}

/// Sets one topic config through librdkafka's admin client (AlterConfigs), live.
fn alter_topic_config(bootstrap: &str, topic: &str, key: &str, value: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
    let results = futures_executor::block_on(admin.alter_configs(
        [&alter],
        &AdminOptions::new().operation_timeout(Some(STEP_TIMEOUT)),
    ))
    .expect("AlterConfigs");
    for r in results {
        r.unwrap_or_else(|(resource, code)| panic!("AlterConfigs {resource:?}: {code:?}"));
    }
}

#[test]
fn sigkill_while_cleaning_never_loses_a_keys_latest_value() {
    let mut broker = Broker::start_with(&[
        ("log.cleaner.backoff.ms", "20"),
        ("log.retention.check.interval.ms", "100"),
        // Slow the cleaner down so that a pass lasts long enough to be killed in.
        ("log.cleaner.io.max.bytes.per.second", "1000000"),
    ]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("compact-kill");
    create_topic_with(
        &bootstrap,
        &topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "32768"),
            ("segment.ms", "200"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "3600000"),
        ],
    );
    const KEYS: usize = 80;
    const KILLS: usize = 5;
    let acks = Arc::new(Acks::default());
    for kill in 0..KILLS {
        let p = producer(
            &broker.bootstrap(),
            &acks,
            if kill % 2 == 0 { "zstd" } else { "none" },
        );
        write_overwrites(&p, &acks, &topic, KEYS, 12);
        drop(p);
        // Crash the broker under the cleaner: while a pass writes its output (before the
        // commit), or, every other time, once the swap is committed (its marker is there).
        let partition_dir = broker
            .data_dir()
            .expect("a started broker")
            .join(format!("{topic}-0"));
        let trigger = if kill % 2 == 0 {
            ".cleaned"
        } else {
            "cleaner-swap"
        };
        wait_for_file(&partition_dir, trigger, KILL_TRIGGER_WAIT);
        broker.kill_and_restart();
        check_latest_survive(&broker.bootstrap(), &topic, &acks);
    }
    // Once the cleaner has had time, the log is exactly each key's latest record.
    wait_for_compacted(&bootstrap, &topic, &expected_latest(&acks, false));
    let log = broker.log();
    assert!(
        log.contains("compacted"),
        "the cleaner never installed a cleaned log; broker log:\n{log}"
    );
    // Where the kills landed: inside a pass (its output is removed at restart) or inside a
    // swap (finished at restart). A kill right after a finished install interrupts neither.
    let (passes, swaps) = (
        log.matches("removed the output of a cleaner pass").count(),
        log.matches("finished a cleaner swap").count(),
    );
    eprintln!(
        "{KILLS} kills: {passes} interrupted a pass before its commit, {swaps} a swap after it"
    );
    assert!(
        passes + swaps > 0,
        "no kill landed while the cleaner worked; broker log:\n{log}"
    );
    broker.stop();
}

/// How long a kill waits for the cleaner to be at the step it aims at.
const KILL_TRIGGER_WAIT: Duration = Duration::from_secs(10);

/// Polls `dir` (every millisecond, up to `wait`) until a file whose name contains `part`
/// appears. Returns whether it did (the kill goes ahead either way).
fn wait_for_file(dir: &std::path::Path, part: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().contains(part) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Every key's latest acknowledged record is still readable at its offset, and nothing older than
/// it for that key comes after it.
fn check_latest_survive(bootstrap: &str, topic: &str, acks: &Acks) {
    let got = read_all(bootstrap, topic);
    let mut last_seen: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
    for (offset, key, value) in &got {
        last_seen.insert(key, (*offset, value));
    }
    for (offset, key, value) in expected_latest(acks, false) {
        let seen = last_seen.get(key.as_str());
        assert_eq!(
            seen,
            Some(&(offset, &value)),
            "key {key}: its latest acknowledged record (offset {offset}) after a SIGKILL"
        );
    }
}
