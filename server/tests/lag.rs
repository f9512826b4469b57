//! Consumer lag is exact: produce N records per partition, consume and commit M, and `corelog
//! lag`, the broker's Prometheus endpoint and Kafka's own `kafka-consumer-groups --describe`
//! all report N - M per partition, with the same committed and log-end offsets and members.
//!
//! Runs against a fresh corelog by default, or against the broker named by
//! `CORELOG_INTEROP_BOOTSTRAP` (the reference Kafka: `scripts/kafka-reference.sh start`); the
//! metrics endpoint is corelog's own, so its assertions apply to a started corelog only.

mod interop_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use interop_support::*;

/// Limit on every client operation and external command.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Partitions of the test topic.
const PARTITIONS: i32 = 3;
/// Records produced to each partition.
const PRODUCED: i64 = 10;
/// Records consumed and committed per partition (index = partition): all different, all < N.
const COMMITTED: [i64; PARTITIONS as usize] = [3, 5, 7];
/// Records produced to the one partition of a second subscribed topic whose offsets are never
/// committed: its row shows the member but `-` for CURRENT-OFFSET and LAG.
const UNCOMMITTED_PRODUCED: i64 = 4;
/// The consumer's client.id, which must show in the CLIENT-ID column.
const CLIENT_ID: &str = "corelog-lag-test";

/// One row of a describe table (Kafka's columns); `-` cells are `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    group: String,
    topic: String,
    partition: Option<i32>,
    current: Option<i64>,
    log_end: Option<i64>,
    lag: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

/// Parses the rows of a `GROUP TOPIC PARTITION ...` table from a tool's stdout: every line
/// after a header line (Kafka's tool may print notes and blank lines around its table).
fn parse_table(stdout: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in stdout.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"GROUP") && cells.get(1) == Some(&"TOPIC") {
            assert_eq!(
                cells,
                [
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID"
                ],
                "header of:\n{stdout}"
            );
            in_table = true;
            continue;
        }
        if !in_table || cells.is_empty() {
            continue;
        }
        assert_eq!(cells.len(), 9, "row {line:?} of:\n{stdout}");
        let opt = |s: &str| (s != "-").then(|| s.to_string());
        let num = |s: &str| {
            (s != "-").then(|| {
                s.parse::<i64>()
                    .unwrap_or_else(|_| panic!("{s:?} in {line:?}"))
            })
        };
        rows.push(Row {
            group: cells[0].to_string(),
            topic: cells[1].to_string(),
            partition: num(cells[2]).map(|p| p as i32),
            current: num(cells[3]),
            log_end: num(cells[4]),
            lag: num(cells[5]),
            consumer_id: opt(cells[6]),
            host: opt(cells[7]),
            client_id: opt(cells[8]),
        });
    }
    rows
}

/// Every row of `group`, sorted (the tools need not print them in the same order).
fn group_rows(rows: &[Row], group: &str) -> Vec<Row> {
    let mut out: Vec<Row> = rows.iter().filter(|r| r.group == group).cloned().collect();
    out.sort();
    out
}

/// The rows of `group` and `topic`, by partition.
fn by_partition(rows: &[Row], group: &str, topic: &str) -> BTreeMap<i32, Row> {
    rows.iter()
        .filter(|r| r.group == group && r.topic == topic)
        .map(|r| (r.partition.expect("partition rows only"), r.clone()))
        .collect()
}

/// `corelog lag --bootstrap B [--group G]`.
fn corelog_lag(bootstrap: &str, group: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
    cmd.arg("lag").arg("--bootstrap").arg(bootstrap);
    if let Some(g) = group {
        cmd.arg("--group").arg(g);
    }
    run_with_timeout(&mut cmd, TIMEOUT, b"")
}

/// Kafka's `kafka-consumer-groups --describe --group G`.
fn kafka_describe(bootstrap: &str, group: &str) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/kafka-tool.sh"))
        .arg("ConsumerGroupCommand")
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .arg("--describe")
        .arg("--group")
        .arg(group);
    run_with_timeout(&mut cmd, TIMEOUT, b"")
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Sends `request` to the metrics endpoint and returns everything it answers before closing.
fn http_exchange(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // The server may close before reading all of an oversized request: a write error is fine.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8(answer).expect("UTF-8 answer")
}

/// `GET /metrics`: the samples `name{labels} value` of the body, keyed by `name{labels}`.
fn scrape(port: u16) -> BTreeMap<String, i64> {
    let answer = http_exchange(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n",
    );
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("numeric Content-Length");
    assert_eq!(length, body.len(), "Content-Length");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("sample line");
            (key.to_string(), value.parse().expect("integer sample"))
        })
        .collect()
}

fn lag_key(metric: &str, group: &str, topic: &str, partition: i32) -> String {
    format!("{metric}{{group=\"{group}\",topic=\"{topic}\",partition=\"{partition}\"}}")
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("rdkafka admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("CreateTopics {name}: {code:?}");
        }
    }
}

/// Produces `count` records to each partition of `topic` (explicit partitions), acks=all.
fn produce(bootstrap: &str, topic: &str, partitions: i32, count: i64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("rdkafka producer");
    for p in 0..partitions {
        for i in 0..count {
            let payload = format!("p{p}-r{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&payload),
                )
                .unwrap_or_else(|(e, _)| panic!("send to partition {p}: {e}"));
        }
    }
    producer.flush(TIMEOUT).expect("flush");
    // Every record must be in the log before offsets are compared.
    for p in 0..partitions {
        let (low, high) = producer
            .client()
            .fetch_watermarks(topic, p, TIMEOUT)
            .expect("watermarks");
        assert_eq!((low, high), (0, count), "partition {p} after producing");
    }
}

/// A group member (subscribe, so that it joins the group and gets an assignment) that reads
/// until it has seen the first `COMMITTED[p]` records of every partition of `topic`, then
/// commits exactly those positions synchronously. It also subscribes to `uncommitted`, whose
/// offsets it never commits.
fn consume_and_commit(
    bootstrap: &str,
    topic: &str,
    uncommitted: &str,
    group: &str,
) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", CLIENT_ID)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("rdkafka consumer");
    consumer
        .subscribe(&[topic, uncommitted])
        .expect("subscribe");
    let mut seen = [0i64; PARTITIONS as usize];
    let deadline = Instant::now() + TIMEOUT;
    while seen.iter().zip(COMMITTED).any(|(s, m)| *s < m) {
        assert!(
            Instant::now() < deadline,
            "consumed only {seen:?} of {COMMITTED:?} within {TIMEOUT:?}"
        );
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.expect("consume");
            if msg.topic() != topic {
                continue;
            }
            let p = msg.partition() as usize;
            // Offsets arrive in order per partition, starting at 0.
            assert_eq!(msg.offset(), seen[p], "partition {p}");
            seen[p] += 1;
        }
    }
    let mut offsets = TopicPartitionList::new();
    for (p, m) in COMMITTED.iter().enumerate() {
        offsets
            .add_partition_offset(topic, p as i32, Offset::Offset(*m))
            .expect("offset");
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .expect("synchronous commit");
    consumer
}

/// Asserts that the rows of one tool give, per partition, CURRENT-OFFSET = M, LOG-END-OFFSET =
/// N and LAG = N - M, with the member columns filled (`member` true) or `-`.
fn assert_exact(tool: &str, rows: &BTreeMap<i32, Row>, member: bool, stdout: &str) {
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (0..PARTITIONS).collect::<Vec<_>>(),
        "{tool}: partitions of\n{stdout}"
    );
    for (p, r) in rows {
        let m = COMMITTED[*p as usize];
        assert_eq!(
            (r.current, r.log_end, r.lag),
            (Some(m), Some(PRODUCED), Some(PRODUCED - m)),
            "{tool}: partition {p} of\n{stdout}"
        );
        if member {
            assert!(
                r.consumer_id.is_some() && r.host.is_some(),
                "{tool}: partition {p} has no member in\n{stdout}"
            );
            assert_eq!(
                r.client_id.as_deref(),
                Some(CLIENT_ID),
                "{tool}: partition {p} of\n{stdout}"
            );
        } else {
            assert_eq!(
                (&r.consumer_id, &r.host, &r.client_id),
                (&None, &None, &None),
                "{tool}: partition {p} of\n{stdout}"
            );
        }
    }
}

/// The three views agree, while the consumer is a member and after it has left.
fn check_all_views(
    broker: &Broker,
    metrics_port: u16,
    (topic, uncommitted): (&str, &str),
    group: &str,
    member: bool,
) {
    let bootstrap = broker.bootstrap();
    let ours = corelog_lag(&bootstrap, Some(group));
    assert_success("corelog lag --group", &ours);
    let ours_text = String::from_utf8_lossy(&ours.stdout).to_string();
    let ours_rows = by_partition(&parse_table(&ours_text), group, topic);
    assert_exact("corelog lag", &ours_rows, member, &ours_text);

    let kafka = kafka_describe(&bootstrap, group);
    assert_success("kafka-consumer-groups --describe", &kafka);
    let kafka_text = String::from_utf8_lossy(&kafka.stdout).to_string();
    let kafka_rows = by_partition(&parse_table(&kafka_text), group, topic);
    assert_exact("kafka-consumer-groups", &kafka_rows, member, &kafka_text);
    // The very same rows, every topic of the group: member ids, hosts and client ids included.
    assert_eq!(
        group_rows(&parse_table(&ours_text), group),
        group_rows(&parse_table(&kafka_text), group),
        "corelog lag:\n{ours_text}\nkafka-consumer-groups:\n{kafka_text}"
    );
    // Assigned but never committed: the member, the log end, `-` for the offset and the lag;
    // once the member has left, no row at all (nothing committed, nobody assigned).
    let idle = by_partition(&parse_table(&ours_text), group, uncommitted);
    if member {
        let r = idle
            .get(&0)
            .unwrap_or_else(|| panic!("no row for {uncommitted} in\n{ours_text}"));
        assert_eq!(
            (r.current, r.log_end, r.lag, r.client_id.as_deref()),
            (None, Some(UNCOMMITTED_PRODUCED), None, Some(CLIENT_ID)),
            "{ours_text}"
        );
    } else {
        assert!(idle.is_empty(), "{ours_text}");
    }

    // Without --group: every group, this one among them, with the same rows.
    let all = corelog_lag(&bootstrap, None);
    assert_success("corelog lag", &all);
    let all_text = String::from_utf8_lossy(&all.stdout).to_string();
    assert_eq!(
        by_partition(&parse_table(&all_text), group, topic),
        ours_rows,
        "corelog lag without --group:\n{all_text}"
    );

    if broker.is_spawned() {
        let samples = scrape(metrics_port);
        for p in 0..PARTITIONS {
            let m = COMMITTED[p as usize];
            assert_eq!(
                samples.get(&lag_key("corelog_consumer_lag", group, topic, p)),
                Some(&(PRODUCED - m)),
                "lag of partition {p} in {samples:#?}"
            );
            assert_eq!(
                samples.get(&lag_key(
                    "corelog_consumer_committed_offset",
                    group,
                    topic,
                    p
                )),
                Some(&m),
                "committed offset of partition {p} in {samples:#?}"
            );
            assert_eq!(
                samples.get(&format!(
                    "corelog_log_end_offset{{topic=\"{topic}\",partition=\"{p}\"}}"
                )),
                Some(&PRODUCED),
                "log-end offset of partition {p} in {samples:#?}"
            );
        }
        assert_eq!(
            samples.get(&format!(
                "corelog_log_end_offset{{topic=\"{uncommitted}\",partition=\"0\"}}"
            )),
            Some(&UNCOMMITTED_PRODUCED),
            "{samples:#?}"
        );
        assert!(
            !samples.contains_key(&lag_key("corelog_consumer_lag", group, uncommitted, 0)),
            "lag without a committed offset in {samples:#?}"
        );
    }
}

#[test]
fn lag_is_exact_in_corelog_lag_metrics_and_kafka_describe() {
    let metrics_port = free_port();
    let metrics_listener = format!("127.0.0.1:{metrics_port}");
    let mut broker = Broker::start_with(&[
        ("corelog.metrics.listener", metrics_listener.as_str()),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("lag");
    let group = unique_topic("lag-group");
    let uncommitted = unique_topic("lag-uncommitted");
    create_topic(&bootstrap, &topic, PARTITIONS);
    create_topic(&bootstrap, &uncommitted, 1);
    produce(&bootstrap, &topic, PARTITIONS, PRODUCED);
    produce(&bootstrap, &uncommitted, 1, UNCOMMITTED_PRODUCED);

    let consumer = consume_and_commit(&bootstrap, &topic, &uncommitted, &group);
    let topics = (topic.as_str(), uncommitted.as_str());
    check_all_views(&broker, metrics_port, topics, &group, true);

    // Leaving the group empties the member columns; the offsets and lag stay.
    consumer.unsubscribe();
    drop(consumer);
    check_all_views(&broker, metrics_port, topics, &group, false);

    broker.assert_alive();
    broker.stop();
}

#[test]
fn an_unknown_group_or_an_unreachable_broker_is_an_error() {
    let mut broker = Broker::start_with(&[("corelog.metrics.listener", "")]);
    let group = unique_topic("no-such-group");
    let out = corelog_lag(&broker.bootstrap(), Some(&group));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(
        stderr.contains(&format!("consumer group '{group}' does not exist")),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);

    let out = corelog_lag(&format!("127.0.0.1:{}", free_port()), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(
        stderr.contains("cannot reach the broker"),
        "stderr: {stderr}"
    );

    broker.assert_alive();
    broker.stop();
}

#[test]
fn metrics_endpoint_reports_log_end_offsets_and_survives_bad_requests() {
    let metrics_port = free_port();
    let metrics_listener = format!("127.0.0.1:{metrics_port}");
    let mut broker = Broker::start_with(&[("corelog.metrics.listener", metrics_listener.as_str())]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("lag-metrics");
    create_topic(&bootstrap, &topic, PARTITIONS);
    // Checked against the broker's own watermarks whatever the broker is.
    produce(&bootstrap, &topic, PARTITIONS, PRODUCED);
    if broker.is_spawned() {
        let samples = scrape(metrics_port);
        for p in 0..PARTITIONS {
            assert_eq!(
                samples.get(&format!(
                    "corelog_log_end_offset{{topic=\"{topic}\",partition=\"{p}\"}}"
                )),
                Some(&PRODUCED),
                "{samples:#?}"
            );
        }
        assert!(
            samples.contains_key("corelog_open_connections")
                && samples.contains_key("corelog_fetch_zero_copy_bytes_total")
                && samples.contains_key("corelog_fetch_copied_bytes_total"),
            "{samples:#?}"
        );

        let not_found = http_exchange(metrics_port, b"GET /other HTTP/1.1\r\n\r\n");
        assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
        let post = http_exchange(metrics_port, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let garbage = http_exchange(metrics_port, b"\x00\x01garbage\r\n\r\n");
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
        // A request head over the limit (64 KiB, beyond any real scrape) is closed unanswered.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        huge.resize(64 * 1024, b'a');
        assert_eq!(http_exchange(metrics_port, &huge), "", "oversized request");

        // A second broker configured with the same (taken) metrics port still serves Kafka.
        let mut second =
            Broker::start_with(&[("corelog.metrics.listener", metrics_listener.as_str())]);
        api_versions_ok(second.addr()).expect("the second broker answers ApiVersions");
        // Shards start concurrently: the Kafka port may answer before shard 0 has logged.
        let deadline = Instant::now() + TIMEOUT;
        while !second.log().contains("metrics listener not started") {
            assert!(
                Instant::now() < deadline,
                "no bind warning in:\n{}",
                second.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        second.assert_alive();
        second.stop();
        // And the first one's endpoint still answers.
        assert!(scrape(metrics_port).contains_key("corelog_open_connections"));
    }
    broker.assert_alive();
    broker.stop();
}
