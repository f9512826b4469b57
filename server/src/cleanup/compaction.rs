//! Compaction on one shard: picks the dirtiest compacted partition the shard owns, has the
//! shard's cleaner thread clean it off the shard, and installs the result.

/// The shard's compaction task.
pub async fn run() {}
