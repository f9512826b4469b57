//! corelog-bench against Apache Kafka 4.x (the reference broker of `scripts/kafka-reference.sh`,
//! from the Maven Central jars `scripts/install-interop.sh` installs): the generator works against
//! any Kafka-protocol broker, and the compare mode measures corelog and Kafka side by side.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// A reference Kafka broker in a temporary directory; stopped when dropped.
struct Kafka {
    bootstrap: String,
    port: u16,
    dir: tempfile::TempDir,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

impl Kafka {
    fn start() -> Kafka {
        let dir = tempfile::tempdir().expect("temp dir");
        // The script uses PORT and PORT+1 (its KRaft controller): find two free ones together.
        let port = loop {
            let p = free_port();
            if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/kafka-reference.sh"))
            .args(["start", "--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .status()
            .expect("run kafka-reference.sh");
        assert!(status.success(), "the reference Kafka did not start");
        Kafka {
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            dir,
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/kafka-reference.sh"))
            .args(["stop", "--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn the_generator_runs_against_apache_kafka_and_compare_measures_both() {
    let kafka = Kafka::start();

    // 1. A plain run against Kafka, idempotent with acks=all, checked with librdkafka.
    let r = bench_run(&[
        "--bootstrap",
        &kafka.bootstrap,
        "--topic",
        "against-kafka",
        "--partitions",
        "4",
        "--acks",
        "all",
        "--idempotence",
        "--duration",
        "2s",
        "--warmup",
        "1s",
    ]);
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let total = u64_at(&r, "/total_acked_messages");
    assert!(total > 0, "{r}");
    assert_eq!(
        total_records(&kafka.bootstrap, "against-kafka", 4),
        total as i64
    );
    assert_eq!(u64_at(&r, "/total_consumed_messages"), total, "{r}");
    assert!(
        r["broker_cpu"]["cpu_secs"].as_f64().unwrap_or(0.0) > 0.0,
        "Kafka's CPU time is found from its port: {r}"
    );

    // 2. The compare mode: corelog and Kafka in one run, with ratios.
    let corelog = Broker::start();
    let out = tempfile::tempdir().unwrap();
    bench(&[
        "compare",
        "--no-progress",
        "--target",
        &format!("corelog={}", corelog.bootstrap),
        "--target",
        &format!("kafka={}", kafka.bootstrap),
        "--acks-list",
        "1",
        "--partitions-list",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "500ms",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let rows: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("results.json")).expect("results.json"),
    )
    .expect("results JSON");
    let rows = rows.as_array().expect("an array of rows");
    for name in ["corelog", "kafka"] {
        for phase in ["produce", "consume", "latency"] {
            let row = rows
                .iter()
                .find(|r| r["target"] == name && r["phase"] == phase)
                .unwrap_or_else(|| panic!("no {name} {phase} row in {rows:?}"));
            assert!(row["error"].is_null(), "{name} {phase}: {row}");
            let result = &row["result"];
            let moved = u64_at(result, "/produced/messages") + u64_at(result, "/consumed/messages");
            assert!(moved > 0, "{name} {phase} moved nothing: {result}");
        }
    }
    let ratios = std::fs::read_to_string(out.path().join("ratios.csv")).expect("ratios.csv");
    assert!(ratios.lines().count() >= 2, "ratios: {ratios}");
    for chart in ["throughput-produce.svg", "latency-e2e.svg"] {
        let svg = std::fs::read_to_string(out.path().join(chart)).expect(chart);
        assert!(svg.contains("<svg") && svg.contains("polyline"), "{chart}");
    }
}
