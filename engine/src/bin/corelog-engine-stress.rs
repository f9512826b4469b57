//! Appends to the engine under load with durable acks and prints one line per acknowledged batch:
//! `ACK <partition> <base_offset> <bytes> <crc32c of the stored bytes>`. A line is printed only
//! after the append was acknowledged as durable, so a crash test can kill this process at any
//! moment and then demand that every printed batch is in the log, byte for byte.
//!
//! Usage: `corelog-engine-stress <data-dir> [partitions] [appenders-per-partition] [max-seconds]`

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use corelog_engine::batch::BatchBuilder;
use corelog_engine::log::LogConfig;
use corelog_engine::partition::AckPoint;
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;

/// Small segments so that a run crosses many rolls.
const STRESS_SEGMENT_BYTES: u32 = 256 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir =
        PathBuf::from(args.get(1).expect(
            "usage: corelog-engine-stress <data-dir> [partitions] [appenders] [max-seconds]",
        ));
    let partitions: u32 = args.get(2).map_or(4, |s| s.parse().expect("partitions"));
    let appenders: u32 = args.get(3).map_or(4, |s| s.parse().expect("appenders"));
    let max_seconds: u64 = args.get(4).map_or(30, |s| s.parse().expect("max seconds"));
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    runtime::block_on(async move {
        let storage = ShardStorage::new(&dir).expect("data dir");
        let config = LogConfig {
            segment_bytes: STRESS_SEGMENT_BYTES,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let mut tasks = Vec::new();
        for p in 0..partitions {
            let (partition, _) = storage
                .open_partition("stress", p, config.clone())
                .expect("open partition");
            for a in 0..appenders {
                let partition = partition.clone();
                tasks.push(runtime::spawn(async move {
                    let mut n: u64 = 0;
                    while Instant::now() < deadline {
                        let seed = (p as u64) << 48 | (a as u64) << 40 | n;
                        let batch = stress_batch(seed);
                        let info = partition
                            .append(batch.clone(), AckPoint::Durable)
                            .await
                            .expect("append");
                        let mut stored = batch;
                        corelog_engine::batch::set_base_offset(&mut stored, info.base_offset)
                            .expect("valid batch");
                        let line = format!(
                            "ACK {p} {} {} {}\n",
                            info.base_offset,
                            stored.len(),
                            crc32c::crc32c(&stored)
                        );
                        let mut out = std::io::stdout().lock();
                        out.write_all(line.as_bytes()).expect("stdout");
                        out.flush().expect("stdout");
                        n += 1;
                    }
                }));
            }
        }
        for t in tasks {
            t.await;
        }
    });
}

/// A batch of 1..=8 records whose sizes vary with `seed` (64 B to ~8 KiB values).
fn stress_batch(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let records = 1 + (next() % 8) as usize;
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for r in 0..records {
        let len = 64 + (next() % 1024) as usize;
        let value: Vec<u8> = (0..len)
            .map(|i| (seed as usize).wrapping_add(i * 31 + r) as u8)
            .collect();
        b.push_record(
            Some(&seed.to_be_bytes()),
            Some(&value),
            &[],
            1_700_000_000_000 + r as i64,
        );
    }
    b.build()
}
