//! Cluster metadata: the topics, their ids, partition counts and configs.
//!
//! Every request reads it, so reads are lock-free: the current state is an immutable
//! [`Snapshot`] behind an `ArcSwap`. Admin APIs (rare) serialize on a mutex, persist the new state
//! to `<log.dirs>/corelog-topics.json` (write, fsync, rename) and swap the snapshot in.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// File holding the topic registry in the data directory.
pub const TOPICS_FILE: &str = "corelog-topics.json";
/// Most partitions one topic may have (a bound on what CreateTopics/CreatePartitions allocate).
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: u32,
    /// Topic-level config overrides, under Kafka's names.
    pub configs: BTreeMap<String, String>,
}

/// An immutable view of every topic.
#[derive(Debug, Default)]
pub struct Snapshot {
    topics: BTreeMap<String, Arc<TopicMeta>>,
    by_id: HashMap<Uuid, Arc<TopicMeta>>,
}

impl Snapshot {
    fn new(topics: impl IntoIterator<Item = TopicMeta>) -> Self {
        let mut s = Snapshot::default();
        for t in topics {
            let t = Arc::new(t);
            s.by_id.insert(t.id, t.clone());
            s.topics.insert(t.name.clone(), t);
        }
        s
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.by_id.get(id)
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicMeta>> {
        self.topics.values()
    }
}

/// Why an admin change was refused, as a Kafka error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    TopicAlreadyExists,
    UnknownTopic,
    InvalidPartitions(String),
    Storage(String),
}

pub struct MetadataStore {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
    path: PathBuf,
}

impl MetadataStore {
    pub fn load(data_dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(data_dir)?;
        let path = data_dir.join(TOPICS_FILE);
        let topics: Vec<TopicMeta> = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(MetadataStore {
            current: ArcSwap::from_pointee(Snapshot::new(topics)),
            writer: Mutex::new(()),
            path,
        })
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies `change` to a copy of the topic list, persists it and publishes it.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, TopicMeta>) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut topics: BTreeMap<String, TopicMeta> = self
            .current
            .load()
            .topics
            .iter()
            .map(|(k, v)| (k.clone(), TopicMeta::clone(v)))
            .collect();
        let out = change(&mut topics)?;
        self.persist(topics.values())
            .map_err(|e| MetadataError::Storage(e.to_string()))?;
        self.current
            .store(Arc::new(Snapshot::new(topics.into_values())));
        Ok(out)
    }

    fn persist<'a>(&self, topics: impl Iterator<Item = &'a TopicMeta>) -> io::Result<()> {
        let list: Vec<&TopicMeta> = topics.collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        if partitions == 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(MetadataError::InvalidPartitions(format!(
                "partitions must be 1..={MAX_PARTITIONS_PER_TOPIC}"
            )));
        }
        self.update(|topics| {
            if topics.contains_key(name) {
                return Err(MetadataError::TopicAlreadyExists);
            }
            let meta = TopicMeta {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions,
                configs,
            };
            topics.insert(name.to_string(), meta.clone());
            Ok(Arc::new(meta))
        })
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        self.update(|topics| {
            topics
                .remove(name)
                .map(Arc::new)
                .ok_or(MetadataError::UnknownTopic)
        })
    }

    /// Raises a topic's partition count (Kafka never lowers it).
    pub fn set_partition_count(
        &self,
        name: &str,
        count: u32,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        self.update(|topics| {
            let t = topics.get_mut(name).ok_or(MetadataError::UnknownTopic)?;
            if count <= t.partitions {
                return Err(MetadataError::InvalidPartitions(format!(
                    "topic currently has {} partitions, which is higher than or equal to the requested {count}",
                    t.partitions
                )));
            }
            if count > MAX_PARTITIONS_PER_TOPIC {
                return Err(MetadataError::InvalidPartitions(format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions")));
            }
            t.partitions = count;
            Ok(Arc::new(t.clone()))
        })
    }

    /// Replaces a topic's config overrides.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        self.update(|topics| {
            let t = topics.get_mut(name).ok_or(MetadataError::UnknownTopic)?;
            t.configs = configs;
            Ok(Arc::new(t.clone()))
        })
    }
}
