//! Harness for the admin API tests: start the real `corelog` binary on a free loopback port with
//! a fresh data directory, run Kafka's own CLI tools against it (installing them first), and
//! speak the raw protocol with `kafka-protocol`'s client side.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The workspace root (scripts live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Installs Kafka's CLI tools if missing (idempotent; fast when already installed).
pub fn install_tools() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let status = Command::new("bash")
            .arg("scripts/install-interop.sh")
            .arg("--quiet")
            .current_dir(repo_root())
            .status()
            .expect("run scripts/install-interop.sh");
        assert!(status.success(), "scripts/install-interop.sh failed");
    });
}

/// A running `corelog serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Broker {
    pub fn start(extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Broker {
            port: 0,
            dir,
            child: None,
        };
        b.launch(extra);
        b
    }

    /// The broker's data directory (`log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self, extra: &[&str]) {
        self.port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--set")
            .arg(format!("log.dirs={}", self.data_dir().display()))
            .arg("--set")
            .arg("corelog.shards=2");
        for kv in extra {
            cmd.arg("--set").arg(kv);
        }
        let log = std::fs::File::create(self.dir.path().join("corelog.log")).expect("log file");
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("start corelog"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "corelog did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker gracefully (SIGTERM, as an operator would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops and starts again on the same data directory (a new port).
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        self.launch(extra);
    }

    /// Runs a Kafka CLI tool (`TopicCommand`, `kafka-configs`, ...) with `--bootstrap-server`.
    pub fn tool(&self, tool: &str, args: &[&str]) -> ToolOutput {
        install_tools();
        let out: Output = Command::new("bash")
            .arg("scripts/kafka-tool.sh")
            .arg(tool)
            .arg("--bootstrap-server")
            .arg(self.bootstrap())
            .args(args)
            .current_dir(repo_root())
            .output()
            .expect("run scripts/kafka-tool.sh");
        ToolOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
pub struct ToolOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// Asserts the tool exited 0 and returns its stdout.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stdout, self.stderr);
        self.stdout
    }
}

/// A raw Kafka protocol connection.
pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Sends `request` at `version` and decodes the response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("admin-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("send");
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("response size");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).expect("response body");
        let mut bytes = bytes::Bytes::from(buf);
        let rh = ResponseHeader::decode(
            &mut bytes,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("response header");
        assert_eq!(rh.correlation_id, self.correlation);
        let response = R::Response::decode(&mut bytes, version).expect("decode response");
        assert_eq!(bytes.remaining(), 0, "response has trailing bytes");
        response
    }
}
