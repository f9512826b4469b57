//! Cleaning throughput: one pass over a compacted log of many overwrites (each key written
//! `ROUNDS` times), uncompressed and lz4, measured from plan to the fdatasynced output (the
//! install, a few renames on the shard, is left out). Throughput is the input log's bytes.
//!
//! `cargo bench -p corelog-engine --bench cleaner`; set CORELOG_BENCH_DIR to put the logs on a
//! particular filesystem (default: a temp dir under target/).

use std::path::PathBuf;
use std::time::Instant;

use corelog_engine::batch::codec;
use corelog_engine::batch::{
    BatchBuilder, Compression, ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET,
    LOG_OVERHEAD_BYTES, RECORDS_OFFSET,
};
use corelog_engine::cleaner::{CleanerLimits, Throttle};
use corelog_engine::log::{CleanupPolicy, LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Distinct keys in the log.
const KEYS: usize = 20_000;
/// Times each key is written: all but the last are removed by the pass.
const ROUNDS: usize = 5;
const RECORDS_PER_BATCH: usize = 50;
const VALUE_BYTES: usize = 100;
const SEGMENT_BYTES: u32 = 4 * 1024 * 1024;
const T0: i64 = 1_700_000_000_000;

fn bench_dir() -> PathBuf {
    std::env::var_os("CORELOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"))
}

fn compressed(batch: Vec<u8>, codec: Compression) -> Vec<u8> {
    if codec == Compression::None {
        return batch;
    }
    let mut out = batch[..RECORDS_OFFSET].to_vec();
    out.extend_from_slice(&codec::compress(codec, &batch[RECORDS_OFFSET..]));
    let len = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    let attrs = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]])
        | codec.id() as i16;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Writes the log synchronously (plain pwrite, then one flush) and seals it.
fn build_log(dir: &std::path::Path, codec: Compression) -> (PartitionLog, u64) {
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        segment_bytes: SEGMENT_BYTES,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir, config).unwrap();
    let value = vec![0x5au8; VALUE_BYTES];
    let mut bytes = 0u64;
    for _ in 0..ROUNDS {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(RECORDS_PER_BATCH) {
            let mut b = BatchBuilder::new(T0);
            for &k in chunk {
                let key = format!("key-{k:08}");
                b.push_record(Some(key.as_bytes()), Some(&value), &[], T0);
            }
            let mut batch = compressed(b.build(), codec);
            bytes += batch.len() as u64;
            let planned = log.plan_append(&mut batch, T0).unwrap();
            // SAFETY: `batch` is a live buffer of its length; the fd is the log's open segment.
            let n = unsafe {
                libc::pwrite(
                    planned.file.raw_fd(),
                    batch.as_ptr().cast(),
                    batch.len(),
                    planned.position as libc::off_t,
                )
            };
            assert_eq!(n, batch.len() as isize);
            log.complete_write(planned.ticket(), Instant::now());
        }
    }
    log.roll().unwrap();
    let plan = log.begin_flush().unwrap();
    for f in &plan.files {
        // SAFETY: an open descriptor owned by the log.
        assert_eq!(unsafe { libc::fsync(f.raw_fd()) }, 0);
    }
    log.end_flush(&plan).unwrap();
    (log, bytes)
}

fn cleaning(c: &mut Criterion) {
    let mut group = c.benchmark_group("clean_pass");
    group.sample_size(10);
    std::fs::create_dir_all(bench_dir()).unwrap();
    for codec in [Compression::None, Compression::Lz4] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let (log, bytes) = build_log(dir.path(), codec);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::new("overwrites", format!("{codec:?}")), |b| {
            b.iter(|| {
                let job = log.plan_cleaning(T0, None).expect("the log is dirty");
                let out = job
                    .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
                    .unwrap();
                assert!(out.removed().records as usize >= KEYS * (ROUNDS - 1));
                // Dropped without installing: the output files are removed, the log stays dirty.
                drop(out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cleaning);
criterion_main!(benches);
