//! The records of `__transaction_state`, in Kafka's own layout (`TransactionLogKey` and
//! `TransactionLogValue` v0), so that Kafka's tools read our segments
//! (`kafka-dump-log --transaction-log-decoder`):
//!
//! - key `{version: i16 = 0, transactional_id: string}`;
//! - value `{version: i16 = 0, producer_id: i64, producer_epoch: i16, transaction_timeout_ms:
//!   i32, transaction_status: i8, transaction_partitions: [{topic: string, partition_ids:
//!   [i32]}]? (null when Empty), transaction_last_update_timestamp_ms: i64,
//!   transaction_start_timestamp_ms: i64}`.
//!
//! A null value (tombstone) forgets the transactional id (it expired). v0 carries neither the
//! last producer id nor the last epoch (v1's tagged fields): like a Kafka broker reading v0, a
//! restarted coordinator knows only the current producer id and epoch.

use std::collections::BTreeSet;

use super::metadata::TxnState;
use crate::wire::{put_i16, put_string, Reader};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
/// Bytes of a partitions entry's fixed part (topic length + array length): bounds array lengths.
const MIN_TOPIC_ENTRY_BYTES: usize = 2 + 4;
/// Bytes of one partition id.
const PARTITION_ID_BYTES: usize = 4;

/// One stored transaction state (what a record's value holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    put_i16(&mut out, KEY_VERSION);
    put_string(&mut out, transactional_id);
    out
}

pub fn decode_key(buf: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        KEY_VERSION => r.string(),
        v => Err(format!("unknown transaction log key version {v}")),
    }
}

impl TxnValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        put_i16(&mut out, VALUE_VERSION);
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        put_i16(&mut out, self.producer_epoch);
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(self.state.id() as u8);
        if self.state == TxnState::Empty {
            // Kafka writes an Empty transaction's partitions as null.
            debug_assert!(
                self.partitions.is_empty(),
                "an Empty transaction has partitions"
            );
            out.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
            for (topic, p) in &self.partitions {
                match topics.last_mut() {
                    Some((t, ps)) if t == topic => ps.push(*p),
                    _ => topics.push((topic.as_str(), vec![*p])),
                }
            }
            out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
            for (topic, ps) in topics {
                put_string(&mut out, topic);
                out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
                for p in ps {
                    out.extend_from_slice(&p.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&self.last_update_ms.to_be_bytes());
        out.extend_from_slice(&self.start_ms.to_be_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> Result<TxnValue, String> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        if version != VALUE_VERSION {
            return Err(format!(
                "unsupported transaction log value version {version}"
            ));
        }
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let status = r.i8()?;
        let state = TxnState::from_id(status)
            .ok_or_else(|| format!("unknown transaction status {status}"))?;
        let mut partitions = BTreeSet::new();
        if let Some(n) = r.nullable_array_len(MIN_TOPIC_ENTRY_BYTES)? {
            for _ in 0..n {
                let topic = r.string()?;
                let count = r.array_len(PARTITION_ID_BYTES)?;
                for _ in 0..count {
                    partitions.insert((topic.clone(), r.i32()?));
                }
            }
        }
        Ok(TxnValue {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms: r.i64()?,
            start_ms: r.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(state: TxnState) -> TxnValue {
        let partitions = if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            BTreeSet::from([
                ("a".to_string(), 0),
                ("a".to_string(), 3),
                ("b".to_string(), 1),
            ])
        };
        TxnValue {
            producer_id: 4711,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn values_round_trip_and_match_kafkas_bytes() {
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let v = sample(state);
            assert_eq!(TxnValue::decode(&v.encode()).unwrap(), v);
        }
        // The exact bytes of an Ongoing value with partitions a-0, a-3, b-1.
        let bytes = sample(TxnState::Ongoing).encode();
        let mut want = vec![0, 0];
        want.extend_from_slice(&4711i64.to_be_bytes());
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'a']);
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&0i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'b']);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        want.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(bytes, want);
        // Empty: null partitions.
        let empty = sample(TxnState::Empty).encode();
        assert_eq!(&empty[17..21], &(-1i32).to_be_bytes());
    }

    #[test]
    fn keys_round_trip_and_damage_is_an_error() {
        let k = encode_key("my-txn");
        assert_eq!(k, [0, 0, 0, 6, b'm', b'y', b'-', b't', b'x', b'n']);
        assert_eq!(decode_key(&k).unwrap(), "my-txn");
        assert!(decode_key(&[0, 1, 0, 0]).is_err());
        let v = sample(TxnState::Ongoing).encode();
        for cut in 0..v.len() {
            assert!(TxnValue::decode(&v[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = v.clone();
        bad[16] = 9; // status 9 does not exist
        assert!(TxnValue::decode(&bad).is_err());
        let mut lying = v;
        lying[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(TxnValue::decode(&lying).is_err());
    }
}
