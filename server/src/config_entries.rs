//! What DescribeConfigs (and CreateTopics v5+) report: every topic config with its effective
//! value and where that value comes from, and the broker's own settings.
//!
//! Sources follow Kafka: a topic override is DYNAMIC_TOPIC_CONFIG; a value the broker's
//! `server.properties` changed is STATIC_BROKER_CONFIG (under the broker key, e.g.
//! `log.segment.bytes`); anything else is Kafka's DEFAULT_CONFIG. `min.insync.replicas` is
//! reported as DYNAMIC_DEFAULT_BROKER_CONFIG: a Kafka 4 KRaft controller records a cluster-wide
//! `min.insync.replicas` when it starts (KIP-966, eligible leader replicas), which is why
//! `kafka-topics --describe` shows `min.insync.replicas=1` for every topic there.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// Kafka's `ConfigSource` codes (DescribeConfigs `config_source`).
pub mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// Kafka's `ConfigType` codes (DescribeConfigs v3+ `config_type`).
pub mod kind {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
}

/// One reported config: value, source, and the synonyms it was resolved through (most
/// specific first, the entry itself included, as Kafka lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    pub kind: i8,
    pub synonyms: Vec<(String, Option<String>, i8)>,
    pub doc: &'static str,
}

/// A topic config: name, type, the broker key that sets its default, Kafka's default, doc.
struct TopicKey {
    name: &'static str,
    kind: i8,
    broker_key: Option<&'static str>,
    default: &'static str,
    doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
/// Kafka's default `log.cleaner.io.max.bytes.per.second` (`Double.MAX_VALUE`): no limit.
const CLEANER_IO_UNLIMITED: &str = "1.7976931348623157E308";

/// The topic configs of Kafka 4.x that a describe lists (sorted by name, as Kafka returns them).
const TOPIC_KEYS: &[TopicKey] = &[
    tk(
        "cleanup.policy",
        kind::LIST,
        Some("log.cleanup.policy"),
        "delete",
        "The retention policy to use on log segments: delete, compact or both.",
    ),
    tk(
        "compression.gzip.level",
        kind::INT,
        Some("compression.gzip.level"),
        "-1",
        "The gzip compression level used when compression.type is gzip.",
    ),
    tk(
        "compression.lz4.level",
        kind::INT,
        Some("compression.lz4.level"),
        "9",
        "The lz4 compression level used when compression.type is lz4.",
    ),
    tk(
        "compression.type",
        kind::STRING,
        Some("compression.type"),
        "producer",
        "The final compression type of the topic; producer keeps the producer's codec.",
    ),
    tk(
        "compression.zstd.level",
        kind::INT,
        Some("compression.zstd.level"),
        "3",
        "The zstd compression level used when compression.type is zstd.",
    ),
    tk(
        "delete.retention.ms",
        kind::LONG,
        Some("log.cleaner.delete.retention.ms"),
        "86400000",
        "How long delete tombstones are retained for compacted topics.",
    ),
    tk(
        "errors.deadletterqueue.group.enable",
        kind::BOOLEAN,
        None,
        "false",
        "Whether share groups may use a dead-letter queue topic for this topic.",
    ),
    tk(
        "file.delete.delay.ms",
        kind::LONG,
        Some("log.segment.delete.delay.ms"),
        "60000",
        "The time to wait before deleting a file from the filesystem.",
    ),
    tk(
        "flush.messages",
        kind::LONG,
        Some("log.flush.interval.messages"),
        LONG_MAX,
        "Force an fsync after this many messages.",
    ),
    tk(
        "flush.ms",
        kind::LONG,
        Some("log.flush.interval.ms"),
        LONG_MAX,
        "Force an fsync after this much time.",
    ),
    tk(
        "follower.replication.throttled.replicas",
        kind::LIST,
        None,
        "",
        "Replicas whose log replication is throttled on the follower side.",
    ),
    tk(
        "index.interval.bytes",
        kind::INT,
        Some("log.index.interval.bytes"),
        "4096",
        "How often an entry is added to the offset index.",
    ),
    tk(
        "leader.replication.throttled.replicas",
        kind::LIST,
        None,
        "",
        "Replicas whose log replication is throttled on the leader side.",
    ),
    tk(
        "local.retention.bytes",
        kind::LONG,
        Some("log.local.retention.bytes"),
        "-2",
        "Local log size to keep before deleting tiered segments.",
    ),
    tk(
        "local.retention.ms",
        kind::LONG,
        Some("log.local.retention.ms"),
        "-2",
        "Local log age to keep before deleting tiered segments.",
    ),
    tk(
        "max.compaction.lag.ms",
        kind::LONG,
        Some("log.cleaner.max.compaction.lag.ms"),
        LONG_MAX,
        "The longest a message stays ineligible for compaction.",
    ),
    tk(
        "max.decompressed.message.bytes",
        kind::INT,
        Some("max.decompressed.message.bytes"),
        "2147483639",
        "The largest decompressed record batch allowed.",
    ),
    tk(
        "max.message.bytes",
        kind::INT,
        Some("message.max.bytes"),
        "1048588",
        "The largest record batch size allowed.",
    ),
    tk(
        "message.timestamp.after.max.ms",
        kind::LONG,
        Some("log.message.timestamp.after.max.ms"),
        "3600000",
        "How far a message timestamp may be ahead of the broker's clock.",
    ),
    tk(
        "message.timestamp.before.max.ms",
        kind::LONG,
        Some("log.message.timestamp.before.max.ms"),
        LONG_MAX,
        "How far a message timestamp may be behind the broker's clock.",
    ),
    tk(
        "message.timestamp.type",
        kind::STRING,
        Some("log.message.timestamp.type"),
        "CreateTime",
        "CreateTime or LogAppendTime.",
    ),
    tk(
        "min.cleanable.dirty.ratio",
        kind::DOUBLE,
        Some("log.cleaner.min.cleanable.ratio"),
        "0.5",
        "The dirty ratio at which the log compactor starts.",
    ),
    tk(
        "min.compaction.lag.ms",
        kind::LONG,
        Some("log.cleaner.min.compaction.lag.ms"),
        "0",
        "The shortest a message stays uncompacted.",
    ),
    tk(
        "min.insync.replicas",
        kind::INT,
        Some("min.insync.replicas"),
        "1",
        "The fewest replicas that must acknowledge an acks=all write.",
    ),
    tk(
        "preallocate",
        kind::BOOLEAN,
        Some("log.preallocate"),
        "false",
        "Preallocate segment files.",
    ),
    tk(
        "remote.copy.lag.bytes",
        kind::LONG,
        Some("log.remote.copy.lag.bytes"),
        "-1",
        "Bytes a segment may wait before it is copied to remote storage.",
    ),
    tk(
        "remote.copy.lag.ms",
        kind::LONG,
        Some("log.remote.copy.lag.ms"),
        "0",
        "Time a segment may wait before it is copied to remote storage.",
    ),
    tk(
        "remote.log.copy.disable",
        kind::BOOLEAN,
        None,
        "false",
        "Stop copying segments to remote storage.",
    ),
    tk(
        "remote.log.delete.on.disable",
        kind::BOOLEAN,
        None,
        "false",
        "Delete remote data when tiered storage is disabled.",
    ),
    tk(
        "remote.storage.enable",
        kind::BOOLEAN,
        None,
        "false",
        "Tiered storage for the topic.",
    ),
    tk(
        "retention.bytes",
        kind::LONG,
        Some("log.retention.bytes"),
        "-1",
        "The size a partition's log may grow to before old segments are deleted.",
    ),
    tk(
        "retention.ms",
        kind::LONG,
        Some("log.retention.ms"),
        "604800000",
        "How long a log segment is kept before it is deleted.",
    ),
    tk(
        "segment.bytes",
        kind::INT,
        Some("log.segment.bytes"),
        "1073741824",
        "The segment file size of the log.",
    ),
    tk(
        "segment.index.bytes",
        kind::INT,
        Some("log.index.size.max.bytes"),
        "10485760",
        "The size of the offset index.",
    ),
    tk(
        "segment.jitter.ms",
        kind::LONG,
        Some("log.roll.jitter.ms"),
        "0",
        "Random jitter subtracted from segment.ms.",
    ),
    tk(
        "segment.ms",
        kind::LONG,
        Some("log.roll.ms"),
        "604800000",
        "Roll the active segment after this long.",
    ),
    tk(
        "unclean.leader.election.enable",
        kind::BOOLEAN,
        Some("unclean.leader.election.enable"),
        "false",
        "Allow replicas not in the ISR to become leader.",
    ),
];

const fn tk(
    name: &'static str,
    kind: i8,
    broker_key: Option<&'static str>,
    default: &'static str,
    doc: &'static str,
) -> TopicKey {
    TopicKey {
        name,
        kind,
        broker_key,
        default,
        doc,
    }
}

/// The config type of a topic config (LIST types take APPEND/SUBTRACT).
pub fn topic_config_kind(name: &str) -> Option<i8> {
    TOPIC_KEYS.iter().find(|k| k.name == name).map(|k| k.kind)
}

/// Kafka's default value of a topic config, before broker settings.
pub fn topic_config_default(name: &str) -> Option<&'static str> {
    TOPIC_KEYS
        .iter()
        .find(|k| k.name == name)
        .map(|k| k.default)
}

fn long_or_never(v: u64) -> String {
    if v == u64::MAX {
        LONG_MAX.to_string()
    } else {
        v.to_string()
    }
}

/// Kafka's -1 ("unlimited") for `u64::MAX`.
fn long_or_unlimited(v: u64) -> String {
    if v == u64::MAX {
        "-1".to_string()
    } else {
        v.to_string()
    }
}

/// A `cleanup.policy` list as Kafka writes it.
fn policy_value(p: corelog_engine::log::CleanupPolicy) -> String {
    match (p.compact, p.delete) {
        (true, true) => "compact,delete",
        (true, false) => "compact",
        (false, true) => "delete",
        (false, false) => "",
    }
    .to_string()
}

/// A DOUBLE config as Java's `Double.toString` writes it (`0.5`, `1.0`).
fn double_value(v: f64) -> String {
    format!("{v:?}")
}

/// The broker-level value of a topic config's default when `server.properties` sets it to
/// something other than Kafka's default.
fn broker_value(broker: &BrokerConfig, name: &str) -> Option<String> {
    let log = &broker.log;
    let v = match name {
        "segment.bytes" => log.segment_bytes.to_string(),
        "segment.ms" => log.segment_ms.to_string(),
        "index.interval.bytes" => log.index_interval_bytes.to_string(),
        "message.timestamp.type" => match log.timestamp_type {
            corelog_engine::batch::TimestampType::CreateTime => "CreateTime".to_string(),
            corelog_engine::batch::TimestampType::LogAppendTime => "LogAppendTime".to_string(),
        },
        "flush.messages" => long_or_never(log.flush_messages),
        "flush.ms" => long_or_never(log.flush_ms),
        "max.message.bytes" => broker.message_max_bytes.to_string(),
        "cleanup.policy" => policy_value(log.cleanup_policy),
        "retention.ms" => long_or_unlimited(log.retention_ms),
        "retention.bytes" => long_or_unlimited(log.retention_bytes),
        "delete.retention.ms" => long_or_never(log.delete_retention_ms),
        "min.compaction.lag.ms" => long_or_never(log.min_compaction_lag_ms),
        "max.compaction.lag.ms" => long_or_never(log.max_compaction_lag_ms),
        "min.cleanable.dirty.ratio" => double_value(log.min_cleanable_dirty_ratio),
        _ => return None,
    };
    (Some(v.as_str()) != topic_config_default(name)).then_some(v)
}

/// Every config of a topic with its effective value (`keys`: only those, when given).
pub fn describe_topic(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for k in TOPIC_KEYS {
        if keys.is_some_and(|keys| !keys.iter().any(|w| w == k.name)) {
            continue;
        }
        let mut synonyms = Vec::new();
        if let Some(v) = overrides.get(k.name) {
            synonyms.push((
                k.name.to_string(),
                Some(v.clone()),
                source::DYNAMIC_TOPIC_CONFIG,
            ));
        }
        if k.name == "min.insync.replicas" {
            synonyms.push((
                k.name.to_string(),
                Some(broker.min_insync_replicas.to_string()),
                source::DYNAMIC_DEFAULT_BROKER_CONFIG,
            ));
        } else if let (Some(bk), Some(v)) = (k.broker_key, broker_value(broker, k.name)) {
            synonyms.push((bk.to_string(), Some(v), source::STATIC_BROKER_CONFIG));
        }
        // Kafka lists no default synonym where the broker key's own default is null (it is
        // derived from another key, e.g. log.retention.ms from log.retention.hours).
        let null_broker_default = matches!(
            k.name,
            "flush.ms" | "retention.ms" | "segment.ms" | "segment.jitter.ms"
        );
        if let Some(bk) = k.broker_key.filter(|_| !null_broker_default) {
            synonyms.push((
                bk.to_string(),
                Some(k.default.to_string()),
                source::DEFAULT_CONFIG,
            ));
        }
        let (value, source) = match synonyms.first() {
            Some((_, v, s)) => (v.clone(), *s),
            None => (Some(k.default.to_string()), source::DEFAULT_CONFIG),
        };
        out.push(Entry {
            name: k.name.to_string(),
            value,
            source,
            read_only: false,
            sensitive: false,
            kind: k.kind,
            synonyms,
            doc: k.doc,
        });
    }
    // Overrides of configs Kafka 4 no longer lists (stored as set) are shown as set.
    for (name, v) in overrides {
        if !TOPIC_KEYS.iter().any(|k| k.name == name)
            && keys.is_none_or(|keys| keys.iter().any(|w| w == name))
        {
            out.push(Entry {
                name: name.clone(),
                value: Some(v.clone()),
                source: source::DYNAMIC_TOPIC_CONFIG,
                read_only: false,
                sensitive: false,
                kind: kind::STRING,
                synonyms: vec![(name.clone(), Some(v.clone()), source::DYNAMIC_TOPIC_CONFIG)],
                doc: "",
            });
        }
    }
    out
}

/// The broker's settings (read-only: corelog has no dynamic broker configs). `cluster_default`
/// is a describe of the empty broker name: only the cluster-wide dynamic defaults.
pub fn describe_broker(
    broker: &BrokerConfig,
    cluster_default: bool,
    keys: Option<&[String]>,
) -> Vec<Entry> {
    let mut all: Vec<(&str, String, &str, i8, &'static str)> = vec![(
        "min.insync.replicas",
        broker.min_insync_replicas.to_string(),
        "1",
        kind::INT,
        "The fewest replicas that must acknowledge an acks=all write.",
    )];
    if !cluster_default {
        let log = &broker.log;
        all.extend([
            (
                "node.id",
                broker.node_id.to_string(),
                "-1",
                kind::INT,
                "This node's id.",
            ),
            (
                "broker.id",
                broker.node_id.to_string(),
                "-1",
                kind::INT,
                "This broker's id.",
            ),
            (
                "listeners",
                format!("PLAINTEXT://{}", broker.listener),
                "PLAINTEXT://:9092",
                kind::STRING,
                "Where the broker listens.",
            ),
            (
                "advertised.listeners",
                format!(
                    "PLAINTEXT://{}:{}",
                    broker.advertised_host, broker.advertised_port
                ),
                "",
                kind::STRING,
                "Where clients are told to connect.",
            ),
            (
                "log.dirs",
                broker.data_dir.display().to_string(),
                "/tmp/kraft-combined-logs",
                kind::STRING,
                "The data directory.",
            ),
            (
                "num.partitions",
                broker.num_partitions.to_string(),
                "1",
                kind::INT,
                "Default partition count of a new topic.",
            ),
            (
                "auto.create.topics.enable",
                broker.auto_create_topics.to_string(),
                "true",
                kind::BOOLEAN,
                "Create a topic on first use.",
            ),
            (
                "message.max.bytes",
                broker.message_max_bytes.to_string(),
                "1048588",
                kind::INT,
                "The largest record batch size allowed.",
            ),
            (
                "socket.request.max.bytes",
                broker.socket_request_max_bytes.to_string(),
                "104857600",
                kind::INT,
                "The largest request accepted.",
            ),
            (
                "max.connections",
                broker.max_connections.to_string(),
                "2147483647",
                kind::INT,
                "Connections accepted at once.",
            ),
            (
                "log.segment.bytes",
                log.segment_bytes.to_string(),
                "1073741824",
                kind::INT,
                "Default segment.bytes.",
            ),
            (
                "log.roll.ms",
                log.segment_ms.to_string(),
                "604800000",
                kind::LONG,
                "Default segment.ms.",
            ),
            (
                "log.index.interval.bytes",
                log.index_interval_bytes.to_string(),
                "4096",
                kind::INT,
                "Default index.interval.bytes.",
            ),
            (
                "log.flush.interval.messages",
                long_or_never(log.flush_messages),
                LONG_MAX,
                kind::LONG,
                "Default flush.messages.",
            ),
            (
                "log.flush.interval.ms",
                long_or_never(log.flush_ms),
                LONG_MAX,
                kind::LONG,
                "Default flush.ms.",
            ),
            (
                "log.retention.hours",
                if log.retention_ms == u64::MAX {
                    "-1".to_string()
                } else {
                    (log.retention_ms / 3_600_000).to_string()
                },
                "168",
                kind::INT,
                "Default retention.ms, in hours (log.retention.ms, when set, wins).",
            ),
            (
                "log.retention.ms",
                long_or_unlimited(log.retention_ms),
                "604800000",
                kind::LONG,
                "Default retention.ms.",
            ),
            (
                "log.retention.bytes",
                long_or_unlimited(log.retention_bytes),
                "-1",
                kind::LONG,
                "Default retention.bytes.",
            ),
            (
                "log.retention.check.interval.ms",
                broker.retention_check_interval_ms.to_string(),
                "300000",
                kind::LONG,
                "How often each shard rolls aged segments and deletes old ones.",
            ),
            (
                "log.cleanup.policy",
                policy_value(log.cleanup_policy),
                "delete",
                kind::LIST,
                "Default cleanup.policy.",
            ),
            (
                "log.cleaner.enable",
                broker.cleaner.enable.to_string(),
                "true",
                kind::BOOLEAN,
                "Run the log cleaner (compaction).",
            ),
            (
                "log.cleaner.backoff.ms",
                broker.cleaner.backoff_ms.to_string(),
                "15000",
                kind::LONG,
                "How long a cleaner sleeps when no log needs cleaning.",
            ),
            (
                "log.cleaner.io.max.bytes.per.second",
                if broker.cleaner.io_max_bytes_per_second == u64::MAX {
                    CLEANER_IO_UNLIMITED.to_string()
                } else {
                    double_value(broker.cleaner.io_max_bytes_per_second as f64)
                },
                CLEANER_IO_UNLIMITED,
                kind::DOUBLE,
                "Read plus write bytes per second of each cleaner.",
            ),
            (
                "log.cleaner.dedupe.buffer.size",
                broker.cleaner.dedupe_buffer_bytes.to_string(),
                "134217728",
                kind::LONG,
                "Memory for each cleaner's key map.",
            ),
            (
                "log.cleaner.delete.retention.ms",
                long_or_never(log.delete_retention_ms),
                "86400000",
                kind::LONG,
                "Default delete.retention.ms.",
            ),
            (
                "log.cleaner.min.compaction.lag.ms",
                long_or_never(log.min_compaction_lag_ms),
                "0",
                kind::LONG,
                "Default min.compaction.lag.ms.",
            ),
            (
                "log.cleaner.max.compaction.lag.ms",
                long_or_never(log.max_compaction_lag_ms),
                LONG_MAX,
                kind::LONG,
                "Default max.compaction.lag.ms.",
            ),
            (
                "log.cleaner.min.cleanable.ratio",
                double_value(log.min_cleanable_dirty_ratio),
                "0.5",
                kind::DOUBLE,
                "Default min.cleanable.dirty.ratio.",
            ),
        ]);
    }
    all.sort_by(|a, b| a.0.cmp(b.0));
    all.into_iter()
        .filter(|(name, ..)| keys.is_none_or(|keys| keys.iter().any(|w| w == name)))
        .map(|(name, value, default, kind, doc)| {
            let source = if name == "min.insync.replicas" {
                source::DYNAMIC_DEFAULT_BROKER_CONFIG
            } else if value == default {
                source::DEFAULT_CONFIG
            } else {
                source::STATIC_BROKER_CONFIG
            };
            Entry {
                name: name.to_string(),
                value: Some(value.clone()),
                source,
                read_only: name != "min.insync.replicas",
                sensitive: false,
                kind,
                synonyms: vec![(name.to_string(), Some(value), source)],
                doc,
            }
        })
        .collect()
}

/// Applies the changes of an AlterConfigs/IncrementalAlterConfigs to a topic's overrides.
/// Operation codes are Kafka's: SET 0, DELETE 1, APPEND 2, SUBTRACT 3.
pub fn apply_incremental(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), (i16, String)> {
    use crate::handlers::error;
    let list_kind = topic_config_kind(name) == Some(kind::LIST);
    match op {
        0 => {
            let Some(v) = value else {
                return Err((
                    error::INVALID_REQUEST,
                    format!("Null value not supported for : {name}"),
                ));
            };
            overrides.insert(name.to_string(), v.to_string());
        }
        1 => {
            overrides.remove(name);
        }
        2 | 3 => {
            if !list_kind {
                return Err((
                    error::INVALID_CONFIG,
                    format!("Config value append is not allowed for config key: {name}"),
                ));
            }
            let current = overrides
                .get(name)
                .cloned()
                .or_else(|| topic_config_default(name).map(str::to_string))
                .unwrap_or_default();
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let given: Vec<String> = value
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if op == 2 {
                for g in given {
                    if !items.contains(&g) {
                        items.push(g);
                    }
                }
            } else {
                items.retain(|i| !given.contains(i));
            }
            overrides.insert(name.to_string(), items.join(","));
        }
        _ => {
            return Err((
                error::INVALID_REQUEST,
                format!("Unknown config operation {op}"),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_overrides_are_dynamic_and_defaults_are_default() {
        let broker = BrokerConfig::default();
        let mut o = BTreeMap::new();
        o.insert(
            "unclean.leader.election.enable".to_string(),
            "false".to_string(),
        );
        let entries = describe_topic(&broker, &o, None);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(
            get("unclean.leader.election.enable").source,
            source::DYNAMIC_TOPIC_CONFIG
        );
        assert_eq!(get("retention.ms").source, source::DEFAULT_CONFIG);
        let mir = get("min.insync.replicas");
        assert_eq!(mir.value.as_deref(), Some("1"));
        assert_eq!(mir.source, source::DYNAMIC_DEFAULT_BROKER_CONFIG);
        let mut names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), entries.len());
    }

    #[test]
    fn cleanup_configs_report_their_source() {
        let props: BTreeMap<String, String> = [
            ("log.retention.hours", "2"),
            ("log.cleanup.policy", "compact,delete"),
            ("log.cleaner.min.cleanable.ratio", "0.25"),
            ("log.retention.check.interval.ms", "200"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (broker, _) = BrokerConfig::from_properties(&props).unwrap();
        let mut o = BTreeMap::new();
        o.insert("retention.bytes".to_string(), "1000".to_string());
        let entries = describe_topic(&broker, &o, None);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        // A topic override wins, with the broker's value listed after it when there is one.
        let bytes = get("retention.bytes");
        assert_eq!(bytes.value.as_deref(), Some("1000"));
        assert_eq!(bytes.source, source::DYNAMIC_TOPIC_CONFIG);
        // server.properties values: STATIC_BROKER_CONFIG under the broker key.
        let ms = get("retention.ms");
        assert_eq!(ms.value.as_deref(), Some("7200000"));
        assert_eq!(ms.source, source::STATIC_BROKER_CONFIG);
        assert_eq!(ms.synonyms[0].0, "log.retention.ms");
        let policy = get("cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("compact,delete"));
        assert_eq!(policy.source, source::STATIC_BROKER_CONFIG);
        assert_eq!(
            policy.synonyms,
            vec![
                (
                    "log.cleanup.policy".to_string(),
                    Some("compact,delete".to_string()),
                    source::STATIC_BROKER_CONFIG
                ),
                (
                    "log.cleanup.policy".to_string(),
                    Some("delete".to_string()),
                    source::DEFAULT_CONFIG
                ),
            ]
        );
        assert_eq!(
            get("min.cleanable.dirty.ratio").value.as_deref(),
            Some("0.25")
        );
        // Untouched: Kafka's defaults.
        for (name, value) in [
            ("delete.retention.ms", "86400000"),
            ("min.compaction.lag.ms", "0"),
            ("max.compaction.lag.ms", LONG_MAX),
            ("segment.ms", "604800000"),
        ] {
            let e = get(name);
            assert_eq!(
                (e.value.as_deref(), e.source),
                (Some(value), source::DEFAULT_CONFIG)
            );
        }
        // The broker describe lists the retention and cleaner keys.
        let b = describe_broker(&broker, false, None);
        let bget = |n: &str| b.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(bget("log.retention.ms").value.as_deref(), Some("7200000"));
        assert_eq!(bget("log.retention.hours").value.as_deref(), Some("2"));
        assert_eq!(
            bget("log.retention.check.interval.ms").source,
            source::STATIC_BROKER_CONFIG
        );
        assert_eq!(bget("log.retention.bytes").source, source::DEFAULT_CONFIG);
        assert_eq!(bget("log.cleaner.enable").value.as_deref(), Some("true"));
        assert_eq!(
            bget("log.cleaner.io.max.bytes.per.second").source,
            source::DEFAULT_CONFIG
        );
    }

    #[test]
    fn incremental_ops() {
        let mut o = BTreeMap::new();
        apply_incremental(&mut o, "cleanup.policy", 2, Some("compact")).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply_incremental(&mut o, "cleanup.policy", 3, Some("delete")).unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        apply_incremental(&mut o, "retention.ms", 0, Some("5")).unwrap();
        apply_incremental(&mut o, "retention.ms", 1, None).unwrap();
        assert!(!o.contains_key("retention.ms"));
        assert!(apply_incremental(&mut o, "retention.ms", 2, Some("5")).is_err());
    }
}
