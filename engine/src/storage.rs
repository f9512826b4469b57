//! A shard's storage: the partitions it owns, each in its own directory under the data dir
//! (`<topic>-<partition>/`, as Kafka lays out `log.dirs`), and the shard's group-commit flusher.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::flush::{FlushStats, Flusher};
use crate::log::{LogConfig, RecoveryReport};
use crate::partition::Partition;
use crate::segment::LogFile;

/// Longest topic name Kafka allows (so that `<topic>-<partition>` fits a file name).
pub const MAX_TOPIC_NAME_BYTES: usize = 249;

/// A shard's partitions by (topic, partition).
pub type PartitionTable = RefCell<BTreeMap<(String, u32), Rc<Partition>>>;

/// The storage side of one shard. Lives on the shard's thread (`Rc`, no locks).
#[derive(Debug)]
pub struct ShardStorage {
    data_dir: PathBuf,
    partitions: Rc<PartitionTable>,
    flusher: Rc<Flusher>,
}

/// Kafka's rule for topic names: 1..=249 bytes of `[a-zA-Z0-9._-]`, not `.` or `..`. It also keeps
/// a name from escaping the data directory.
pub fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_NAME_BYTES
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Suffix of a deleted partition's directory until the reaper has removed it.
pub const DELETED_DIR_SUFFIX: &str = ".deleted";

/// A unique name for a partition directory being deleted: `<dir>.<nanos>.deleted` (a partition
/// directory always ends in `-<partition>`, so it never looks like this).
fn deleted_dir_name(dir: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{nanos}{DELETED_DIR_SUFFIX}"));
    PathBuf::from(name)
}

/// Removes what deletions interrupted by a crash left in `data_dir` (directories renamed for the
/// reaper). Called once at start-up, before any shard opens a partition.
pub fn remove_deleted_leftovers(data_dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(DELETED_DIR_SUFFIX)
        {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

impl ShardStorage {
    pub fn new(data_dir: &Path) -> io::Result<Rc<Self>> {
        fs::create_dir_all(data_dir)?;
        Ok(Rc::new(ShardStorage {
            data_dir: data_dir.to_path_buf(),
            partitions: Rc::new(RefCell::new(BTreeMap::new())),
            flusher: Flusher::new(),
        }))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// Opens (creating or recovering) a partition's log and makes this shard its owner.
    pub fn open_partition(
        &self,
        topic: &str,
        partition: u32,
        config: LogConfig,
    ) -> io::Result<(Rc<Partition>, RecoveryReport)> {
        if !is_valid_topic_name(topic) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid topic name {topic:?}"),
            ));
        }
        let key = (topic.to_string(), partition);
        if let Some(existing) = self.partitions.borrow().get(&key) {
            return Ok((existing.clone(), RecoveryReport::default()));
        }
        let dir = partition_dir(&self.data_dir, topic, partition);
        let created = !dir.exists();
        let timed = config.flush_ms != u64::MAX || config.flush_messages != u64::MAX;
        let (p, report) = Partition::open(topic, partition, &dir, config, self.flusher.clone())?;
        if created {
            // The new directory's entry in the data dir must survive a crash too.
            sync_dir(&self.data_dir)?;
        }
        self.partitions.borrow_mut().insert(key, p.clone());
        if timed {
            self.flusher.start_timer(Rc::downgrade(&self.partitions));
        }
        Ok((p, report))
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Removes a partition and deletes its files. Reads in flight keep their segments open.
    pub fn delete_partition(&self, topic: &str, partition: u32) -> io::Result<bool> {
        let Some(p) = self
            .partitions
            .borrow_mut()
            .remove(&(topic.to_string(), partition))
        else {
            return Ok(false);
        };
        p.log_mut().fail();
        // Freeing a big segment's blocks takes ~0.8 s per GiB on ext4: the directory is renamed
        // away here (the topic's name is free at once) and removed on the reaper thread, and the
        // segments' last close (here, or in a fetch that still holds a range) happens there too.
        for seg in p.log().segments() {
            seg.file.retire();
        }
        let dir = p.log().dir().to_path_buf();
        let doomed = deleted_dir_name(&dir);
        fs::rename(&dir, &doomed)?;
        sync_dir(&self.data_dir)?;
        crate::reaper::remove_dir(doomed);
        Ok(true)
    }

    /// Waits until no flush round is running (so that no I/O of this shard is in flight).
    pub async fn quiesce(&self) {
        self.flusher.quiesce().await
    }

    /// Makes everything written on this shard durable (graceful shutdown).
    pub async fn flush_all(&self) {
        for p in self.partitions() {
            let end = p.log().log_end_offset();
            let _ = p.wait_durable(end).await;
        }
    }
}

/// fsyncs a directory so that entries created or removed in it are durable (blocking; used when
/// partitions are created or deleted, not on the append path).
fn sync_dir(dir: &Path) -> io::Result<()> {
    LogFile::open_dir(dir)?.sync_blocking()
}
