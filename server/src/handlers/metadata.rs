//! Metadata (key 3): brokers, topics (with topic ids from v10), partitions and their leaders.
//!
//! On one node every partition's leader, replica set and ISR is this broker. A requested topic
//! that does not exist is created when the request allows it and `auto.create.topics.enable` is
//! on (with `num.partitions` partitions), as Kafka does; otherwise it is answered with
//! UNKNOWN_TOPIC_OR_PARTITION.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::metadata::TopicMeta;
use crate::topics;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 12;

/// Kafka's "authorized operations not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: MetadataRequest = request.decode()?;
    let state = shard();
    let broker = state.broker.clone();
    let node = BrokerId(broker.config.node_id);
    // v0 has no auto-create flag and creates; from v4 the client says.
    let may_create =
        broker.config.auto_create_topics && (request.version < 4 || body.allow_auto_topic_creation);
    let all = match &body.topics {
        None => true,
        Some(list) => list.is_empty() && request.version == 0,
    };
    let mut topics = Vec::new();
    if all {
        for t in broker.metadata.snapshot().topics() {
            topics.push(describe(t, node));
        }
    } else {
        for wanted in body.topics.unwrap_or_default() {
            let snapshot = broker.metadata.snapshot();
            let found = match &wanted.name {
                Some(name) => snapshot.topic(name.as_str()).cloned(),
                None => snapshot.topic_by_id(&wanted.topic_id).cloned(),
            };
            let topic = match (found, &wanted.name) {
                (Some(t), _) => Ok(t),
                (None, Some(name)) if may_create => {
                    topics::create(
                        name.as_str(),
                        broker.config.num_partitions,
                        Default::default(),
                    )
                    .await
                }
                (None, _) => Err((error::UNKNOWN_TOPIC_OR_PARTITION, String::new())),
            };
            match topic {
                Ok(t) => topics.push(describe(&t, node)),
                Err((code, _)) => {
                    let mut t = MetadataResponseTopic::default();
                    t.error_code = if wanted.name.is_none() {
                        error::UNKNOWN_TOPIC_ID
                    } else {
                        code
                    };
                    t.name = wanted.name.clone();
                    t.topic_id = wanted.topic_id;
                    t.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
                    topics.push(t);
                }
            }
        }
    }
    let mut b = MetadataResponseBroker::default();
    b.node_id = node;
    b.host = StrBytes::from_string(broker.config.advertised_host.clone());
    b.port = broker.config.advertised_port as i32;
    let mut response = MetadataResponse::default();
    response.brokers = vec![b];
    response.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    response.controller_id = node;
    response.topics = topics;
    response.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    encode(&response, request.version)
}

fn describe(topic: &Arc<TopicMeta>, node: BrokerId) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    t.topic_id = topic.id;
    t.is_internal = topic.name.starts_with("__");
    t.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    t.partitions = (0..topic.partitions)
        .map(|p| {
            let mut part = MetadataResponsePartition::default();
            part.partition_index = p as i32;
            part.leader_id = node;
            part.leader_epoch = 0;
            part.replica_nodes = vec![node];
            part.isr_nodes = vec![node];
            part
        })
        .collect();
    t
}
