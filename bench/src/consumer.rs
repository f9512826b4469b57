//! One consumer: fetches its partitions from their leaders (one Fetch in flight per connection,
//! as Kafka's consumer does by default), checks every batch's CRC, walks every record, and records
//! end-to-end latency from the send time the producer wrote into the value.
//!
//! Partitions are assigned by the generator (no consumer group), so the measurement has no
//! rebalance in it; group coordination is measured by the broker's own tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::admin::{
    error_name, list_offsets, TopicLayout, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use crate::client::records::split_batches;
use crate::client::Conn;
use crate::control::{new_histogram, now_ns, record_latency, Control};
use crate::live::LiveCounters;
use crate::spec::{ConsumeFrom, WorkloadSpec};

/// Fetch v12: topic names, flexible; spoken by Kafka 2.8+ and corelog.
const FETCH_VERSION: i16 = 12;
/// The Java consumer's defaults: fetch.max.wait.ms, fetch.max.bytes, max.partition.fetch.bytes.
const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// After the producers stop, consumers read on this long at most to collect the last records.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// OFFSET_OUT_OF_RANGE: the position is gone; reset as auto.offset.reset says.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// What one consumer measured.
pub struct ConsumerStats {
    /// Intended send → consumed, for records intended inside the window.
    pub e2e_latency: Histogram<u64>,
    /// Records and value bytes consumed inside the window.
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

/// How many readiness reports a consumer of `partitions` makes: one per leader it reads from
/// (at least one).
pub fn ready_reports(layout: &TopicLayout, partitions: &[u32]) -> usize {
    let mut leaders: Vec<SocketAddr> = partitions
        .iter()
        .map(|&p| layout.leaders[p as usize])
        .collect();
    leaders.sort();
    leaders.dedup();
    leaders.len().max(1)
}

/// Runs one consumer over `partitions` until the run ends.
pub async fn run(
    spec: Arc<WorkloadSpec>,
    layout: TopicLayout,
    partitions: Vec<u32>,
    control: Arc<Control>,
) -> Result<ConsumerStats> {
    // One fetch loop per leader broker, each on its own connection.
    let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        by_leader
            .entry(layout.leaders[p as usize])
            .or_default()
            .push(p as i32);
    }
    let mut handles = Vec::new();
    for (addr, parts) in by_leader {
        handles.push(corelog_engine::runtime::spawn(fetch_loop(
            spec.clone(),
            addr,
            parts,
            control.clone(),
        )));
    }
    if handles.is_empty() {
        // More consumers than partitions: this one has nothing to read.
        control.ready.fetch_add(1, Ordering::AcqRel);
        control.consumers_caught_up.fetch_add(1, Ordering::AcqRel);
    }
    let mut total = ConsumerStats {
        e2e_latency: new_histogram(),
        consumed_messages: 0,
        consumed_bytes: 0,
        errors: BTreeMap::new(),
    };
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(s) => {
                total.e2e_latency.add(&s.e2e_latency).expect("same bounds");
                total.consumed_messages += s.consumed_messages;
                total.consumed_bytes += s.consumed_bytes;
                for (k, v) in s.errors {
                    *total.errors.entry(k).or_default() += v;
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn fetch_loop(
    spec: Arc<WorkloadSpec>,
    addr: SocketAddr,
    partitions: Vec<i32>,
    control: Arc<Control>,
) -> Result<ConsumerStats> {
    let setup = async {
        let mut conn = Conn::connect(addr).await?;
        let offsets = start_offsets(&mut conn, &spec, &partitions).await?;
        anyhow::Ok((conn, offsets))
    }
    .await;
    // Every link reports once, ready or failed ([`ready_reports`] counts them).
    control.ready.fetch_add(1, Ordering::AcqRel);
    let (mut conn, mut offsets) = match setup {
        Ok(s) => s,
        Err(e) => {
            control.failed.store(true, Ordering::Release);
            return Err(e);
        }
    };
    control.wait_for_go().await;

    let mut stats = ConsumerStats {
        e2e_latency: new_histogram(),
        consumed_messages: 0,
        consumed_bytes: 0,
        errors: BTreeMap::new(),
    };
    let measure_e2e = spec.producers > 0;
    let topic = TopicName(StrBytes::from_string(spec.topic.clone()));
    let mut high_watermarks: HashMap<i32, i64> = HashMap::new();
    let mut drain_deadline: Option<Instant> = None;
    let mut reported_caught_up = false;

    loop {
        if control.failed.load(Ordering::Relaxed) {
            return Ok(stats);
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(offsets[&p])
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(PARTITION_MAX_BYTES)
                        })
                        .collect(),
                )]);
        let response = conn.call(&request, FETCH_VERSION).await?;
        let now = now_ns();
        if response.error_code != 0 {
            *stats
                .errors
                .entry(error_name(response.error_code))
                .or_default() += 1;
            LiveCounters::add(&control.live.errors, 1);
            corelog_engine::runtime::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut resets = Vec::new();
        for t in &response.responses {
            for p in &t.partitions {
                let partition = p.partition_index;
                let Some(offset) = offsets.get_mut(&partition) else {
                    continue;
                };
                if p.error_code == OFFSET_OUT_OF_RANGE {
                    resets.push(partition);
                    continue;
                }
                if p.error_code != 0 {
                    *stats.errors.entry(error_name(p.error_code)).or_default() += 1;
                    LiveCounters::add(&control.live.errors, 1);
                    continue;
                }
                high_watermarks.insert(partition, p.high_watermark);
                let Some(records) = &p.records else { continue };
                for batch in split_batches(records)? {
                    let next = batch.next_offset();
                    if next <= *offset {
                        continue;
                    }
                    if !batch.is_control() {
                        let from = *offset;
                        batch.for_each_record(|record_offset, value| {
                            if record_offset < from {
                                return;
                            }
                            messages += 1;
                            bytes += value.len() as u64;
                            if measure_e2e && value.len() >= 8 {
                                let sent = u64::from_le_bytes(value[..8].try_into().expect("8"));
                                if control.in_window(sent) {
                                    record_latency(&mut stats.e2e_latency, sent, now);
                                }
                            }
                        })?;
                    }
                    *offset = next;
                }
            }
        }
        if !resets.is_empty() {
            let reset = start_offsets(&mut conn, &spec, &resets).await?;
            offsets.extend(reset);
        }
        LiveCounters::add(&control.live.consumed_messages, messages);
        LiveCounters::add(&control.live.consumed_bytes, bytes);
        if control.in_window(now) {
            stats.consumed_messages += messages;
            stats.consumed_bytes += bytes;
            control
                .window_consumed
                .fetch_add(messages, Ordering::Relaxed);
        }

        let caught_up = partitions
            .iter()
            .all(|p| high_watermarks.get(p).is_some_and(|&hw| offsets[p] >= hw));
        if spec.producers == 0 {
            // Catch-up read: done at the end of the backlog (or when the run is stopped).
            if caught_up && control.window_started() && !reported_caught_up {
                reported_caught_up = true;
                control.consumers_caught_up.fetch_add(1, Ordering::AcqRel);
            }
            if reported_caught_up || control.stopping() {
                return Ok(stats);
            }
        } else if control.stopping() {
            let producers_done = control.producers_done.load(Ordering::Acquire) >= spec.producers;
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            if (producers_done && caught_up) || Instant::now() > deadline {
                return Ok(stats);
            }
        }
    }
}

/// Where to start reading each partition: the log start or its end.
async fn start_offsets(
    conn: &mut Conn,
    spec: &WorkloadSpec,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>> {
    let timestamp = match spec.consume_from {
        ConsumeFrom::Earliest => EARLIEST_TIMESTAMP,
        ConsumeFrom::Latest => LATEST_TIMESTAMP,
    };
    list_offsets(conn, &spec.topic, partitions, timestamp).await
}
