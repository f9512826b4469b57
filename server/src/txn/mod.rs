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
//!   [`metadata`]: the state and its transitions (pure); [`records`]: the record layout;
//!   [`store`]: writes and replay; [`coordinator`]: the operations the handlers call.
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
//!
//! EndTxn is answered once PrepareCommit/PrepareAbort is stored, every marker is written and
//! CompleteCommit/CompleteAbort is stored (stronger than Kafka, which answers after the prepare
//! record). If a marker cannot be written, the transaction stays in Prepare*, the coordinator
//! retries in the background, and the client is answered NONE: the outcome is decided and
//! durable.

pub mod coordinator;
pub mod markers;
pub mod metadata;
pub mod records;
pub mod store;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corelog_engine::runtime;

use crate::broker::{on_owner, shard, BrokerContext, ShardState};
use crate::internal_topic::InternalTopic;
use metadata::TxnMetadata;

/// Kafka's internal topic of transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// How often start-up completions look whether every shard has started.
const STARTED_POLL: Duration = Duration::from_millis(5);
/// How often the housekeeping loops look whether the broker is shutting down (and whether an
/// interval has passed).
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(100);

/// Partitions of `__transaction_state` (the existing topic's count wins over the config, as in
/// Kafka, where the topic is created once).
pub fn txn_state_partitions(broker: &BrokerContext) -> u32 {
    broker
        .metadata
        .snapshot()
        .topic(TXN_STATE_TOPIC)
        .map_or(broker.config.txn.state_log_partitions, |t| t.partitions)
}

/// The `__transaction_state` partition of a transactional id (Kafka's placement, the same
/// Java-hash placement as a group's).
pub fn state_partition_for(broker: &BrokerContext, transactional_id: &str) -> u32 {
    crate::groups::partition_for(transactional_id, txn_state_partitions(broker))
}

/// `__transaction_state` as an internal topic: created on first use, as Kafka does.
pub const TXN_STATE: InternalTopic = InternalTopic {
    name: TXN_STATE_TOPIC,
    ready: |b| &b.txn_state_topic_ready,
    partitions: |b| b.config.txn.state_log_partitions,
    configs: txn_state_topic_configs,
};

/// Creates `__transaction_state` on first use, and waits while another request is creating it.
pub async fn ensure_txn_state_topic() -> Result<(), String> {
    TXN_STATE.ensure().await
}

/// The configs `__transaction_state` is created with: those Kafka's transaction coordinator
/// gives it (`TransactionStateManager.transactionTopicConfigs`).
pub fn txn_state_topic_configs(broker: &BrokerContext) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            broker.config.txn.state_log_segment_bytes.to_string(),
        ),
        ("compression.type".to_string(), "uncompressed".to_string()),
    ])
}

/// Runs `f` on the coordinator shard of `transactional_id`, creating `__transaction_state`
/// first if needed. Err: the topic could not be created (answer COORDINATOR_NOT_AVAILABLE).
pub async fn on_coordinator<F, Fut, T>(transactional_id: &str, f: F) -> Result<T, String>
where
    F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    ensure_txn_state_topic().await?;
    let p = state_partition_for(&shard().broker, transactional_id);
    Ok(on_owner(TXN_STATE_TOPIC, p, f).await)
}

/// The transactional ids a shard coordinates (those of its `__transaction_state` partitions).
#[derive(Default)]
pub struct ShardTxns {
    txns: RefCell<HashMap<String, Rc<RefCell<TxnMetadata>>>>,
}

impl ShardTxns {
    pub fn get(&self, id: &str) -> Option<Rc<RefCell<TxnMetadata>>> {
        self.txns.borrow().get(id).cloned()
    }

    /// Adds (or, in replay, replaces) a transactional id's state.
    pub fn insert(&self, m: TxnMetadata) -> Rc<RefCell<TxnMetadata>> {
        let rc = Rc::new(RefCell::new(m));
        let id = rc.borrow().transactional_id.clone();
        self.txns.borrow_mut().insert(id, rc.clone());
        rc
    }

    pub fn remove(&self, id: &str) {
        self.txns.borrow_mut().remove(id);
    }

    pub fn all(&self) -> Vec<Rc<RefCell<TxnMetadata>>> {
        self.txns.borrow().values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.txns.borrow().len()
    }
}

/// After the shard loaded its transaction state: completes what was found in PrepareCommit or
/// PrepareAbort (Ongoing ones stay open until their timeout, as in Kafka), and starts the
/// housekeeping loops.
pub fn start(state: &Rc<ShardState>) {
    let prepared: Vec<_> = state
        .txns
        .all()
        .into_iter()
        .filter(|t| t.borrow().state.is_prepare())
        .collect();
    if !prepared.is_empty() {
        let state = state.clone();
        runtime::spawn(async move {
            // The markers go to partitions of every shard: wait until all are open.
            while !state.broker.all_shards_started.load(Ordering::Acquire) {
                if state.broker.shutting_down.load(Ordering::Relaxed) {
                    return;
                }
                runtime::sleep(STARTED_POLL).await;
            }
            for txn in prepared {
                let (id, s) = {
                    let m = txn.borrow();
                    (m.transactional_id.clone(), m.state)
                };
                tracing::info!("completing transaction {id} found in {}", s.name());
                coordinator::complete_in_background(state.clone(), txn);
            }
        });
    }
    runtime::spawn(housekeeping(state.clone()));
}

/// A shard's transaction housekeeping, until shutdown: timed-out transactions aborted every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, expired transactional ids
/// forgotten every `transaction.remove.expired.transaction.cleanup.interval.ms`.
async fn housekeeping(state: Rc<ShardState>) {
    let config = state.broker.config.txn.clone();
    let abort_every = Duration::from_millis(config.abort_timed_out_interval_ms);
    let expire_every = Duration::from_millis(config.remove_expired_interval_ms);
    let mut next_abort = Instant::now() + abort_every;
    let mut next_expire = Instant::now() + expire_every;
    loop {
        let now = Instant::now();
        let wake = next_abort.min(next_expire);
        runtime::sleep(wake.saturating_duration_since(now).min(HOUSEKEEPING_TICK)).await;
        if state.broker.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        if !state.broker.all_shards_started.load(Ordering::Acquire) {
            continue;
        }
        let now = Instant::now();
        if now >= next_abort {
            next_abort = now + abort_every;
            coordinator::abort_timed_out(&state).await;
        }
        if now >= next_expire {
            next_expire = now + expire_every;
            coordinator::expire_ids(&state).await;
        }
    }
}
