//! Broker-wide producer id allocation (InitProducerId), unique across restarts.
//!
//! Ids are handed out from blocks of [`PRODUCER_ID_BLOCK_SIZE`], like Kafka's controller-issued
//! producer id blocks: before the first id of a block is given out, the end of the block is
//! written to a file in the data directory (fsynced). After a restart allocation resumes at that
//! end, so an id is never issued twice even if the broker crashed in the middle of a block.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Producer ids reserved per write of the block file.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The file holding the first id after the last reserved block.
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";

pub struct ProducerIdAllocator {
    path: PathBuf,
    /// (next id to give, end of the reserved block).
    range: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(PRODUCER_ID_BLOCK_FILE);
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdAllocator {
            path,
            range: Mutex::new((next, next)),
        })
    }

    /// The next producer id. Reserving a new block writes and fsyncs a small file (once per
    /// [`PRODUCER_ID_BLOCK_SIZE`] ids).
    pub fn next_id(&self) -> io::Result<i64> {
        let mut range = self.range.lock().unwrap_or_else(|e| e.into_inner());
        if range.0 >= range.1 {
            let end = range.1 + PRODUCER_ID_BLOCK_SIZE;
            write_durably(&self.path, end)?;
            range.1 = end;
        }
        let id = range.0;
        range.0 += 1;
        Ok(id)
    }
}

/// Replaces `path` with `value` atomically and durably (temp file, fsync, rename, dir fsync).
fn write_durably(path: &Path, value: i64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{value}")?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(b.next_id().unwrap(), PRODUCER_ID_BLOCK_SIZE);
        for _ in 1..PRODUCER_ID_BLOCK_SIZE {
            b.next_id().unwrap();
        }
        assert_eq!(b.next_id().unwrap(), 2 * PRODUCER_ID_BLOCK_SIZE);
    }
}
