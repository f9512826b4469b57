//! The coordinator's operations, one per transaction API, run on the transactional id's
//! coordinator shard (the handlers route them there with [`super::on_coordinator`]). Each checks
//! the request against the state ([`super::metadata`]), stores the next state in
//! `__transaction_state`, and only then applies it and answers.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use corelog_engine::partition::now_ms;
use corelog_engine::runtime;

use super::markers::{write_markers, Marker};
use super::metadata::{InitStep, Transit, TxnMetadata, TxnState};
use super::store;
use crate::broker::ShardState;
use crate::handlers::error;

/// The coordinator epoch written in markers: always 0 on one node (no coordinator moves).
const COORDINATOR_EPOCH: i32 = 0;
/// First pause before retrying the markers of a transaction whose markers could not all be
/// written; it doubles up to [`MARKER_RETRY_MAX`].
const MARKER_RETRY_FIRST: Duration = Duration::from_millis(100);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(5);

type Txn = Rc<RefCell<TxnMetadata>>;

/// Stores `t` (the transaction's `pending` state meanwhile), then applies it. Err: the error
/// code to answer (the state is unchanged).
async fn persist(state: &ShardState, txn: &Txn, t: Transit) -> Result<(), i16> {
    let id = {
        let mut m = txn.borrow_mut();
        debug_assert!(m.pending.is_none(), "a second transit while one is pending");
        m.pending = Some(t.state);
        m.transactional_id.clone()
    };
    match store::write(state, &id, Some(&t.value())).await {
        Ok(()) => {
            txn.borrow_mut().apply(&t);
            Ok(())
        }
        Err(e) => {
            tracing::error!(transactional_id = %id, error = %e, "cannot write transaction state");
            txn.borrow_mut().pending = None;
            Err(error::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// What InitProducerId answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitAnswer {
    pub error: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl InitAnswer {
    fn error(error: i16) -> Self {
        InitAnswer {
            error,
            producer_id: -1,
            producer_epoch: -1,
        }
    }
}

/// InitProducerId with a transactional id (timeout already validated).
pub async fn init_producer_id(
    state: Rc<ShardState>,
    transactional_id: String,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> InitAnswer {
    let next_id = || {
        state.broker.producer_ids.next_id().map_err(|e| {
            tracing::error!(error = %e, "cannot reserve a producer id block");
            error::UNKNOWN_SERVER_ERROR
        })
    };
    let txn = match state.txns.get(&transactional_id) {
        Some(t) => t,
        None => match next_id() {
            Ok(pid) => state.txns.insert(TxnMetadata::new(
                &transactional_id,
                pid,
                timeout_ms,
                now_ms(),
            )),
            Err(e) => return InitAnswer::error(e),
        },
    };
    // At most twice: once more after aborting an Ongoing transaction.
    for _ in 0..2 {
        let step = txn
            .borrow()
            .prepare_init(timeout_ms, expected, now_ms(), next_id);
        match step {
            Err(e) => return InitAnswer::error(e),
            Ok(InitStep::Store(t)) => {
                let answer = InitAnswer {
                    error: error::NONE,
                    producer_id: t.producer_id,
                    producer_epoch: t.producer_epoch,
                };
                return match persist(&state, &txn, t).await {
                    Ok(()) => {
                        tracing::info!(
                            %transactional_id,
                            producer_id = answer.producer_id,
                            producer_epoch = answer.producer_epoch,
                            "initialized transactional id"
                        );
                        answer
                    }
                    Err(e) => InitAnswer::error(e),
                };
            }
            Ok(InitStep::AbortFirst(t)) => {
                tracing::info!(%transactional_id, "aborting the ongoing transaction of a re-initialized producer");
                if let Err(e) = persist(&state, &txn, t).await {
                    return InitAnswer::error(e);
                }
                if !complete(&state, &txn).await {
                    // The abort is decided and retried; the client retries its init.
                    complete_in_background(state.clone(), txn.clone());
                    return InitAnswer::error(error::CONCURRENT_TRANSACTIONS);
                }
            }
        }
    }
    InitAnswer::error(error::CONCURRENT_TRANSACTIONS)
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets` partition):
/// one error for all of `partitions`.
pub async fn add_partitions(
    state: Rc<ShardState>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    partitions: BTreeSet<(String, i32)>,
) -> i16 {
    let Some(txn) = state.txns.get(&transactional_id) else {
        return error::INVALID_PRODUCER_ID_MAPPING;
    };
    let step =
        txn.borrow()
            .prepare_add_partitions(producer_id, producer_epoch, &partitions, now_ms());
    match step {
        Err(e) => e,
        Ok(None) => error::NONE,
        Ok(Some(t)) => match persist(&state, &txn, t).await {
            Ok(()) => error::NONE,
            Err(e) => e,
        },
    }
}

/// EndTxn: answered once the outcome is stored and, normally, the markers are written and the
/// completion is stored too.
pub async fn end_txn(
    state: Rc<ShardState>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> i16 {
    let Some(txn) = state.txns.get(&transactional_id) else {
        return error::INVALID_PRODUCER_ID_MAPPING;
    };
    let step = txn
        .borrow()
        .prepare_end(producer_id, producer_epoch, commit, now_ms());
    let t = match step {
        Err(e) => return e,
        Ok(None) => return error::NONE,
        Ok(Some(t)) => t,
    };
    if let Err(e) = persist(&state, &txn, t).await {
        return e;
    }
    if !complete(&state, &txn).await {
        complete_in_background(state.clone(), txn);
    }
    error::NONE
}

/// Writes the markers of a Prepare* transaction and stores its Complete* state. False: not done
/// (a marker or the record could not be written, or another completion is under way); the
/// transaction stays in Prepare* with the partitions still lacking a marker.
pub async fn complete(state: &ShardState, txn: &Txn) -> bool {
    let (id, partitions, marker, target) = {
        let m = txn.borrow();
        if !m.state.is_prepare() || m.pending.is_some() {
            return false;
        }
        let commit = m.state == TxnState::PrepareCommit;
        let target = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let partitions: Vec<(String, i32)> = m.partitions.iter().cloned().collect();
        let marker = Marker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: COORDINATOR_EPOCH,
            commit,
        };
        (m.transactional_id.clone(), partitions, marker, target)
    };
    txn.borrow_mut().pending = Some(target);
    let targets: Vec<(String, u32)> = partitions
        .iter()
        .map(|(t, p)| (t.clone(), u32::try_from(*p).unwrap_or(u32::MAX)))
        .collect();
    let results = write_markers(targets, marker).await;
    debug_assert_eq!(results.len(), partitions.len(), "one result per partition");
    let snapshot = state.broker.metadata.snapshot();
    let mut failed = 0usize;
    {
        let mut m = txn.borrow_mut();
        for ((topic, p), result) in partitions.iter().zip(results) {
            match result {
                Ok(()) => {}
                // A deleted topic (or partition) needs no marker any more, as in Kafka.
                Err((code, _))
                    if code == error::UNKNOWN_TOPIC_OR_PARTITION
                        && snapshot
                            .topic(topic)
                            .is_none_or(|t| *p < 0 || *p as u32 >= t.partitions) => {}
                // The partition already holds a newer epoch of this producer: nothing of this
                // transaction's epoch can still be open there, and retrying would never succeed.
                Err((code, message)) if code == error::INVALID_PRODUCER_EPOCH => {
                    tracing::warn!(transactional_id = %id, topic = %topic, partition = p, %message, "a partition refused an older-epoch marker; treating it as written");
                }
                Err((code, message)) => {
                    failed += 1;
                    tracing::warn!(transactional_id = %id, topic = %topic, partition = p, code, %message, "cannot write a transaction marker; will retry");
                    continue;
                }
            }
            // Kafka's removePartition: this one has its marker.
            m.partitions.remove(&(topic.clone(), *p));
        }
        if failed > 0 {
            m.pending = None;
            return false;
        }
        m.pending = None;
    }
    let t = txn.borrow().prepare_complete(now_ms());
    match persist(state, txn, t).await {
        Ok(()) => {
            tracing::debug!(transactional_id = %id, state = target.name(), "transaction completed");
            true
        }
        Err(_) => false,
    }
}

/// Retries [`complete`] until it succeeds, the transaction is no longer in Prepare*, or the
/// broker shuts down.
pub fn complete_in_background(state: Rc<ShardState>, txn: Txn) {
    runtime::spawn(async move {
        let mut pause = MARKER_RETRY_FIRST;
        loop {
            if !txn.borrow().state.is_prepare() {
                return;
            }
            if complete(&state, &txn).await {
                return;
            }
            if state.broker.shutting_down.load(Ordering::Relaxed) {
                return;
            }
            runtime::sleep(pause).await;
            pause = (pause * 2).min(MARKER_RETRY_MAX);
        }
    });
}

/// Aborts, with the epoch bumped (Kafka's PrepareEpochFence), every Ongoing transaction of this
/// shard open longer than its timeout: the producer that opened it is fenced.
pub async fn abort_timed_out(state: &Rc<ShardState>) {
    let now = now_ms();
    for txn in state.txns.all() {
        let t = {
            let m = txn.borrow();
            if m.state != TxnState::Ongoing
                || m.pending.is_some()
                || m.start_ms + i64::from(m.timeout_ms) > now
            {
                continue;
            }
            tracing::info!(
                transactional_id = %m.transactional_id,
                producer_id = m.producer_id,
                producer_epoch = m.producer_epoch,
                timeout_ms = m.timeout_ms,
                "aborting a timed-out transaction"
            );
            m.prepare_fence(now)
        };
        if persist(state, &txn, t).await.is_ok() && !complete(state, &txn).await {
            complete_in_background(state.clone(), txn);
        }
    }
}

/// Forgets transactional ids with no transaction for `transactional.id.expiration.ms` (a
/// tombstone in `__transaction_state`), as Kafka does.
pub async fn expire_ids(state: &Rc<ShardState>) {
    let expiration_ms = i64::try_from(state.broker.config.txn.id_expiration_ms).unwrap_or(i64::MAX);
    let now = now_ms();
    for txn in state.txns.all() {
        let id = {
            let mut m = txn.borrow_mut();
            let idle = matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            );
            if !idle || m.pending.is_some() || m.last_update_ms.saturating_add(expiration_ms) > now
            {
                continue;
            }
            m.pending = Some(TxnState::Dead);
            m.transactional_id.clone()
        };
        match store::write(state, &id, None).await {
            Ok(()) => {
                txn.borrow_mut().state = TxnState::Dead;
                txn.borrow_mut().pending = None;
                state.txns.remove(&id);
                tracing::info!(transactional_id = %id, "transactional id expired");
            }
            Err(e) => {
                tracing::error!(transactional_id = %id, error = %e, "cannot write an expiry tombstone");
                txn.borrow_mut().pending = None;
            }
        }
    }
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub state: &'static str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    /// By topic, partitions ascending.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// DescribeTransactions for one id (None: unknown).
pub fn describe(state: &ShardState, transactional_id: &str) -> Option<TxnDescription> {
    let txn = state.txns.get(transactional_id)?;
    let m = txn.borrow();
    if m.state == TxnState::Dead {
        return None;
    }
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((name, ps)) if name == t => ps.push(*p),
            _ => topics.push((t.clone(), vec![*p])),
        }
    }
    Some(TxnDescription {
        state: m.state.name(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        timeout_ms: m.timeout_ms,
        start_ms: m.start_ms,
        topics,
    })
}

/// A transaction as ListTransactions shows it.
#[derive(Debug, Clone)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: &'static str,
}

/// ListTransactions' filters (empty: no filter; `min_duration_ms` < 0: none).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Vec<TxnState>,
    pub producer_ids: Vec<i64>,
    pub min_duration_ms: i64,
}

/// This shard's transactional ids that pass `filter` (Kafka's `listTransactionStates`: a
/// duration filter keeps transactions running longer than it).
pub fn list(state: &ShardState, filter: &ListFilter) -> Vec<TxnListing> {
    let now = now_ms();
    state
        .txns
        .all()
        .iter()
        .filter_map(|txn| {
            let m = txn.borrow();
            let keep = m.state != TxnState::Dead
                && (filter.states.is_empty() || filter.states.contains(&m.state))
                && (filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id))
                && (filter.min_duration_ms < 0 || now - m.start_ms > filter.min_duration_ms);
            keep.then(|| TxnListing {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state.name(),
            })
        })
        .collect()
}
