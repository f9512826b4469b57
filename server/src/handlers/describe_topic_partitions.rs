//! DescribeTopicPartitions (key 75): topics with their partitions, leaders and ISRs, paged by a
//! cursor. Kafka 4's `kafka-topics --describe` uses it instead of Metadata.
//!
//! As in Kafka: topics are answered in name order (all topics when none are named); a cursor
//! starts the answer at (topic, partition), skipping topics before it; at most
//! `response_partition_limit` partitions (capped at 2000, Kafka's
//! `max.request.partition.size.limit`) are returned, and when partitions are left over the
//! response's `next_cursor` names the first of them. A named topic that does not exist is
//! answered with UNKNOWN_TOPIC_OR_PARTITION.

use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::metadata::TopicMeta;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

/// Kafka's default `max.request.partition.size.limit`.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;
/// Topic ACL operations allowed without an authorizer: READ 3, WRITE 4, CREATE 5, DELETE 6,
/// ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeTopicPartitionsRequest = request.decode()?;
    let broker = shard().broker.clone();
    let node = BrokerId(broker.config.node_id);
    let snapshot = broker.metadata.snapshot();
    // (name, topic if it exists), in name order.
    let mut wanted: Vec<(String, Option<Arc<TopicMeta>>)> = if body.topics.is_empty() {
        snapshot
            .topics()
            .map(|t| (t.name.clone(), Some(t.clone())))
            .collect()
    } else {
        body.topics
            .iter()
            .map(|t| {
                let name = t.name.to_string();
                let found = snapshot.topic(&name).cloned();
                (name, found)
            })
            .collect()
    };
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);
    let (start_topic, start_partition) = match &body.cursor {
        Some(c) => (c.topic_name.to_string(), c.partition_index.max(0) as u32),
        None => (String::new(), 0),
    };
    let mut budget = if body.response_partition_limit > 0 {
        body.response_partition_limit
            .min(MAX_PARTITIONS_PER_RESPONSE)
    } else {
        MAX_PARTITIONS_PER_RESPONSE
    } as u32;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for (name, topic) in wanted {
        if name < start_topic {
            continue;
        }
        let mut t = DescribeTopicPartitionsResponseTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(name.clone())));
        t.topic_authorized_operations = TOPIC_OPERATIONS;
        let Some(topic) = topic else {
            t.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
            topics.push(t);
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        t.topic_id = topic.id;
        t.is_internal = name.starts_with("__");
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let mut p = first;
        while p < topic.partitions && budget > 0 {
            t.partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p as i32)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
            p += 1;
            budget -= 1;
        }
        topics.push(t);
        if p < topic.partitions {
            next_cursor = Some(cursor(&name, p));
            break;
        }
    }
    let response = DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor);
    encode(&response, request.version)
}

fn cursor(topic: &str, partition: u32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition as i32)
}
