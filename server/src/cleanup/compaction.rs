//! Compaction on one shard: picks the dirtiest compacted partition the shard owns, has the
//! shard's cleaner thread clean it off the shard, and installs the result on the shard.
//!
//! The cleaner thread runs under `SCHED_IDLE` and paces its I/O to
//! `log.cleaner.io.max.bytes.per.second`, so that cleaning takes what the shards leave: the
//! shard itself only plans (metadata) and installs (renames), never reads or writes segments
//! for the cleaner.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use corelog_engine::cleaner::{CleanerLimits, CleaningJob, Throttle};
use corelog_engine::partition::{now_ms, Partition};
use corelog_engine::runtime::{self, BackgroundThread, Priority};

use crate::broker::shard;

/// The shard's compaction task: runs until the broker shuts down.
pub async fn run() {
    let state = shard();
    let config = state.broker.config.cleaner.clone();
    if !config.enable {
        return;
    }
    let thread = match BackgroundThread::spawn(&format!("cleaner-{}", state.id), Priority::Idle) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(shard = state.id, error = %e, "could not start the log cleaner; compacted topics will not be compacted");
            return;
        }
    };
    let limits = CleanerLimits {
        dedupe_buffer_bytes: config.dedupe_buffer_bytes,
        io_max_bytes_per_second: config.io_max_bytes_per_second,
    };
    let backoff = Duration::from_millis(config.backoff_ms.max(1));
    let mut throttle = Some(Throttle::new(limits.io_max_bytes_per_second));
    while !state.broker.shutting_down.load(Ordering::SeqCst) {
        let Some((partition, job)) = dirtiest(&state.storage.partitions(), now_ms()) else {
            runtime::sleep(backoff).await;
            continue;
        };
        let mut paced = throttle
            .take()
            .expect("the throttle is back after each job");
        let (result, paced) = thread
            .run(move || {
                let result = job.run(&limits, &mut paced);
                (result, paced)
            })
            .await;
        throttle = Some(paced);
        let cleaned = match result {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %partition.topic, partition = partition.partition, error = %e, "cleaning failed; will retry");
                runtime::sleep(backoff).await;
                continue;
            }
        };
        match partition.install_cleaned(cleaned) {
            Ok(report) if report.installed => tracing::info!(
                topic = %partition.topic,
                partition = partition.partition,
                segments_before = report.segments_before,
                segments_after = report.segments_after,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                records_removed = report.records_removed,
                tombstones_removed = report.tombstones_removed,
                "compacted"
            ),
            Ok(_) => tracing::debug!(
                topic = %partition.topic,
                partition = partition.partition,
                "log changed while it was cleaned; the result was discarded"
            ),
            Err(e) => {
                tracing::warn!(topic = %partition.topic, partition = partition.partition, error = %e, "installing a cleaned log failed");
                runtime::sleep(backoff).await;
            }
        }
        // Let the shard's own tasks run between two cleanings.
        runtime::yield_now().await;
    }
}

/// The partition most worth cleaning now (Kafka cleans the dirtiest log first), with its job.
fn dirtiest(partitions: &[Rc<Partition>], now_ms: i64) -> Option<(Rc<Partition>, CleaningJob)> {
    partitions
        .iter()
        .filter(|p| p.log().config().cleanup_policy.compact)
        .filter_map(|p| p.plan_cleaning(now_ms).map(|job| (p.clone(), job)))
        .max_by(|a, b| a.1.dirty_ratio.total_cmp(&b.1.dirty_ratio))
}
