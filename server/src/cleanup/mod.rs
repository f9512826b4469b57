//! Cleanup policies, run on every shard for the partitions it owns: retention (`delete`: old
//! segments go by age and size) and compaction (`compact`: a key's older records go). Each is a
//! task of the shard; compaction's heavy I/O runs on the shard's own cleaner thread.

pub mod compaction;
pub mod retention;

use corelog_engine::runtime;

/// Starts this shard's cleanup tasks. Called once per shard at start-up.
pub fn start() {
    runtime::spawn(retention::run());
    runtime::spawn(compaction::run());
}
