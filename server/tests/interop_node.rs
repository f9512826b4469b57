//! kafkajs (Node, a pure-JavaScript implementation of the Kafka protocol) against a real
//! `corelog` process: `tests/interop/node/roundtrip.js` creates a 3-partition topic, produces
//! records with explicit partitions, keys, values, timestamps and headers (duplicate header keys
//! included), consumes them in a consumer group committing by hand, and checks that every record
//! round-trips exactly and that the committed offsets equal the end offsets.
//!
//! kafkajs is pinned and installed into `.cache/node` by `scripts/interop/install-node.sh`; a
//! missing kafkajs or `node` fails the test, it never skips it. With `CORELOG_INTEROP_BOOTSTRAP`
//! the test runs against that broker instead (how it is checked against Apache Kafka 4.4).

mod interop_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use interop_support::*;

const INSTALL_HINT: &str = "install it with `bash scripts/interop/install-node.sh`";

/// `.cache/node/node_modules`, asserted to hold kafkajs.
fn node_modules() -> PathBuf {
    let p = repo_root().join(".cache/node/node_modules");
    assert!(
        p.join("kafkajs/package.json").is_file(),
        "kafkajs is missing from {}: {INSTALL_HINT}",
        p.display()
    );
    p
}

#[test]
fn kafkajs_produce_consume_group_commit() {
    let modules = node_modules();
    require_on_path("node");
    let broker = Broker::start();
    let topic = unique_topic("kafkajs");
    let count = 90;
    let out = run_with_timeout(
        Command::new("node")
            .arg(repo_root().join("server/tests/interop/node/roundtrip.js"))
            .arg(broker.bootstrap())
            .arg(&topic)
            .args(["--count", &count.to_string(), "--timeout", "25"])
            .env("NODE_PATH", &modules),
        Duration::from_secs(28),
        b"",
    );
    assert_success("kafkajs roundtrip.js", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "kafkajs: summary is not one JSON object ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let s = |k: &str| summary[k].clone();
    assert_eq!(s("client"), "kafkajs", "summary: {summary}");
    assert_eq!(s("topic"), topic.as_str(), "summary: {summary}");
    assert_eq!(s("partitions"), 3, "summary: {summary}");
    assert_eq!(
        s("produced"),
        count,
        "kafkajs: produced, summary: {summary}"
    );
    assert_eq!(
        s("consumed"),
        count,
        "kafkajs: consumed, summary: {summary}"
    );
    assert!(
        s("duplicate_header_records").as_u64().unwrap_or(0) > 0,
        "kafkajs: no record with a duplicate header key, summary: {summary}"
    );
    // 90 records round-robin over 3 partitions: 30 each, all committed.
    let per = serde_json::json!({"0": "30", "1": "30", "2": "30"});
    assert_eq!(
        s("end_offsets"),
        per,
        "kafkajs: end offsets, summary: {summary}"
    );
    assert_eq!(
        s("committed"),
        per,
        "kafkajs: committed offsets, summary: {summary}"
    );
    broker.stop();
}
