//! Encoding uncompressed v2 batches ([`BatchBuilder`], [`control_batch`]) and decoding their
//! records ([`decode_records`]).
//!
//! A v2 record is:
//! `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//!  keyLength varint | key | valueLength varint | value | headerCount varint |
//!  (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*`
//! where every varint is zigzag-encoded and a length of -1 means null.

use super::cursor::Cursor;
use super::header::*;
use super::{validate_batch, BatchError};

/// Longest encoding of a zigzag varint (i32); Kafka rejects anything longer.
pub const MAX_VARINT_BYTES: usize = 5;
/// Longest encoding of a zigzag varlong (i64).
pub const MAX_VARLONG_BYTES: usize = 10;
/// Each header needs at least a key length and a value length byte; bounds the header count
/// before anything is allocated for it.
const MIN_HEADER_BYTES: usize = 2;

/// Largest `batchLength` the format can express.
const MAX_BATCH_LENGTH: usize = i32::MAX as usize;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` as a zigzag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends `v` as a zigzag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Length of a byte string as the i32 the format stores. Panics past `i32::MAX` bytes, which
/// no batch can hold anyway.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("length exceeds the i32 range of the v2 record format")
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, len_i32(b.len()));
            out.extend_from_slice(b);
        }
    }
}

/// Encoder of an uncompressed v2 record batch with a correct CRC. Offsets are assigned
/// densely: the n-th record gets `offsetDelta` n.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    record_count: i32,
    records: Vec<u8>,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    /// A builder for a batch whose `baseTimestamp` is `base_timestamp_ms`; record timestamps are
    /// stored as deltas from it. No producer, not transactional, `baseOffset` 0 and
    /// `partitionLeaderEpoch` -1: what a plain producer sends.
    pub fn new(base_timestamp_ms: i64) -> BatchBuilder {
        BatchBuilder {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            base_timestamp: base_timestamp_ms,
            max_timestamp: NO_TIMESTAMP,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            attributes: 0,
            record_count: 0,
            records: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn base_offset(mut self, base_offset: i64) -> BatchBuilder {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> BatchBuilder {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent producer fields.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> BatchBuilder {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> BatchBuilder {
        self.set_bit(TRANSACTIONAL_BIT, transactional);
        self
    }

    /// Marks the batch as holding control records. Only [`control_batch`] and tests need this.
    pub fn control(mut self, control: bool) -> BatchBuilder {
        self.set_bit(CONTROL_BIT, control);
        self
    }

    fn set_bit(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Appends a record (chaining form of [`BatchBuilder::push_record`]).
    pub fn record(
        mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        timestamp_ms: i64,
    ) -> BatchBuilder {
        self.push_record(key, value, headers, timestamp_ms);
        self
    }

    /// Appends a record with the next offset delta.
    ///
    /// # Panics
    /// If the batch would exceed what the format can express (`i32::MAX` records or bytes).
    pub fn push_record(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        timestamp_ms: i64,
    ) {
        let offset_delta = self.record_count;
        self.record_count = self
            .record_count
            .checked_add(1)
            .expect("record count exceeds i32::MAX");

        let body = &mut self.scratch;
        body.clear();
        body.push(0); // record attributes: unused in v2
        put_varlong(body, timestamp_ms.wrapping_sub(self.base_timestamp));
        put_varint(body, offset_delta);
        put_nullable(body, key);
        put_nullable(body, value);
        put_varint(body, len_i32(headers.len()));
        for (k, v) in headers {
            put_nullable(body, Some(k.as_bytes()));
            put_nullable(body, Some(v));
        }
        put_varint(&mut self.records, len_i32(body.len()));
        self.records.extend_from_slice(body);
        assert!(
            self.records.len() <= MAX_BATCH_LENGTH - (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES),
            "batch exceeds the i32 batchLength of the v2 format"
        );
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        if offset_delta == 0 {
            self.max_timestamp = timestamp_ms;
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// Size of the batch [`BatchBuilder::build`] would return.
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER_BYTES + self.records.len()
    }

    /// Encodes the batch. A builder with no records yields a batch with `recordCount` 0 and
    /// `lastOffsetDelta` -1, which [`validate_batch`] rejects (useful in tests).
    pub fn build(&self) -> Vec<u8> {
        let total = self.encoded_len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&len_i32(total - LOG_OVERHEAD_BYTES).to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]); // CRC, filled in below
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&(self.record_count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
        out.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Kind of a transaction marker (the control record key's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    Abort,
    Commit,
}

impl ControlRecordType {
    /// The `type` field of the control record key.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }

    /// Reads a control record key (`version i16, type i16`); `None` for anything else.
    pub fn from_key(key: &[u8]) -> Option<ControlRecordType> {
        if key.len() < CONTROL_KEY_BYTES {
            return None;
        }
        match read_i16(key, 2) {
            0 => Some(ControlRecordType::Abort),
            1 => Some(ControlRecordType::Commit),
            _ => None,
        }
    }
}

/// Version of the control record key and of the end-transaction marker value written here.
const CONTROL_RECORD_VERSION: i16 = 0;
const CONTROL_KEY_BYTES: usize = 4;

/// Encodes a transaction marker batch as the coordinator writes it: one control record, control
/// and transactional bits set, `baseSequence` -1. Key: `version i16 = 0, type i16`; value:
/// `version i16 = 0, coordinatorEpoch i32`.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlRecordType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = [0u8; CONTROL_KEY_BYTES];
    key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    let mut value = [0u8; 6];
    value[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    BatchBuilder::new(timestamp_ms)
        .producer(producer_id, producer_epoch, NO_SEQUENCE)
        .transactional(true)
        .control(true)
        .record(Some(&key), Some(&value), &[], timestamp_ms)
        .build()
}

/// One decoded record header. The key is kept as raw bytes (Kafka's are UTF-8 strings, but a
/// decoder that must not fail on foreign data should not insist on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// One decoded record, with its fields relative to the batch header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<RecordHeader>,
}

/// Decodes every record of an uncompressed batch (which is first checked with
/// [`validate_batch`], CRC included). Every length is checked against the bytes left before it
/// is used, so malformed input costs at most its own size in allocations. Fails if a record is
/// malformed, if a record's declared length and its fields disagree, or if bytes remain after
/// `recordCount` records.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
    let header = validate_batch(batch)?;
    let compression = header.compression()?;
    if compression != Compression::None {
        return Err(BatchError::Compressed(compression));
    }
    decode_record_body(&batch[RECORDS_OFFSET..header.total_bytes()], &header)
}

/// Decodes the `header.record_count` records of a batch body (uncompressed, or already
/// decompressed by [`super::codec`]). Every length is checked against the bytes left.
pub(crate) fn decode_record_body(
    body: &[u8],
    header: &BatchHeader,
) -> Result<Vec<Record>, BatchError> {
    let count = header.record_count.max(0) as usize;
    // The capacity is bounded by what the body could hold, not by the declared count.
    let mut records = Vec::with_capacity(count.min(body.len() / MIN_RECORD_BYTES));
    let mut outer = Cursor::new(body, 0);
    for index in 0..count {
        outer.index = index;
        let len = outer.varint()?;
        if len < 0 {
            return Err(outer.err("negative record length"));
        }
        let mut rec = Cursor::new(outer.bytes(len as usize)?, index);
        let attributes = rec.u8()? as i8;
        let timestamp_delta = rec.varlong()?;
        let offset_delta = rec.varint()?;
        let key = rec.nullable()?.map(<[u8]>::to_vec);
        let value = rec.nullable()?.map(<[u8]>::to_vec);
        let header_count = rec.varint()?;
        if header_count < 0 {
            return Err(rec.err("negative header count"));
        }
        let header_count = header_count as usize;
        if header_count > rec.remaining() / MIN_HEADER_BYTES {
            return Err(rec.err("header count exceeds the record"));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key_len = rec.varint()?;
            if key_len < 0 {
                return Err(rec.err("negative header key length"));
            }
            let key = rec.bytes(key_len as usize)?.to_vec();
            let value = rec.nullable()?.map(<[u8]>::to_vec);
            headers.push(RecordHeader { key, value });
        }
        if rec.remaining() != 0 {
            return Err(rec.err("record length disagrees with its fields"));
        }
        records.push(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        });
    }
    if outer.remaining() != 0 {
        return Err(BatchError::BadRecord {
            index: count,
            reason: "bytes remain after recordCount records",
        });
    }
    Ok(records)
}
