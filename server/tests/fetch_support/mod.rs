//! Helpers for the fetch/list-offsets integration tests: a data directory pre-populated through
//! the storage engine (Produce is not there yet), the real `corelog` binary started on a free
//! loopback port, and a minimal Kafka client built on kafka-protocol's client side.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use corelog_engine::batch::{set_base_offset, BatchBuilder};
use corelog_engine::log::LogConfig;
use corelog_engine::partition::AckPoint;
use corelog_engine::runtime::{ShardConfig, ShardSet};
use corelog_engine::storage::ShardStorage;

/// How long the broker may take to start listening, in seconds.
const START_TIMEOUT_SECS: u64 = 20;
/// How long the broker may take to stop after SIGTERM, in seconds.
const STOP_TIMEOUT_SECS: u64 = 20;
/// Socket read timeout of the test client, in seconds.
const CLIENT_TIMEOUT_SECS: u64 = 30;

/// A batch of records `(timestamp_ms, value)`.
pub fn batch(records: &[(i64, &[u8])]) -> Vec<u8> {
    let mut b = BatchBuilder::new(records[0].0);
    for (i, (ts, value)) in records.iter().enumerate() {
        let key = format!("k{i}");
        b.push_record(Some(key.as_bytes()), Some(value), &[], *ts);
    }
    b.build()
}

/// What a partition holds after [`populate`]: each batch as stored (base offset assigned) and
/// the offset after the last record.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub batches: Vec<(i64, Vec<u8>)>,
    pub end_offset: i64,
}

impl Stored {
    /// The stored bytes of batches `from..to` back to back.
    pub fn bytes(&self, from: usize, to: usize) -> Vec<u8> {
        self.batches[from..to]
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<u8> {
        self.bytes(0, self.batches.len())
    }
}

pub const TOPIC_ID: &str = "5f2b8c1e-3d4a-4b6c-9e8f-0a1b2c3d4e5f";

/// Registers `topic` with `partitions.len()` partitions in `dir` and appends each partition's
/// batches through the engine, as the broker will find them at start-up.
pub fn populate(dir: &Path, topic: &str, partitions: Vec<Vec<Vec<u8>>>) -> Vec<Stored> {
    let json = format!(
        "[{{\"name\":\"{topic}\",\"id\":\"{TOPIC_ID}\",\"partitions\":{},\"configs\":{{}}}}]",
        partitions.len()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("corelog-topics.json"), json).unwrap();
    let shards = ShardSet::new(ShardConfig {
        count: 1,
        pin_to_cores: false,
    })
    .unwrap();
    let dir_owned: PathBuf = dir.to_path_buf();
    let topic_owned = topic.to_string();
    let stored = shards
        .spawn_on(0, move || async move {
            let storage = ShardStorage::new(&dir_owned).unwrap();
            let mut out = Vec::new();
            for (p, batches) in partitions.into_iter().enumerate() {
                let (part, _) = storage
                    .open_partition(&topic_owned, p as u32, LogConfig::default())
                    .unwrap();
                let mut s = Stored::default();
                for b in batches {
                    let info = part.append(b.clone(), AckPoint::Durable).await.unwrap();
                    let mut b = b;
                    set_base_offset(&mut b, info.base_offset).unwrap();
                    s.batches.push((info.base_offset, b));
                    s.end_offset = info.last_offset + 1;
                }
                out.push(s);
            }
            storage.flush_all().await;
            storage.quiesce().await;
            out
        })
        .wait();
    shards.shutdown();
    stored
}

/// A running `corelog serve`.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    log_path: PathBuf,
}

impl Broker {
    pub fn start(dir: &Path, extra: &[&str]) -> Broker {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log_path = dir.join("broker.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--set")
            .arg(format!("log.dirs={}", dir.display()))
            .arg("--set")
            .arg("corelog.shards=2");
        for e in extra {
            cmd.arg("--set").arg(e);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let b = Broker {
            child: Some(child),
            port,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_SECS);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not start: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log_path).unwrap_or_default())
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// SIGTERM, wait for a clean exit, return the log.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(STOP_TIMEOUT_SECS);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "broker exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "broker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `key=N` on the last log line containing `marker`.
pub fn log_counter(log: &str, marker: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line in log:\n{log}"));
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 1..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// A blocking Kafka client connection.
pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(CLIENT_TIMEOUT_SECS)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Sends `body` as API `key` at `version`, returns the decoded response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let mut raw = self.call_raw(key, version, body);
        Resp::decode(&mut raw, version).unwrap()
    }

    /// Sends a request and returns the response body bytes (after the response header).
    pub fn call_raw<Req: Encodable>(&mut self, key: ApiKey, version: i16, body: &Req) -> Bytes {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("fetch-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut framed = BytesMut::with_capacity(4 + buf.len());
        framed.put_i32(buf.len() as i32);
        framed.put_slice(&buf);
        self.stream.write_all(&framed).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut resp = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut resp).unwrap();
        let mut resp = Bytes::from(resp);
        let h = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
        assert_eq!(h.correlation_id, self.correlation);
        let _ = resp.remaining();
        resp
    }
}
