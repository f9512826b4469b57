//! Kafka v2 record batches, handled as bytes.
//!
//! corelog stores batches exactly as producers send them. The append path therefore validates
//! only the 61-byte header and the CRC-32C ([`validate_batch`]) and never decodes records: that
//! keeps appends O(header) plus one hardware CRC pass, and makes a compressed batch as cheap to
//! accept as an uncompressed one. The leader then patches the two fields the CRC does not cover
//! (`baseOffset`, `partitionLeaderEpoch`) in place, and, for LogAppendTime topics, the timestamp
//! fields followed by a CRC recompute ([`set_log_append_time`]).
//!
//! [`BatchBuilder`] is a real encoder of uncompressed batches (load generator, tests, control
//! markers) and [`decode_records`] a bounded decoder for them.
//!
//! Batch layout (all big endian):
//!
//! | offset | field                |
//! |-------:|----------------------|
//! |      0 | baseOffset i64       |
//! |      8 | batchLength i32      |
//! |     12 | partitionLeaderEpoch |
//! |     16 | magic i8 (= 2)       |
//! |     17 | crc u32 (CRC-32C of bytes 21..end) |
//! |     21 | attributes i16       |
//! |     23 | lastOffsetDelta i32  |
//! |     27 | baseTimestamp i64    |
//! |     35 | maxTimestamp i64     |
//! |     43 | producerId i64       |
//! |     51 | producerEpoch i16    |
//! |     53 | baseSequence i32     |
//! |     57 | recordCount i32      |
//! |     61 | records              |

mod builder;
pub mod codec;
pub(crate) mod cursor;
mod header;
#[cfg(test)]
mod tests;

use std::fmt;

pub use builder::{
    control_batch, decode_records, BatchBuilder, ControlRecordType, Record, RecordHeader,
    MAX_VARINT_BYTES, MAX_VARLONG_BYTES,
};
pub use header::*;

/// Kafka protocol error codes that batch validation can produce.
pub mod error_code {
    /// The server could not parse or checksum the bytes (retriable for clients: it usually
    /// means corruption in flight).
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// The batch's timestamp (type) is not acceptable.
    pub const INVALID_TIMESTAMP: i16 = 32;
    /// The compression codec cannot be handled.
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    /// The batch is well-formed bytes but violates a record-format rule (not retriable).
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a batch (or record set) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The buffer ends before the header or before the length the header declares.
    Truncated { needed: usize, available: usize },
    /// `magic` is not 2.
    BadMagic(i8),
    /// `batchLength` is below [`MIN_BATCH_LENGTH`] (this includes negative lengths).
    BadLength(i32),
    /// The stored CRC-32C does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
    /// Attribute bits 0-2 hold an undefined codec id (5-7).
    BadCompression(u8),
    /// `lastOffsetDelta` is negative: the batch's offset range is empty.
    BadOffsetDelta(i32),
    /// `recordCount` is zero or negative.
    NoRecords(i32),
    /// `recordCount != lastOffsetDelta + 1`.
    CountMismatch {
        record_count: i32,
        last_offset_delta: i32,
    },
    /// An uncompressed batch claims more records than its body could hold.
    CountExceedsBody {
        record_count: i32,
        body_bytes: usize,
    },
    /// Producer fields contradict each other: a transactional batch without a producer id, or
    /// a producer batch with a negative base sequence.
    BadProducerFields {
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        transactional: bool,
    },
    /// A record set with no bytes at all.
    EmptyRecordSet,
    /// A client sent a batch whose `baseOffset` is not 0.
    NonZeroBaseOffset(i64),
    /// A client sent a control batch; only the transaction coordinator writes those.
    ControlBatchFromClient,
    /// A client sent a batch with the LogAppendTime timestamp type.
    LogAppendTimeFromClient,
    /// [`decode_records`] only reads uncompressed batches.
    Compressed(Compression),
    /// A record inside an uncompressed batch is malformed (found by [`decode_records`]).
    BadRecord { index: usize, reason: &'static str },
    /// A compressed batch's body does not decompress with its codec ([`codec::decompress`]).
    BadCompressedData(Compression),
    /// A compressed batch's body decompresses to more than the limit it was read with.
    DecompressedTooLarge { limit_bytes: usize },
}

impl BatchError {
    /// The Kafka error code a Produce response carries for this error, following what Kafka's
    /// broker returns for the same condition (see the per-arm notes).
    pub fn kafka_error_code(&self) -> i16 {
        use error_code::*;
        match self {
            // Kafka: CorruptRecordException from the log input stream / ensureValid().
            BatchError::Truncated { .. }
            | BatchError::BadLength(_)
            | BatchError::CrcMismatch { .. } => CORRUPT_MESSAGE,
            // Kafka: v0/v1 batches in a v3+ Produce request are an InvalidRecordException
            // (ProduceRequest.validateRecords); any other magic is "Invalid magic found in
            // record", a CorruptRecordException.
            BatchError::BadMagic(0 | 1) => INVALID_RECORD,
            BatchError::BadMagic(_) => CORRUPT_MESSAGE,
            // Kafka throws IllegalArgumentException (UNKNOWN_SERVER_ERROR); see the note on
            // BadCompression in validate_batch.
            BatchError::BadCompression(_) => INVALID_RECORD,
            // Kafka: LogValidator.validateBatch / record iteration, InvalidRecordException.
            BatchError::BadOffsetDelta(_)
            | BatchError::NoRecords(_)
            | BatchError::CountMismatch { .. }
            | BatchError::CountExceedsBody { .. }
            | BatchError::BadProducerFields { .. }
            | BatchError::EmptyRecordSet
            | BatchError::NonZeroBaseOffset(_)
            | BatchError::ControlBatchFromClient
            | BatchError::BadRecord { .. } => INVALID_RECORD,
            // Kafka: LogValidator.validateTimestamp, "Producer should not set timestamp type
            // to LogAppendTime".
            BatchError::LogAppendTimeFromClient => INVALID_TIMESTAMP,
            BatchError::Compressed(_) => UNSUPPORTED_COMPRESSION_TYPE,
            // Kafka: a stream that fails to decompress is a CorruptRecordException.
            BatchError::BadCompressedData(_) => CORRUPT_MESSAGE,
            // Kafka has no such limit (it streams); a batch this large is refused as a record
            // rule, not as corruption.
            BatchError::DecompressedTooLarge { .. } => INVALID_RECORD,
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(f, "record batch truncated: needs {needed} bytes, {available} available")
            }
            BatchError::BadMagic(m) => write!(f, "record batch magic {m}, only magic 2 is supported"),
            BatchError::BadLength(l) => write!(
                f,
                "record batch length {l} is below the minimum {MIN_BATCH_LENGTH}"
            ),
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::BadCompression(id) => write!(f, "unknown compression codec id {id}"),
            BatchError::BadOffsetDelta(d) => {
                write!(f, "record batch lastOffsetDelta {d} is negative")
            }
            BatchError::NoRecords(n) => write!(f, "record batch declares {n} records"),
            BatchError::CountMismatch {
                record_count,
                last_offset_delta,
            } => write!(
                f,
                "record batch count {record_count} does not match lastOffsetDelta {last_offset_delta} + 1"
            ),
            BatchError::CountExceedsBody {
                record_count,
                body_bytes,
            } => write!(
                f,
                "record batch claims {record_count} records in {body_bytes} bytes"
            ),
            BatchError::BadProducerFields {
                producer_id,
                producer_epoch,
                base_sequence,
                transactional,
            } => write!(
                f,
                "inconsistent producer fields: producerId {producer_id}, epoch {producer_epoch}, \
                 baseSequence {base_sequence}, transactional {transactional}"
            ),
            BatchError::EmptyRecordSet => write!(f, "record set holds no batch"),
            BatchError::NonZeroBaseOffset(o) => {
                write!(f, "produced batch has baseOffset {o}, must be 0")
            }
            BatchError::ControlBatchFromClient => {
                write!(f, "clients may not write control batches")
            }
            BatchError::LogAppendTimeFromClient => {
                write!(f, "producers may not set the LogAppendTime timestamp type")
            }
            BatchError::Compressed(c) => {
                write!(f, "cannot decode records of a {c:?}-compressed batch")
            }
            BatchError::BadRecord { index, reason } => write!(f, "record {index}: {reason}"),
            BatchError::BadCompressedData(c) => {
                write!(f, "batch body does not decompress as {c:?}")
            }
            BatchError::DecompressedTooLarge { limit_bytes } => {
                write!(f, "batch body decompresses to more than {limit_bytes} bytes")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// CRC-32C of the CRC-covered part of `batch` (attributes to the end). `batch` must span at
/// least [`ATTRIBUTES_OFFSET`] bytes and end exactly where the batch ends.
fn covered_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]))
}

/// Reads the header, checks that `buf` holds the whole declared batch and returns the header
/// with the batch's exact extent. No CRC or semantic checks.
fn frame(buf: &[u8]) -> Result<(BatchHeader, &[u8]), BatchError> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD_BYTES,
            available: buf.len(),
        });
    }
    // Report a wrong format before a wrong length: a v0/v1 message set can be shorter than a
    // v2 header, and "bad magic" is the useful answer for it.
    if let Some(&m) = buf.get(MAGIC_OFFSET) {
        let magic = m as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
    }
    let batch_length = header::read_i32(buf, BATCH_LENGTH_OFFSET);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::BadLength(batch_length));
    }
    // batch_length is in [49, i32::MAX], so this neither wraps nor overflows usize.
    let total = LOG_OVERHEAD_BYTES + batch_length as usize;
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let batch = &buf[..total];
    let header = BatchHeader::parse(batch)?;
    Ok((header, batch))
}

/// Validates the batch at the start of `buf` (which may continue with more bytes) without
/// decoding its records, and returns its header. Checks, in this order:
///
/// 1. enough bytes for the length field, `magic == 2`, `batchLength >= 49` and enough bytes for
///    the whole declared batch;
/// 2. the CRC-32C, before anything semantic, so corruption is reported as corruption;
/// 3. a defined compression codec;
/// 4. `lastOffsetDelta >= 0`, `recordCount >= 1` and `recordCount == lastOffsetDelta + 1`
///    (Kafka's LogValidator rejects all three);
/// 5. for uncompressed batches, `recordCount * MIN_RECORD_BYTES <= body bytes`;
/// 6. producer fields: a transactional batch must carry a producer id, and a non-control batch
///    with a producer id must have `baseSequence >= 0`.
///
/// Origin-specific rules for batches sent by clients are in [`validate_client_batch`].
/// Never panics and reads nothing beyond the declared batch.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let (header, batch) = frame(buf)?;

    let computed = covered_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }

    let compression = header.compression()?;

    if header.last_offset_delta < 0 {
        return Err(BatchError::BadOffsetDelta(header.last_offset_delta));
    }
    if header.record_count <= 0 {
        return Err(BatchError::NoRecords(header.record_count));
    }
    // last_offset_delta >= 0 here, so +1 fits in i64 without any overflow concern. A stored
    // batch may hold fewer records than its offset range: compaction removes records and keeps
    // the batch's range (Kafka does the same), so only "more records than offsets" is invalid
    // here; a producer's batch must be dense ([`validate_client_batch`]).
    if i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::CountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if compression == Compression::None {
        let body_bytes = header.body_bytes();
        // record_count >= 1 here; u64 keeps the product exact on 32-bit targets too.
        let min_body = header.record_count as u64 * MIN_RECORD_BYTES as u64;
        if min_body > body_bytes as u64 {
            return Err(BatchError::CountExceedsBody {
                record_count: header.record_count,
                body_bytes,
            });
        }
    }

    let bad_producer = (header.is_transactional() && !header.has_producer_id())
        || (header.has_producer_id() && !header.is_control() && header.base_sequence < 0);
    if bad_producer {
        return Err(BatchError::BadProducerFields {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            transactional: header.is_transactional(),
        });
    }
    Ok(header)
}

/// [`validate_batch`] plus the rules Kafka applies only to batches that arrive in a Produce
/// request: one record per offset (`recordCount == lastOffsetDelta + 1`), `baseOffset` must be 0, control batches are refused (only the coordinator writes
/// markers) and the LogAppendTime timestamp type is the broker's to set.
pub fn validate_client_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_batch(buf)?;
    if i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::CountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset(header.base_offset));
    }
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Err(BatchError::LogAppendTimeFromClient);
    }
    Ok(header)
}

/// Why [`ValidatedBatch::client`] refused a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientBatchError {
    /// The batch itself is invalid ([`validate_client_batch`]).
    Invalid(BatchError),
    /// The buffer holds a valid batch followed by more bytes: a Produce request (v3+) must carry
    /// exactly one batch per partition.
    NotExactlyOneBatch,
}

/// One client batch that passed [`validate_client_batch`] and fills its buffer exactly.
///
/// The bytes sit behind `B` (a `Vec`, `Bytes`, ...) and are only ever read through
/// `AsRef<[u8]>`, so what was checked is what gets appended: the engine's
/// [`Partition::append_client_batch`](crate::partition::Partition::append_client_batch) writes
/// them without copying them or computing their CRC a second time.
#[derive(Debug)]
pub struct ValidatedBatch<B> {
    bytes: B,
    header: BatchHeader,
}

impl<B: AsRef<[u8]>> ValidatedBatch<B> {
    /// Validates `bytes` as exactly one batch from a client (header, CRC, client rules).
    pub fn client(bytes: B) -> Result<Self, ClientBatchError> {
        let header = validate_client_batch(bytes.as_ref()).map_err(ClientBatchError::Invalid)?;
        if header.total_bytes() != bytes.as_ref().len() {
            return Err(ClientBatchError::NotExactlyOneBatch);
        }
        Ok(ValidatedBatch { bytes, header })
    }

    /// The batch's header as received (base offset 0).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes as received.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

/// Validates a record set: one or more batches back to back that fill `buf` exactly. A
/// trailing partial batch is [`BatchError::Truncated`]; an empty `buf` is
/// [`BatchError::EmptyRecordSet`]. Returns the headers in order.
pub fn validate_record_set(buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::EmptyRecordSet);
    }
    let mut headers = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let header = validate_batch(rest)?;
        // validate_batch checked rest.len() >= total_bytes().
        rest = &rest[header.total_bytes()..];
        headers.push(header);
    }
    Ok(headers)
}

/// Sets `baseOffset` in place. The CRC does not cover it, so the batch stays valid; its records'
/// offsets become `base_offset + offsetDelta`. Fails (changing nothing) if `batch` does not
/// start with a parseable header.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    BatchHeader::parse(batch)?;
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Sets `partitionLeaderEpoch` in place (not CRC-covered, like `baseOffset`).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    BatchHeader::parse(batch)?;
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Stamps a LogAppendTime topic's append time: sets the timestamp-type bit and `maxTimestamp`,
/// then recomputes and stores the CRC (both fields are covered). `baseTimestamp` and the record
/// deltas are left alone, as Kafka does: readers of a LogAppendTime batch use `maxTimestamp`
/// for every record. `batch` may continue past the batch; only the batch is checksummed.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) -> Result<(), BatchError> {
    let (header, _) = frame(batch)?;
    if header.timestamp_type() == TimestampType::LogAppendTime
        && header.max_timestamp == timestamp_ms
    {
        return Ok(()); // Nothing changes, so the CRC need not be recomputed.
    }
    let total = header.total_bytes();
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = covered_crc(&batch[..total]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Whether the batch at the start of `batch` is complete and its stored CRC matches. `false`
/// for anything that cannot be framed.
pub fn stored_crc_matches(batch: &[u8]) -> bool {
    match frame(batch) {
        Ok((header, bytes)) => covered_crc(bytes) == header.crc,
        Err(_) => false,
    }
}
