//! Append-path cost of header validation: `validate_batch` is one header parse plus one CRC-32C
//! pass over the batch, so its throughput should track the CRC's.

use corelog_engine::batch::{validate_batch, BatchBuilder};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Record value size: a typical small event.
const VALUE_BYTES: usize = 100;

/// Upper bound on one encoded record here: value, 8-byte key and at most ~20 bytes of varints.
const MAX_RECORD_BYTES: usize = VALUE_BYTES + 32;

/// An uncompressed batch of keyed 100-byte records, a little under `target` bytes.
fn batch_of(target: usize) -> Vec<u8> {
    let value = vec![0xabu8; VALUE_BYTES];
    let mut b = BatchBuilder::new(1_700_000_000_000).producer(1, 0, 0);
    let mut i = 0u64;
    while b.encoded_len() + MAX_RECORD_BYTES <= target {
        let key = i.to_be_bytes();
        b.push_record(Some(&key), Some(&value), &[], 1_700_000_000_000 + i as i64);
        i += 1;
    }
    b.build()
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batch");
    for (name, size) in [("1KiB", 1 << 10), ("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = batch_of(size);
        validate_batch(&batch).expect("bench batch must be valid");
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, batch| {
            b.iter(|| validate_batch(black_box(batch)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
