//! One-shot calls: cluster metadata, topic creation and deletion, offsets, producer ids.
//!
//! Versions are fixed at ones both Kafka 4.x and corelog speak, so no ApiVersions round trip is
//! needed before the load starts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{resolve, Conn};

const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const DELETE_TOPICS_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// How long a new topic may take to show leaders for every partition (Kafka creates them
/// asynchronously through its controller).
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// ListOffsets timestamps with a special meaning.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Where each partition of a topic lives.
#[derive(Clone, Debug)]
pub struct TopicLayout {
    /// Partition index → leader's address, in partition order.
    pub leaders: Vec<SocketAddr>,
}

impl TopicLayout {
    /// The distinct leader addresses.
    pub fn brokers(&self) -> Vec<SocketAddr> {
        let mut all = self.leaders.clone();
        all.sort();
        all.dedup();
        all
    }
}

/// A Kafka error code as its name, for messages and error counts.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error code {code}"),
    }
}

/// The topic's partitions and their leaders; `None` while the topic does not exist or some
/// partition has no leader yet.
pub async fn topic_layout(
    conn: &mut Conn,
    bootstrap: SocketAddr,
    topic: &str,
) -> Result<Option<TopicLayout>> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let resp = conn.call(&req, METADATA_VERSION).await?;
    let brokers: HashMap<BrokerId, SocketAddr> = resp
        .brokers
        .iter()
        .map(|b| {
            // A broker advertising a name this machine cannot resolve is reached through the
            // bootstrap address (the single-broker case).
            let addr = resolve(&format!("{}:{}", b.host, b.port)).unwrap_or(bootstrap);
            (b.node_id, addr)
        })
        .collect();
    let Some(t) = resp.topics.first() else {
        return Ok(None);
    };
    if t.error_code != 0 {
        return Ok(None);
    }
    let mut leaders = vec![None; t.partitions.len()];
    for p in &t.partitions {
        let Some(slot) = usize::try_from(p.partition_index)
            .ok()
            .and_then(|i| leaders.get_mut(i))
        else {
            bail!(
                "metadata names partition {} of {}",
                p.partition_index,
                t.partitions.len()
            );
        };
        *slot = brokers.get(&p.leader_id).copied();
    }
    if leaders.is_empty() || leaders.iter().any(Option::is_none) {
        return Ok(None);
    }
    Ok(Some(TopicLayout {
        leaders: leaders.into_iter().map(|l| l.expect("checked")).collect(),
    }))
}

/// Creates the topic unless it exists, then waits until every partition has a leader.
pub async fn ensure_topic(
    conn: &mut Conn,
    bootstrap: SocketAddr,
    topic: &str,
    partitions: u32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> Result<TopicLayout> {
    if let Some(layout) = topic_layout(conn, bootstrap, topic).await? {
        return Ok(layout);
    }
    let creatable = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_num_partitions(i32::try_from(partitions).context("partition count")?)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let resp = conn.call(&req, CREATE_TOPICS_VERSION).await?;
    for t in &resp.topics {
        // 36 = TOPIC_ALREADY_EXISTS: another generator or an earlier phase made it.
        if t.error_code != 0 && t.error_code != 36 {
            bail!(
                "creating topic {topic}: {} {}",
                error_name(t.error_code),
                t.error_message.as_deref().unwrap_or("")
            );
        }
    }
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        if let Some(layout) = topic_layout(conn, bootstrap, topic).await? {
            // Kafka names a leader before the leader serves the partition: wait until every
            // partition answers ListOffsets, so no producer or consumer starts with errors.
            let all: Vec<i32> = (0..layout.leaders.len() as i32).collect();
            if layout.leaders.len() == partitions as usize
                && list_offsets(conn, topic, &all, LATEST_TIMESTAMP)
                    .await
                    .is_ok()
            {
                return Ok(layout);
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leader for every partition after {TOPIC_READY_TIMEOUT:?}");
        }
        corelog_engine::runtime::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a topic; a topic that does not exist is not an error.
pub async fn delete_topic(conn: &mut Conn, topic: &str) -> Result<()> {
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_string(topic.to_string()))])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let resp = conn.call(&req, DELETE_TOPICS_VERSION).await?;
    for r in &resp.responses {
        // 3 = UNKNOWN_TOPIC_OR_PARTITION.
        if r.error_code != 0 && r.error_code != 3 {
            bail!("deleting topic {topic}: {}", error_name(r.error_code));
        }
    }
    Ok(())
}

/// The offsets of `partitions` at `timestamp` (LATEST_TIMESTAMP, EARLIEST_TIMESTAMP).
pub async fn list_offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<HashMap<i32, i64>> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp = conn.call(&req, LIST_OFFSETS_VERSION).await?;
    let mut offsets = HashMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!(
                    "listing offsets of {topic}-{}: {}",
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            offsets.insert(p.partition_index, p.offset);
        }
    }
    if let Some(missing) = partitions.iter().find(|p| !offsets.contains_key(p)) {
        bail!("no offset returned for {topic}-{missing}");
    }
    Ok(offsets)
}

/// A producer id and epoch for an idempotent (non-transactional) producer.
pub async fn init_producer_id(conn: &mut Conn) -> Result<(i64, i16)> {
    // The crate's default transactional id is the empty string, which brokers refuse: an
    // idempotent producer sends null. The timeout is the Java client's transaction.timeout.ms.
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let resp = conn.call(&req, INIT_PRODUCER_ID_VERSION).await?;
    if let Some(err) = resp.error_code.err() {
        bail!("InitProducerId: {err:?}");
    }
    Ok((resp.producer_id.0, resp.producer_epoch))
}
