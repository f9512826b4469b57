//! A bounds-checked reader over the bytes of v2 records: every varint is length-limited and every
//! length is checked against the bytes left before anything is sliced, so malformed input costs
//! an error, never a panic or an allocation. Shared by the batch decoder and the cleaner's
//! zero-copy record views.

use super::{BatchError, MAX_VARINT_BYTES, MAX_VARLONG_BYTES};

pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    /// The record being read, for error messages.
    pub(crate) index: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], index: usize) -> Cursor<'a> {
        Cursor { buf, pos: 0, index }
    }

    pub(crate) fn err(&self, reason: &'static str) -> BatchError {
        BatchError::BadRecord {
            index: self.index,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self) -> Result<u8, BatchError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("record ends inside a field"))?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self, max_bytes: usize) -> Result<u64, BatchError> {
        let mut v = 0u64;
        for i in 0..max_bytes {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint is too long"))
    }

    pub(crate) fn varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.uvarint(MAX_VARINT_BYTES)? as u32; // bits past 32 dropped, as in Kafka
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    pub(crate) fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.uvarint(MAX_VARLONG_BYTES)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// `len` bytes, with `len` checked against what is left before anything is sliced.
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], BatchError> {
        if len > self.remaining() {
            return Err(self.err("length exceeds the record"));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// A varint length and that many bytes; -1 is null.
    pub(crate) fn nullable(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < -1 => Err(self.err("negative length")),
            n => Ok(Some(self.bytes(n as usize)?)),
        }
    }
}
