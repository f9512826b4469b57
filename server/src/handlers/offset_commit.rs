//! OffsetCommit (key 8): a group's consumed positions, written to `__consumer_offsets` and
//! answered once the record reached the broker's acks=all point (fdatasynced with the default
//! `corelog.acks.all.durable=true`): an acknowledged commit survives a crash.
//!
//! Validation as Kafka's classic coordinator: a member commits with its generation (a stale one
//! is ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, a fenced static member
//! FENCED_INSTANCE_ID, during CompletingRebalance REBALANCE_IN_PROGRESS); a standalone consumer
//! commits with generation -1 to a group without members. Unknown partitions are
//! UNKNOWN_TOPIC_OR_PARTITION, metadata over `offset.metadata.max.bytes` OFFSET_METADATA_TOO_LARGE.
//!
//! v0 and v1 are advertised for old clients; the protocol crate decodes only v2+, so they are
//! decoded here (their responses are laid out as v2's).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator, coordinator::OffsetToCommit};
use crate::wire::Reader;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

/// Oldest version the protocol crate decodes; older ones are decoded by [`decode_legacy`].
const FIRST_CRATE_VERSION: i16 = 2;
/// v9+: a commit with a generation to an unknown group is GROUP_ID_NOT_FOUND.
const FIRST_VERSION_WITH_GROUP_ID_NOT_FOUND: i16 = 9;
/// Smallest encoding of one partition in v0 (partition, offset, metadata length).
const MIN_LEGACY_PARTITION_BYTES: usize = 4 + 8 + 2;
/// Smallest encoding of one topic (name length, partition count).
const MIN_LEGACY_TOPIC_BYTES: usize = 2 + 4;

/// One partition's commit: partition, offset, leader epoch, metadata.
type PartitionCommit = (i32, i64, i32, Option<String>);

/// The fields of a commit, whichever version carried them.
struct Commit {
    group_id: String,
    generation: i32,
    member_id: String,
    instance_id: Option<String>,
    topics: Vec<(String, Vec<PartitionCommit>)>,
}

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let version = request.version;
    let commit = if version < FIRST_CRATE_VERSION {
        decode_legacy(&request.body, version)
            .map_err(|e| format!("OffsetCommit v{version}: {e}"))?
    } else {
        let body: OffsetCommitRequest = request.decode()?;
        Commit {
            group_id: body.group_id.to_string(),
            generation: body.generation_id_or_member_epoch,
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
            topics: body
                .topics
                .iter()
                .map(|t| {
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| {
                            (
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.committed_metadata.as_ref().map(|m| m.to_string()),
                            )
                        })
                        .collect();
                    (t.name.to_string(), parts)
                })
                .collect(),
        }
    };
    let offsets: Vec<OffsetToCommit> = commit
        .topics
        .iter()
        .flat_map(|(topic, parts)| {
            parts.iter().map(
                move |(partition, offset, leader_epoch, metadata)| OffsetToCommit {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    leader_epoch: *leader_epoch,
                    metadata: metadata.clone(),
                },
            )
        })
        .collect();
    let errors = if offsets.is_empty() {
        Vec::new()
    } else {
        let req = coordinator::CommitRequest {
            generation: commit.generation,
            member_id: commit.member_id.clone(),
            instance_id: commit.instance_id.clone(),
            unknown_group_error: if version >= FIRST_VERSION_WITH_GROUP_ID_NOT_FOUND {
                error::GROUP_ID_NOT_FOUND
            } else {
                error::ILLEGAL_GENERATION
            },
            offsets,
        };
        let id = commit.group_id.clone();
        groups::on_coordinator(&commit.group_id, move |state| {
            coordinator::commit(state, id, req)
        })
        .await
    };
    let mut errors = errors.into_iter();
    let mut response = OffsetCommitResponse::default();
    response.topics = commit
        .topics
        .iter()
        .map(|(topic, parts)| {
            let mut t = OffsetCommitResponseTopic::default();
            t.name = TopicName(StrBytes::from_string(topic.clone()));
            t.partitions = parts
                .iter()
                .map(|(partition, ..)| {
                    let mut p = OffsetCommitResponsePartition::default();
                    p.partition_index = *partition;
                    p.error_code = errors.next().unwrap_or(error::UNKNOWN_SERVER_ERROR);
                    p
                })
                .collect();
            t
        })
        .collect();
    encode(&response, version.max(FIRST_CRATE_VERSION))
}

/// Decodes OffsetCommit v0 (`group, [topic, [partition, offset, metadata]]`) or v1 (adds
/// `generation, member_id` after the group and a per-partition timestamp before the metadata).
fn decode_legacy(body: &[u8], version: i16) -> Result<Commit, String> {
    let mut r = Reader::new(body);
    let group_id = r.string()?;
    let (generation, member_id) = if version >= 1 {
        (r.i32()?, r.nullable_string()?.unwrap_or_default())
    } else {
        (-1, String::new())
    };
    let topic_count = r.array_len(MIN_LEGACY_TOPIC_BYTES)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = r.string()?;
        let partition_count = r.array_len(MIN_LEGACY_PARTITION_BYTES)?;
        let mut parts = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition = r.i32()?;
            let offset = r.i64()?;
            if version >= 1 {
                r.i64()?; // commit timestamp: the broker's clock is used, as in Kafka
            }
            let metadata = r.nullable_string()?;
            parts.push((partition, offset, -1, metadata));
        }
        topics.push((name, parts));
    }
    Ok(Commit {
        group_id,
        generation,
        member_id,
        instance_id: None,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_versions_decode_and_lies_are_refused() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&[0, 1, b'g']);
        v1.extend_from_slice(&5i32.to_be_bytes());
        v1.extend_from_slice(&[0, 1, b'm']);
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&[0, 1, b't']);
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&3i32.to_be_bytes());
        v1.extend_from_slice(&42i64.to_be_bytes());
        v1.extend_from_slice(&0i64.to_be_bytes());
        v1.extend_from_slice(&[0xff, 0xff]);
        let c = decode_legacy(&v1, 1).unwrap();
        assert_eq!((c.group_id.as_str(), c.generation), ("g", 5));
        assert_eq!(c.member_id, "m");
        assert_eq!(c.topics, vec![("t".to_string(), vec![(3, 42, -1, None)])]);
        for cut in 0..v1.len() {
            assert!(decode_legacy(&v1[..cut], 1).is_err());
        }
        let lying = [0, 1, b'g', 0x7f, 0xff, 0xff, 0xff];
        assert!(decode_legacy(&lying, 0).is_err());
    }
}
