//! Fetch (key 1): read record batches from partitions, zero-copy.
//!
//! The whole fetch, in order:
//! 1. **Sessions (KIP-227).** corelog keeps no fetch sessions: every response carries session id 0
//!    (`INVALID_SESSION_ID`), which tells the client no session was created, so the Java client
//!    and librdkafka keep sending full fetch requests (epoch 0 or -1). An incremental request
//!    (epoch > 0) names a session that cannot exist here and gets FETCH_SESSION_ID_NOT_FOUND,
//!    which makes the Java client start over with a full request — exactly what Kafka does when
//!    its session cache has evicted a session.
//! 2. **Read pass.** Partitions are read in request order, each on its owner shard, from
//!    `fetch_offset` up to `min(partition_max_bytes, what is left of max_bytes)`. Until some
//!    partition has returned data, a read returns at least one whole batch even if it is larger
//!    (KIP-74), so a consumer always makes progress.
//! 3. **Long poll.** If fewer than `min_bytes` were read, no partition failed and `max_wait_ms` has
//!    not passed, the fetch waits on the owner shards for any of its partitions' high watermarks to
//!    move (an engine notification, no polling) or for the deadline, then reads again.
//! 4. **Zero-copy response.** The response is encoded here, by hand, around the record bytes:
//!    everything but `records` is small and goes out as bytes; each partition's records go out as
//!    a [`Part::File`] range that the connection splices from the segment file to the socket.
//!    With `corelog.fetch.zero.copy=false` the ranges are read into memory and sent as bytes
//!    instead (for benchmarks that compare CPU per GB).
//!
//! Clients: the Java client (4.x, Fetch v16 by topic id) consumes from this handler as is.
//! librdkafka picks its Fetch version from *features*, and its v2-record-format feature needs
//! Produce v3 *and* Fetch v4 in ApiVersions: until Produce is advertised it refuses to fetch
//! ("request not supported by broker"). With Produce v3 advertised, kcat (librdkafka 2.0.2)
//! consumes, seeks by time (ListOffsets) and tails correctly.
//!
//! Transactions: every response carries the partition's last stable offset (LSO: the high
//! watermark, or the first offset of the oldest open transaction if lower), at both isolation
//! levels, as Kafka does. `isolation_level` 1 (read_committed) reads only below the LSO and
//! returns, for the range it sends, the aborted transactions that overlap it (producer id and
//! first offset, from the log's aborted-transaction index) so the consumer drops their records;
//! read_uncommitted reads up to the high watermark with an empty list. A read_committed long
//! poll wakes on the same notification as any other: the LSO only moves when the high watermark
//! does (an append below no open transaction, or a marker, whose write is what closes its
//! transaction).

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchRequest;
use uuid::Uuid;

use corelog_engine::batch::{BatchHeader, BATCH_HEADER_BYTES};
use corelog_engine::log::FileRange;
use corelog_engine::partition::{Partition, ReadError, ReadSlice};
use corelog_engine::runtime::{self, ops};

use super::{error, Part, Reply, Request};
use crate::broker::{on_owner, owner_of, shard};

/// Oldest version advertised: v4 is the first with `last_stable_offset`/isolation, and the one
/// librdkafka before 2.11.1 checks for by exact number (with 10 and up).
pub const MIN_VERSION: i16 = 4;
/// Newest version advertised: v13+ names topics by id (Metadata returns them), v15 moves the
/// replica id into `replica_state`, v16 adds the optional `node_endpoints` tagged field (never
/// needed: this broker always leads). v17 adds a tagged replica directory id, for KRaft replicas.
pub const MAX_VERSION: i16 = 16;
/// First version with flexible (compact, tagged) encoding.
const FLEXIBLE_VERSION: i16 = 12;
/// First version that names topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// First version with `error_code` and `session_id` at the top level.
const SESSION_VERSION: i16 = 7;
/// First version with a partition's `log_start_offset`.
const LOG_START_VERSION: i16 = 5;
/// First version with a partition's `preferred_read_replica`.
const PREFERRED_REPLICA_VERSION: i16 = 11;

/// KIP-227 session id meaning "no session".
const INVALID_SESSION_ID: i32 = 0;
/// KIP-227 epochs of a full (sessionless or session-creating) fetch request.
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;
/// `preferred_read_replica` when the leader serves the read.
const NO_PREFERRED_REPLICA: i32 = -1;

/// The longest a fetch may wait for `min_bytes`, in milliseconds, whatever `max_wait_ms` says
/// (bounds how long a waiter stays registered on an idle partition; Kafka clients ask 500 ms).
pub const MAX_WAIT_CAP_MS: u64 = 60_000;

/// `isolation_level` of a read_committed fetch (0 is read_uncommitted).
pub const READ_COMMITTED: i8 = 1;
/// Bytes read per ring read while walking to the last batch header of a read_committed range
/// (to bound its aborted-transaction list by what is sent).
const LAST_BATCH_SCAN_READ_BYTES: usize = 16 * 1024;

/// Record bytes sent as spliced file ranges since start (zero-copy fetches).
pub static ZERO_COPY_BYTES: AtomicU64 = AtomicU64::new(0);
/// Record bytes read into memory and sent as bytes since start (`corelog.fetch.zero.copy=false`).
pub static COPIED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The outcome of reading one partition.
struct PartitionResult {
    index: i32,
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed: the aborted transactions overlapping the records sent (producer id,
    /// first offset).
    aborted: Vec<(i64, i64)>,
    records: Option<Records>,
}

/// A partition's record bytes: a segment file range (zero-copy) or bytes in memory.
enum Records {
    File(FileRange),
    Bytes(Bytes),
}

impl Records {
    fn len(&self) -> usize {
        match self {
            Records::File(r) => r.len as usize,
            Records::Bytes(b) => b.len(),
        }
    }
}

impl PartitionResult {
    fn failed(index: i32, error: i16) -> Self {
        PartitionResult {
            index,
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted: Vec::new(),
            records: None,
        }
    }
}

struct TopicResult {
    name: String,
    id: Uuid,
    partitions: Vec<PartitionResult>,
}

/// One requested partition, resolved against the metadata.
struct Wanted {
    /// The topic's name, or the error to answer (unknown topic or partition).
    topic: Result<String, i16>,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
}

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: FetchRequest = request.decode()?;
    let version = request.version;
    let state = shard();
    let broker = state.broker.clone();

    if version >= SESSION_VERSION
        && body.session_epoch != INITIAL_EPOCH
        && body.session_epoch != FINAL_EPOCH
    {
        return encode_response(
            version,
            error::FETCH_SESSION_ID_NOT_FOUND,
            Vec::new(),
            broker.config.fetch_zero_copy,
        )
        .await;
    }

    // Resolve topics once; the layout of the response follows the request.
    let snapshot = broker.metadata.snapshot();
    let unknown_error = if version >= TOPIC_ID_VERSION {
        error::UNKNOWN_TOPIC_ID
    } else {
        error::UNKNOWN_TOPIC_OR_PARTITION
    };
    let mut layout: Vec<(String, Uuid, Vec<Wanted>)> = Vec::new();
    for t in &body.topics {
        let meta = if version >= TOPIC_ID_VERSION {
            snapshot.topic_by_id(&t.topic_id)
        } else {
            snapshot.topic(t.topic.as_str())
        };
        let (name, id) = match meta {
            Some(m) => (m.name.clone(), m.id),
            None => (t.topic.to_string(), t.topic_id),
        };
        let wanted = t
            .partitions
            .iter()
            .map(|p| Wanted {
                topic: match meta {
                    None => Err(unknown_error),
                    Some(m) if p.partition < 0 || p.partition as u32 >= m.partitions => {
                        Err(error::UNKNOWN_TOPIC_OR_PARTITION)
                    }
                    Some(m) => Ok(m.name.clone()),
                },
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
            })
            .collect();
        layout.push((name, id, wanted));
    }

    let wait_ms = (body.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP_MS);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = body.min_bytes.max(0) as u64;
    let max_bytes = body.max_bytes.max(0) as u64;
    let committed = body.isolation_level == READ_COMMITTED;
    loop {
        let (topics, bytes, failed, seen) = read_pass(&layout, max_bytes, committed).await;
        let now = Instant::now();
        if bytes >= min_bytes || failed || now >= deadline {
            return encode_response(version, error::NONE, topics, broker.config.fetch_zero_copy)
                .await;
        }
        drop(topics);
        wait_for_data(seen, deadline).await;
    }
}

/// Reads every wanted partition once. Returns the results, the record bytes read, whether any
/// partition failed, and each readable partition's high watermark as seen (for the long poll).
async fn read_pass(
    layout: &[(String, Uuid, Vec<Wanted>)],
    max_bytes: u64,
    committed: bool,
) -> (Vec<TopicResult>, u64, bool, Vec<(String, u32, i64)>) {
    let mut total = 0u64;
    let mut failed = false;
    let mut seen = Vec::new();
    let mut topics = Vec::with_capacity(layout.len());
    for (name, id, wanted) in layout {
        let mut partitions = Vec::with_capacity(wanted.len());
        for w in wanted {
            let topic = match &w.topic {
                Ok(t) => t.clone(),
                Err(code) => {
                    failed = true;
                    partitions.push(PartitionResult::failed(w.partition, *code));
                    continue;
                }
            };
            let partition = w.partition as u32;
            let limit = (w.partition_max_bytes.max(0) as u64).min(max_bytes.saturating_sub(total));
            let min_one_batch = total == 0;
            let offset = w.fetch_offset;
            let t = topic.clone();
            let result = on_owner(&topic, partition, move |state| async move {
                let p = state.local_partition(&t, partition)?;
                // The LSO before the read: at most the high watermark the read then sees.
                let hw = p.log().high_watermark();
                let lso = state
                    .producers
                    .get(&t, partition)
                    .map_or(hw, |s| s.borrow().last_stable_offset(hw));
                let read = if committed {
                    read_committed(&p, offset, limit as u32, min_one_batch, lso).await
                } else {
                    p.read(offset, limit as u32, min_one_batch)
                        .await
                        .map(|slice| (slice, Vec::new()))
                };
                Some(read.map(|(slice, aborted)| (slice, lso, aborted)))
            })
            .await;
            let r = match result {
                None => {
                    failed = true;
                    PartitionResult::failed(w.partition, error::UNKNOWN_TOPIC_OR_PARTITION)
                }
                Some(Ok((
                    ReadSlice {
                        range,
                        high_watermark,
                        log_start_offset,
                        ..
                    },
                    last_stable_offset,
                    aborted,
                ))) => {
                    total += range.as_ref().map_or(0, |r| r.len as u64);
                    seen.push((topic, partition, high_watermark));
                    PartitionResult {
                        index: w.partition,
                        error: error::NONE,
                        high_watermark,
                        last_stable_offset,
                        log_start_offset,
                        aborted,
                        records: range.map(Records::File),
                    }
                }
                Some(Err(ReadError::OffsetOutOfRange {
                    log_start_offset,
                    high_watermark,
                })) => {
                    failed = true;
                    PartitionResult {
                        index: w.partition,
                        error: error::OFFSET_OUT_OF_RANGE,
                        high_watermark,
                        last_stable_offset: high_watermark,
                        log_start_offset,
                        aborted: Vec::new(),
                        records: None,
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(topic = %topic, partition, error = %e, "fetch read failed");
                    failed = true;
                    PartitionResult::failed(w.partition, error::KAFKA_STORAGE_ERROR)
                }
            };
            partitions.push(r);
        }
        topics.push(TopicResult {
            name: name.clone(),
            id: *id,
            partitions,
        });
    }
    (topics, total, failed, seen)
}

/// A read_committed read of `part` (on its owner shard): whole batches from `offset` below the
/// last stable offset `lso` (the engine's bounded read), and the aborted transactions (producer
/// id, first offset) that overlap what is sent: `[offset, upper)`, `upper` the offset after the
/// last batch sent, or the LSO when nothing is sent. Bounding `upper` by what is sent (rather
/// than the LSO) keeps the list as short as the data: a consumer far behind does not get every
/// aborted transaction up to the LSO with each response.
async fn read_committed(
    part: &Partition,
    offset: i64,
    max_bytes: u32,
    min_one_batch: bool,
    lso: i64,
) -> Result<(ReadSlice, Vec<(i64, i64)>), ReadError> {
    let slice = part
        .read_bounded(offset, max_bytes, min_one_batch, lso)
        .await?;
    let upper = match &slice.range {
        Some(range) => next_offset_after(part, range)
            .await?
            .unwrap_or(slice.upper_offset),
        None => slice.upper_offset,
    };
    let aborted = part
        .aborted_txns(offset, upper)
        .into_iter()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    Ok((slice, aborted))
}

/// The offset after the last batch of `range` (whole written batches of one segment): the
/// walk starts at the segment's last index entry inside the range, so it reads about one index
/// interval of headers, in [`LAST_BATCH_SCAN_READ_BYTES`] chunks. None if the range is empty.
async fn next_offset_after(part: &Partition, range: &FileRange) -> Result<Option<i64>, ReadError> {
    let end = range.position + u64::from(range.len);
    let jump = {
        let log = part.log();
        log.segments()
            .iter()
            .find(|s| std::sync::Arc::ptr_eq(&s.file, &range.file))
            .and_then(|s| s.index.floor_by_position(end.saturating_sub(1) as u32))
            .map(|e| u64::from(e.position))
    };
    let corrupt = |at: u64| ReadError::Corrupt { position: at };
    let mut at = jump.map_or(range.position, |j| j.max(range.position));
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut next_offset = None;
    while at < end {
        let left = (end - at) as usize;
        if left < BATCH_HEADER_BYTES {
            return Err(corrupt(at));
        }
        let buffered =
            at >= buf_start && (at - buf_start) as usize + BATCH_HEADER_BYTES <= buf.len();
        if !buffered {
            let want = LAST_BATCH_SCAN_READ_BYTES.min(left);
            let mut chunk = std::mem::take(&mut buf);
            chunk.clear();
            chunk.resize(want, 0);
            let (read, mut chunk) = ops::read_at(range.file.raw_fd(), chunk, at).await;
            let n = read.map_err(ReadError::Io)?;
            chunk.truncate(n);
            if n < BATCH_HEADER_BYTES {
                return Err(corrupt(at));
            }
            buf = chunk;
            buf_start = at;
        }
        let header =
            BatchHeader::parse(&buf[(at - buf_start) as usize..]).map_err(|_| corrupt(at))?;
        next_offset = Some(header.next_offset());
        at += header.total_bytes() as u64;
    }
    if at != end {
        return Err(corrupt(at));
    }
    Ok(next_offset)
}

/// Waits until the high watermark of any partition in `seen` moves past the value seen, or the
/// deadline passes. Each owner shard waits on its own partitions' notifications (no polling);
/// this shard waits for the first of them to answer.
async fn wait_for_data(seen: Vec<(String, u32, i64)>, deadline: Instant) {
    let here = shard();
    let mut by_shard: BTreeMap<usize, Vec<(String, u32, i64)>> = BTreeMap::new();
    for (topic, partition, hw) in seen {
        let owner = owner_of(&here.broker, &topic, partition);
        by_shard
            .entry(owner)
            .or_default()
            .push((topic, partition, hw));
    }
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    waits.push(Box::pin(runtime::sleep_until(deadline)));
    for (owner, list) in by_shard {
        if owner == here.id {
            waits.push(Box::pin(wait_local(list, deadline)));
        } else {
            let remote = here
                .broker
                .router()
                .spawn_on(owner, move || wait_local(list, deadline));
            waits.push(Box::pin(remote));
        }
    }
    first_of(waits).await;
}

/// On the owner shard: resolves when any listed partition's high watermark passes the value
/// seen, or at the deadline.
async fn wait_local(list: Vec<(String, u32, i64)>, deadline: Instant) {
    let state = shard();
    let partitions: Vec<_> = list
        .iter()
        .filter_map(|(t, p, hw)| state.local_partition(t, *p).map(|part| (part, *hw)))
        .collect();
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::new();
    for (part, hw) in &partitions {
        // Take the notification before checking, so an append in between is not missed.
        let arrived = part.data_arrived();
        if part.log().high_watermark() != *hw || part.log().is_failed() {
            return;
        }
        waits.push(Box::pin(arrived));
    }
    waits.push(Box::pin(runtime::sleep_until(deadline)));
    first_of(waits).await;
}

/// Resolves when the first of `futures` does (the rest are dropped).
async fn first_of(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
    poll_fn(|cx| {
        for f in futures.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

/// Builds the response. Record bytes stay [`Part::File`] ranges, or, with zero-copy off, are
/// read into memory here first.
async fn encode_response(
    version: i16,
    error_code: i16,
    mut topics: Vec<TopicResult>,
    zero_copy: bool,
) -> Result<Reply, String> {
    for p in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        match &p.records {
            Some(Records::File(range)) if zero_copy => {
                ZERO_COPY_BYTES.fetch_add(range.len as u64, Ordering::Relaxed);
            }
            Some(Records::File(range)) => {
                let bytes = read_range(range)
                    .await
                    .map_err(|e| format!("fetch: reading a segment: {e}"))?;
                COPIED_BYTES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                p.records = Some(Records::Bytes(bytes.into()));
            }
            _ => {}
        }
    }
    Ok(Reply::Parts(encode_body(version, error_code, topics)))
}

/// Encodes a FetchResponse body at `version` around the partitions' records.
fn encode_body(version: i16, error_code: i16, topics: Vec<TopicResult>) -> Vec<Part> {
    let mut enc = Encoder::new(version >= FLEXIBLE_VERSION);
    enc.buf.put_i32(0); // throttle_time_ms
    if version >= SESSION_VERSION {
        enc.buf.put_i16(error_code);
        enc.buf.put_i32(INVALID_SESSION_ID);
    }
    enc.array_len(topics.len());
    for topic in topics {
        if version >= TOPIC_ID_VERSION {
            enc.buf.put_slice(topic.id.as_bytes());
        } else {
            enc.string(&topic.name);
        }
        enc.array_len(topic.partitions.len());
        for p in topic.partitions {
            enc.buf.put_i32(p.index);
            enc.buf.put_i16(p.error);
            enc.buf.put_i64(p.high_watermark);
            enc.buf.put_i64(p.last_stable_offset);
            if version >= LOG_START_VERSION {
                enc.buf.put_i64(p.log_start_offset);
            }
            enc.array_len(p.aborted.len());
            for (producer_id, first_offset) in &p.aborted {
                enc.buf.put_i64(*producer_id);
                enc.buf.put_i64(*first_offset);
                enc.tagged_fields();
            }
            if version >= PREFERRED_REPLICA_VERSION {
                enc.buf.put_i32(NO_PREFERRED_REPLICA);
            }
            // records: never null; empty when there is nothing to send (as Kafka does).
            enc.bytes_len(p.records.as_ref().map_or(0, Records::len));
            match p.records {
                Some(Records::File(range)) => enc.file(range),
                Some(Records::Bytes(b)) => enc.buf.put_slice(&b),
                None => {}
            }
            enc.tagged_fields();
        }
        enc.tagged_fields();
    }
    enc.tagged_fields();
    enc.finish()
}

/// Reads a file range into memory (the copying path, and ListOffsets' record lookup).
pub(crate) async fn read_range(range: &FileRange) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(range.len as usize);
    while out.len() < range.len as usize {
        let want = range.len as usize - out.len();
        let (result, buf) = ops::read_at(
            range.file.raw_fd(),
            vec![0; want],
            range.position + out.len() as u64,
        )
        .await;
        let n = result?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

/// A response body under construction: encoded bytes interleaved with file ranges.
struct Encoder {
    flexible: bool,
    buf: BytesMut,
    parts: Vec<Part>,
}

impl Encoder {
    fn new(flexible: bool) -> Self {
        Encoder {
            flexible,
            buf: BytesMut::new(),
            parts: Vec::new(),
        }
    }

    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn array_len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }

    /// The length prefix of a (non-null) `records` field.
    fn bytes_len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }

    /// An empty tagged-field section (flexible versions only).
    fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    fn file(&mut self, range: FileRange) {
        if !self.buf.is_empty() {
            let bytes: Bytes = self.buf.split().freeze();
            self.parts.push(Part::Bytes(bytes));
        }
        self.parts.push(Part::File(range));
    }

    fn finish(mut self) -> Vec<Part> {
        if !self.buf.is_empty() {
            self.parts.push(Part::Bytes(self.buf.split().freeze()));
        }
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    /// A long poll waiting on a partition of another shard (or its own) wakes as soon as data is
    /// appended there, long before its deadline, with no polling.
    #[test]
    fn a_long_poll_wakes_when_data_arrives_on_any_shard() {
        use corelog_engine::batch::BatchBuilder;
        use corelog_engine::partition::AckPoint;

        const TOPIC: &str = "lp";
        const PARTITIONS: u32 = 8;
        const DEADLINE: Duration = Duration::from_secs(10);
        const APPEND_AFTER: Duration = Duration::from_millis(200);
        let dir = tempfile::tempdir().unwrap();
        let topic = crate::metadata::TopicMeta {
            name: TOPIC.into(),
            id: Uuid::new_v4(),
            partitions: PARTITIONS,
            configs: Default::default(),
        };
        std::fs::write(
            dir.path().join(crate::metadata::TOPICS_FILE),
            serde_json::to_vec(&vec![topic]).unwrap(),
        )
        .unwrap();
        let config = crate::config::BrokerConfig {
            data_dir: dir.path().into(),
            listener: "127.0.0.1:0".parse().unwrap(),
            shards: 2,
            ..Default::default()
        };
        let (shards, broker) = crate::broker::start(config).unwrap();
        let on_shard = |s: usize| {
            (0..PARTITIONS)
                .find(|&p| owner_of(&broker, TOPIC, p) == s)
                .unwrap()
        };
        // (waiting shard, owner shard, high watermark before the append): across shards, then
        // on the owner itself (the same partition, one batch further).
        for (waiter, owner, hw) in [(0, 1, 0), (1, 1, 1)] {
            let p = on_shard(owner);
            let waited = shards.spawn_on(waiter, move || async move {
                let start = Instant::now();
                wait_for_data(vec![(TOPIC.to_string(), p, hw)], start + DEADLINE).await;
                start.elapsed()
            });
            std::thread::sleep(APPEND_AFTER);
            shards
                .spawn_on(owner, move || async move {
                    let batch = BatchBuilder::new(0)
                        .record(Some(b"k"), Some(b"v"), &[], 0)
                        .build();
                    let part = shard().local_partition(TOPIC, p).unwrap();
                    part.append(batch, AckPoint::Written).await.unwrap();
                })
                .wait();
            let waited = waited.wait();
            assert!(waited >= APPEND_AFTER / 2, "woke early: {waited:?}");
            assert!(waited < DEADLINE / 2, "not woken by the append: {waited:?}");
        }
        shards.shutdown();
    }

    /// The hand encoder (with records inline, as the copying path sends them) must produce
    /// exactly what kafka-protocol's encoder produces, at every advertised version.
    #[test]
    fn hand_encoding_matches_kafka_protocol() {
        let records = Bytes::from_static(b"0123456789abcdefghij");
        for version in MIN_VERSION..=MAX_VERSION {
            for error_code in [error::NONE, error::FETCH_SESSION_ID_NOT_FOUND] {
                let id = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
                let mut expected = FetchResponse::default();
                if version >= SESSION_VERSION {
                    expected.error_code = error_code;
                }
                let mut t = FetchableTopicResponse::default();
                if version >= TOPIC_ID_VERSION {
                    t.topic_id = id;
                } else {
                    t.topic = TopicName(StrBytes::from_static_str("events"));
                }
                let mut p0 = PartitionData::default();
                p0.partition_index = 0;
                p0.high_watermark = 42;
                p0.last_stable_offset = 40;
                if version >= LOG_START_VERSION {
                    p0.log_start_offset = 7;
                }
                let aborted = |producer_id: i64, first_offset: i64| {
                    let mut a =
                        kafka_protocol::messages::fetch_response::AbortedTransaction::default();
                    a.producer_id = kafka_protocol::messages::ProducerId(producer_id);
                    a.first_offset = first_offset;
                    a
                };
                p0.aborted_transactions = Some(vec![aborted(5, 8), aborted(9, 30)]);
                p0.records = Some(records.clone());
                let mut p1 = PartitionData::default();
                p1.partition_index = 3;
                p1.error_code = error::OFFSET_OUT_OF_RANGE;
                p1.high_watermark = 9;
                p1.last_stable_offset = 9;
                if version >= LOG_START_VERSION {
                    p1.log_start_offset = 2;
                }
                p1.aborted_transactions = Some(Vec::new());
                p1.records = Some(Bytes::new());
                t.partitions = vec![p0, p1];
                expected.responses = vec![t];
                let mut want = BytesMut::new();
                expected.encode(&mut want, version).unwrap();

                let topics = vec![TopicResult {
                    name: "events".to_string(),
                    id,
                    partitions: vec![
                        PartitionResult {
                            index: 0,
                            error: error::NONE,
                            high_watermark: 42,
                            last_stable_offset: 40,
                            log_start_offset: 7,
                            aborted: vec![(5, 8), (9, 30)],
                            records: Some(Records::Bytes(records.clone())),
                        },
                        PartitionResult {
                            index: 3,
                            error: error::OFFSET_OUT_OF_RANGE,
                            high_watermark: 9,
                            last_stable_offset: 9,
                            log_start_offset: 2,
                            aborted: Vec::new(),
                            records: None,
                        },
                    ],
                }];
                let got: Vec<u8> = encode_body(version, error_code, topics)
                    .into_iter()
                    .flat_map(|p| match p {
                        Part::Bytes(b) => b.to_vec(),
                        Part::File(_) => unreachable!(),
                    })
                    .collect();
                assert_eq!(got, want.to_vec(), "v{version}");
            }
        }
    }
}
