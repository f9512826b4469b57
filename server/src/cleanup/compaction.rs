//! Compaction on one shard: picks the dirtiest compacted partition the shard owns, has the
//! shard's cleaner thread clean it off the shard, and installs the result on the shard.
//!
//! The cleaner thread runs under `SCHED_IDLE` and paces its I/O to
//! `log.cleaner.io.max.bytes.per.second`, so that cleaning takes what the shards leave: the
//! shard itself only plans (metadata) and installs (renames), never reads or writes segments
//! for the cleaner.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
        // Kafka's dedupe buffer is shared by all its cleaner threads; here each shard has one.
        dedupe_buffer_bytes: config.dedupe_buffer_bytes / state.broker.shard_count() as u64,
        io_max_bytes_per_second: config.io_max_bytes_per_second,
    };
    let backoff = Duration::from_millis(config.backoff_ms.max(1));
    let mut throttle = Some(Throttle::new(limits.io_max_bytes_per_second));
    // Partitions whose cleaning failed, and when they may be tried again (Kafka marks such a
    // log uncleanable; without this the dirtiest failing log would starve every other one).
    let mut uncleanable: HashMap<(String, u32), Instant> = HashMap::new();
    while !state.broker.shutting_down.load(Ordering::SeqCst) {
        uncleanable.retain(|_, until| *until > Instant::now());
        // The cleaner never reaches an open transaction's records (Kafka bounds the cleanable
        // range by the first unstable offset too).
        let first_unstable = |p: &Partition| {
            state
                .producers
                .get(&p.topic, p.partition)
                .and_then(|s| s.borrow().first_unstable_offset())
        };
        let Some((partition, job)) = dirtiest(
            &state.storage.partitions(),
            &uncleanable,
            now_ms(),
            first_unstable,
        ) else {
            runtime::sleep(backoff).await;
            continue;
        };
        let key = (partition.topic.clone(), partition.partition);
        let (dirty_ratio, forced) = (job.dirty_ratio, job.forced_by_max_compaction_lag());
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
                tracing::warn!(topic = %partition.topic, partition = partition.partition, error = %e, retry_in_s = UNCLEANABLE_RETRY.as_secs(), "cleaning failed; the log is left uncleaned for a while");
                uncleanable.insert(key, Instant::now() + UNCLEANABLE_RETRY);
                continue;
            }
        };
        let (bytes_read, bytes_written) = (cleaned.bytes_read(), cleaned.bytes_written());
        match partition.install_cleaned(cleaned) {
            Ok(report) if report.installed => tracing::info!(
                topic = %partition.topic,
                partition = partition.partition,
                dirty_ratio,
                forced_by_max_compaction_lag = forced,
                segments_before = report.segments_before,
                segments_after = report.segments_after,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                bytes_read,
                bytes_written,
                records_removed = report.records_removed,
                tombstones_removed = report.tombstones_removed,
                keyless_removed = report.keyless_removed,
                cleaned_up_to = report.cleaned_up_to,
                "compacted"
            ),
            Ok(_) => tracing::debug!(
                topic = %partition.topic,
                partition = partition.partition,
                "log changed while it was cleaned; the result was discarded"
            ),
            Err(e) => {
                // The log is offline until the broker reopens it (which finishes the swap).
                tracing::error!(topic = %partition.topic, partition = partition.partition, error = %e, "installing a cleaned log failed; the partition is offline until restart");
                uncleanable.insert(key, Instant::now() + UNCLEANABLE_RETRY);
            }
        }
        // Let the shard's own tasks run between two cleanings.
        runtime::yield_now().await;
    }
}

/// How long a partition whose cleaning failed is left alone.
const UNCLEANABLE_RETRY: Duration = Duration::from_secs(10 * 60);

/// The partition most worth cleaning now (Kafka cleans the dirtiest log first), with its job.
fn dirtiest(
    partitions: &[Rc<Partition>],
    uncleanable: &HashMap<(String, u32), Instant>,
    now_ms: i64,
    first_unstable: impl Fn(&Partition) -> Option<i64>,
) -> Option<(Rc<Partition>, CleaningJob)> {
    partitions
        .iter()
        .filter(|p| p.log().config().cleanup_policy.compact)
        .filter(|p| !uncleanable.contains_key(&(p.topic.clone(), p.partition)))
        .filter_map(|p| {
            p.plan_cleaning(now_ms, first_unstable(p))
                .map(|job| (p.clone(), job))
        })
        .max_by(|a, b| a.1.dirty_ratio.total_cmp(&b.1.dirty_ratio))
}
