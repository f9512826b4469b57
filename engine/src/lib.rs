//! corelog's storage engine.
//!
//! Two halves that know nothing of Kafka's wire protocol:
//! - [`runtime`]: one shard per core, each an OS thread pinned to its core that owns one io_uring
//!   ring and a small executor for the shard's tasks;
//! - the partition log ([`batch`], [`index`], [`segment`], [`log`]): Kafka v2 record batches stored
//!   exactly as received, with group-commit fsync per shard ([`flush`]).

pub mod batch;
pub mod runtime;
