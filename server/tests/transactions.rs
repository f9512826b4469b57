//! Transactions (issue 7) proved with independent clients: the Apache Kafka Java client 4.x
//! (`tests/java/ExactlyOnce.java`: consume-transform-produce exactly once, a forced abort, a fenced
//! zombie) and librdkafka (transactions that commit and abort across partitions on different
//! shards, read_committed vs read_uncommitted, the last stable offset behind an open transaction,
//! `send_offsets_to_transaction`, broker kills in the middle of transactions and of commits).
//!
//! Every test here also passes against a real Apache Kafka 4.4, which is how the tests themselves
//! were checked (the broker runs `transaction.version=0`, the flow corelog offers, because corelog
//! does not advertise the feature):
//!
//! ```text
//! bash scripts/kafka-reference.sh start --port 24000 --controller-port 24050 \
//!      --set transaction.abort.timed.out.transaction.cleanup.interval.ms=500
//! bash scripts/kafka-tool.sh kafka-features --bootstrap-server 127.0.0.1:24000 \
//!      downgrade --feature transaction.version=0
//! CORELOG_INTEROP_BOOTSTRAP=127.0.0.1:24000 cargo test --release -p corelog-server --test transactions
//! ```
//!
//! Against an external broker the tests that kill the broker skip only the kill (the harness
//! cannot kill a broker it did not start); everything they assert still holds and is asserted.

mod interop_support;
mod txn_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interop_support::*;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use txn_support::*;

/// Broker settings for every test: a fast timed-out-transaction sweep, so that a transaction left
/// open by a dead producer is aborted within about a second of its timeout; no initial rebalance
/// delay for the Java consumer's group (as scripts/kafka-reference.sh configures Kafka).
const TXN_PROPS: &[(&str, &str)] = &[
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "500",
    ),
    ("group.initial.rebalance.delay.ms", "0"),
];
/// How long a transactional call (init, commit, abort, send offsets) may take.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a consumer may take to read a topic to its end.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `transaction.timeout.ms` of producers whose transactions a test leaves open on purpose.
const SHORT_TXN_TIMEOUT_MS: u32 = 3000;
/// `transaction.timeout.ms` of producers that are expected to finish their transactions.
const NORMAL_TXN_TIMEOUT_MS: u32 = 20_000;

/// JVM options for a short-lived client on a 2-core machine (those of scripts/kafka-tool.sh).
const JVM_OPTS: &[&str] = &[
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
];

/// Kills the broker with SIGKILL and restarts it on the same data, or, for an external broker
/// (CORELOG_INTEROP_BOOTSTRAP, used to check the tests against Apache Kafka), does nothing: the
/// harness cannot kill a broker it did not start.
fn kill_and_restart_if_spawned(broker: &mut Broker) -> bool {
    if broker.is_spawned() {
        broker.kill_and_restart();
        true
    } else {
        eprintln!("external broker: kill -9 and restart skipped");
        false
    }
}

/// `s` without its ANSI colour sequences (the broker's log has them).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters, up to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Java client: consume-transform-produce exactly once.
// ---------------------------------------------------------------------------------------------

/// Input records of the Java test.
const EOS_RECORDS: usize = 300;
/// Input partitions (several, so that they land on different shards).
const EOS_INPUT_PARTITIONS: i32 = 4;
const EOS_OUTPUT_PARTITIONS: i32 = 3;

#[test]
fn java_exactly_once_consume_transform_produce() {
    let broker = Broker::start_with(TXN_PROPS);
    let lib = kafka_client_lib();
    require_on_path("java");
    let b = broker.bootstrap();
    let input = unique_topic("eos-in");
    let output = unique_topic("eos-out");
    let group = unique_topic("eos-group");
    let txn_id = unique_topic("eos-txn");
    create_topic(&b, &input, EOS_INPUT_PARTITIONS);
    create_topic(&b, &output, EOS_OUTPUT_PARTITIONS);
    let records: Vec<(i32, String, String)> = (0..EOS_RECORDS)
        .map(|i| {
            (
                i as i32 % EOS_INPUT_PARTITIONS,
                format!("k{i}"),
                format!("rec-{i:06}"),
            )
        })
        .collect();
    send_and_wait(&plain_producer(&b), &input, &records);

    let started = Instant::now();
    let out = run_with_timeout(
        Command::new("java")
            .args(JVM_OPTS)
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .arg(repo_root().join("server/tests/java/ExactlyOnce.java"))
            .args([&b, &input, &output, &group, &txn_id]),
        Duration::from_secs(150),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "ExactlyOnce.java ran {:?}; its output:\n{stdout}",
        started.elapsed()
    );
    assert_success("ExactlyOnce.java", &out);
    let lines: Vec<&str> = stdout.lines().collect();
    let line_with = |prefix: &str| lines.iter().find(|l| l.starts_with(prefix)).copied();
    assert_eq!(
        line_with("INPUT_RECORDS"),
        Some(format!("INPUT_RECORDS {EOS_RECORDS}").as_str())
    );
    assert!(
        line_with("ABORTED batch").is_some(),
        "the forced abort did not happen"
    );

    // The zombie: its produce after the successor's initTransactions is refused for its epoch,
    // it never commits, and it is told it was fenced.
    let send_err = line_with("ZOMBIE_SEND_ERROR").unwrap_or_else(|| {
        panic!("the zombie's send after being fenced did not fail; output:\n{stdout}")
    });
    assert!(
        send_err.contains("InvalidProducerEpochException")
            || send_err.contains("ProducerFencedException"),
        "the zombie's send failed for another reason than its epoch: {send_err}"
    );
    assert!(
        line_with("ZOMBIE_COMMIT_OK").is_none() && line_with("ZOMBIE_COMMIT_ERROR").is_some(),
        "the zombie's commit did not fail; output:\n{stdout}"
    );
    assert_eq!(
        line_with("FENCE_SEEN"),
        Some("FENCE_SEEN true"),
        "the zombie never got ProducerFencedException; output:\n{stdout}"
    );
    // The Java consumer's own read-back (its handling of aborted transactions and markers).
    assert_eq!(
        line_with("OUTPUT read_committed "),
        Some(format!("OUTPUT read_committed {EOS_RECORDS} {EOS_RECORDS}").as_str()),
        "the Java read_committed consumer does not see each input record transformed exactly once"
    );
    let uncommitted_java: Vec<usize> = line_with("OUTPUT read_uncommitted ")
        .expect("OUTPUT read_uncommitted line")
        .split(' ')
        .skip(2)
        .map(|n| n.parse().expect("a count"))
        .collect();
    let aborted_records: usize = line_with("ABORTED_RECORDS ")
        .and_then(|l| l["ABORTED_RECORDS ".len()..].parse().ok())
        .expect("ABORTED_RECORDS line");
    assert!(aborted_records > 0);
    assert!(
        uncommitted_java[0] >= EOS_RECORDS + aborted_records && uncommitted_java[1] == EOS_RECORDS,
        "the Java read_uncommitted consumer saw {uncommitted_java:?} (records, distinct), want at \
         least {EOS_RECORDS} + {aborted_records} aborted records, {EOS_RECORDS} distinct"
    );

    // The group's committed offsets (Java AdminClient and librdkafka) are the input's ends.
    let ends = high_watermarks(&b, &input, EOS_INPUT_PARTITIONS);
    assert_eq!(ends.iter().sum::<i64>(), EOS_RECORDS as i64);
    for p in 0..EOS_INPUT_PARTITIONS {
        let want = format!("COMMITTED {p} {}", ends[p as usize]);
        assert!(
            lines.contains(&want.as_str()),
            "AdminClient.listConsumerGroupOffsets: no `{want}`; output:\n{stdout}"
        );
    }
    let committed = committed_offsets(
        &b,
        &group,
        &input,
        EOS_INPUT_PARTITIONS,
        Isolation::ReadCommitted,
    );
    assert_eq!(
        committed,
        ends.iter().map(|&e| Some(e)).collect::<Vec<_>>(),
        "the group's committed offsets (librdkafka OffsetFetch) are not the input's end offsets"
    );

    // read_committed: each input record transformed exactly once.
    let expected: BTreeMap<String, String> = records
        .iter()
        .map(|(_, k, v)| (format!("done:{v}"), k.clone()))
        .collect();
    let committed_out = read_partitions(
        &b,
        &output,
        EOS_OUTPUT_PARTITIONS,
        Isolation::ReadCommitted,
        READ_TIMEOUT,
        |parts| parts.iter().map(Vec::len).sum::<usize>() >= EOS_RECORDS,
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in committed_out.iter().flatten() {
        let key = expected
            .get(&r.value)
            .unwrap_or_else(|| panic!("read_committed: unexpected output record {r:?}"));
        assert_eq!(r.key.as_deref(), Some(key.as_str()), "key of {r:?}");
        *seen.entry(r.value.clone()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    let missing: Vec<_> = expected.keys().filter(|v| !seen.contains_key(*v)).collect();
    assert!(
        duplicated.is_empty() && missing.is_empty(),
        "read_committed is not exactly once: {} duplicated {:?}, {} missing {:?}",
        duplicated.len(),
        duplicated.iter().take(10).collect::<Vec<_>>(),
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );

    // read_uncommitted: the aborted records are there too.
    let uncommitted_out = read_partitions(
        &b,
        &output,
        EOS_OUTPUT_PARTITIONS,
        Isolation::ReadUncommitted,
        READ_TIMEOUT,
        |parts| parts.iter().map(Vec::len).sum::<usize>() >= EOS_RECORDS + aborted_records,
    );
    let total = uncommitted_out.iter().map(Vec::len).sum::<usize>();
    assert!(
        total >= EOS_RECORDS + aborted_records,
        "read_uncommitted saw {total} records, want at least {EOS_RECORDS} + {aborted_records} aborted"
    );
    for r in uncommitted_out.iter().flatten() {
        assert!(
            expected.contains_key(&r.value),
            "read_uncommitted: unexpected {r:?}"
        );
    }
    eprintln!(
        "output: {} read_committed, {total} read_uncommitted ({aborted_records} sent in aborted transactions)",
        EOS_RECORDS
    );
    broker.stop();
}

// ---------------------------------------------------------------------------------------------
// 2. librdkafka: commit and abort across partitions, read_committed vs read_uncommitted.
// ---------------------------------------------------------------------------------------------

const ALT_PARTITIONS: i32 = 4;
const ALT_ROUNDS: usize = 8;
const ALT_RECORDS_PER_PARTITION: usize = 3;

#[test]
fn rdkafka_commit_and_abort_alternately_across_partitions() {
    let broker = Broker::start_with(TXN_PROPS);
    let b = broker.bootstrap();
    let topic = unique_topic("txn-alt");
    create_topic(&b, &topic, ALT_PARTITIONS);
    // Two transactional producers with overlapping transactions: A commits even rounds and aborts
    // odd ones, B the other way round, so aborted and committed records interleave in every
    // partition and a commit is often behind an open transaction of the other producer.
    let a = txn_producer(&b, &unique_topic("txn-alt-a"), NORMAL_TXN_TIMEOUT_MS);
    let bp = txn_producer(&b, &unique_topic("txn-alt-b"), NORMAL_TXN_TIMEOUT_MS);
    a.init_transactions(TXN_CALL_TIMEOUT)
        .expect("A init_transactions");
    bp.init_transactions(TXN_CALL_TIMEOUT)
        .expect("B init_transactions");
    let batch = |who: &str, round: usize| -> Vec<(i32, String, String)> {
        (0..ALT_PARTITIONS)
            .flat_map(|p| (0..ALT_RECORDS_PER_PARTITION).map(move |i| (p, format!("{p}"), i)))
            .map(|(p, k, i)| (p, k, format!("{who}-r{round}-p{p}-i{i}")))
            .collect()
    };
    let mut all: Vec<Vec<String>> = vec![Vec::new(); ALT_PARTITIONS as usize];
    let mut committed: Vec<Vec<String>> = vec![Vec::new(); ALT_PARTITIONS as usize];
    for round in 0..ALT_ROUNDS {
        a.begin_transaction().expect("A begin");
        bp.begin_transaction().expect("B begin");
        let ra = batch("A", round);
        let rb = batch("B", round);
        // Sequential sends: every A record of this round is before every B record in each
        // partition, so the expected order is known.
        send_and_wait(&a, &topic, &ra);
        send_and_wait(&bp, &topic, &rb);
        let a_commits = round % 2 == 0;
        for (recs, commits) in [(&ra, a_commits), (&rb, !a_commits)] {
            for (p, _, v) in recs {
                all[*p as usize].push(v.clone());
                if commits {
                    committed[*p as usize].push(v.clone());
                }
            }
        }
        // End B first on odd rounds: the later transaction sometimes ends first.
        let ends: [(&TxnProducer, bool, &str); 2] = if round % 2 == 0 {
            [(&a, a_commits, "A"), (&bp, !a_commits, "B")]
        } else {
            [(&bp, !a_commits, "B"), (&a, a_commits, "A")]
        };
        for (prod, commit, who) in ends {
            if commit {
                prod.commit_transaction(TXN_CALL_TIMEOUT)
                    .unwrap_or_else(|e| panic!("{who} commit round {round}: {e}"));
            } else {
                prod.abort_transaction(TXN_CALL_TIMEOUT)
                    .unwrap_or_else(|e| panic!("{who} abort round {round}: {e}"));
            }
        }
    }
    let want_committed: usize = committed.iter().map(Vec::len).sum();
    let got = read_partitions(
        &b,
        &topic,
        ALT_PARTITIONS,
        Isolation::ReadCommitted,
        READ_TIMEOUT,
        |parts| parts.iter().map(Vec::len).sum::<usize>() >= want_committed,
    );
    assert_eq!(
        values(&got),
        committed,
        "read_committed does not see exactly the committed records in order"
    );
    let want_all: usize = all.iter().map(Vec::len).sum();
    let got = read_partitions(
        &b,
        &topic,
        ALT_PARTITIONS,
        Isolation::ReadUncommitted,
        READ_TIMEOUT,
        |parts| parts.iter().map(Vec::len).sum::<usize>() >= want_all,
    );
    assert_eq!(
        values(&got),
        all,
        "read_uncommitted does not see every record in order"
    );
    broker.stop();
}

const LSO_PARTITIONS: i32 = 3;

/// The last stable offset: while one producer's transaction is open, a read_committed consumer
/// stops at its first record, even for records of another producer's transaction committed after
/// it; once it commits (or aborts) everything up to the end is readable (without its records if
/// it aborted).
#[test]
fn rdkafka_read_committed_stops_at_an_open_transaction() {
    let broker = Broker::start_with(TXN_PROPS);
    let b = broker.bootstrap();
    let topic = unique_topic("txn-lso");
    create_topic(&b, &topic, LSO_PARTITIONS);
    let a = txn_producer(&b, &unique_topic("txn-lso-a"), NORMAL_TXN_TIMEOUT_MS);
    let bp = txn_producer(&b, &unique_topic("txn-lso-b"), NORMAL_TXN_TIMEOUT_MS);
    a.init_transactions(TXN_CALL_TIMEOUT).expect("A init");
    bp.init_transactions(TXN_CALL_TIMEOUT).expect("B init");
    let recs = |tag: &str| -> Vec<(i32, String, String)> {
        (0..LSO_PARTITIONS)
            .map(|p| (p, tag.to_string(), format!("{tag}-p{p}")))
            .collect()
    };
    let per_partition = |tags: &[&str]| -> Vec<Vec<String>> {
        (0..LSO_PARTITIONS)
            .map(|p| tags.iter().map(|t| format!("{t}-p{p}")).collect())
            .collect()
    };
    let read = |isolation, want: &Vec<Vec<String>>| {
        let n: usize = want.iter().map(Vec::len).sum();
        values(&read_partitions(
            &b,
            &topic,
            LSO_PARTITIONS,
            isolation,
            READ_TIMEOUT,
            |parts| parts.iter().map(Vec::len).sum::<usize>() >= n,
        ))
    };

    // A's transaction is open when B's commits after it.
    a.begin_transaction().expect("A begin 1");
    send_and_wait(&a, &topic, &recs("a1"));
    bp.begin_transaction().expect("B begin 1");
    send_and_wait(&bp, &topic, &recs("b1"));
    bp.commit_transaction(TXN_CALL_TIMEOUT).expect("B commit 1");
    let nothing: Vec<Vec<String>> = vec![Vec::new(); LSO_PARTITIONS as usize];
    assert_eq!(
        read(Isolation::ReadCommitted, &nothing),
        nothing,
        "read_committed went past the first record of an open transaction"
    );
    let both = per_partition(&["a1", "b1"]);
    assert_eq!(read(Isolation::ReadUncommitted, &both), both);
    a.commit_transaction(TXN_CALL_TIMEOUT).expect("A commit 1");
    assert_eq!(
        read(Isolation::ReadCommitted, &both),
        both,
        "read_committed after the open transaction committed"
    );

    // Again, and this time A aborts.
    a.begin_transaction().expect("A begin 2");
    send_and_wait(&a, &topic, &recs("a2"));
    bp.begin_transaction().expect("B begin 2");
    send_and_wait(&bp, &topic, &recs("b2"));
    bp.commit_transaction(TXN_CALL_TIMEOUT).expect("B commit 2");
    assert_eq!(
        read(Isolation::ReadCommitted, &both),
        both,
        "read_committed went past the first record of the second open transaction"
    );
    a.abort_transaction(TXN_CALL_TIMEOUT).expect("A abort 2");
    let after = per_partition(&["a1", "b1", "b2"]);
    assert_eq!(
        read(Isolation::ReadCommitted, &after),
        after,
        "read_committed after the open transaction aborted"
    );
    let all = per_partition(&["a1", "b1", "a2", "b2"]);
    assert_eq!(read(Isolation::ReadUncommitted, &all), all);
    broker.stop();
}

const OFFSETS_INPUT_PARTITIONS: i32 = 2;
const OFFSETS_INPUT_RECORDS_PER_PARTITION: usize = 10;

#[test]
fn rdkafka_send_offsets_to_transaction_visible_only_after_commit() {
    let broker = Broker::start_with(TXN_PROPS);
    let b = broker.bootstrap();
    let input = unique_topic("txn-off-in");
    let output = unique_topic("txn-off-out");
    let group = unique_topic("txn-off-group");
    create_topic(&b, &input, OFFSETS_INPUT_PARTITIONS);
    create_topic(&b, &output, 1);
    let recs: Vec<(i32, String, String)> = (0..OFFSETS_INPUT_PARTITIONS)
        .flat_map(|p| {
            (0..OFFSETS_INPUT_RECORDS_PER_PARTITION)
                .map(move |i| (p, format!("k{i}"), format!("in-{p}-{i}")))
        })
        .collect();
    send_and_wait(&plain_producer(&b), &input, &recs);

    // The consumer whose progress the transactions commit: a member of `group`, reading the input.
    let source = consumer(&b, Some(&group), Isolation::ReadCommitted);
    let mut tpl = TopicPartitionList::new();
    for p in 0..OFFSETS_INPUT_PARTITIONS {
        tpl.add_partition_offset(&input, p, Offset::Beginning)
            .expect("tpl");
    }
    source.assign(&tpl).expect("assign");
    let cgm = source.group_metadata().expect("consumer group metadata");

    let prod = txn_producer(&b, &unique_topic("txn-off"), NORMAL_TXN_TIMEOUT_MS);
    prod.init_transactions(TXN_CALL_TIMEOUT)
        .expect("init_transactions");
    let offsets = |o: &[i64]| {
        let mut tpl = TopicPartitionList::new();
        for (p, off) in o.iter().enumerate() {
            tpl.add_partition_offset(&input, p as i32, Offset::Offset(*off))
                .expect("tpl");
        }
        tpl
    };
    let read =
        |isolation| committed_offsets(&b, &group, &input, OFFSETS_INPUT_PARTITIONS, isolation);

    // 1: commit offsets 4 and 6 with one output record.
    prod.begin_transaction().expect("begin 1");
    send_and_wait(&prod, &output, &[(0, "x".into(), "out-1".into())]);
    prod.send_offsets_to_transaction(&offsets(&[4, 6]), &cgm, TXN_CALL_TIMEOUT)
        .expect("send_offsets_to_transaction 1");
    assert_eq!(
        read(Isolation::ReadUncommitted),
        vec![None, None],
        "transactional offsets visible before the commit"
    );
    prod.commit_transaction(TXN_CALL_TIMEOUT).expect("commit 1");
    assert_eq!(
        read(Isolation::ReadCommitted),
        vec![Some(4), Some(6)],
        "after commit 1 (read_committed)"
    );
    assert_eq!(
        read(Isolation::ReadUncommitted),
        vec![Some(4), Some(6)],
        "after commit 1 (read_uncommitted)"
    );

    // 2: offsets sent in an aborted transaction are never committed.
    prod.begin_transaction().expect("begin 2");
    send_and_wait(&prod, &output, &[(0, "x".into(), "out-2".into())]);
    prod.send_offsets_to_transaction(&offsets(&[10, 10]), &cgm, TXN_CALL_TIMEOUT)
        .expect("send_offsets_to_transaction 2");
    prod.abort_transaction(TXN_CALL_TIMEOUT).expect("abort 2");
    assert_eq!(
        read(Isolation::ReadCommitted),
        vec![Some(4), Some(6)],
        "after abort 2 (read_committed)"
    );
    assert_eq!(
        read(Isolation::ReadUncommitted),
        vec![Some(4), Some(6)],
        "after abort 2 (read_uncommitted)"
    );

    // 3: offsets only (no record), committed.
    prod.begin_transaction().expect("begin 3");
    prod.send_offsets_to_transaction(&offsets(&[10, 10]), &cgm, TXN_CALL_TIMEOUT)
        .expect("send_offsets_to_transaction 3");
    assert_eq!(
        read(Isolation::ReadUncommitted),
        vec![Some(4), Some(6)],
        "pending transactional offsets of transaction 3 visible before its commit"
    );
    prod.commit_transaction(TXN_CALL_TIMEOUT).expect("commit 3");
    assert_eq!(
        read(Isolation::ReadCommitted),
        vec![Some(10), Some(10)],
        "after commit 3"
    );

    // The output: only out-1 is committed.
    let got = read_partitions(
        &b,
        &output,
        1,
        Isolation::ReadCommitted,
        READ_TIMEOUT,
        |p| !p[0].is_empty(),
    );
    assert_eq!(values(&got), vec![vec!["out-1".to_string()]]);
    drop(source);
    broker.stop();
}

// ---------------------------------------------------------------------------------------------
// 3. Broker killed (SIGKILL) in the middle of transactions.
// ---------------------------------------------------------------------------------------------

const RESTART_PARTITIONS: i32 = 3;

/// (a) An open transaction with records on several partitions, then kill -9: after the restart a
/// read_committed consumer never sees its records, and once it timed out, a later transaction of
/// another producer becomes visible (the LSO moved past the aborted one).
#[test]
fn restart_open_transaction_is_aborted_after_its_timeout() {
    let mut broker = Broker::start_with(TXN_PROPS);
    let b = broker.bootstrap();
    let topic = unique_topic("txn-restart-open");
    create_topic(&b, &topic, RESTART_PARTITIONS);
    let per_partition = |tag: &str| -> Vec<(i32, String, String)> {
        (0..RESTART_PARTITIONS)
            .flat_map(|p| (0..2).map(move |i| (p, format!("k{i}"), i)))
            .map(|(p, k, i)| (p, k, format!("{tag}-p{p}-i{i}")))
            .collect()
    };
    let open = txn_producer(&b, &unique_topic("txn-open"), SHORT_TXN_TIMEOUT_MS);
    open.init_transactions(TXN_CALL_TIMEOUT)
        .expect("init (open)");
    open.begin_transaction().expect("begin (open)");
    send_and_wait(&open, &topic, &per_partition("open"));
    // Acknowledged with acks=all: the records are in the log; their transaction is not decided.
    let killed = kill_and_restart_if_spawned(&mut broker);

    let later = txn_producer(&b, &unique_topic("txn-later"), NORMAL_TXN_TIMEOUT_MS);
    later
        .init_transactions(TXN_CALL_TIMEOUT)
        .expect("init (later)");
    later.begin_transaction().expect("begin (later)");
    send_and_wait(&later, &topic, &per_partition("later"));
    later
        .commit_transaction(TXN_CALL_TIMEOUT)
        .expect("commit (later)");

    let started = Instant::now();
    let want_later: Vec<Vec<String>> = (0..RESTART_PARTITIONS)
        .map(|p| (0..2).map(|i| format!("later-p{p}-i{i}")).collect())
        .collect();
    let got = read_partitions(
        &b,
        &topic,
        RESTART_PARTITIONS,
        Isolation::ReadCommitted,
        READ_TIMEOUT,
        |parts| parts.iter().all(|p| p.len() >= 2),
    );
    eprintln!(
        "the later commit became visible to read_committed {:?} after it returned",
        started.elapsed()
    );
    assert_eq!(
        values(&got),
        want_later,
        "read_committed after the open transaction timed out"
    );
    let want_all: Vec<Vec<String>> = (0..RESTART_PARTITIONS)
        .map(|p| {
            (0..2)
                .map(|i| format!("open-p{p}-i{i}"))
                .chain((0..2).map(|i| format!("later-p{p}-i{i}")))
                .collect()
        })
        .collect();
    let got = read_partitions(
        &b,
        &topic,
        RESTART_PARTITIONS,
        Isolation::ReadUncommitted,
        READ_TIMEOUT,
        |parts| parts.iter().all(|p| p.len() >= 4),
    );
    assert_eq!(
        values(&got),
        want_all,
        "read_uncommitted keeps the aborted records"
    );
    // The timed-out transaction was aborted with its epoch bumped: its producer cannot commit it.
    let late_commit = open.commit_transaction(TXN_CALL_TIMEOUT);
    eprintln!("commit of the timed-out transaction (killed: {killed}): {late_commit:?}");
    assert!(
        late_commit.is_err(),
        "a timed-out transaction was committed"
    );
    let got = read_partitions(
        &b,
        &topic,
        RESTART_PARTITIONS,
        Isolation::ReadCommitted,
        READ_TIMEOUT,
        |parts| parts.iter().all(|p| p.len() >= 2),
    );
    assert_eq!(
        values(&got),
        want_later,
        "read_committed after the refused late commit"
    );
    drop(open);
    broker.stop();
}

const COMMIT_LOOP_PARTITIONS: i32 = 4;
const COMMIT_LOOP_ROUNDS: usize = 5;
/// Every this many transactions of the loop, one is aborted on purpose (after writing to every
/// partition), so that the loop also proves aborted transactions stay invisible across a kill.
const COMMIT_LOOP_ABORT_EVERY: u64 = 4;

/// What the committing thread of [`kill_during_commits_never_half_visible`] reports.
#[derive(Default, Debug)]
struct LoopReport {
    /// Transactions whose commit returned OK.
    committed: Vec<u64>,
    /// Transactions aborted on purpose whose abort returned OK.
    aborted: Vec<u64>,
    /// Transactions begun (whether committed, failed or left open).
    begun: u64,
    /// The error that ended the loop, if any.
    error: Option<String>,
    /// Set while a `commit_transaction` call is running: when it started.
    committing_since: Option<Instant>,
    /// How long each commit that returned OK took.
    commit_durations: Vec<Duration>,
}

/// (b) Transactions that each write their number to every partition, committed in a loop while
/// the broker is killed at a random moment: after the restart every transaction is visible in all
/// partitions or in none, every one whose commit returned OK is visible, and none of those aborted
/// on purpose (every 4th) is.
#[test]
fn kill_during_commits_never_half_visible() {
    let mut broker = Broker::start_with(TXN_PROPS);
    let b = broker.bootstrap();
    let mut prepare_commit_hits = 0;
    for round in 0..COMMIT_LOOP_ROUNDS {
        let round_started = Instant::now();
        let topic = unique_topic("txn-kill-loop");
        let txn_id = unique_topic("txn-kill-loop");
        create_topic(&b, &topic, COMMIT_LOOP_PARTITIONS);
        let report = Arc::new(Mutex::new(LoopReport::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (b, topic, txn_id, report, stop) = (
                b.clone(),
                topic.clone(),
                txn_id.clone(),
                report.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || commit_loop(&b, &topic, &txn_id, &report, &stop))
        };
        // Kill after a random number of commits, while the next commit is in flight: at a
        // random point within a commit's usual duration after commit_transaction was called, so
        // that it lands anywhere between the EndTxn request and its answer.
        let kill_after = 2 + pseudo_random(8) as usize;
        wait_for(
            || {
                let r = report.lock().unwrap();
                (r.committed.len() >= kill_after && r.committing_since.is_some())
                    || worker.is_finished()
            },
            Duration::from_secs(20),
            "a commit in flight after the first commits",
        );
        let (since, mean_commit) = {
            let r = report.lock().unwrap();
            let n = r.commit_durations.len().max(1) as u32;
            (
                r.committing_since.unwrap_or_else(Instant::now),
                r.commit_durations.iter().sum::<Duration>() / n,
            )
        };
        let kill_at = since + mean_commit.mul_f64(pseudo_random(1000) as f64 / 1000.0);
        std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        let killed = kill_and_restart_if_spawned(&mut broker);
        if !killed {
            // External broker: let a few more transactions commit instead.
            let n = report.lock().unwrap().committed.len() + 3;
            wait_for(
                || report.lock().unwrap().committed.len() >= n || worker.is_finished(),
                Duration::from_secs(20),
                "commits",
            );
        }
        stop.store(true, Ordering::SeqCst);
        worker.join().expect("commit loop thread");
        let report = std::mem::take(&mut *report.lock().unwrap());

        // A new instance with the same transactional id fences the old one (aborting whatever it
        // left open) and commits a final transaction, so the LSO reaches the end without waiting
        // for a timeout.
        let last = txn_producer(&b, &txn_id, NORMAL_TXN_TIMEOUT_MS);
        last.init_transactions(TXN_CALL_TIMEOUT)
            .expect("init after restart");
        last.begin_transaction().expect("begin final");
        let final_recs: Vec<(i32, String, String)> = (0..COMMIT_LOOP_PARTITIONS)
            .map(|p| (p, "final".to_string(), "final".to_string()))
            .collect();
        send_and_wait(&last, &topic, &final_recs);
        last.commit_transaction(TXN_CALL_TIMEOUT)
            .expect("commit final");
        drop(last);

        let got = read_partitions(
            &b,
            &topic,
            COMMIT_LOOP_PARTITIONS,
            Isolation::ReadCommitted,
            READ_TIMEOUT,
            |parts| {
                parts
                    .iter()
                    .all(|p| p.last().is_some_and(|r| r.value == "final"))
            },
        );
        // Per transaction number: the partitions that show it.
        let mut visible: BTreeMap<u64, BTreeSet<i32>> = BTreeMap::new();
        for (p, recs) in got.iter().enumerate() {
            let mut prev: Option<u64> = None;
            for r in recs.iter().filter(|r| r.value != "final") {
                let n: u64 = r
                    .value
                    .strip_prefix("txn-")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected record {r:?}"));
                assert!(
                    prev.is_none_or(|q| n > q),
                    "round {round}: partition {p}: txn {n} after txn {prev:?} (duplicate or reordered)"
                );
                prev = Some(n);
                visible.entry(n).or_default().insert(p as i32);
            }
        }
        let half: Vec<_> = visible
            .iter()
            .filter(|(_, ps)| ps.len() != COMMIT_LOOP_PARTITIONS as usize)
            .collect();
        assert!(
            half.is_empty(),
            "round {round}: transactions visible in some partitions only: {half:?}\n{}",
            broker.log()
        );
        // Read after the final commit: by then the restarted coordinator has long completed
        // what it found prepared.
        // This round's transactional id completed at start-up: the kill landed between a
        // PrepareCommit (or PrepareAbort) and its Complete record.
        let log = broker.log();
        let completions: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("completing transaction {txn_id} found in Prepare")))
            .collect();
        let hit = completions
            .iter()
            .any(|l| l.ends_with("found in PrepareCommit"));
        if hit {
            prepare_commit_hits += 1;
        }
        if !completions.is_empty() {
            eprintln!(
                "round {round}: broker log: {}",
                strip_ansi(&completions.join(" | "))
            );
        }
        let lost: Vec<_> = report
            .committed
            .iter()
            .filter(|n| !visible.contains_key(n))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: commits that returned OK are not visible: {lost:?} (report {report:?})\n{}",
            broker.log()
        );
        let shown_aborted: Vec<_> = report
            .aborted
            .iter()
            .filter(|n| visible.contains_key(n))
            .collect();
        assert!(
            shown_aborted.is_empty(),
            "round {round}: aborted transactions are visible to read_committed: {shown_aborted:?}"
        );
        assert!(
            !report.committed.is_empty(),
            "round {round}: nothing committed: {report:?}"
        );
        eprintln!(
            "round {round}: killed={killed} {:?} into a commit (mean commit {mean_commit:?}), {} \
             transactions begun, {} commits and {} aborts returned OK, {} visible, loop ended by \
             {:?}, restart completed a PrepareCommit: {hit}, took {:?}",
            kill_at.saturating_duration_since(since),
            report.begun,
            report.committed.len(),
            report.aborted.len(),
            visible.len(),
            report.error,
            round_started.elapsed()
        );
    }
    eprintln!(
        "{prepare_commit_hits} of {COMMIT_LOOP_ROUNDS} kills landed between PrepareCommit and \
         CompleteCommit (`completing transaction ... found in PrepareCommit` in the broker log)"
    );
    broker.stop();
}

/// The committing thread: transaction n writes `txn-n` to every partition and commits, until
/// `stop` or the first error (after which it tries to abort, as an application would).
fn commit_loop(
    bootstrap: &str,
    topic: &str,
    txn_id: &str,
    report: &Mutex<LoopReport>,
    stop: &AtomicBool,
) {
    let prod = txn_producer(bootstrap, txn_id, SHORT_TXN_TIMEOUT_MS);
    if let Err(e) = prod.init_transactions(TXN_CALL_TIMEOUT) {
        report.lock().unwrap().error = Some(format!("init_transactions: {e}"));
        return;
    }
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = prod.begin_transaction() {
            report.lock().unwrap().error = Some(format!("begin txn {n}: {e}"));
            return;
        }
        report.lock().unwrap().begun = n + 1;
        let recs: Vec<(i32, String, String)> = (0..COMMIT_LOOP_PARTITIONS)
            .map(|p| (p, format!("{n}"), format!("txn-{n}")))
            .collect();
        if n % COMMIT_LOOP_ABORT_EVERY == COMMIT_LOOP_ABORT_EVERY - 1 {
            let result = try_send_and_wait(&prod, topic, &recs)
                .map_err(|e| format!("produce txn {n}: {e}"))
                .and_then(|_| {
                    prod.abort_transaction(TXN_CALL_TIMEOUT)
                        .map_err(|e| format!("abort txn {n}: {e}"))
                });
            match result {
                Ok(()) => report.lock().unwrap().aborted.push(n),
                Err(e) => {
                    report.lock().unwrap().error = Some(e);
                    return;
                }
            }
            n += 1;
            continue;
        }
        let result = try_send_and_wait(&prod, topic, &recs)
            .map_err(|e| format!("produce txn {n}: {e}"))
            .and_then(|_| {
                let started = Instant::now();
                report.lock().unwrap().committing_since = Some(started);
                let r = prod
                    .commit_transaction(TXN_CALL_TIMEOUT)
                    .map(|()| started.elapsed())
                    .map_err(|e| format!("commit txn {n}: {e}"));
                report.lock().unwrap().committing_since = None;
                r
            });
        match result {
            Ok(took) => {
                let mut r = report.lock().unwrap();
                r.committed.push(n);
                r.commit_durations.push(took);
            }
            Err(e) => {
                let abort = prod.abort_transaction(TXN_CALL_TIMEOUT);
                report.lock().unwrap().error = Some(format!("{e}; then abort: {abort:?}"));
                return;
            }
        }
        n += 1;
    }
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout`.
fn wait_for(cond: impl Fn() -> bool, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
