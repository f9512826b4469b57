//! One transactional id's state (Kafka's `TransactionMetadata`) and its transitions, as pure
//! functions: each operation checks the request against the current state and, if it may go
//! on, returns the next state ([`Transit`]) to be written to `__transaction_state`; the state
//! changes only once that record is stored ([`TxnMetadata::apply`]). While a transit is being
//! written, `pending` holds its target so that any other request meanwhile gets
//! CONCURRENT_TRANSACTIONS (the coordinator's shard is one thread, but a write is an await).

use std::collections::BTreeSet;

use super::records::TxnValue;
use crate::handlers::error;

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`, with its ids (the `transaction_status` byte) and names (what
/// ListTransactions and DescribeTransactions show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// Kafka never lets a client use epoch `i16::MAX`, so that the coordinator can always fence
/// one more time: from `i16::MAX - 1` on, a new producer id is issued instead of a bump.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (in memory only: v0 records do not carry it).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last KIP-360 bump (in memory only), or -1.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current (or last) transaction started; -1 before the first.
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The state a transit being written leads to.
    pub pending: Option<TxnState>,
}

/// The next state of a transactional id, to be stored, then applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl Transit {
    /// The record value Kafka would write for it.
    pub fn value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }
}

/// What InitProducerId leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Store this transit, then answer its producer id and epoch.
    Store(Transit),
    /// An Ongoing transaction must be aborted first, with this fencing transit (epoch bumped):
    /// store it as PrepareAbort, write the markers, complete, then init again.
    AbortFirst(Transit),
}

impl TxnMetadata {
    /// A new transactional id: a fresh producer id with no epoch yet (the first init bumps it to
    /// 0), as Kafka creates it.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            pending: None,
        }
    }

    /// The state a stored record describes.
    pub fn from_value(transactional_id: &str, v: TxnValue) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            pending: None,
        }
    }

    fn transit(&self, state: TxnState, now_ms: i64) -> Transit {
        Transit {
            producer_id: self.producer_id,
            last_producer_id: self.last_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state,
            partitions: self.partitions.clone(),
            start_ms: self.start_ms,
            last_update_ms: now_ms,
        }
    }

    /// Makes a stored transit the current state.
    pub fn apply(&mut self, t: &Transit) {
        debug_assert!(
            t.state != TxnState::Empty || t.partitions.is_empty(),
            "an Empty transaction has no partitions"
        );
        self.producer_id = t.producer_id;
        self.last_producer_id = t.last_producer_id;
        self.producer_epoch = t.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.timeout_ms = t.timeout_ms;
        self.state = t.state;
        self.partitions = t.partitions.clone();
        self.start_ms = t.start_ms;
        self.last_update_ms = self.last_update_ms.max(t.last_update_ms);
        self.pending = None;
    }

    /// InitProducerId (Kafka's `prepareInitProducerIdTransit`). `expected`: the producer id and
    /// epoch a v3+ client sent (KIP-360); `new_producer_id` issues a producer id when the epoch
    /// is exhausted. Err: the error code to answer.
    pub fn prepare_init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        new_producer_id: impl FnOnce() -> Result<i64, i16>,
    ) -> Result<InitStep, i16> {
        if self.pending.is_some() {
            return Err(error::CONCURRENT_TRANSACTIONS);
        }
        // Kafka's isValidProducerId: a just-created id (epoch -1), the current producer id, or the
        // previous one with an exhausted epoch (a retry after a rotation whose answer was lost).
        let valid_id = |(pid, epoch): (i64, i16)| {
            self.producer_epoch == NO_PRODUCER_EPOCH
                || pid == self.producer_id
                || (pid == self.last_producer_id && is_epoch_exhausted(epoch))
        };
        if !expected.is_none_or(valid_id) {
            return Err(error::PRODUCER_FENCED);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(error::CONCURRENT_TRANSACTIONS),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let expected_epoch = expected.map(|(_, e)| e);
                let mut t = self.transit(TxnState::Empty, now_ms);
                t.timeout_ms = timeout_ms;
                t.partitions.clear();
                t.start_ms = -1;
                if is_epoch_exhausted(self.producer_epoch)
                    && expected_epoch.is_none_or(|e| e == self.producer_epoch)
                {
                    // Rotation: a new producer id, epoch 0.
                    t.producer_id = new_producer_id()?;
                    t.last_producer_id = self.producer_id;
                    t.producer_epoch = 0;
                    t.last_producer_epoch = if expected.is_some() {
                        self.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    return Ok(InitStep::Store(t));
                }
                let bumped = self.producer_epoch + 1;
                let (epoch, last) = match expected_epoch {
                    None => (bumped, NO_PRODUCER_EPOCH),
                    Some(e)
                        if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch =>
                    {
                        (bumped, self.producer_epoch)
                    }
                    // A retry of an init that succeeded: the same epoch again.
                    Some(e) if e == self.last_producer_epoch => {
                        (self.producer_epoch, self.last_producer_epoch)
                    }
                    Some(_) => return Err(error::PRODUCER_FENCED),
                };
                t.producer_epoch = epoch;
                t.last_producer_epoch = last;
                Ok(InitStep::Store(t))
            }
            TxnState::Ongoing => Ok(InitStep::AbortFirst(self.prepare_fence(now_ms))),
            TxnState::Dead | TxnState::PrepareEpochFence => Err(error::CONCURRENT_TRANSACTIONS),
        }
    }

    /// Kafka's epoch fence: the Ongoing transaction is to be aborted under a bumped epoch (the
    /// markers carry it, so the old producer is fenced on every partition). Returns the
    /// PrepareAbort transit (Kafka's in-memory PrepareEpochFence is never written).
    pub fn prepare_fence(&self, now_ms: i64) -> Transit {
        debug_assert_eq!(self.state, TxnState::Ongoing);
        let mut t = self.transit(TxnState::PrepareAbort, now_ms);
        // Kafka refuses to fence at i16::MAX; a client never holds it (see is_epoch_exhausted),
        // so the epoch only stays when it is already there.
        t.producer_epoch = self.producer_epoch.saturating_add(1);
        t.last_producer_epoch = NO_PRODUCER_EPOCH;
        t
    }

    /// Checks a client's producer id and epoch (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn).
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        if self.producer_id != producer_id {
            Err(error::INVALID_PRODUCER_ID_MAPPING)
        } else if self.producer_epoch != epoch {
            Err(error::PRODUCER_FENCED)
        } else {
            Ok(())
        }
    }

    /// AddPartitionsToTxn (Kafka's `handleAddPartitionsToTransaction`): Ok(None) when there is
    /// nothing to store (all already in the Ongoing transaction).
    pub fn prepare_add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &BTreeSet<(String, i32)>,
        now_ms: i64,
    ) -> Result<Option<Transit>, i16> {
        self.check_producer(producer_id, epoch)?;
        if self.pending.is_some() || self.state.is_prepare() {
            return Err(error::CONCURRENT_TRANSACTIONS);
        }
        if self.state == TxnState::Ongoing && partitions.is_subset(&self.partitions) {
            return Ok(None);
        }
        if !matches!(
            self.state,
            TxnState::Empty
                | TxnState::Ongoing
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
        ) {
            return Err(error::INVALID_TXN_STATE);
        }
        let mut t = self.transit(TxnState::Ongoing, now_ms);
        if self.state != TxnState::Ongoing {
            // A new transaction: it starts now, with only these partitions.
            t.start_ms = now_ms;
            t.partitions.clear();
        }
        t.partitions.extend(partitions.iter().cloned());
        Ok(Some(t))
    }

    /// EndTxn (Kafka's `endTransaction` from a client): Ok(None) when the transaction already
    /// ended this way (a retry).
    pub fn prepare_end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<Transit>, i16> {
        self.check_producer(producer_id, epoch)?;
        if self.pending.is_some() {
            return Err(error::CONCURRENT_TRANSACTIONS);
        }
        match (self.state, commit) {
            (TxnState::Ongoing, true) => Ok(Some(self.transit(TxnState::PrepareCommit, now_ms))),
            (TxnState::Ongoing, false) => Ok(Some(self.transit(TxnState::PrepareAbort, now_ms))),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(error::CONCURRENT_TRANSACTIONS)
            }
            _ => Err(error::INVALID_TXN_STATE),
        }
    }

    /// The Complete* transit after every marker of a Prepare* transaction was written.
    pub fn prepare_complete(&self, now_ms: i64) -> Transit {
        let next = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            s => panic!("completing a transaction in state {s:?}"),
        };
        let mut t = self.transit(next, now_ms);
        t.partitions.clear();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_new_id() -> Result<i64, i16> {
        panic!("no rotation expected")
    }

    fn stored(m: &mut TxnMetadata, t: &Transit) {
        m.apply(t);
    }

    fn init(m: &mut TxnMetadata, expected: Option<(i64, i16)>) -> Result<(i64, i16), i16> {
        match m.prepare_init(1000, expected, 10, no_new_id)? {
            InitStep::Store(t) => {
                stored(m, &t);
                Ok((m.producer_id, m.producer_epoch))
            }
            InitStep::AbortFirst(_) => panic!("unexpected abort"),
        }
    }

    fn parts(list: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn states_have_kafkas_ids_and_names() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::PrepareEpochFence.id(), 7);
        assert_eq!(TxnState::Dead.id(), 6);
        assert_eq!(TxnState::from_id(8), None);
    }

    #[test]
    fn init_bumps_the_epoch_and_a_zombie_is_fenced() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        assert_eq!(init(&mut m, None), Ok((7, 0)));
        assert_eq!(init(&mut m, None), Ok((7, 1)));
        // The epoch-0 producer is now a zombie.
        let p = parts(&[("a", 0)]);
        assert_eq!(
            m.prepare_add_partitions(7, 0, &p, 20),
            Err(error::PRODUCER_FENCED)
        );
        assert_eq!(
            m.prepare_add_partitions(8, 1, &p, 20),
            Err(error::INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(m.prepare_end(7, 0, true, 20), Err(error::PRODUCER_FENCED));
        assert_eq!(m.prepare_end(7, 1, true, 20), Err(error::INVALID_TXN_STATE));
    }

    #[test]
    fn kip_360_expected_epochs() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        assert_eq!(init(&mut m, None), Ok((7, 0)));
        // A client that knows (7, 0) bumps to 1 and the last epoch is kept.
        assert_eq!(init(&mut m, Some((7, 0))), Ok((7, 1)));
        assert_eq!(m.last_producer_epoch, 0);
        // Its retry (the answer was lost): the same epoch again.
        assert_eq!(init(&mut m, Some((7, 0))), Ok((7, 1)));
        // A stale epoch, or another producer id: fenced.
        assert_eq!(
            m.prepare_init(1000, Some((7, 5)), 0, no_new_id),
            Err(error::PRODUCER_FENCED)
        );
        assert_eq!(
            m.prepare_init(1000, Some((99, 1)), 0, no_new_id),
            Err(error::PRODUCER_FENCED)
        );
    }

    #[test]
    fn an_exhausted_epoch_rotates_the_producer_id() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        m.producer_epoch = i16::MAX - 1;
        let step = m.prepare_init(1000, None, 0, || Ok(8)).unwrap();
        let InitStep::Store(t) = step else {
            panic!("{step:?}")
        };
        assert_eq!(
            (t.producer_id, t.producer_epoch, t.last_producer_id),
            (8, 0, 7)
        );
    }

    #[test]
    fn a_transaction_runs_its_course() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        init(&mut m, None).unwrap();
        let t = m
            .prepare_add_partitions(7, 0, &parts(&[("a", 0)]), 100)
            .unwrap()
            .unwrap();
        assert_eq!((t.state, t.start_ms), (TxnState::Ongoing, 100));
        stored(&mut m, &t);
        // Already there: nothing to store.
        assert_eq!(
            m.prepare_add_partitions(7, 0, &parts(&[("a", 0)]), 150),
            Ok(None)
        );
        let t = m
            .prepare_add_partitions(7, 0, &parts(&[("b", 1)]), 200)
            .unwrap()
            .unwrap();
        assert_eq!(t.start_ms, 100, "the start stays");
        assert_eq!(t.partitions, parts(&[("a", 0), ("b", 1)]));
        stored(&mut m, &t);
        let t = m.prepare_end(7, 0, true, 300).unwrap().unwrap();
        assert_eq!(t.state, TxnState::PrepareCommit);
        stored(&mut m, &t);
        assert_eq!(
            m.prepare_end(7, 0, true, 300),
            Err(error::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            m.prepare_end(7, 0, false, 300),
            Err(error::INVALID_TXN_STATE)
        );
        assert_eq!(
            m.prepare_init(1000, None, 0, no_new_id),
            Err(error::CONCURRENT_TRANSACTIONS)
        );
        let t = m.prepare_complete(400);
        assert!(t.partitions.is_empty());
        stored(&mut m, &t);
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert_eq!(m.prepare_end(7, 0, true, 500), Ok(None), "a retried commit");
        assert_eq!(
            m.prepare_end(7, 0, false, 500),
            Err(error::INVALID_TXN_STATE)
        );
        // The next transaction starts afresh.
        let t = m
            .prepare_add_partitions(7, 0, &parts(&[("c", 2)]), 600)
            .unwrap()
            .unwrap();
        assert_eq!((t.start_ms, t.partitions.len()), (600, 1));
    }

    #[test]
    fn init_during_an_ongoing_transaction_fences_and_aborts_it() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        init(&mut m, None).unwrap();
        let t = m
            .prepare_add_partitions(7, 0, &parts(&[("a", 0)]), 100)
            .unwrap()
            .unwrap();
        stored(&mut m, &t);
        let step = m.prepare_init(1000, None, 200, no_new_id).unwrap();
        let InitStep::AbortFirst(t) = step else {
            panic!("{step:?}")
        };
        assert_eq!((t.state, t.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(t.partitions, parts(&[("a", 0)]));
        stored(&mut m, &t);
        let t = m.prepare_complete(300);
        stored(&mut m, &t);
        assert_eq!(init(&mut m, None), Ok((7, 2)));
        let mut busy = m.clone();
        busy.pending = Some(TxnState::Ongoing);
        assert_eq!(
            busy.prepare_init(1000, None, 0, no_new_id),
            Err(error::CONCURRENT_TRANSACTIONS)
        );
    }
}
