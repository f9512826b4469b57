//! Kill -9 under load: every batch acknowledged as durable survives, byte for byte, and the log
//! reads cleanly after each restart.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{batches, read_range};
use corelog_engine::batch::validate_batch;
use corelog_engine::log::LogConfig;
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;

const PARTITIONS: u32 = 4;
/// Rounds of start → load → SIGKILL → verify. CORELOG_CRASH_ROUNDS raises it for soak runs.
const DEFAULT_ROUNDS: u32 = 25;

/// (partition, base offset) → (bytes, crc32c) of every acknowledged batch.
type Acked = HashMap<(u32, i64), (usize, u32)>;

#[test]
fn acknowledged_batches_survive_sigkill() {
    let rounds: u32 = std::env::var("CORELOG_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut acked: Acked = HashMap::new();
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(30 + rng % 400);
        let new = run_child_and_kill(dir.path(), run_for);
        assert!(
            !new.is_empty() || round > 0,
            "the child acknowledged nothing"
        );
        eprintln!(
            "round {round}: killed after {run_for:?}, {} new acks, {} in all",
            new.len(),
            acked.len() + new.len()
        );
        for (key, value) in new {
            assert!(
                acked.insert(key, value).is_none(),
                "offset {key:?} acknowledged twice"
            );
        }
        verify(dir.path(), &acked);
    }
    assert!(
        acked.len() > 100,
        "too little load to mean anything: {} acks",
        acked.len()
    );
}

/// Runs the stress child until `run_for` after its first ack, kills it with SIGKILL and returns
/// the acks it printed (whole lines only).
fn run_child_and_kill(dir: &std::path::Path, run_for: Duration) -> Acked {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog-engine-stress"))
        .arg(dir)
        .arg(PARTITIONS.to_string())
        .arg("4")
        .arg("60")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child");
    let stdout = child.stdout.take().unwrap();
    let acks = Arc::new(Mutex::new(Acked::new()));
    let first_ack = Arc::new(Mutex::new(None::<Instant>));
    let reader = {
        let (acks, first_ack) = (acks.clone(), first_ack.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() != 5 || f[0] != "ACK" {
                    continue;
                }
                let key = (f[1].parse().unwrap(), f[2].parse().unwrap());
                acks.lock()
                    .unwrap()
                    .insert(key, (f[3].parse().unwrap(), f[4].parse().unwrap()));
                first_ack.lock().unwrap().get_or_insert_with(Instant::now);
            }
        })
    };
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let first = *first_ack.lock().unwrap();
        if first.is_some_and(|t| t.elapsed() >= run_for)
            || started.elapsed() > Duration::from_secs(20)
        {
            break;
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    reader.join().unwrap();
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    acks
}

/// Recovers the log in-process and checks every ack and the whole log.
fn verify(dir: &std::path::Path, acked: &Acked) {
    runtime::block_on(async {
        let storage = ShardStorage::new(dir).unwrap();
        let config = LogConfig {
            segment_bytes: 256 * 1024,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        for p in 0..PARTITIONS {
            let (partition, _report) = storage.open_partition("stress", p, config.clone()).unwrap();
            // The whole log reads cleanly: valid batches with contiguous offsets.
            let mut offset = partition.log().log_start_offset();
            let end = partition.log().high_watermark();
            while offset < end {
                let slice = partition.read(offset, 1 << 20, true).await.unwrap();
                let Some(range) = slice.range.as_ref() else {
                    let segs: Vec<_> = partition
                        .log()
                        .segments()
                        .iter()
                        .map(|s| (s.base_offset, s.size, s.next_offset))
                        .collect();
                    panic!("partition {p}: nothing read at {offset} below the high watermark {end}; segments {segs:?}");
                };
                let bytes = read_range(range);
                for h in batches(&bytes) {
                    assert_eq!(h.base_offset, offset, "offsets are contiguous");
                    offset = h.next_offset();
                }
            }
            // Every acknowledged batch is there, byte-identical.
            for (&(ap, base), &(len, crc)) in acked.iter().filter(|((ap, _), _)| *ap == p) {
                assert!(base < end, "acked batch {ap}/{base} lost (log end {end})");
                let slice = partition.read(base, 1, true).await.unwrap();
                let bytes = read_range(slice.range.as_ref().unwrap());
                let h = validate_batch(&bytes).unwrap();
                assert_eq!(
                    h.base_offset, base,
                    "acked batch {ap}/{base} starts a batch"
                );
                assert_eq!(bytes.len(), len);
                assert_eq!(
                    crc32c::crc32c(&bytes),
                    crc,
                    "acked batch {ap}/{base} is byte-identical"
                );
            }
        }
    });
}
