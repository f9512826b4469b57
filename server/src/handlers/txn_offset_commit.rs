//! TxnOffsetCommit (key 28): a transactional producer commits a group's offsets inside its
//! transaction (`sendOffsetsToTransaction`). Routed to the group's coordinator shard; the offsets
//! are written to `__consumer_offsets` as part of the transaction and become the group's
//! committed offsets only when the transaction commits ([`crate::groups::txn_offsets`]).
//!
//! Checks as Kafka's coordinator: from v3 a member id and generation are checked like an
//! OffsetCommit's (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID); unknown partitions
//! are UNKNOWN_TOPIC_OR_PARTITION; metadata over `offset.metadata.max.bytes` is
//! OFFSET_METADATA_TOO_LARGE; an empty group id is INVALID_GROUP_ID.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::{encode, error, Reply, Request};
use crate::groups::coordinator::OffsetToCommit;
use crate::groups::store::TxnProducer;
use crate::groups::txn_offsets::{self, TxnCommitRequest};
use crate::groups::{self};

pub const MIN_VERSION: i16 = 0;
/// v4 is the newest a transaction-version-1 client needs (v5 belongs to KIP-890's flow).
pub const MAX_VERSION: i16 = 4;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: TxnOffsetCommitRequest = request.decode()?;
    let group_id = body.group_id.to_string();
    let offsets: Vec<OffsetToCommit> = body
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| OffsetToCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let errors = if group_id.is_empty() {
        vec![error::INVALID_GROUP_ID; offsets.len()]
    } else if offsets.is_empty() {
        Vec::new()
    } else {
        let req = TxnCommitRequest {
            producer: TxnProducer {
                producer_id: body.producer_id.0,
                producer_epoch: body.producer_epoch,
            },
            generation: body.generation_id,
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
            offsets,
        };
        let id = group_id.clone();
        groups::on_coordinator(&group_id, move |state| txn_offsets::commit(state, id, req)).await
    };
    let mut errors = errors.into_iter();
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = body
        .topics
        .iter()
        .map(|t| {
            let mut out = TxnOffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = TxnOffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = errors.next().unwrap_or(error::UNKNOWN_SERVER_ERROR);
                    r
                })
                .collect();
            out
        })
        .collect();
    encode(&response, request.version)
}
