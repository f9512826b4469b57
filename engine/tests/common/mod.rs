//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use corelog_engine::batch::{validate_batch, BatchBuilder, BatchHeader};
use corelog_engine::log::FileRange;

/// A valid uncompressed batch of `records` records whose values are derived from `seed`, so a
/// test can rebuild the exact bytes it expects to read back.
pub fn make_batch(seed: u64, records: usize, value_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000 + seed as i64);
    for r in 0..records {
        let key = format!("key-{seed}-{r}");
        let value: Vec<u8> = (0..value_bytes)
            .map(|i| (seed as usize * 31 + r * 7 + i) as u8)
            .collect();
        b.push_record(
            Some(key.as_bytes()),
            Some(&value),
            &[],
            1_700_000_000_000 + seed as i64 + r as i64,
        );
    }
    b.build()
}

/// The bytes of a read range, read with a plain pread (what a fetch would send).
pub fn read_range(range: &FileRange) -> Vec<u8> {
    let mut buf = vec![0u8; range.len as usize];
    range
        .file
        .read_exact_at(&mut buf, range.position)
        .expect("read range");
    buf
}

/// Validates and lists every batch in `bytes`, which must be whole batches back to back.
pub fn batches(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let h = validate_batch(rest).expect("a valid batch");
        rest = &rest[h.total_bytes()..];
        out.push(h);
    }
    out
}

/// `batch` as stored at `base_offset`: what a read must return byte for byte.
pub fn at_offset(mut batch: Vec<u8>, base_offset: i64) -> Vec<u8> {
    corelog_engine::batch::set_base_offset(&mut batch, base_offset).unwrap();
    batch
}
