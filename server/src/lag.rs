//! `corelog lag`: consumer-group lag, per group, topic and partition, with the columns and the
//! numbers of Kafka's `kafka-consumer-groups --describe`.
//!
//! A small blocking Kafka client on `std::net::TcpStream` (the broker's io_uring runtime is not
//! needed for a one-shot command): ApiVersions to pick versions both sides speak, ListGroups,
//! DescribeGroups (members and their assignments), OffsetFetch (committed offsets) and
//! ListOffsets (log-end offsets). corelog is a single node, so every request goes to the
//! bootstrap broker: it is the group coordinator and the leader of every partition.
//!
//! `--read-committed` measures lag as a read_committed consumer sees it: to the last stable
//! offset (ListOffsets LATEST with isolation level 1), not the high watermark. Records of an
//! open transaction are not consumable yet, so they are not lag; the end column is then headed
//! `LAST-STABLE-OFFSET`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, ConsumerProtocolAssignment,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetFetchRequest, OffsetFetchResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

/// The largest response frame accepted: a size prefix beyond it is a broken or hostile peer,
/// and nothing is allocated for it.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How long connecting to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may wait for its response.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to keep retrying while the coordinator says it is loading or not yet available
/// (right after a broker start), as Kafka's own tool does.
const COORDINATOR_RETRY_FOR: Duration = Duration::from_secs(10);
/// Pause between those retries.
const COORDINATOR_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The highest ConsumerProtocolAssignment version this client decodes; newer versions only add
/// fields at the end (Kafka's compatibility rule), so they are read as this one.
const MAX_ASSIGNMENT_VERSION: i16 = 3;
/// The client id this tool sends.
const CLIENT_ID: &str = "corelog-lag";

/// Kafka error codes this tool interprets.
mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
}

/// ListOffsets timestamp asking for the log-end offset (high watermark).
const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets isolation levels: the high watermark, or the last stable offset.
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

/// Which end of a partition lag is measured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The high watermark (Kafka's `kafka-consumer-groups`).
    ReadUncommitted,
    /// The last stable offset: what a read_committed consumer can reach.
    ReadCommitted,
}
/// Offset a broker answers for "no committed offset".
const NO_OFFSET: i64 = -1;

/// Why `corelog lag` failed; printed as one line.
#[derive(Debug)]
pub enum LagError {
    Connect(String),
    Io(String),
    Protocol(String),
    NoSuchGroup(String),
    Broker(String),
}

impl fmt::Display for LagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LagError::Connect(m) => write!(f, "cannot reach the broker: {m}"),
            LagError::Io(m) => write!(f, "connection to the broker failed: {m}"),
            LagError::Protocol(m) => write!(f, "unexpected answer from the broker: {m}"),
            LagError::NoSuchGroup(g) => write!(f, "consumer group '{g}' does not exist"),
            LagError::Broker(m) => write!(f, "{m}"),
        }
    }
}

type Result<T> = std::result::Result<T, LagError>;

/// One output line: Kafka's describe columns. `None` prints as `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub group: String,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
    pub consumer_id: Option<String>,
    pub host: Option<String>,
    pub client_id: Option<String>,
}

/// A member of a group as DescribeGroups reports it, with its decoded assignment.
#[derive(Debug, Clone)]
struct Member {
    consumer_id: String,
    host: String,
    client_id: String,
    assigned: Vec<(String, i32)>,
}

/// A blocking connection speaking the Kafka protocol.
struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
    /// Per API key: the version range the broker advertised.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects to the first reachable address of a comma-separated bootstrap list.
    fn connect(bootstrap: &str) -> Result<Client> {
        let mut errors = Vec::new();
        for server in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let addrs: Vec<SocketAddr> = match server.to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    errors.push(format!("{server}: {e}"));
                    continue;
                }
            };
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(stream) => {
                        let io = |e: std::io::Error| LagError::Io(e.to_string());
                        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                        stream.set_nodelay(true).map_err(io)?;
                        let mut client = Client {
                            stream,
                            next_correlation_id: 1,
                            versions: BTreeMap::new(),
                        };
                        client.negotiate()?;
                        return Ok(client);
                    }
                    Err(e) => errors.push(format!("{addr}: {e}")),
                }
            }
        }
        if errors.is_empty() {
            errors.push(format!("no address in {bootstrap:?}"));
        }
        Err(LagError::Connect(errors.join("; ")))
    }

    /// ApiVersions (v3; a broker that only knows older versions answers in v0 layout with
    /// UNSUPPORTED_VERSION, then v0 is asked).
    fn negotiate(&mut self) -> Result<()> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str(CLIENT_ID);
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut response: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 3, &request)?;
        if response.error_code != code::NONE {
            response = self.call(ApiKey::ApiVersions, 0, &request)?;
        }
        if response.error_code != code::NONE {
            return Err(LagError::Protocol(format!(
                "ApiVersions error {}",
                response.error_code
            )));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `key` that the broker and this client (`M::VERSIONS`) both speak.
    fn version<M: Message>(&self, key: ApiKey) -> Result<i16> {
        let (broker_min, broker_max) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| LagError::Broker(format!("the broker does not support {key:?}")))?;
        let max = broker_max.min(M::VERSIONS.max);
        let min = broker_min.max(M::VERSIONS.min);
        if min > max {
            return Err(LagError::Broker(format!(
                "no common version of {key:?}: the broker speaks v{broker_min}-v{broker_max}"
            )));
        }
        Ok(max)
    }

    /// One request/response exchange.
    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(|e| LagError::Protocol(format!("encoding a {key:?} header: {e}")))?;
        request
            .encode(&mut body, version)
            .map_err(|e| LagError::Protocol(format!("encoding {key:?} v{version}: {e}")))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| LagError::Io(format!("sending {key:?}: {e}")))?;
        let mut response = read_frame(&mut self.stream)
            .map_err(|e| LagError::Io(format!("waiting for the {key:?} answer: {e}")))?;
        // ApiVersions always answers with response header v0 (KIP-511).
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut response, header_version)
            .map_err(|e| LagError::Protocol(format!("{key:?} response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(LagError::Protocol(format!(
                "{key:?}: correlation id {} answered to {correlation_id}",
                header.correlation_id
            )));
        }
        Resp::decode(&mut response, version)
            .map_err(|e| LagError::Protocol(format!("{key:?} v{version}: {e}")))
    }

    /// Every group id the broker knows (ListGroups), sorted.
    fn list_groups(&mut self) -> Result<Vec<String>> {
        let version = self.version::<ListGroupsRequest>(ApiKey::ListGroups)?;
        let response: ListGroupsResponse = retry_coordinator(|| {
            let r: ListGroupsResponse =
                self.call(ApiKey::ListGroups, version, &ListGroupsRequest::default())?;
            Ok((r.error_code, r))
        })?;
        if response.error_code != code::NONE {
            return Err(LagError::Broker(format!(
                "ListGroups failed with error {}",
                response.error_code
            )));
        }
        let mut groups: Vec<String> = response
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// The members of `group` with their assignments; `NoSuchGroup` if it does not exist.
    fn describe_group(&mut self, group: &str) -> Result<(String, Vec<Member>)> {
        let version = self.version::<DescribeGroupsRequest>(ApiKey::DescribeGroups)?;
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![GroupId(StrBytes::from_string(group.to_string()))];
        let described = retry_coordinator(|| {
            let r: DescribeGroupsResponse = self.call(ApiKey::DescribeGroups, version, &request)?;
            let g = r.groups.into_iter().next().ok_or_else(|| {
                LagError::Protocol("DescribeGroups answered no group".to_string())
            })?;
            Ok((g.error_code, g))
        })?;
        // Before v6 a missing group is described as Dead with no error (KIP-1043 added the code).
        if described.error_code == code::GROUP_ID_NOT_FOUND
            || (described.error_code == code::NONE && described.group_state.as_str() == "Dead")
        {
            return Err(LagError::NoSuchGroup(group.to_string()));
        }
        if described.error_code != code::NONE {
            return Err(LagError::Broker(format!(
                "DescribeGroups of '{group}' failed with error {}",
                described.error_code
            )));
        }
        let consumer_protocol = described.protocol_type.as_str() == "consumer";
        let mut members = Vec::new();
        for m in &described.members {
            let assigned = if consumer_protocol {
                decode_assignment(&m.member_assignment).map_err(|e| {
                    LagError::Protocol(format!(
                        "assignment of member {} of '{group}': {e}",
                        m.member_id.as_str()
                    ))
                })?
            } else {
                Vec::new()
            };
            members.push(Member {
                consumer_id: m.member_id.to_string(),
                host: m.client_host.to_string(),
                client_id: m.client_id.to_string(),
                assigned,
            });
        }
        Ok((described.group_state.to_string(), members))
    }

    /// The committed offsets of every partition of `group` (OffsetFetch with all topics).
    fn committed_offsets(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let version = self.version::<OffsetFetchRequest>(ApiKey::OffsetFetch)?;
        let group_id = GroupId(StrBytes::from_string(group.to_string()));
        let mut request = OffsetFetchRequest::default();
        // v8 batched groups into a list; before it the request names one group. `topics` null
        // (v2+) means every topic the group has offsets for.
        if version >= 8 {
            let mut g = OffsetFetchRequestGroup::default();
            g.group_id = group_id;
            g.topics = None;
            request.groups = vec![g];
        } else {
            request.group_id = group_id;
            request.topics = None;
        }
        let response = retry_coordinator(|| {
            let r: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, version, &request)?;
            let code = if version >= 8 {
                r.groups.first().map(|g| g.error_code).unwrap_or(code::NONE)
            } else {
                r.error_code
            };
            Ok((code, r))
        })?;
        let mut out = BTreeMap::new();
        if version >= 8 {
            let g =
                response.groups.into_iter().next().ok_or_else(|| {
                    LagError::Protocol("OffsetFetch answered no group".to_string())
                })?;
            check_code("OffsetFetch", group, g.error_code)?;
            for t in g.topics {
                for p in t.partitions {
                    check_code("OffsetFetch", group, p.error_code)?;
                    if p.committed_offset != NO_OFFSET {
                        out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                    }
                }
            }
        } else {
            check_code("OffsetFetch", group, response.error_code)?;
            for t in response.topics {
                for p in t.partitions {
                    check_code("OffsetFetch", group, p.error_code)?;
                    if p.committed_offset != NO_OFFSET {
                        out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Log-end offsets (ListOffsets LATEST: read_uncommitted as Kafka's tool asks, or the last
    /// stable offsets for read_committed) of `partitions`; a partition the broker reports an
    /// error for is left out.
    fn log_end_offsets(
        &mut self,
        partitions: &BTreeSet<(String, i32)>,
        isolation: Isolation,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let version = self.version::<ListOffsetsRequest>(ApiKey::ListOffsets)?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.isolation_level = match isolation {
            Isolation::ReadUncommitted => READ_UNCOMMITTED,
            Isolation::ReadCommitted => READ_COMMITTED,
        };
        request.timeout_ms = IO_TIMEOUT.as_millis() as i32;
        request.topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut topic = ListOffsetsTopic::default();
                topic.name = TopicName(StrBytes::from_string(t.to_string()));
                topic.partitions = ps
                    .into_iter()
                    .map(|p| {
                        let mut lp = ListOffsetsPartition::default();
                        lp.partition_index = p;
                        lp.current_leader_epoch = -1;
                        lp.timestamp = LATEST_TIMESTAMP;
                        lp
                    })
                    .collect();
                topic
            })
            .collect();
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, version, &request)?;
        let mut out = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                if p.error_code == code::NONE && p.offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }
}

fn check_code(api: &str, group: &str, code: i16) -> Result<()> {
    if code == code::NONE {
        Ok(())
    } else if code == code::GROUP_ID_NOT_FOUND {
        Err(LagError::NoSuchGroup(group.to_string()))
    } else {
        Err(LagError::Broker(format!(
            "{api} of '{group}' failed with error {code}"
        )))
    }
}

/// Runs `f` until its error code is not a transient coordinator error, for at most
/// [`COORDINATOR_RETRY_FOR`]; returns the last answer.
fn retry_coordinator<T>(mut f: impl FnMut() -> Result<(i16, T)>) -> Result<T> {
    let deadline = Instant::now() + COORDINATOR_RETRY_FOR;
    loop {
        let (code, answer) = f()?;
        let transient = matches!(
            code,
            code::COORDINATOR_LOAD_IN_PROGRESS | code::COORDINATOR_NOT_AVAILABLE
        );
        if !transient || Instant::now() >= deadline {
            return Ok(answer);
        }
        std::thread::sleep(COORDINATOR_RETRY_PAUSE);
    }
}

/// Reads one size-prefixed frame, refusing sizes outside `4..=MAX_RESPONSE_BYTES`.
fn read_frame(stream: &mut impl Read) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > MAX_RESPONSE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("response frame of {size} bytes (limit {MAX_RESPONSE_BYTES})"),
        ));
    }
    let mut buf = vec![0u8; size as usize];
    stream.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Decodes a consumer-protocol assignment (`version: i16` then the versioned body) into
/// `(topic, partition)` pairs. Empty bytes: no assignment yet (a rebalance in progress).
fn decode_assignment(bytes: &Bytes) -> std::result::Result<Vec<(String, i32)>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err("shorter than its version field".to_string());
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(format!("version {version}"));
    }
    let assignment =
        ConsumerProtocolAssignment::decode(&mut buf, version.min(MAX_ASSIGNMENT_VERSION))
            .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for tp in assignment.assigned_partitions {
        for p in tp.partitions {
            out.push((tp.topic.to_string(), p));
        }
    }
    Ok(out)
}

/// The rows of one group: a row per assigned partition (with its member), a row per member
/// without partitions, and a row per partition with a committed offset but no member.
fn group_rows(
    group: &str,
    members: &[Member],
    committed: &BTreeMap<(String, i32), i64>,
    log_end: &BTreeMap<(String, i32), i64>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut assigned = BTreeSet::new();
    let row = |tp: Option<&(String, i32)>, m: Option<&Member>| {
        let current = tp.and_then(|tp| committed.get(tp).copied());
        let end = tp.and_then(|tp| log_end.get(tp).copied());
        Row {
            group: group.to_string(),
            topic: tp.map(|tp| tp.0.clone()),
            partition: tp.map(|tp| tp.1),
            current_offset: current,
            log_end_offset: end,
            lag: match (current, end) {
                // A committed offset past the end (the log was truncated) is no negative lag.
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            },
            consumer_id: m.map(|m| m.consumer_id.clone()),
            host: m.map(|m| m.host.clone()),
            client_id: m.map(|m| m.client_id.clone()),
        }
    };
    for m in members {
        if m.assigned.is_empty() {
            rows.push(row(None, Some(m)));
        }
        for tp in &m.assigned {
            assigned.insert(tp.clone());
            rows.push(row(Some(tp), Some(m)));
        }
    }
    for tp in committed.keys() {
        if !assigned.contains(tp) {
            rows.push(row(Some(tp), None));
        }
    }
    rows.sort_by(|a, b| {
        // Partition rows by topic and partition; member rows without partitions last.
        (a.topic.is_none(), &a.topic, a.partition, &a.consumer_id).cmp(&(
            b.topic.is_none(),
            &b.topic,
            b.partition,
            &b.consumer_id,
        ))
    });
    rows
}

/// Kafka's describe column headers, in order.
pub const HEADERS: [&str; 9] = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
];

/// The end column's header when lag is measured to the last stable offset.
pub const STABLE_END_HEADER: &str = "LAST-STABLE-OFFSET";

/// Renders rows as a table: a header line and aligned columns separated by at least one
/// space, `-` for an unknown value.
pub fn render(rows: &[Row], isolation: Isolation) -> String {
    fn cell<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
    }
    let mut headers = HEADERS.map(str::to_string);
    if isolation == Isolation::ReadCommitted {
        headers[4] = STABLE_END_HEADER.to_string();
    }
    let mut table: Vec<[String; 9]> = vec![headers];
    for r in rows {
        table.push([
            r.group.clone(),
            cell(&r.topic),
            cell(&r.partition),
            cell(&r.current_offset),
            cell(&r.log_end_offset),
            cell(&r.lag),
            cell(&r.consumer_id),
            cell(&r.host),
            cell(&r.client_id),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &table {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut text = String::new();
        for (i, c) in line.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(c);
            let pad = widths[i] - c.chars().count();
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The rows of `group` (or of every group), querying the broker at `bootstrap`, lag measured
/// to the end `isolation` names. Notes for the user (a group with no members) go to `notes`.
pub fn collect(
    bootstrap: &str,
    group: Option<&str>,
    isolation: Isolation,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let mut client = Client::connect(bootstrap)?;
    let groups = match group {
        Some(g) => vec![g.to_string()],
        None => client.list_groups()?,
    };
    let mut rows = Vec::new();
    for g in &groups {
        let (state, members) = match client.describe_group(g) {
            Ok(d) => d,
            // Listed a moment ago, gone now: nothing to report for it.
            Err(LagError::NoSuchGroup(_)) if group.is_none() => continue,
            Err(e) => return Err(e),
        };
        let committed = client.committed_offsets(g)?;
        let partitions: BTreeSet<(String, i32)> = members
            .iter()
            .flat_map(|m| m.assigned.iter().cloned())
            .chain(committed.keys().cloned())
            .collect();
        let log_end = client.log_end_offsets(&partitions, isolation)?;
        if members.is_empty() {
            notes.push(format!(
                "Consumer group '{g}' has no active members (state {state})."
            ));
        }
        rows.extend(group_rows(g, &members, &committed, &log_end));
    }
    Ok(rows)
}

/// `corelog lag`: prints the table on stdout; an error is one line on stderr and a non-zero
/// exit status.
pub fn run(bootstrap: &str, group: Option<&str>, read_committed: bool) -> std::process::ExitCode {
    let isolation = if read_committed {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let mut notes = Vec::new();
    match collect(bootstrap, group, isolation, &mut notes) {
        Ok(rows) => {
            for n in &notes {
                eprintln!("{n}");
            }
            print!("{}", render(&rows, isolation));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corelog lag: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;

    fn member(id: &str, assigned: &[(&str, i32)]) -> Member {
        Member {
            consumer_id: id.to_string(),
            host: "/127.0.0.1".to_string(),
            client_id: format!("client-{id}"),
            assigned: assigned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        }
    }

    #[test]
    fn rows_cover_assigned_committed_and_idle_members() {
        let members = [member("m2", &[("t", 1), ("t", 0)]), member("m1", &[])];
        let committed: BTreeMap<_, _> = [(("t".to_string(), 0), 7), (("u".to_string(), 3), 2)]
            .into_iter()
            .collect();
        let log_end: BTreeMap<_, _> = [
            (("t".to_string(), 0), 10),
            (("t".to_string(), 1), 4),
            (("u".to_string(), 3), 2),
        ]
        .into_iter()
        .collect();
        let rows = group_rows("g", &members, &committed, &log_end);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.clone(),
                    r.partition,
                    r.current_offset,
                    r.log_end_offset,
                    r.lag,
                    r.consumer_id.clone(),
                )
            })
            .collect();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            summary,
            vec![
                (s("t"), Some(0), Some(7), Some(10), Some(3), s("m2")),
                // Assigned, never committed: no current offset, no lag, like Kafka.
                (s("t"), Some(1), None, Some(4), None, s("m2")),
                // Committed, no member owns it.
                (s("u"), Some(3), Some(2), Some(2), Some(0), None),
                // A member without partitions.
                (None, None, None, None, None, s("m1")),
            ]
        );
    }

    #[test]
    fn table_is_aligned_with_dashes_for_unknowns() {
        let rows = vec![
            Row {
                group: "group-a".into(),
                topic: Some("orders".into()),
                partition: Some(0),
                current_offset: Some(5),
                log_end_offset: Some(12),
                lag: Some(7),
                consumer_id: Some("rdkafka-1".into()),
                host: Some("/127.0.0.1".into()),
                client_id: Some("rdkafka".into()),
            },
            Row {
                group: "group-a".into(),
                topic: Some("orders".into()),
                partition: Some(10),
                current_offset: None,
                log_end_offset: Some(3),
                lag: None,
                consumer_id: None,
                host: None,
                client_id: None,
            },
        ];
        let text = render(&rows, Isolation::ReadUncommitted);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // Measured to the last stable offset, the end column says so.
        let stable = render(&rows[..1], Isolation::ReadCommitted);
        assert_eq!(
            stable.lines().next().unwrap(),
            "GROUP   TOPIC  PARTITION CURRENT-OFFSET LAST-STABLE-OFFSET LAG CONSUMER-ID HOST       CLIENT-ID"
        );
        assert_eq!(
            stable.lines().nth(1).unwrap(),
            "group-a orders 0         5              12                 7   rdkafka-1   /127.0.0.1 rdkafka"
        );
        assert_eq!(
            lines[0],
            "GROUP   TOPIC  PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST       CLIENT-ID"
        );
        assert_eq!(
            lines[1],
            "group-a orders 0         5              12             7   rdkafka-1   /127.0.0.1 rdkafka"
        );
        assert_eq!(
            lines[2],
            "group-a orders 10        -              3              -   -           -          -"
        );
    }

    #[test]
    fn assignment_bytes_decode_at_any_version() {
        for version in [0i16, 1, 3, 4] {
            let mut tp = TopicPartition::default();
            tp.topic = TopicName(StrBytes::from_static_str("t"));
            tp.partitions = vec![2, 0];
            let mut a = ConsumerProtocolAssignment::default();
            a.assigned_partitions = vec![tp];
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&version.to_be_bytes());
            a.encode(&mut buf, version.min(MAX_ASSIGNMENT_VERSION))
                .unwrap();
            let got = decode_assignment(&buf.freeze()).unwrap();
            assert_eq!(got, vec![("t".to_string(), 2), ("t".to_string(), 0)]);
        }
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), vec![]);
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }

    #[test]
    fn oversized_and_negative_frames_are_refused_before_allocating() {
        let too_big = ((MAX_RESPONSE_BYTES + 1) as i32).to_be_bytes();
        assert!(read_frame(&mut &too_big[..]).is_err());
        assert!(read_frame(&mut &(-5i32).to_be_bytes()[..]).is_err());
        let mut ok = 4i32.to_be_bytes().to_vec();
        ok.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(&read_frame(&mut &ok[..]).unwrap()[..], &[1, 2, 3, 4]);
    }

    #[test]
    fn an_unreachable_broker_is_a_connect_error() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut notes = Vec::new();
        match collect(
            &format!("127.0.0.1:{port}"),
            None,
            Isolation::ReadCommitted,
            &mut notes,
        ) {
            Err(LagError::Connect(_)) => {}
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
