//! A Kafka-protocol endpoint that acknowledges every produce and stores nothing.
//!
//! Running the generator against it shows what the generator alone can push on this machine (and
//! at what CPU cost), so a broker measurement can be told apart from a generator limit. It speaks
//! just enough for producers: ApiVersions, Metadata, CreateTopics, DeleteTopics, InitProducerId,
//! ListOffsets and Produce. Offsets it returns are per shard and per partition counters: they grow
//! like a log's, but two shards may hand out the same offset (nothing is stored to read back).
//! Fetch is not spoken: consumers need a real broker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use corelog_engine::runtime::{ops, spawn, ShardConfig, ShardSet};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::client::{resolve, FrameReader};

/// Partitions a topic gets when a client asks for one that was never created (auto-creation).
const AUTO_CREATE_PARTITIONS: i32 = 16;
const LISTEN_BACKLOG: i32 = 1024;
/// The API versions the sink answers (all within what Kafka 4.x clients pick).
const SUPPORTED: [(ApiKey, i16, i16); 7] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
];

/// Topics known to the sink: name → partition count. Touched only by admin requests.
type Topics = Arc<Mutex<HashMap<String, i32>>>;

/// Serves on `listen` until the process is killed, one shard per core.
pub fn serve(listen: &str) -> Result<()> {
    let addr = resolve(listen)?;
    let topics: Topics = Arc::new(Mutex::new(HashMap::new()));
    let shards = ShardSet::new(ShardConfig::default()).context("starting shards")?;
    let mut handles = Vec::new();
    for shard in 0..shards.len() {
        let topics = topics.clone();
        handles.push(shards.spawn_on(shard, move || accept_loop(addr, topics)));
    }
    eprintln!("null sink: acknowledging produce requests on {addr} (stores nothing)");
    for h in handles {
        h.wait()?;
    }
    Ok(())
}

async fn accept_loop(addr: SocketAddr, topics: Topics) -> Result<()> {
    let listener = ops::listen_reuseport(addr, LISTEN_BACKLOG).context("listening")?;
    let mut accepted = ops::accept_multishot(listener.as_raw_fd());
    // Per-shard offset counters: (topic, partition) → next offset.
    let offsets = Rc::new(RefCell::new(HashMap::<(String, i32), i64>::new()));
    let producer_ids = Rc::new(RefCell::new(0i64));
    while let Some(conn) = accepted.next().await {
        let Ok(conn) = conn else { continue };
        let ctx = Ctx {
            addr,
            topics: topics.clone(),
            offsets: offsets.clone(),
            producer_ids: producer_ids.clone(),
        };
        spawn(async move {
            // A broken or closed client ends only its own connection.
            let _ = serve_connection(conn, ctx).await;
        });
    }
    Ok(())
}

struct Ctx {
    addr: SocketAddr,
    topics: Topics,
    offsets: Rc<RefCell<HashMap<(String, i32), i64>>>,
    producer_ids: Rc<RefCell<i64>>,
}

async fn serve_connection(conn: OwnedFd, ctx: Ctx) -> Result<()> {
    let fd = conn.as_raw_fd();
    let mut reader = FrameReader::new();
    loop {
        let mut frame = reader.next_frame(fd).await?;
        let header_start = frame.clone();
        let api_key = i16::from_be_bytes([header_start[0], header_start[1]]);
        let version = i16::from_be_bytes([header_start[2], header_start[3]]);
        let Ok(key) = ApiKey::try_from(api_key) else {
            bail!("unknown api key {api_key}");
        };
        let header = RequestHeader::decode(&mut frame, key.request_header_version(version))?;
        let id = header.correlation_id;
        let out = match key {
            ApiKey::ApiVersions => {
                // Always answered with a v0 header (KIP-511), whatever the version.
                let body = ApiVersionsResponse::default().with_api_keys(
                    SUPPORTED
                        .iter()
                        .map(|&(k, min, max)| {
                            ApiVersion::default()
                                .with_api_key(k as i16)
                                .with_min_version(min)
                                .with_max_version(max)
                        })
                        .collect(),
                );
                let version = version.min(3);
                encode_response(id, &body, version, 0)?
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut frame, version)?;
                respond(id, &metadata(&ctx, req), version)?
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut frame, version)?;
                let mut topics = ctx.topics.lock().expect("not poisoned");
                let results = req
                    .topics
                    .iter()
                    .map(|t| {
                        let exists = topics.contains_key(t.name.as_str());
                        if !exists {
                            topics.insert(t.name.to_string(), t.num_partitions.max(1));
                        }
                        CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(if exists { 36 } else { 0 })
                            .with_num_partitions(t.num_partitions.max(1))
                            .with_replication_factor(1)
                    })
                    .collect();
                drop(topics);
                respond(
                    id,
                    &CreateTopicsResponse::default().with_topics(results),
                    version,
                )?
            }
            ApiKey::DeleteTopics => {
                let req = DeleteTopicsRequest::decode(&mut frame, version)?;
                let mut topics = ctx.topics.lock().expect("not poisoned");
                let names: Vec<TopicName> = req
                    .topic_names
                    .into_iter()
                    .chain(req.topics.into_iter().filter_map(|t| t.name))
                    .collect();
                let results = names
                    .into_iter()
                    .map(|n| {
                        let code = if topics.remove(n.as_str()).is_some() {
                            0
                        } else {
                            3
                        };
                        DeletableTopicResult::default()
                            .with_name(Some(n))
                            .with_error_code(code)
                    })
                    .collect();
                drop(topics);
                respond(
                    id,
                    &DeleteTopicsResponse::default().with_responses(results),
                    version,
                )?
            }
            ApiKey::InitProducerId => {
                let next = {
                    let mut ids = ctx.producer_ids.borrow_mut();
                    *ids += 1;
                    *ids
                };
                let body = InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(next))
                    .with_producer_epoch(0);
                respond(id, &body, version)?
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut frame, version)?;
                let offsets = ctx.offsets.borrow();
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let end = offsets
                                            .get(&(t.name.to_string(), p.partition_index))
                                            .copied()
                                            .unwrap_or(0);
                                        let offset = if p.timestamp == -2 { 0 } else { end };
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_offset(offset)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                drop(offsets);
                respond(
                    id,
                    &ListOffsetsResponse::default().with_topics(topics),
                    version,
                )?
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut frame, version)?;
                let body = produce(&ctx, &req);
                if req.acks == 0 {
                    continue;
                }
                respond(id, &body, version)?
            }
            _ => bail!("the null sink does not speak {key:?}"),
        };
        let (res, _) = ops::send_all(fd, out).await;
        res?;
    }
}

fn metadata(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let mut topics = ctx.topics.lock().expect("not poisoned");
    let names: Vec<String> = match req.topics {
        Some(list) => list
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.to_string()))
            .collect(),
        None => topics.keys().cloned().collect(),
    };
    let listed = names
        .into_iter()
        .map(|name| {
            let partitions = *topics.entry(name.clone()).or_insert(AUTO_CREATE_PARTITIONS);
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_topic_id(uuid_for(partitions))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(0))
                                .with_replica_nodes(vec![BrokerId(0)])
                                .with_isr_nodes(vec![BrokerId(0)])
                        })
                        .collect(),
                )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_string(ctx.addr.ip().to_string()))
            .with_port(i32::from(ctx.addr.port()))])
        .with_cluster_id(Some(StrBytes::from_static_str("corelog-bench-null-sink")))
        .with_controller_id(BrokerId(0))
        .with_topics(listed)
}

/// A non-nil topic id (clients reject the nil one).
fn uuid_for(partitions: i32) -> uuid::Uuid {
    uuid::Uuid::from_u128(0xc0de_0000_0000_0000_0000_0000_0000_0000 | partitions as u128)
}

fn produce(ctx: &Ctx, req: &ProduceRequest) -> ProduceResponse {
    let mut offsets = ctx.offsets.borrow_mut();
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            let records = p.records.as_ref().map_or(0, count_records);
                            let next = offsets.entry((t.name.to_string(), p.index)).or_insert(0);
                            let base = *next;
                            *next += records;
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_base_offset(base)
                                .with_log_append_time_ms(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Records in a record set, from the batch headers (recordsCount at byte 57 of each v2 batch).
fn count_records(records: &Bytes) -> i64 {
    let mut pos = 0;
    let mut count = 0i64;
    while records.len() >= pos + 61 {
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().expect("4"));
        let Ok(len) = usize::try_from(len) else { break };
        count += i64::from(i32::from_be_bytes(
            records[pos + 57..pos + 61].try_into().expect("4"),
        ));
        pos += 12 + len;
    }
    count
}

fn respond<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    body: &R,
    version: i16,
) -> Result<Vec<u8>> {
    encode_response(correlation_id, body, version, R::header_version(version))
}

fn encode_response<R: Encodable>(
    correlation_id: i32,
    body: &R,
    version: i16,
    header_version: i16,
) -> Result<Vec<u8>> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.to_vec())
}
