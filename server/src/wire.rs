//! A bounds-checked reader, and the writers, of Kafka's classic (non-flexible) primitives: big-endian integers,
//! strings with an i16 length, byte strings and arrays with an i32 length. For the few byte
//! layouts the protocol crate does not decode for us (`__consumer_offsets` records, the consumer
//! protocol's subscription, OffsetCommit v0/v1). A length is never trusted beyond the bytes
//! present: damaged input is an error, not a panic or a huge allocation.

use bytes::Bytes;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!("truncated at byte {}", self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i8(&mut self) -> Result<i8, String> {
        Ok(i8::from_be_bytes(self.take(1)?.try_into().expect("1 byte")))
    }

    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| "string is not UTF-8".to_string())
    }

    pub fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_string())
    }

    /// A byte string (null reads as empty).
    pub fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    /// An array length, checked against the bytes left: each element takes at least
    /// `min_element_bytes`, so a lying length cannot make the caller allocate or loop for long.
    pub fn array_len(&mut self, min_element_bytes: usize) -> Result<usize, String> {
        self.nullable_array_len(min_element_bytes)?
            .ok_or_else(|| "null where an array is required".to_string())
    }

    /// [`Reader::array_len`] of a nullable array (None: null, length -1).
    pub fn nullable_array_len(
        &mut self,
        min_element_bytes: usize,
    ) -> Result<Option<usize>, String> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as usize > self.remaining() / min_element_bytes.max(1) {
            return Err(format!("array length {n} exceeds the bytes left"));
        }
        Ok(Some(n as usize))
    }
}

/// Writes a big-endian i16.
pub fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a string with an i16 length.
pub fn put_string(out: &mut Vec<u8>, s: &str) {
    // Kafka strings are at most i16::MAX bytes; every string stored here was bounded on the way
    // in (group and transactional ids, topic names, metadata up to offset.metadata.max.bytes):
    // a longer one would be a bug, not bad input.
    let len = i16::try_from(s.len()).expect("stored strings are shorter than 32 KiB");
    put_i16(out, len);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a nullable string (null: length -1).
pub fn put_nullable_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => put_i16(out, -1),
    }
}

/// Writes a byte string with an i32 length.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_primitives_and_refuses_lies() {
        let mut buf = vec![0, 2, b'h', b'i', 0xff, 0xff];
        buf.extend_from_slice(&7i64.to_be_bytes());
        buf.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut r = Reader::new(&buf);
        assert_eq!(r.string().unwrap(), "hi");
        assert_eq!(r.nullable_string().unwrap(), None);
        assert_eq!(r.i64().unwrap(), 7);
        assert!(r.array_len(1).is_err(), "2^31 elements in 0 bytes");
        assert!(Reader::new(&[0, 5, b'a']).string().is_err());
        assert!(Reader::new(&[0xff, 0xff]).string().is_err());
    }
}
