//! The log cleaner (compaction) end to end on a real partition log: when a log is due, what a
//! pass keeps, tombstones and their delete horizon, merging, the key-map limit, every codec,
//! reads at compacted offsets, crash safety of the swap, and a property test against a model.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use corelog_engine::batch::codec::{self, decode_batch_records, MAX_DECOMPRESSED_BATCH_BYTES};
use corelog_engine::batch::{
    control_batch, validate_batch, BatchBuilder, BatchHeader, Compression, ControlRecordType,
    ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, DELETE_HORIZON_BIT, LOG_OVERHEAD_BYTES,
    RECORDS_OFFSET,
};
use corelog_engine::cleaner::{CleanerLimits, CleaningReport, Throttle};
use corelog_engine::log::compaction::SwapStep;
use corelog_engine::log::{CleanupPolicy, LogConfig, PartitionLog};
use corelog_engine::txn_index::AbortedTxn;
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3600 * 1000;

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        segment_bytes: 64 * 1024,
        index_interval_bytes: 256,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: HOUR_MS as u64,
        ..LogConfig::default()
    }
}

/// One record as written or read: offset, key, value (None = tombstone), timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

/// `batch` with its body compressed with `codec` (header fields adjusted, CRC recomputed).
fn with_codec(batch: Vec<u8>, codec: Compression) -> Vec<u8> {
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
    validate_batch(&out).expect("compressed test batch is valid");
    out
}

/// Appends one batch synchronously (write, complete, flush): returns its base offset.
fn append(
    log: &mut PartitionLog,
    records: &[(&[u8], Option<&[u8]>)],
    timestamp: i64,
    codec: Compression,
) -> i64 {
    let mut b = BatchBuilder::new(timestamp);
    for (i, (k, v)) in records.iter().enumerate() {
        b.push_record(Some(k), *v, &[], timestamp + i as i64);
    }
    append_raw(log, with_codec(b.build(), codec), timestamp)
}

/// Appends one encoded batch synchronously (write, complete): returns its base offset.
fn append_raw(log: &mut PartitionLog, mut batch: Vec<u8>, timestamp: i64) -> i64 {
    let planned = log.plan_append(&mut batch, timestamp).unwrap();
    let fd = planned.file.raw_fd();
    // SAFETY: `batch` is a live buffer of `batch.len()` bytes and `fd` an open segment file.
    let n = unsafe {
        libc::pwrite(
            fd,
            batch.as_ptr().cast(),
            batch.len(),
            planned.position as libc::off_t,
        )
    };
    assert_eq!(n, batch.len() as isize);
    log.complete_write(planned.ticket(), Instant::now());
    planned.info.base_offset
}

fn flush(log: &mut PartitionLog) {
    if let Some(plan) = log.begin_flush() {
        for f in &plan.files {
            // SAFETY: an open descriptor owned by the log.
            assert_eq!(unsafe { libc::fsync(f.raw_fd()) }, 0);
        }
        log.end_flush(&plan).unwrap();
    }
}

/// Seals the active segment and makes everything durable (the recovery point moves past it).
fn roll(log: &mut PartitionLog) {
    log.roll().unwrap();
    flush(log);
}

/// Every record of the log, in order, read straight from the segment files.
fn read_all(log: &PartitionLog) -> Vec<Rec> {
    read_batches(log)
        .into_iter()
        .flat_map(|(_, recs)| recs)
        .collect()
}

fn read_batches(log: &PartitionLog) -> Vec<(BatchHeader, Vec<Rec>)> {
    let mut out = Vec::new();
    let mut last = -1;
    for (i, seg) in log.segments().iter().enumerate() {
        let end = log.segment_written_end(i) as usize;
        let mut buf = vec![0u8; end];
        seg.file.read_exact_at(&mut buf, 0).unwrap();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let (h, records) = decode_batch_records(rest, MAX_DECOMPRESSED_BATCH_BYTES).unwrap();
            assert!(h.base_offset >= seg.base_offset);
            let recs: Vec<Rec> = records
                .iter()
                .map(|r| Rec {
                    offset: h.base_offset + r.offset_delta as i64,
                    key: r.key.clone().unwrap(),
                    value: r.value.clone(),
                    timestamp: h.base_timestamp + r.timestamp_delta,
                })
                .collect();
            for r in &recs {
                assert!(
                    r.offset > last,
                    "offsets strictly increase: {} after {last}",
                    r.offset
                );
                assert!(r.offset <= h.last_offset());
                last = r.offset;
            }
            rest = &rest[h.total_bytes()..];
            out.push((h, recs));
        }
    }
    out
}

/// Latest value per key as read.
fn latest(recs: &[Rec]) -> BTreeMap<Vec<u8>, Rec> {
    let mut m = BTreeMap::new();
    for r in recs {
        m.insert(r.key.clone(), r.clone());
    }
    m
}

fn clean(log: &mut PartitionLog, now: i64) -> Option<CleaningReport> {
    clean_with(log, now, &CleanerLimits::default())
}

fn clean_with(log: &mut PartitionLog, now: i64, limits: &CleanerLimits) -> Option<CleaningReport> {
    let job = log.plan_cleaning(now, None)?;
    let out = job.run(limits, &mut Throttle::new(u64::MAX)).unwrap();
    let report = log.install_cleaned(out).unwrap();
    assert!(report.installed);
    Some(report)
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap().0
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:03}").into_bytes()
}

/// Writes `rounds` rounds of values for `keys` keys, one batch per round, rolling every
/// `per_segment` batches. Returns the expected latest value per key.
fn overwrite(log: &mut PartitionLog, keys: usize, rounds: usize, per_segment: usize, ts: i64) {
    for round in 0..rounds {
        let values: Vec<Vec<u8>> = (0..keys)
            .map(|k| format!("v{round}-{k}").into_bytes())
            .collect();
        let ks: Vec<Vec<u8>> = (0..keys).map(key).collect();
        let recs: Vec<(&[u8], Option<&[u8]>)> = ks
            .iter()
            .zip(&values)
            .map(|(k, v)| (&k[..], Some(&v[..])))
            .collect();
        append(log, &recs, ts + round as i64, Compression::None);
        if (round + 1) % per_segment == 0 {
            roll(log);
        }
    }
}

#[test]
fn cleaning_keeps_the_latest_value_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    overwrite(&mut log, 10, 20, 4, T0);
    // Unsealed data in the active segment too.
    append(
        &mut log,
        &[(&key(1), Some(b"active"))],
        T0 + 100,
        Compression::None,
    );
    let before = read_all(&log);
    let active_before = log.segments().last().unwrap().base_offset;
    let report = clean(&mut log, T0 + 1000).unwrap();
    assert!(report.records_removed > 0);
    let after = read_all(&log);
    // Each key's latest sealed value survives at its original offset; nothing else in the
    // cleaned range.
    let sealed_end = active_before;
    let mut expect = BTreeMap::new();
    for r in before.iter().filter(|r| r.offset < sealed_end) {
        expect.insert(r.key.clone(), r.clone());
    }
    let cleaned: Vec<Rec> = after
        .iter()
        .filter(|r| r.offset < sealed_end)
        .cloned()
        .collect();
    let mut expected: Vec<Rec> = expect.into_values().collect();
    expected.sort_by_key(|r| r.offset);
    assert_eq!(cleaned, expected);
    // The active segment is untouched.
    let active: Vec<Rec> = after
        .iter()
        .filter(|r| r.offset >= sealed_end)
        .cloned()
        .collect();
    let active_expected: Vec<Rec> = before
        .iter()
        .filter(|r| r.offset >= sealed_end)
        .cloned()
        .collect();
    assert_eq!(active, active_expected);
    assert_eq!(log.segments().last().unwrap().base_offset, active_before);
    assert_eq!(latest(&after), latest(&before));
    // Nothing dirty: not due again.
    assert!(log.plan_cleaning(T0 + 2000, None).is_none());
    // The same after a reopen (indexes, checkpoint).
    drop(log);
    let log = open(dir.path(), compact_config());
    assert_eq!(read_all(&log), after);
    assert!(log.plan_cleaning(T0 + 2000, None).is_none());
}

#[test]
fn only_compacted_logs_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::DELETE,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    overwrite(&mut log, 3, 6, 2, T0);
    assert!(log.plan_cleaning(T0 + HOUR_MS, None).is_none());
}

#[test]
fn dirty_ratio_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    // Distinct keys: cleaning removes nothing, so clean and dirty sizes are easy to compare.
    let mut n = 0;
    let mut write_segment = |log: &mut PartitionLog| {
        let ks: Vec<Vec<u8>> = (n..n + 10).map(key).collect();
        n += 10;
        let recs: Vec<(&[u8], Option<&[u8]>)> = ks
            .iter()
            .map(|k| (&k[..], Some(&b"0123456789"[..])))
            .collect();
        append(log, &recs, T0, Compression::None);
        roll(log);
    };
    for _ in 0..4 {
        write_segment(&mut log);
    }
    let job = log
        .plan_cleaning(T0, None)
        .expect("never cleaned: all dirty");
    assert_eq!(job.dirty_ratio, 1.0);
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    log.install_cleaned(out).unwrap();
    // 1 dirty segment of 2 (the 4 clean ones merged into one of the same bytes): 1/5 < 0.5.
    write_segment(&mut log);
    assert!(
        log.plan_cleaning(T0, None).is_none(),
        "1/5 dirty is below 0.5"
    );
    for _ in 0..3 {
        write_segment(&mut log);
    }
    assert!(
        log.plan_cleaning(T0, None).is_none(),
        "4/8 dirty is not above 0.5"
    );
    write_segment(&mut log);
    let job = log.plan_cleaning(T0, None).expect("5/9 dirty is above 0.5");
    assert!(
        (job.dirty_ratio - 5.0 / 9.0).abs() < 1e-9,
        "{}",
        job.dirty_ratio
    );
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: HOUR_MS as u64,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    overwrite(&mut log, 5, 4, 2, T0); // segments with timestamps ~T0
    overwrite(&mut log, 5, 4, 2, T0 + 2 * HOUR_MS); // segments ~T0+2h
                                                    // At T0 + 30min nothing is old enough.
    assert!(log.plan_cleaning(T0 + HOUR_MS / 2, None).is_none());
    // At T0 + 2h only the first two segments are.
    let job = log.plan_cleaning(T0 + 2 * HOUR_MS, None).unwrap();
    assert_eq!(job.segment_count(), 2);
    let second_half = log.segments()[2].base_offset;
    assert_eq!(job.first_uncleanable_offset(), second_half);
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    log.install_cleaned(out).unwrap();
    let recs = read_all(&log);
    // Below: one record per key; at and above: untouched (4 rounds of 5 keys).
    assert_eq!(recs.iter().filter(|r| r.offset < second_half).count(), 5);
    assert_eq!(recs.iter().filter(|r| r.offset >= second_half).count(), 20);
    // Later everything sealed is cleanable.
    let job = log.plan_cleaning(T0 + 4 * HOUR_MS, None).unwrap();
    assert_eq!(
        job.first_uncleanable_offset(),
        log.segments().last().unwrap().base_offset
    );
}

#[test]
fn max_compaction_lag_forces_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.99,
        max_compaction_lag_ms: HOUR_MS as u64,
        ..compact_config()
    };
    let mut log = open(dir.path(), config);
    overwrite(&mut log, 20, 8, 8, T0);
    assert!(
        clean(&mut log, T0).is_some(),
        "never cleaned: ratio 1 > 0.99"
    );
    overwrite(&mut log, 1, 1, 1, T0 + 10);
    assert!(
        log.plan_cleaning(T0 + HOUR_MS / 2, None).is_none(),
        "small dirty share, young"
    );
    let job = log
        .plan_cleaning(T0 + 2 * HOUR_MS, None)
        .expect("dirty data older than the max lag");
    assert!(job.forced_by_max_compaction_lag());
}

#[test]
fn tombstones_are_kept_until_the_delete_horizon_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    append(
        &mut log,
        &[(b"a", Some(b"1")), (b"b", Some(b"1"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        &[(b"a", None), (b"c", Some(b"1"))],
        T0 + 10,
        Compression::None,
    );
    roll(&mut log);
    let first_clean = T0 + 1000;
    let report = clean(&mut log, first_clean).unwrap();
    assert_eq!(report.records_removed, 1, "a=1 goes");
    assert_eq!(report.tombstones_removed, 0);
    let batches = read_batches(&log);
    let (h, recs) = batches
        .iter()
        .find(|(_, r)| r.iter().any(|r| r.value.is_none()))
        .unwrap();
    assert_ne!(h.attributes & DELETE_HORIZON_BIT, 0, "horizon bit set");
    assert_eq!(
        h.base_timestamp,
        first_clean + HOUR_MS,
        "horizon = clean time + retention"
    );
    // Every record keeps its absolute timestamp.
    assert_eq!(recs[0].timestamp, T0 + 10);
    assert_eq!(recs[1].timestamp, T0 + 11);
    assert_eq!(h.max_timestamp, T0 + 11);
    assert_eq!(h.last_offset_delta, 1);
    let ts_before = read_all(&log);

    // The horizon survives a restart; before it passes nothing is due and nothing changes.
    drop(log);
    let mut log = open(dir.path(), compact_config());
    assert!(log.plan_cleaning(first_clean + HOUR_MS - 1, None).is_none());
    // Another write makes the log dirty: a pass before the horizon keeps the tombstone.
    append(&mut log, &[(b"d", Some(b"1"))], T0 + 20, Compression::None);
    roll(&mut log);
    clean(&mut log, first_clean + HOUR_MS - 1).unwrap();
    assert!(read_all(&log)
        .iter()
        .any(|r| r.key == b"a" && r.value.is_none()));
    // After the horizon the log is due even with nothing dirty, and the tombstone goes.
    let report = clean(&mut log, first_clean + HOUR_MS).expect("horizon passed");
    assert_eq!(report.tombstones_removed, 1);
    let recs = read_all(&log);
    assert!(!recs.iter().any(|r| r.key == b"a"));
    let keys: Vec<&[u8]> = recs.iter().map(|r| &r.key[..]).collect();
    assert_eq!(keys, vec![&b"b"[..], b"c", b"d"]);
    for r in &recs {
        let was = ts_before.iter().find(|b| b.offset == r.offset);
        if let Some(was) = was {
            assert_eq!(was, r);
        }
    }
    assert!(log
        .plan_cleaning(first_clean + 10 * HOUR_MS, None)
        .is_none());
}

#[test]
fn small_segments_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    overwrite(&mut log, 4, 12, 1, T0); // 12 one-batch segments
    assert_eq!(log.segments().len(), 13);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    let report = clean(&mut log, T0 + 1000).unwrap();
    assert_eq!(report.segments_before, 12);
    assert_eq!(report.segments_after, 1);
    assert_eq!(log.segments().len(), 2);
    assert_eq!(
        log.segments()[0].base_offset,
        bases[0],
        "named by the group's first base"
    );
    assert!(dir.path().join("00000000000000000000.log").exists());
    assert!(!dir.path().join(format!("{:020}.log", bases[1])).exists());
    // Bounded by segment.bytes: with small segments several groups.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..compact_config()
    };
    let mut log = open(dir.path(), config.clone());
    overwrite(&mut log, 1, 12, 1, T0);
    let seg_size = log.segments()[0].size as u64;
    clean(&mut log, T0 + 1000).unwrap();
    let per_group = (300 / seg_size) as usize;
    // Everything but the last record goes; the first group keeps the log start (empty).
    assert_eq!(read_all(&log).len(), 1);
    assert!(log.segments().len() <= 12usize.div_ceil(per_group) + 1);
    assert_eq!(log.segments()[0].base_offset, 0);
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    // 5 segments of 8 distinct keys each, twice over.
    for round in 0..2 {
        for s in 0..5 {
            let ks: Vec<Vec<u8>> = (s * 8..s * 8 + 8).map(key).collect();
            let v = format!("round{round}").into_bytes();
            let recs: Vec<(&[u8], Option<&[u8]>)> =
                ks.iter().map(|k| (&k[..], Some(&v[..]))).collect();
            append(&mut log, &recs, T0, Compression::None);
            roll(&mut log);
        }
    }
    let expected = latest(&read_all(&log));
    // Room for 20 keys (24 bytes each, 0.9 load factor): two segments per pass.
    let limits = CleanerLimits {
        dedupe_buffer_bytes: 24 * 23,
        ..CleanerLimits::default()
    };
    let mut passes = 0;
    let mut last_checkpoint = 0;
    while let Some(report) = clean_with(&mut log, T0, &limits) {
        passes += 1;
        assert!(
            report.cleaned_up_to > last_checkpoint,
            "each pass makes progress"
        );
        last_checkpoint = report.cleaned_up_to;
        assert_eq!(latest(&read_all(&log)), expected, "after pass {passes}");
        assert!(passes < 20);
    }
    assert_eq!(passes, 5, "10 segments, 2 per pass");
    let recs = read_all(&log);
    assert_eq!(recs.len(), 40, "one record per key");
    assert!(recs
        .iter()
        .all(|r| r.value.as_deref() == Some(&b"round1"[..])));
    // A map too small for one segment still cleans batch by batch.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    // One segment of batches with two keys each; the map holds 3 keys.
    for round in 0..2 {
        for pair in 0..3 {
            let (k1, k2) = (key(2 * pair), key(2 * pair + 1));
            let v = format!("round{round}").into_bytes();
            append(
                &mut log,
                &[(&k1, Some(&v)), (&k2, Some(&v))],
                T0,
                Compression::None,
            );
        }
    }
    roll(&mut log);
    let expected = latest(&read_all(&log));
    let tiny = CleanerLimits {
        dedupe_buffer_bytes: 24 * 4,
        ..CleanerLimits::default()
    };
    let mut passes = 0;
    while clean_with(&mut log, T0, &tiny).is_some() {
        passes += 1;
        assert!(passes < 20);
        assert_eq!(latest(&read_all(&log)), expected);
    }
    assert!(passes > 1);
    assert_eq!(read_all(&log).len(), 6);
}

#[test]
fn compressed_batches_keep_their_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compact_config());
        let b1 = append(
            &mut log,
            &[(b"a", Some(b"1")), (b"b", Some(b"1")), (b"c", Some(b"1"))],
            T0,
            codec,
        );
        append(&mut log, &[(b"b", Some(b"2"))], T0 + 10, codec);
        roll(&mut log);
        clean(&mut log, T0 + 100).unwrap();
        let batches = read_batches(&log);
        assert_eq!(batches.len(), 2, "{codec:?}");
        let (h, recs) = &batches[0];
        assert_eq!(h.compression().unwrap(), codec, "{codec:?}");
        assert_eq!(h.base_offset, b1);
        assert_eq!(h.last_offset_delta, 2, "offset range kept");
        assert_eq!(h.record_count, 2);
        let got: Vec<(i64, &[u8], i64)> = recs
            .iter()
            .map(|r| (r.offset, &r.key[..], r.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![(b1, &b"a"[..], T0), (b1 + 2, b"c", T0 + 2)],
            "{codec:?}"
        );
        assert_eq!(h.base_timestamp, T0);
        assert_eq!(h.max_timestamp, T0 + 2);
        assert_eq!(batches[1].0.compression().unwrap(), codec);
        assert_eq!(batches[1].1[0].value.as_deref(), Some(&b"2"[..]));
    }
}

#[test]
fn reads_at_compacted_offsets_continue_at_the_next_survivor() {
    use corelog_engine::runtime;
    use corelog_engine::storage::ShardStorage;
    let dir = tempfile::tempdir().unwrap();
    let pdir = corelog_engine::storage::partition_dir(dir.path(), "t", 0);
    {
        let mut log = open(&pdir, compact_config());
        overwrite(&mut log, 2, 3, 1, T0); // segments [0,2) [2,4) [4,6)
        append(&mut log, &[(b"x", Some(b"1"))], T0, Compression::None);
        append(&mut log, &[(b"x", Some(b"2"))], T0, Compression::None);
        roll(&mut log); // [6,8)
        append(&mut log, &[(b"y", Some(b"1"))], T0, Compression::None); // active [8,9)
        clean(&mut log, T0 + 100).unwrap();
        let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![4, 5, 7, 8]);
    }
    runtime::block_on(async move {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("t", 0, compact_config()).unwrap();
        for (from, first) in [
            (0, 4),
            (1, 4),
            (3, 4),
            (4, 4),
            (5, 4),
            (6, 7),
            (7, 7),
            (8, 8),
        ] {
            let slice = p.read(from, 1 << 20, true).await.unwrap();
            let range = slice.range.expect("a batch");
            let mut buf = vec![0u8; range.len as usize];
            range.file.read_exact_at(&mut buf, range.position).unwrap();
            let h = validate_batch(&buf).unwrap();
            assert!(
                h.base_offset <= first && h.last_offset() >= first,
                "read at {from}"
            );
            assert_eq!(slice.log_start_offset, 0, "earliest offset unchanged");
            assert_eq!(slice.high_watermark, 9, "latest offset unchanged");
        }
        assert!(p.read(9, 1 << 20, true).await.unwrap().range.is_none());
    });
}

#[test]
fn a_stale_result_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    overwrite(&mut log, 3, 6, 2, T0);
    let before = read_all(&log);
    let job = log.plan_cleaning(T0, None).unwrap();
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    // DeleteRecords removes the first segment while the job ran.
    let second = log.segments()[1].base_offset;
    log.delete_records_before(second).unwrap();
    let report = log.install_cleaned(out).unwrap();
    assert!(!report.installed);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".cleaned")), "{names:?}");
    let after = read_all(&log);
    assert_eq!(
        after,
        before
            .into_iter()
            .filter(|r| r.offset >= second)
            .collect::<Vec<_>>()
    );
}

/// A crash after each step of the swap: the reopened log reads the same latest values, with
/// either all old or all new segments.
#[test]
fn a_crash_at_any_step_of_the_swap_loses_nothing() {
    let steps = [
        SwapStep::NotCommitted,
        SwapStep::Committed,
        SwapStep::Renamed(0),
        SwapStep::Renamed(1),
        SwapStep::Renamed(2),
        SwapStep::OldDeleted,
        SwapStep::Done,
    ];
    let config = LogConfig {
        segment_bytes: 700,
        ..compact_config()
    };
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config.clone());
        overwrite(&mut log, 3, 12, 1, T0);
        append(&mut log, &[(&key(0), None)], T0, Compression::None);
        roll(&mut log);
        let before = read_all(&log);
        let job = log.plan_cleaning(T0, None).unwrap();
        let out = job
            .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
            .unwrap();
        let expected_after_outputs = out.cleaned_up_to();
        let _ = expected_after_outputs;
        let report = log.install_cleaned_until(out, step).unwrap();
        assert!(
            report.segments_after >= 3,
            "several outputs to rename ({step:?})"
        );
        drop(log); // the crash: files stay as they are
        let log = open(dir.path(), config.clone());
        let after = read_all(&log);
        let committed = step >= SwapStep::Committed;
        if committed {
            assert!(after.len() < before.len(), "{step:?}: the swap completed");
        } else {
            assert_eq!(after, before, "{step:?}: the old segments");
        }
        assert_eq!(latest(&after), latest(&before), "{step:?}");
        // Every surviving record is one that was written, at its offset.
        for r in &after {
            assert!(before.contains(r), "{step:?}: {r:?}");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".cleaned") || n.starts_with("cleaner-swap")),
            "{step:?}: {names:?}"
        );
        // The log still cleans and appends after recovery.
        let mut log = log;
        append(&mut log, &[(&key(1), Some(b"new"))], T0, Compression::None);
        roll(&mut log);
        clean(&mut log, T0);
        let recs = read_all(&log);
        assert_eq!(
            latest(&recs).get(&key(1)).unwrap().value.as_deref(),
            Some(&b"new"[..])
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Write records for keys `keys` (tombstone where the flag is set).
    Write(Vec<(u8, bool)>, usize),
    Roll,
    /// Clean at `now` = T0 + this many hours with a key map of this many entries, crashing
    /// (then reopening) after a step of the swap when the third field names one.
    Clean(u8, usize, u8),
    Reopen,
    /// A transactional producer writes records for these keys (opening its transaction if none
    /// is open).
    TxnWrite(Vec<u8>),
    /// It commits (true) or aborts its open transaction, if any.
    TxnEnd(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec((0u8..12, proptest::bool::weighted(0.15)), 1..6), 0usize..5)
            .prop_map(|(k, c)| Op::Write(k, c)),
        2 => Just(Op::Roll),
        2 => (0u8..4, 1usize..400, 0u8..10).prop_map(|(h, buf, crash)| Op::Clean(h, buf, crash)),
        1 => Just(Op::Reopen),
        2 => proptest::collection::vec(0u8..12, 1..4).prop_map(Op::TxnWrite),
        1 => proptest::bool::ANY.prop_map(Op::TxnEnd),
    ]
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_matches_a_model(ops in proptest::collection::vec(op(), 1..50), segment_bytes in 200u32..2000) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, ..compact_config() };
        let mut log = open(dir.path(), config.clone());
        // Model: every record written (offset, key, value), markers included; the offsets of
        // aborted records; the open transaction's first offset.
        let mut written: Vec<Rec> = Vec::new();
        let mut aborted: std::collections::BTreeSet<i64> = Default::default();
        let mut open_txn: Option<i64> = None;
        // The open transaction's record offsets (other writes interleave with them).
        let mut open_records: Vec<i64> = Vec::new();
        const PID: i64 = 42;
        let mut clock_hours = 0u8;
        for op in ops {
            match op {
                Op::TxnWrite(keys) => {
                    let n = written.len() as i64;
                    let vals: Vec<(Vec<u8>, Vec<u8>)> = keys.iter().enumerate()
                        .map(|(i, k)| (vec![b'k', *k], format!("t{}", n + i as i64).into_bytes()))
                        .collect();
                    let recs: Vec<(&[u8], Option<&[u8]>)> = vals.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
                    let base = append_txn(&mut log, PID, &recs, T0);
                    open_txn.get_or_insert(base);
                    for (i, (k, v)) in vals.into_iter().enumerate() {
                        open_records.push(base + i as i64);
                        written.push(Rec { offset: base + i as i64, key: k, value: Some(v), timestamp: T0 + i as i64 });
                    }
                }
                Op::TxnEnd(commit) => {
                    if let Some(first) = open_txn.take() {
                        let marker = end_txn(&mut log, PID, first, commit, T0);
                        if !commit {
                            aborted.extend(open_records.iter().copied());
                        }
                        open_records.clear();
                        written.push(marker_rec(marker, commit, T0));
                    }
                }
                Op::Write(keys, codec) => {
                    let n = written.len() as i64;
                    let vals: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys.iter().enumerate()
                        .map(|(i, (k, tomb))| (vec![b'k', *k], (!tomb).then(|| format!("v{}", n + i as i64).into_bytes())))
                        .collect();
                    let recs: Vec<(&[u8], Option<&[u8]>)> = vals.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
                    let base = append(&mut log, &recs, T0, CODECS[codec]);
                    for (i, (k, v)) in vals.into_iter().enumerate() {
                        written.push(Rec { offset: base + i as i64, key: k, value: v, timestamp: T0 + i as i64 });
                    }
                }
                Op::Roll => { if log.segments().last().unwrap().size > 0 { roll(&mut log) } }
                Op::Reopen => { drop(log); log = open(dir.path(), config.clone()); }
                Op::Clean(hours, buf_entries, crash) => {
                    let crash_at = [SwapStep::NotCommitted, SwapStep::Committed, SwapStep::Renamed(0), SwapStep::Renamed(1), SwapStep::OldDeleted]
                        .get(crash as usize).copied();
                    clock_hours = clock_hours.max(clock_hours + hours);
                    let now = T0 + clock_hours as i64 * HOUR_MS;
                    let limits = CleanerLimits { dedupe_buffer_bytes: 24 * buf_entries as u64, ..CleanerLimits::default() };
                    if let Some(job) = log.plan_cleaning(now, open_txn) {
                        match job.run(&limits, &mut Throttle::new(u64::MAX)) {
                            Ok(out) => match crash_at {
                                None => { let r = log.install_cleaned(out).unwrap(); prop_assert!(r.installed); }
                                Some(step) => {
                                    log.install_cleaned_until(out, step).unwrap();
                                    drop(log);
                                    log = open(dir.path(), config.clone());
                                }
                            },
                            Err(e) => prop_assert!(e.to_string().contains("too few"), "{e}"),
                        }
                    }
                }
            }
            // Whatever happened: every key's latest record is there, at its offset; every
            // record read was written at that offset; tombstones may only be missing when they
            // were the latest (then the key is absent). Aborted records and markers are left
            // out of both sides (a read_committed consumer skips them); records of the open
            // transaction count (nothing of it may be cleaned, it may still commit).
            let read = read_all(&log);
            let visible = |recs: &[Rec]| -> Vec<Rec> {
                recs.iter().filter(|r| !is_marker(r) && !aborted.contains(&r.offset)).cloned().collect()
            };
            let model = latest(&visible(&written));
            let got = latest(&visible(&read));
            for (k, want) in &model {
                match got.get(k) {
                    Some(r) => prop_assert_eq!(r, want),
                    None => prop_assert!(want.value.is_none(), "key {:?} lost its value {:?}", k, want),
                }
            }
            for r in &read {
                let w = &written[r.offset as usize];
                prop_assert_eq!(r, w);
            }
        }
        // A final pass after every horizon with everything sealed: exactly the live keys remain,
        // one record each, plus the markers.
        if let Some(first) = open_txn.take() {
            let marker = end_txn(&mut log, PID, first, false, T0);
            aborted.extend(open_records.drain(..));
            written.push(marker_rec(marker, false, T0));
        }
        if log.segments().last().unwrap().size > 0 { roll(&mut log) }
        let far = T0 + 1000 * HOUR_MS;
        while let Some(job) = log.plan_cleaning(far, None) {
            let out = job.run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX)).unwrap();
            log.install_cleaned(out).unwrap();
        }
        // Tombstones stamped by the final pass need one more after their horizon.
        let later = far + 2 * HOUR_MS;
        while let Some(job) = log.plan_cleaning(later, None) {
            let out = job.run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX)).unwrap();
            log.install_cleaned(out).unwrap();
        }
        let read = read_all(&log);
        prop_assert!(!read.iter().any(|r| aborted.contains(&r.offset)), "aborted records are gone");
        let markers: Vec<Rec> = written.iter().filter(|r| is_marker(r)).cloned().collect();
        prop_assert_eq!(read.iter().filter(|r| is_marker(r)).cloned().collect::<Vec<_>>(), markers);
        let visible: Vec<Rec> = written.iter().filter(|r| !is_marker(r) && !aborted.contains(&r.offset)).cloned().collect();
        let live: Vec<Rec> = { let mut v: Vec<Rec> = latest(&visible).into_values().filter(|r| r.value.is_some()).collect(); v.sort_by_key(|r| r.offset); v };
        prop_assert_eq!(read.into_iter().filter(|r| !is_marker(r)).collect::<Vec<_>>(), live);
    }
}

#[test]
fn a_read_in_a_gap_at_a_segments_end_goes_on_at_the_next_segment() {
    use corelog_engine::runtime;
    use corelog_engine::storage::ShardStorage;
    let dir = tempfile::tempdir().unwrap();
    let pdir = corelog_engine::storage::partition_dir(dir.path(), "t", 0);
    // Segments too large to merge: [0,2) holds a@0 b@1, [2,3) b@2, [3,5) b@3 b@4.
    let config = LogConfig {
        segment_bytes: 150,
        ..compact_config()
    };
    {
        let mut log = open(&pdir, config.clone());
        append(&mut log, &[(b"a", Some(b"1"))], T0, Compression::None);
        append(&mut log, &[(b"b", Some(b"1"))], T0, Compression::None);
        roll(&mut log);
        append(&mut log, &[(b"b", Some(b"2"))], T0, Compression::None);
        roll(&mut log);
        append(&mut log, &[(b"b", Some(b"3"))], T0, Compression::None);
        append(&mut log, &[(b"b", Some(b"4"))], T0, Compression::None);
        roll(&mut log);
        append(&mut log, &[(b"c", Some(b"1"))], T0, Compression::None);
        let report = clean(&mut log, T0 + 100).unwrap();
        assert_eq!(
            report.segments_after, 2,
            "the middle segment is emptied and dropped"
        );
        let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 4, 5]);
    }
    runtime::block_on(async move {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("t", 0, config).unwrap();
        for (from, first) in [(0, 0), (1, 4), (2, 4), (3, 4), (4, 4), (5, 5)] {
            let slice = p.read(from, 1 << 20, true).await.unwrap();
            let range = slice.range.expect("a batch");
            let mut buf = vec![0u8; range.len as usize];
            range.file.read_exact_at(&mut buf, range.position).unwrap();
            let h = validate_batch(&buf).unwrap();
            assert_eq!(h.base_offset, first, "read at {from}");
        }
    });
}

#[test]
fn a_marker_naming_a_missing_output_is_refused_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    overwrite(&mut log, 2, 4, 1, T0);
    let before = read_all(&log);
    drop(log);
    // Output 0 is "renamed" but its .log has another size: the old segment is still there.
    std::fs::write(
        dir.path().join("cleaner-swap"),
        "replaced 0 2 4\ninstalled 0\nsizes 12345\n",
    )
    .unwrap();
    let err = PartitionLog::open(dir.path(), compact_config()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::remove_file(dir.path().join("cleaner-swap")).unwrap();
    let log = open(dir.path(), compact_config());
    assert_eq!(read_all(&log), before, "nothing was deleted");
}

// ---- Transactions ----

/// Appends a transactional batch of producer `pid` (epoch 0): returns its base offset.
fn append_txn(
    log: &mut PartitionLog,
    pid: i64,
    records: &[(&[u8], Option<&[u8]>)],
    timestamp: i64,
) -> i64 {
    let mut b = BatchBuilder::new(timestamp)
        .producer(pid, 0, 0)
        .transactional(true);
    for (i, (k, v)) in records.iter().enumerate() {
        b.push_record(Some(k), *v, &[], timestamp + i as i64);
    }
    append_raw(log, b.build(), timestamp)
}

/// Ends producer `pid`'s transaction that began at `first`: appends its marker and, for an
/// abort, records it in the aborted-transaction index. Returns the marker's offset.
fn end_txn(log: &mut PartitionLog, pid: i64, first: i64, commit: bool, timestamp: i64) -> i64 {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let marker = append_raw(log, control_batch(pid, 0, kind, 0, timestamp), timestamp);
    if !commit {
        log.record_aborted_txn(AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: marker,
            last_stable_offset: marker + 1,
        })
        .unwrap();
    }
    marker
}

/// The marker record as read back (key: version 0, type; value: version 0, coordinator epoch 0).
fn marker_rec(offset: i64, commit: bool, timestamp: i64) -> Rec {
    Rec {
        offset,
        key: vec![0, 0, 0, commit as u8],
        value: Some(vec![0; 6]),
        timestamp,
    }
}

fn is_marker(r: &Rec) -> bool {
    r.key.len() == 4 && r.key[..3] == [0, 0, 0]
}

fn files_with(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn aborted_records_are_removed_and_never_hide_a_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    append(
        &mut log,
        &[(b"k", Some(b"committed")), (b"j", Some(b"j1"))],
        T0,
        Compression::None,
    ); // 0, 1
    let first = append_txn(
        &mut log,
        7,
        &[(b"k", Some(b"aborted")), (b"x", Some(b"only-aborted"))],
        T0,
    ); // 2, 3
    let marker = end_txn(&mut log, 7, first, false, T0); // 4
                                                         // A committed transaction of another producer, interleaved, survives.
    let other = append_txn(&mut log, 8, &[(b"j", Some(b"j2"))], T0); // 5
    end_txn(&mut log, 8, other, true, T0); // 6
    roll(&mut log);
    append(&mut log, &[(b"z", Some(b"1"))], T0, Compression::None);
    let report = clean(&mut log, T0 + 1).unwrap();
    assert_eq!(report.records_removed, 3, "2 aborted records and j@1");
    let recs = read_all(&log);
    let user: Vec<&Rec> = recs.iter().filter(|r| !is_marker(r)).collect();
    let offsets: Vec<i64> = user.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 5, 7], "k@0 kept, the aborted records gone");
    assert_eq!(user[0].value.as_deref(), Some(&b"committed"[..]));
    // Both markers are kept as they were.
    let markers: Vec<&Rec> = recs.iter().filter(|r| is_marker(r)).collect();
    assert_eq!(
        markers,
        vec![&marker_rec(marker, false, T0), &marker_rec(6, true, T0)]
    );
    let control: Vec<BatchHeader> = read_batches(&log)
        .into_iter()
        .map(|(h, _)| h)
        .filter(|h| h.is_control())
        .collect();
    assert_eq!(control.len(), 2);
    assert!(control.iter().all(|h| h.is_transactional()));
    // The index entry stays with its marker's segment.
    assert_eq!(log.aborted_txns(0, i64::MAX).len(), 1);
    // A second pass changes nothing more.
    if let Some(r) = clean(&mut log, T0 + 2) {
        assert_eq!(r.records_removed, 0);
    }
    assert_eq!(read_all(&log), recs);
}

#[test]
fn committed_transactional_records_are_compacted_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let a = append_txn(&mut log, 5, &[(b"k", Some(b"a1")), (b"m", Some(b"m1"))], T0); // 0, 1
    end_txn(&mut log, 5, a, true, T0); // 2
    let b = append_txn(&mut log, 5, &[(b"k", Some(b"a2"))], T0); // 3
    end_txn(&mut log, 5, b, true, T0); // 4
    append(&mut log, &[(b"m", Some(b"m2"))], T0, Compression::None); // 5
    let c = append_txn(&mut log, 5, &[(b"k", None)], T0); // 6: a committed tombstone
    end_txn(&mut log, 5, c, true, T0); // 7
    roll(&mut log);
    append(&mut log, &[(b"z", Some(b"1"))], T0, Compression::None);
    let report = clean(&mut log, T0 + 1).unwrap();
    assert_eq!(
        report.records_removed, 3,
        "k@0, m@1, k@3 superseded; nothing else"
    );
    let batches = read_batches(&log);
    let user: Vec<(i64, bool)> = batches
        .iter()
        .filter(|(h, _)| !h.is_control())
        .flat_map(|(h, recs)| recs.iter().map(move |r| (r.offset, h.is_transactional())))
        .collect();
    assert_eq!(user, vec![(5, false), (6, true), (8, false)]);
    // The kept transactional tombstone got its delete horizon, and keeps its producer.
    let (h, _) = batches.iter().find(|(h, _)| h.base_offset == 6).unwrap();
    assert!(h.attributes & DELETE_HORIZON_BIT != 0);
    assert_eq!(h.producer_id, 5);
    let markers: Vec<i64> = batches
        .iter()
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(markers, vec![2, 4, 7], "markers are kept");
    // After the horizon the tombstone goes; the markers stay.
    clean(&mut log, T0 + 2 * HOUR_MS).unwrap();
    let user: Vec<i64> = read_all(&log)
        .iter()
        .filter(|r| !is_marker(r))
        .map(|r| r.offset)
        .collect();
    assert_eq!(user, vec![5, 8]);
    assert_eq!(
        read_all(&log).iter().filter(|r| is_marker(r)).count(),
        3,
        "markers outlive their transactions' records"
    );
}

#[test]
fn nothing_at_or_past_the_first_unstable_offset_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    // Segments of 3 records each: [0,3) [3,6) [6,9) ...
    overwrite(&mut log, 3, 4, 1, T0);
    // An open transaction of producer 9 from offset 12, overwriting key 0, in its own segment
    // and the next.
    let open_at = append_txn(&mut log, 9, &[(&key(0), Some(b"open"))], T0);
    assert_eq!(open_at, 12);
    roll(&mut log);
    overwrite(&mut log, 3, 2, 1, T0);
    append(&mut log, &[(b"z", Some(b"1"))], T0, Compression::None);
    let before = read_all(&log);
    // Open at the first segment's base: nothing to clean.
    assert!(log.plan_cleaning(T0, Some(0)).is_none());
    // Inside the third segment: the first two only.
    let job = log.plan_cleaning(T0, Some(7)).unwrap();
    assert_eq!(job.first_uncleanable_offset(), 6);
    assert_eq!(job.segment_count(), 2);
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    assert!(log.install_cleaned(out).unwrap().installed);
    let after = read_all(&log);
    let tail = |v: &[Rec]| {
        v.iter()
            .filter(|r| r.offset >= 6)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(tail(&after), tail(&before), "nothing from 6 on was touched");
    // With the transaction at 12 open: its record and everything after it stay, and the
    // records it would supersede if it committed stay too (key 0 @9 is kept).
    let job = log.plan_cleaning(T0, Some(open_at)).unwrap();
    assert_eq!(job.first_uncleanable_offset(), open_at);
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    assert!(log.install_cleaned(out).unwrap().installed);
    let after = read_all(&log);
    let from_open = |v: &[Rec]| {
        v.iter()
            .filter(|r| r.offset >= open_at)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(from_open(&after), from_open(&before));
    assert!(
        after.iter().any(|r| r.offset == 9 && r.key == key(0)),
        "key 0's last committed value below the open transaction is kept"
    );
    // Once it aborts, its record goes and key 0 @9 is still the latest committed value.
    let marker = end_txn(&mut log, 9, open_at, false, T0);
    roll(&mut log);
    clean(&mut log, T0 + 1).unwrap();
    let after = read_all(&log);
    assert!(!after.iter().any(|r| r.offset == open_at));
    let committed = latest(
        &after
            .iter()
            .filter(|r| !is_marker(r))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        committed[&key(0)].offset,
        16,
        "the round written after the txn"
    );
    assert!(after.iter().any(|r| r.offset == marker));
}

/// Transactions whose markers lie in four segments, the last spanning two: (producer, first
/// record, marker).
fn four_aborted_segments(log: &mut PartitionLog) -> Vec<AbortedTxn> {
    let mut txns = Vec::new();
    for pid in [1, 2] {
        let first = append_txn(log, pid, &[(b"a", Some(b"x"))], T0);
        append(log, &[(b"a", Some(b"ok"))], T0, Compression::None);
        let marker = end_txn(log, pid, first, false, T0);
        txns.push((pid, first, marker));
        roll(log);
    }
    let first = append_txn(log, 3, &[(b"b", Some(b"x"))], T0);
    roll(log);
    let marker = end_txn(log, 3, first, false, T0);
    txns.push((3, first, marker));
    roll(log);
    append(log, &[(b"z", Some(b"1"))], T0, Compression::None);
    txns.into_iter()
        .map(|(pid, first, marker)| AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: marker,
            last_stable_offset: marker + 1,
        })
        .collect()
}

#[test]
fn the_index_entries_of_merged_segments_go_to_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    let txns = four_aborted_segments(&mut log);
    assert_eq!(log.aborted_txns(0, i64::MAX), txns);
    assert_eq!(
        files_with(dir.path(), ".txnindex").len(),
        3,
        "one file per segment with a marker of an abort"
    );
    let report = clean(&mut log, T0 + 1).unwrap();
    assert_eq!((report.segments_before, report.segments_after), (4, 1));
    assert_eq!(log.segments()[0].txn_index.entries(), &txns[..]);
    assert_eq!(log.aborted_txns(0, i64::MAX), txns);
    // The transaction spanning segments is still found from its first record's offset.
    assert_eq!(
        log.aborted_txns(txns[2].first_offset, txns[2].first_offset + 1),
        vec![txns[2]]
    );
    assert_eq!(
        files_with(dir.path(), "txnindex"),
        vec!["00000000000000000000.txnindex".to_string()]
    );
    let bytes = std::fs::read(dir.path().join("00000000000000000000.txnindex")).unwrap();
    assert_eq!(bytes.len(), 3 * 34);
    assert!(files_with(dir.path(), ".cleaned").is_empty());
    let user: Vec<Vec<u8>> = read_all(&log)
        .into_iter()
        .filter(|r| !is_marker(r))
        .map(|r| r.value.unwrap())
        .collect();
    assert!(!user.contains(&b"x".to_vec()), "aborted records removed");
    drop(log);
    let log = open(dir.path(), compact_config());
    assert_eq!(log.aborted_txns(0, i64::MAX), txns, "after a reopen");
}

#[test]
fn a_crash_at_any_step_of_the_swap_keeps_the_aborted_transactions() {
    let steps = [
        SwapStep::NotCommitted,
        SwapStep::Committed,
        SwapStep::Renamed(0),
        SwapStep::Renamed(1),
        SwapStep::OldDeleted,
        SwapStep::Done,
    ];
    // Segments too large to merge all: several outputs, each with entries.
    let config = LogConfig {
        segment_bytes: 400,
        ..compact_config()
    };
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config.clone());
        let txns = four_aborted_segments(&mut log);
        let before = read_all(&log);
        let job = log.plan_cleaning(T0, None).unwrap();
        let out = job
            .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
            .unwrap();
        let report = log.install_cleaned_until(out, step).unwrap();
        assert!(report.segments_after >= 2, "{step:?}: {report:?}");
        drop(log);
        let log = open(dir.path(), config.clone());
        assert_eq!(log.aborted_txns(0, i64::MAX), txns, "{step:?}");
        let after = read_all(&log);
        if step >= SwapStep::Committed {
            assert!(after.len() < before.len(), "{step:?}: the swap completed");
        } else {
            assert_eq!(after, before, "{step:?}");
        }
        assert!(files_with(dir.path(), ".cleaned").is_empty(), "{step:?}");
        // Exactly one index file per segment that holds a marker of an abort.
        let mut with_entries: Vec<String> = log
            .segments()
            .iter()
            .filter(|s| !s.txn_index.is_empty())
            .map(|s| format!("{:020}.txnindex", s.base_offset))
            .collect();
        with_entries.sort();
        assert_eq!(
            files_with(dir.path(), ".txnindex"),
            with_entries,
            "{step:?}"
        );
    }
}

#[test]
fn an_abort_recorded_while_a_pass_ran_makes_its_result_stale() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    append(
        &mut log,
        &[(b"k", Some(b"committed"))],
        T0,
        Compression::None,
    ); // 0
    let first = append_txn(&mut log, 4, &[(b"k", Some(b"aborted"))], T0); // 1
    roll(&mut log);
    // The marker is written but its entry is not recorded when the pass is planned.
    let marker = append_raw(
        &mut log,
        control_batch(4, 0, ControlRecordType::Abort, 0, T0),
        T0,
    );
    let job = log.plan_cleaning(T0, None).unwrap();
    let out = job
        .run(&CleanerLimits::default(), &mut Throttle::new(u64::MAX))
        .unwrap();
    log.record_aborted_txn(AbortedTxn {
        producer_id: 4,
        first_offset: first,
        last_offset: marker,
        last_stable_offset: marker + 1,
    })
    .unwrap();
    let report = log.install_cleaned(out).unwrap();
    assert!(
        !report.installed,
        "the pass took the aborted record for committed"
    );
    assert!(files_with(dir.path(), ".cleaned").is_empty());
    let recs = read_all(&log);
    assert_eq!(recs[0].value.as_deref(), Some(&b"committed"[..]));
    // The next pass knows the abort.
    clean(&mut log, T0 + 1).unwrap();
    let user: Vec<i64> = read_all(&log)
        .iter()
        .filter(|r| !is_marker(r))
        .map(|r| r.offset)
        .collect();
    assert_eq!(user, vec![0]);
}
