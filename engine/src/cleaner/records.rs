//! A zero-copy view of a batch's records, for the cleaner's hot loops: the key map needs each
//! record's key and offset, the rewrite needs to copy survivors. [`crate::batch::codec`]'s
//! decoder allocates every key, value and header; here each record is a few slices into the
//! (decompressed) body. Every length is checked against the bytes left, as in the batch decoder.

use crate::batch::codec::{decompress, MAX_DECOMPRESSED_BATCH_BYTES};
use crate::batch::cursor::Cursor;
use crate::batch::{validate_batch, BatchError, BatchHeader, Compression, RECORDS_OFFSET};

/// One record of a batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// False for a tombstone (null value).
    pub has_value: bool,
    /// The record's bytes from `keyLength` to its end (key, value, headers), unchanged by any
    /// rewrite.
    pub tail: &'a [u8],
}

/// A batch's body, decompressed when needed.
pub enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Body<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(v) => v,
        }
    }
}

/// Validates `batch` (header and CRC) and returns its header and records body, decompressed.
pub fn batch_body(batch: &[u8]) -> Result<(BatchHeader, Body<'_>), BatchError> {
    let header = validate_batch(batch)?;
    let raw = &batch[RECORDS_OFFSET..header.total_bytes()];
    let body = match header.compression()? {
        Compression::None => Body::Borrowed(raw),
        codec => Body::Owned(decompress(codec, raw, MAX_DECOMPRESSED_BATCH_BYTES)?),
    };
    Ok((header, body))
}

/// The `count` records of a body, in order. Fails on any malformed record, or when bytes
/// remain after the last one.
pub fn records(body: &[u8], count: i32) -> Result<Vec<RecordView<'_>>, BatchError> {
    let count = count.max(0) as usize;
    // At least 7 bytes a record: the capacity is bounded by the body, not the declared count.
    let mut out = Vec::with_capacity(count.min(body.len() / 7));
    let mut outer = Cursor::new(body, 0);
    for index in 0..count {
        outer.index = index;
        let len = outer.varint()?;
        if len < 0 {
            return Err(outer.err("negative record length"));
        }
        let mut rec = Cursor::new(outer.bytes(len as usize)?, index);
        let attributes = rec.u8()?;
        let timestamp_delta = rec.varlong()?;
        let offset_delta = rec.varint()?;
        let tail_start = rec.pos;
        let key = rec.nullable()?;
        let has_value = rec.nullable()?.is_some();
        let headers = rec.varint()?;
        if headers < 0 {
            return Err(rec.err("negative header count"));
        }
        for _ in 0..headers {
            let key_len = rec.varint()?;
            if key_len < 0 {
                return Err(rec.err("negative header key length"));
            }
            rec.bytes(key_len as usize)?;
            rec.nullable()?;
        }
        if rec.pos != rec.buf.len() {
            return Err(rec.err("record length disagrees with its fields"));
        }
        out.push(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            has_value,
            tail: &rec.buf[tail_start..],
        });
    }
    if outer.pos != body.len() {
        return Err(BatchError::BadRecord {
            index: count,
            reason: "bytes remain after recordCount records",
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::codec::decode_batch_records;
    use crate::batch::BatchBuilder;

    #[test]
    fn views_agree_with_the_batch_decoder() {
        let batch = BatchBuilder::new(1000)
            .record(Some(b"k1"), Some(b"v1"), &[("h", b"x")], 1005)
            .record(Some(b"k2"), None, &[], 990)
            .record(None, Some(b"v3"), &[("a", b""), ("b", b"yy")], 1000)
            .build();
        let (header, decoded) = decode_batch_records(&batch, 1 << 20).unwrap();
        let (h, body) = batch_body(&batch).unwrap();
        assert_eq!(h, header);
        let views = records(body.bytes(), h.record_count).unwrap();
        assert_eq!(views.len(), decoded.len());
        for (v, d) in views.iter().zip(&decoded) {
            assert_eq!(v.offset_delta, d.offset_delta);
            assert_eq!(v.timestamp_delta, d.timestamp_delta);
            assert_eq!(v.key, d.key.as_deref());
            assert_eq!(v.has_value, d.value.is_some());
        }
        // A body cut short or padded is refused.
        let body = body.bytes();
        assert!(records(&body[..body.len() - 1], h.record_count).is_err());
        let mut padded = body.to_vec();
        padded.push(0);
        assert!(records(&padded, h.record_count).is_err());
        assert!(records(body, h.record_count + 1).is_err());
    }
}
