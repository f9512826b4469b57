//! The delete policy (issue 6) against a real `corelog` process, with independent clients:
//! librdkafka (the `rdkafka` crate) produces, consumes in groups and asks for watermarks
//! (ListOffsets earliest/latest); Kafka's own `kafka-configs` changes retention live; raw
//! protocol requests check the error codes (Fetch below the log start, DeleteRecords).
//!
//! Every broker checks retention every 200 ms (`log.retention.check.interval.ms`) and uses small
//! segments, so time and size retention show within seconds. Each test owns a port of this
//! file's range and its own data directory; tests poll with deadlines, and wait a fixed time
//! only to show that something does *not* happen.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Client;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// This file's brokers listen on `PORT_BASE + n` (the range given to this test suite).
const PORT_BASE: u16 = 19300;
/// How often the brokers apply retention.
const CHECK_INTERVAL_MS: u64 = 200;
/// Segment size of the test topics: records of ~`VALUE_BYTES` make a few dozen per segment.
const SEGMENT_BYTES: u64 = 16 * 1024;
/// Bytes of each record's value (its offset, zero-padded, then filler).
const VALUE_BYTES: usize = 200;
/// librdkafka's largest batch: well under a segment, so no batch is refused as too large.
const PRODUCER_BATCH_BYTES: &str = "4096";
/// How long a condition that must come true may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a test watches for something that must *not* happen: several retention checks.
const QUIET_WAIT: Duration = Duration::from_millis(5 * CHECK_INTERVAL_MS);
/// Timeout of one librdkafka call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const OFFSET_OUT_OF_RANGE: i16 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A running `corelog serve` on a port of this file's range, stopped when dropped.
struct Corelog {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Corelog {
    fn start(port_offset: u16, settings: &[&str]) -> Corelog {
        let dir = tempfile::tempdir().unwrap();
        let port = PORT_BASE + port_offset;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
        cmd.arg("serve")
            .args(["--set", &format!("listeners=PLAINTEXT://127.0.0.1:{port}")])
            .args([
                "--set",
                &format!("log.dirs={}", dir.path().join("data").display()),
            ])
            .args(["--set", "corelog.shards=2"])
            .args(["--set", "corelog.metrics.listener="])
            .args([
                "--set",
                &format!("log.retention.check.interval.ms={CHECK_INTERVAL_MS}"),
            ]);
        for kv in settings {
            cmd.args(["--set", kv]);
        }
        let log = std::fs::File::create(dir.path().join("corelog.log")).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let mut child = cmd.spawn().expect("start corelog");
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("corelog exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "corelog did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Corelog {
            child: Some(child),
            port,
            dir,
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn client(&self) -> Client {
        Client::connect(self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("corelog.log")).unwrap_or_default()
    }

    fn partition_dir(&self, topic: &str) -> PathBuf {
        corelog_engine::storage::partition_dir(&self.dir.path().join("data"), topic, 0)
    }

    /// (base offset, bytes) of every segment file of partition 0, oldest first.
    fn segments(&self, topic: &str) -> Vec<(i64, u64)> {
        let mut out: Vec<(i64, u64)> = std::fs::read_dir(self.partition_dir(topic))
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let base = corelog_engine::segment::parse_file_name(
                    &e.file_name().to_string_lossy(),
                    "log",
                )?;
                Some((base, e.metadata().unwrap().len()))
            })
            .collect();
        out.sort();
        out
    }

    /// Creates a one-partition topic with `configs`.
    fn create_topic(&self, name: &str, configs: &[(&str, &str)]) {
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let r = self.client().call(
            5,
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(5000),
        );
        assert_eq!(
            r.topics[0].error_code, 0,
            "create {name}: {:?}",
            r.topics[0]
        );
    }

    /// Sets topic configs with IncrementalAlterConfigs (SET).
    fn set_configs(&self, topic: &str, configs: &[(&str, &str)]) {
        let r = self.client().call(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_config_operation(0)
                                    .with_value(Some(s(v)))
                            })
                            .collect(),
                    ),
            ]),
        );
        assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0]);
    }

    /// A raw Fetch (v12) of partition 0 at `offset`: (error code, log start, high watermark).
    fn fetch(&self, topic: &str, offset: i64) -> (i16, i64, i64) {
        let mut p = FetchPartition::default();
        p.fetch_offset = offset;
        p.partition_max_bytes = 1 << 20;
        p.log_start_offset = -1;
        p.current_leader_epoch = -1;
        p.last_fetched_epoch = -1;
        let mut t = FetchTopic::default();
        t.topic = TopicName(s(topic));
        t.partitions = vec![p];
        let mut r = FetchRequest::default();
        r.replica_id = BrokerId(-1);
        r.max_bytes = 1 << 20;
        r.session_epoch = -1;
        r.topics = vec![t];
        let response = self.client().call(12, &r);
        let p = &response.responses[0].partitions[0];
        (p.error_code, p.log_start_offset, p.high_watermark)
    }

    /// Runs `kafka-configs` (Kafka's ConfigCommand) against this broker.
    fn kafka_configs(&self, args: &[&str]) -> String {
        install_tools();
        let out = Command::new("bash")
            .arg("scripts/kafka-tool.sh")
            .arg("kafka-configs")
            .args(["--bootstrap-server", &self.bootstrap()])
            .args(args)
            .current_dir(repo_root())
            .output()
            .expect("run scripts/kafka-tool.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kafka-configs {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Corelog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Installs Kafka's CLI tools if missing (fast when they are).
fn install_tools() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let status = Command::new("bash")
            .args(["scripts/install-interop.sh", "--quiet"])
            .current_dir(repo_root())
            .status()
            .expect("run scripts/install-interop.sh");
        assert!(status.success(), "scripts/install-interop.sh failed");
    });
}

/// Collects delivery failures of a producer.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<String>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.lock().unwrap().push(e.to_string());
        }
    }
}

/// The value of the record at `offset`: its offset, then filler up to `VALUE_BYTES`.
fn value_of(offset: i64) -> String {
    format!("{offset:010}-{}", "x".repeat(VALUE_BYTES - 11))
}

/// Produces records `from..to` (each valued by its offset) to partition 0 and waits until all
/// are acknowledged.
fn produce(bootstrap: &str, topic: &str, from: i64, to: i64) {
    let deliveries = Deliveries::default();
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "2")
        .set("batch.size", PRODUCER_BATCH_BYTES)
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "20000")
        .create_with_context(deliveries.clone())
        .expect("rdkafka producer");
    for offset in from..to {
        let value = value_of(offset);
        let mut record: BaseRecord<(), String> = BaseRecord::to(topic).partition(0).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert_eq!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::QueueFull),
                        "send: {e}"
                    );
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(DEADLINE).expect("flush the producer");
    let failed = deliveries.0.lock().unwrap().clone();
    assert!(failed.is_empty(), "deliveries failed: {failed:?}");
}

/// (low, high) watermarks of partition 0 from librdkafka: ListOffsets earliest and latest.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("rdkafka consumer");
    consumer
        .fetch_watermarks(topic, 0, CALL_TIMEOUT)
        .expect("ListOffsets")
}

/// Polls `f` until it returns `Some`, failing after `DEADLINE` with `what`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads partition 0 from `from` up to `to` with librdkafka; returns (offset, value) pairs.
fn read(bootstrap: &str, topic: &str, from: i64, to: i64) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while out.last().map_or(from, |(o, _)| o + 1) < to {
        assert!(Instant::now() < deadline, "reading {topic} {from}..{to}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            )),
            Some(Err(e)) => panic!("reading {topic} from {from}: {e}"),
            None => {}
        }
    }
    out
}

/// Asserts that the partition holds exactly the records `from..to`, each valued by its offset.
fn assert_holds_exactly(bootstrap: &str, topic: &str, from: i64, to: i64) {
    let got = read(bootstrap, topic, from, to);
    let expected: Vec<(i64, String)> = (from..to).map(|o| (o, value_of(o))).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "records {from}..{to} differ");
}

/// Time retention: once every record of a sealed segment is more than `retention.ms` old, the
/// segment goes, the log start moves to the first segment left (ListOffsets earliest follows),
/// a Fetch below it answers OFFSET_OUT_OF_RANGE, and what is left is exactly the newest records.
#[test]
fn time_retention_deletes_old_segments_and_moves_the_log_start() {
    const RETENTION_MS: u64 = 1500;
    let broker = Corelog::start(0, &[]);
    let bootstrap = broker.bootstrap();
    broker.create_topic(
        "timed",
        &[
            ("segment.bytes", &SEGMENT_BYTES.to_string()),
            ("retention.ms", &RETENTION_MS.to_string()),
        ],
    );
    let produced_at = Instant::now();
    produce(&bootstrap, "timed", 0, 300);
    assert!(
        broker.segments("timed").len() >= 3,
        "{:?}",
        broker.segments("timed")
    );

    // Every sealed segment goes; the active one (not rolled: segment.ms is 7 days) stays.
    let active = *broker.segments("timed").last().unwrap();
    let low = wait_for("the sealed segments to go", || {
        let (low, high) = watermarks(&bootstrap, "timed");
        assert_eq!(high, 300);
        (low == active.0 && broker.segments("timed") == vec![active]).then_some(low)
    });
    assert!(
        produced_at.elapsed() >= Duration::from_millis(RETENTION_MS),
        "deleted before retention.ms passed"
    );
    assert!(low > 0);
    // Below the start: OFFSET_OUT_OF_RANGE, with the new start in the answer.
    for offset in [0, low - 1] {
        assert_eq!(
            broker.fetch("timed", offset),
            (OFFSET_OUT_OF_RANGE, low, 300),
            "fetch at {offset}"
        );
    }
    assert_eq!(broker.fetch("timed", low).0, 0);
    assert_holds_exactly(&bootstrap, "timed", low, 300);
    assert!(
        broker.log().contains("retention deleted segments"),
        "{}",
        broker.log()
    );
}

/// Size retention: the partition never holds more than `retention.bytes` plus one segment once
/// a check has run, and never less than `retention.bytes` (whole segments go, oldest first).
#[test]
fn size_retention_keeps_the_partition_within_retention_bytes() {
    const RETENTION_BYTES: u64 = 40_000;
    let broker = Corelog::start(1, &[]);
    let bootstrap = broker.bootstrap();
    broker.create_topic(
        "sized",
        &[
            ("segment.bytes", &SEGMENT_BYTES.to_string()),
            ("retention.bytes", &RETENTION_BYTES.to_string()),
        ],
    );
    let mut end = 0;
    for round in 0..3 {
        // ~84 KB a round: more than the limit plus a segment.
        produce(&bootstrap, "sized", end, end + 400);
        end += 400;
        let total = wait_for("retention to bring the partition within bounds", || {
            let total: u64 = broker.segments("sized").iter().map(|s| s.1).sum();
            (total <= RETENTION_BYTES + SEGMENT_BYTES).then_some(total)
        });
        assert!(
            total >= RETENTION_BYTES,
            "round {round}: {total} bytes left"
        );
        let first = broker.segments("sized")[0].0;
        let (low, high) = watermarks(&bootstrap, "sized");
        assert_eq!((low, high), (first, end), "round {round}");
        assert!(low > 0);
        assert_holds_exactly(&bootstrap, "sized", low, end);
    }
}

/// A group's committed position that retention deleted: librdkafka consumers reset by their
/// `auto.offset.reset` (earliest: the new log start; latest: the end), and `error` reports it.
#[test]
fn consumers_whose_position_was_deleted_reset_as_configured() {
    let broker = Corelog::start(2, &["group.initial.rebalance.delay.ms=0"]);
    let bootstrap = broker.bootstrap();
    broker.create_topic("reset", &[("segment.bytes", &SEGMENT_BYTES.to_string())]);
    produce(&bootstrap, "reset", 0, 50);
    const COMMITTED: i64 = 10;
    for group in ["g-earliest", "g-latest", "g-error"] {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("reset", 0, Offset::Offset(COMMITTED))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    produce(&bootstrap, "reset", 50, 400);
    // Retention by size removes the committed position.
    broker.set_configs("reset", &[("retention.bytes", "30000")]);
    let low = wait_for("the committed position to be deleted", || {
        let total: u64 = broker.segments("reset").iter().map(|s| s.1).sum();
        let (low, _) = watermarks(&bootstrap, "reset");
        (total <= 30_000 + SEGMENT_BYTES && low > COMMITTED).then_some(low)
    });

    let member = |group: &str, reset: &str| -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", reset)
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        c.subscribe(&["reset"]).unwrap();
        c
    };
    let first_message = |c: &BaseConsumer| -> Result<i64, rdkafka::error::KafkaError> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no message and no error");
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => return Ok(m.offset()),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    };

    // earliest: the new log start.
    let earliest = member("g-earliest", "earliest");
    assert_eq!(first_message(&earliest).expect("a record"), low);

    // error: the consumer is told, it does not skip anywhere.
    let strict = member("g-error", "error");
    let e = first_message(&strict).expect_err("auto.offset.reset=error must report");
    assert_eq!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset),
        "{e}"
    );

    // latest: the end. Records keep coming until the consumer sees one (its reset may happen
    // after the first of them); it never sees anything older than the end at its join.
    let latest = member("g-latest", "latest");
    let mut end = 400;
    let offset = {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "latest consumer saw nothing");
            produce(&bootstrap, "reset", end, end + 1);
            end += 1;
            if let Some(m) = latest.poll(Duration::from_millis(300)) {
                break m.expect("a record").offset();
            }
        }
    };
    assert!((400..end).contains(&offset), "latest started at {offset}");
}

/// Retention turned on and off while the broker runs, with Kafka's own `kafka-configs`: a topic
/// without retention (the broker's `log.retention.ms=-1`) loses its old segments once
/// `retention.ms` is set, `--describe` shows the override as a topic config, and deleting the
/// override restores the broker's setting (nothing more goes).
#[test]
fn kafka_configs_turns_retention_on_and_off_live() {
    let broker = Corelog::start(3, &["log.retention.ms=-1"]);
    let bootstrap = broker.bootstrap();
    broker.create_topic("live", &[("segment.bytes", &SEGMENT_BYTES.to_string())]);
    produce(&bootstrap, "live", 0, 300);
    let before = broker.segments("live");
    assert!(before.len() >= 3, "{before:?}");
    std::thread::sleep(QUIET_WAIT);
    assert_eq!(watermarks(&bootstrap, "live"), (0, 300));
    assert_eq!(broker.segments("live").len(), before.len());

    let topic = ["--entity-type", "topics", "--entity-name", "live"];
    let alter = |extra: &[&str]| {
        let mut args = vec!["--alter"];
        args.extend_from_slice(&topic);
        args.extend_from_slice(extra);
        broker.kafka_configs(&args)
    };
    alter(&["--add-config", "retention.ms=500"]);
    let active = before.last().unwrap().0;
    wait_for("retention.ms to take effect", || {
        (watermarks(&bootstrap, "live").0 == active && broker.segments("live").len() == 1)
            .then_some(())
    });
    let mut describe = vec!["--describe"];
    describe.extend_from_slice(&topic);
    let out = broker.kafka_configs(&describe);
    assert!(
        out.contains(
            "  retention.ms=500 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=500, \
             STATIC_BROKER_CONFIG:log.retention.ms=-1, DEFAULT_CONFIG:log.retention.hours=168}\n"
        ),
        "{out}"
    );

    alter(&["--delete-config", "retention.ms"]);
    let mut all = describe.clone();
    all.push("--all");
    let out = broker.kafka_configs(&all);
    assert!(
        out.contains(
            "  retention.ms=-1 sensitive=false synonyms={STATIC_BROKER_CONFIG:log.retention.ms=-1, \
             DEFAULT_CONFIG:log.retention.hours=168}\n"
        ),
        "{out}"
    );
    produce(&bootstrap, "live", 300, 600);
    std::thread::sleep(QUIET_WAIT);
    assert_eq!(watermarks(&bootstrap, "live"), (active, 600));
    assert!(broker.segments("live").len() >= 3);
    assert_holds_exactly(&bootstrap, "live", active, 600);
}

/// DeleteRecords moves the log start by hand, into the middle of a segment; retention then
/// never moves it back to that segment's base, and moves it forward only by deleting.
#[test]
fn delete_records_moves_the_start_and_retention_never_moves_it_back() {
    let broker = Corelog::start(4, &[]);
    let bootstrap = broker.bootstrap();
    broker.create_topic("manual", &[("segment.bytes", &SEGMENT_BYTES.to_string())]);
    produce(&bootstrap, "manual", 0, 300);
    let segments = broker.segments("manual");
    assert!(segments.len() >= 4, "{segments:?}");
    // Into the middle of the third segment.
    let cut = segments[2].0 + 3;
    let r = broker.client().call(
        2,
        &DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s("manual")))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(cut)])])
            .with_timeout_ms(5000),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, cut));
    assert_eq!(watermarks(&bootstrap, "manual"), (cut, 300));
    assert_eq!(broker.fetch("manual", cut - 1).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(broker.segments("manual"), segments[2..].to_vec());

    // retention.bytes that keeps the third segment on: nothing goes, the start stays inside it.
    let kept: u64 = segments[2..].iter().map(|s| s.1).sum();
    broker.set_configs("manual", &[("retention.bytes", &kept.to_string())]);
    std::thread::sleep(QUIET_WAIT);
    assert_eq!(watermarks(&bootstrap, "manual"), (cut, 300));
    assert_eq!(broker.segments("manual"), segments[2..].to_vec());

    // A limit that deletes the third segment: the start moves to the fourth's base.
    broker.set_configs(
        "manual",
        &[("retention.bytes", &(kept - segments[2].1).to_string())],
    );
    wait_for("the third segment to go", || {
        (watermarks(&bootstrap, "manual").0 == segments[3].0).then_some(())
    });
    assert_eq!(broker.segments("manual"), segments[3..].to_vec());
    assert_holds_exactly(&bootstrap, "manual", segments[3].0, 300);
}
