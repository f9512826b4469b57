//! Wire-level tests of the classic consumer-group protocol: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
//! DeleteGroups and OffsetDelete, each asserting what a Kafka client relies on, exactly as
//! Apache Kafka 4.4 answers it.
//!
//! Each test starts its own corelog (free loopback port, throwaway data dir); with
//! `CORELOG_INTEROP_BOOTSTRAP=HOST:PORT` it uses that broker instead, which is how every test
//! here was checked against the reference Kafka (`scripts/kafka-reference.sh start --port P`).
//! Group and topic names are unique per run, so runs against a long-lived broker never meet.
//!
//! Versions: the highest both corelog and Kafka 4.4 serve (see `group_support`), plus the oldest
//! both serve where noted: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, FindCoordinator and
//! ListGroups v0, OffsetCommit v2 and OffsetFetch v1 (Kafka 4 dropped OffsetCommit v0-1 and
//! OffsetFetch v0, and kafka-protocol cannot encode them either). DescribeGroups v6 (unknown
//! group: GROUP_ID_NOT_FOUND) is checked only where the broker advertises it (Kafka, not
//! corelog, which serves v0-5).

mod group_support;
mod interop_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, MetadataRequest, OffsetDeleteRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request};

use group_support::*;
use interop_support::{unique_topic, Broker};

/// Kafka's default and minimum `offset.metadata.max.bytes` on both brokers under test.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Session timeout of the member whose expiry is tested. Kafka's own floor is
/// `group.min.session.timeout.ms` = 6000 ms (the reference broker keeps the default); a spawned
/// corelog has its floor lowered so the test runs faster.
const EXPIRY_SESSION_MS_KAFKA: i32 = 6_000;
const EXPIRY_SESSION_MS_CORELOG: i32 = 1_000;
/// The lowered floor a spawned corelog gets for the expiry test.
const CORELOG_MIN_SESSION_MS: &str = "500";
/// Kafka's `group.max.session.timeout.ms` default (30 minutes).
const MAX_SESSION_MS: i32 = 1_800_000;

/// Starts the broker under test; a spawned corelog gets no first-join delay, as the reference
/// Kafka is configured (`group.initial.rebalance.delay.ms=0`).
fn start_broker(extra: &[(&str, &str)]) -> Broker {
    let mut props = vec![("group.initial.rebalance.delay.ms", "0")];
    props.extend_from_slice(extra);
    Broker::start_with(&props)
}

/// Ends the test's connections to a spawned broker, then stops it (SIGTERM, exit 0 asserted).
fn stop_broker(broker: Broker) {
    if broker.is_spawned() {
        close_connections_to(broker.addr());
    }
    broker.stop();
}

/// A fresh group name whose coordinator is ready, and a connection to the broker.
fn ready_group(broker: &Broker, prefix: &str) -> (String, Conn) {
    let group = unique_topic(prefix);
    let mut conn = Conn::open(broker.addr());
    conn.wait_coordinator(&group);
    (group, conn)
}

fn member_ids(
    g: &kafka_protocol::messages::describe_groups_response::DescribedGroup,
) -> Vec<String> {
    let mut ids: Vec<String> = g.members.iter().map(|m| m.member_id.to_string()).collect();
    ids.sort();
    ids
}

/// The highest version of API `key` the broker advertises in ApiVersions (-1: not served).
fn advertised_max(broker: &Broker, key: i16) -> i16 {
    use std::io::Write;
    let mut c = interop_support::connect(broker.addr()).expect("connect");
    c.write_all(&interop_support::api_versions_v3_frame(1))
        .expect("send ApiVersions");
    let frame = interop_support::read_frame(&mut c)
        .expect("read ApiVersions")
        .expect("an ApiVersions answer");
    let a = interop_support::parse_api_versions(&frame, true).expect("parse ApiVersions");
    a.keys
        .iter()
        .find(|k| k.0 == key)
        .map(|k| k.2)
        .unwrap_or(-1)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// FindCoordinator
// ---------------------------------------------------------------------------------------------

#[test]
fn find_coordinator_names_this_broker_single_key_and_batched() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-find");
    let other = unique_topic("g-find-b");
    conn.wait_coordinator(&other);
    let md = conn.call(12, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(md.brokers.len(), 1, "one broker in the metadata");
    let node = md.brokers[0].node_id.0;
    let host = broker.addr().ip().to_string();
    let port = i32::from(broker.addr().port());

    // v0-v3: one key per request, the answer in the top-level fields.
    for v in 0..=3 {
        let r = conn.call(
            v,
            &FindCoordinatorRequest::default()
                .with_key(s(&group))
                .with_key_type(0),
        );
        assert_eq!(r.error_code, code::NONE, "FindCoordinator v{v}: {r:?}");
        assert_eq!(
            (r.node_id.0, r.host.as_str(), r.port),
            (node, host.as_str(), port),
            "FindCoordinator v{v}"
        );
    }
    // v4+: batched keys, one coordinator entry per key.
    for v in 4..=6 {
        let r = conn.call(
            v,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s(&group), s(&other)]),
        );
        assert_eq!(r.coordinators.len(), 2, "FindCoordinator v{v}: {r:?}");
        let keys: Vec<&str> = r.coordinators.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, [group.as_str(), other.as_str()], "v{v} keys in order");
        for c in &r.coordinators {
            assert_eq!(c.error_code, code::NONE, "FindCoordinator v{v}: {c:?}");
            assert_eq!(
                (c.node_id.0, c.host.as_str(), c.port),
                (node, host.as_str(), port),
                "FindCoordinator v{v} for {}",
                c.key.as_str()
            );
        }
    }
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// JoinGroup / SyncGroup
// ---------------------------------------------------------------------------------------------

#[test]
fn join_group_member_id_required_then_generation_leader_and_common_protocol() {
    let broker = start_broker(&[]);
    let (group, _conn) = ready_group(&broker, "g-join");
    let meta_a = subscription(&["topic-a"]);
    let meta_b = subscription(&["topic-b"]);
    // "roundrobin" is the only protocol both offer: it must be chosen even though A prefers
    // "sticky".
    let mut a = Member::new(
        broker.addr(),
        &group,
        &[
            ("sticky", Bytes::from_static(b"sticky-a")),
            ("roundrobin", meta_a.clone()),
        ],
    );
    let mut b = Member::new(
        broker.addr(),
        &group,
        &[
            ("roundrobin", meta_b.clone()),
            ("range", Bytes::from_static(b"range-b")),
        ],
    );

    // v4+: a dynamic member's first join without a member id gets one and MEMBER_ID_REQUIRED.
    let first = a.join_once();
    assert_eq!(first.error_code, code::MEMBER_ID_REQUIRED, "{first:?}");
    assert!(
        !first.member_id.is_empty(),
        "a member id is assigned: {first:?}"
    );
    assert_eq!(first.generation_id, -1);
    let assigned = a.member_id.clone();
    a.send_join();
    let joined = a.finish_join();
    assert_eq!(
        joined.member_id.as_str(),
        assigned,
        "the assigned id is kept"
    );
    assert!(joined.generation_id >= 1, "{joined:?}");
    assert_eq!(joined.leader.as_str(), assigned, "the only member leads");
    assert_eq!(joined.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
    assert_eq!(joined.protocol_name.as_deref(), Some("sticky"));
    assert_eq!(joined.members.len(), 1);
    let gen1 = joined.generation_id;
    let r = a.sync(&[(assigned.as_str(), assignment("topic-a", &[0]))]);
    assert_eq!(r.error_code, code::NONE, "{r:?}");

    // B joins: a rebalance, A rejoins, both get the next generation.
    b.start_join();
    a.wait_rebalance();
    a.send_join();
    let ra = a.finish_join();
    let rb = b.finish_join();
    assert_eq!(ra.generation_id, gen1 + 1, "{ra:?}");
    assert_eq!(rb.generation_id, gen1 + 1, "{rb:?}");
    for r in [&ra, &rb] {
        assert_eq!(
            r.leader.as_str(),
            assigned,
            "the existing member stays leader"
        );
        assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"), "{r:?}");
        assert_eq!(r.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
    }
    assert_eq!(ra.member_id.as_str(), a.member_id);
    assert_eq!(rb.member_id.as_str(), b.member_id);
    assert_ne!(a.member_id, b.member_id);
    // The leader gets every member with its metadata for the chosen protocol; a follower none.
    let mut listed: Vec<(String, Bytes)> = ra
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.metadata.clone()))
        .collect();
    listed.sort();
    let mut want = vec![(a.member_id.clone(), meta_a), (b.member_id.clone(), meta_b)];
    want.sort();
    assert_eq!(listed, want, "leader's member list");
    assert!(
        rb.members.is_empty(),
        "a follower gets no member list: {rb:?}"
    );
    stop_broker(broker);
}

#[test]
fn join_group_oldest_version_assigns_member_id_without_member_id_required() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-join-v0");
    let m = Member::consumer(broker.addr(), &group, &["t"]);
    // v0 has no rebalance timeout field (it is the session timeout) and no MEMBER_ID_REQUIRED
    // round trip: the member id comes with the first answer.
    let req = m.join_request().with_rebalance_timeout_ms(-1);
    let r = conn.call(0, &req);
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert!(!r.member_id.is_empty());
    assert!(r.generation_id >= 1);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t"]));
    let topic = unique_topic("t-v0");
    conn.create_topic(&topic, 1);

    // The rest of an old client's cycle at the oldest versions both brokers serve: SyncGroup
    // v0, Heartbeat v0, OffsetCommit v2, OffsetFetch v1, LeaveGroup v0.
    let member_id = r.member_id.to_string();
    let generation = r.generation_id;
    let asg = assignment(&topic, &[0]);
    let sync = kafka_protocol::messages::SyncGroupRequest::default()
        .with_group_id(gid(&group))
        .with_generation_id(generation)
        .with_member_id(s(&member_id))
        .with_assignments(vec![
            kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member_id))
                .with_assignment(asg.clone()),
        ]);
    let r = conn.call(0, &sync);
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(r.assignment, asg);
    let hb = kafka_protocol::messages::HeartbeatRequest::default()
        .with_group_id(gid(&group))
        .with_generation_id(generation)
        .with_member_id(s(&member_id));
    assert_eq!(conn.call(0, &hb).error_code, code::NONE);
    let errs = conn.commit(
        2,
        Committer::member(&group, generation, &member_id),
        &topic,
        &[(0, 12, -1, "v2")],
    );
    assert_eq!(errs, [code::NONE]);
    let got = conn.fetch_offsets_v1(&group, &topic, &[0]);
    assert_eq!(
        (got[0].committed_offset, got[0].metadata.as_deref()),
        (12, Some("v2"))
    );
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid(&group))
        .with_member_id(s(&member_id));
    assert_eq!(conn.call(0, &leave).error_code, code::NONE);
    assert_eq!(conn.describe(&group).group_state.as_str(), "Empty");
    assert_eq!(conn.call(0, &hb).error_code, code::UNKNOWN_MEMBER_ID);
    stop_broker(broker);
}

#[test]
fn join_group_refusals_unknown_member_and_inconsistent_protocols() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-join-refuse");
    let mut ms = vec![Member::consumer(broker.addr(), &group, &["t"])];
    let gen = form_group(&mut ms, &[assignment("t", &[0])]);

    // A member id the group never handed out.
    let mut stranger = Member::consumer(broker.addr(), &group, &["t"]);
    stranger.member_id = "no-such-member".into();
    let r = stranger.join_once();
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID, "{r:?}");
    // No protocol in common with the group's members.
    let mut odd = Member::new(
        broker.addr(),
        &group,
        &[("cooperative-sticky", subscription(&["t"]))],
    );
    let r = odd.join_once();
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL, "{r:?}");
    // Another protocol type.
    let mut req = Member::consumer(broker.addr(), &group, &["t"]).join_request();
    req.protocol_type = s("connect");
    let r = conn.call(JOIN_V, &req);
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL, "{r:?}");
    // None of that disturbed the group.
    assert_eq!(ms[0].heartbeat(), code::NONE);
    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(member_ids(&g), vec![ms[0].member_id.clone()]);
    assert_eq!(ms[0].generation, gen);
    stop_broker(broker);
}

#[test]
fn sync_group_delivers_assignments_and_rejects_wrong_generation_and_unknown_member() {
    let broker = start_broker(&[]);
    let (group, _conn) = ready_group(&broker, "g-sync");
    let mut ms = vec![
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]),
    ];
    let plan = vec![
        assignment("t", &[0]),
        assignment("t", &[1]),
        assignment("t", &[2, 3]),
    ];
    // form_group asserts every member receives exactly its own assignment from the leader.
    let generation = form_group(&mut ms, &plan);

    // A stable group answers a repeated SyncGroup with the member's current assignment.
    let again = ms[2].sync(&[]);
    assert_eq!(again.error_code, code::NONE);
    assert_eq!(again.assignment, plan[2]);
    assert_eq!(again.protocol_name.as_deref(), Some("range"));
    assert_eq!(again.protocol_type.as_deref(), Some(PROTOCOL_TYPE));

    // Wrong generation.
    let mut req = ms[1].sync_request(&[]);
    req.generation_id = generation + 1;
    let r = ms[1].conn.call(SYNC_V, &req);
    assert_eq!(r.error_code, code::ILLEGAL_GENERATION, "{r:?}");
    req.generation_id = generation - 1;
    let r = ms[1].conn.call(SYNC_V, &req);
    assert_eq!(r.error_code, code::ILLEGAL_GENERATION, "{r:?}");

    // Unknown member.
    let mut req = ms[1].sync_request(&[]);
    req.member_id = s("no-such-member");
    let r = ms[1].conn.call(SYNC_V, &req);
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID, "{r:?}");
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------------------------

#[test]
fn heartbeat_stable_rebalancing_and_stale_generation() {
    let broker = start_broker(&[]);
    let (group, _conn) = ready_group(&broker, "g-hb");
    let mut ms = vec![Member::consumer(broker.addr(), &group, &["t"])];
    let gen1 = form_group(&mut ms, &[assignment("t", &[0])]);
    let mut a = ms.pop().unwrap();
    assert_eq!(a.heartbeat(), code::NONE, "stable");

    let mut b = Member::consumer(broker.addr(), &group, &["t"]);
    b.start_join();
    // The group is PreparingRebalance once B's join arrived.
    a.wait_rebalance();
    assert_eq!(a.heartbeat(), code::REBALANCE_IN_PROGRESS);
    a.send_join();
    let gen2 = a.finish_join().generation_id;
    b.finish_join();
    assert_eq!(gen2, gen1 + 1);
    let pending = b.send_sync(&[]);
    let id_a = a.member_id.clone();
    let id_b = b.member_id.clone();
    let r = a.sync(&[
        (id_a.as_str(), assignment("t", &[0])),
        (id_b.as_str(), assignment("t", &[1])),
    ]);
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(b.recv_sync(pending).error_code, code::NONE);
    assert_eq!(a.heartbeat(), code::NONE);
    assert_eq!(b.heartbeat(), code::NONE);
    // A heartbeat with the previous generation.
    assert_eq!(a.heartbeat_as(gen1, &id_a), code::ILLEGAL_GENERATION);
    // And from a member the group does not know.
    assert_eq!(
        a.heartbeat_as(gen2, "no-such-member"),
        code::UNKNOWN_MEMBER_ID
    );
    stop_broker(broker);
}

#[test]
fn heartbeat_member_that_stops_is_removed_after_its_session_timeout() {
    let broker = start_broker(&[("group.min.session.timeout.ms", CORELOG_MIN_SESSION_MS)]);
    let session_ms = if broker.is_spawned() {
        EXPIRY_SESSION_MS_CORELOG
    } else {
        EXPIRY_SESSION_MS_KAFKA
    };
    let (group, mut conn) = ready_group(&broker, "g-expire");
    let mut ms = vec![
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]),
    ];
    for m in ms.iter_mut() {
        m.session_timeout_ms = session_ms;
        // Kafka waits up to the rebalance timeout for members to rejoin; keep it short so a
        // rebalance never outlasts the test.
        m.rebalance_timeout_ms = session_ms;
    }
    form_group(&mut ms, &[assignment("t", &[0]), assignment("t", &[1])]);
    let mut silent = ms.pop().unwrap();
    let mut alive = ms.pop().unwrap();
    let silent_id = silent.member_id.clone();

    // `alive` keeps heartbeating (well inside its session); `silent` never does again.
    let started = Instant::now();
    let limit = Duration::from_millis(session_ms as u64 * 5);
    let heartbeat_every = Duration::from_millis(session_ms as u64 / 5);
    loop {
        match alive.heartbeat() {
            code::NONE => {}
            code::REBALANCE_IN_PROGRESS => break,
            e => panic!("heartbeat of the live member: error {e}"),
        }
        assert!(
            started.elapsed() < limit,
            "the silent member was not removed within {limit:?}"
        );
        std::thread::sleep(heartbeat_every);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(session_ms as u64 / 2),
        "rebalance after only {waited:?}, session timeout {session_ms} ms"
    );
    // The rebalance completes with the live member alone.
    alive.send_join();
    let r = alive.finish_join();
    assert_eq!(r.members.len(), 1, "{r:?}");
    assert_eq!(r.members[0].member_id.as_str(), alive.member_id);
    let id = alive.member_id.clone();
    assert_eq!(
        alive
            .sync(&[(id.as_str(), assignment("t", &[0, 1]))])
            .error_code,
        0
    );
    let g = conn.describe(&group);
    assert_eq!(member_ids(&g), vec![id]);
    assert_eq!(g.group_state.as_str(), "Stable");
    // The removed member is unknown now.
    let gen = silent.generation;
    assert_eq!(
        silent.heartbeat_as(gen, &silent_id),
        code::UNKNOWN_MEMBER_ID
    );
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// LeaveGroup
// ---------------------------------------------------------------------------------------------

#[test]
fn leave_group_single_member_versions_trigger_a_rebalance() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-leave");
    let mut ms = vec![
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]),
    ];
    let plan = [
        assignment("t", &[0]),
        assignment("t", &[1]),
        assignment("t", &[2]),
    ];
    let gen = form_group(&mut ms, &plan);
    // v0 and v2: the member id is a top-level field; the answer carries one error code.
    for (version, leaver) in [(0i16, 2usize), (2, 1)] {
        let id = ms[leaver].member_id.clone();
        let r = conn.call(
            version,
            &LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(s(&id)),
        );
        assert_eq!(r.error_code, code::NONE, "LeaveGroup v{version}: {r:?}");
        let _ = ms.remove(leaver);
        // The remaining members rebalance.
        for m in ms.iter_mut() {
            m.wait_rebalance();
            m.send_join();
        }
        let remaining = ms.len();
        for m in ms.iter_mut() {
            let r = m.finish_join();
            assert!(r.generation_id > gen);
            if r.leader == r.member_id {
                let listed: Vec<String> =
                    r.members.iter().map(|m| m.member_id.to_string()).collect();
                assert_eq!(listed.len(), remaining, "{listed:?}");
                assert!(!listed.contains(&id), "the leaver is gone: {listed:?}");
            }
        }
        let ids: Vec<String> = ms.iter().map(|m| m.member_id.clone()).collect();
        let plan: Vec<(&str, Bytes)> = ids
            .iter()
            .map(|i| (i.as_str(), assignment("t", &[0])))
            .collect();
        let pending: Vec<i32> = ms[1..].iter_mut().map(|m| m.send_sync(&[])).collect();
        assert_eq!(ms[0].sync(&plan).error_code, code::NONE);
        for (i, c) in pending.into_iter().enumerate() {
            assert_eq!(ms[i + 1].recv_sync(c).error_code, code::NONE);
        }
        let g = conn.describe(&group);
        assert_eq!(member_ids(&g), sorted(ids), "after LeaveGroup v{version}");
    }
    // A member unknown to the group.
    let r = conn.call(
        1,
        &LeaveGroupRequest::default()
            .with_group_id(gid(&group))
            .with_member_id(s("no-such-member")),
    );
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID, "{r:?}");
    stop_broker(broker);
}

#[test]
fn leave_group_batch_by_member_id_and_by_instance_id() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-leave-batch");
    let instance = unique_topic("inst");
    let mut ms = vec![
        Member::consumer(broker.addr(), &group, &["t"]),
        Member::consumer(broker.addr(), &group, &["t"]).with_instance(&instance),
        Member::consumer(broker.addr(), &group, &["t"]),
    ];
    let plan = [
        assignment("t", &[0]),
        assignment("t", &[1]),
        assignment("t", &[2]),
    ];
    form_group(&mut ms, &plan);
    let dynamic_id = ms[2].member_id.clone();
    let static_id = ms[1].member_id.clone();
    // v5: a batch naming one member by member id, one by group.instance.id only, and one the
    // group does not know.
    let r = conn.call(
        LEAVE_V,
        &LeaveGroupRequest::default()
            .with_group_id(gid(&group))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&dynamic_id)),
                MemberIdentity::default()
                    .with_member_id(s(""))
                    .with_group_instance_id(Some(s(&instance))),
                MemberIdentity::default().with_member_id(s("no-such-member")),
            ]),
    );
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(r.members.len(), 3, "{r:?}");
    assert_eq!(r.members[0].member_id.as_str(), dynamic_id);
    assert_eq!(r.members[0].error_code, code::NONE);
    assert_eq!(
        r.members[1].group_instance_id.as_deref(),
        Some(instance.as_str())
    );
    assert_eq!(r.members[1].error_code, code::NONE);
    assert_eq!(r.members[2].member_id.as_str(), "no-such-member");
    assert_eq!(r.members[2].error_code, code::UNKNOWN_MEMBER_ID);
    // The one left rebalances alone.
    let mut left = ms.remove(0);
    left.wait_rebalance();
    left.send_join();
    let j = left.finish_join();
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].member_id.as_str(), left.member_id);
    let g = conn.describe(&group);
    assert!(!member_ids(&g).contains(&static_id));
    assert!(!member_ids(&g).contains(&dynamic_id));
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// Static membership
// ---------------------------------------------------------------------------------------------

#[test]
fn static_member_rejoin_keeps_generation_and_assignment_and_fences_the_old_id() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-static");
    let topic = unique_topic("t-static");
    conn.create_topic(&topic, 2);
    let instance = unique_topic("inst");
    let mut ms = vec![
        Member::consumer(broker.addr(), &group, &[&topic]).with_instance(&instance),
        Member::consumer(broker.addr(), &group, &[&topic]),
    ];
    let plan = [assignment(&topic, &[0]), assignment(&topic, &[1])];
    // A static member's first join needs no MEMBER_ID_REQUIRED round trip (start_join checks
    // that for dynamic members only; a static one gets NONE at once or the test fails there).
    let gen = form_group(&mut ms, &plan);
    let old_id = ms[0].member_id.clone();

    // The static member restarts: same group.instance.id, no member id, same protocols.
    let mut again = Member::consumer(broker.addr(), &group, &[&topic]).with_instance(&instance);
    let j = again.join_once();
    assert_eq!(j.error_code, code::NONE, "{j:?}");
    assert_ne!(j.member_id.as_str(), old_id, "a new member id");
    assert_eq!(j.generation_id, gen, "no rebalance: the generation is kept");
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    // It was the leader: it still is, under its new id, and (v9, KIP-814) is told to skip the
    // assignment (the group keeps the one it has) while still getting the member list.
    assert_eq!(j.leader, j.member_id, "{j:?}");
    assert!(j.skip_assignment, "{j:?}");
    let mut listed: Vec<String> = j.members.iter().map(|m| m.member_id.to_string()).collect();
    listed.sort();
    assert_eq!(
        listed,
        sorted(vec![j.member_id.to_string(), ms[1].member_id.clone()]),
        "{j:?}"
    );
    // The follower sees no rebalance either.
    assert_eq!(ms[1].heartbeat(), code::NONE);
    let r = again.sync(&[]);
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(r.assignment, plan[0], "the same assignment");
    assert_eq!(conn.describe(&group).group_state.as_str(), "Stable");

    // The old member id is fenced wherever it shows up with the instance id.
    let old = &mut ms[0];
    assert_eq!(old.heartbeat_as(gen, &old_id), code::FENCED_INSTANCE_ID);
    let r = old.sync(&[]);
    assert_eq!(r.error_code, code::FENCED_INSTANCE_ID, "{r:?}");
    let errs = old.commit(&topic, &[(0, 5, -1, "")]);
    assert_eq!(errs, [code::FENCED_INSTANCE_ID]);
    // The new one commits.
    assert_eq!(again.commit(&topic, &[(0, 5, -1, "")]), [code::NONE]);
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// OffsetCommit / OffsetFetch
// ---------------------------------------------------------------------------------------------

#[test]
fn offset_commit_of_a_stable_group_and_offset_fetch() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-commit");
    let topic = unique_topic("t-commit");
    conn.create_topic(&topic, 3);
    let mut ms = vec![Member::consumer(broker.addr(), &group, &[&topic])];
    let gen1 = form_group(&mut ms, &[assignment(&topic, &[0, 1, 2])]);
    let mut a = ms.pop().unwrap();
    let errs = a.commit(&topic, &[(0, 42, 7, "m-0"), (1, 0, -1, "")]);
    assert_eq!(errs, [code::NONE, code::NONE]);
    let got = conn.fetch_offsets(&group, &topic, &[0, 1, 2]);
    assert_eq!(got[0], (42, 7, Some("m-0".into()), code::NONE));
    assert_eq!(got[1], (0, -1, Some("".into()), code::NONE));
    // Never committed: offset -1.
    assert_eq!(got[2].0, -1, "{:?}", got[2]);
    assert_eq!(got[2].1, -1, "{:?}", got[2]);
    assert_eq!(got[2].3, code::NONE);
    // OffsetFetch v1 (the oldest both serve) agrees.
    let v1 = conn.fetch_offsets_v1(&group, &topic, &[0, 2]);
    assert_eq!(v1.len(), 2);
    assert_eq!(
        (v1[0].committed_offset, v1[0].metadata.as_deref()),
        (42, Some("m-0"))
    );
    assert_eq!(v1[1].committed_offset, -1);

    // A later commit overwrites.
    assert_eq!(a.commit(&topic, &[(0, 43, 8, "m-1")]), [code::NONE]);
    assert_eq!(
        conn.fetch_offsets(&group, &topic, &[0])[0],
        (43, 8, Some("m-1".into()), code::NONE)
    );

    // From a member the group does not know.
    let errs = conn.commit(
        COMMIT_V,
        Committer::member(&group, gen1, "no-such-member"),
        &topic,
        &[(0, 1, -1, "")],
    );
    assert_eq!(errs, [code::UNKNOWN_MEMBER_ID]);
    // From an old generation: a second member joins, the group moves on to gen1 + 1.
    let mut b = Member::consumer(broker.addr(), &group, &[&topic]);
    b.start_join();
    a.wait_rebalance();
    a.send_join();
    let gen2 = a.finish_join().generation_id;
    b.finish_join();
    let (id_a, id_b) = (a.member_id.clone(), b.member_id.clone());
    // Joined but not yet synced (CompletingRebalance): a commit must wait for the assignment.
    let errs = conn.commit(
        COMMIT_V,
        Committer::member(&group, gen2, &id_a),
        &topic,
        &[(0, 1, -1, "")],
    );
    assert_eq!(
        errs,
        [code::REBALANCE_IN_PROGRESS],
        "commit while CompletingRebalance"
    );
    let pending = b.send_sync(&[]);
    assert_eq!(
        a.sync(&[
            (id_a.as_str(), assignment(&topic, &[0, 1])),
            (id_b.as_str(), assignment(&topic, &[2]))
        ])
        .error_code,
        code::NONE
    );
    assert_eq!(b.recv_sync(pending).error_code, code::NONE);
    let errs = conn.commit(
        COMMIT_V,
        Committer::member(&group, gen1, &id_a),
        &topic,
        &[(0, 1, -1, "")],
    );
    assert_eq!(
        errs,
        [code::ILLEGAL_GENERATION],
        "commit with generation {gen1} < {gen2}"
    );
    // Nothing of the refused commits was stored.
    assert_eq!(conn.fetch_offsets(&group, &topic, &[0])[0].0, 43);
    stop_broker(broker);
}

#[test]
fn offset_commit_simple_commit_on_a_group_without_members_and_multi_group_fetch() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-simple");
    let other = unique_topic("g-simple-b");
    let unknown = unique_topic("g-never");
    conn.wait_coordinator(&other);
    conn.wait_coordinator(&unknown);
    let topic = unique_topic("t-simple");
    conn.create_topic(&topic, 2);
    // Generation -1 and no member id: what an admin client or a consumer with assign() sends.
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&group),
        &topic,
        &[(0, 10, 3, "a"), (1, 11, -1, "b")],
    );
    assert_eq!(errs, [code::NONE, code::NONE]);
    // The oldest OffsetCommit version both serve (v2, with retention time).
    let errs = conn.commit(2, Committer::simple(&other), &topic, &[(1, 99, -1, "old")]);
    assert_eq!(errs, [code::NONE]);

    // v8: several groups in one request; `topics: null` asks for every committed offset.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(gid(&group))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(tn(&topic))
                .with_partition_indexes(vec![0, 1])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid(&other))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid(&unknown))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(tn(&topic))
                .with_partition_indexes(vec![0])])),
    ]);
    let resp = conn.call(FETCH_V, &req);
    assert_eq!(resp.groups.len(), 3, "{resp:?}");
    let by_group = |g: &str| {
        resp.groups
            .iter()
            .find(|x| x.group_id.0.as_str() == g)
            .unwrap_or_else(|| panic!("no answer for group {g}: {resp:?}"))
    };
    let flat = |g: &str| -> Vec<(String, i32, i64, i32, Option<String>, i16)> {
        let grp = by_group(g);
        assert_eq!(grp.error_code, code::NONE, "group {g}: {grp:?}");
        let mut v = Vec::new();
        for t in &grp.topics {
            for p in &t.partitions {
                v.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                ));
            }
        }
        v.sort();
        v
    };
    assert_eq!(
        flat(&group),
        vec![
            (topic.clone(), 0, 10, 3, Some("a".into()), 0),
            (topic.clone(), 1, 11, -1, Some("b".into()), 0),
        ]
    );
    assert_eq!(
        flat(&other),
        vec![(topic.clone(), 1, 99, -1, Some("old".into()), 0)]
    );
    let never = flat(&unknown);
    assert_eq!(never.len(), 1, "{never:?}");
    assert_eq!(
        (never[0].2, never[0].3, never[0].5),
        (-1, -1, 0),
        "{never:?}"
    );
    // The group with only committed offsets is Empty (not Dead).
    let g = conn.describe(&group);
    assert_eq!(g.error_code, code::NONE);
    assert_eq!(g.group_state.as_str(), "Empty");
    assert!(g.members.is_empty());
    stop_broker(broker);
}

#[test]
fn offset_commit_unknown_topic_and_metadata_too_large() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-commit-bad");
    let topic = unique_topic("t-commit-bad");
    conn.create_topic(&topic, 1);
    let missing = unique_topic("t-missing");
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&group),
        &missing,
        &[(0, 1, -1, "")],
    );
    assert_eq!(errs, [code::UNKNOWN_TOPIC_OR_PARTITION]);
    // A partition the topic does not have.
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&group),
        &topic,
        &[(5, 1, -1, "")],
    );
    assert_eq!(errs, [code::UNKNOWN_TOPIC_OR_PARTITION]);

    let at_limit = "x".repeat(OFFSET_METADATA_MAX_BYTES);
    let over = "x".repeat(OFFSET_METADATA_MAX_BYTES + 1);
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&group),
        &topic,
        &[(0, 7, -1, &at_limit)],
    );
    assert_eq!(errs, [code::NONE], "metadata of exactly the limit");
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&group),
        &topic,
        &[(0, 8, -1, &over)],
    );
    assert_eq!(errs, [code::OFFSET_METADATA_TOO_LARGE]);
    // The refused commit left the earlier one in place.
    let got = conn.fetch_offsets(&group, &topic, &[0]);
    assert_eq!(got[0].0, 7);
    assert_eq!(got[0].2.as_deref(), Some(at_limit.as_str()));
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// DescribeGroups / ListGroups
// ---------------------------------------------------------------------------------------------

#[test]
fn describe_groups_states_members_and_unknown_group() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-describe");
    let meta = subscription(&["t"]);
    let mut a = Member::consumer(broker.addr(), &group, &["t"]);
    a.start_join();
    a.finish_join();
    // Joined, not synced.
    let g = conn.describe(&group);
    assert_eq!(g.error_code, code::NONE);
    assert_eq!(g.group_state.as_str(), "CompletingRebalance");
    assert_eq!(member_ids(&g), vec![a.member_id.clone()]);
    let id = a.member_id.clone();
    let asg = assignment("t", &[0, 1]);
    assert_eq!(a.sync(&[(id.as_str(), asg.clone())]).error_code, code::NONE);

    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(m.member_id.as_str(), id);
    assert_eq!(m.client_id.as_str(), CLIENT_ID);
    assert!(
        m.client_host.as_str().contains("127.0.0.1"),
        "client host {:?}",
        m.client_host
    );
    assert_eq!(m.member_metadata, meta);
    assert_eq!(m.member_assignment, asg);
    assert_eq!(m.group_instance_id, None);

    // A second member's join puts it in PreparingRebalance until A rejoins.
    let mut b = Member::consumer(broker.addr(), &group, &["t"]);
    b.start_join();
    a.wait_rebalance();
    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "PreparingRebalance");
    a.send_join();
    a.finish_join();
    b.finish_join();

    // Both leave: Empty.
    for m in [&a, &b] {
        let r = conn.call(
            LEAVE_V,
            &LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&m.member_id))
                ]),
        );
        assert_eq!(r.error_code, code::NONE);
    }
    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "Empty");
    assert!(g.members.is_empty());
    assert_eq!(g.protocol_type.as_str(), PROTOCOL_TYPE);

    // A group that never existed, together with one that does, in one request.
    let unknown = unique_topic("g-unknown");
    let resp = conn.call(
        DESCRIBE_V,
        &DescribeGroupsRequest::default().with_groups(vec![gid(&unknown), gid(&group)]),
    );
    assert_eq!(resp.groups.len(), 2);
    let u = resp
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == unknown)
        .expect("the unknown group is answered");
    assert_eq!(
        u.error_code,
        code::NONE,
        "v5: no error for an unknown group"
    );
    assert_eq!(u.group_state.as_str(), "Dead");
    assert!(u.members.is_empty());
    // v6 (KIP-1043) reports an unknown group as an error; corelog serves up to v5, so this part
    // runs only against a broker that advertises v6.
    if advertised_max(&broker, DescribeGroupsRequest::KEY) >= 6 {
        let r = conn.call(
            6,
            &DescribeGroupsRequest::default().with_groups(vec![gid(&unknown)]),
        );
        assert_eq!(r.groups.len(), 1);
        assert_eq!(
            r.groups[0].error_code,
            code::GROUP_ID_NOT_FOUND,
            "v6: {r:?}"
        );
        assert_eq!(r.groups[0].group_state.as_str(), "Dead", "v6: {r:?}");
    }
    let known = resp
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == group)
        .expect("the known group is answered");
    assert_eq!(known.group_state.as_str(), "Empty");
    stop_broker(broker);
}

#[test]
fn list_groups_with_protocol_type_and_states_filter() {
    let broker = start_broker(&[]);
    let (stable, mut conn) = ready_group(&broker, "g-list-stable");
    let empty = unique_topic("g-list-empty");
    conn.wait_coordinator(&empty);
    let topic = unique_topic("t-list");
    conn.create_topic(&topic, 1);
    let mut ms = vec![Member::consumer(broker.addr(), &stable, &[&topic])];
    form_group(&mut ms, &[assignment(&topic, &[0])]);
    // A group with committed offsets and no members is Empty; its protocol type is unknown.
    let errs = conn.commit(
        COMMIT_V,
        Committer::simple(&empty),
        &topic,
        &[(0, 1, -1, "")],
    );
    assert_eq!(errs, [code::NONE]);

    let list = |conn: &mut Conn, version: i16, states: &[&str]| {
        let r = conn.call(
            version,
            &ListGroupsRequest::default().with_states_filter(states.iter().map(|x| s(x)).collect()),
        );
        assert_eq!(r.error_code, code::NONE, "{r:?}");
        r.groups
    };
    let all = list(&mut conn, LIST_V, &[]);
    let st = all
        .iter()
        .find(|g| g.group_id.0.as_str() == stable)
        .unwrap_or_else(|| panic!("{stable} not listed: {all:?}"));
    assert_eq!(st.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(st.group_state.as_str(), "Stable");
    assert_eq!(st.group_type.as_str(), "classic");
    let em = all
        .iter()
        .find(|g| g.group_id.0.as_str() == empty)
        .unwrap_or_else(|| panic!("{empty} not listed: {all:?}"));
    assert_eq!(em.group_state.as_str(), "Empty");
    assert_eq!(em.protocol_type.as_str(), "");

    // v4: the states filter.
    let only_stable = list(&mut conn, 4, &["Stable"]);
    assert!(only_stable.iter().any(|g| g.group_id.0.as_str() == stable));
    assert!(!only_stable.iter().any(|g| g.group_id.0.as_str() == empty));
    assert!(only_stable
        .iter()
        .all(|g| g.group_state.as_str() == "Stable"));
    let only_empty = list(&mut conn, 4, &["Empty"]);
    assert!(only_empty.iter().any(|g| g.group_id.0.as_str() == empty));
    assert!(!only_empty.iter().any(|g| g.group_id.0.as_str() == stable));
    // v0 (oldest): listed with the protocol type.
    let v0 = list(&mut conn, 0, &[]);
    let st = v0
        .iter()
        .find(|g| g.group_id.0.as_str() == stable)
        .unwrap_or_else(|| panic!("{stable} not listed at v0"));
    assert_eq!(st.protocol_type.as_str(), PROTOCOL_TYPE);
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// DeleteGroups / OffsetDelete
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_groups_non_empty_unknown_and_empty() {
    let broker = start_broker(&[]);
    let (active, mut conn) = ready_group(&broker, "g-del-active");
    let idle = unique_topic("g-del-idle");
    let unknown = unique_topic("g-del-unknown");
    conn.wait_coordinator(&idle);
    conn.wait_coordinator(&unknown);
    let topic = unique_topic("t-del");
    conn.create_topic(&topic, 1);
    let mut ms = vec![Member::consumer(broker.addr(), &active, &[&topic])];
    form_group(&mut ms, &[assignment(&topic, &[0])]);
    assert_eq!(ms[0].commit(&topic, &[(0, 5, -1, "")]), [code::NONE]);
    assert_eq!(
        conn.commit(
            COMMIT_V,
            Committer::simple(&idle),
            &topic,
            &[(0, 9, -1, "meta")]
        ),
        [code::NONE]
    );

    let r = conn.call(
        DELETE_V,
        &DeleteGroupsRequest::default().with_groups_names(vec![
            gid(&active),
            gid(&unknown),
            gid(&idle),
        ]),
    );
    let err = |g: &str| {
        r.results
            .iter()
            .find(|x| x.group_id.0.as_str() == g)
            .unwrap_or_else(|| panic!("no result for {g}: {r:?}"))
            .error_code
    };
    assert_eq!(err(&active), code::NON_EMPTY_GROUP);
    assert_eq!(err(&unknown), code::GROUP_ID_NOT_FOUND);
    assert_eq!(err(&idle), code::NONE);

    // The deleted group and its offsets are gone; the active one keeps its own.
    let got = conn.fetch_offsets(&idle, &topic, &[0]);
    assert_eq!(got[0].0, -1, "offsets of a deleted group: {got:?}");
    let g = conn.describe(&idle);
    assert_eq!(g.group_state.as_str(), "Dead");
    assert_eq!(conn.fetch_offsets(&active, &topic, &[0])[0].0, 5);
    assert_eq!(ms[0].heartbeat(), code::NONE);
    // Deleting it again: it is unknown now.
    let r = conn.call(
        DELETE_V,
        &DeleteGroupsRequest::default().with_groups_names(vec![gid(&idle)]),
    );
    assert_eq!(r.results[0].error_code, code::GROUP_ID_NOT_FOUND);
    stop_broker(broker);
}

#[test]
fn offset_delete_of_an_empty_group_and_of_a_subscribed_topic() {
    let broker = start_broker(&[]);
    let (idle, mut conn) = ready_group(&broker, "g-odel-idle");
    let active = unique_topic("g-odel-active");
    conn.wait_coordinator(&active);
    let topic = unique_topic("t-odel");
    let unsubscribed = unique_topic("t-odel-other");
    conn.create_topic(&topic, 2);
    conn.create_topic(&unsubscribed, 1);

    let offsets = [(0, 3, -1, ""), (1, 4, -1, "")];
    assert_eq!(
        conn.commit(COMMIT_V, Committer::simple(&idle), &topic, &offsets),
        [code::NONE, code::NONE]
    );
    let delete = |group: &str, topic: &str, partitions: &[i32]| {
        OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(tn(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                )])
    };
    let r = conn.call(OFFSET_DELETE_V, &delete(&idle, &topic, &[0]));
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].partitions[0].partition_index, 0);
    assert_eq!(r.topics[0].partitions[0].error_code, code::NONE);
    let got = conn.fetch_offsets(&idle, &topic, &[0, 1]);
    assert_eq!(
        (got[0].0, got[1].0),
        (-1, 4),
        "only partition 0's offset is gone"
    );

    // An active group subscribed to the topic.
    let mut ms = vec![Member::consumer(broker.addr(), &active, &[&topic])];
    form_group(&mut ms, &[assignment(&topic, &[0, 1])]);
    assert_eq!(ms[0].commit(&topic, &[(0, 8, -1, "")]), [code::NONE]);
    // Commits to a topic it is not subscribed to are allowed (the assignor decides).
    assert_eq!(ms[0].commit(&unsubscribed, &[(0, 2, -1, "")]), [code::NONE]);
    let r = conn.call(OFFSET_DELETE_V, &delete(&active, &topic, &[0]));
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code::GROUP_SUBSCRIBED_TO_TOPIC,
        "{r:?}"
    );
    assert_eq!(
        conn.fetch_offsets(&active, &topic, &[0])[0].0,
        8,
        "still committed"
    );
    // The topic it does not subscribe to can be deleted while the group is active.
    let r = conn.call(OFFSET_DELETE_V, &delete(&active, &unsubscribed, &[0]));
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(r.topics[0].partitions[0].error_code, code::NONE, "{r:?}");
    assert_eq!(conn.fetch_offsets(&active, &unsubscribed, &[0])[0].0, -1);
    // An unknown group.
    let r = conn.call(
        OFFSET_DELETE_V,
        &delete(&unique_topic("g-odel-none"), &topic, &[0]),
    );
    assert_eq!(r.error_code, code::GROUP_ID_NOT_FOUND, "{r:?}");
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// Durability (corelog only: it needs to restart the broker)
// ---------------------------------------------------------------------------------------------

#[test]
fn durability_offsets_and_group_survive_a_graceful_restart() {
    let mut broker = start_broker(&[]);
    if !broker.is_spawned() {
        // Restarting an external broker is not this harness's business.
        return;
    }
    let (group, mut conn) = ready_group(&broker, "g-durable");
    let simple = unique_topic("g-durable-simple");
    let topic = unique_topic("t-durable");
    conn.create_topic(&topic, 2);
    let mut ms = vec![Member::consumer(broker.addr(), &group, &[&topic])];
    let gen = form_group(&mut ms, &[assignment(&topic, &[0, 1])]);
    assert_eq!(
        ms[0].commit(&topic, &[(0, 100, 4, "before restart"), (1, 200, 5, "p1")]),
        [0, 0]
    );
    assert_eq!(
        conn.commit(
            COMMIT_V,
            Committer::simple(&simple),
            &topic,
            &[(1, 7, -1, "s")]
        ),
        [code::NONE]
    );
    let member_id = ms[0].member_id.clone();
    close_connections_to(broker.addr());

    broker.restart();
    let mut conn = Conn::open(broker.addr());
    conn.wait_coordinator(&group);
    assert_eq!(
        conn.fetch_offsets(&group, &topic, &[0, 1]),
        vec![
            (100, 4, Some("before restart".into()), code::NONE),
            (200, 5, Some("p1".into()), code::NONE),
        ]
    );
    assert_eq!(
        conn.fetch_offsets(&simple, &topic, &[1])[0],
        (7, -1, Some("s".into()), 0)
    );
    // The group comes back as it was, member and assignment included (as Kafka reloads it
    // from __consumer_offsets): the member's session simply continues.
    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(g.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(member_ids(&g), vec![member_id.clone()]);
    assert_eq!(g.members[0].member_assignment, assignment(&topic, &[0, 1]));
    let mut old = ms.pop().unwrap();
    old.conn = Conn::open(broker.addr());
    assert_eq!(
        old.heartbeat(),
        code::NONE,
        "the member's generation {gen} survives"
    );
    assert_eq!(old.commit(&topic, &[(0, 101, 4, "after")]), [code::NONE]);
    // Once it leaves, a new member continues the group's generations rather than restarting
    // them.
    let r = conn.call(
        LEAVE_V,
        &LeaveGroupRequest::default()
            .with_group_id(gid(&group))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&member_id))]),
    );
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    let mut m = Member::consumer(broker.addr(), &group, &[&topic]);
    let j = m.join();
    assert!(
        j.generation_id > gen,
        "generation {} after {gen}",
        j.generation_id
    );
    stop_broker(broker);
}

#[test]
fn durability_acknowledged_commits_survive_sigkill() {
    let mut broker = start_broker(&[]);
    if !broker.is_spawned() {
        return;
    }
    let (group, mut conn) = ready_group(&broker, "g-crash");
    let topic = unique_topic("t-crash");
    conn.create_topic(&topic, 3);
    // Many commits, the broker killed the moment the last acknowledgement arrived.
    const COMMITS: i64 = 50;
    for i in 1..=COMMITS {
        let p = (i % 3) as i32;
        let meta = format!("commit {i}");
        assert_eq!(
            conn.commit(
                COMMIT_V,
                Committer::simple(&group),
                &topic,
                &[(p, i * 10, i as i32, &meta)]
            ),
            [code::NONE]
        );
    }
    // And a group with a member, whose commit is the last thing acknowledged before the kill.
    let (active, _) = ready_group(&broker, "g-crash-member");
    let mut ms = vec![Member::consumer(broker.addr(), &active, &[&topic])];
    let gen = form_group(&mut ms, &[assignment(&topic, &[0, 1, 2])]);
    let member_id = ms[0].member_id.clone();
    assert_eq!(ms[0].commit(&topic, &[(2, 77, 9, "last")]), [code::NONE]);
    broker.kill_and_restart();

    let mut conn = Conn::open(broker.addr());
    conn.wait_coordinator(&active);
    assert_eq!(
        conn.fetch_offsets(&active, &topic, &[2])[0],
        (77, 9, Some("last".into()), code::NONE)
    );
    let g = conn.describe(&active);
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(member_ids(&g), vec![member_id]);
    ms[0].conn = Conn::open(broker.addr());
    assert_eq!(
        ms[0].heartbeat(),
        code::NONE,
        "generation {gen} survives the crash"
    );

    conn.wait_coordinator(&group);
    let got = conn.fetch_offsets(&group, &topic, &[0, 1, 2]);
    // The last commit of partition p was number COMMITS - k for the largest k with the same
    // residue.
    for (p, g) in got.iter().enumerate() {
        let last = (1..=COMMITS).rev().find(|i| (i % 3) as usize == p).unwrap();
        assert_eq!(
            *g,
            (
                last * 10,
                last as i32,
                Some(format!("commit {last}")),
                code::NONE
            ),
            "partition {p}"
        );
    }
    stop_broker(broker);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_session_timeout_out_of_range_and_empty_group_id() {
    let broker = start_broker(&[]);
    let (group, mut conn) = ready_group(&broker, "g-bad");
    for timeout in [MAX_SESSION_MS + 1, i32::MAX, 1] {
        let mut req = Member::consumer(broker.addr(), &group, &["t"]).join_request();
        req.session_timeout_ms = timeout;
        let r = conn.call(JOIN_V, &req);
        assert_eq!(
            r.error_code,
            code::INVALID_SESSION_TIMEOUT,
            "session timeout {timeout}: {r:?}"
        );
    }
    // An empty group id.
    let m = Member::consumer(broker.addr(), "", &["t"]);
    let r = conn.call(JOIN_V, &m.join_request());
    assert_eq!(r.error_code, code::INVALID_GROUP_ID, "{r:?}");
    // The refusals created nothing.
    let g = conn.describe(&group);
    assert_eq!(g.group_state.as_str(), "Dead");
    stop_broker(broker);
}

#[test]
fn bad_input_garbage_and_truncated_group_requests_leave_the_broker_serving() {
    let mut broker = start_broker(&[]);
    let (group, _conn) = ready_group(&broker, "g-garbage");
    let garbage: &[u8] = &[
        0xff, 0xfe, 0x80, 0x00, 0x7f, 0x12, 0x34, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    let join = Member::consumer(broker.addr(), &group, &["t"]).join_request();
    // Every group API, at its lowest and highest shared version: a garbage body, then a valid
    // body cut in half.
    let apis: [(i16, i16, i16); 11] = [
        (JoinGroupRequest::KEY, 0, JOIN_V),
        (kafka_protocol::messages::SyncGroupRequest::KEY, 0, SYNC_V),
        (
            kafka_protocol::messages::HeartbeatRequest::KEY,
            0,
            HEARTBEAT_V,
        ),
        (LeaveGroupRequest::KEY, 0, LEAVE_V),
        (
            kafka_protocol::messages::OffsetCommitRequest::KEY,
            2,
            COMMIT_V,
        ),
        (OffsetFetchRequest::KEY, 1, FETCH_V),
        (FindCoordinatorRequest::KEY, 0, FIND_V),
        (DescribeGroupsRequest::KEY, 0, DESCRIBE_V),
        (ListGroupsRequest::KEY, 3, LIST_V),
        (DeleteGroupsRequest::KEY, 0, DELETE_V),
        (OffsetDeleteRequest::KEY, 0, OFFSET_DELETE_V),
    ];
    for (key, lo, hi) in apis {
        for version in [lo, hi] {
            let header = request_header_version(key, version);
            let mut c = Conn::open(broker.addr());
            let corr = c.send_body(key, version, header, garbage);
            assert_closed_or_answered(&mut c, corr, key, version, "garbage");
            if key == JoinGroupRequest::KEY {
                let mut body = bytes::BytesMut::new();
                join.encode(&mut body, version).unwrap();
                let half = &body[..body.len() / 2];
                let mut c = Conn::open(broker.addr());
                let corr = c.send_body(key, version, header, half);
                assert_closed_or_answered(&mut c, corr, key, version, "truncated");
            }
        }
    }
    broker.assert_alive();
    // And the group protocol still works end to end.
    let mut ms = vec![Member::consumer(broker.addr(), &group, &["t"])];
    form_group(&mut ms, &[assignment("t", &[0])]);
    assert_eq!(ms[0].heartbeat(), code::NONE);
    broker.assert_alive();
    stop_broker(broker);
}

/// The request header version of `key` at `version` (flexible versions use header v2).
fn request_header_version(key: i16, version: i16) -> i16 {
    use kafka_protocol::messages::*;
    match key {
        k if k == JoinGroupRequest::KEY => JoinGroupRequest::header_version(version),
        k if k == SyncGroupRequest::KEY => SyncGroupRequest::header_version(version),
        k if k == HeartbeatRequest::KEY => HeartbeatRequest::header_version(version),
        k if k == LeaveGroupRequest::KEY => LeaveGroupRequest::header_version(version),
        k if k == OffsetCommitRequest::KEY => OffsetCommitRequest::header_version(version),
        k if k == OffsetFetchRequest::KEY => OffsetFetchRequest::header_version(version),
        k if k == FindCoordinatorRequest::KEY => FindCoordinatorRequest::header_version(version),
        k if k == DescribeGroupsRequest::KEY => DescribeGroupsRequest::header_version(version),
        k if k == ListGroupsRequest::KEY => ListGroupsRequest::header_version(version),
        k if k == DeleteGroupsRequest::KEY => DeleteGroupsRequest::header_version(version),
        k if k == OffsetDeleteRequest::KEY => OffsetDeleteRequest::header_version(version),
        _ => panic!("no group API {key}"),
    }
}

/// After a malformed request: the broker either closed the connection or answered that very
/// request (its correlation id); it never hangs.
fn assert_closed_or_answered(c: &mut Conn, corr: i32, key: i16, version: i16, what: &str) {
    if let Some(mut frame) = c.read_frame() {
        use bytes::Buf;
        assert!(
            frame.remaining() >= 4,
            "api {key} v{version} {what}: short answer"
        );
        assert_eq!(
            frame.get_i32(),
            corr,
            "api {key} v{version} {what}: correlation id"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Oldest offset APIs (corelog advertises them for old clients; Kafka 4 no longer serves them)
// ---------------------------------------------------------------------------------------------

/// Appends a Kafka string (i16 length) to `out`.
fn put_str(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as i16).to_be_bytes());
    out.extend_from_slice(v.as_bytes());
}

/// Reads the answer to `correlation_id` (response header v0) and decodes it as `R` at `version`.
fn receive_as<R: kafka_protocol::protocol::Decodable>(
    conn: &mut Conn,
    correlation_id: i32,
    version: i16,
) -> R {
    use bytes::Buf;
    let mut frame = conn
        .read_frame()
        .expect("an answer, not a closed connection");
    assert_eq!(frame.get_i32(), correlation_id, "correlation id");
    let r = R::decode(&mut frame, version).expect("decode");
    assert_eq!(frame.remaining(), 0, "bytes left after the response");
    r
}

#[test]
fn offset_commit_v0_v1_and_offset_fetch_v0_round_trip() {
    let broker = start_broker(&[]);
    // The protocol crate cannot encode these versions, so the requests are written by hand.
    let min_advertised = |key: i16| {
        use std::io::Write;
        let mut c = interop_support::connect(broker.addr()).expect("connect");
        c.write_all(&interop_support::api_versions_v3_frame(1))
            .expect("send ApiVersions");
        let frame = interop_support::read_frame(&mut c).unwrap().unwrap();
        let a = interop_support::parse_api_versions(&frame, true).unwrap();
        a.keys.iter().find(|k| k.0 == key).map_or(i16::MAX, |k| k.1)
    };
    if broker.is_spawned() {
        assert_eq!(min_advertised(8), 0, "corelog advertises OffsetCommit v0");
        assert_eq!(min_advertised(9), 0, "corelog advertises OffsetFetch v0");
    } else if min_advertised(8) > 0 {
        // Kafka 4 dropped these versions (KIP-896); nothing to check against it.
        stop_broker(broker);
        return;
    }
    let (group, mut conn) = ready_group(&broker, "legacy");
    let topic = unique_topic("legacy-t");
    conn.create_topic(&topic, 2);

    // OffsetCommit v0: group, [topic, [partition, offset, metadata]].
    let mut v0 = Vec::new();
    put_str(&mut v0, &group);
    v0.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut v0, &topic);
    v0.extend_from_slice(&1i32.to_be_bytes());
    v0.extend_from_slice(&0i32.to_be_bytes());
    v0.extend_from_slice(&5i64.to_be_bytes());
    put_str(&mut v0, "m0");
    let c = conn.send_body(8, 0, 1, &v0);
    let r: kafka_protocol::messages::OffsetCommitResponse = receive_as(&mut conn, c, 2);
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "v0 commit: {r:?}");

    // OffsetCommit v1: adds generation and member id, and a timestamp per partition.
    let mut v1 = Vec::new();
    put_str(&mut v1, &group);
    v1.extend_from_slice(&(-1i32).to_be_bytes());
    put_str(&mut v1, "");
    v1.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut v1, &topic);
    v1.extend_from_slice(&1i32.to_be_bytes());
    v1.extend_from_slice(&1i32.to_be_bytes());
    v1.extend_from_slice(&7i64.to_be_bytes());
    v1.extend_from_slice(&(-1i64).to_be_bytes());
    put_str(&mut v1, "m1");
    let c = conn.send_body(8, 1, 1, &v1);
    let r: kafka_protocol::messages::OffsetCommitResponse = receive_as(&mut conn, c, 2);
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "v1 commit: {r:?}");

    // A v1 commit with a generation to this member-less group is refused and changes nothing.
    let mut stale = v1.clone();
    let generation_at = 2 + group.len();
    stale[generation_at..generation_at + 4].copy_from_slice(&3i32.to_be_bytes());
    let c = conn.send_body(8, 1, 1, &stale);
    let r: kafka_protocol::messages::OffsetCommitResponse = receive_as(&mut conn, c, 2);
    assert_ne!(
        r.topics[0].partitions[0].error_code, 0,
        "stale commit: {r:?}"
    );

    // OffsetFetch v0 has v1's layout.
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(&group))
        .with_topics(Some(vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn(&topic))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let mut body = bytes::BytesMut::new();
    req.encode(&mut body, 1).unwrap();
    let c = conn.send_body(9, 0, 1, &body);
    let r: kafka_protocol::messages::OffsetFetchResponse = receive_as(&mut conn, c, 1);
    let got: Vec<(i32, i64, String)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got, vec![(0, 5, "m0".into()), (1, 7, "m1".into())]);
    drop(conn);
    stop_broker(broker);
}
