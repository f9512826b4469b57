//! Consumer groups with independent clients against a real `corelog` process (issue 4): group
//! membership, rebalances, committed offsets, restarts.
//!
//! - librdkafka (the `rdkafka` crate): members of one group, one consumer per thread, on an
//!   8-partition topic fed continuously; a member joins and one leaves mid-stream, and every
//!   record is still consumed exactly once; committed offsets equal the high watermarks; after a
//!   broker restart a new set of members resumes exactly at the committed offsets. Once with
//!   librdkafka's default eager assignors, once with `cooperative-sticky`.
//! - The Java `KafkaConsumer` (`scripts/interop/java/Groups.java`): RangeAssignor and
//!   CooperativeStickyAssignor with two members, static membership (KIP-345) rejoining without a
//!   rebalance, and a duplicate `group.instance.id` fencing the older member.
//!
//! Like the interop suite, `CORELOG_INTEROP_BOOTSTRAP=HOST:PORT` aims every test at a running
//! broker instead (how these tests are checked against the reference Apache Kafka:
//! `scripts/kafka-reference.sh start --port P`); the broker is then not restarted.
//!
//! Exactly once: members store a record's offset only after handing it to the test
//! (`enable.auto.offset.store=false`) and commit the stored offsets synchronously before any
//! partition is revoked and before closing, so a correct coordinator hands every partition to its
//! next owner exactly where the previous one stopped. A lost or stale commit shows up as a
//! record seen twice; a commit past what was consumed as a record never seen.

mod interop_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use interop_support::*;

/// Partitions of the librdkafka tests' topic.
const PARTITIONS: i32 = 8;
/// How long one step (a rebalance settling, records arriving, a commit, a close) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Members' session timeout: Kafka's default group.min.session.timeout.ms, the lowest a stock
/// broker accepts. Members leave with LeaveGroup here, so no step waits for it to expire.
const SESSION_TIMEOUT_MS: &str = "6000";
/// Heartbeats this often tell members of a rebalance quickly.
const HEARTBEAT_INTERVAL_MS: &str = "500";
/// Also the rebalance timeout: how long the coordinator waits for members to rejoin.
const MAX_POLL_INTERVAL_MS: &str = "20000";
/// One consumer poll.
const POLL: Duration = Duration::from_millis(100);
/// How long a broker may hold a fetch for data: short, so records move fast.
const FETCH_WAIT_MAX_MS: &str = "100";
/// After the last expected record, how long to keep consuming: a duplicate would arrive then.
const DUPLICATE_GRACE: Duration = Duration::from_millis(500);
/// The feeding producer sends one record to each partition, then pauses this long.
const FEED_PAUSE: Duration = Duration::from_millis(10);
/// How long records keep flowing between two membership changes.
const FEED_BETWEEN_CHANGES: Duration = Duration::from_millis(1500);
/// Records per partition produced after the restart.
const AFTER_RESTART_PER_PARTITION: u64 = 50;
/// First sequence number of the records produced after the restart.
const AFTER_RESTART_FIRST_SEQ: u64 = 1_000_000;
/// corelog settings for every test here: no first-join delay (the reference Kafka's config sets
/// the same), so a new group forms at once.
const GROUP_PROPS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

// ---------------------------------------------------------------------------------------------
// librdkafka
// ---------------------------------------------------------------------------------------------

/// One record as a member handed it to the test.
#[derive(Clone, Debug)]
struct Seen {
    member: usize,
    partition: i32,
    offset: i64,
    seq: u64,
}

/// What the client threads report to the test thread.
#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Each member's assignment after its latest rebalance callback.
    assignments: Mutex<BTreeMap<usize, BTreeSet<i32>>>,
    /// Failures in client threads and callbacks, which report instead of panicking (a panic
    /// must not unwind through librdkafka's C frames).
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, msg: String) {
        eprintln!("{msg}");
        self.errors.lock().unwrap().push(msg);
    }

    fn assert_no_errors(&self, step: &str) {
        let errors = self.errors.lock().unwrap();
        assert!(errors.is_empty(), "{step}: client errors: {errors:#?}");
    }

    fn seen_count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Runs `f`, reporting on stderr how long it took (the suite's step timings).
fn timed<T>(step: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    eprintln!("{step}: took {:?}", start.elapsed());
    out
}

/// Polls `cond` until it holds, failing the test (naming `step`) on a client error or after
/// [`STEP_TIMEOUT`].
fn wait_for(shared: &Shared, step: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let deadline = start + STEP_TIMEOUT;
    loop {
        shared.assert_no_errors(step);
        if cond() {
            eprintln!("{step}: after {:?}", start.elapsed());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: not reached within {STEP_TIMEOUT:?}; assignments {:?}, {} records seen",
            shared.assignments.lock().unwrap(),
            shared.seen_count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the `live` members hold every partition between them, each exactly once, and each
/// member holds at least one (with at most [`PARTITIONS`] members, both eager and cooperative
/// assignors give everyone something).
fn settled(shared: &Shared, live: &BTreeSet<usize>) -> bool {
    let assignments = shared.assignments.lock().unwrap();
    let mut union = BTreeSet::new();
    let mut held = 0;
    for id in live {
        match assignments.get(id) {
            Some(a) if !a.is_empty() => {
                held += a.len();
                union.extend(a.iter().copied());
            }
            _ => return false,
        }
    }
    held == PARTITIONS as usize && union.len() == PARTITIONS as usize
}

/// A group member's librdkafka context.
struct Member {
    id: usize,
    shared: Arc<Shared>,
}

impl ClientContext for Member {}

impl ConsumerContext for Member {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // The next owner of these partitions starts from what is committed now.
            self.commit(consumer, "commit before revoke");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(e) = rebalance {
            self.shared
                .fail(format!("member {}: rebalance error: {e}", self.id));
        }
        match consumer.assignment() {
            Ok(tpl) => {
                let parts = tpl.elements().iter().map(|e| e.partition()).collect();
                self.shared
                    .assignments
                    .lock()
                    .unwrap()
                    .insert(self.id, parts);
            }
            // The consumer is closing (its revocation callback runs during the close): it holds
            // nothing any more.
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::BrokerDestroy) => {
                self.shared
                    .assignments
                    .lock()
                    .unwrap()
                    .insert(self.id, BTreeSet::new());
            }
            Err(e) => self
                .shared
                .fail(format!("member {}: assignment(): {e}", self.id)),
        }
    }
}

impl Member {
    /// Commits the stored offsets synchronously ("no offset stored" is fine: nothing consumed
    /// since the last commit).
    fn commit(&self, consumer: &BaseConsumer<Self>, step: &str) {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => self.shared.fail(format!("member {}: {step}: {e}", self.id)),
        }
    }
}

/// A running member thread.
struct MemberThread {
    id: usize,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Asks every member to commit and close at once, then waits for each (closed one after the
/// other, each close would start a rebalance among the rest, only to be cut short by the next).
fn close_all(members: Vec<MemberThread>, shared: &Shared) {
    for m in &members {
        m.stop.store(true, Ordering::SeqCst);
    }
    for m in members {
        m.close(shared);
    }
}

impl MemberThread {
    /// Asks the member to commit and close (LeaveGroup), and waits for it.
    fn close(self, shared: &Shared) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "member {} did not close within {STEP_TIMEOUT:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.thread.join().expect("member thread");
        shared.assert_no_errors(&format!("closing member {}", self.id));
    }
}

/// Starts member `id` of `group` in its own thread: subscribes to `topic` and hands every record
/// to `shared`, storing its offset afterwards, until told to stop; then commits and closes.
fn start_member(
    id: usize,
    bootstrap: &str,
    group: &str,
    topic: &str,
    strategy: &str,
    shared: &Arc<Shared>,
) -> MemberThread {
    let stop = Arc::new(AtomicBool::new(false));
    let (bootstrap, group, topic, strategy) = (
        bootstrap.to_string(),
        group.to_string(),
        topic.to_string(),
        strategy.to_string(),
    );
    let shared = shared.clone();
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let ctx = Member {
            id,
            shared: shared.clone(),
        };
        let consumer: BaseConsumer<Member> = match ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("client.id", format!("groups-member-{id}"))
            .set("partition.assignment.strategy", &strategy)
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
            .set("max.poll.interval.ms", MAX_POLL_INTERVAL_MS)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
            .create_with_context(ctx)
        {
            Ok(c) => c,
            Err(e) => return shared.fail(format!("member {id}: create consumer: {e}")),
        };
        if let Err(e) = consumer.subscribe(&[&topic]) {
            return shared.fail(format!("member {id}: subscribe: {e}"));
        }
        while !stop2.load(Ordering::SeqCst) {
            match consumer.poll(POLL) {
                None => {}
                Some(Err(e)) => shared.fail(format!("member {id}: poll: {e}")),
                Some(Ok(m)) => {
                    let seq = m
                        .payload_view::<str>()
                        .and_then(|v| v.ok())
                        .and_then(|v| v.parse().ok());
                    let Some(seq) = seq else {
                        shared.fail(format!(
                            "member {id}: partition {} offset {}: not a sequence number",
                            m.partition(),
                            m.offset()
                        ));
                        continue;
                    };
                    shared.seen.lock().unwrap().push(Seen {
                        member: id,
                        partition: m.partition(),
                        offset: m.offset(),
                        seq,
                    });
                    if let Err(e) = consumer.store_offset_from_message(&m) {
                        shared.fail(format!("member {id}: store offset: {e}"));
                    }
                }
            }
        }
        consumer.context().commit(&consumer, "commit before close");
        // Close here, bounded: dropping a consumer closes it with no time limit.
        if let Err(e) = consumer.close_queue() {
            return shared.fail(format!("member {id}: close: {e}"));
        }
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !consumer.closed() {
            if Instant::now() > deadline {
                shared.fail(format!(
                    "member {id}: close did not finish within {STEP_TIMEOUT:?}"
                ));
                // Dropping it would wait for the close forever.
                std::mem::forget(consumer);
                return;
            }
            consumer.poll(POLL);
        }
    });
    MemberThread { id, stop, thread }
}

/// Counts failed deliveries.
struct Deliveries(Arc<Shared>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.0
                .fail(format!("produce to partition {}: {e}", m.partition()));
        }
    }
}

fn producer(bootstrap: &str, shared: &Arc<Shared>) -> BaseProducer<Deliveries> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create_with_context(Deliveries(shared.clone()))
        .expect("rdkafka producer")
}

/// Sends record `seq` (its decimal value) to partition `seq % PARTITIONS`.
fn send_seq(producer: &BaseProducer<Deliveries>, topic: &str, seq: u64) {
    let value = seq.to_string();
    let mut record: BaseRecord<(), String> = BaseRecord::to(topic)
        .partition((seq % PARTITIONS as u64) as i32)
        .payload(&value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                // Only a full local queue is worth a retry.
                assert!(
                    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::QueueFull)),
                    "send record {seq}: {e}"
                );
                producer.poll(Duration::from_millis(50));
                record = back;
            }
        }
    }
}

/// A producer thread sending sequence numbers 0, 1, 2, ... round the partitions until stopped;
/// joining it gives how many it sent (all acknowledged: failures go to `shared.errors`).
struct Feed {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

fn start_feed(bootstrap: &str, topic: &str, shared: &Arc<Shared>) -> Feed {
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, producer, topic) = (stop.clone(), producer(bootstrap, shared), topic.to_string());
    let thread = std::thread::spawn(move || {
        let mut seq = 0;
        while !stop2.load(Ordering::SeqCst) {
            for _ in 0..PARTITIONS {
                send_seq(&producer, &topic, seq);
                seq += 1;
            }
            producer.poll(Duration::ZERO);
            std::thread::sleep(FEED_PAUSE);
        }
        producer
            .flush(STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("flush the feed: {e}"));
        seq
    });
    Feed { stop, thread }
}

/// Committed offsets of `group` for every partition of `topic`, read by a consumer that does not
/// join the group (-1: none committed).
fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let tpl = consumer
        .committed_offsets(tpl, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("OffsetFetch for group {group}: {e}"));
    tpl.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                Offset::Invalid => -1,
                other => panic!("partition {}: committed offset {other:?}", e.partition()),
            };
            assert!(
                e.error().is_ok(),
                "partition {}: OffsetFetch error {:?}",
                e.partition(),
                e.error()
            );
            (e.partition(), offset)
        })
        .collect()
}

/// High watermarks of every partition of `topic`.
fn high_watermarks(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("watermarks reader");
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("ListOffsets {topic}/{p}: {e}"));
            (p, high)
        })
        .collect()
}

/// Asserts that `seen` holds every sequence number of `expected` exactly once and nothing else,
/// each at a distinct (partition, offset) in its own partition; returns the lowest offset seen
/// per partition.
fn assert_exactly_once(
    step: &str,
    seen: &[Seen],
    expected: std::ops::Range<u64>,
) -> BTreeMap<i32, i64> {
    let mut by_seq: BTreeMap<u64, Vec<&Seen>> = BTreeMap::new();
    let mut positions = BTreeSet::new();
    let mut first = BTreeMap::new();
    for s in seen {
        by_seq.entry(s.seq).or_default().push(s);
        assert!(
            positions.insert((s.partition, s.offset)),
            "{step}: partition {} offset {} consumed twice",
            s.partition,
            s.offset
        );
        assert_eq!(
            s.partition as u64,
            s.seq % PARTITIONS as u64,
            "{step}: record {} read from partition {}",
            s.seq,
            s.partition
        );
        let f = first.entry(s.partition).or_insert(s.offset);
        *f = (*f).min(s.offset);
    }
    let dups: Vec<_> = by_seq.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(dups.is_empty(), "{step}: records consumed twice: {dups:?}");
    let unexpected: Vec<_> = by_seq.keys().filter(|s| !expected.contains(s)).collect();
    assert!(
        unexpected.is_empty(),
        "{step}: records not produced in this phase: {unexpected:?}"
    );
    let missing: Vec<_> = expected
        .clone()
        .filter(|s| !by_seq.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{step}: records never consumed: {missing:?}"
    );
    first
}

/// The librdkafka group scenario with `strategy` as partition.assignment.strategy.
fn rdkafka_group(strategy: &str) {
    let mut broker = timed("start the broker", || Broker::start_with(GROUP_PROPS));
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("groups-rd");
    let group = unique_topic("groups-rd-group");
    timed("create the topic", || {
        create_topic(&bootstrap, &topic, PARTITIONS)
    });
    let shared = Arc::new(Shared::default());

    // Four members, one per thread, while records flow.
    let feed = start_feed(&bootstrap, &topic, &shared);
    let mut members: Vec<MemberThread> = (0..4)
        .map(|id| start_member(id, &bootstrap, &group, &topic, strategy, &shared))
        .collect();
    let mut live: BTreeSet<usize> = (0..4).collect();
    wait_for(&shared, "four members share the partitions", || {
        settled(&shared, &live)
    });
    let before = shared.seen_count();
    wait_for(&shared, "four members consume", || {
        shared.seen_count() > before
    });
    std::thread::sleep(FEED_BETWEEN_CHANGES);

    // A fifth member joins: partitions move to it mid-stream.
    members.push(start_member(
        4, &bootstrap, &group, &topic, strategy, &shared,
    ));
    live.insert(4);
    wait_for(&shared, "the joining member gets partitions", || {
        settled(&shared, &live)
    });
    std::thread::sleep(FEED_BETWEEN_CHANGES);

    // The first member leaves (commit, LeaveGroup): its partitions move to the others.
    members.remove(0).close(&shared);
    live.remove(&0);
    shared.assignments.lock().unwrap().remove(&0);
    wait_for(
        &shared,
        "the others take over the leaver's partitions",
        || settled(&shared, &live),
    );
    std::thread::sleep(FEED_BETWEEN_CHANGES);

    // The group as the coordinator describes it (DescribeGroups).
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("group describer");
    let groups = timed("DescribeGroups", || {
        reader.fetch_group_list(Some(&group), STEP_TIMEOUT)
    })
    .unwrap_or_else(|e| panic!("DescribeGroups {group}: {e}"));
    let g = groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .unwrap_or_else(|| panic!("DescribeGroups: group {group} not listed"));
    let want_protocol = strategy.split(',').next().expect("a strategy");
    assert_eq!(
        (
            g.state(),
            g.protocol_type(),
            g.protocol(),
            g.members().len()
        ),
        ("Stable", "consumer", want_protocol, live.len()),
        "DescribeGroups {group}: (state, protocol type, protocol, members)"
    );

    // Stop feeding; everything produced is consumed exactly once.
    feed.stop.store(true, Ordering::SeqCst);
    let produced = feed.thread.join().expect("feed thread");
    wait_for(&shared, "every record consumed", || {
        shared.seen_count() >= produced as usize
    });
    std::thread::sleep(DUPLICATE_GRACE);
    let seen = shared.seen.lock().unwrap().clone();
    assert_exactly_once("before the restart", &seen, 0..produced);
    let consumers: BTreeSet<usize> = seen.iter().map(|s| s.member).collect();
    assert_eq!(consumers, (0..5).collect(), "members that consumed records");

    timed("close the members", || close_all(members, &shared));
    let high = timed("ListOffsets", || high_watermarks(&bootstrap, &topic));
    let commits = timed("OffsetFetch", || committed(&bootstrap, &group, &topic));
    assert_eq!(
        commits, high,
        "committed offsets after closing every member, against the high watermarks"
    );
    assert_eq!(
        high.values().sum::<i64>(),
        produced as i64,
        "records in the topic"
    );

    // A graceful restart keeps the committed offsets. An external broker is not restarted
    // (`Broker::restart` refuses one): all that follows holds there too, it just proves less.
    drop(reader);
    if broker.is_spawned() {
        timed("restart the broker", || broker.restart());
    }
    let shared = Arc::new(Shared::default());
    let after = AFTER_RESTART_FIRST_SEQ
        ..AFTER_RESTART_FIRST_SEQ + AFTER_RESTART_PER_PARTITION * PARTITIONS as u64;
    let producer = producer(&bootstrap, &shared);
    for seq in after.clone() {
        send_seq(&producer, &topic, seq);
    }
    producer
        .flush(STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("flush after the restart: {e}"));
    drop(producer);
    let members: Vec<MemberThread> = (10..12)
        .map(|id| start_member(id, &bootstrap, &group, &topic, strategy, &shared))
        .collect();
    wait_for(
        &shared,
        "records produced after the restart consumed",
        || shared.seen_count() >= after.clone().count(),
    );
    std::thread::sleep(DUPLICATE_GRACE);
    let seen = shared.seen.lock().unwrap().clone();
    let first = assert_exactly_once("after the restart", &seen, after.clone());
    assert_eq!(
        first, commits,
        "first offset consumed per partition after the restart, against the offsets committed before it"
    );
    timed("close the members after the restart", || {
        close_all(members, &shared)
    });
    let high = high_watermarks(&bootstrap, &topic);
    assert_eq!(
        committed(&bootstrap, &group, &topic),
        high,
        "committed offsets after the restart, against the high watermarks"
    );
    timed("stop the broker", || broker.stop());
}

#[test]
fn rdkafka_group_eager_members_join_and_leave_exactly_once_and_resume_after_restart() {
    // librdkafka's default: range first, so the coordinator must choose range.
    rdkafka_group("range,roundrobin");
}

#[test]
fn rdkafka_group_cooperative_sticky_members_join_and_leave_exactly_once_and_resume_after_restart() {
    rdkafka_group("cooperative-sticky");
}

// ---------------------------------------------------------------------------------------------
// The Apache Kafka Java client 4.x (scripts/interop/java/Groups.java)
// ---------------------------------------------------------------------------------------------

/// How long one Groups.java run may take (JVM start and source compilation included).
const JAVA_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `Groups.java MODE` against a fresh broker; it exits non-zero naming the failed step.
fn java_groups(mode: &str) {
    let broker = Broker::start_with(GROUP_PROPS);
    let lib = kafka_client_lib();
    require_on_path("java");
    let topic = unique_topic(&format!("groups-java-{mode}"));
    let group = unique_topic(&format!("groups-java-{mode}-group"));
    let out = run_with_timeout(
        Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .arg(repo_root().join("scripts/interop/java/Groups.java"))
            .args([mode, &broker.bootstrap(), &topic, &group]),
        JAVA_TIMEOUT,
        b"",
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_success(&format!("Groups.java {mode}"), &out);
    broker.stop();
}

#[test]
fn java_range_assignor_two_members_exactly_once_and_commits() {
    java_groups("eager");
}

#[test]
fn java_cooperative_sticky_two_members_exactly_once_and_commits() {
    java_groups("cooperative");
}

#[test]
fn java_static_member_restart_within_session_timeout_causes_no_rebalance() {
    java_groups("static-rejoin");
}

#[test]
fn java_duplicate_group_instance_id_fences_the_older_member() {
    java_groups("static-fenced");
}
