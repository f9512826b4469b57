//! Harness of the group-protocol tests (`tests/group_protocol.rs`): raw Kafka protocol over a
//! blocking `TcpStream`, requests encoded and responses decoded with `kafka-protocol`, plus a
//! [`Member`] that plays one classic-protocol group member (JoinGroup, SyncGroup, Heartbeat,
//! OffsetCommit) on its own connection.
//!
//! One connection per member: a JoinGroup is answered only when the rebalance completes, and a
//! broker answers a connection's requests in order, so members must not share one.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartition;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, CreateTopicsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, MetadataRequest, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, RequestHeader, ResponseHeader, SyncGroupRequest, SyncGroupResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Kafka error codes the tests expect (Errors.java).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// API versions the tests speak by default: the highest both corelog and Kafka 4.4 serve
/// (Kafka 4.4 has OffsetCommit 2-10, OffsetFetch 1-10, DescribeGroups 0-6, DeleteGroups 0-3;
/// corelog OffsetCommit 0-9, OffsetFetch 0-9, DescribeGroups 0-5, DeleteGroups 0-2).
pub const JOIN_V: i16 = 9;
pub const SYNC_V: i16 = 5;
pub const HEARTBEAT_V: i16 = 4;
pub const LEAVE_V: i16 = 5;
pub const COMMIT_V: i16 = 9;
pub const FETCH_V: i16 = 8;
pub const FIND_V: i16 = 6;
pub const DESCRIBE_V: i16 = 5;
pub const LIST_V: i16 = 5;
pub const DELETE_V: i16 = 2;
pub const OFFSET_DELETE_V: i16 = 0;

/// The client id every test connection sends (DescribeGroups reports it per member).
pub const CLIENT_ID: &str = "corelog-group-tests";
/// How long a test waits for one response (a JoinGroup waits for the whole rebalance).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fresh broker may take to have a coordinator for a group (Kafka creates
/// `__consumer_offsets` on the first FindCoordinator and answers COORDINATOR_NOT_AVAILABLE until
/// it is loaded).
pub const COORDINATOR_WAIT: Duration = Duration::from_secs(60);
/// Session timeout of members in tests that do not test expiry: long enough that a member never
/// expires while a test runs on a loaded machine.
pub const LONG_SESSION_MS: i32 = 45_000;
/// Rebalance timeout: how long the broker waits for known members to rejoin.
pub const REBALANCE_MS: i32 = 30_000;
/// How long a member heartbeats while waiting for a rebalance another connection started.
pub const REBALANCE_WAIT: Duration = Duration::from_secs(10);
/// The protocol type of every group in these tests (what the Java consumer uses).
pub const PROTOCOL_TYPE: &str = "consumer";

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

pub fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

/// A consumer-protocol subscription (version 0) to `topics`, the member metadata a Java consumer
/// sends: `version: int16` followed by the versioned body.
pub fn subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .with_user_data(None);
    versioned(&sub, 0)
}

/// A consumer-protocol assignment (version 0) of `partitions` of `topic`.
pub fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedPartitions::default()
            .with_topic(tn(topic))
            .with_partitions(partitions.to_vec())])
        .with_user_data(None);
    versioned(&a, 0)
}

fn versioned<T: Encodable>(v: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    v.encode(&mut buf, version)
        .expect("encode consumer protocol");
    buf.freeze()
}

/// Every connection the tests opened, by broker address, so that [`close_connections_to`] can
/// end them before a broker stops.
static OPEN: Mutex<Vec<(SocketAddr, TcpStream)>> = Mutex::new(Vec::new());

/// Shuts down every connection opened to `addr` (the members' sockets included). corelog's
/// graceful shutdown waits (up to 5 s) for open client connections to close, so a test ends its
/// own before stopping the broker; only a spawned broker's address is unique to one test.
pub fn close_connections_to(addr: SocketAddr) {
    let mut open = OPEN.lock().unwrap();
    open.retain(|(a, stream)| {
        if *a == addr {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            false
        } else {
            true
        }
    });
}

/// One client connection speaking raw Kafka protocol.
pub struct Conn {
    stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        OPEN.lock()
            .unwrap()
            .push((addr, stream.try_clone().expect("clone stream")));
        Conn {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends `request` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .unwrap_or_else(|e| panic!("encode {} v{version}: {e}", std::any::type_name::<R>()));
        self.send_body(R::KEY, version, R::header_version(version), &body)
    }

    /// Sends an already-encoded (possibly malformed) body under a well-formed request header.
    pub fn send_body(&mut self, key: i16, version: i16, header_version: i16, body: &[u8]) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(s(CLIENT_ID)));
        let mut payload = BytesMut::new();
        header.encode(&mut payload, header_version).unwrap();
        payload.put_slice(body);
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.stream.write_all(&frame).expect("send request");
        correlation_id
    }

    /// Reads one response frame; `None` if the broker closed the connection first.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if !self.read_or_closed(&mut size) {
            return None;
        }
        let size = i32::from_be_bytes(size);
        assert!((4..=64 << 20).contains(&size), "response frame size {size}");
        let mut frame = vec![0u8; size as usize];
        if !self.read_or_closed(&mut frame) {
            return None;
        }
        Some(Bytes::from(frame))
    }

    fn read_or_closed(&mut self, buf: &mut [u8]) -> bool {
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return false,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read response: {e}"),
            }
        }
        true
    }

    /// Reads and decodes the response to the request sent with `correlation_id`.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let mut frame = self
            .read_frame()
            .unwrap_or_else(|| panic!("connection closed instead of a {:?} answer", R::KEY));
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let response = R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode api {} v{version} response: {e}", R::KEY));
        assert_eq!(frame.remaining(), 0, "bytes left after the response");
        response
    }

    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let c = self.send(version, request);
        self.receive::<R>(version, c)
    }

    /// Creates `topic` with `partitions` partitions (CreateTopics v5, replication factor 1).
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(tn(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        let resp = self.call(5, &req);
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(
            resp.topics[0].error_code, 0,
            "CreateTopics {topic}: {:?}",
            resp.topics[0].error_message
        );
        // Kafka publishes a new topic to its metadata cache asynchronously, and OffsetCommit
        // checks topics against that cache: wait until Metadata shows every partition led.
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let md = self.call(
                12,
                &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default(
                )
                .with_name(Some(tn(topic)))])),
            );
            let t = &md.topics[0];
            if t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions
                    .iter()
                    .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} never appeared: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the broker names a coordinator for `group` (FindCoordinator v3), and returns
    /// the final answer's (node id, host, port).
    pub fn wait_coordinator(&mut self, group: &str) -> (i32, String, i32) {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let req = FindCoordinatorRequest::default()
                .with_key(s(group))
                .with_key_type(0);
            let resp = self.call(3, &req);
            match resp.error_code {
                // Kafka names the coordinator before it has loaded the group's partition of
                // `__consumer_offsets`; DescribeGroups answers NOT_COORDINATOR or
                // COORDINATOR_LOAD_IN_PROGRESS until it has.
                code::NONE if self.coordinator_loaded(group) => {
                    return (resp.node_id.0, resp.host.to_string(), resp.port)
                }
                code::NONE if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                code::COORDINATOR_NOT_AVAILABLE
                | code::COORDINATOR_LOAD_IN_PROGRESS
                | code::NOT_COORDINATOR
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200))
                }
                e => panic!(
                    "FindCoordinator({group}): error {e} {:?}",
                    resp.error_message
                ),
            }
        }
    }

    fn coordinator_loaded(&mut self, group: &str) -> bool {
        let resp = self.call(
            DESCRIBE_V,
            &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
        );
        !matches!(
            resp.groups[0].error_code,
            code::COORDINATOR_LOAD_IN_PROGRESS
                | code::COORDINATOR_NOT_AVAILABLE
                | code::NOT_COORDINATOR
        )
    }

    /// DescribeGroups (v5) of one group.
    pub fn describe(&mut self, group: &str) -> DescribedGroup {
        let resp = self.call(
            DESCRIBE_V,
            &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
        );
        assert_eq!(resp.groups.len(), 1, "DescribeGroups answers one group");
        let g = resp.groups.into_iter().next().unwrap();
        assert_eq!(g.group_id.0.as_str(), group);
        g
    }

    /// OffsetFetch (v8, one group) of `partitions` of `topic`: (offset, leader epoch, metadata,
    /// error) per partition, in the order asked.
    pub fn fetch_offsets(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<(i64, i32, Option<String>, i16)> {
        use kafka_protocol::messages::offset_fetch_request::{
            OffsetFetchRequestGroup, OffsetFetchRequestTopics,
        };
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(gid(group))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(tn(topic))
                    .with_partition_indexes(partitions.to_vec())]))]);
        let resp = self.call(FETCH_V, &req);
        assert_eq!(resp.groups.len(), 1);
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0, "OffsetFetch({group}) group error");
        assert_eq!(
            g.topics.len(),
            1,
            "OffsetFetch({group}) topics: {:?}",
            g.topics
        );
        let t = &g.topics[0];
        assert_eq!(t.name.0.as_str(), topic);
        partitions
            .iter()
            .map(|p| {
                let r = t
                    .partitions
                    .iter()
                    .find(|r| r.partition_index == *p)
                    .unwrap_or_else(|| panic!("OffsetFetch({group}) lacks partition {p}"));
                (
                    r.committed_offset,
                    r.committed_leader_epoch,
                    r.metadata.as_ref().map(|m| m.to_string()),
                    r.error_code,
                )
            })
            .collect()
    }

    /// OffsetFetch v1 (the oldest version both corelog and Kafka 4.4 serve; single group, no
    /// leader epoch).
    pub fn fetch_offsets_v1(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<OffsetFetchResponsePartition> {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(tn(topic))
                .with_partition_indexes(partitions.to_vec())]));
        let resp = self.call(1, &req);
        assert_eq!(resp.topics.len(), 1, "OffsetFetch v1 topics");
        resp.topics.into_iter().next().unwrap().partitions
    }

    /// A commit of `offsets` (partition, offset, leader epoch, metadata) of `topic` by `who`;
    /// returns the per-partition error codes in request order.
    pub fn commit(
        &mut self,
        version: i16,
        who: Committer,
        topic: &str,
        offsets: &[(i32, i64, i32, &str)],
    ) -> Vec<i16> {
        let req = commit_request(&who, topic, offsets);
        let resp: OffsetCommitResponse = self.call(version, &req);
        assert_eq!(resp.topics.len(), 1, "OffsetCommit topics: {resp:?}");
        assert_eq!(resp.topics[0].name.0.as_str(), topic);
        offsets
            .iter()
            .map(|(p, ..)| {
                resp.topics[0]
                    .partitions
                    .iter()
                    .find(|r| r.partition_index == *p)
                    .unwrap_or_else(|| panic!("OffsetCommit answer lacks partition {p}"))
                    .error_code
            })
            .collect()
    }
}

/// Who commits: the group and the (generation, member id, group.instance.id) the commit claims.
pub struct Committer<'a> {
    pub group: &'a str,
    pub generation: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
}

impl<'a> Committer<'a> {
    /// A commit outside the group protocol (generation -1, no member), as an admin client or a
    /// consumer using assign() sends.
    pub fn simple(group: &'a str) -> Committer<'a> {
        Committer::member(group, -1, "")
    }

    pub fn member(group: &'a str, generation: i32, member_id: &'a str) -> Committer<'a> {
        Committer {
            group,
            generation,
            member_id,
            instance_id: None,
        }
    }
}

pub fn commit_request(
    who: &Committer,
    topic: &str,
    offsets: &[(i32, i64, i32, &str)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(who.group))
        .with_generation_id_or_member_epoch(who.generation)
        .with_member_id(s(who.member_id))
        .with_group_instance_id(who.instance_id.map(s))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o, e, m)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(*e)
                            .with_committed_metadata(Some(s(m)))
                    })
                    .collect(),
            )])
}

/// One classic-protocol group member on its own connection.
pub struct Member {
    pub conn: Conn,
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata), in preference order.
    pub protocols: Vec<(String, Bytes)>,
    pending_join: Option<i32>,
}

impl Member {
    /// A member of `group` offering `protocols` (name, metadata), not joined yet.
    pub fn new(addr: SocketAddr, group: &str, protocols: &[(&str, Bytes)]) -> Member {
        Member {
            conn: Conn::open(addr),
            group: group.to_string(),
            member_id: String::new(),
            instance_id: None,
            generation: -1,
            session_timeout_ms: LONG_SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocols: protocols
                .iter()
                .map(|(n, m)| (n.to_string(), m.clone()))
                .collect(),
            pending_join: None,
        }
    }

    /// A consumer subscribed to `topics` offering the "range" assignor only.
    pub fn consumer(addr: SocketAddr, group: &str, topics: &[&str]) -> Member {
        Member::new(addr, group, &[("range", subscription(topics))])
    }

    pub fn with_instance(mut self, instance_id: &str) -> Member {
        self.instance_id = Some(instance_id.to_string());
        self
    }

    pub fn join_request(&self) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(&self.group))
            .with_session_timeout_ms(self.session_timeout_ms)
            .with_rebalance_timeout_ms(self.rebalance_timeout_ms)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(self.instance_id.as_deref().map(s))
            .with_protocol_type(s(PROTOCOL_TYPE))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(n))
                            .with_metadata(m.clone())
                    })
                    .collect(),
            )
    }

    /// Sends a JoinGroup (v9) with the current member id without waiting for the answer.
    pub fn send_join(&mut self) {
        assert!(
            self.pending_join.is_none(),
            "a JoinGroup is already pending"
        );
        let req = self.join_request();
        self.pending_join = Some(self.conn.send(JOIN_V, &req));
    }

    /// Waits for the answer to [`Member::send_join`]; on success adopts its member id and
    /// generation.
    pub fn recv_join(&mut self) -> JoinGroupResponse {
        let c = self.pending_join.take().expect("no JoinGroup pending");
        let resp = self.conn.receive::<JoinGroupRequest>(JOIN_V, c);
        if resp.error_code == code::NONE || resp.error_code == code::MEMBER_ID_REQUIRED {
            self.member_id = resp.member_id.to_string();
        }
        if resp.error_code == code::NONE {
            self.generation = resp.generation_id;
        }
        resp
    }

    /// A JoinGroup round trip with the current member id.
    pub fn join_once(&mut self) -> JoinGroupResponse {
        self.send_join();
        self.recv_join()
    }

    /// Asks for a member id when it has none (a dynamic member's first JoinGroup at v4+ answers
    /// MEMBER_ID_REQUIRED with one), then sends the JoinGroup that really joins, without waiting
    /// for it (it is answered when the rebalance completes).
    pub fn start_join(&mut self) {
        if self.member_id.is_empty() && self.instance_id.is_none() {
            let first = self.join_once();
            assert_eq!(
                first.error_code,
                code::MEMBER_ID_REQUIRED,
                "first JoinGroup without a member id: {first:?}"
            );
            assert!(
                !first.member_id.is_empty(),
                "MEMBER_ID_REQUIRED without an id"
            );
        }
        self.send_join();
    }

    /// [`Member::start_join`] and wait: the full join, asserting success.
    pub fn join(&mut self) -> JoinGroupResponse {
        self.start_join();
        self.finish_join()
    }

    /// Waits for the pending join and asserts it succeeded.
    pub fn finish_join(&mut self) -> JoinGroupResponse {
        let resp = self.recv_join();
        assert_eq!(resp.error_code, code::NONE, "JoinGroup: {resp:?}");
        resp
    }

    pub fn sync_request(&self, assignments: &[(&str, Bytes)]) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(gid(&self.group))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(self.instance_id.as_deref().map(s))
            .with_protocol_type(Some(s(PROTOCOL_TYPE)))
            .with_protocol_name(self.protocols.first().map(|(n, _)| s(n)))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(m))
                            .with_assignment(a.clone())
                    })
                    .collect(),
            )
    }

    /// SyncGroup (v5) with `assignments` (the leader's; empty for a follower), waiting for the
    /// answer.
    pub fn sync(&mut self, assignments: &[(&str, Bytes)]) -> SyncGroupResponse {
        let req = self.sync_request(assignments);
        self.conn.call(SYNC_V, &req)
    }

    /// Sends a SyncGroup without waiting (a follower's is answered once the leader's arrives).
    pub fn send_sync(&mut self, assignments: &[(&str, Bytes)]) -> i32 {
        let req = self.sync_request(assignments);
        self.conn.send(SYNC_V, &req)
    }

    pub fn recv_sync(&mut self, correlation_id: i32) -> SyncGroupResponse {
        self.conn
            .receive::<SyncGroupRequest>(SYNC_V, correlation_id)
    }

    /// Heartbeat (v4) with the current generation and member id; returns the error code.
    pub fn heartbeat(&mut self) -> i16 {
        self.heartbeat_as(self.generation, &self.member_id.clone())
    }

    /// Heartbeats until the answer is REBALANCE_IN_PROGRESS: another connection's JoinGroup
    /// was sent just before, and the broker may not have handled it yet.
    pub fn wait_rebalance(&mut self) {
        let deadline = Instant::now() + REBALANCE_WAIT;
        loop {
            match self.heartbeat() {
                code::REBALANCE_IN_PROGRESS => return,
                code::NONE if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                e => panic!(
                    "heartbeat of {} while waiting for a rebalance: error {e}",
                    self.member_id
                ),
            }
        }
    }

    pub fn heartbeat_as(&mut self, generation: i32, member_id: &str) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(gid(&self.group))
            .with_generation_id(generation)
            .with_member_id(s(member_id))
            .with_group_instance_id(self.instance_id.as_deref().map(s));
        self.conn.call(HEARTBEAT_V, &req).error_code
    }

    /// OffsetCommit (v9) of `topic` as this member.
    pub fn commit(&mut self, topic: &str, offsets: &[(i32, i64, i32, &str)]) -> Vec<i16> {
        let (group, generation, member) =
            (self.group.clone(), self.generation, self.member_id.clone());
        let instance = self.instance_id.clone();
        self.conn.commit(
            COMMIT_V,
            Committer {
                group: &group,
                generation,
                member_id: &member,
                instance_id: instance.as_deref(),
            },
            topic,
            offsets,
        )
    }
}

/// Forms a stable group of `members`: the first joins alone and becomes leader, each next one
/// joins (the others rejoin when their heartbeat says REBALANCE_IN_PROGRESS), then the leader
/// syncs `assignments[i]` to member i and every follower syncs. Returns the final generation.
pub fn form_group(members: &mut [Member], assignments: &[Bytes]) -> i32 {
    assert_eq!(members.len(), assignments.len());
    for n in 0..members.len() {
        members[n].start_join();
        if n > 0 {
            // The newcomer's join puts the group in PreparingRebalance; the others learn it from
            // their heartbeat and rejoin.
            for m in members[..n].iter_mut() {
                m.wait_rebalance();
                m.send_join();
            }
        }
        let mut generation = None;
        for m in members[..=n].iter_mut() {
            let resp = m.finish_join();
            assert!(
                generation.is_none() || generation == Some(resp.generation_id),
                "members answered different generations"
            );
            generation = Some(resp.generation_id);
        }
        // Sync this generation so that the group is Stable before the next member comes.
        let ids: Vec<String> = members[..=n].iter().map(|m| m.member_id.clone()).collect();
        let plan: Vec<(&str, Bytes)> = ids
            .iter()
            .zip(assignments)
            .map(|(id, a)| (id.as_str(), a.clone()))
            .collect();
        let pending: Vec<i32> = members[1..=n]
            .iter_mut()
            .map(|m| m.send_sync(&[]))
            .collect();
        let lead = members[0].sync(&plan);
        assert_eq!(lead.error_code, code::NONE, "leader SyncGroup: {lead:?}");
        assert_eq!(lead.assignment, assignments[0]);
        for (i, c) in pending.into_iter().enumerate() {
            let r = members[i + 1].recv_sync(c);
            assert_eq!(r.error_code, code::NONE, "follower SyncGroup: {r:?}");
            assert_eq!(r.assignment, assignments[i + 1]);
        }
    }
    members[0].generation
}

/// Polls DescribeGroups until `pred` holds or `timeout` passes; returns the last description.
pub fn wait_describe(
    conn: &mut Conn,
    group: &str,
    timeout: Duration,
    pred: impl Fn(&DescribedGroup) -> bool,
) -> DescribedGroup {
    let deadline = Instant::now() + timeout;
    loop {
        let g = conn.describe(group);
        if pred(&g) || Instant::now() >= deadline {
            return g;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
