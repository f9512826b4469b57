//! The per-core runtime: one io_uring per thread, driven directly by a small executor.
//!
//! - [`executor`]: `!Send` tasks on one thread, [`block_on`], [`spawn`], timers;
//! - [`ring`]: the ring driver (op slots, cancellation safety, multishot, lazy submission);
//! - [`ops`]: ownership-passing async file, socket and splice ops, fixed buffers;
//! - [`shard`]: the set of pinned shard threads and message passing between them;
//! - [`placement`]: the deterministic `(topic, partition) → shard` map.

pub mod background;
pub mod executor;
pub mod ops;
pub mod placement;
pub mod ring;
pub mod shard;
mod slab;

pub use background::{BackgroundThread, Priority};
pub use executor::{block_on, sleep, sleep_until, spawn, yield_now, JoinHandle, TASKS_PER_TURN};
pub use placement::{placement, shard_for};
pub use ring::{CQ_ENTRIES, RING_ENTRIES};
pub use shard::{current_shard, RemoteHandle, ShardConfig, ShardRouter, ShardSet};
