//! The fixed 61-byte v2 batch header: field offsets, attribute bits and [`BatchHeader`].

use super::BatchError;

/// `baseOffset` (i64): offset of the first record. Not covered by the CRC, so the log can assign
/// offsets in place without re-checksumming.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// `batchLength` (i32): bytes of the batch *after* this field.
pub const BATCH_LENGTH_OFFSET: usize = 8;
/// `partitionLeaderEpoch` (i32): stamped by the leader on append; not covered by the CRC.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// `magic` (i8): the record format version; only 2 is accepted.
pub const MAGIC_OFFSET: usize = 16;
/// `crc` (u32): CRC-32C of every byte from [`ATTRIBUTES_OFFSET`] to the end of the batch.
pub const CRC_OFFSET: usize = 17;
/// `attributes` (i16): compression, timestamp type, transactional and control bits. The CRC
/// covers everything from here on.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// `lastOffsetDelta` (i32): offset of the last record relative to `baseOffset`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// `baseTimestamp` (i64): timestamp of the first record; record timestamps are deltas from it.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// `maxTimestamp` (i64): largest record timestamp, or the log-append time.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// `producerId` (i64): -1 for a producer that is neither idempotent nor transactional.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// `producerEpoch` (i16).
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// `baseSequence` (i32): idempotence sequence of the first record.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// `recordCount` (i32).
pub const RECORD_COUNT_OFFSET: usize = 57;
/// First byte of the (possibly compressed) records.
pub const RECORDS_OFFSET: usize = 61;

/// Size of the fixed v2 batch header; a batch is never shorter than this.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `baseOffset` + `batchLength`: the bytes that precede what `batchLength` counts. Kafka's
/// `LOG_OVERHEAD`.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal `batchLength`: a header with no record bytes (61 - 12).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// The only record format corelog stores (Kafka 0.11+ "v2" batches).
pub const MAGIC_V2: i8 = 2;

/// Smallest possible encoded uncompressed v2 record, its length prefix included: the length
/// varint, attributes, timestampDelta, offsetDelta, keyLength (-1), valueLength (-1) and the
/// header count, one byte each. `recordCount * MIN_RECORD_BYTES` bounds what an uncompressed
/// body can hold, so a tiny batch cannot claim billions of records.
pub const MIN_RECORD_BYTES: usize = 7;

/// `producerId` of a batch without an idempotent or transactional producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch without a producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch without a producer (and of control batches).
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` a producer sends; the leader overwrites it.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// `maxTimestamp` of a batch that holds no records.
pub const NO_TIMESTAMP: i64 = -1;

/// Attribute bits 0-2: the compression codec id.
pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
/// Attribute bit 3: set when timestamps are the broker's log-append time.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch holds control records (transaction markers).
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6: `baseTimestamp` holds the delete horizon (KIP-534): the time after which the
/// cleaner may remove this batch's tombstones. Set only by the cleaner.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec of a batch (attribute bits 0-2). Ids 5-7 are undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec for a 3-bit codec id, or `None` for the undefined ids 5-7.
    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec id stored in attribute bits 0-2.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// What the batch's timestamps mean (attribute bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append; `maxTimestamp` then holds the append time.
    LogAppendTime,
}

/// The decoded fixed header of a v2 record batch. Parsing it reads no record bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`.
    ///
    /// Checks only what is needed to trust the header's own fields: at least
    /// [`BATCH_HEADER_BYTES`] bytes, `magic == 2` and `batchLength >= 49`. It does not check the
    /// CRC nor that `buf` holds the whole batch; [`super::validate_batch`] does.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let magic = read_i8(buf, MAGIC_OFFSET);
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let batch_length = read_i32(buf, BATCH_LENGTH_OFFSET);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_OFFSET),
            batch_length,
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: read_u32(buf, CRC_OFFSET),
            attributes: read_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: read_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: read_i32(buf, BASE_SEQUENCE_OFFSET),
            record_count: read_i32(buf, RECORD_COUNT_OFFSET),
        })
    }

    /// Bytes the whole batch occupies: `batchLength` plus the 12 bytes before it.
    pub fn total_bytes(&self) -> usize {
        // parse() guarantees batch_length >= 49, so the cast cannot wrap.
        LOG_OVERHEAD_BYTES + self.batch_length.max(0) as usize
    }

    /// Bytes of records after the fixed header.
    pub fn body_bytes(&self) -> usize {
        self.total_bytes().saturating_sub(BATCH_HEADER_BYTES)
    }

    /// Offset of the last record. Wraps (like Kafka's Java arithmetic) rather than panicking on
    /// a nonsensical `baseOffset` near `i64::MAX`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset the record after this batch gets.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The raw 3-bit codec id (0-7).
    pub fn compression_id(&self) -> u8 {
        (self.attributes & COMPRESSION_CODEC_MASK) as u8
    }

    /// The compression codec; ids 5-7 are [`BatchError::BadCompression`]. Always `Ok` for a
    /// header returned by [`super::validate_batch`].
    pub fn compression(&self) -> Result<Compression, BatchError> {
        let id = self.compression_id();
        Compression::from_id(id).ok_or(BatchError::BadCompression(id))
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer. As in Kafka, any
    /// negative `producerId` means "none", not only -1.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
}

// Big-endian readers. Callers have checked `buf.len() >= off + N`; each copies a fixed-size
// array so a short slice would be a bug in the caller, caught by the slice bound check.
pub(crate) fn read_i8(buf: &[u8], off: usize) -> i8 {
    i8::from_be_bytes([buf[off]])
}

pub(crate) fn read_i16(buf: &[u8], off: usize) -> i16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[off..off + 2]);
    i16::from_be_bytes(b)
}

pub(crate) fn read_i32(buf: &[u8], off: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    i32::from_be_bytes(b)
}

pub(crate) fn read_u32(buf: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_be_bytes(b)
}

pub(crate) fn read_i64(buf: &[u8], off: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    i64::from_be_bytes(b)
}
