//! The aborted-transaction index (`<base>.txnindex`) on a real partition log: recording,
//! searching, truncating, reopening, recovery of a torn tail, the file following its segment
//! (retention, DeleteRecords, topic deletion), flushes covering it, and the bounded read that a
//! read_committed fetch uses.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{at_offset, batches, read_range};
use corelog_engine::batch::{control_batch, BatchBuilder, ControlRecordType};
use corelog_engine::log::{LogConfig, PartitionLog};
use corelog_engine::partition::{AckPoint, ReadError};
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;
use corelog_engine::txn_index::{AbortedTxn, TXN_ENTRY_BYTES};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, config()).unwrap().0
}

fn txn_batch(pid: i64, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(T0)
        .producer(pid, 0, 0)
        .transactional(true);
    for i in 0..records {
        b.push_record(Some(b"k"), Some(format!("v{i}").as_bytes()), &[], T0);
    }
    b.build()
}

fn marker(pid: i64, commit: bool) -> Vec<u8> {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    control_batch(pid, 0, kind, 0, T0)
}

/// Appends synchronously (write, complete): returns the base offset.
fn append(log: &mut PartitionLog, mut batch: Vec<u8>) -> i64 {
    let planned = log.plan_append(&mut batch, T0).unwrap();
    // SAFETY: `batch` is a live buffer of `batch.len()` bytes and the fd an open segment file.
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

fn roll(log: &mut PartitionLog) {
    log.roll().unwrap();
    flush(log);
}

/// Producer `pid` writes a transaction of `records` records and aborts it: the entry.
fn abort_txn(log: &mut PartitionLog, pid: i64, records: usize) -> AbortedTxn {
    let first = append(log, txn_batch(pid, records));
    let last = append(log, marker(pid, false));
    let txn = AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: last + 1,
    };
    log.record_aborted_txn(txn).unwrap();
    txn
}

fn txn_index_path(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn entries_are_recorded_searched_truncated_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert!(log.aborted_txns(0, i64::MAX).is_empty());
    assert!(
        !txn_index_path(dir.path(), 0).exists(),
        "created on the first entry"
    );
    let a = abort_txn(&mut log, 1, 3); // 0..=3
                                       // A committed transaction in between is not indexed.
    let c = append(&mut log, txn_batch(2, 1));
    append(&mut log, marker(2, true));
    let b = abort_txn(&mut log, 3, 2); // 6..=8
                                       // Interleaved: producer 4 begins, producer 5 begins and aborts, then producer 4 aborts.
    let first4 = append(&mut log, txn_batch(4, 1)); // 9
    let d = abort_txn(&mut log, 5, 1); // 10..=11
    let last4 = append(&mut log, marker(4, false)); // 12
    let e = AbortedTxn {
        producer_id: 4,
        first_offset: first4,
        last_offset: last4,
        last_stable_offset: last4 + 1,
    };
    log.record_aborted_txn(e).unwrap();
    assert_eq!(c, 4);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b, d, e]);
    assert_eq!(
        std::fs::metadata(txn_index_path(dir.path(), 0))
            .unwrap()
            .len(),
        4 * TXN_ENTRY_BYTES as u64
    );
    // [from, upper): marker at or after `from`, first offset below `upper`.
    assert_eq!(log.aborted_txns(4, 6), Vec::<AbortedTxn>::new());
    assert_eq!(log.aborted_txns(4, 7), vec![b]);
    assert_eq!(log.aborted_txns(3, 4), vec![a]);
    assert_eq!(
        log.aborted_txns(9, 10),
        vec![e],
        "begun before, aborted after"
    );
    assert_eq!(log.aborted_txns(9, 11), vec![d, e], "in marker order");
    assert_eq!(log.aborted_txns(13, 100), Vec::<AbortedTxn>::new());
    assert_eq!(
        log.aborted_txns(5, 5),
        Vec::<AbortedTxn>::new(),
        "empty range"
    );
    // Truncation at an offset drops the entries whose marker is at or after it.
    log.truncate_aborted_txns(11).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    assert_eq!(
        std::fs::metadata(txn_index_path(dir.path(), 0))
            .unwrap()
            .len(),
        2 * TXN_ENTRY_BYTES as u64
    );
    // Recorded again (producer-state recovery replays the log), then reopened.
    log.record_aborted_txn(d).unwrap();
    log.record_aborted_txn(e).unwrap();
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(report.truncated_txn_index_bytes, 0);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b, d, e]);
    // The file is Kafka's layout: version 0, then four big-endian i64s.
    let bytes = std::fs::read(txn_index_path(dir.path(), 0)).unwrap();
    assert_eq!(&bytes[..2], &[0, 0]);
    assert_eq!(&bytes[2..10], &1i64.to_be_bytes());
    assert_eq!(&bytes[10..18], &0i64.to_be_bytes());
    assert_eq!(&bytes[18..26], &3i64.to_be_bytes());
    assert_eq!(&bytes[26..34], &4i64.to_be_bytes());
}

#[test]
fn an_entry_is_in_its_markers_segment_and_found_from_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let first = append(&mut log, txn_batch(7, 2)); // 0, 1 in segment 0
    roll(&mut log);
    append(&mut log, txn_batch(8, 1)); // 2
    roll(&mut log);
    let last = append(&mut log, marker(7, false)); // 3 in segment 3
    let txn = AbortedTxn {
        producer_id: 7,
        first_offset: first,
        last_offset: last,
        last_stable_offset: 2,
    };
    log.record_aborted_txn(txn).unwrap();
    assert!(!txn_index_path(dir.path(), 0).exists());
    assert!(txn_index_path(dir.path(), 3).exists());
    assert_eq!(log.segments()[2].txn_index.entries(), &[txn]);
    for from in 0..=3 {
        assert_eq!(log.aborted_txns(from, from + 1), vec![txn], "from {from}");
    }
    assert!(log.aborted_txns(4, 5).is_empty());
    // A marker whose segment was sealed before its entry was recorded: the entry goes there.
    let first = append(&mut log, txn_batch(9, 1)); // 4
    let last = append(&mut log, marker(9, false)); // 5
    roll(&mut log);
    let late = AbortedTxn {
        producer_id: 9,
        first_offset: first,
        last_offset: last,
        last_stable_offset: 6,
    };
    log.record_aborted_txn(late).unwrap();
    assert_eq!(log.segments()[2].txn_index.entries(), &[txn, late]);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![txn, late]);
}

#[test]
#[should_panic(expected = "offset order")]
fn markers_may_not_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let a = abort_txn(&mut log, 1, 1);
    abort_txn(&mut log, 2, 1);
    log.record_aborted_txn(a).unwrap();
}

#[test]
fn recovery_cuts_a_torn_entry_and_the_entries_of_lost_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let a = abort_txn(&mut log, 1, 2); // 0..=2, sealed below
    roll(&mut log);
    let b = abort_txn(&mut log, 2, 1); // 3..=4
    let c = abort_txn(&mut log, 3, 1); // 5..=6, its marker is lost below
    assert_eq!(c.last_offset, 6);
    let active = txn_index_path(dir.path(), 3);
    let log_file = dir.path().join(format!("{:020}.log", 3));
    drop(log);
    // The crash tore the active segment's last batch (c's marker) and a later entry write.
    let len = std::fs::metadata(&log_file).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_file)
        .unwrap();
    f.set_len(len - 5).unwrap();
    let mut bytes = std::fs::read(&active).unwrap();
    bytes.extend_from_slice(&[0u8; 17]);
    std::fs::write(&active, &bytes).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(
        report.truncated_txn_index_bytes,
        TXN_ENTRY_BYTES as u64 + 17,
        "c's entry and the torn one"
    );
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    assert_eq!(
        std::fs::metadata(&active).unwrap().len(),
        TXN_ENTRY_BYTES as u64
    );
    // A damaged index never stops the log from opening: garbage is cut like a torn tail.
    drop(log);
    std::fs::write(&active, [0xabu8; 40]).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(report.truncated_txn_index_bytes, 40);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a]);
    // An index left without its segment is removed.
    drop(log);
    std::fs::write(txn_index_path(dir.path(), 999), a.encode()).unwrap();
    let log = open(dir.path());
    assert!(!txn_index_path(dir.path(), 999).exists());
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a]);
}

#[test]
fn retention_and_delete_records_take_the_index_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let retention = LogConfig {
        retention_ms: 1000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), retention).unwrap().0;
    for pid in 0..3 {
        abort_txn(&mut log, pid, 1);
        roll(&mut log);
    }
    let last = abort_txn(&mut log, 9, 1);
    assert_eq!(
        (0..4)
            .filter(|i| txn_index_path(dir.path(), i * 2).exists())
            .count(),
        4
    );
    // DeleteRecords past the first segment.
    log.delete_records_before(2).unwrap();
    corelog_engine::reaper::wait_idle();
    assert!(!names(dir.path())
        .iter()
        .any(|n| n.starts_with(&format!("{:020}.", 0))));
    assert_eq!(log.aborted_txns(0, i64::MAX).len(), 3);
    // Retention deletes the sealed ones (their records are from T0, long ago).
    let report = log.apply_retention(T0 + 10_000).unwrap();
    assert_eq!(report.deleted_segments, vec![2, 4]);
    corelog_engine::reaper::wait_idle();
    let left: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.contains("txnindex"))
        .collect();
    assert_eq!(left, vec![format!("{:020}.txnindex", 6)]);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![last]);
}

#[test]
fn a_flush_covers_the_index_and_the_recovery_point_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let first = append(&mut log, txn_batch(1, 1));
    let m = append(&mut log, marker(1, false));
    flush(&mut log);
    assert!(log.txn_index_durable_below(i64::MAX));
    // The marker is durable; its entry is recorded after: the next flush syncs the index
    // (and the directory, for the new file) though no data waits.
    log.record_aborted_txn(AbortedTxn {
        producer_id: 1,
        first_offset: first,
        last_offset: m,
        last_stable_offset: m + 1,
    })
    .unwrap();
    assert!(
        log.txn_index_durable_below(m),
        "entries below the marker: none"
    );
    assert!(!log.txn_index_durable_below(m + 1));
    let plan = log.begin_flush().expect("the index needs a flush");
    let paths: Vec<_> = plan.files.iter().map(|f| f.path().to_path_buf()).collect();
    assert!(paths.contains(&txn_index_path(dir.path(), 0)), "{paths:?}");
    assert!(paths.contains(&dir.path().to_path_buf()), "{paths:?}");
    log.end_flush(&plan).unwrap();
    assert!(log.txn_index_durable_below(i64::MAX));
    assert!(log.begin_flush().is_none());
    // An entry recorded while a flush is in flight, in the segment that the flush seals: the
    // recovery point stays before it until a flush covers the entry.
    let first = append(&mut log, txn_batch(2, 1));
    let m = append(&mut log, marker(2, false));
    log.roll().unwrap();
    let in_flight = log.begin_flush().unwrap();
    log.record_aborted_txn(AbortedTxn {
        producer_id: 2,
        first_offset: first,
        last_offset: m,
        last_stable_offset: m + 1,
    })
    .unwrap();
    log.end_flush(&in_flight).unwrap();
    assert!(
        log.sealed_segments_await_flush(),
        "the sealed segment's entry is not durable yet"
    );
    flush(&mut log);
    assert!(!log.sealed_segments_await_flush());
    assert!(log.txn_index_durable_below(i64::MAX));
}

#[test]
fn wait_durable_covers_the_entry_and_topic_deletion_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage.open_partition("t", 0, config()).unwrap();
        let first = p
            .append(txn_batch(3, 2), AckPoint::Durable)
            .await
            .unwrap()
            .base_offset;
        // The marker at Written, its entry, then durability of both.
        let m = p
            .append(marker(3, false), AckPoint::Written)
            .await
            .unwrap()
            .base_offset;
        p.record_aborted_txn(AbortedTxn {
            producer_id: 3,
            first_offset: first,
            last_offset: m,
            last_stable_offset: m + 1,
        })
        .unwrap();
        p.wait_durable(m + 1).await.unwrap();
        assert!(p.log().durable_offset() > m);
        assert!(p.log().txn_index_durable_below(m + 1));
        assert_eq!(p.aborted_txns(0, m), vec![p.aborted_txns(0, i64::MAX)[0]]);
        let pdir = p.log().dir().to_path_buf();
        assert!(txn_index_path(&pdir, 0).exists());
        drop(p);
        assert!(storage.delete_partition("t", 0).unwrap());
        corelog_engine::reaper::wait_idle();
        assert!(!pdir.exists());
        assert!(!names(dir.path()).iter().any(|n| n.starts_with("t-0")));
    });
}

#[test]
fn a_bounded_read_stops_before_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let small = LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let (p, _) = storage.open_partition("t", 0, small).unwrap();
        // Batches of two records: [0,2) [2,4) ... over several segments.
        let mut stored = Vec::new();
        for _ in 0..30 {
            let b = txn_batch(1, 2);
            let info = p.append(b.clone(), AckPoint::Written).await.unwrap();
            stored.push((info.base_offset, at_offset(b, info.base_offset)));
        }
        let hw = p.log().high_watermark();
        assert_eq!(hw, 60);
        let segs: Vec<i64> = p.log().segments().iter().map(|s| s.base_offset).collect();
        assert!(segs.len() >= 3, "{segs:?}");
        let bytes_between = |from: i64, to: i64| -> Vec<u8> {
            stored
                .iter()
                .filter(|(b, _)| *b >= from && *b < to)
                .flat_map(|(_, v)| v.clone())
                .collect()
        };
        // `read` reports the high watermark as its bound.
        let s = p.read(0, u32::MAX, true).await.unwrap();
        assert_eq!(s.upper_offset, hw);
        // A bound inside the first segment: whole batches below it, from any offset before it.
        let seg1 = segs[1];
        let bound = seg1 - 4;
        for from in [0, 1, 2, bound - 1] {
            let s = p.read_bounded(from, u32::MAX, true, bound).await.unwrap();
            assert_eq!(s.upper_offset, bound);
            assert_eq!(s.high_watermark, hw);
            let range = s.range.expect("batches below the bound");
            let got = read_range(&range);
            let first_base = from - from % 2;
            assert_eq!(got, bytes_between(first_base, bound), "from {from}");
            assert!(batches(&got).iter().all(|h| h.last_offset() < bound));
        }
        // At or past the bound (below the high watermark): nothing, and no error.
        for from in [bound, bound + 1, hw - 1, hw] {
            let s = p.read_bounded(from, u32::MAX, true, bound).await.unwrap();
            assert!(s.range.is_none(), "from {from}");
            assert_eq!(s.upper_offset, bound);
        }
        // Out of range is still out of range.
        assert!(matches!(
            p.read_bounded(hw + 1, u32::MAX, true, bound).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        // A bound in a later segment does not cut this one; a bound above the high watermark
        // is lowered to it.
        let s = p
            .read_bounded(0, u32::MAX, true, segs[2] + 2)
            .await
            .unwrap();
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(0, seg1));
        let s = p
            .read_bounded(seg1, u32::MAX, true, i64::MAX)
            .await
            .unwrap();
        assert_eq!(s.upper_offset, hw);
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(seg1, segs[2]));
        // The bound at a segment's base: the segment before is read whole, the one at it not.
        let s = p.read_bounded(0, u32::MAX, true, seg1).await.unwrap();
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(0, seg1));
        assert!(p
            .read_bounded(seg1, u32::MAX, true, seg1)
            .await
            .unwrap()
            .range
            .is_none());
        // max_bytes still applies below the bound, and min_one_batch gives one batch.
        let one = stored[0].1.len() as u32;
        let s = p.read_bounded(0, one * 2, true, bound).await.unwrap();
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(0, 4));
        let s = p.read_bounded(0, 1, true, bound).await.unwrap();
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(0, 2));
        assert!(p
            .read_bounded(0, 1, false, bound)
            .await
            .unwrap()
            .range
            .is_none());
        // The last stable offset of an open transaction in the active segment.
        let active = *segs.last().unwrap();
        let s = p
            .read_bounded(active, u32::MAX, true, hw - 2)
            .await
            .unwrap();
        assert_eq!(read_range(&s.range.unwrap()), bytes_between(active, hw - 2));
    });
}

#[test]
fn an_abort_is_recorded_while_an_earlier_write_is_still_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let first = append(&mut log, txn_batch(1, 1)); // 0
                                                   // A data batch of another producer is planned (offset 1) but its write has not ended...
    let mut data = txn_batch(2, 1);
    let pending = log.plan_append(&mut data, T0).unwrap();
    // ...when the abort marker's write (offset 2) ends.
    let m = append(&mut log, marker(1, false));
    assert_eq!((pending.info.base_offset, m), (1, 2));
    assert_eq!(
        log.log_end_offset(),
        1,
        "the written mark waits for offset 1"
    );
    let txn = AbortedTxn {
        producer_id: 1,
        first_offset: first,
        last_offset: m,
        last_stable_offset: 1,
    };
    log.record_aborted_txn(txn).unwrap();
    assert_eq!(log.aborted_txns(0, 1), vec![txn]);
    // SAFETY: `data` is a live buffer and the fd an open segment file.
    let n = unsafe {
        libc::pwrite(
            pending.file.raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            pending.position as libc::off_t,
        )
    };
    assert_eq!(n, data.len() as isize);
    log.complete_write(pending.ticket(), Instant::now());
    assert_eq!(log.log_end_offset(), 3);
    flush(&mut log);
    assert!(log.txn_index_durable_below(i64::MAX));
    drop(log);
    assert_eq!(open(dir.path()).aborted_txns(0, i64::MAX), vec![txn]);
}
