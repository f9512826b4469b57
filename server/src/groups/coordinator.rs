//! The coordinator's operations, one per group API, run on the group's coordinator shard (the
//! handlers route them there with [`super::on_coordinator`]). They drive the state machine in
//! [`super::group`] and write what must survive a restart before answering.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use corelog_engine::partition::now_ms;
use corelog_engine::runtime;

use super::group::{
    Committed, Group, GroupState, JoinAnswer, JoinRequest, JoinResult, SyncAnswer, SyncResult,
};
use super::records::{Key, OffsetValue};
use super::store;
use crate::broker::ShardState;
use crate::handlers::error;

/// Writes the group's metadata record without making anyone wait for it (a transition nobody
/// is waiting on: the group became Empty).
pub fn store_in_background(state: &Rc<ShardState>, group: Rc<RefCell<Group>>) {
    let state = state.clone();
    runtime::spawn(async move {
        if let Err(e) = store::store_group(&state, &group, None).await {
            tracing::error!(error = %e, "cannot write group metadata");
        }
    });
}

/// Writes the group record if a transition asked for it.
fn store_if_needed(state: &Rc<ShardState>, group: &Rc<RefCell<Group>>) {
    if group.borrow_mut().take_store_needed() {
        store_in_background(state, group.clone());
    }
}

pub async fn join(state: Rc<ShardState>, group_id: String, req: JoinRequest) -> JoinResult {
    let timers = state.broker.config.groups.timers();
    let now = Instant::now();
    let group = match state.groups.get(&group_id) {
        Some(g) => g,
        // A known member id of a group that does not exist (any more).
        None if !req.member_id.is_empty() => {
            return JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id)
        }
        None => state.groups.get_or_create(&group_id, now, now_ms()),
    };
    let member_id = req.member_id.clone();
    let answer = group.borrow_mut().join(req, now, now_ms(), &timers);
    store_if_needed(&state, &group);
    match answer {
        JoinAnswer::Now(r) => r,
        JoinAnswer::Later(rx) => rx
            .await
            .unwrap_or_else(|| JoinResult::error(error::UNKNOWN_MEMBER_ID, &member_id)),
        JoinAnswer::AfterStore(r) => match store::store_group(&state, &group, None).await {
            Ok(()) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot write group metadata");
                JoinResult::error(error::COORDINATOR_NOT_AVAILABLE, &r.member_id)
            }
        },
    }
}

/// SyncGroup's fields.
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub async fn sync(state: Rc<ShardState>, group_id: String, req: SyncRequest) -> SyncResult {
    let Some(group) = state.groups.get(&group_id) else {
        return SyncResult::error(error::UNKNOWN_MEMBER_ID);
    };
    let answer = group.borrow_mut().sync(
        &req.member_id,
        req.instance_id.as_deref(),
        req.generation,
        req.protocol_type.as_deref(),
        req.protocol_name.as_deref(),
        req.assignments,
        Instant::now(),
    );
    let gone = || SyncResult::error(error::UNKNOWN_MEMBER_ID);
    match answer {
        SyncAnswer::Now(r) => r,
        SyncAnswer::Later(rx) => rx.await.unwrap_or_else(gone),
        SyncAnswer::LeaderAssigned {
            answer,
            generation,
            assignments,
        } => {
            match store::store_group(&state, &group, Some(&assignments)).await {
                Ok(()) => group
                    .borrow_mut()
                    .apply_assignments(generation, assignments, now_ms()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot write group assignments");
                    let timers = state.broker.config.groups.timers();
                    group.borrow_mut().assignments_failed(
                        generation,
                        Instant::now(),
                        now_ms(),
                        &timers,
                    );
                }
            }
            store_if_needed(&state, &group);
            answer.await.unwrap_or_else(gone)
        }
    }
}

pub fn heartbeat(
    state: &ShardState,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> i16 {
    match state.groups.get(group_id) {
        None => error::UNKNOWN_MEMBER_ID,
        Some(g) => g
            .borrow_mut()
            .heartbeat(member_id, instance_id, generation, Instant::now()),
    }
}

/// LeaveGroup: the error of each (member id, instance id), or None if the group is unknown.
pub fn leave(
    state: &Rc<ShardState>,
    group_id: &str,
    members: &[(String, Option<String>)],
) -> Option<Vec<i16>> {
    let group = state.groups.get(group_id)?;
    let timers = state.broker.config.groups.timers();
    let errors = members
        .iter()
        .map(|(member, instance)| {
            group.borrow_mut().leave(
                member,
                instance.as_deref(),
                Instant::now(),
                now_ms(),
                &timers,
            )
        })
        .collect();
    store_if_needed(state, &group);
    Some(errors)
}

/// One partition of an OffsetCommit.
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// OffsetCommit's group fields.
pub struct CommitRequest {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// The error for a commit with a generation to a group that does not exist (v9+:
    /// GROUP_ID_NOT_FOUND, before: ILLEGAL_GENERATION).
    pub unknown_group_error: i16,
    pub offsets: Vec<OffsetToCommit>,
}

/// OffsetCommit: one error per offset, in request order.
pub async fn commit(state: Rc<ShardState>, group_id: String, req: CommitRequest) -> Vec<i16> {
    let n = req.offsets.len();
    let now = Instant::now();
    let group = match state.groups.get(&group_id) {
        Some(g) => g,
        // A simple (standalone) consumer commits without joining: the group is made for it.
        None if req.generation < 0 => state.groups.get_or_create(&group_id, now, now_ms()),
        None => return vec![req.unknown_group_error; n],
    };
    let verdict =
        group
            .borrow()
            .validate_commit(req.generation, &req.member_id, req.instance_id.as_deref());
    if verdict != error::NONE {
        return vec![verdict; n];
    }
    let (mut errors, records, accepted) = offset_records(&state, &group_id, &req.offsets);
    if records.is_empty() {
        return errors;
    }
    match store::write(&state, &group_id, records).await {
        Ok(base) => {
            let mut g = group.borrow_mut();
            for (topic, partition, c) in committed_from(base, accepted) {
                g.apply_offset(&topic, partition, c);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot write committed offsets");
            for e in errors.iter_mut().filter(|e| **e == error::NONE) {
                *e = error::COORDINATOR_NOT_AVAILABLE;
            }
        }
    }
    errors
}

/// A commit's offsets checked and encoded: one error per offset (in request order), the
/// records of the accepted ones, and those offsets (topic, partition, value) in record order.
pub type PreparedOffsets = (
    Vec<i16>,
    Vec<store::KeyValue>,
    Vec<(String, i32, OffsetValue)>,
);

/// Checks each offset of a commit (OffsetCommit or TxnOffsetCommit: unknown partitions are
/// UNKNOWN_TOPIC_OR_PARTITION, metadata over `offset.metadata.max.bytes` is
/// OFFSET_METADATA_TOO_LARGE) and encodes the records of the others.
pub fn offset_records(
    state: &ShardState,
    group_id: &str,
    offsets: &[OffsetToCommit],
) -> PreparedOffsets {
    let snapshot = state.broker.metadata.snapshot();
    let max_metadata = state.broker.config.groups.offset_metadata_max_bytes;
    let committed_at = now_ms();
    let mut errors = Vec::with_capacity(offsets.len());
    let mut records = Vec::new();
    let mut accepted = Vec::new();
    for o in offsets {
        let known = snapshot
            .topic(&o.topic)
            .is_some_and(|t| o.partition >= 0 && (o.partition as u32) < t.partitions);
        let metadata = o.metadata.clone().unwrap_or_default();
        let e = if !known {
            error::UNKNOWN_TOPIC_OR_PARTITION
        } else if metadata.len() > max_metadata {
            error::OFFSET_METADATA_TOO_LARGE
        } else {
            error::NONE
        };
        errors.push(e);
        if e != error::NONE {
            continue;
        }
        let value = OffsetValue {
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata,
            commit_timestamp_ms: committed_at,
        };
        let key = Key::Offset {
            group: group_id.to_string(),
            topic: o.topic.clone(),
            partition: o.partition,
        };
        records.push((key.encode(), Some(value.encode())));
        accepted.push((o.topic.clone(), o.partition, value));
    }
    (errors, records, accepted)
}

/// The accepted offsets of [`offset_records`] as committed by records written from `base`.
pub fn committed_from(
    base: i64,
    accepted: Vec<(String, i32, OffsetValue)>,
) -> impl Iterator<Item = (String, i32, Committed)> {
    accepted
        .into_iter()
        .enumerate()
        .map(move |(i, (topic, partition, v))| {
            let committed = Committed {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                commit_timestamp_ms: v.commit_timestamp_ms,
                log_offset: base + i as i64,
            };
            (topic, partition, committed)
        })
}

/// Committed offsets by topic: `(topic, [(partition, offset if any)])`.
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// OffsetFetch: the committed offsets of the requested partitions (None: all the group has).
pub fn fetch(
    state: &ShardState,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> TopicOffsets {
    let group = state.groups.get(group_id);
    let group = group.as_ref().map(|g| g.borrow());
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        let c = group
                            .as_ref()
                            .and_then(|g| g.offsets.get(&(topic.clone(), p)).cloned());
                        (p, c)
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut out: TopicOffsets = Vec::new();
            if let Some(g) = &group {
                for ((topic, p), c) in &g.offsets {
                    match out.last_mut() {
                        Some((t, parts)) if t == topic => parts.push((*p, Some(c.clone()))),
                        _ => out.push((topic.clone(), vec![(*p, Some(c.clone()))])),
                    }
                }
            }
            out
        }
    }
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// DescribeGroups for one group (None: unknown). As in Kafka, member metadata and assignments
/// (and the protocol) are shown only while the group is Stable.
pub fn describe(state: &ShardState, group_id: &str) -> Option<GroupDescription> {
    let g = state.groups.get(group_id)?;
    let g = g.borrow();
    let stable = g.state == GroupState::Stable;
    let protocol = if stable {
        g.protocol_name.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let members = g
        .members
        .values()
        .map(|m| MemberDescription {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            metadata: if stable {
                m.protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default()
            } else {
                Bytes::new()
            },
            assignment: if stable {
                m.assignment.clone()
            } else {
                Bytes::new()
            },
        })
        .collect();
    Some(GroupDescription {
        state: g.state.name(),
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol,
        members,
    })
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// The groups this shard coordinates.
pub fn list(state: &ShardState) -> Vec<GroupListing> {
    state
        .groups
        .all()
        .iter()
        .map(|g| {
            let g = g.borrow();
            GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            }
        })
        .collect()
}

/// Tombstones for the given offsets (and the group record when `group_too`).
fn tombstones(group_id: &str, offsets: &[(String, i32)], group_too: bool) -> Vec<store::KeyValue> {
    let mut records: Vec<store::KeyValue> = offsets
        .iter()
        .map(|(topic, partition)| {
            let key = Key::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
            };
            (key.encode(), None)
        })
        .collect();
    if group_too {
        let key = Key::Group {
            group: group_id.to_string(),
        };
        records.push((key.encode(), None));
    }
    records
}

/// DeleteGroups for one group.
pub async fn delete(state: Rc<ShardState>, group_id: String) -> i16 {
    let Some(group) = state.groups.get(&group_id) else {
        return error::GROUP_ID_NOT_FOUND;
    };
    let offsets: Vec<(String, i32)> = {
        let g = group.borrow();
        match g.state {
            GroupState::Dead => return error::GROUP_ID_NOT_FOUND,
            GroupState::Empty => {}
            _ => return error::NON_EMPTY_GROUP,
        }
        g.offsets.keys().cloned().collect()
    };
    // Forget it first so that no request finds it while the tombstones are written.
    state.groups.remove(&group_id);
    match store::write(&state, &group_id, tombstones(&group_id, &offsets, true)).await {
        Ok(_) => error::NONE,
        Err(e) => {
            tracing::error!(error = %e, "cannot write group tombstones");
            error::COORDINATOR_NOT_AVAILABLE
        }
    }
}

/// OffsetDelete: a group-level error, and one error per partition.
pub async fn delete_offsets(
    state: Rc<ShardState>,
    group_id: String,
    partitions: Vec<(String, i32)>,
) -> (i16, Vec<i16>) {
    let Some(group) = state.groups.get(&group_id) else {
        return (error::GROUP_ID_NOT_FOUND, Vec::new());
    };
    let (subscribed, active) = {
        let g = group.borrow();
        if g.state == GroupState::Dead {
            return (error::GROUP_ID_NOT_FOUND, Vec::new());
        }
        (g.subscribed_topics(), g.state != GroupState::Empty)
    };
    let mut errors = Vec::with_capacity(partitions.len());
    let mut deleting = Vec::new();
    for (topic, partition) in &partitions {
        let in_use = active
            && subscribed
                .as_ref()
                .is_none_or(|topics| topics.iter().any(|t| t == topic));
        if in_use {
            errors.push(error::GROUP_SUBSCRIBED_TO_TOPIC);
        } else {
            errors.push(error::NONE);
            if group
                .borrow()
                .offsets
                .contains_key(&(topic.clone(), *partition))
            {
                deleting.push((topic.clone(), *partition));
            }
        }
    }
    if !deleting.is_empty() {
        if let Err(e) =
            store::write(&state, &group_id, tombstones(&group_id, &deleting, false)).await
        {
            tracing::error!(error = %e, "cannot write offset tombstones");
            return (error::COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        let mut g = group.borrow_mut();
        for key in &deleting {
            g.offsets.remove(key);
        }
    }
    (error::NONE, errors)
}

/// Offsets retention (`offsets.retention.minutes`): the offsets of an Empty group expire once it
/// has been empty that long (a standalone group's, that long after each commit); a group left
/// with no members and no offsets is deleted.
pub async fn expire_offsets(state: &Rc<ShardState>) {
    let retention_ms = state.broker.config.groups.offsets_retention_ms as i64;
    let now = now_ms();
    for group in state.groups.all() {
        let (group_id, (expired, remove_group)) = {
            let g = group.borrow();
            (g.id.clone(), g.expired_offsets(now, retention_ms))
        };
        if expired.is_empty() && !remove_group {
            continue;
        }
        if remove_group {
            state.groups.remove(&group_id);
        } else {
            let mut g = group.borrow_mut();
            for k in &expired {
                g.offsets.remove(k);
            }
        }
        tracing::info!(group = %group_id, offsets = expired.len(), group_removed = remove_group, "offsets expired");
        if let Err(e) = store::write(
            state,
            &group_id,
            tombstones(&group_id, &expired, remove_group),
        )
        .await
        {
            tracing::error!(error = %e, "cannot write expired-offset tombstones");
        }
    }
}
