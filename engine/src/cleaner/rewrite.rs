//! Cleaning one batch: which of its records survive, and the bytes of the batch that holds them.
//!
//! A batch is copied byte for byte when all its records stay and it needs no delete horizon; it
//! is dropped when none stay (an empty batch is never written); otherwise it is rebuilt with the
//! same base offset, `lastOffsetDelta` (so the batch keeps its offset range, as Kafka's cleaner
//! does, and producer state derived from it stays right), attributes, producer fields and
//! partition leader epoch, each surviving record with its own offset delta and timestamp, and
//! the body recompressed with the batch's own codec.
//!
//! Tombstones follow KIP-534: the first cleaning that keeps a tombstone rewrites its batch with
//! [`DELETE_HORIZON_BIT`] set and `baseTimestamp` = that cleaning's time + `delete.retention.ms`
//! (record timestamp deltas are re-based on it, so every record's absolute timestamp,
//! `baseTimestamp + timestampDelta` for clients, is unchanged); a cleaning after the horizon
//! removes the batch's tombstones. The horizon is in the log, so it survives restarts.

use std::io;

use super::keymap::KeyMap;
use super::records::{self, RecordView};
use super::AbortedRanges;
use crate::batch::codec;
use crate::batch::{
    BatchHeader, TimestampType, BATCH_HEADER_BYTES, DELETE_HORIZON_BIT, LOG_OVERHEAD_BYTES,
    MAGIC_V2,
};

/// What the cleaning of one pass knows.
#[derive(Debug)]
pub struct Pass<'a> {
    pub map: &'a KeyMap,
    /// Every offset below this was in the key map of this pass or of an earlier one, so a
    /// tombstone below it has already removed every older record of its key.
    pub mapped_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: u64,
    /// The aborted transactions whose records the pass removes.
    pub aborted: &'a AbortedRanges,
}

/// Counts of what a pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Records removed (tombstones and keyless records included).
    pub records: u64,
    /// Tombstones removed because their delete horizon had passed.
    pub tombstones: u64,
    /// Records without a key: a compacted log cannot hold them (Kafka's cleaner drops them too).
    pub keyless: u64,
    /// The earliest delete horizon among the tombstones the pass kept: when the next pass may
    /// remove one even if nothing new was written (Kafka's `latestDeleteHorizon`).
    pub earliest_horizon: Option<i64>,
}

impl Removed {
    fn note_horizon(&mut self, horizon: i64) {
        self.earliest_horizon = Some(self.earliest_horizon.map_or(horizon, |h| h.min(horizon)));
    }
}

/// What becomes of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written as it is.
    Copy,
    /// Written as these bytes.
    Rebuilt(Vec<u8>),
    /// Nothing of it survives.
    Dropped,
}

fn invalid(base_offset: i64, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("batch at offset {base_offset} cannot be cleaned: {e}"),
    )
}

/// Cleans one stored batch (`bytes` is exactly the batch).
pub fn clean_batch(
    header: &BatchHeader,
    bytes: &[u8],
    pass: &Pass<'_>,
    removed: &mut Removed,
) -> io::Result<Outcome> {
    // Markers stay as they are (Kafka removes one once its transaction's records are gone and
    // delete.retention.ms has passed; corelog keeps them: they are small).
    if header.is_control() {
        return Ok(Outcome::Copy);
    }
    // An aborted transaction's records go whole (read_committed consumers never see them; a
    // read_uncommitted one sees a gap, as after Kafka's cleaner).
    if pass.aborted.holds(header) {
        removed.records += header.record_count.max(0) as u64;
        return Ok(Outcome::Dropped);
    }
    // Everything else, committed transactional records included, is compacted by key.
    let (header, body) = records::batch_body(bytes).map_err(|e| invalid(header.base_offset, e))?;
    let records = records::records(body.bytes(), header.record_count)
        .map_err(|e| invalid(header.base_offset, e))?;
    let horizon = (header.attributes & DELETE_HORIZON_BIT != 0).then_some(header.base_timestamp);
    let mut kept: Vec<&RecordView<'_>> = Vec::with_capacity(records.len());
    let mut needs_horizon = false;
    for record in &records {
        let offset = header.base_offset + i64::from(record.offset_delta);
        let Some(key) = record.key else {
            removed.records += 1;
            removed.keyless += 1;
            continue;
        };
        if pass.map.latest(key).is_some_and(|latest| latest > offset) {
            removed.records += 1;
            continue;
        }
        if !record.has_value && offset < pass.mapped_end {
            match horizon {
                Some(h) if pass.now_ms >= h => {
                    removed.records += 1;
                    removed.tombstones += 1;
                    continue;
                }
                Some(_) => {}
                None => needs_horizon = true,
            }
        }
        kept.push(record);
    }
    let keeps_tombstones = kept.iter().any(|r| !r.has_value);
    if kept.len() == records.len() && !needs_horizon {
        if let (true, Some(h)) = (keeps_tombstones, horizon) {
            removed.note_horizon(h);
        }
        return Ok(Outcome::Copy);
    }
    if kept.is_empty() {
        return Ok(Outcome::Dropped);
    }
    let new_horizon = if keeps_tombstones {
        horizon.or_else(|| {
            needs_horizon.then(|| {
                let retention = i64::try_from(pass.delete_retention_ms).unwrap_or(i64::MAX);
                pass.now_ms.saturating_add(retention)
            })
        })
    } else {
        None
    };
    if let Some(h) = new_horizon {
        removed.note_horizon(h);
    }
    Ok(Outcome::Rebuilt(encode_batch(&header, &kept, new_horizon)?))
}

/// Encodes `records` (a subset of `original`'s, in order) as a batch with `original`'s offset
/// range and fields, with or without a delete horizon.
fn encode_batch(
    original: &BatchHeader,
    records: &[&RecordView<'_>],
    horizon: Option<i64>,
) -> io::Result<Vec<u8>> {
    let codec = original
        .compression()
        .map_err(|e| invalid(original.base_offset, e))?;
    // Whatever the old base meant (first timestamp or horizon), a record's absolute timestamp
    // is base + delta.
    let absolute = |r: &RecordView<'_>| original.base_timestamp.wrapping_add(r.timestamp_delta);
    let base_timestamp = horizon.unwrap_or_else(|| absolute(records[0]));
    let max_timestamp = if original.timestamp_type() == TimestampType::LogAppendTime {
        original.max_timestamp
    } else {
        records
            .iter()
            .map(|r| absolute(r))
            .max()
            .expect("at least one record")
    };
    let mut body = Vec::new();
    let mut scratch = Vec::new();
    for r in records {
        // Only the timestamp delta can change: key, value and headers are copied as they are.
        scratch.clear();
        scratch.push(r.attributes);
        put_varlong(&mut scratch, absolute(r).wrapping_sub(base_timestamp));
        put_varint(&mut scratch, r.offset_delta);
        put_varint(&mut body, len_i32(scratch.len() + r.tail.len())?);
        body.extend_from_slice(&scratch);
        body.extend_from_slice(r.tail);
    }
    let body = codec::compress(codec, &body);
    let total = BATCH_HEADER_BYTES + body.len();
    let attributes = if horizon.is_some() {
        original.attributes | DELETE_HORIZON_BIT
    } else {
        original.attributes & !DELETE_HORIZON_BIT
    };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&original.base_offset.to_be_bytes());
    out.extend_from_slice(&len_i32(total - LOG_OVERHEAD_BYTES)?.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&original.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&original.producer_id.to_be_bytes());
    out.extend_from_slice(&original.producer_epoch.to_be_bytes());
    out.extend_from_slice(&original.base_sequence.to_be_bytes());
    out.extend_from_slice(&len_i32(records.len())?.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[crate::batch::ATTRIBUTES_OFFSET..]);
    out[crate::batch::CRC_OFFSET..crate::batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn len_i32(len: usize) -> io::Result<i32> {
    i32::try_from(len).map_err(|_| io::Error::other("cleaned batch exceeds the v2 format"))
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}
