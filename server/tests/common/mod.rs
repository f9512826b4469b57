//! Shared harness of the broker's integration tests: start and stop the real `corelog` binary on
//! a free loopback port with its own data directory, and speak the Kafka protocol to it as a
//! client (kafka-protocol's encoders for requests, decoders for responses).

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{MetadataRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// How long a started broker may take to accept connections (the test machine is shared).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for one response.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `corelog serve`.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    settings: Vec<String>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

impl Broker {
    /// Starts a broker on `dir` with extra `key=value` settings (Kafka names).
    pub fn start(dir: &Path, settings: &[&str]) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--set")
            .arg(format!("log.dirs={}", self.dir.display()));
        for s in &self.settings {
            cmd.arg("--set").arg(s);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        self.child = Some(cmd.spawn().expect("start corelog"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("corelog exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "corelog did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    fn signal(&mut self, signal: i32) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped, so the pid
        // cannot have been reused by another process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if signal == libc::SIGTERM {
                    assert!(status.success(), "corelog stopped with {status}");
                }
                self.wait_for_listener_gone(deadline);
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("corelog did not stop within {STOP_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits until nothing accepts on the port any more. The kernel tears a dead process's
    /// io_uring down asynchronously, and a multishot accept keeps the listening socket open
    /// until then: a broker restarted at once on the same SO_REUSEPORT port would share
    /// connections with that dying socket, which resets them when it finally closes.
    fn wait_for_listener_gone(&self, deadline: Instant) {
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the dead broker's listener lingers"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Graceful shutdown (SIGTERM): the broker flushes and snapshots.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// A crash (SIGKILL): nothing runs at exit.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// Starts the broker again on the same directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker first");
        self.launch();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A topic to write into the registry: name, partition count, configs (Kafka names).
pub type TopicSpec<'a> = (&'a str, u32, &'a [(&'a str, &'a str)]);

/// Writes the broker's topic registry before it starts, so tests can have topics with configs
/// (no CreateTopics yet).
pub fn write_topics(dir: &Path, topics: &[TopicSpec]) {
    std::fs::create_dir_all(dir).unwrap();
    let list: Vec<serde_json::Value> = topics
        .iter()
        .map(|(name, partitions, configs)| {
            let configs: BTreeMap<&str, &str> = configs.iter().copied().collect();
            serde_json::json!({
                "name": name,
                "id": uuid::Uuid::new_v4(),
                "partitions": partitions,
                "configs": configs,
            })
        })
        .collect();
    std::fs::write(
        dir.join("corelog-topics.json"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
}

/// One client connection.
pub struct Client {
    stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to corelog");
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends a request at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        let mut body = BytesMut::new();
        request.encode(&mut body, version).unwrap();
        self.send_raw(R::KEY, version, R::header_version(version), &body)
    }

    /// Sends an already-encoded request body under a request header of `header_version`.
    pub fn send_raw(
        &mut self,
        api_key: i16,
        version: i16,
        header_version: i16,
        request_body: &[u8],
    ) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("corelog-tests")));
        let mut body = BytesMut::new();
        header.encode(&mut body, header_version).unwrap();
        body.put_slice(request_body);
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).expect("send request");
        correlation_id
    }

    /// Reads one response frame and decodes it as `R`'s response at `version`, checking the
    /// correlation id.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).expect("response body");
        let mut buf = Bytes::from(frame);
        let header =
            ResponseHeader::decode(&mut buf, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let response = R::Response::decode(&mut buf, version).expect("decode response");
        assert_eq!(buf.remaining(), 0, "bytes left after the response");
        response
    }

    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let c = self.send(version, request);
        self.receive::<R>(version, c)
    }

    /// Whether the broker closed the connection (EOF or reset) within `wait`.
    pub fn is_closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            ),
        };
        self.stream
            .set_read_timeout(Some(RESPONSE_TIMEOUT))
            .unwrap();
        closed
    }

    /// Metadata for `topic` (auto-creating it); returns its partition count.
    pub fn ensure_topic(&mut self, topic: &str) -> usize {
        let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
        t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![t]);
        request.allow_auto_topic_creation = true;
        let response = self.call(9, &request);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, 0, "metadata for {topic}");
        response.topics[0].partitions.len()
    }
}

/// The headers of every batch in a partition's log, read with the engine after the broker
/// stopped.
pub fn log_batches(
    dir: &Path,
    topic: &str,
    partition: u32,
) -> Vec<corelog_engine::batch::BatchHeader> {
    use corelog_engine::log::LogConfig;
    use corelog_engine::storage::ShardStorage;
    corelog_engine::runtime::block_on(async {
        let storage = ShardStorage::new(dir).unwrap();
        let (p, _) = storage
            .open_partition(topic, partition, LogConfig::default())
            .unwrap();
        let mut out = Vec::new();
        p.log().for_each_batch_header(0, |h| out.push(*h)).unwrap();
        out
    })
}
