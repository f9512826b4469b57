//! Transactions (Kafka's transaction coordinator, KIP-98), transaction version 1.
//!
//! The map:
//! - **Coordinator** (this module's submodules, run on the owner shard of the transactional
//!   id's `__transaction_state` partition, `abs(javaHashCode(id)) %
//!   transaction.state.log.num.partitions` as Kafka places it): producer id and epoch per
//!   transactional id, the transaction's partitions and state (Empty, Ongoing, PrepareCommit,
//!   PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead), written to
//!   `__transaction_state` in Kafka's record layout before a request is answered, replayed at
//!   start-up; transactions found in PrepareCommit/PrepareAbort are completed then.
//! - **Markers** ([`markers`]): a commit or abort control batch appended to each partition of a
//!   transaction on its owner shard (Kafka's WriteTxnMarkers, done internally). Writing one ends
//!   the producer's open transaction on that partition: the last stable offset moves, an abort
//!   goes into the segment's aborted-transaction index, and on a `__consumer_offsets` partition
//!   the group coordinator applies or drops the transaction's offsets.
//! - **Partitions** (`crate::producer_state`): each producer's open transaction (its first
//!   offset) per partition, the last stable offset, replay at start-up.
//!
//! `transaction.version` is not advertised (finalized 0), so clients use the v1 flow:
//! AddPartitionsToTxn before producing to a partition, EndTxn to finish. KIP-890's implicit
//! adds and per-transaction epoch bumps are not implemented.

pub mod markers;

/// Kafka's internal topic of transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
