//! Offset-index lookups: the in-memory binary search a read does before its header walk.

use corelog_engine::index::OffsetIndex;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

fn index_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_lookup");
    // A full 1 GiB segment at the default 4 KiB interval has 262144 entries.
    for entries in [1_000u32, 262_144] {
        let mut index = OffsetIndex::new();
        for i in 0..entries {
            index.push(i * 10, i * 4096);
        }
        let mut probe = 12345u32;
        group.bench_with_input(
            BenchmarkId::new("floor_by_offset", entries),
            &index,
            |b, index| {
                b.iter(|| {
                    probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12345) % (entries * 10);
                    black_box(index.floor_by_offset(black_box(probe)))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, index_lookup);
criterion_main!(benches);
