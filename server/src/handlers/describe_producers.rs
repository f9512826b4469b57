//! DescribeProducers (key 61): the producers of partitions and their open transactions.
//!
//! Per requested partition, every producer the partition's idempotent-producer state holds
//! ([`crate::producer_state`], on the partition's owner shard): its id and epoch, the sequence
//! of its last record (-1 when none is remembered), the timestamp of its last batch or marker,
//! the coordinator epoch of its last marker (-1 if none) and the first offset of its open
//! transaction (-1 if none) — what `kafka-transactions describe-producers` prints and what
//! finding a hanging transaction (KIP-664) needs. An unknown topic or partition is
//! UNKNOWN_TOPIC_OR_PARTITION for that partition, as in Kafka.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::{on_owner, shard};
use crate::producer_state::ProducerInfo;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeProducersRequest = request.decode()?;
    let snapshot = shard().broker.metadata.snapshot();
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let meta = snapshot.topic(t.name.as_str()).cloned();
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for index in t.partition_indexes {
            let mut r = PartitionResponse::default();
            r.partition_index = index;
            let known = meta
                .as_ref()
                .is_some_and(|m| index >= 0 && (index as u32) < m.partitions);
            let found = if known {
                let topic = t.name.to_string();
                let partition = index as u32;
                on_owner(&topic.clone(), partition, move |state| async move {
                    state
                        .producers
                        .get(&topic, partition)
                        .map(|s| s.borrow().describe())
                })
                .await
            } else {
                None
            };
            match found {
                Some(producers) => {
                    r.error_code = error::NONE;
                    r.active_producers = producers.into_iter().map(producer_state).collect();
                }
                None => {
                    r.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
                    r.error_message = Some(StrBytes::from_static_str(
                        "This server does not host this topic-partition.",
                    ));
                }
            }
            partitions.push(r);
        }
        let mut tr = TopicResponse::default();
        tr.name = t.name;
        tr.partitions = partitions;
        topics.push(tr);
    }
    let mut response = DescribeProducersResponse::default();
    response.topics = topics;
    encode(&response, request.version)
}

fn producer_state(p: ProducerInfo) -> ProducerState {
    let mut s = ProducerState::default();
    s.producer_id = ProducerId(p.producer_id);
    s.producer_epoch = i32::from(p.epoch);
    s.last_sequence = p.last_sequence;
    s.last_timestamp = p.last_timestamp;
    s.coordinator_epoch = p.coordinator_epoch;
    s.current_txn_start_offset = p.current_txn_start_offset;
    s
}
