//! The pure-Python Kafka clients against a real `corelog` process: kafka-python and aiokafka
//! (asyncio), each an implementation of the protocol independent of librdkafka and of the Java
//! client.
//!
//! Each test runs its client's script (`server/tests/interop/python/*.py`, from the venv
//! `.cache/venv` that `scripts/install-interop.sh` fills): the client's admin creates a topic with
//! 3 partitions, its producer sends records with explicit partitions, keys (some null), values
//! (some empty), CreateTime timestamps and headers with a repeated key, its consumer reads them back
//! in a consumer group (subscribe, auto commit off) and commits explicitly. The script checks that
//! every record round-trips exactly (partition, offset, key, value, timestamp and its type, headers
//! in order) and that `committed()` (from the committing consumer and from a fresh one) equals the
//! end offsets; any mismatch exits non-zero naming the client and the step. This test asserts the
//! exit status and checks the JSON summary the script prints.
//!
//! As with `tests/interop.rs`, `CORELOG_INTEROP_BOOTSTRAP=HOST:PORT` runs the same against an
//! already-running broker (the reference Apache Kafka 4.4 of `scripts/kafka-reference.sh`).

mod interop_support;

use std::process::Command;
use std::time::Duration;

use interop_support::*;

/// Records each client produces: partition i % 3, so 40 per partition.
const COUNT: u64 = 120;
const PARTITIONS: u64 = 3;
/// The script's own deadline for all its steps, in seconds.
const SCRIPT_TIMEOUT_S: u64 = 20;

/// Runs `script` against a fresh corelog and checks its exit status and summary.
fn python_roundtrip(client: &str, script: &str) {
    let broker = Broker::start();
    let topic = unique_topic(&format!("{client}-rt"));
    let group = format!("{topic}-group");
    let script = repo_root().join("server/tests/interop/python").join(script);
    let out = run_with_timeout(
        Command::new(python())
            .arg(&script)
            .arg(broker.bootstrap())
            .arg(&topic)
            .arg(&group)
            .args(["--count", &COUNT.to_string()])
            .args(["--timeout", &SCRIPT_TIMEOUT_S.to_string()]),
        Duration::from_secs(SCRIPT_TIMEOUT_S + 30),
        b"",
    );
    assert_success(&format!("{client}: {}", script.display()), &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{client}: no JSON summary on stdout:\n{stdout}"));
    let summary: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{client}: summary is not JSON ({e}): {line}"));
    assert_eq!(summary["client"], client, "{client}: summary {summary}");
    assert_eq!(
        summary["topic"],
        topic.as_str(),
        "{client}: summary {summary}"
    );
    assert_eq!(
        summary["produced"], COUNT,
        "{client}: produced, summary {summary}"
    );
    assert_eq!(
        summary["consumed"], COUNT,
        "{client}: consumed, summary {summary}"
    );
    let per_partition = COUNT / PARTITIONS;
    for p in 0..PARTITIONS {
        let p = p.to_string();
        assert_eq!(
            summary["per_partition"][&p], per_partition,
            "{client}: records read from partition {p}, summary {summary}"
        );
        assert_eq!(
            summary["end_offsets"][&p], per_partition,
            "{client}: end offset of partition {p}, summary {summary}"
        );
        assert_eq!(
            summary["committed"][&p], per_partition,
            "{client}: committed offset of partition {p}, summary {summary}"
        );
    }
    broker.stop();
}

#[test]
fn kafka_python_group_roundtrip() {
    python_roundtrip("kafka-python", "kafka_python_roundtrip.py");
}

#[test]
fn aiokafka_group_roundtrip() {
    python_roundtrip("aiokafka", "aiokafka_roundtrip.py");
}
