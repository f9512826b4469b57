//! One producer: Kafka's producer model on one io_uring shard.
//!
//! Records are generated into one open batch per partition (`batch.size`, `linger.ms`), sealed
//! batches queue per broker connection, and up to `max.in.flight.requests.per.connection`
//! Produce requests (one batch per partition each, as Kafka requires) are outstanding per
//! connection. Generated-but-unacknowledged bytes are bounded by [`BUFFER_MEMORY_BYTES`] (Kafka's
//! `buffer.memory`), so at saturation records wait in the producer as they do in Kafka's.
//!
//! Every value starts with the record's intended send time (8 bytes, little-endian, on the
//! [`now_ns`] clock). In fixed-rate mode that time follows the schedule, not the moment the
//! producer got round to it: a stall in the broker shows up in the latency of every record that
//! was due during it (no coordinated omission).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::admin::{error_name, init_producer_id, TopicLayout};
use crate::client::records::BatchBuilder;
use crate::client::{decode_response, send_frame, Conn, FrameReader};
use crate::control::{instant_at, new_histogram, now_ns, record_latency, Control, Signal};
use crate::keys::{key_bytes, partition_for_key, KeyPicker, Payload, Rng};
use crate::live::LiveCounters;
use crate::spec::{Acks, StopAfter, WorkloadSpec};

/// Produce v9: flexible, topic names; spoken by Kafka 2.8+ and corelog.
const PRODUCE_VERSION: i16 = 9;
/// Kafka's `buffer.memory` default.
pub const BUFFER_MEMORY_BYTES: usize = 32 * 1024 * 1024;
/// Kafka's `max.request.size` default: a Produce request holds batches up to this size.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Kafka's `request.timeout.ms` default, sent as the Produce timeout.
const REQUEST_TIMEOUT_MS: i32 = 30_000;
/// Records generated per turn of the loop before it sends and lets acknowledgements in.
const GENERATE_BURST_RECORDS: usize = 512;
/// How long the loop sleeps when nothing is due (a notify wakes it sooner).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Bytes a record adds to a batch beyond its key and value (length, attributes, deltas, header
/// count varints), at most.
const RECORD_OVERHEAD_BYTES: usize = 21;

/// What one producer measured.
pub struct ProducerStats {
    /// Intended send → acknowledgement, for records intended inside the window.
    pub ack_latency: Histogram<u64>,
    /// Records and value bytes acknowledged inside the window.
    pub acked_messages: u64,
    pub acked_bytes: u64,
    /// Records refused by the broker, by Kafka error name.
    pub errors: BTreeMap<String, u64>,
}

/// A batch waiting for a connection, and later for its acknowledgement.
struct Sealed {
    partition: u32,
    bytes: Vec<u8>,
    /// Intended send time of every record in it.
    intended_ns: Vec<u64>,
    value_bytes: u64,
}

struct OpenBatch {
    builder: BatchBuilder,
    intended_ns: Vec<u64>,
    value_bytes: u64,
    opened_ns: u64,
}

struct InFlight {
    correlation_id: i32,
    batches: Vec<(u32, Vec<u64>, u64)>,
    buffer_bytes: usize,
}

/// One broker connection.
struct Link {
    conn: Conn,
    queue: VecDeque<Sealed>,
    in_flight: Rc<RefCell<VecDeque<InFlight>>>,
}

/// What the main loop and the acknowledgement readers share (one thread).
struct Shared {
    control: Arc<Control>,
    stats: RefCell<ProducerStats>,
    buffered_bytes: Cell<usize>,
    signal: Signal,
    failure: RefCell<Option<anyhow::Error>>,
    closing: Cell<bool>,
}

impl Shared {
    fn fail(&self, e: anyhow::Error) {
        self.failure.borrow_mut().get_or_insert(e);
        self.signal.notify();
    }

    /// Accounts for an acknowledged (or, with acks=0, sent) request.
    fn complete(&self, entry: InFlight, results: &HashMap<i32, i16>, now: u64) {
        let control = &self.control;
        let mut stats = self.stats.borrow_mut();
        let ack_in_window = control.in_window(now);
        let (mut ok_messages, mut ok_bytes) = (0u64, 0u64);
        for (partition, intended, value_bytes) in entry.batches {
            let code = results.get(&(partition as i32)).copied().unwrap_or(0);
            if code != 0 {
                *stats.errors.entry(error_name(code)).or_default() += intended.len() as u64;
                LiveCounters::add(&control.live.errors, intended.len() as u64);
                continue;
            }
            for &t in &intended {
                if control.in_window(t) {
                    record_latency(&mut stats.ack_latency, t, now);
                }
            }
            ok_messages += intended.len() as u64;
            ok_bytes += value_bytes;
        }
        LiveCounters::add(&control.live.acked_messages, ok_messages);
        if ack_in_window {
            stats.acked_messages += ok_messages;
            stats.acked_bytes += ok_bytes;
            LiveCounters::add(&control.window_acked, ok_messages);
        }
        self.buffered_bytes
            .set(self.buffered_bytes.get() - entry.buffer_bytes);
        self.signal.notify();
    }
}

/// Runs one producer until the run stops and everything it generated is acknowledged.
pub async fn run(
    spec: Arc<WorkloadSpec>,
    layout: TopicLayout,
    control: Arc<Control>,
    index: usize,
) -> Result<ProducerStats> {
    let shared = Rc::new(Shared {
        control: control.clone(),
        stats: RefCell::new(ProducerStats {
            ack_latency: new_histogram(),
            acked_messages: 0,
            acked_bytes: 0,
            errors: BTreeMap::new(),
        }),
        buffered_bytes: Cell::new(0),
        signal: Signal::default(),
        failure: RefCell::new(None),
        closing: Cell::new(false),
    });
    let setup = Producer::connect(&spec, &layout, shared.clone()).await;
    control
        .ready
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let mut producer = setup?;
    control.wait_for_go().await;
    let result = producer.produce(&spec, &layout, index).await;
    producer.close().await;
    result?;
    control
        .producers_done
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let stats = std::mem::replace(
        &mut *shared.stats.borrow_mut(),
        ProducerStats {
            ack_latency: new_histogram(),
            acked_messages: 0,
            acked_bytes: 0,
            errors: BTreeMap::new(),
        },
    );
    Ok(stats)
}

struct Producer {
    shared: Rc<Shared>,
    links: Vec<Link>,
    /// Partition → index into `links`.
    link_of: Vec<usize>,
    readers: Vec<corelog_engine::runtime::JoinHandle<()>>,
    producer_id: Option<(i64, i16)>,
}

impl Producer {
    async fn connect(
        spec: &WorkloadSpec,
        layout: &TopicLayout,
        shared: Rc<Shared>,
    ) -> Result<Producer> {
        let brokers: Vec<SocketAddr> = layout.brokers();
        let mut links = Vec::new();
        let mut readers = Vec::new();
        let mut producer_id = None;
        for &addr in &brokers {
            let mut conn = Conn::connect(addr).await?;
            if spec.idempotence && producer_id.is_none() {
                producer_id = Some(init_producer_id(&mut conn).await?);
            }
            let in_flight = Rc::new(RefCell::new(VecDeque::new()));
            if spec.acks != Acks::None {
                readers.push(corelog_engine::runtime::spawn(read_acks(
                    conn.raw_fd(),
                    conn.take_reader(),
                    in_flight.clone(),
                    shared.clone(),
                )));
            }
            links.push(Link {
                conn,
                queue: VecDeque::new(),
                in_flight,
            });
        }
        let link_of = layout
            .leaders
            .iter()
            .map(|a| {
                brokers
                    .iter()
                    .position(|b| b == a)
                    .expect("leader is a broker")
            })
            .collect();
        Ok(Producer {
            shared,
            links,
            link_of,
            readers,
            producer_id,
        })
    }

    async fn produce(
        &mut self,
        spec: &WorkloadSpec,
        layout: &TopicLayout,
        index: usize,
    ) -> Result<()> {
        let partitions = layout.leaders.len() as u32;
        let control = self.shared.control.clone();
        let topic = TopicName(StrBytes::from_string(spec.topic.clone()));
        let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((index as u64 + 1) << 32) ^ now_ns();
        let mut rng = Rng::new(seed);
        let payload = Payload::new(seed, spec.message_bytes);
        let picker = KeyPicker::new(spec.keys);
        let mut key = Vec::new();
        let mut open: Vec<Option<OpenBatch>> = (0..partitions).map(|_| None).collect();
        // Partitions in the order their open batch was started: the front lingers longest.
        let mut open_order: VecDeque<(u64, u32)> = VecDeque::new();
        let mut sequences = vec![0i32; partitions as usize];
        let mut sticky = rng.below(u64::from(partitions)) as u32;
        let linger_ns = spec.linger.as_nanos() as u64;
        let interval_ns = spec
            .target_rate
            .map(|r| (1e9 * spec.producers as f64 / r as f64).max(1.0));
        let mut next_intended = now_ns() as f64;
        let value_len = spec.message_bytes;

        // With --messages the window has a shared budget of records; only then is the shared
        // counter touched (an atomic per record across producer threads otherwise).
        let budgeted = matches!(spec.stop_after, StopAfter::Messages(_));
        // The window's --messages budget is spent: flush and finish.
        let mut budget_spent = false;
        loop {
            if let Some(e) = self.shared.failure.borrow_mut().take() {
                return Err(e);
            }
            let stopping = control.stopping() || budget_spent;
            let now = now_ns();
            let timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);

            // 1. Generate what is due, while the buffer has room.
            let mut generated = 0u64;
            if !stopping {
                for _ in 0..GENERATE_BURST_RECORDS {
                    if self.shared.buffered_bytes.get() >= BUFFER_MEMORY_BYTES {
                        break;
                    }
                    if interval_ns.is_some_and(|_| next_intended > now as f64) {
                        break;
                    }
                    if budgeted && !control.take_record() {
                        budget_spent = true;
                        break;
                    }
                    let intended = match interval_ns {
                        Some(interval) => {
                            let t = next_intended as u64;
                            next_intended += interval;
                            t
                        }
                        None => now,
                    };
                    let (partition, key_ref) = match picker.pick(&mut rng) {
                        Some(k) => {
                            key_bytes(k, &mut key);
                            (partition_for_key(&key, partitions), Some(key.as_slice()))
                        }
                        None => (sticky, None),
                    };
                    let record_bytes =
                        value_len + key_ref.map_or(0, <[u8]>::len) + RECORD_OVERHEAD_BYTES;
                    let mut p = partition as usize;
                    if let Some(batch) = &open[p] {
                        if batch.builder.len_bytes() + record_bytes > spec.batch_bytes {
                            let batch = open[p].take().expect("checked");
                            self.seal(p, batch, spec, &mut sequences);
                            if key_ref.is_none() {
                                // The sticky partitioner moves on once a batch is full.
                                sticky = (sticky + 1) % partitions;
                                p = sticky as usize;
                            }
                        }
                    }
                    let partition = p as u32;
                    let batch = open[p].get_or_insert_with(|| {
                        open_order.push_back((now, partition));
                        OpenBatch {
                            builder: BatchBuilder::new(spec.batch_bytes, timestamp_ms),
                            intended_ns: Vec::new(),
                            value_bytes: 0,
                            opened_ns: now,
                        }
                    });
                    let filler = payload.slice(&mut rng, value_len - 8);
                    batch.builder.push(timestamp_ms, key_ref, value_len, |buf| {
                        buf.extend_from_slice(&intended.to_le_bytes());
                        buf.extend_from_slice(filler);
                    });
                    batch.intended_ns.push(intended);
                    batch.value_bytes += value_len as u64;
                    self.shared
                        .buffered_bytes
                        .set(self.shared.buffered_bytes.get() + record_bytes);
                    generated += 1;
                }
                LiveCounters::add(&control.live.produced_messages, generated);
                LiveCounters::add(&control.live.produced_bytes, generated * value_len as u64);
            }

            // 2. Seal batches that have lingered long enough (all of them when stopping), but
            // only while their connection has a request slot free: until then a batch keeps
            // filling, as in Kafka's producer (with linger.ms=0 records still batch up behind
            // the requests in flight).
            while let Some(&(opened, partition)) = open_order.front() {
                let p = partition as usize;
                let still_open = open[p].as_ref().is_some_and(|b| b.opened_ns == opened);
                if !still_open {
                    open_order.pop_front();
                    continue;
                }
                let lingered = now.saturating_sub(opened) >= linger_ns;
                let sealable = stopping || (lingered && self.has_room(self.link_of[p], spec));
                if !sealable {
                    break;
                }
                open_order.pop_front();
                let batch = open[p].take().expect("checked");
                self.seal(p, batch, spec, &mut sequences);
                if partition == sticky && picker_is_keyless(&picker) {
                    sticky = (sticky + 1) % partitions;
                }
            }

            // 3. Send requests while connections have room.
            for link in 0..self.links.len() {
                while self.links[link].in_flight.borrow().len() < spec.max_in_flight
                    && !self.links[link].queue.is_empty()
                {
                    self.send_request(link, &topic, spec.acks).await?;
                }
            }

            // 4. Done once stopping and everything is acknowledged.
            let idle = open_order.is_empty()
                && self
                    .links
                    .iter()
                    .all(|l| l.queue.is_empty() && l.in_flight.borrow().is_empty());
            if stopping && idle {
                return Ok(());
            }

            // 5. Wait for what comes first: an acknowledgement, a linger deadline, the next
            // scheduled record.
            let can_generate_now = !stopping
                && self.shared.buffered_bytes.get() < BUFFER_MEMORY_BYTES
                && interval_ns.is_none();
            if can_generate_now {
                corelog_engine::runtime::yield_now().await;
                continue;
            }
            let mut deadline_ns = now + IDLE_WAIT.as_nanos() as u64;
            if let Some(&(opened, _)) = open_order.front() {
                // A batch that lingered already waits for a request slot: an acknowledgement
                // (the signal) wakes the loop, not a timer.
                if opened + linger_ns > now {
                    deadline_ns = deadline_ns.min(opened + linger_ns);
                }
            }
            if interval_ns.is_some()
                && !stopping
                && self.shared.buffered_bytes.get() < BUFFER_MEMORY_BYTES
            {
                deadline_ns = deadline_ns.min(next_intended as u64);
            }
            if deadline_ns > now {
                self.shared.signal.wait_until(instant_at(deadline_ns)).await;
            }
        }
    }

    /// Whether connection `link` can take another request now.
    fn has_room(&self, link: usize, spec: &WorkloadSpec) -> bool {
        let l = &self.links[link];
        l.queue.is_empty() && l.in_flight.borrow().len() < spec.max_in_flight
    }

    /// Closes the batch of partition `p` and queues it on the partition leader's connection.
    fn seal(&mut self, p: usize, batch: OpenBatch, spec: &WorkloadSpec, sequences: &mut [i32]) {
        let producer = self.producer_id.map(|(id, epoch)| {
            let seq = sequences[p];
            sequences[p] = seq.wrapping_add(batch.intended_ns.len() as i32) & i32::MAX;
            (id, epoch, seq)
        });
        let bytes = batch.builder.seal(spec.compression, producer);
        self.links[self.link_of[p]].queue.push_back(Sealed {
            partition: p as u32,
            bytes,
            intended_ns: batch.intended_ns,
            value_bytes: batch.value_bytes,
        });
    }

    /// Sends one Produce request with queued batches of one connection: at most one batch per
    /// partition, up to MAX_REQUEST_BYTES.
    async fn send_request(&mut self, link: usize, topic: &TopicName, acks: Acks) -> Result<()> {
        let l = &mut self.links[link];
        let mut taken: Vec<Sealed> = Vec::new();
        let mut kept = VecDeque::new();
        let mut request_bytes = 0;
        while let Some(s) = l.queue.pop_front() {
            let fits = taken.is_empty() || request_bytes + s.bytes.len() <= MAX_REQUEST_BYTES;
            if fits && !taken.iter().any(|t| t.partition == s.partition) {
                request_bytes += s.bytes.len();
                taken.push(s);
            } else {
                kept.push_back(s);
            }
        }
        l.queue = kept;
        let mut buffer_bytes = 0;
        let mut partition_data = Vec::with_capacity(taken.len());
        let mut batches = Vec::with_capacity(taken.len());
        for s in taken {
            buffer_bytes += s.intended_ns.len() * RECORD_OVERHEAD_BYTES + s.value_bytes as usize;
            partition_data.push(
                PartitionProduceData::default()
                    .with_index(s.partition as i32)
                    .with_records(Some(Bytes::from(s.bytes))),
            );
            batches.push((s.partition, s.intended_ns, s.value_bytes));
        }
        let request = ProduceRequest::default()
            .with_acks(acks.wire())
            .with_timeout_ms(REQUEST_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(partition_data)]);
        let (correlation_id, frame) = l.conn.encode(&request, PRODUCE_VERSION)?;
        let entry = InFlight {
            correlation_id,
            batches,
            buffer_bytes,
        };
        if acks == Acks::None {
            // No response will come: the record is done when the kernel has it.
            send_frame(l.conn.raw_fd(), frame).await?;
            self.shared.complete(entry, &HashMap::new(), now_ns());
        } else {
            // Queued before sending: the response may be read while the send completes.
            l.in_flight.borrow_mut().push_back(entry);
            send_frame(l.conn.raw_fd(), frame).await?;
        }
        Ok(())
    }

    /// Stops the acknowledgement readers: shutting the sockets down ends their recv.
    async fn close(&mut self) {
        self.shared.closing.set(true);
        for l in &self.links {
            // SAFETY: shutdown only changes the state of a socket this producer owns; it takes
            // no pointers.
            unsafe {
                libc::shutdown(l.conn.raw_fd(), libc::SHUT_RDWR);
            }
        }
        for r in self.readers.drain(..) {
            r.await;
        }
    }
}

fn picker_is_keyless(p: &KeyPicker) -> bool {
    matches!(p, KeyPicker::None)
}

/// Reads Produce responses of one connection, in order, and accounts for them.
async fn read_acks(
    fd: RawFd,
    mut reader: FrameReader,
    in_flight: Rc<RefCell<VecDeque<InFlight>>>,
    shared: Rc<Shared>,
) {
    let result: Result<()> = async {
        loop {
            let frame = reader.next_frame(fd).await?;
            let now = now_ns();
            let Some(entry) = in_flight.borrow_mut().pop_front() else {
                bail!("a Produce response arrived with no request outstanding");
            };
            let response =
                decode_response::<ProduceRequest>(frame, PRODUCE_VERSION, entry.correlation_id)?;
            let mut results = HashMap::new();
            for t in &response.responses {
                for p in &t.partition_responses {
                    results.insert(p.index, p.error_code);
                }
            }
            if let Some((partition, _, _)) = entry
                .batches
                .iter()
                .find(|(p, _, _)| !results.contains_key(&(*p as i32)))
            {
                return Err(anyhow!(
                    "the Produce response does not answer partition {partition}"
                ));
            }
            shared.complete(entry, &results, now);
        }
    }
    .await;
    if let Err(e) = result {
        if !shared.closing.get() {
            shared.fail(e);
        }
    }
}
