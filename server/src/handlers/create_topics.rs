//! CreateTopics (key 19): create topics with a partition count and config overrides.
//!
//! Per topic, as Kafka answers: `num_partitions` -1 takes `num.partitions`; a replication factor
//! of -1 or 1 is fine on one node, more is INVALID_REPLICATION_FACTOR; manual assignments must
//! name this node only; unknown or invalid configs are INVALID_CONFIG; a name given twice in one
//! request is INVALID_REQUEST for each copy; `validate_only` checks everything and creates
//! nothing. From v5 a result carries the partition count, replication factor and every config
//! of the topic (with its source); from v7 the topic id.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::config_entries;
use crate::topics::{self, TopicError};

/// Kafka 4 accepts v2-v7 (v0-v1 were removed in 4.0).
pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 7;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: CreateTopicsRequest = request.decode()?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &body.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut results = Vec::new();
    for t in &body.topics {
        let name = t.name.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let outcome = if seen[&name] > 1 {
            Err((
                error::INVALID_REQUEST,
                format!("Found multiple entries for topic {name}."),
            ))
        } else {
            create_one(t, body.validate_only).await
        };
        match outcome {
            Ok((id, partitions, configs)) => {
                r.topic_id = id;
                r.num_partitions = partitions as i32;
                r.replication_factor = 1;
                r.configs = Some(configs);
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(r);
    }
    let response = CreateTopicsResponse::default().with_topics(results);
    encode(&response, request.version)
}

type Created = (uuid::Uuid, u32, Vec<CreatableTopicConfigs>);

async fn create_one(t: &CreatableTopic, validate_only: bool) -> Result<Created, TopicError> {
    let broker = shard().broker.clone();
    let name = t.name.to_string();
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                error::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. \
                 Both cannot be used at the same time."
                    .into(),
            ));
        }
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32 {
                return Err((
                    error::INVALID_REPLICA_ASSIGNMENT,
                    "Partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            if a.broker_ids.is_empty() || a.broker_ids.iter().any(|b| b.0 != broker.config.node_id)
            {
                return Err((
                    error::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "The manual partition assignment includes a broker other than {}",
                        broker.config.node_id
                    ),
                ));
            }
            if a.broker_ids.len() > 1 {
                return Err((
                    error::INVALID_REPLICA_ASSIGNMENT,
                    "The manual partition assignment includes the same broker twice".into(),
                ));
            }
        }
        t.assignments.len() as u32
    } else {
        match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if n <= 0 => {
                return Err((
                    error::INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ))
            }
            n => n as u32,
        }
    };
    match t.replication_factor {
        -1 | 1 => {}
        n if n <= 0 => {
            return Err((
                error::INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ))
        }
        n => {
            return Err((
                error::INVALID_REPLICATION_FACTOR,
                format!(
                    "Unable to replicate the partition {n} time(s): The target replication \
                     factor of {n} cannot be reached because only 1 broker(s) are registered \
                     or some brokers have all their log directories cordoned."
                ),
            ))
        }
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err((
                error::INVALID_REQUEST,
                format!("Null value not supported for topic configs: {}", c.name),
            ));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    topics::validate_new_topic(&name, partitions, &configs)?;
    if broker.metadata.snapshot().topic(&name).is_some() {
        return Err((
            error::TOPIC_ALREADY_EXISTS,
            format!("Topic '{name}' already exists."),
        ));
    }
    let described = |overrides: &BTreeMap<String, String>| {
        config_entries::describe_topic(&broker.config, overrides, None)
            .into_iter()
            .map(|e| {
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_string(e.name))
                    .with_value(e.value.map(StrBytes::from_string))
                    .with_read_only(e.read_only)
                    .with_config_source(e.source)
                    .with_is_sensitive(e.sensitive)
            })
            .collect::<Vec<_>>()
    };
    if validate_only {
        return Ok((uuid::Uuid::nil(), partitions, described(&configs)));
    }
    let topic = topics::create(&name, partitions, configs)
        .await
        .map_err(|(code, message)| {
            if code == error::TOPIC_ALREADY_EXISTS {
                (code, format!("Topic '{name}' already exists."))
            } else {
                (code, message)
            }
        })?;
    Ok((topic.id, topic.partitions, described(&topic.configs)))
}
