//! Transactional offset commits (TxnOffsetCommit, KIP-98): the offsets a transactional producer
//! commits for a group inside its transaction (`sendOffsetsToTransaction`).
//!
//! They are written to the group's `__consumer_offsets` partition at once, as a transactional
//! batch of the producer (its id and epoch, the transactional bit: [`store::write_transactional`]),
//! and kept pending in the group, per producer. The transaction coordinator added that partition
//! to the transaction (AddOffsetsToTxn), so EndTxn writes the transaction's marker there; when it
//! lands ([`on_marker`]) a commit applies the producer's pending offsets (unless a newer commit of
//! the same partition is already applied, as Kafka compares log offsets) and an abort drops them.
//! Replay at start-up pairs the records with their markers the same way ([`complete`]), so a
//! commit is visible after a restart exactly when its marker was written.
//!
//! While offsets are pending, OffsetFetch with `require_stable` (v7+, what read_committed
//! consumers send, KIP-447) answers UNSTABLE_OFFSET_COMMIT for those partitions, and the consumer
//! retries: a consumer taking over a partition never starts from an offset that its
//! predecessor's transaction may still move.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Instant;

use corelog_engine::partition::now_ms;

use super::coordinator::{self, OffsetToCommit};
use super::store::{self, TxnProducer};
use super::{partition_for, ShardGroups};
use crate::broker::ShardState;
use crate::handlers::error;

/// TxnOffsetCommit's fields.
pub struct TxnCommitRequest {
    pub producer: TxnProducer,
    /// v3+: the member's generation, or -1 (with an empty member id: no member check).
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub offsets: Vec<OffsetToCommit>,
}

/// TxnOffsetCommit on the group's coordinator shard: one error per offset, in request order.
///
/// The group is made if it does not exist (a producer may commit for a group whose consumers
/// never committed, as in Kafka). A request with a member id or a generation is checked like an
/// OffsetCommit (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID), which is what fences a
/// zombie consumer-producer pair after a rebalance (KIP-447).
pub async fn commit(state: Rc<ShardState>, group_id: String, req: TxnCommitRequest) -> Vec<i16> {
    let n = req.offsets.len();
    let group = match state.groups.get(&group_id) {
        Some(g) => g,
        None if req.generation < 0 && req.member_id.is_empty() => {
            state
                .groups
                .get_or_create(&group_id, Instant::now(), now_ms())
        }
        None => return vec![error::ILLEGAL_GENERATION; n],
    };
    if req.generation >= 0 || !req.member_id.is_empty() {
        let verdict = group.borrow().validate_commit(
            req.generation,
            &req.member_id,
            req.instance_id.as_deref(),
        );
        if verdict != error::NONE {
            return vec![verdict; n];
        }
    }
    let (mut errors, records, accepted) =
        coordinator::offset_records(&state, &group_id, &req.offsets);
    if records.is_empty() {
        return errors;
    }
    match store::write_transactional(&state, &group_id, records, req.producer).await {
        Ok(base) => {
            let mut g = group.borrow_mut();
            let pending = g
                .pending_txn_offsets
                .entry(req.producer.producer_id)
                .or_default();
            for (topic, partition, c) in coordinator::committed_from(base, accepted) {
                pending.insert((topic, partition), c);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot write transactional offsets");
            for e in errors.iter_mut().filter(|e| **e == error::NONE) {
                *e = error::COORDINATOR_NOT_AVAILABLE;
            }
        }
    }
    errors
}

/// Called on the owner shard of `__consumer_offsets`-`partition` once a marker of `producer_id`
/// was appended there at `marker_offset`: the producer's pending offsets of the groups in that
/// partition are applied (commit) or dropped (abort).
pub fn on_marker(
    state: &ShardState,
    partition: u32,
    producer_id: i64,
    commit: bool,
    marker_offset: i64,
) {
    let count = super::offsets_partitions(&state.broker);
    let changed = complete(&state.groups, (partition, count), producer_id, commit);
    tracing::debug!(
        partition,
        producer_id,
        commit,
        marker_offset,
        groups = changed,
        "transactional offsets completed"
    );
}

/// Applies (commit) or drops (abort) the pending offsets of `producer_id` in the groups placed
/// on `partition` (of `partition_count`); returns how many groups had some. Live markers and
/// replayed ones both come here.
pub fn complete(
    groups: &ShardGroups,
    (partition, partition_count): (u32, u32),
    producer_id: i64,
    commit: bool,
) -> usize {
    let mut changed = 0;
    for g in groups.all() {
        let mut g = g.borrow_mut();
        if partition_for(&g.id, partition_count) != partition {
            continue;
        }
        let Some(pending) = g.pending_txn_offsets.remove(&producer_id) else {
            continue;
        };
        changed += 1;
        if commit {
            for ((topic, p), c) in pending {
                g.apply_offset(&topic, p, c);
            }
        }
    }
    changed
}

/// The partitions of a group with offsets still pending in some transaction (OffsetFetch's
/// `require_stable`).
pub fn unstable_partitions(state: &ShardState, group_id: &str) -> BTreeSet<(String, i32)> {
    state
        .groups
        .get(group_id)
        .map(|g| {
            g.borrow()
                .pending_txn_offsets
                .values()
                .flat_map(|p| p.keys().cloned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::group::Committed;

    fn committed(offset: i64, log_offset: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            log_offset,
        }
    }

    /// A group id placed on partition `want` of `count`.
    fn group_on(want: u32, count: u32) -> String {
        (0..)
            .map(|i| format!("g{i}"))
            .find(|g| partition_for(g, count) == want)
            .unwrap()
    }

    #[test]
    fn markers_apply_or_drop_pending_offsets_of_their_partition_only() {
        let groups = ShardGroups::default();
        let (count, now) = (4, Instant::now());
        let a = group_on(1, count);
        let b = group_on(2, count);
        for (id, log_offset) in [(&a, 10), (&b, 20)] {
            let g = groups.get_or_create(id, now, 0);
            let mut g = g.borrow_mut();
            g.apply_offset("t", 0, committed(5, log_offset - 5));
            g.pending_txn_offsets
                .entry(7)
                .or_default()
                .insert(("t".into(), 0), committed(50, log_offset));
        }
        // An abort marker in b's partition drops b's pending offset and leaves a's.
        assert_eq!(complete(&groups, (2, count), 7, false), 1);
        let offset = |id: &str| groups.get(id).unwrap().borrow().offsets[&("t".into(), 0)].offset;
        assert_eq!(offset(&b), 5);
        assert!(groups
            .get(&b)
            .unwrap()
            .borrow()
            .pending_txn_offsets
            .is_empty());
        assert_eq!(
            groups.get(&a).unwrap().borrow().pending_txn_offsets.len(),
            1
        );
        // A commit marker of another producer changes nothing; the right one applies.
        assert_eq!(complete(&groups, (1, count), 8, true), 0);
        assert_eq!(offset(&a), 5);
        assert_eq!(complete(&groups, (1, count), 7, true), 1);
        assert_eq!(offset(&a), 50);
    }

    #[test]
    fn a_newer_plain_commit_wins_over_an_older_transactional_one() {
        let groups = ShardGroups::default();
        let id = group_on(0, 1);
        let g = groups.get_or_create(&id, Instant::now(), 0);
        g.borrow_mut()
            .pending_txn_offsets
            .entry(3)
            .or_default()
            .insert(("t".into(), 1), committed(40, 100));
        // A plain OffsetCommit written after the transactional record.
        g.borrow_mut().apply_offset("t", 1, committed(60, 101));
        complete(&groups, (0, 1), 3, true);
        assert_eq!(g.borrow().offsets[&("t".into(), 1)].offset, 60);
    }
}
