//! One log segment: a file of back-to-back record batches named by its base offset, with its
//! sparse offset and time indexes beside it.
//!
//! Files are shared through [`LogFile`] handles: a read range holds an `Arc<LogFile>`, so a segment
//! deleted by retention or topic deletion keeps its open descriptor (and so its bytes) until the
//! last send that uses it is done.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::batch::{self, BatchHeader, BATCH_HEADER_BYTES};
use crate::index::{OffsetIndex, TimeIndex};
use crate::txn_index::{TxnIndex, TXN_INDEX_SUFFIX};

/// Digits in a segment file name: Kafka's zero-padded 20-digit base offset.
const FILE_NAME_DIGITS: usize = 20;
/// Bytes read per call while scanning a segment at recovery.
pub const RECOVERY_READ_BYTES: usize = 1 << 20;

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Appended to the names of a deleted segment's files until the reaper unlinks them (Kafka's
/// `.deleted`); opening a log removes any that a crash left behind.
pub const DELETED_SUFFIX: &str = "deleted";

/// An open file of the log (a segment, or the partition directory for fsyncs of its entries).
#[derive(Debug)]
pub struct LogFile {
    /// Always `Some` until drop, which may hand it to the reaper.
    file: Option<File>,
    path: PathBuf,
    /// The file was deleted: its final close (which frees its blocks and page cache, slow for
    /// a big file) happens on the reaper thread, not on whichever shard drops the last handle.
    retired: AtomicBool,
}

impl Drop for LogFile {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire) {
            if let Some(file) = self.file.take() {
                crate::reaper::close(file);
            }
        }
    }
}

impl LogFile {
    pub fn open(path: &Path, create: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(LogFile::new(file, path))
    }

    fn new(file: File, path: &Path) -> Self {
        LogFile {
            file: Some(file),
            path: path.to_path_buf(),
            retired: AtomicBool::new(false),
        }
    }

    fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("a LogFile holds its file until dropped")
    }

    /// Marks the file deleted: its last handle's drop closes it on the reaper thread.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Opens a directory so that its entries can be made durable with an fsync.
    pub fn open_dir(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(LogFile::new(file, path))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file().as_raw_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocking positional read, for start-up recovery and tests (the serving path reads through
    /// the shard's ring).
    pub fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file().read_exact_at(buf, position)
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file().metadata()?.len())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Blocking fsync, for directory entries at partition creation and deletion.
    pub fn sync_blocking(&self) -> io::Result<()> {
        self.file().sync_all()
    }

    pub(crate) fn truncate(&self, len: u64) -> io::Result<()> {
        self.file().set_len(len)
    }

    /// Blocking positional write, for the small aborted-transaction index entries (a few dozen
    /// bytes into the page cache; segment data is written through the ring).
    pub(crate) fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file().write_all_at(buf, position)
    }
}

pub fn file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{base_offset:0width$}.{suffix}",
        width = FILE_NAME_DIGITS
    ))
}

/// The base offset named by a segment file name such as `00000000000000000042.log`.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != FILE_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A segment's in-memory state. Owned by its partition's log, so by one shard: no locks.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub file: Arc<LogFile>,
    /// Bytes reserved by appends: the position of the next batch. Data below it may still be in
    /// flight; the partition tracks how far it is written.
    pub size: u32,
    /// The offset after the last batch placed in this segment.
    pub next_offset: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index_entry: u32,
    /// The largest batch max-timestamp in the segment, and the base offset of that batch.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// Wall-clock ms when the first batch was appended to this segment: `segment.ms` counts
    /// from here. For a segment recovered at start-up, its first batch's timestamp (clamped
    /// to the time of recovery). `None` while the segment is empty.
    pub first_append_ms: Option<i64>,
    /// The aborted transactions whose abort marker lies in this segment (`<base>.txnindex`).
    pub txn_index: TxnIndex,
}

impl Segment {
    fn empty(base_offset: i64, file: LogFile) -> Self {
        Segment {
            base_offset,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            index: OffsetIndex::new(),
            time_index: TimeIndex::new(),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_append_ms: None,
            txn_index: TxnIndex::default(),
        }
    }

    /// An empty in-memory segment over an already open `file` (the cleaner's output, written
    /// under a temporary name and placed batch by batch as it is written).
    pub fn over_file(base_offset: i64, file: LogFile) -> Self {
        Segment::empty(base_offset, file)
    }

    /// Creates a new, empty segment file (any leftover index files of that name are removed).
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Self> {
        remove_if_exists(&file_path(dir, base_offset, INDEX_SUFFIX))?;
        remove_if_exists(&file_path(dir, base_offset, TIME_INDEX_SUFFIX))?;
        remove_if_exists(&file_path(dir, base_offset, TXN_INDEX_SUFFIX))?;
        let path = file_path(dir, base_offset, LOG_SUFFIX);
        let file = LogFile::open(&path, true)?;
        file.truncate(0)?;
        Ok(Segment::empty(base_offset, file))
    }

    /// Relative offset of `offset` in this segment. Callers roll before it would overflow.
    pub fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            (0..=u32::MAX as i64).contains(&rel),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        rel as u32
    }

    /// Records a batch placed at `position` (its bytes need not be written yet): advances the
    /// segment's size and next offset and samples the indexes every `index_interval_bytes`.
    pub fn place_batch(&mut self, header: &BatchHeader, position: u32, index_interval_bytes: u32) {
        assert_eq!(position, self.size, "batches are placed back to back");
        assert!(
            header.base_offset >= self.next_offset,
            "offsets must grow within a segment"
        );
        let rel = self.relative(header.base_offset);
        let is_first = self.size == 0;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if is_first || self.bytes_since_index_entry >= index_interval_bytes {
            self.index.push(rel, position);
            let max_rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_push(self.max_timestamp, max_rel);
            self.bytes_since_index_entry = 0;
        }
        let total = header.total_bytes() as u32;
        self.bytes_since_index_entry += total;
        self.size = position.checked_add(total).expect("segment size fits u32");
        self.next_offset = header.next_offset();
    }

    /// Writes both index files for a sealed segment, with the final time-index entry that records
    /// the segment's max timestamp. Index files are rebuildable, so they are not fsynced. (The
    /// aborted-transaction index is not rebuildable from the segment alone: it is written as
    /// entries are recorded and fdatasynced with the segment's data; sealing closes it.)
    pub fn seal(&mut self, dir: &Path) -> io::Result<()> {
        self.txn_index.close();
        if self.size > 0 {
            let max_rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_push(self.max_timestamp, max_rel);
        }
        fs::write(
            file_path(dir, self.base_offset, INDEX_SUFFIX),
            self.index.encode(),
        )?;
        fs::write(
            file_path(dir, self.base_offset, TIME_INDEX_SUFFIX),
            self.time_index.encode(),
        )
    }

    /// Removes the segment's files. Open handles (read ranges) keep the data readable.
    pub fn delete_files(&self, dir: &Path) -> io::Result<()> {
        delete_files(dir, self.base_offset)
    }

    /// How old the segment is for `segment.ms` at wall-clock `now_ms` (0 while empty).
    pub fn age_ms(&self, now_ms: i64) -> u64 {
        self.first_append_ms
            .map_or(0, |first| now_ms.saturating_sub(first).max(0) as u64)
    }

    /// The newest timestamp in the segment, as `retention.ms` judges it: the largest batch
    /// max-timestamp, or (as Kafka does when no batch has one) the file's modification time.
    pub fn largest_timestamp_ms(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .file()
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// The max timestamp of the segment's first batch (blocking read), if it has one.
    pub fn first_batch_timestamp(&self) -> io::Result<Option<i64>> {
        if self.size == 0 {
            return Ok(None);
        }
        let header = read_header(&self.file, 0, self.size)?;
        Ok((header.max_timestamp >= 0).then_some(header.max_timestamp))
    }

    /// Deletes a segment taken out of its log without doing the slow part on this thread: the
    /// files are renamed to `*.deleted` (so the names are free and a crash leaves only files
    /// that opening the log removes), and the reaper thread unlinks them; the segment file's
    /// final close also happens there, when its last handle (this one, or a read range still
    /// being sent) drops.
    pub fn retire(self, dir: &Path) -> io::Result<()> {
        let mut doomed = Vec::with_capacity(4);
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let path = file_path(dir, self.base_offset, suffix);
            let mut deleted = path.clone().into_os_string();
            deleted.push(".");
            deleted.push(DELETED_SUFFIX);
            let deleted = PathBuf::from(deleted);
            match fs::rename(&path, &deleted) {
                Ok(()) => doomed.push(deleted),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Unlink what is already renamed; this file stays for a later attempt.
                    crate::reaper::unlink(doomed);
                    return Err(e);
                }
            }
        }
        self.file.retire();
        crate::reaper::unlink(doomed);
        Ok(())
    }

    /// Opens a sealed segment that lies before the recovery point (known durable): trusts its
    /// index files when they are plausible, otherwise rebuilds them from batch headers.
    pub fn open_sealed(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<(Self, bool)> {
        let file = LogFile::open(&file_path(dir, base_offset, LOG_SUFFIX), false)?;
        let len = file.len()?;
        let size = u32::try_from(len).map_err(|_| io::Error::other("segment larger than 4 GiB"))?;
        let mut segment = Segment::empty(base_offset, file);
        if let Some(loaded) = segment.load_indexes(dir, size)? {
            segment = loaded;
            return Ok((segment, false));
        }
        let scan = scan_segment(
            &mut segment,
            size,
            index_interval_bytes,
            ScanCheck::HeadersOnly,
        )?;
        if scan.valid_bytes != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "sealed segment {base_offset} is damaged at byte {}",
                    scan.valid_bytes
                ),
            ));
        }
        Ok((segment, true))
    }

    /// Loads and checks the index files; `None` when missing or implausible. The last indexed
    /// batch and everything after it are read back to confirm the index matches the log.
    fn load_indexes(&self, dir: &Path, size: u32) -> io::Result<Option<Segment>> {
        let (Ok(offset_bytes), Ok(time_bytes)) = (
            fs::read(file_path(dir, self.base_offset, INDEX_SUFFIX)),
            fs::read(file_path(dir, self.base_offset, TIME_INDEX_SUFFIX)),
        ) else {
            return Ok(None);
        };
        if size == 0 {
            return Ok(None);
        }
        let Ok(index) = OffsetIndex::decode(&offset_bytes, size) else {
            return Ok(None);
        };
        let Some(last) = index.entries().last().copied() else {
            return Ok(None);
        };
        // Walk the headers from the last index entry to the end of the file.
        let mut position = last.position;
        let mut next_offset = None;
        let mut first = true;
        while position < size {
            let Ok(header) = read_header(&self.file, position, size) else {
                return Ok(None);
            };
            if first && header.base_offset != self.base_offset + last.relative_offset as i64 {
                return Ok(None);
            }
            first = false;
            next_offset = Some(header.next_offset());
            position += header.total_bytes() as u32;
        }
        let Some(next_offset) = next_offset.filter(|_| position == size) else {
            return Ok(None);
        };
        let relative_end = (next_offset - self.base_offset) as u32;
        let Ok(time_index) = TimeIndex::decode(&time_bytes, relative_end) else {
            return Ok(None);
        };
        let (max_timestamp, offset_of_max_timestamp) = match time_index.last() {
            Some(e) => (e.timestamp, self.base_offset + e.relative_offset as i64),
            None => (-1, self.base_offset),
        };
        Ok(Some(Segment {
            base_offset: self.base_offset,
            file: self.file.clone(),
            size,
            next_offset,
            index,
            time_index,
            bytes_since_index_entry: 0,
            max_timestamp,
            offset_of_max_timestamp,
            first_append_ms: None,
            txn_index: TxnIndex::default(),
        }))
    }

    /// Opens a segment at or after the recovery point: every batch is CRC-checked and the
    /// indexes rebuilt; a torn or corrupt tail is cut off. Returns the segment and how many bytes
    /// were truncated.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<(Self, u64)> {
        let file = LogFile::open(&file_path(dir, base_offset, LOG_SUFFIX), false)?;
        let len = file.len()?;
        let scan_len = u32::try_from(len).unwrap_or(u32::MAX);
        let mut segment = Segment::empty(base_offset, file);
        let scan = scan_segment(
            &mut segment,
            scan_len,
            index_interval_bytes,
            ScanCheck::FullCrc,
        )?;
        let truncated = len - scan.valid_bytes as u64;
        if truncated > 0 {
            segment.file.truncate(scan.valid_bytes as u64)?;
        }
        Ok((segment, truncated))
    }
}

/// Removes the files of the segment at `base_offset` in `dir`, whichever exist.
pub fn delete_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    remove_if_exists(&file_path(dir, base_offset, LOG_SUFFIX))?;
    remove_if_exists(&file_path(dir, base_offset, INDEX_SUFFIX))?;
    remove_if_exists(&file_path(dir, base_offset, TIME_INDEX_SUFFIX))?;
    remove_if_exists(&file_path(dir, base_offset, TXN_INDEX_SUFFIX))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads and parses the batch header at `position` of a segment of `size` bytes (blocking).
fn read_header(file: &LogFile, position: u32, size: u32) -> io::Result<BatchHeader> {
    let mut buf = [0u8; BATCH_HEADER_BYTES];
    if size - position < BATCH_HEADER_BYTES as u32 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "partial batch header",
        ));
    }
    file.read_exact_at(&mut buf, position as u64)?;
    let header =
        BatchHeader::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if header.total_bytes() as u64 > (size - position) as u64 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "partial batch",
        ));
    }
    Ok(header)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanCheck {
    /// Parse headers only: for segments already known to be durable and intact.
    HeadersOnly,
    /// Verify every batch's CRC: for the tail that may have been torn by a crash.
    FullCrc,
}

struct ScanResult {
    /// Bytes from the segment start that hold whole, valid batches.
    valid_bytes: u32,
}

/// Reads a segment front to back in large chunks, placing every valid batch (which rebuilds the
/// indexes) and stopping at the first batch that is cut short, fails its checks or whose offsets
/// go backwards.
fn scan_segment(
    segment: &mut Segment,
    len: u32,
    index_interval_bytes: u32,
    check: ScanCheck,
) -> io::Result<ScanResult> {
    let mut chunk = Vec::new();
    let mut chunk_start = 0u32;
    let mut position = 0u32;
    loop {
        let remaining_in_file = len - position;
        if remaining_in_file < BATCH_HEADER_BYTES as u32 {
            break;
        }
        if !in_chunk(chunk_start, &chunk, position, BATCH_HEADER_BYTES) {
            chunk_start = position;
            chunk = read_chunk(
                &segment.file,
                position,
                remaining_in_file,
                RECOVERY_READ_BYTES,
            )?;
        }
        let Ok(header) = BatchHeader::parse(&chunk[(position - chunk_start) as usize..]) else {
            break;
        };
        let total = header.total_bytes();
        if total as u64 > remaining_in_file as u64 || header.base_offset < segment.next_offset {
            break;
        }
        if header.base_offset - segment.base_offset > u32::MAX as i64 {
            break;
        }
        if check == ScanCheck::FullCrc {
            if !in_chunk(chunk_start, &chunk, position, total) {
                chunk_start = position;
                chunk = read_chunk(
                    &segment.file,
                    position,
                    remaining_in_file,
                    RECOVERY_READ_BYTES.max(total),
                )?;
            }
            let start = (position - chunk_start) as usize;
            if batch::validate_batch(&chunk[start..start + total]).is_err() {
                break;
            }
        }
        segment.place_batch(&header, position, index_interval_bytes);
        position += total as u32;
    }
    Ok(ScanResult {
        valid_bytes: position,
    })
}

/// Whether `need` bytes at `position` lie inside the chunk read at `chunk_start`.
fn in_chunk(chunk_start: u32, chunk: &[u8], position: u32, need: usize) -> bool {
    position >= chunk_start && (position - chunk_start) as usize + need <= chunk.len()
}

fn read_chunk(file: &LogFile, position: u32, remaining: u32, want: usize) -> io::Result<Vec<u8>> {
    let n = want.min(remaining as usize);
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, position as u64)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let p = file_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(
            parse_file_name("00000000000000000042.log", LOG_SUFFIX),
            Some(42)
        );
        assert_eq!(
            parse_file_name("00000000000000000042.index", LOG_SUFFIX),
            None
        );
        assert_eq!(parse_file_name("42.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_file_name("0000000000000000004x.log", LOG_SUFFIX),
            None
        );
    }
}
