//! The partition log end to end on a real ring: append, read, roll, durability, recovery.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use common::{at_offset, batches, make_batch, read_range};
use corelog_engine::batch::{validate_batch, TimestampType};
use corelog_engine::log::{AppendError, LogConfig};
use corelog_engine::partition::{AckPoint, Partition, ReadError};
use corelog_engine::runtime;
use corelog_engine::segment::{file_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use corelog_engine::storage::{partition_dir, ShardStorage};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// Appends `count` batches (seed = index) at `ack` and returns the stored bytes of each.
async fn append_batches(p: &Rc<Partition>, count: u64, ack: AckPoint) -> Vec<Vec<u8>> {
    let mut stored = Vec::new();
    for seed in 0..count {
        let batch = make_batch(seed, 1 + (seed % 5) as usize, 50 + (seed % 200) as usize);
        let info = p.append(batch.clone(), ack).await.expect("append");
        stored.push(at_offset(batch, info.base_offset));
    }
    stored
}

#[test]
fn offsets_are_assigned_in_order_and_reads_return_the_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage
            .open_partition("t", 0, LogConfig::default())
            .unwrap();
        let stored = append_batches(&p, 50, AckPoint::Written).await;
        let expected: Vec<u8> = stored.concat();
        let total_records: i64 = stored
            .iter()
            .map(|b| validate_batch(b).unwrap().record_count as i64)
            .sum();
        assert_eq!(p.log().log_end_offset(), total_records);
        assert_eq!(p.log().high_watermark(), total_records);

        let slice = p.read(0, u32::MAX, true).await.unwrap();
        assert_eq!(read_range(slice.range.as_ref().unwrap()), expected);
        assert_eq!(slice.high_watermark, total_records);

        // Every offset lands on the batch that holds it.
        let headers = batches(&expected);
        for h in &headers {
            for offset in h.base_offset..=h.last_offset() {
                let slice = p.read(offset, 1, true).await.unwrap();
                let got = batches(&read_range(slice.range.as_ref().unwrap()));
                assert_eq!(
                    got.len(),
                    1,
                    "min_one_batch returns exactly the first batch"
                );
                assert_eq!(got[0].base_offset, h.base_offset);
            }
        }
        // At the high watermark: empty; past it or before the start: out of range.
        assert!(p
            .read(total_records, 1000, true)
            .await
            .unwrap()
            .range
            .is_none());
        assert!(matches!(
            p.read(total_records + 1, 1000, true).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            p.read(-1, 1000, true).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
    });
}

#[test]
fn reads_stop_on_batch_boundaries_within_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let config = LogConfig {
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        let (p, _) = storage.open_partition("t", 0, config).unwrap();
        let stored = append_batches(&p, 200, AckPoint::Written).await;
        let sizes: Vec<usize> = stored.iter().map(|b| b.len()).collect();
        for (start_batch, max_bytes) in [
            (0usize, 1000u32),
            (3, 5000),
            (10, 777),
            (150, 100_000),
            (199, 10),
        ] {
            let offset = validate_batch(&stored[start_batch]).unwrap().base_offset;
            let slice = p.read(offset, max_bytes, false).await.unwrap();
            // The expected answer: as many whole batches as fit.
            let mut fit = 0;
            let mut used = 0usize;
            while start_batch + fit < stored.len()
                && used + sizes[start_batch + fit] <= max_bytes as usize
            {
                used += sizes[start_batch + fit];
                fit += 1;
            }
            let got = slice.range.as_ref().map(read_range).unwrap_or_default();
            assert_eq!(
                got,
                stored[start_batch..start_batch + fit].concat(),
                "start {start_batch} max {max_bytes}"
            );
            if fit == 0 {
                let one = p.read(offset, max_bytes, true).await.unwrap();
                assert_eq!(read_range(one.range.as_ref().unwrap()), stored[start_batch]);
            }
        }
    });
}

#[test]
fn segments_roll_by_size_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage
            .open_partition("sized", 0, small_segments())
            .unwrap();
        let stored = append_batches(&p, 120, AckPoint::Written).await;
        let segments = p.log().segments().len();
        assert!(segments > 3, "8 KiB segments must roll, got {segments}");
        for seg in p.log().segments() {
            assert!(seg.size <= 8 * 1024);
            assert!(file_path(p.log().dir(), seg.base_offset, LOG_SUFFIX).exists());
        }
        // Sealed segments have their index files.
        let first = p.log().segments()[0].base_offset;
        assert!(file_path(p.log().dir(), first, INDEX_SUFFIX).exists());
        assert!(file_path(p.log().dir(), first, TIME_INDEX_SUFFIX).exists());
        // Reading everything, segment by segment, gives back every batch.
        let mut offset = 0;
        let mut got = Vec::new();
        while offset < p.log().high_watermark() {
            let slice = p.read(offset, u32::MAX, true).await.unwrap();
            let bytes = read_range(slice.range.as_ref().unwrap());
            offset = batches(&bytes).last().unwrap().next_offset();
            got.extend(bytes);
        }
        assert_eq!(got, stored.concat());

        let aged = LogConfig {
            segment_ms: 1,
            ..LogConfig::default()
        };
        let (q, _) = storage.open_partition("aged", 0, aged).unwrap();
        q.append(make_batch(1, 1, 10), AckPoint::Written)
            .await
            .unwrap();
        runtime::sleep(std::time::Duration::from_millis(5)).await;
        q.append(make_batch(2, 1, 10), AckPoint::Written)
            .await
            .unwrap();
        assert_eq!(
            q.log().segments().len(),
            2,
            "segment.ms rolls a non-empty segment"
        );
    });
}

#[test]
fn bad_batches_are_refused_and_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage
            .open_partition("t", 0, LogConfig::default())
            .unwrap();
        p.append(make_batch(0, 3, 10), AckPoint::Written)
            .await
            .unwrap();
        let end = p.log().log_end_offset();
        let size = p.log().segments()[0].size;

        let mut flipped = make_batch(1, 3, 10);
        let n = flipped.len();
        flipped[n - 1] ^= 0x40;
        let truncated = make_batch(2, 3, 10)[..70].to_vec();
        let mut bad_magic = make_batch(3, 1, 10);
        bad_magic[16] = 1;
        for bad in [flipped, truncated, bad_magic, Vec::new(), vec![0u8; 100]] {
            let err = p.append(bad, AckPoint::Durable).await.unwrap_err();
            assert!(matches!(err, AppendError::InvalidBatch(_)), "{err}");
        }
        assert_eq!(p.log().log_end_offset(), end);
        assert_eq!(p.log().segments()[0].size, size);
        let on_disk = fs::metadata(file_path(p.log().dir(), 0, LOG_SUFFIX))
            .unwrap()
            .len();
        assert_eq!(on_disk, size as u64);

        let small = LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        };
        let (q, _) = storage.open_partition("small", 0, small).unwrap();
        let err = q
            .append(make_batch(0, 10, 200), AckPoint::Written)
            .await
            .unwrap_err();
        assert!(matches!(err, AppendError::BatchLargerThanSegment { .. }));
    });
}

#[test]
fn log_append_time_rewrites_the_timestamp_and_keeps_the_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let (p, _) = storage.open_partition("t", 0, config).unwrap();
        let before = corelog_engine::partition::now_ms();
        let info = p
            .append(make_batch(0, 4, 10), AckPoint::Written)
            .await
            .unwrap();
        let ts = info.log_append_time.expect("LogAppendTime reported");
        assert!(ts >= before);
        let bytes = read_range(
            p.read(0, u32::MAX, true)
                .await
                .unwrap()
                .range
                .as_ref()
                .unwrap(),
        );
        let h = validate_batch(&bytes).expect("CRC recomputed");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, ts);
    });
}

#[test]
fn durable_acks_share_fdatasyncs_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let mut parts = Vec::new();
        for i in 0..16 {
            parts.push(
                storage
                    .open_partition("g", i, LogConfig::default())
                    .unwrap()
                    .0,
            );
        }
        let mut tasks = Vec::new();
        for round in 0..8u64 {
            for p in &parts {
                let p = p.clone();
                tasks.push(runtime::spawn(async move {
                    let info = p
                        .append(make_batch(round, 2, 100), AckPoint::Durable)
                        .await
                        .unwrap();
                    assert!(
                        p.log().durable_offset() > info.last_offset,
                        "acked only once durable"
                    );
                }));
            }
        }
        let appends = tasks.len() as u64;
        for t in tasks {
            t.await;
        }
        let stats = storage.flush_stats();
        assert!(stats.rounds >= 1);
        assert!(
            stats.rounds * 4 <= appends,
            "group commit: {} rounds for {appends} durable appends",
            stats.rounds
        );
        for p in &parts {
            assert_eq!(p.log().durable_offset(), p.log().log_end_offset());
        }
    });
}

#[test]
fn flush_messages_and_flush_ms_make_written_data_durable() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let by_count = LogConfig {
            flush_messages: 3,
            ..LogConfig::default()
        };
        let (p, _) = storage.open_partition("count", 0, by_count).unwrap();
        p.append(make_batch(0, 1, 10), AckPoint::Written)
            .await
            .unwrap();
        runtime::sleep(std::time::Duration::from_millis(30)).await;
        assert_eq!(
            p.log().durable_offset(),
            0,
            "below flush.messages nothing is flushed"
        );
        p.append(make_batch(1, 2, 10), AckPoint::Written)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while p.log().durable_offset() < 3 && std::time::Instant::now() < deadline {
            runtime::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(p.log().durable_offset(), 3);

        let by_time = LogConfig {
            flush_ms: 20,
            ..LogConfig::default()
        };
        let (q, _) = storage.open_partition("time", 0, by_time).unwrap();
        q.append(make_batch(0, 1, 10), AckPoint::Written)
            .await
            .unwrap();
        assert_eq!(q.log().durable_offset(), 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while q.log().durable_offset() < 1 && std::time::Instant::now() < deadline {
            runtime::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(q.log().durable_offset(), 1, "flush.ms flushes written data");
    });
}

#[test]
fn timestamps_find_the_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("t", 0, small_segments()).unwrap();
        let stored = append_batches(&p, 100, AckPoint::Written).await;
        for probe in [0usize, 1, 37, 64, 99] {
            let h = validate_batch(&stored[probe]).unwrap();
            let found = p.offset_for_timestamp(h.max_timestamp).await.unwrap();
            assert_eq!(
                found,
                Some((h.base_offset, h.max_timestamp)),
                "probe {probe}"
            );
        }
        assert_eq!(p.offset_for_timestamp(i64::MAX).await.unwrap(), None);
        assert_eq!(p.offset_for_timestamp(0).await.unwrap().unwrap().0, 0);
    });
}

#[test]
fn a_read_range_outlives_the_deletion_of_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage
            .open_partition("gone", 0, LogConfig::default())
            .unwrap();
        let stored = append_batches(&p, 10, AckPoint::Written).await;
        let slice = p.read(0, u32::MAX, true).await.unwrap();
        assert!(storage.delete_partition("gone", 0).unwrap());
        assert!(
            !partition_dir(dir.path(), "gone", 0).exists(),
            "files deleted"
        );
        assert_eq!(
            read_range(slice.range.as_ref().unwrap()),
            stored.concat(),
            "still readable"
        );
        assert!(p
            .append(make_batch(0, 1, 1), AckPoint::Written)
            .await
            .is_err());
        // The directory went to the reaper under a `.deleted` name, which it removes.
        corelog_engine::reaper::wait_idle();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("gone"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    });
}

#[test]
fn start_up_removes_what_an_interrupted_deletion_left() {
    let dir = tempfile::tempdir().unwrap();
    let doomed = dir.path().join("t-0.123.deleted");
    std::fs::create_dir_all(&doomed).unwrap();
    std::fs::write(doomed.join("00000000000000000000.log"), b"x").unwrap();
    let kept = partition_dir(dir.path(), "t", 0);
    std::fs::create_dir_all(&kept).unwrap();
    corelog_engine::storage::remove_deleted_leftovers(dir.path()).unwrap();
    assert!(!doomed.exists());
    assert!(kept.exists());
}

#[test]
fn invalid_topic_names_cannot_escape_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let storage = ShardStorage::new(dir.path()).unwrap();
    for bad in ["", ".", "..", "../x", "a/b", "x y", &"x".repeat(250)] {
        assert!(
            storage
                .open_partition(bad, 0, LogConfig::default())
                .is_err(),
            "{bad:?}"
        );
    }
}

/// The base offsets of the segment files in a partition directory, in order.
fn segment_bases(pdir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs::read_dir(pdir)
        .unwrap()
        .filter_map(|e| {
            corelog_engine::segment::parse_file_name(
                &e.unwrap().file_name().to_string_lossy(),
                LOG_SUFFIX,
            )
        })
        .collect();
    bases.sort();
    bases
}

/// Writes a log, closes it, and returns the stored batches.
fn write_log(dir: &Path, config: &LogConfig, count: u64) -> Vec<Vec<u8>> {
    runtime::block_on(async {
        let storage = ShardStorage::new(dir).unwrap();
        let (p, _) = storage.open_partition("r", 0, config.clone()).unwrap();
        append_batches(&p, count, AckPoint::Durable).await
    })
}

/// Reopens the log and returns (report, every batch read back).
fn reopen(dir: &Path, config: &LogConfig) -> (corelog_engine::log::RecoveryReport, Vec<u8>, i64) {
    runtime::block_on(async {
        let storage = ShardStorage::new(dir).unwrap();
        let (p, report) = storage.open_partition("r", 0, config.clone()).unwrap();
        let mut offset = p.log().log_start_offset();
        let mut got = Vec::new();
        while offset < p.log().high_watermark() {
            let slice = p.read(offset, u32::MAX, true).await.unwrap();
            let bytes = read_range(slice.range.as_ref().unwrap());
            offset = batches(&bytes).last().unwrap().next_offset();
            got.extend(bytes);
        }
        // The log accepts appends after recovery, at the next offset.
        let end = p.log().log_end_offset();
        let info = p
            .append(make_batch(999, 1, 5), AckPoint::Durable)
            .await
            .unwrap();
        assert_eq!(info.base_offset, end);
        (report, got, end)
    })
}

#[test]
fn reopening_a_clean_log_keeps_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments();
    let stored = write_log(dir.path(), &config, 150);
    let (report, got, _) = reopen(dir.path(), &config);
    assert_eq!(got, stored.concat());
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.segments > 3);
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments();
    let stored = write_log(dir.path(), &config, 150);
    let pdir = partition_dir(dir.path(), "r", 0);
    let bases = segment_bases(&pdir);
    fs::remove_file(file_path(&pdir, bases[0], INDEX_SUFFIX)).unwrap();
    fs::write(
        file_path(&pdir, bases[1], INDEX_SUFFIX),
        b"garbage!garbage!",
    )
    .unwrap();
    fs::write(file_path(&pdir, bases[2], TIME_INDEX_SUFFIX), [0xffu8; 7]).unwrap();
    let (report, got, _) = reopen(dir.path(), &config);
    assert_eq!(got, stored.concat());
    assert!(report.rebuilt_indexes >= 3, "{report:?}");
}

#[test]
fn a_torn_tail_is_truncated_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let stored = write_log(dir.path(), &config, 20);
    let log_file = file_path(&partition_dir(dir.path(), "r", 0), 0, LOG_SUFFIX);
    let full: usize = stored.iter().map(|b| b.len()).sum();
    // Cut in the middle of the last batch.
    let cut = full - stored.last().unwrap().len() / 2;
    OpenOptions::new()
        .write(true)
        .open(&log_file)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let (report, got, end) = reopen(dir.path(), &config);
    assert_eq!(got, stored[..19].concat());
    assert_eq!(
        report.truncated_bytes,
        (cut - (full - stored[19].len())) as u64
    );
    assert_eq!(end, validate_batch(&stored[18]).unwrap().next_offset());
}

#[test]
fn a_corrupt_batch_and_everything_after_it_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let stored = write_log(dir.path(), &config, 20);
    let log_file = file_path(&partition_dir(dir.path(), "r", 0), 0, LOG_SUFFIX);
    let start_of_10: usize = stored[..10].iter().map(|b| b.len()).sum();
    // Flip one byte inside batch 10's records: its CRC no longer matches.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_file)
        .unwrap();
    let mut byte = [0u8; 1];
    let at = (start_of_10 + stored[10].len() - 3) as u64;
    f.read_exact_at(&mut byte, at).unwrap();
    f.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
    drop(f);
    let (report, got, _) = reopen(dir.path(), &config);
    assert_eq!(got, stored[..10].concat(), "nothing corrupt is served");
    assert!(report.truncated_bytes > 0);

    // Zeros (a hole left by an unfinished write) are treated the same way.
    let dir = tempfile::tempdir().unwrap();
    let stored = write_log(dir.path(), &config, 5);
    let log_file = file_path(&partition_dir(dir.path(), "r", 0), 0, LOG_SUFFIX);
    let f = OpenOptions::new().write(true).open(&log_file).unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(&[0u8; 4096], len).unwrap();
    drop(f);
    let (report, got, _) = reopen(dir.path(), &config);
    assert_eq!(got, stored.concat());
    assert_eq!(report.truncated_bytes, 4096);
}

#[test]
fn corruption_in_a_later_segment_removes_it_and_keeps_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments();
    let stored = write_log(dir.path(), &config, 150);
    let pdir = partition_dir(dir.path(), "r", 0);
    let bases = segment_bases(&pdir);
    // Pretend the machine crashed before the last roll's checkpoint: recovery must scan the last
    // two segments. Corrupt the start of the second-to-last one.
    fs::write(
        pdir.join(corelog_engine::log::RECOVERY_POINT_FILE),
        format!("{}\n", bases[bases.len() - 2]),
    )
    .unwrap();
    let victim = file_path(&pdir, bases[bases.len() - 2], LOG_SUFFIX);
    let f = OpenOptions::new().write(true).open(&victim).unwrap();
    f.write_all_at(&[0xAA; 8], 20).unwrap();
    drop(f);
    let (report, got, end) = reopen(dir.path(), &config);
    assert_eq!(report.removed_segments, 1, "{report:?}");
    assert_eq!(end, bases[bases.len() - 2]);
    let kept: Vec<u8> = stored
        .iter()
        .filter(|b| validate_batch(b).unwrap().base_offset < end)
        .flatten()
        .copied()
        .collect();
    assert_eq!(got, kept);
}

#[test]
fn a_segment_ending_short_of_the_next_one_cuts_the_log_there() {
    // A crash while writes to a just-sealed segment were in flight: their bytes were reserved but
    // never written, so the segment ends cleanly on a batch boundary but short of the next base.
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments();
    let stored = write_log(dir.path(), &config, 150);
    let pdir = partition_dir(dir.path(), "r", 0);
    let bases = segment_bases(&pdir);
    let victim_base = bases[bases.len() - 2];
    fs::write(
        pdir.join(corelog_engine::log::RECOVERY_POINT_FILE),
        format!("{victim_base}\n"),
    )
    .unwrap();
    // Drop the victim segment's last batch exactly at its boundary.
    let in_victim: Vec<&Vec<u8>> = stored
        .iter()
        .filter(|b| {
            let base = validate_batch(b).unwrap().base_offset;
            base >= victim_base && base < bases[bases.len() - 1]
        })
        .collect();
    let keep: usize = in_victim[..in_victim.len() - 1]
        .iter()
        .map(|b| b.len())
        .sum();
    OpenOptions::new()
        .write(true)
        .open(file_path(&pdir, victim_base, LOG_SUFFIX))
        .unwrap()
        .set_len(keep as u64)
        .unwrap();
    let (report, got, end) = reopen(dir.path(), &config);
    assert_eq!(report.removed_segments, 1, "{report:?}");
    assert_eq!(
        end,
        validate_batch(in_victim[in_victim.len() - 1])
            .unwrap()
            .base_offset,
        "no gap in the offsets"
    );
    let kept: Vec<u8> = stored
        .iter()
        .filter(|b| validate_batch(b).unwrap().base_offset < end)
        .flatten()
        .copied()
        .collect();
    assert_eq!(got, kept);
}

#[test]
fn batch_headers_are_walked_from_an_offset_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("walk", 0, small_segments()).unwrap();
        let stored = append_batches(&p, 120, AckPoint::Written).await;
        assert!(p.log().segments().len() > 3);
        let all: Vec<_> = stored.iter().map(|b| validate_batch(b).unwrap()).collect();
        let mut seen = Vec::new();
        p.log().for_each_batch_header(0, |h| seen.push(*h)).unwrap();
        assert_eq!(seen, all);
        // From an offset inside a batch in a later segment: that batch and everything after.
        let mid = &all[77];
        let from = mid.base_offset + i64::from(mid.last_offset_delta);
        let mut seen = Vec::new();
        p.log()
            .for_each_batch_header(from, |h| seen.push(*h))
            .unwrap();
        assert_eq!(seen, all[77..].to_vec());
        // From the log end: nothing.
        let end = p.log().log_end_offset();
        let mut count = 0;
        p.log().for_each_batch_header(end, |_| count += 1).unwrap();
        assert_eq!(count, 0);
    });
}

#[test]
fn delete_records_moves_the_log_start_and_removes_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments();
    let stored = write_log(dir.path(), &config, 150);
    let pdir = partition_dir(dir.path(), "r", 0);
    let (cut, hw) = runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("r", 0, config.clone()).unwrap();
        let segments_before = p.log().segments().len();
        assert!(segments_before > 3);
        let hw = p.log().high_watermark();
        // Past the high watermark: refused, nothing changes.
        assert!(matches!(p.delete_records_before(hw + 1), Err(None)));
        assert_eq!(p.log().log_start_offset(), 0);
        // An offset in the middle of the third segment.
        let third = p.log().segments()[2].base_offset;
        let cut = third + 1;
        assert_eq!(p.delete_records_before(cut).unwrap(), cut);
        assert_eq!(p.log().log_start_offset(), cut);
        assert_eq!(p.log().segments()[0].base_offset, third);
        assert_eq!(p.log().segments().len(), segments_before - 2);
        assert!(!file_path(&pdir, 0, LOG_SUFFIX).exists());
        assert!(file_path(&pdir, third, LOG_SUFFIX).exists());
        // Never moves back.
        assert_eq!(p.delete_records_before(1).unwrap(), cut);
        // Below the start: out of range; at the start: served.
        assert!(matches!(
            p.read(cut - 1, 1000, true).await,
            Err(ReadError::OffsetOutOfRange { log_start_offset, .. }) if log_start_offset == cut
        ));
        let slice = p.read(cut, 1000, true).await.unwrap();
        assert_eq!(slice.log_start_offset, cut);
        let got = batches(&read_range(slice.range.as_ref().unwrap()));
        let first = &got[0];
        assert!(first.base_offset <= cut && cut <= first.last_offset());
        (cut, hw)
    });
    // The start survives a restart.
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("r", 0, config.clone()).unwrap();
        assert_eq!(p.log().log_start_offset(), cut);
        assert_eq!(p.log().high_watermark(), hw);
        assert!(p.read(cut - 1, 1000, true).await.is_err());
        // Deleting everything keeps the active segment and an empty readable log.
        assert_eq!(p.delete_records_before(hw).unwrap(), hw);
        assert_eq!(p.log().segments().len(), 1);
        assert!(p.read(hw, 1000, true).await.unwrap().range.is_none());
    });
    drop(stored);
}

/// The no-copy path for validated client batches writes the same bytes as the copying path:
/// the batch as received with its assigned base offset, interleaved with ordinary appends,
/// durable when asked, and still rewritten (copied) under LogAppendTime.
#[test]
fn validated_client_batches_are_stored_like_copied_ones() {
    use corelog_engine::batch::{ClientBatchError, ValidatedBatch};
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("t", 0, small_segments()).unwrap();
        let mut expected = Vec::new();
        for seed in 0..40u64 {
            let batch = make_batch(seed, 1 + (seed % 4) as usize, 30 + (seed % 300) as usize);
            let ack = if seed % 7 == 0 {
                AckPoint::Durable
            } else {
                AckPoint::Written
            };
            let info = if seed % 3 == 0 {
                p.append(batch.clone(), ack).await.unwrap()
            } else {
                let validated = ValidatedBatch::client(batch.clone()).unwrap();
                p.append_client_batch(validated, ack).await.unwrap()
            };
            if ack == AckPoint::Durable {
                assert!(p.log().durable_offset() > info.last_offset);
            }
            expected.push(at_offset(batch, info.base_offset));
        }
        // Segments rolled on the way (8 KiB): read every segment from the start.
        let mut got = Vec::new();
        let mut offset = 0;
        while let Some(range) = p.read(offset, u32::MAX, true).await.unwrap().range {
            let bytes = read_range(&range);
            offset = batches(&bytes).last().unwrap().last_offset() + 1;
            got.extend_from_slice(&bytes);
        }
        assert_eq!(got, expected.concat());
        assert!(
            p.log().segments().len() > 1,
            "the test should cross segment rolls"
        );

        // A valid batch followed by anything is not one batch; a bad CRC is invalid.
        let mut two = make_batch(1, 1, 10);
        two.extend_from_slice(&make_batch(2, 1, 10));
        assert!(matches!(
            ValidatedBatch::client(two),
            Err(ClientBatchError::NotExactlyOneBatch)
        ));
        let mut corrupt = make_batch(3, 2, 10);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(
            ValidatedBatch::client(corrupt),
            Err(ClientBatchError::Invalid(_))
        ));

        // Under LogAppendTime the broker's timestamp and a fresh CRC are stored.
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let (q, _) = storage.open_partition("t", 1, config).unwrap();
        let batch = ValidatedBatch::client(make_batch(0, 3, 10)).unwrap();
        let info = q
            .append_client_batch(batch, AckPoint::Written)
            .await
            .unwrap();
        let ts = info.log_append_time.expect("LogAppendTime reported");
        let range = q.read(0, u32::MAX, true).await.unwrap().range.unwrap();
        let h = validate_batch(&read_range(&range)).expect("CRC recomputed");
        assert_eq!(h.max_timestamp, ts);
    });
}
