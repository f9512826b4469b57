//! Property test: any sequence of appends, reads and reopens behaves like a simple model (a list
//! of stored batches), whatever the segment and index sizes.

mod common;

use common::{at_offset, batches, make_batch, read_range};
use corelog_engine::batch::validate_batch;
use corelog_engine::log::LogConfig;
use corelog_engine::partition::AckPoint;
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
    },
    /// Read at the offset `fraction` of the way through the log, with a byte limit.
    Read {
        fraction: f64,
        max_bytes: u32,
        min_one: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..500).prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        3 => (0.0f64..1.0, 1u32..6000, any::<bool>()).prop_map(|(fraction, max_bytes, min_one)| Op::Read { fraction, max_bytes, min_one }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60), segment_kib in 4u32..16, interval in 64u32..2048) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: segment_kib * 1024, index_interval_bytes: interval, ..LogConfig::default() };
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            // One runtime per stretch between reopens.
            let storage_dir = dir.path().to_path_buf();
            let config = config.clone();
            let (next_i, new_model) = runtime::block_on({
                let ops = ops.clone();
                let mut model = model.clone();
                async move {
                    let storage = ShardStorage::new(&storage_dir).unwrap();
                    let (p, _) = storage.open_partition("m", 0, config).unwrap();
                    let end: i64 = model.iter().map(|b| validate_batch(b).unwrap().record_count as i64).sum();
                    assert_eq!(p.log().log_end_offset(), end, "reopened log end");
                    let mut i = i;
                    while i < ops.len() {
                        match ops[i] {
                            Op::Append { records, value_bytes } => {
                                let batch = make_batch(model.len() as u64, records, value_bytes);
                                let info = p.append(batch.clone(), AckPoint::Written).await.unwrap();
                                let expected_base: i64 = model.iter().map(|b| validate_batch(b).unwrap().record_count as i64).sum();
                                assert_eq!(info.base_offset, expected_base);
                                model.push(at_offset(batch, info.base_offset));
                            }
                            Op::Read { fraction, max_bytes, min_one } => {
                                let end: i64 = model.iter().map(|b| validate_batch(b).unwrap().record_count as i64).sum();
                                let offset = (end as f64 * fraction) as i64;
                                let slice = p.read(offset, max_bytes, min_one).await.unwrap();
                                let got = slice.range.as_ref().map(read_range).unwrap_or_default();
                                if offset == end {
                                    assert!(got.is_empty());
                                } else {
                                    // Expected: from the batch holding `offset`, whole batches of
                                    // one segment that fit in max_bytes (at least one if min_one).
                                    let first = model.iter().position(|b| validate_batch(b).unwrap().last_offset() >= offset).unwrap();
                                    let got_batches = batches(&got);
                                    if let Some(h) = got_batches.first() {
                                        assert_eq!(h.base_offset, validate_batch(&model[first]).unwrap().base_offset);
                                    }
                                    assert!(got.len() <= max_bytes as usize || (min_one && got_batches.len() == 1));
                                    let expected: Vec<u8> = model[first..first + got_batches.len()].concat();
                                    assert_eq!(&got, &expected);
                                    if min_one { assert!(!got_batches.is_empty()); }
                                    // Nothing that would have fit was left out, unless the
                                    // segment ended there.
                                    if let Some(next) = model.get(first + got_batches.len()) {
                                        let next_base = validate_batch(next).unwrap().base_offset;
                                        let same_segment = p.log().segments().iter().all(|s| s.base_offset != next_base);
                                        if same_segment {
                                            assert!(got.len() + next.len() > max_bytes as usize);
                                        }
                                    }
                                }
                            }
                            Op::Reopen => {
                                i += 1;
                                return (i, model);
                            }
                        }
                        i += 1;
                    }
                    (i, model)
                }
            });
            i = next_i;
            model = new_model;
        }
    }
}
