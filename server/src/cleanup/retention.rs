//! Retention on one shard: every `log.retention.check.interval.ms`, roll active segments that are
//! `segment.ms` old and delete segments past `retention.ms` / `retention.bytes` in the partitions
//! whose `cleanup.policy` includes `delete`.
//!
//! Both steps are cheap bookkeeping on the shard (a roll creates one file; a deletion writes the
//! log-start checkpoint and renames files); unlinking and the final close of deleted segment
//! files happen on the engine's reaper thread, so appends and fetches on this shard do not wait
//! for the file system to free the blocks.

use std::time::Duration;

use corelog_engine::partition::{now_ms, Partition};
use corelog_engine::runtime;

use crate::broker::{shard, ShardState};

/// Partitions checked between two yields to the shard's other tasks, so that a shard owning
/// thousands of partitions does not hold requests up for a whole pass.
const PARTITIONS_PER_YIELD: usize = 64;

/// The shard's retention task.
pub async fn run() {
    let state = shard();
    let interval = Duration::from_millis(state.broker.config.retention_check_interval_ms.max(1));
    loop {
        runtime::sleep(interval).await;
        if state
            .broker
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        check(&state, now_ms()).await;
    }
}

/// One pass over the partitions this shard owns, at wall-clock `now_ms`.
pub async fn check(state: &ShardState, now_ms: i64) {
    for (i, p) in state.storage.partitions().iter().enumerate() {
        if i > 0 && i % PARTITIONS_PER_YIELD == 0 {
            runtime::yield_now().await;
        }
        if !retention_applies(state, p) {
            continue;
        }
        match p.roll_if_due(now_ms) {
            Ok(true) => tracing::debug!(
                topic = %p.topic,
                partition = p.partition,
                "rolled the active segment by segment.ms"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                topic = %p.topic,
                partition = p.partition,
                error = %e,
                "could not roll the active segment"
            ),
        }
        match p.apply_retention(now_ms) {
            Ok(r) if !r.is_empty() => tracing::info!(
                topic = %p.topic,
                partition = p.partition,
                segments = r.deleted_segments.len(),
                by_time = r.deleted_by_time,
                bytes = r.deleted_bytes,
                log_start_offset = r.log_start_offset,
                "retention deleted segments"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                topic = %p.topic,
                partition = p.partition,
                error = %e,
                "retention could not delete segments"
            ),
        }
    }
}

/// `__consumer_offsets` of a data dir from before cleanup policies has no `cleanup.policy`
/// override and would fall to the broker's default (`delete`): its committed offsets must not
/// expire by retention, so retention runs there only when a policy was set explicitly.
fn retention_applies(state: &ShardState, p: &Partition) -> bool {
    if p.topic != crate::groups::OFFSETS_TOPIC {
        return true;
    }
    state
        .broker
        .metadata
        .snapshot()
        .topic(&p.topic)
        .is_some_and(|t| t.configs.contains_key("cleanup.policy"))
}
