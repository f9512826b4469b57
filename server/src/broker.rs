//! The broker: shared context, the per-shard state, start-up and graceful shutdown.
//!
//! Each shard owns the partitions that `shard_for(topic, partition)` maps to it, accepts its own
//! connections on a SO_REUSEPORT listener, and reaches partitions of other shards only by posting
//! work to them through the [`ShardRouter`] (no shared mutable state on the request path).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use corelog_engine::log::{CleanupPolicy, LogConfig};
use corelog_engine::partition::Partition;
use corelog_engine::runtime::{self, ops, shard_for, ShardConfig, ShardRouter, ShardSet};
use corelog_engine::storage::ShardStorage;

use crate::config::{parse_timestamp_type, BrokerConfig};
use crate::connection;
use crate::groups::ShardGroups;
use crate::metadata::{MetadataStore, TopicMeta};
use crate::producer_ids::ProducerIdAllocator;
use crate::producer_state::ShardProducers;
use crate::txn::ShardTxns;

/// Pending connections the kernel queues per listener.
const LISTEN_BACKLOG: i32 = 1024;

/// What every shard shares: configuration, metadata, the router and broker-wide counters.
pub struct BrokerContext {
    pub config: BrokerConfig,
    pub metadata: MetadataStore,
    router: OnceLock<ShardRouter>,
    pub open_connections: AtomicU32,
    /// Requests being handled or answered right now (what a graceful shutdown waits for; idle
    /// connections do not hold it up).
    pub requests_in_flight: AtomicU32,
    pub shutting_down: AtomicBool,
    /// The cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Producer ids for InitProducerId, unique across restarts.
    pub producer_ids: ProducerIdAllocator,
    /// Whether `__consumer_offsets` exists with its partitions open (it is created on first use,
    /// as Kafka does).
    pub offsets_topic_ready: AtomicBool,
    /// Whether `__transaction_state` exists with its partitions open (created on first use).
    pub txn_state_topic_ready: AtomicBool,
    /// Set once every shard has opened its partitions (work posted to another shard before
    /// then could find it not started: the transaction coordinator's start-up completions wait
    /// for it).
    pub all_shards_started: AtomicBool,
}

impl BrokerContext {
    pub fn router(&self) -> &ShardRouter {
        self.router.get().expect("router set at start-up")
    }

    pub fn shard_count(&self) -> usize {
        self.router().len()
    }

    /// The log settings of a topic: broker defaults overridden by the topic's configs.
    pub fn log_config(&self, topic: &TopicMeta) -> LogConfig {
        topic_log_config(&self.config.log, &topic.configs)
    }
}

/// Applies topic-level config overrides (Kafka names) to the broker's log defaults. Values were
/// validated when they were set; anything unparsable keeps the default.
pub fn topic_log_config(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let mut c = defaults.clone();
    let never = |v: &str| {
        v.parse::<i64>().ok().map(|n| {
            if n == i64::MAX {
                u64::MAX
            } else {
                n.max(0) as u64
            }
        })
    };
    if let Some(v) = configs.get("segment.bytes").and_then(|v| v.parse().ok()) {
        c.segment_bytes = v;
    }
    if let Some(v) = configs.get("segment.ms").and_then(|v| v.parse().ok()) {
        c.segment_ms = v;
    }
    if let Some(v) = configs
        .get("index.interval.bytes")
        .and_then(|v| v.parse().ok())
    {
        c.index_interval_bytes = v;
    }
    if let Some(v) = configs
        .get("message.timestamp.type")
        .and_then(|v| parse_timestamp_type(v).ok())
    {
        c.timestamp_type = v;
    }
    if let Some(v) = configs.get("flush.messages").and_then(|v| never(v)) {
        c.flush_messages = v;
    }
    if let Some(v) = configs.get("flush.ms").and_then(|v| never(v)) {
        c.flush_ms = v;
    }
    // Retention and compaction: Kafka's -1 (and Long.MAX_VALUE) mean unlimited.
    let unlimited = |v: &str| {
        v.parse::<i64>().ok().map(|n| {
            if n < 0 || n == i64::MAX {
                u64::MAX
            } else {
                n as u64
            }
        })
    };
    if let Some(v) = configs
        .get("cleanup.policy")
        .and_then(|v| CleanupPolicy::parse(v))
    {
        c.cleanup_policy = v;
    }
    if let Some(v) = configs.get("retention.ms").and_then(|v| unlimited(v)) {
        c.retention_ms = v;
    }
    if let Some(v) = configs.get("retention.bytes").and_then(|v| unlimited(v)) {
        c.retention_bytes = v;
    }
    if let Some(v) = configs.get("delete.retention.ms").and_then(|v| never(v)) {
        c.delete_retention_ms = v;
    }
    if let Some(v) = configs.get("min.compaction.lag.ms").and_then(|v| never(v)) {
        c.min_compaction_lag_ms = v;
    }
    if let Some(v) = configs.get("max.compaction.lag.ms").and_then(|v| never(v)) {
        c.max_compaction_lag_ms = v;
    }
    if let Some(v) = configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
    {
        c.min_cleanable_dirty_ratio = v;
    }
    c
}

/// One shard's state, on its own thread.
pub struct ShardState {
    pub id: usize,
    pub storage: Rc<ShardStorage>,
    pub broker: Arc<BrokerContext>,
    /// Idempotent-producer state of the partitions this shard owns.
    pub producers: ShardProducers,
    /// The consumer groups this shard coordinates (those of its `__consumer_offsets` partitions).
    pub groups: ShardGroups,
    /// The transactional ids this shard coordinates (those of its `__transaction_state`
    /// partitions).
    pub txns: ShardTxns,
}

thread_local! {
    static SHARD_STATE: RefCell<Option<Rc<ShardState>>> = const { RefCell::new(None) };
}

/// This shard's state. Panics off a shard thread (a bug: handlers only run on shards).
pub fn shard() -> Rc<ShardState> {
    SHARD_STATE.with(|s| s.borrow().clone().expect("running on a broker shard"))
}

impl ShardState {
    /// The partition if this shard owns it and it is open.
    pub fn local_partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition>> {
        self.storage.partition(topic, partition)
    }
}

/// Which shard owns a partition.
pub fn owner_of(broker: &BrokerContext, topic: &str, partition: u32) -> usize {
    shard_for(topic, partition, broker.shard_count())
}

/// Runs `f` on the shard that owns `(topic, partition)`, directly when that is this shard,
/// otherwise by posting it there, and returns its result.
pub async fn on_owner<F, Fut, T>(topic: &str, partition: u32, f: F) -> T
where
    F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let here = shard();
    let owner = owner_of(&here.broker, topic, partition);
    if owner == here.id {
        f(here).await
    } else {
        here.broker
            .router()
            .spawn_on(owner, move || f(shard()))
            .await
    }
}

/// Runs `f` on every shard (posted to each, this one included) and returns their results in
/// shard order.
pub async fn on_every_shard<F, Fut, T>(f: F) -> Vec<T>
where
    F: FnOnce() -> Fut + Send + Clone + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let broker = shard().broker.clone();
    let pending: Vec<_> = (0..broker.shard_count())
        .map(|s| broker.router().spawn_on(s, f.clone()))
        .collect();
    let mut results = Vec::with_capacity(pending.len());
    for p in pending {
        results.push(p.await);
    }
    results
}

/// Opens (creating) every partition of `topic` that this shard owns.
pub fn open_owned_partitions(
    state: &ShardState,
    topic: &TopicMeta,
    from_partition: u32,
) -> io::Result<()> {
    let config = state.broker.log_config(topic);
    for p in from_partition..topic.partitions {
        if owner_of(&state.broker, &topic.name, p) == state.id {
            let (log, report) = state
                .storage
                .open_partition(&topic.name, p, config.clone())?;
            state.producers.open(&topic.name, p, &log)?;
            if report.truncated_bytes > 0 || report.removed_segments > 0 {
                tracing::warn!(topic = %topic.name, partition = p, ?report, "recovered a damaged log tail");
            }
        }
    }
    Ok(())
}

/// Starts the broker and serves until SIGTERM or SIGINT, then shuts down gracefully.
pub fn run(config: BrokerConfig) -> io::Result<()> {
    let signals = block_termination_signals()?;
    let (shards, broker) = start(config)?;
    tracing::info!(listener = %broker.config.listener, "corelog is serving the Kafka protocol");
    let signal = wait_for_signal(&signals);
    shutdown(shards, broker, signal);
    Ok(())
}

/// Starts the shards: each opens its partitions and starts accepting connections.
pub fn start(config: BrokerConfig) -> io::Result<(ShardSet, Arc<BrokerContext>)> {
    corelog_engine::storage::remove_deleted_leftovers(&config.data_dir)?;
    let metadata = MetadataStore::load(&config.data_dir)?;
    let offsets_topic_exists = metadata
        .snapshot()
        .topic(crate::groups::OFFSETS_TOPIC)
        .is_some();
    let txn_state_topic_exists = metadata
        .snapshot()
        .topic(crate::txn::TXN_STATE_TOPIC)
        .is_some();
    let broker = Arc::new(BrokerContext {
        cluster_id: cluster_id(&config)?,
        producer_ids: ProducerIdAllocator::open(&config.data_dir)?,
        config,
        metadata,
        router: OnceLock::new(),
        open_connections: AtomicU32::new(0),
        requests_in_flight: AtomicU32::new(0),
        shutting_down: AtomicBool::new(false),
        offsets_topic_ready: AtomicBool::new(offsets_topic_exists),
        txn_state_topic_ready: AtomicBool::new(txn_state_topic_exists),
        all_shards_started: AtomicBool::new(false),
    });
    let shards = ShardSet::new(ShardConfig {
        count: broker.config.shards,
        pin_to_cores: true,
    })?;
    let _ = broker.router.set(shards.router());
    tracing::info!(shards = shards.len(), data_dir = %broker.config.data_dir.display(), "starting");
    let mut started = Vec::new();
    for id in 0..shards.len() {
        let broker = broker.clone();
        started.push(shards.spawn_on(id, move || start_shard(broker, id)));
    }
    for s in started {
        s.wait()?;
    }
    broker.all_shards_started.store(true, Ordering::Release);
    Ok((shards, broker))
}

/// Graceful shutdown: stop accepting, let requests finish (bounded), flush, stop the shards.
fn shutdown(shards: ShardSet, broker: Arc<BrokerContext>, signal: i32) {
    tracing::info!(
        signal,
        "shutting down: closing listeners, finishing requests, flushing"
    );
    broker.shutting_down.store(true, Ordering::SeqCst);
    let mut flushed = Vec::new();
    for id in 0..shards.len() {
        flushed.push(shards.spawn_on(id, move || async move {
            let state = shard();
            // Requests parked in a rebalance would otherwise hold the shutdown up.
            for g in state.groups.all() {
                g.borrow_mut().unload();
            }
            // Let in-flight requests finish (bounded), then make everything durable.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while state.broker.requests_in_flight.load(Ordering::SeqCst) > 0
                && std::time::Instant::now() < deadline
            {
                runtime::sleep(std::time::Duration::from_millis(10)).await;
            }
            state.storage.flush_all().await;
            state.storage.quiesce().await;
            state.producers.snapshot_all(&state.storage);
        }));
    }
    for f in flushed {
        f.wait();
    }
    shards.shutdown();
    // What the fetch path sent, and how: tests and benchmarks read this line to prove that
    // record bytes went out by splice (each spliced byte counts twice: file→pipe, pipe→socket).
    tracing::info!(
        fetch_zero_copy_bytes = crate::handlers::fetch::ZERO_COPY_BYTES.load(Ordering::Relaxed),
        fetch_copied_bytes = crate::handlers::fetch::COPIED_BYTES.load(Ordering::Relaxed),
        spliced_bytes = ops::SPLICED_BYTES.load(Ordering::Relaxed),
        "fetch totals"
    );
    tracing::info!("stopped");
}

/// A shard's start-up: open its partitions, bind its listener, start accepting.
async fn start_shard(broker: Arc<BrokerContext>, id: usize) -> io::Result<()> {
    let storage = ShardStorage::new(&broker.config.data_dir)?;
    let state = Rc::new(ShardState {
        id,
        storage,
        broker: broker.clone(),
        producers: ShardProducers::default(),
        groups: ShardGroups::default(),
        txns: ShardTxns::default(),
    });
    SHARD_STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    for topic in broker.metadata.snapshot().topics() {
        open_owned_partitions(&state, topic, 0)?;
    }
    crate::groups::store::load(&state).await?;
    runtime::spawn(crate::groups::housekeeping());
    crate::txn::store::load(&state).await?;
    crate::txn::start(&state);
    crate::cleanup::start();
    let listener = ops::listen_reuseport(broker.config.listener, LISTEN_BACKLOG)?;
    runtime::spawn(accept_loop(listener));
    // One metrics listener per broker, on the first shard (scrapes are rare and cheap).
    if id == 0 {
        if let Some(addr) = broker.config.metrics_listener {
            crate::metrics::start(addr);
        }
    }
    Ok(())
}

async fn accept_loop(listener: OwnedFd) {
    let state = shard();
    let mut accepted = ops::accept_multishot(listener.as_raw_fd());
    while let Some(conn) = accepted.next().await {
        if state.broker.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let open = state.broker.open_connections.fetch_add(1, Ordering::SeqCst) + 1;
        if open > state.broker.config.max_connections {
            state.broker.open_connections.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                max = state.broker.config.max_connections,
                "max.connections reached; closing a new connection"
            );
            continue;
        }
        runtime::spawn(async move {
            connection::serve(conn).await;
            shard()
                .broker
                .open_connections
                .fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Blocks SIGTERM and SIGINT in this thread, and so in every shard thread started after it, so
/// that only [`wait_for_signal`] receives them.
fn block_termination_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigemptyset/sigaddset initialize `set`, which lives on this stack frame.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
    }
    // SAFETY: `set` is initialized; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(set)
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` was initialized by block_termination_signals; `signal` is a valid out-pointer.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

/// The cluster id, made once and kept in the data directory (like Kafka's meta.properties).
fn cluster_id(config: &BrokerConfig) -> io::Result<String> {
    std::fs::create_dir_all(&config.data_dir)?;
    let path = config.data_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = crate::config::parse_properties(&text).get("cluster.id") {
            return Ok(id.clone());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    std::fs::write(
        &path,
        format!("version=1\ncluster.id={id}\nnode.id={}\n", config.node_id),
    )?;
    Ok(id)
}
