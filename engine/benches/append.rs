//! Append throughput on one shard: 1, 16, 256 and 1024 partitions, acknowledged when written
//! (page cache) and when durable (group-commit fdatasync).
//!
//! Each measured element is one 16 KiB record batch. Appenders run concurrently on the shard's
//! executor: at least `MIN_APPENDERS` (several per partition when there are few partitions), so
//! that durable appends have company to share an fdatasync with, as a broker's connections do.
//!
//! `cargo bench -p corelog-engine --bench append`; set CORELOG_BENCH_DIR to put the logs on a
//! particular filesystem (default: a temp dir under target/).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corelog_engine::batch::BatchBuilder;
use corelog_engine::log::LogConfig;
use corelog_engine::partition::{AckPoint, Partition};
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH_BYTES: usize = 16 * 1024;
const RECORDS_PER_BATCH: usize = 16;
const MIN_APPENDERS: usize = 64;
const PARTITION_COUNTS: [u32; 4] = [1, 16, 256, 1024];

fn bench_dir() -> PathBuf {
    std::env::var_os("CORELOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"))
}

fn sample_batch() -> Vec<u8> {
    let value = vec![0x5au8; BATCH_BYTES / RECORDS_PER_BATCH - 40];
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for r in 0..RECORDS_PER_BATCH {
        b.push_record(
            Some(format!("key-{r}").as_bytes()),
            Some(&value),
            &[],
            1_700_000_000_000,
        );
    }
    b.build()
}

/// One open storage per configuration, kept across criterion's calls so that set-up (creating
/// up to 1024 partitions) is never inside a measurement.
struct Fixture {
    _dir: tempfile::TempDir,
    storage: Rc<ShardStorage>,
    parts: Vec<Rc<Partition>>,
}

thread_local! {
    static FIXTURES: RefCell<HashMap<(u32, bool), Fixture>> = RefCell::new(HashMap::new());
}

fn appenders_for(partitions: u32) -> usize {
    let min = std::env::var("CORELOG_BENCH_APPENDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MIN_APPENDERS);
    (partitions as usize).max(min)
}

/// Creates the configuration's storage, outside any measurement (criterion's warm-up included).
fn prepare(partitions: u32, ack: AckPoint) {
    FIXTURES.with(|f| {
        f.borrow_mut()
            .entry((partitions, ack == AckPoint::Durable))
            .or_insert_with(|| {
                // Start each configuration without the dirty pages of the one before.
                std::process::Command::new("sync").status().expect("sync");
                std::fs::create_dir_all(bench_dir()).unwrap();
                let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                let storage = ShardStorage::new(dir.path()).unwrap();
                let parts = (0..partitions)
                    .map(|i| {
                        storage
                            .open_partition("bench", i, LogConfig::default())
                            .unwrap()
                            .0
                    })
                    .collect();
                Fixture {
                    _dir: dir,
                    storage,
                    parts,
                }
            });
    });
}

/// Appends `total` batches spread over `partitions` and returns the elapsed time.
fn run(partitions: u32, ack: AckPoint, total: u64) -> Duration {
    let (storage, parts) = FIXTURES.with(|f| {
        let f = f.borrow();
        let fixture = &f[&(partitions, ack == AckPoint::Durable)];
        (fixture.storage.clone(), fixture.parts.clone())
    });
    let batch = sample_batch();
    runtime::block_on(async move {
        let appenders = appenders_for(partitions);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(appenders);
        for a in 0..appenders {
            let part = parts[a % parts.len()].clone();
            let batch = batch.clone();
            let share = total / appenders as u64 + u64::from((a as u64) < total % appenders as u64);
            tasks.push(runtime::spawn(async move {
                for _ in 0..share {
                    part.append(batch.clone(), ack).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        // A flush round requested by the last appends may still run: let it finish inside the
        // measurement rather than be cut off when this executor stops.
        storage.quiesce().await;
        start.elapsed()
    })
}

fn append_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(sample_batch().len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for ack in [AckPoint::Written, AckPoint::Durable] {
        for partitions in PARTITION_COUNTS {
            let name = format!("{ack:?}").to_lowercase();
            prepare(partitions, ack);
            group.bench_with_input(
                BenchmarkId::new(name, partitions),
                &partitions,
                |b, &partitions| {
                    b.iter_custom(|iters| run(partitions, ack, iters));
                },
            );
        }
    }
    group.finish();
    // Group commit at work: fdatasync rounds per durable append.
    FIXTURES.with(|f| {
        for ((partitions, durable), fixture) in f.borrow().iter().filter(|((_, durable), _)| *durable) {
            let stats = fixture.storage.flush_stats();
            eprintln!("flush stats, {partitions} partitions (durable {durable}): {} rounds, {} fdatasyncs", stats.rounds, stats.fdatasyncs);
        }
    });
}

criterion_group!(benches, append_throughput);
criterion_main!(benches);
