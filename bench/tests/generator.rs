//! The load generator against a real `corelog` process, checked by an independent client
//! (librdkafka): what it reports acknowledged is exactly what the topic holds, every codec it
//! writes decodes, keyed records land where Kafka's partitioner puts them, idempotent sequences are
//! accepted, consumers read everything once, and fixed-rate latency charges a broker stall to every
//! record that was due during it (no coordinated omission).

mod support;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use corelog_bench::keys::partition_for_key;
use support::*;

/// Load tests run one at a time: on a 2-core machine two of them would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_acknowledged_record_is_in_the_topic_and_consumed_exactly_once() {
    let _serial = serial();
    let broker = Broker::start();
    let topic = "exact";
    let r = bench_run(&[
        "--bootstrap",
        &broker.bootstrap,
        "--topic",
        topic,
        "--partitions",
        "4",
        "--acks",
        "1",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
    ]);
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let total = u64_at(&r, "/total_acked_messages");
    let window = u64_at(&r, "/produced/messages");
    assert!(
        window > 1000 && window <= total,
        "window {window} of total {total}"
    );
    let secs = f64_at(&r, "/window_secs");
    assert!(
        (1.9..3.0).contains(&secs),
        "window of {secs} s for --duration 2s"
    );
    // Consumers started at the end of the empty topic and drained after the producers stopped.
    assert_eq!(u64_at(&r, "/total_consumed_messages"), total, "{r}");
    assert!(u64_at(&r, "/produce_latency/count") > 0);
    assert!(u64_at(&r, "/end_to_end_latency/count") > 0);
    assert!(
        u64_at(&r, "/end_to_end_latency/p50_us") >= 1,
        "latencies are positive"
    );

    // librdkafka sees exactly the acknowledged records: contiguous offsets, 1 KiB values.
    assert_eq!(total_records(&broker.bootstrap, topic, 4), total as i64);
    let seen = read_all(&broker.bootstrap, topic, 4, total as usize);
    assert_eq!(seen.len(), total as usize);
    let mut next = [0i64; 4];
    let mut sorted: Vec<_> = seen.iter().map(|s| (s.partition, s.offset)).collect();
    sorted.sort();
    for (p, offset) in sorted {
        assert_eq!(
            offset, next[p as usize],
            "partition {p} offsets are contiguous"
        );
        next[p as usize] += 1;
    }
    assert!(seen
        .iter()
        .all(|s| s.value.len() == 1024 && s.key.is_none()));
}

#[test]
fn keyed_records_land_where_kafkas_partitioner_puts_them() {
    let _serial = serial();
    let broker = Broker::start();
    let topic = "keyed";
    let r = bench_run(&[
        "--bootstrap",
        &broker.bootstrap,
        "--topic",
        topic,
        "--partitions",
        "8",
        "--acks",
        "all",
        "--keys",
        "skewed",
        "--key-count",
        "50",
        "--consumers",
        "0",
        "--messages",
        "3000",
        "--warmup",
        "0s",
        "--message-bytes",
        "100",
    ]);
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let total = u64_at(&r, "/total_acked_messages");
    assert!(total >= 3000);
    let seen = read_all(&broker.bootstrap, topic, 8, total as usize);
    assert_eq!(seen.len(), total as usize);
    let mut per_key = std::collections::HashMap::new();
    for s in &seen {
        let key = s.key.as_deref().expect("keyed record");
        assert_eq!(
            partition_for_key(key, 8) as i32,
            s.partition,
            "{:?} on partition {}",
            String::from_utf8_lossy(key),
            s.partition
        );
        *per_key.entry(key.to_vec()).or_insert(0u64) += 1;
        assert_eq!(s.value.len(), 100);
    }
    // Zipf(1) over 50 keys: the hottest key carries ~22% of the records, far above 1/50.
    let hottest = per_key.values().max().copied().unwrap_or(0) as f64 / total as f64;
    assert!(hottest > 0.1, "hottest key share {hottest}");
}

#[test]
fn every_codec_decodes_in_librdkafka() {
    let _serial = serial();
    let broker = Broker::start();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let r = bench_run(&[
            "--bootstrap",
            &broker.bootstrap,
            "--topic",
            codec,
            "--partitions",
            "2",
            "--acks",
            "1",
            "--compression",
            codec,
            "--messages",
            "2000",
            "--warmup",
            "0s",
        ]);
        assert_eq!(r["errors"], serde_json::json!([]), "{codec}: {r}");
        let total = u64_at(&r, "/total_acked_messages");
        assert_eq!(
            u64_at(&r, "/total_consumed_messages"),
            total,
            "{codec}: own consumer"
        );
        let seen = read_all(&broker.bootstrap, codec, 2, total as usize);
        assert_eq!(
            seen.len(),
            total as usize,
            "{codec}: librdkafka read them all"
        );
        assert!(
            seen.iter()
                .all(|s| s.value.len() == 1024 && s.value[8..].iter().all(u8::is_ascii_uppercase)),
            "{codec}: values decode to the generated letters"
        );
    }
}

#[test]
fn idempotent_producers_have_their_sequences_accepted() {
    let _serial = serial();
    let broker = Broker::start();
    let r = bench_run(&[
        "--bootstrap",
        &broker.bootstrap,
        "--topic",
        "idem",
        "--partitions",
        "4",
        "--acks",
        "all",
        "--idempotence",
        "--producers",
        "2",
        "--consumers",
        "0",
        "--duration",
        "1500ms",
        "--warmup",
        "200ms",
    ]);
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let total = u64_at(&r, "/total_acked_messages");
    assert!(total > 0);
    assert_eq!(total_records(&broker.bootstrap, "idem", 4), total as i64);
}

#[test]
fn a_consume_only_run_reads_the_whole_backlog() {
    let _serial = serial();
    let broker = Broker::start();
    let fill = bench_run(&[
        "--bootstrap",
        &broker.bootstrap,
        "--topic",
        "backlog",
        "--partitions",
        "4",
        "--acks",
        "1",
        "--consumers",
        "0",
        "--messages",
        "20000",
        "--warmup",
        "0s",
    ]);
    let total = u64_at(&fill, "/total_acked_messages");
    let read = bench_run(&[
        "--bootstrap",
        &broker.bootstrap,
        "--topic",
        "backlog",
        "--producers",
        "0",
        "--consumers",
        "2",
        "--consume-from",
        "earliest",
        "--warmup",
        "0s",
        "--duration",
        "60s",
    ]);
    assert_eq!(u64_at(&read, "/total_consumed_messages"), total, "{read}");
    assert_eq!(u64_at(&read, "/consumed/messages"), total, "{read}");
    assert_eq!(u64_at(&read, "/consumed/bytes"), total * 1024);
    assert!(
        f64_at(&read, "/window_secs") < 30.0,
        "the run ends when the backlog is read"
    );
}

#[test]
fn fixed_rate_latency_charges_a_broker_stall_to_every_record_due_during_it() {
    let _serial = serial();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut run = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .args([
            "run",
            "--no-progress",
            "--bootstrap",
            &broker.bootstrap,
            "--topic",
            "stall",
        ])
        .args([
            "--partitions",
            "2",
            "--acks",
            "1",
            "--rate",
            "2000",
            "--duration",
            "4s",
        ])
        .args(["--warmup", "500ms", "--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Stop the broker for 800 ms in the middle of the measured window.
    std::thread::sleep(Duration::from_millis(2000));
    let pid = broker.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(800));
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(run.wait().unwrap().success());
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &results[0];

    // The records due during the stall (~20% of the window) waited up to 800 ms: measured from
    // their intended send times, the stall shows in p90 and max. Measured from when they were
    // actually sent, only the few in flight would show it.
    let max = u64_at(r, "/produce_latency/max_us");
    let p90 = u64_at(r, "/produce_latency/p90_us");
    let e2e_p90 = u64_at(r, "/end_to_end_latency/p90_us");
    assert!(max >= 600_000, "max {max} µs after an 800 ms stall");
    assert!(
        p90 >= 100_000,
        "p90 {p90} µs: the stall is charged to every due record"
    );
    assert!(e2e_p90 >= 100_000, "end-to-end p90 {e2e_p90} µs");
    // The schedule was kept: the records due during the stall were sent after it.
    let rate = f64_at(r, "/produced/msgs_per_sec");
    assert!(
        (1700.0..2400.0).contains(&rate),
        "rate {rate}/s for --rate 2000"
    );
}

#[test]
fn the_null_sink_acknowledges_without_a_broker() {
    let _serial = serial();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut sink = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .args(["null-sink", "--listen", &listen])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(&listen);
    let r = bench_run(&[
        "--bootstrap",
        &listen,
        "--partitions",
        "8",
        "--acks",
        "1",
        "--consumers",
        "0",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    sink.kill().unwrap();
    sink.wait().unwrap();
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert!(u64_at(&r, "/produced/messages") > 1000, "{r}");
    assert!(u64_at(&r, "/produce_latency/count") > 0);
}

#[test]
fn bad_workloads_are_refused_with_a_reason() {
    for (args, why) in [
        (vec!["--message-bytes", "4"], "message size"),
        (
            vec!["--producers", "0", "--consumers", "0"],
            "nothing to run",
        ),
        (vec!["--acks", "2"], "acks must be"),
        (vec!["--rate", "0"], "rate"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
            .args(["run", "--bootstrap", "127.0.0.1:1"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}
