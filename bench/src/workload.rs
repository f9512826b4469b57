//! Runs one workload: creates the topic, starts producers and consumers on the generator's
//! shards, warms up, measures a window, drains, and sums what every task measured.
//!
//! Throughput counts what happened inside the window (acknowledgements and consumption by the
//! time they occurred); latency counts the records whose intended send time fell inside it, even
//! when their acknowledgement or consumption came after it ended.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use corelog_engine::runtime::{block_on, ShardConfig, ShardSet};

use crate::client::admin::{self, TopicLayout};
use crate::client::{resolve, Conn};
use crate::consumer::{self, ConsumerStats};
use crate::control::{new_histogram, Control};
use crate::cpu;
use crate::live::{LiveCounters, Phase};
use crate::producer::{self, ProducerStats};
use crate::progress::ProgressBar;
use crate::result::{CpuUse, LatencySummary, RunResult, Throughput};
use crate::spec::{StopAfter, WorkloadSpec};

/// How long producers and consumers may take to connect and find their offsets.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the orchestrating thread looks at the run.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Runs `spec` against its broker, showing a progress bar if `progress`; `target` names the broker
/// in the result.
pub fn run_with_progress(spec: &WorkloadSpec, target: &str, progress: bool) -> Result<RunResult> {
    let live = Arc::new(LiveCounters::default());
    let bar = progress.then(|| ProgressBar::start(live.clone(), spec));
    let result = run(spec, target, live);
    if let Some(bar) = bar {
        bar.finish();
    }
    result
}

/// Deletes a topic (a missing topic is not an error).
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let addr = resolve(bootstrap)?;
    block_on(async {
        let mut conn = Conn::connect(addr).await?;
        admin::delete_topic(&mut conn, topic).await
    })
}

/// Creates the topic if it is missing and returns where its partitions live.
pub fn prepare_topic(spec: &WorkloadSpec) -> Result<TopicLayout> {
    let addr = resolve(&spec.bootstrap)?;
    block_on(async {
        let mut conn = Conn::connect(addr).await?;
        admin::ensure_topic(
            &mut conn,
            addr,
            &spec.topic,
            spec.partitions,
            spec.replication_factor,
            &spec.topic_configs,
        )
        .await
    })
}

/// Runs `spec`, publishing progress through `live`.
pub fn run(spec: &WorkloadSpec, target: &str, live: Arc<LiveCounters>) -> Result<RunResult> {
    spec.validate()
        .map_err(|e| anyhow!("invalid workload: {e}"))?;
    live.set_phase(Phase::Connecting);
    let bootstrap = resolve(&spec.bootstrap)?;
    let layout = prepare_topic(spec).with_context(|| format!("preparing topic {}", spec.topic))?;
    let broker_pid = spec.broker_pid.or_else(|| local_broker_pid(bootstrap));

    let shard_count = match spec.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Not pinned: the broker under test pins its own shards, and two pinned sets on the same
    // cores would leave the scheduler no room to balance.
    let shards = ShardSet::new(ShardConfig {
        count: shard_count,
        pin_to_cores: false,
    })
    .context("starting the generator's shards")?;
    let control = Arc::new(Control::new(live.clone()));
    let shared_spec = Arc::new(spec.clone());

    let mut producers = Vec::new();
    for i in 0..spec.producers {
        let (s, l, c) = (shared_spec.clone(), layout.clone(), control.clone());
        producers.push(shards.spawn_on(i % shard_count, move || async move {
            let result = producer::run(s, l, c.clone(), i).await;
            if result.is_err() {
                c.failed.store(true, Ordering::Release);
            }
            result
        }));
    }
    let mut expected_ready = spec.producers;
    let mut consumers = Vec::new();
    let partition_count = layout.leaders.len() as u32;
    for j in 0..spec.consumers {
        let assigned: Vec<u32> = (0..partition_count)
            .filter(|p| *p as usize % spec.consumers == j)
            .collect();
        expected_ready += consumer::ready_reports(&layout, &assigned);
        let (s, l, c) = (shared_spec.clone(), layout.clone(), control.clone());
        consumers.push(
            shards.spawn_on((spec.producers + j) % shard_count, move || async move {
                let result = consumer::run(s, l, assigned, c.clone()).await;
                if result.is_err() {
                    c.failed.store(true, Ordering::Release);
                }
                result
            }),
        );
    }

    let measured = measure(spec, &control, expected_ready, broker_pid);
    control.stop();
    live.set_phase(Phase::Draining);
    let producer_stats: Vec<Result<ProducerStats>> =
        producers.into_iter().map(|h| h.wait()).collect();
    let consumer_stats: Vec<Result<ConsumerStats>> =
        consumers.into_iter().map(|h| h.wait()).collect();
    shards.shutdown();
    live.set_phase(Phase::Done);

    // A task's own error says more than the orchestrator's "a task failed".
    let producer_stats: Vec<ProducerStats> = producer_stats
        .into_iter()
        .collect::<Result<_>>()
        .context("producer")?;
    let consumer_stats: Vec<ConsumerStats> = consumer_stats
        .into_iter()
        .collect::<Result<_>>()
        .context("consumer")?;
    let window = measured?;
    let mut ack_latency = new_histogram();
    let mut e2e_latency = new_histogram();
    let (mut acked_messages, mut acked_bytes, mut consumed_messages, mut consumed_bytes) =
        (0, 0, 0, 0);
    let mut errors = std::collections::BTreeMap::new();
    for s in producer_stats {
        ack_latency.add(&s.ack_latency).expect("same bounds");
        acked_messages += s.acked_messages;
        acked_bytes += s.acked_bytes;
        for (k, v) in s.errors {
            *errors.entry(k).or_insert(0u64) += v;
        }
    }
    for s in consumer_stats {
        e2e_latency.add(&s.e2e_latency).expect("same bounds");
        consumed_messages += s.consumed_messages;
        consumed_bytes += s.consumed_bytes;
        for (k, v) in s.errors {
            *errors.entry(k).or_insert(0u64) += v;
        }
    }
    let moved_gib = (acked_bytes + consumed_bytes) as f64 / GIB;
    let cpu_use = |pid: u32, secs: f64| CpuUse {
        pid,
        cpu_secs: secs,
        cores: secs / window.secs.max(f64::MIN_POSITIVE),
        cpu_secs_per_gib: if moved_gib > 0.0 {
            secs / moved_gib
        } else {
            0.0
        },
    };
    Ok(RunResult {
        target: target.to_string(),
        spec: spec.clone(),
        window_secs: window.secs,
        produced: Throughput::new(acked_messages, acked_bytes, window.secs),
        consumed: Throughput::new(consumed_messages, consumed_bytes, window.secs),
        produce_latency: LatencySummary::from_histogram(&ack_latency),
        end_to_end_latency: LatencySummary::from_histogram(&e2e_latency),
        broker_cpu: window
            .broker_cpu_secs
            .zip(broker_pid)
            .map(|(secs, pid)| cpu_use(pid, secs)),
        generator_cpu: cpu_use(std::process::id(), window.generator_cpu_secs),
        total_acked_messages: LiveCounters::get(&live.acked_messages),
        total_consumed_messages: LiveCounters::get(&live.consumed_messages),
        errors: errors.into_iter().collect(),
    })
}

/// The measured window.
struct Window {
    secs: f64,
    broker_cpu_secs: Option<f64>,
    generator_cpu_secs: f64,
}

/// Waits for set-up, warms up, and measures the window; returns when the window ends (the
/// caller stops the tasks).
fn measure(
    spec: &WorkloadSpec,
    control: &Control,
    expected_ready: usize,
    broker_pid: Option<u32>,
) -> Result<Window> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while control.ready.load(Ordering::Acquire) < expected_ready {
        if control.failed.load(Ordering::Acquire) {
            bail!("a producer or consumer failed to start");
        }
        if Instant::now() > deadline {
            bail!("producers and consumers not ready after {SETUP_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    if control.failed.load(Ordering::Acquire) {
        bail!("a producer or consumer failed to start");
    }
    control.live.set_phase(Phase::WarmingUp);
    control.go();
    let warm_until = Instant::now() + spec.warmup;
    while Instant::now() < warm_until {
        if control.failed.load(Ordering::Acquire) {
            bail!("the run failed during warm-up");
        }
        std::thread::sleep(POLL_INTERVAL);
    }

    let self_pid = std::process::id();
    let broker_before = broker_pid.and_then(cpu::process_cpu_secs);
    let generator_before = cpu::process_cpu_secs(self_pid).unwrap_or(0.0);
    let start_ns = control.start_window();
    control.live.set_phase(Phase::Measuring);
    let started = Instant::now();
    loop {
        std::thread::sleep(POLL_INTERVAL);
        if control.failed.load(Ordering::Acquire) {
            break;
        }
        let done = match spec.stop_after {
            StopAfter::Duration(d) => started.elapsed() >= d,
            StopAfter::Messages(n) if spec.producers > 0 => {
                control.window_acked.load(Ordering::Relaxed) >= n
            }
            StopAfter::Messages(n) => control.window_consumed.load(Ordering::Relaxed) >= n,
        };
        let backlog_read = spec.producers == 0
            && control.consumers_caught_up.load(Ordering::Acquire) >= spec.consumers;
        if done || backlog_read {
            break;
        }
    }
    let end_ns = control.end_window();
    let broker_after = broker_pid.and_then(cpu::process_cpu_secs);
    let generator_after = cpu::process_cpu_secs(self_pid).unwrap_or(0.0);
    Ok(Window {
        secs: (end_ns - start_ns) as f64 / 1e9,
        broker_cpu_secs: broker_before
            .zip(broker_after)
            .map(|(before, after)| after - before),
        generator_cpu_secs: generator_after - generator_before,
    })
}

/// The pid of a broker listening on a loopback or local address, if it can be found.
fn local_broker_pid(addr: SocketAddr) -> Option<u32> {
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        cpu::find_listener_pid(addr.port())
    } else {
        None
    }
}
