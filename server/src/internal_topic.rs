//! What the coordinators' internal topics share (`__consumer_offsets` for groups,
//! `__transaction_state` for transactions): they are created on first use, as Kafka creates
//! them; only their coordinator writes them, at the broker's acks=all point; and the shard that
//! owns a partition replays it at start-up, batch by batch, over a log shaped by compaction.

use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use corelog_engine::batch::{BatchHeader, BATCH_HEADER_BYTES};
use corelog_engine::log::AppendInfo;
use corelog_engine::partition::{AckPoint, Partition};
use corelog_engine::runtime;

use crate::broker::{shard, BrokerContext};

/// How long a request waits for another request's creation of an internal topic.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often it looks while waiting.
const CREATE_POLL: Duration = Duration::from_millis(10);
/// Bytes read per step while replaying a partition at start-up.
const REPLAY_READ_BYTES: u32 = 1024 * 1024;

/// An internal topic: its name, the broker flag that says it exists with its partitions open,
/// and how it is created.
pub struct InternalTopic {
    pub name: &'static str,
    pub ready: fn(&BrokerContext) -> &AtomicBool,
    /// Partitions it is created with (the broker's config).
    pub partitions: fn(&BrokerContext) -> u32,
    /// The topic configs it is created with (Kafka's, for that coordinator).
    pub configs: fn(&BrokerContext) -> BTreeMap<String, String>,
}

impl InternalTopic {
    /// Creates the topic on first use, and waits while another request is creating it.
    pub async fn ensure(&self) -> Result<(), String> {
        let broker = shard().broker.clone();
        let ready = (self.ready)(&broker);
        let deadline = Instant::now() + CREATE_TIMEOUT;
        while !ready.load(Ordering::Acquire) {
            if broker.metadata.snapshot().topic(self.name).is_none() {
                let configs = (self.configs)(&broker);
                let partitions = (self.partitions)(&broker);
                match crate::topics::create(self.name, partitions, configs).await {
                    Ok(_) => {
                        ready.store(true, Ordering::Release);
                        return Ok(());
                    }
                    Err((code, _)) if code == crate::handlers::error::TOPIC_ALREADY_EXISTS => {}
                    Err((_, message)) => return Err(message),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("{} was not ready in time", self.name));
            }
            runtime::sleep(CREATE_POLL).await;
        }
        Ok(())
    }
}

/// Appends one coordinator batch and answers once it reached the broker's acks=all point
/// (fdatasynced with `corelog.acks.all.durable`, the default).
pub async fn append(
    broker: &BrokerContext,
    partition: &Rc<Partition>,
    batch: Vec<u8>,
) -> Result<AppendInfo, String> {
    let ack = if broker.config.acks_all_durable {
        AckPoint::Durable
    } else {
        AckPoint::Written
    };
    partition.append(batch, ack).await.map_err(|e| {
        format!(
            "writing to {}-{}: {e:?}",
            partition.topic, partition.partition
        )
    })
}

/// Reads every stored batch of `partition` from its log start, in offset order, and hands each
/// (its bytes, its header) to `apply`; returns the sum of what `apply` returned (records).
///
/// The log may be compacted: there are gaps between batches (the next one is found by reading
/// from the end of the last), and batches may hold fewer records than offsets.
pub async fn replay(
    partition: &Partition,
    mut apply: impl FnMut(&[u8], &BatchHeader) -> Result<u64, String>,
) -> io::Result<u64> {
    let name = format!("{}-{}", partition.topic, partition.partition);
    let mut records = 0u64;
    let mut offset = partition.log().log_start_offset();
    loop {
        let slice = partition
            .read(offset, REPLAY_READ_BYTES, true)
            .await
            .map_err(|e| io::Error::other(format!("{name}: {e}")))?;
        let Some(range) = slice.range else { break };
        let mut buf = vec![0u8; range.len as usize];
        range.file.read_exact_at(&mut buf, range.position)?;
        let read_from = offset;
        let mut pos = 0usize;
        while pos + BATCH_HEADER_BYTES <= buf.len() {
            let header = BatchHeader::parse(&buf[pos..])
                .map_err(|e| io::Error::other(format!("{name}: {e:?}")))?;
            let end = pos + header.total_bytes();
            if end > buf.len() {
                break;
            }
            records += apply(&buf[pos..end], &header)
                .map_err(|e| io::Error::other(format!("{name}: {e}")))?;
            offset = header.next_offset();
            pos = end;
        }
        if offset == read_from {
            // A read returns at least one whole batch; anything else would loop forever.
            return Err(io::Error::other(format!(
                "{name}: no whole batch at offset {offset}"
            )));
        }
        if offset >= slice.high_watermark {
            break;
        }
    }
    Ok(records)
}
