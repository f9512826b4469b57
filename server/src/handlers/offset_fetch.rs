//! OffsetFetch (key 9): a group's committed offsets — of the partitions asked for, or all of
//! them (a null topic list, v2+). v8+ asks for several groups at once. A partition without a
//! commit answers offset -1 (the consumer then applies `auto.offset.reset`).
//!
//! v0 (offsets kept in ZooKeeper by old Kafka) has v1's layout and is served like v1.
//!
//! `require_stable` (v7+, sent by read_committed consumers): a partition with offsets pending in
//! an open transaction (TxnOffsetCommit not yet committed or aborted) is UNSTABLE_OFFSET_COMMIT,
//! which the client retries.

use std::collections::BTreeSet;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator, group::Committed};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

/// First version with several groups per request.
const FIRST_MULTI_GROUP_VERSION: i16 = 8;
/// Oldest version the protocol crate decodes (v0 has the same layout).
const FIRST_CRATE_VERSION: i16 = 1;
/// "No committed offset", as Kafka answers.
const NO_OFFSET: i64 = -1;
const NO_LEADER_EPOCH: i32 = -1;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let version = request.version;
    let wire_version = version.max(FIRST_CRATE_VERSION);
    request.version = wire_version;
    let body: OffsetFetchRequest = request.decode()?;
    let mut response = OffsetFetchResponse::default();
    if version >= FIRST_MULTI_GROUP_VERSION {
        for g in &body.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let (offsets, unstable) =
                fetch(g.group_id.to_string(), topics, body.require_stable).await;
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            out.error_code = error::NONE;
            out.topics = offsets
                .into_iter()
                .map(|(topic, parts)| {
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partitions = parts
                        .into_iter()
                        .map(|(p, c)| {
                            let mut r = OffsetFetchResponsePartitions::default();
                            r.partition_index = p;
                            let stable = !unstable.contains(&(topic.clone(), p));
                            (r.committed_offset, r.committed_leader_epoch, r.metadata) =
                                fields(c.filter(|_| stable));
                            r.error_code = if stable {
                                error::NONE
                            } else {
                                error::UNSTABLE_OFFSET_COMMIT
                            };
                            r
                        })
                        .collect();
                    t
                })
                .collect();
            response.groups.push(out);
        }
    } else {
        let GroupId(group_id) = body.group_id.clone();
        let topics = body.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let (offsets, unstable) = fetch(group_id.to_string(), topics, body.require_stable).await;
        response.error_code = error::NONE;
        response.topics = offsets
            .into_iter()
            .map(|(topic, parts)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = TopicName(StrBytes::from_string(topic.clone()));
                t.partitions = parts
                    .into_iter()
                    .map(|(p, c)| {
                        let mut r = OffsetFetchResponsePartition::default();
                        r.partition_index = p;
                        let stable = !unstable.contains(&(topic.clone(), p));
                        (r.committed_offset, r.committed_leader_epoch, r.metadata) =
                            fields(c.filter(|_| stable));
                        r.error_code = if stable {
                            error::NONE
                        } else {
                            error::UNSTABLE_OFFSET_COMMIT
                        };
                        r
                    })
                    .collect();
                t
            })
            .collect();
    }
    encode(&response, wire_version)
}

/// The committed offsets, and (when `require_stable`, v7+, KIP-447) the partitions whose
/// offsets a transaction may still change: those are answered UNSTABLE_OFFSET_COMMIT with no
/// offset, and the client asks again.
async fn fetch(
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> (coordinator::TopicOffsets, BTreeSet<(String, i32)>) {
    let id = group_id.clone();
    groups::on_coordinator(&group_id, move |state| async move {
        let unstable = if require_stable {
            groups::txn_offsets::unstable_partitions(&state, &id)
        } else {
            BTreeSet::new()
        };
        (coordinator::fetch(&state, &id, topics), unstable)
    })
    .await
}

fn fields(c: Option<Committed>) -> (i64, i32, Option<StrBytes>) {
    match c {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(StrBytes::from_string(c.metadata)),
        ),
        None => (NO_OFFSET, NO_LEADER_EPOCH, Some(StrBytes::default())),
    }
}
