//! CreatePartitions (key 37): raise a topic's partition count. Existing partitions are left
//! exactly as they are (so the key → partition mapping of the old count keeps its data); the new
//! ones start empty. A count not above the current one is INVALID_PARTITIONS; manual
//! assignments must list this node only; `validate_only` checks and changes nothing.

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::metadata::MAX_PARTITIONS_PER_TOPIC;
use crate::topics::{self, TopicError};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: CreatePartitionsRequest = request.decode()?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &body.topics {
        *seen.entry(t.name.as_str().to_string()).or_default() += 1;
    }
    let mut results = Vec::new();
    for t in &body.topics {
        let outcome = if seen[t.name.as_str()] > 1 {
            Err((
                error::INVALID_REQUEST,
                "Duplicate topic in request.".to_string(),
            ))
        } else {
            grow(t, body.validate_only).await
        };
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(StrBytes::from_string(message));
        }
        results.push(r);
    }
    let response = CreatePartitionsResponse::default().with_results(results);
    encode(&response, request.version)
}

async fn grow(t: &CreatePartitionsTopic, validate_only: bool) -> Result<(), TopicError> {
    let broker = shard().broker.clone();
    let name = t.name.as_str();
    let Some(current) = broker.metadata.snapshot().topic(name).map(|t| t.partitions) else {
        return Err((
            error::UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic-partition.".into(),
        ));
    };
    if t.count < 0 || (t.count as u32) < current {
        return Err((
            error::INVALID_PARTITIONS,
            format!(
                "Topic currently has {current} partitions, which is higher than the requested {}.",
                t.count
            ),
        ));
    }
    let count = t.count as u32;
    if count == current {
        return Err((
            error::INVALID_PARTITIONS,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            error::INVALID_PARTITIONS,
            format!("A topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions."),
        ));
    }
    if let Some(assignments) = &t.assignments {
        if assignments.len() as u32 != count - current {
            return Err((
                error::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                    count - current,
                    assignments.len()
                ),
            ));
        }
        for a in assignments {
            if a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.config.node_id {
                return Err((
                    error::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "The manual partition assignment must list broker {} once",
                        broker.config.node_id
                    ),
                ));
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    topics::add_partitions(name, count).await.map(|_| ())
}
