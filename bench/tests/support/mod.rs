//! Test harness: a real `corelog` broker process on a free loopback port, the `corelog-bench`
//! binary, and an independent Kafka client (librdkafka) to check what the generator wrote.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

/// A broker must accept connections within this long of starting.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `corelog` binary built beside this test (cargo builds every workspace binary for
/// `cargo test --workspace`; `scripts/test.sh` does that).
fn corelog_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/corelog
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("corelog");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p corelog-server` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `corelog` process; killed when dropped.
pub struct Broker {
    pub child: Child,
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let child = Command::new(corelog_binary())
            .args(["serve", "--set"])
            .arg(format!("listeners=PLAINTEXT://{bootstrap}"))
            .arg("--set")
            .arg(format!("log.dirs={}", dir.path().join("data").display()))
            .args(["--set", "corelog.metrics.listener="])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start corelog");
        wait_for_port(&bootstrap);
        Broker {
            child,
            bootstrap,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `corelog-bench ARGS`; panics with its output if it fails.
pub fn bench(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .args(args)
        .output()
        .expect("run corelog-bench");
    assert!(
        out.status.success(),
        "corelog-bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `corelog-bench run ARGS --json FILE` and returns the one result.
pub fn bench_run(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("result.json");
    let mut all = vec![
        "run",
        "--no-progress",
        "--json",
        json.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    bench(&all);
    let text = std::fs::read_to_string(&json).expect("result file");
    let mut results: Vec<Value> = serde_json::from_str(&text).expect("result JSON");
    assert_eq!(results.len(), 1, "one result per run");
    results.remove(0)
}

pub fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

pub fn f64_at(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

/// A record as librdkafka delivers it.
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Reads every record of `topic` (partitions 0..partitions) from the beginning with librdkafka,
/// until `expected` records have arrived (or a timeout).
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Seen> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "corelog-bench-test")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .expect("librdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expected && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("librdkafka fetch");
            seen.push(Seen {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
    }
    seen
}

/// Sum of the high watermarks of `topic`'s partitions, through librdkafka.
pub fn total_records(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("librdkafka consumer");
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}
