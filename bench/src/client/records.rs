//! Kafka v2 record batches: built in place by the producer (one buffer per partition, records
//! appended as they are generated, the header filled in when the batch is sealed) and walked by
//! the consumer (CRC checked, records visited without copying).

use anyhow::{bail, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::spec::Compression;

/// Fixed part of a v2 batch, before the records.
pub const BATCH_HEADER_BYTES: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
const LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const RECORD_COUNT_OFFSET: usize = 57;
/// The attribute bits that name the codec.
const COMPRESSION_MASK: i16 = 0x07;
const CONTROL_FLAG: i16 = 0x20;

fn codec_id(c: Compression) -> i16 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Writes a zigzag varint (Kafka's varint/varlong).
pub fn put_varint(buf: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes `put_varint` writes for `value`.
pub fn varint_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a zigzag varint at `*pos`, advancing it.
fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i64> {
    let mut result: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            bail!("truncated varint");
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            bail!("varint overflows 64 bits");
        }
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
        }
    }
    bail!("varint longer than 10 bytes")
}

/// One partition's open batch.
pub struct BatchBuilder {
    buf: Vec<u8>,
    records: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    pub fn new(capacity_bytes: usize, base_timestamp_ms: i64) -> BatchBuilder {
        let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + capacity_bytes);
        buf.resize(BATCH_HEADER_BYTES, 0);
        BatchBuilder {
            buf,
            records: 0,
            base_timestamp_ms,
            max_timestamp_ms: base_timestamp_ms,
        }
    }

    pub fn record_count(&self) -> usize {
        self.records as usize
    }

    /// Bytes of the batch so far, header included.
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record with no headers; `write_value` must append exactly `value_len` bytes.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value_len: usize,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        let timestamp_delta = timestamp_ms - self.base_timestamp_ms;
        let offset_delta = i64::from(self.records);
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let body_len = 1
            + varint_len(timestamp_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_len(value_len as i64)
            + value_len
            + varint_len(0);
        put_varint(&mut self.buf, body_len as i64);
        let start = self.buf.len();
        self.buf.push(0); // attributes: unused by v2 records
        put_varint(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_varint(&mut self.buf, key_len);
        if let Some(k) = key {
            self.buf.extend_from_slice(k);
        }
        put_varint(&mut self.buf, value_len as i64);
        let value_start = self.buf.len();
        write_value(&mut self.buf);
        assert_eq!(self.buf.len() - value_start, value_len, "value length");
        put_varint(&mut self.buf, 0); // no headers
        assert_eq!(self.buf.len() - start, body_len, "record length");
        self.records += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
    }

    /// Finishes the batch: compresses the records if asked, fills in the header and the CRC.
    /// `producer` is (id, epoch, base sequence) for an idempotent producer.
    pub fn seal(mut self, compression: Compression, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        assert!(self.records > 0, "sealing an empty batch");
        if compression != Compression::None {
            let compressed = compress(compression, &self.buf[BATCH_HEADER_BYTES..]);
            self.buf.truncate(BATCH_HEADER_BYTES);
            self.buf.extend_from_slice(&compressed);
        }
        let (producer_id, epoch, sequence) = producer.unwrap_or((-1, -1, -1));
        let batch_length = (self.buf.len() - LOG_OVERHEAD_BYTES) as i32;
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[21..23].copy_from_slice(&codec_id(compression).to_be_bytes());
        b[23..27].copy_from_slice(&(self.records - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        b[43..51].copy_from_slice(&producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&sequence.to_be_bytes());
        b[RECORD_COUNT_OFFSET..61].copy_from_slice(&self.records.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..21].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

fn compress(codec: Compression, records: &[u8]) -> Vec<u8> {
    fn with<C: Compressor<BytesMut, BufMut = BytesMut>>(records: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |b: &mut BytesMut| {
            b.extend_from_slice(records);
            Ok(())
        })
        .expect("compressing into memory cannot fail");
        out.to_vec()
    }
    match codec {
        Compression::None => records.to_vec(),
        Compression::Gzip => with::<Gzip>(records),
        Compression::Snappy => with::<Snappy>(records),
        Compression::Lz4 => with::<Lz4>(records),
        Compression::Zstd => with::<Zstd>(records),
    }
}

fn decompress(codec: i16, mut data: Bytes) -> Result<Bytes> {
    fn with<D: Decompressor<Bytes, Buf = Bytes>>(data: &mut Bytes) -> Result<Bytes> {
        D::decompress(data, |b: &mut Bytes| Ok(std::mem::take(b)))
    }
    match codec {
        0 => Ok(data),
        1 => with::<Gzip>(&mut data),
        2 => with::<Snappy>(&mut data),
        3 => with::<Lz4>(&mut data),
        4 => with::<Zstd>(&mut data),
        other => bail!("unknown compression codec {other}"),
    }
}

/// One batch of a fetch response.
pub struct BatchView {
    pub base_offset: i64,
    pub record_count: i32,
    attributes: i16,
    bytes: Bytes,
}

impl BatchView {
    /// The offset after this batch's last record.
    pub fn next_offset(&self) -> i64 {
        let last_delta = i32::from_be_bytes(self.bytes[23..27].try_into().expect("4 bytes"));
        self.base_offset + i64::from(last_delta) + 1
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Calls `visit(offset, value)` for every record (null values as empty), decompressing first
    /// if needed.
    pub fn for_each_record(&self, mut visit: impl FnMut(i64, &[u8])) -> Result<()> {
        let body = self.bytes.slice(BATCH_HEADER_BYTES..);
        let records = decompress(self.attributes & COMPRESSION_MASK, body)?;
        let buf = records.as_ref();
        let mut pos = 0;
        for _ in 0..self.record_count {
            let len = get_varint(buf, &mut pos)?;
            let end = pos
                .checked_add(usize::try_from(len).map_err(|_| anyhow::anyhow!("record length"))?)
                .filter(|&e| e <= buf.len())
                .ok_or_else(|| anyhow::anyhow!("record runs past its batch"))?;
            pos += 1; // attributes
            get_varint(buf, &mut pos)?; // timestamp delta
            let offset_delta = get_varint(buf, &mut pos)?;
            let key_len = get_varint(buf, &mut pos)?;
            if key_len > 0 {
                pos += key_len as usize;
            }
            let value_len = get_varint(buf, &mut pos)?;
            let value = if value_len > 0 {
                let v_end = pos + value_len as usize;
                if v_end > end {
                    bail!("record value runs past its record");
                }
                &buf[pos..v_end]
            } else {
                &[][..]
            };
            visit(self.base_offset + offset_delta, value);
            pos = end;
        }
        Ok(())
    }
}

/// Splits a partition's fetched bytes into batches, checking each CRC. A partial batch at the end
/// (a fetch may cut one at its byte limit) is left out, as Kafka's clients do.
pub fn split_batches(records: &Bytes) -> Result<Vec<BatchView>> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while records.len() - pos >= BATCH_HEADER_BYTES {
        let at = &records[pos..];
        let batch_length = i32::from_be_bytes(at[8..12].try_into().expect("4 bytes"));
        let Some(total) = usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD_BYTES))
        else {
            bail!("negative batch length {batch_length}");
        };
        if total < BATCH_HEADER_BYTES {
            bail!("batch length {batch_length} shorter than a batch header");
        }
        if at.len() < total {
            break;
        }
        if at[MAGIC_OFFSET] != 2 {
            bail!(
                "record batch magic {} (only v2 is spoken)",
                at[MAGIC_OFFSET]
            );
        }
        let stored_crc = u32::from_be_bytes(at[CRC_OFFSET..21].try_into().expect("4 bytes"));
        if crc32c::crc32c(&at[ATTRIBUTES_OFFSET..total]) != stored_crc {
            bail!("CRC mismatch in a fetched batch");
        }
        batches.push(BatchView {
            base_offset: i64::from_be_bytes(at[0..8].try_into().expect("8 bytes")),
            record_count: i32::from_be_bytes(
                at[RECORD_COUNT_OFFSET..61].try_into().expect("4 bytes"),
            ),
            attributes: i16::from_be_bytes(at[21..23].try_into().expect("2 bytes")),
            bytes: records.slice(pos..pos + total),
        });
        pos += total;
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_have_the_computed_length() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "length of {v}");
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos).unwrap(), v);
            assert_eq!(pos, buf.len());
        }
        assert!(get_varint(&[0x80, 0x80], &mut 0).is_err());
    }

    fn build(compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(1024, 1_000);
        for i in 0..5u8 {
            b.push(1_000 + i64::from(i), Some(b"k"), 10, |buf| {
                buf.extend_from_slice(&[i; 10])
            });
        }
        b.seal(compression, Some((7, 1, 42)))
    }

    #[test]
    fn sealed_batches_pass_the_engines_validation_and_read_back() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = build(codec);
            let header = corelog_engine::batch::validate_client_batch(&batch)
                .unwrap_or_else(|e| panic!("{codec}: {e:?}"));
            assert_eq!(header.record_count, 5);
            assert_eq!(header.producer_id, 7);
            assert_eq!(header.base_sequence, 42);

            let mut fetched = batch.clone();
            fetched[0..8].copy_from_slice(&100i64.to_be_bytes());
            let bytes = Bytes::from(fetched);
            let views = split_batches(&bytes).unwrap();
            assert_eq!(views.len(), 1);
            assert_eq!(views[0].next_offset(), 105);
            let mut seen = Vec::new();
            views[0]
                .for_each_record(|offset, value| seen.push((offset, value.to_vec())))
                .unwrap();
            let expected: Vec<_> = (0..5u8)
                .map(|i| (100 + i64::from(i), vec![i; 10]))
                .collect();
            assert_eq!(seen, expected, "{codec}");
        }
    }

    #[test]
    fn a_corrupt_batch_is_an_error_and_a_cut_one_is_left_out() {
        let batch = build(Compression::None);
        let mut two = batch.clone();
        two.extend_from_slice(&batch[..batch.len() - 3]);
        assert_eq!(split_batches(&Bytes::from(two)).unwrap().len(), 1);

        let mut corrupt = batch.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(split_batches(&Bytes::from(corrupt)).is_err());

        let mut negative = batch;
        negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(split_batches(&Bytes::from(negative)).is_err());
    }
}
