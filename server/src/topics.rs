//! Topic lifecycle shared by the admin APIs and auto-creation: validate, record in the
//! metadata store, then open (or delete) each partition's log on the shard that owns it.

use std::collections::BTreeMap;
use std::sync::Arc;

use corelog_engine::storage::is_valid_topic_name;

use crate::broker::{on_every_shard, open_owned_partitions, owner_of, shard, topic_log_config};
use crate::handlers::error;
use crate::metadata::{MetadataError, TopicMeta};

/// Topic-level configs Kafka knows. Those that change corelog's behaviour are applied (see
/// `broker::topic_log_config`); the others are stored and reported back as set.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "errors.deadletterqueue.group.enable",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.decompressed.message.bytes",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// A Kafka error code and message for a refused topic operation.
pub type TopicError = (i16, String);

/// Checks a topic config key and value; Kafka answers INVALID_CONFIG otherwise.
pub fn validate_config(key: &str, value: &str) -> Result<(), TopicError> {
    if !TOPIC_CONFIG_KEYS.contains(&key) {
        return Err((
            error::INVALID_CONFIG,
            format!("Unknown topic config name: {key}"),
        ));
    }
    let bad = |what: &str| {
        Err((
            error::INVALID_CONFIG,
            format!("Invalid value {value} for configuration {key}: {what}"),
        ))
    };
    match key {
        "segment.bytes" => match value.parse::<u32>() {
            Ok(v)
                if (corelog_engine::log::MIN_SEGMENT_BYTES
                    ..=corelog_engine::log::MAX_SEGMENT_BYTES)
                    .contains(&v) =>
            {
                Ok(())
            }
            _ => bad("must be between 14 and 2147483647"),
        },
        // Kafka 4's LogConfig bounds (ConfigDef `atLeast`); retention.bytes takes any long,
        // a negative one meaning unlimited.
        "segment.ms" | "flush.messages" | "max.compaction.lag.ms" => match value.parse::<i64>() {
            Ok(v) if v >= 1 => Ok(()),
            Ok(_) => bad("Value must be at least 1"),
            Err(_) => bad("not a number"),
        },
        "flush.ms"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "file.delete.delay.ms"
        | "segment.jitter.ms" => match value.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(()),
            Ok(_) => bad("Value must be at least 0"),
            Err(_) => bad("not a number"),
        },
        "retention.ms" => match value.parse::<i64>() {
            Ok(v) if v >= -1 => Ok(()),
            Ok(_) => bad("Value must be at least -1"),
            Err(_) => bad("not a number"),
        },
        "retention.bytes"
        | "local.retention.ms"
        | "local.retention.bytes"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.difference.max.ms"
        | "remote.copy.lag.bytes"
        | "remote.copy.lag.ms" => value
            .parse::<i64>()
            .map(|_| ())
            .or_else(|_| bad("not a number")),
        "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "segment.index.bytes" => match value.parse::<i32>() {
            Ok(v) if v >= 1 || (key == "index.interval.bytes" && v == 0) => Ok(()),
            _ => bad("must be a positive number"),
        },
        "message.timestamp.type" => crate::config::parse_timestamp_type(value)
            .map(|_| ())
            .map_err(|e| (error::INVALID_CONFIG, e)),
        "cleanup.policy" => {
            if value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact"))
            {
                Ok(())
            } else {
                bad("must be delete, compact or both")
            }
        }
        "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => value
            .parse::<i32>()
            .map(|_| ())
            .or_else(|_| bad("not a number")),
        "max.decompressed.message.bytes" => match value.parse::<i32>() {
            Ok(v) if v >= 0 => Ok(()),
            _ => bad("must be a non-negative number"),
        },
        "unclean.leader.election.enable"
        | "errors.deadletterqueue.group.enable"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable"
        | "preallocate"
        | "message.downconversion.enable"
        | "remote.storage.enable" => match value {
            "true" | "false" => Ok(()),
            _ => bad("must be true or false"),
        },
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => bad("must be between 0 and 1"),
        },
        "compression.type" => match value {
            "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer" => Ok(()),
            _ => bad("unknown compression type"),
        },
        _ => Ok(()),
    }
}

/// Checks a topic's whole set of overrides: each key and value, then the pairs Kafka checks
/// together (`LogConfig.validateValues`).
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    for (k, v) in configs {
        validate_config(k, v)?;
    }
    let lag = |key: &str, default: i64| {
        configs
            .get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    let (min_lag, max_lag) = (
        lag("min.compaction.lag.ms", 0),
        lag("max.compaction.lag.ms", i64::MAX),
    );
    if min_lag > max_lag {
        return Err((
            error::INVALID_CONFIG,
            format!(
                "conflict topic config setting min.compaction.lag.ms ({min_lag}) > \
                 max.compaction.lag.ms ({max_lag})"
            ),
        ));
    }
    Ok(())
}

pub fn metadata_error(e: MetadataError) -> TopicError {
    match e {
        MetadataError::TopicAlreadyExists => {
            (error::TOPIC_ALREADY_EXISTS, "Topic already exists.".into())
        }
        MetadataError::UnknownTopic => (
            error::UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic.".into(),
        ),
        MetadataError::InvalidPartitions(m) => (error::INVALID_PARTITIONS, m),
        MetadataError::Storage(m) => (error::KAFKA_STORAGE_ERROR, m),
    }
}

/// Validates a CreateTopics-style request without creating anything.
pub fn validate_new_topic(
    name: &str,
    partitions: u32,
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicError> {
    if !is_valid_topic_name(name) {
        return Err((
            error::INVALID_TOPIC_EXCEPTION,
            format!("Topic name {name:?} is illegal"),
        ));
    }
    if partitions == 0 || partitions > crate::metadata::MAX_PARTITIONS_PER_TOPIC {
        return Err((
            error::INVALID_PARTITIONS,
            format!("Number of partitions {partitions} is invalid"),
        ));
    }
    validate_configs(configs)
}

/// Opens partitions `from..topic.partitions` on every shard (each opens the ones it owns).
async fn open_everywhere(topic: Arc<TopicMeta>, from: u32) -> Result<(), TopicError> {
    let opened = on_every_shard(move || async move {
        open_owned_partitions(&shard(), &topic, from).map_err(|e| e.to_string())
    })
    .await;
    for o in opened {
        o.map_err(|e| (error::KAFKA_STORAGE_ERROR, e))?;
    }
    Ok(())
}

/// Creates a topic and its partition logs.
pub async fn create(
    name: &str,
    partitions: u32,
    configs: BTreeMap<String, String>,
) -> Result<Arc<TopicMeta>, TopicError> {
    validate_new_topic(name, partitions, &configs)?;
    let broker = shard().broker.clone();
    let topic = broker
        .metadata
        .create_topic(name, partitions, configs)
        .map_err(metadata_error)?;
    open_everywhere(topic.clone(), 0).await?;
    tracing::info!(topic = name, partitions, "created topic");
    Ok(topic)
}

/// Deletes a topic: its metadata first (so no new request finds it), then every partition's
/// files on its owner shard.
pub async fn delete(name: &str) -> Result<Arc<TopicMeta>, TopicError> {
    if name == crate::groups::OFFSETS_TOPIC {
        // Committed offsets of every group live there; the coordinator needs it while running.
        return Err((
            error::INVALID_TOPIC_EXCEPTION,
            format!("internal topic {name} cannot be deleted"),
        ));
    }
    let broker = shard().broker.clone();
    let topic = broker.metadata.delete_topic(name).map_err(metadata_error)?;
    let doomed = topic.clone();
    let deleted = on_every_shard(move || async move {
        let state = shard();
        for p in 0..doomed.partitions {
            if crate::broker::owner_of(&state.broker, &doomed.name, p) == state.id {
                state.producers.remove(&doomed.name, p);
                state
                    .storage
                    .delete_partition(&doomed.name, p)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok::<(), String>(())
    })
    .await;
    for d in deleted {
        d.map_err(|e| (error::KAFKA_STORAGE_ERROR, e))?;
    }
    tracing::info!(topic = name, "deleted topic");
    Ok(topic)
}

/// Raises a topic's partition count. Existing partitions (and so the key → partition mapping of
/// the existing count) are untouched; new partitions start empty.
pub async fn add_partitions(name: &str, count: u32) -> Result<Arc<TopicMeta>, TopicError> {
    let broker = shard().broker.clone();
    let before = broker.metadata.snapshot().topic(name).map(|t| t.partitions);
    let topic = broker
        .metadata
        .set_partition_count(name, count)
        .map_err(metadata_error)?;
    open_everywhere(topic.clone(), before.unwrap_or(0)).await?;
    Ok(topic)
}

/// Replaces a topic's config overrides (validated here) and applies the resulting log settings
/// to every open partition of the topic, each on its owner shard.
pub async fn set_configs(
    name: &str,
    configs: BTreeMap<String, String>,
) -> Result<Arc<TopicMeta>, TopicError> {
    validate_configs(&configs)?;
    let broker = shard().broker.clone();
    let topic = broker
        .metadata
        .set_configs(name, configs)
        .map_err(metadata_error)?;
    let changed = topic.clone();
    on_every_shard(move || async move {
        let state = shard();
        let config = topic_log_config(&state.broker.config.log, &changed.configs);
        for p in 0..changed.partitions {
            if owner_of(&state.broker, &changed.name, p) == state.id {
                if let Some(partition) = state.local_partition(&changed.name, p) {
                    partition.set_config(config.clone());
                }
            }
        }
    })
    .await;
    tracing::info!(topic = name, "altered topic configs");
    Ok(topic)
}
