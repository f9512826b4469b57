//! corelog's storage engine.
//!
//! Two halves that know nothing of Kafka's wire protocol:
//! - [`runtime`]: one shard per core, each an OS thread pinned to its core that owns one io_uring
//!   ring and a small executor for the shard's tasks;
//! - the partition log: Kafka v2 record batches ([`batch`]) stored exactly as received in
//!   segments ([`segment`]) with sparse indexes ([`index`]) and aborted-transaction indexes
//!   ([`txn_index`]); the log's state machine ([`log`]),
//!   its I/O on the shard ([`partition`]), group-commit fsync ([`flush`]) and the shard's set of
//!   partitions ([`storage`]).
//!
//! # Guarantees
//! - Offsets are assigned by the log, in append order, with no gaps; a batch's bytes on disk are
//!   the bytes a fetch sends.
//! - An append acknowledged at [`partition::AckPoint::Durable`] has been fdatasynced (and its
//!   segment's directory entry too) and survives a crash of the process or the machine.
//! - An append acknowledged at [`partition::AckPoint::Written`] is in the page cache: it survives a
//!   crash of the process, not of the machine (unless `flush.messages` / `flush.ms` say otherwise).
//! - Recovery CRC-checks every batch after the last durable checkpoint, truncates a torn or
//!   corrupt tail and rebuilds missing or damaged indexes; corrupt data is never served.

pub mod batch;
pub mod cleaner;
pub mod flush;
pub mod index;
pub mod log;
pub mod partition;
pub mod reaper;
pub mod runtime;
pub mod segment;
pub mod storage;
pub mod txn_index;
