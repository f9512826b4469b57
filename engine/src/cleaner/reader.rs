//! Reading a sealed segment front to back, batch by batch, in large chunks (the cleaner's input).

use std::io;
use std::sync::Arc;

use super::throttle::Throttle;
use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::segment::LogFile;

/// Bytes read from a segment per call.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

/// Iterates the batches of the first `size` bytes of a sealed segment file.
pub struct BatchReader {
    file: Arc<LogFile>,
    base_offset: i64,
    size: u32,
    position: u32,
    chunk: Vec<u8>,
    chunk_start: u32,
}

impl BatchReader {
    pub fn new(file: Arc<LogFile>, base_offset: i64, size: u32) -> BatchReader {
        BatchReader {
            file,
            base_offset,
            size,
            position: 0,
            chunk: Vec::new(),
            chunk_start: 0,
        }
    }

    fn corrupt(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{what} at byte {} of segment {}",
                self.position, self.base_offset
            ),
        )
    }

    fn has(&self, need: usize) -> bool {
        self.position >= self.chunk_start
            && (self.position - self.chunk_start) as usize + need <= self.chunk.len()
    }

    fn fill(&mut self, need: usize, throttle: &mut Throttle) -> io::Result<()> {
        let remaining = (self.size - self.position) as usize;
        let n = READ_CHUNK_BYTES.max(need).min(remaining);
        self.chunk.resize(n, 0);
        self.file
            .read_exact_at(&mut self.chunk[..n], self.position as u64)?;
        self.chunk_start = self.position;
        throttle.consume(n as u64);
        Ok(())
    }

    /// The next batch's header and bytes (the CRC is not checked here), or `None` at the end.
    /// A sealed segment holds whole batches only, so anything else is an error.
    pub fn next_batch(
        &mut self,
        throttle: &mut Throttle,
    ) -> io::Result<Option<(BatchHeader, u32, &[u8])>> {
        if self.position >= self.size {
            return Ok(None);
        }
        if ((self.size - self.position) as usize) < BATCH_HEADER_BYTES {
            return Err(self.corrupt("partial batch header"));
        }
        if !self.has(BATCH_HEADER_BYTES) {
            self.fill(BATCH_HEADER_BYTES, throttle)?;
        }
        let at = (self.position - self.chunk_start) as usize;
        let header =
            BatchHeader::parse(&self.chunk[at..]).map_err(|_| self.corrupt("no batch header"))?;
        let total = header.total_bytes();
        if total as u64 > (self.size - self.position) as u64 {
            return Err(self.corrupt("batch runs past the segment end"));
        }
        if !self.has(total) {
            self.fill(total, throttle)?;
        }
        let at = (self.position - self.chunk_start) as usize;
        let position = self.position;
        self.position += total as u32;
        Ok(Some((header, position, &self.chunk[at..at + total])))
    }
}
