//! Broker configuration under Kafka's own key names (`server.properties`).
//!
//! Every key a Kafka user might set is either applied, or explicitly known-and-ignored (for
//! example settings of features a single node does not have), or reported as unknown: nothing
//! is silently dropped.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use corelog_engine::batch::TimestampType;
use corelog_engine::log::{CleanupPolicy, LogConfig};

/// Kafka's default `message.max.bytes` (1 MiB plus record-batch overhead).
pub const DEFAULT_MESSAGE_MAX_BYTES: u32 = 1_048_588;
/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_SOCKET_REQUEST_MAX_BYTES: u32 = 104_857_600;
/// Connections accepted at once per broker (`max.connections`); beyond it new ones are closed.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// Where `GET /metrics` (Prometheus text format) is served unless `corelog.metrics.listener`
/// says otherwise.
pub const DEFAULT_METRICS_LISTENER: &str = "127.0.0.1:9644";

/// Keys that Kafka accepts but that mean nothing on a single corelog node; they are accepted
/// and listed as ignored so the user knows.
const IGNORED_KEYS: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "default.replication.factor",
    "log.cleaner.threads",
    "unclean.leader.election.enable",
];

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or `broker.id`).
    pub node_id: i32,
    /// `listeners`: where the broker accepts connections.
    pub listener: SocketAddr,
    /// `advertised.listeners`: the host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// `log.dirs` (or `log.dir`): the data directory.
    pub data_dir: PathBuf,
    /// `num.partitions`: partitions of an auto-created topic or a CreateTopics with -1.
    pub num_partitions: u32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `message.max.bytes`: the largest record batch accepted.
    pub message_max_bytes: u32,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub socket_request_max_bytes: u32,
    /// `min.insync.replicas` default for topics.
    pub min_insync_replicas: u32,
    /// `max.connections`.
    pub max_connections: u32,
    /// `corelog.shards`: shards (one thread per core); 0 = every available core.
    pub shards: usize,
    /// `corelog.acks.all.durable`: acks=all answers only once the batch is fdatasynced
    /// (default true: stronger than Kafka, whose acks=all means "in every ISR's page cache").
    pub acks_all_durable: bool,
    /// `corelog.fetch.zero.copy`: fetches send record bytes with splice straight from the segment
    /// files (default true); false reads them into memory and sends them as bytes (a baseline for
    /// benchmarks comparing CPU per GB).
    pub fetch_zero_copy: bool,
    /// `corelog.metrics.listener`: `HOST:PORT` of the Prometheus `/metrics` endpoint; `None`
    /// (set to the empty string) disables it.
    pub metrics_listener: Option<SocketAddr>,
    /// Topic-level defaults (`log.segment.bytes`, `log.roll.ms`, `log.retention.ms`, ...).
    pub log: LogConfig,
    /// `log.retention.check.interval.ms`: how often each shard rolls aged segments and applies
    /// retention.
    pub retention_check_interval_ms: u64,
    /// The log cleaner's settings (`log.cleaner.*`).
    pub cleaner: CleanerConfig,
    /// The group coordinator's settings (`group.*`, `offsets.*`).
    pub groups: GroupConfig,
    /// The transaction coordinator's settings (`transaction.*`, `transactional.id.*`).
    pub txn: TxnConfig,
    /// Keys accepted but not applicable on one node.
    pub ignored: Vec<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listener: "0.0.0.0:9092".parse().expect("valid address"),
            advertised_host: "127.0.0.1".to_string(),
            advertised_port: 9092,
            data_dir: PathBuf::from("corelog-data"),
            num_partitions: 1,
            auto_create_topics: true,
            message_max_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            socket_request_max_bytes: DEFAULT_SOCKET_REQUEST_MAX_BYTES,
            min_insync_replicas: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shards: 0,
            acks_all_durable: true,
            fetch_zero_copy: true,
            metrics_listener: Some(DEFAULT_METRICS_LISTENER.parse().expect("valid address")),
            log: LogConfig::default(),
            retention_check_interval_ms: 5 * 60 * 1000,
            cleaner: CleanerConfig::default(),
            groups: GroupConfig::default(),
            txn: TxnConfig::default(),
            ignored: Vec::new(),
        }
    }
}

/// Parses `.properties` text: `key=value` (or `key: value`) lines, `#`/`!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let (key, value) = line.split_at(split);
        let value = value.get(1..).unwrap_or("").trim();
        out.insert(key.trim().to_string(), value.to_string());
    }
    out
}

/// `PLAINTEXT://host:port` (the first listener of a comma-separated list) → (host, port).
fn parse_listener(value: &str) -> Result<(String, u16), String> {
    let first = value.split(',').next().unwrap_or("").trim();
    let rest = match first.split_once("://") {
        Some((protocol, rest)) if protocol.eq_ignore_ascii_case("PLAINTEXT") => rest,
        Some((protocol, _)) => {
            return Err(format!(
                "listener protocol {protocol} is not supported (PLAINTEXT only)"
            ))
        }
        None => first,
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("listener {first:?} has no port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("listener {first:?} has a bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a valid number"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key}: {value:?} is not true or false")),
    }
}

/// Parses `message.timestamp.type` / `log.message.timestamp.type`.
pub fn parse_timestamp_type(value: &str) -> Result<TimestampType, String> {
    match value {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err(format!(
            "message.timestamp.type: {value:?} is not CreateTime or LogAppendTime"
        )),
    }
}

/// `corelog.metrics.listener`: `HOST:PORT` (an `http://` prefix is allowed), or empty to disable.
fn parse_metrics_listener(value: &str) -> Result<Option<SocketAddr>, String> {
    let value = value.trim();
    let value = value.strip_prefix("http://").unwrap_or(value);
    if value.is_empty() {
        return Ok(None);
    }
    value
        .to_socket_addrs()
        .map_err(|e| format!("corelog.metrics.listener: {value:?}: {e}"))?
        .next()
        .map(Some)
        .ok_or_else(|| format!("corelog.metrics.listener: {value:?} does not resolve"))
}

/// A retention setting in `unit_ms` units (or bytes, with unit 1): Kafka's -1 (any negative)
/// means unlimited, `u64::MAX` here.
fn scaled_unlimited(key: &str, value: &str, unit: u64) -> Result<u64, String> {
    let v: i64 = parse_num(key, value)?;
    if v < 0 || v == i64::MAX {
        return Ok(u64::MAX);
    }
    Ok((v as u64).saturating_mul(unit))
}

/// The log cleaner's settings, under Kafka's broker keys. corelog runs one cleaner per shard
/// (each cleans the compacted partitions its shard owns), so `log.cleaner.threads` is ignored.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: how long a cleaner sleeps when no log needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`: read plus write bytes per second, per cleaner.
    pub io_max_bytes_per_second: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset map, per cleaner.
    pub dedupe_buffer_bytes: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            backoff_ms: 15_000,
            io_max_bytes_per_second: u64::MAX,
            dedupe_buffer_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Kafka's `Long.MAX_VALUE` meaning "never" maps to `u64::MAX`.
fn parse_never(key: &str, value: &str) -> Result<u64, String> {
    let v: i64 = parse_num(key, value)?;
    if v < 0 {
        return Err(format!("{key}: must not be negative"));
    }
    Ok(if v == i64::MAX { u64::MAX } else { v as u64 })
}

impl BrokerConfig {
    /// Builds a configuration from properties. Returns the unknown keys beside it; an invalid
    /// value of a known key is an error.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(Self, Vec<String>), String> {
        let mut c = BrokerConfig::default();
        let mut unknown = Vec::new();
        let mut advertised = None;
        for (key, value) in props {
            match key.as_str() {
                "node.id" | "broker.id" => c.node_id = parse_num(key, value)?,
                "listeners" => {
                    let (host, port) = parse_listener(value)?;
                    let host = if host.is_empty() {
                        "0.0.0.0".to_string()
                    } else {
                        host
                    };
                    c.listener = (host.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| format!("listeners: {e}"))?
                        .next()
                        .ok_or("listeners: host does not resolve")?;
                }
                "advertised.listeners" => advertised = Some(parse_listener(value)?),
                "log.dirs" | "log.dir" => {
                    let first = value.split(',').next().unwrap_or("").trim();
                    if first.is_empty() {
                        return Err(format!("{key}: empty"));
                    }
                    c.data_dir = PathBuf::from(first);
                }
                "num.partitions" => c.num_partitions = parse_num(key, value)?,
                "auto.create.topics.enable" => c.auto_create_topics = parse_bool(key, value)?,
                "message.max.bytes" => c.message_max_bytes = parse_num(key, value)?,
                "socket.request.max.bytes" => c.socket_request_max_bytes = parse_num(key, value)?,
                "min.insync.replicas" => c.min_insync_replicas = parse_num(key, value)?,
                "max.connections" => c.max_connections = parse_num(key, value)?,
                "log.segment.bytes" => c.log.segment_bytes = parse_num(key, value)?,
                "log.roll.ms" => c.log.segment_ms = parse_num(key, value)?,
                "log.roll.hours" => c.log.segment_ms = parse_num::<u64>(key, value)? * 3_600_000,
                "log.index.interval.bytes" => c.log.index_interval_bytes = parse_num(key, value)?,
                "log.message.timestamp.type" => c.log.timestamp_type = parse_timestamp_type(value)?,
                "log.flush.interval.messages" => c.log.flush_messages = parse_never(key, value)?,
                "log.flush.interval.ms" => c.log.flush_ms = parse_never(key, value)?,
                // Keys are visited in sorted order, so hours < minutes < ms: the most precise
                // one given wins, as in Kafka.
                "log.retention.hours" => {
                    c.log.retention_ms = scaled_unlimited(key, value, 3_600_000)?
                }
                "log.retention.minutes" => {
                    c.log.retention_ms = scaled_unlimited(key, value, 60_000)?
                }
                "log.retention.ms" => c.log.retention_ms = scaled_unlimited(key, value, 1)?,
                "log.retention.bytes" => c.log.retention_bytes = scaled_unlimited(key, value, 1)?,
                "log.retention.check.interval.ms" => {
                    c.retention_check_interval_ms = parse_num::<u64>(key, value)?.max(1)
                }
                "log.cleanup.policy" => {
                    c.log.cleanup_policy = CleanupPolicy::parse(value)
                        .ok_or_else(|| format!("{key}: {value:?} is not delete, compact or both"))?
                }
                "log.cleaner.delete.retention.ms" => {
                    c.log.delete_retention_ms = parse_never(key, value)?
                }
                "log.cleaner.min.compaction.lag.ms" => {
                    c.log.min_compaction_lag_ms = parse_never(key, value)?
                }
                "log.cleaner.max.compaction.lag.ms" => {
                    c.log.max_compaction_lag_ms = parse_never(key, value)?
                }
                "log.cleaner.min.cleanable.ratio" => {
                    let r: f64 = parse_num(key, value)?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(format!("{key}: must be between 0 and 1"));
                    }
                    c.log.min_cleanable_dirty_ratio = r;
                }
                "log.cleaner.enable" => c.cleaner.enable = parse_bool(key, value)?,
                "log.cleaner.backoff.ms" => c.cleaner.backoff_ms = parse_num(key, value)?,
                "log.cleaner.io.max.bytes.per.second" => {
                    let v: f64 = parse_num(key, value)?;
                    c.cleaner.io_max_bytes_per_second = if v >= u64::MAX as f64 {
                        u64::MAX
                    } else {
                        v.max(1.0) as u64
                    };
                }
                "log.cleaner.dedupe.buffer.size" => {
                    c.cleaner.dedupe_buffer_bytes = parse_num(key, value)?
                }
                "corelog.shards" => c.shards = parse_num(key, value)?,
                "corelog.acks.all.durable" => c.acks_all_durable = parse_bool(key, value)?,
                "corelog.fetch.zero.copy" => c.fetch_zero_copy = parse_bool(key, value)?,
                "corelog.metrics.listener" => c.metrics_listener = parse_metrics_listener(value)?,
                "group.initial.rebalance.delay.ms" => {
                    c.groups.initial_rebalance_delay_ms = parse_num(key, value)?
                }
                "group.min.session.timeout.ms" => {
                    c.groups.min_session_timeout_ms = parse_num(key, value)?
                }
                "group.max.session.timeout.ms" => {
                    c.groups.max_session_timeout_ms = parse_num(key, value)?
                }
                "group.max.size" => c.groups.max_size = parse_num(key, value)?,
                "offsets.topic.num.partitions" => {
                    c.groups.offsets_topic_partitions = parse_num(key, value)?
                }
                "offsets.topic.segment.bytes" => {
                    c.groups.offsets_topic_segment_bytes = parse_num(key, value)?
                }
                "offsets.retention.minutes" => {
                    c.groups.offsets_retention_ms = parse_num::<u64>(key, value)? * 60_000
                }
                "offsets.retention.check.interval.ms" => {
                    c.groups.offsets_retention_check_interval_ms = parse_num(key, value)?
                }
                "offset.metadata.max.bytes" => {
                    c.groups.offset_metadata_max_bytes = parse_num(key, value)?
                }
                "transaction.max.timeout.ms" => c.txn.max_timeout_ms = parse_num(key, value)?,
                "transaction.state.log.num.partitions" => {
                    c.txn.state_log_partitions = parse_num(key, value)?
                }
                "transaction.state.log.segment.bytes" => {
                    c.txn.state_log_segment_bytes = parse_num(key, value)?
                }
                "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                    c.txn.abort_timed_out_interval_ms = parse_num(key, value)?
                }
                "transactional.id.expiration.ms" => c.txn.id_expiration_ms = parse_num(key, value)?,
                "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                    c.txn.remove_expired_interval_ms = parse_num(key, value)?
                }
                k if IGNORED_KEYS.contains(&k) => c.ignored.push(k.to_string()),
                _ => unknown.push(key.clone()),
            }
        }
        let (host, port) = match advertised {
            Some(a) => a,
            None => {
                let ip = c.listener.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    ip.to_string()
                };
                (host, c.listener.port())
            }
        };
        c.advertised_host = host;
        c.advertised_port = port;
        if !(corelog_engine::log::MIN_SEGMENT_BYTES..=corelog_engine::log::MAX_SEGMENT_BYTES)
            .contains(&c.log.segment_bytes)
        {
            return Err("log.segment.bytes: out of range".to_string());
        }
        c.groups.validate()?;
        c.txn.validate()?;
        Ok((c, unknown))
    }
}

/// The transaction coordinator's settings, under Kafka's names and with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for
    /// (InitProducerId with more is INVALID_TRANSACTION_TIMEOUT).
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` when it is
    /// created.
    pub state_log_partitions: u32,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of `__transaction_state`.
    pub state_log_segment_bytes: u32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often each coordinator
    /// shard looks for transactions open longer than their timeout, and aborts them.
    pub abort_timed_out_interval_ms: u64,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction for this long
    /// is forgotten.
    pub id_expiration_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are looked for.
    pub remove_expired_interval_ms: u64,
}

/// Most partitions `__transaction_state` may be created with.
const MAX_TXN_STATE_PARTITIONS: u32 = 1000;

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_log_partitions: 50,
            state_log_segment_bytes: 100 * 1024 * 1024,
            abort_timed_out_interval_ms: 10_000,
            id_expiration_ms: 7 * 24 * 60 * 60_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

impl TxnConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_timeout_ms < 1 {
            return Err("transaction.max.timeout.ms: must be positive".into());
        }
        if !(1..=MAX_TXN_STATE_PARTITIONS).contains(&self.state_log_partitions) {
            return Err(format!(
                "transaction.state.log.num.partitions: must be 1..={MAX_TXN_STATE_PARTITIONS}"
            ));
        }
        if !(corelog_engine::log::MIN_SEGMENT_BYTES..=corelog_engine::log::MAX_SEGMENT_BYTES)
            .contains(&self.state_log_segment_bytes)
        {
            return Err("transaction.state.log.segment.bytes: out of range".into());
        }
        if self.abort_timed_out_interval_ms == 0 || self.remove_expired_interval_ms == 0 {
            return Err("transaction cleanup intervals must be positive".into());
        }
        Ok(())
    }
}

/// The group coordinator's settings, under Kafka's names and with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session a member may ask for.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub max_size: u32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_partitions: u32,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` when it is
    /// created (smaller than other topics' so that its compaction, and the replay at start-up,
    /// stay quick).
    pub offsets_topic_segment_bytes: u32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: u64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`: the longest commit metadata string.
    pub offset_metadata_max_bytes: usize,
}

/// Longest commit metadata the records can hold (a Kafka string has an i16 length).
const MAX_OFFSET_METADATA_BYTES: usize = i16::MAX as usize;
/// Most partitions `__consumer_offsets` may be created with.
const MAX_OFFSETS_TOPIC_PARTITIONS: u32 = 1000;

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as u32,
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_retention_ms: 7 * 24 * 60 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

impl GroupConfig {
    fn validate(&self) -> Result<(), String> {
        if self.offset_metadata_max_bytes > MAX_OFFSET_METADATA_BYTES {
            return Err(format!(
                "offset.metadata.max.bytes: at most {MAX_OFFSET_METADATA_BYTES}"
            ));
        }
        if !(1..=MAX_OFFSETS_TOPIC_PARTITIONS).contains(&self.offsets_topic_partitions) {
            return Err(format!(
                "offsets.topic.num.partitions: must be 1..={MAX_OFFSETS_TOPIC_PARTITIONS}"
            ));
        }
        if !(corelog_engine::log::MIN_SEGMENT_BYTES..=corelog_engine::log::MAX_SEGMENT_BYTES)
            .contains(&self.offsets_topic_segment_bytes)
        {
            return Err("offsets.topic.segment.bytes: out of range".into());
        }
        if self.min_session_timeout_ms < 0
            || self.min_session_timeout_ms > self.max_session_timeout_ms
        {
            return Err(
                "group.min.session.timeout.ms: must be 0..=group.max.session.timeout.ms".into(),
            );
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return Err("offsets.retention.check.interval.ms: must be positive".into());
        }
        Ok(())
    }

    pub fn timers(&self) -> crate::groups::group::Timers {
        crate::groups::group::Timers {
            initial_rebalance_delay: std::time::Duration::from_millis(
                self.initial_rebalance_delay_ms,
            ),
            max_size: self.max_size as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_keys_are_applied_and_unknown_keys_reported() {
        let props = parse_properties(
            "# comment\nlisteners=PLAINTEXT://127.0.0.1:9192\nlog.dirs=/tmp/x,/tmp/y\nnum.partitions = 3\n\
             auto.create.topics.enable=false\nlog.segment.bytes=1048576\nprocess.roles=broker,controller\n\
             no.such.key=1\nlog.message.timestamp.type=LogAppendTime\ncorelog.fetch.zero.copy=false\n",
        );
        let (c, unknown) = BrokerConfig::from_properties(&props).unwrap();
        assert_eq!(c.listener, "127.0.0.1:9192".parse().unwrap());
        assert_eq!(
            (c.advertised_host.as_str(), c.advertised_port),
            ("127.0.0.1", 9192)
        );
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.num_partitions, 3);
        assert!(!c.auto_create_topics);
        assert_eq!(c.log.segment_bytes, 1 << 20);
        assert_eq!(c.log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.ignored, vec!["process.roles"]);
        assert!(!c.fetch_zero_copy);
        assert!(BrokerConfig::default().fetch_zero_copy);
        assert_eq!(unknown, vec!["no.such.key"]);
    }

    #[test]
    fn offsets_topic_segment_bytes_has_kafkas_default_and_is_checked() {
        assert_eq!(
            BrokerConfig::default().groups.offsets_topic_segment_bytes,
            104_857_600
        );
        let set = |v: &str| {
            let props = parse_properties(&format!("offsets.topic.segment.bytes={v}"));
            BrokerConfig::from_properties(&props).map(|(c, _)| c.groups.offsets_topic_segment_bytes)
        };
        assert_eq!(set("1048576").unwrap(), 1 << 20);
        assert!(set("3").is_err(), "below the smallest segment");
        assert!(set("x").is_err());
    }

    #[test]
    fn metrics_listener_defaults_and_can_be_disabled() {
        assert_eq!(
            BrokerConfig::default().metrics_listener,
            Some("127.0.0.1:9644".parse().unwrap())
        );
        let set = |v: &str| {
            let props = parse_properties(&format!("corelog.metrics.listener={v}"));
            BrokerConfig::from_properties(&props).map(|(c, _)| c.metrics_listener)
        };
        assert_eq!(
            set("0.0.0.0:9100").unwrap(),
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(
            set("http://127.0.0.1:9200").unwrap(),
            Some("127.0.0.1:9200".parse().unwrap())
        );
        assert_eq!(set("").unwrap(), None);
        assert!(set("nonsense").is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "num.partitions=x",
            "listeners=SSL://a:1",
            "log.segment.bytes=3",
            "auto.create.topics.enable=yes",
        ] {
            assert!(
                BrokerConfig::from_properties(&parse_properties(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
