//! Harness of the interop suite (`tests/interop.rs`): a real `corelog` process on a free loopback
//! port with a throwaway data dir, or an already-running broker named by
//! `CORELOG_INTEROP_BOOTSTRAP=HOST:PORT` (how the suite itself is checked against the reference
//! Apache Kafka: `scripts/kafka-reference.sh start`, then
//! `CORELOG_INTEROP_BOOTSTRAP=127.0.0.1:19092 cargo test --release -p corelog-server --test interop`).
//!
//! The independent clients (kcat, the Kafka Java client, confluent-kafka) come from
//! `scripts/install-interop.sh`; a missing one fails its test with a message saying so, it never
//! skips it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The environment variable naming an already-running broker to test instead of a fresh corelog.
pub const BOOTSTRAP_ENV: &str = "CORELOG_INTEROP_BOOTSTRAP";

/// How long a started corelog may take to answer ApiVersions.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long corelog may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root (the workspace, one up from this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// A broker under test: a corelog process this harness started, or an external one.
pub struct Broker {
    addr: SocketAddr,
    process: Option<Process>,
}

struct Process {
    child: Child,
    _data_dir: tempfile::TempDir,
    log_path: PathBuf,
    /// The full `corelog` command line, kept so that [`Broker::restart`] starts the same broker
    /// (same data dir, port and properties).
    args: Vec<String>,
}

impl Broker {
    /// The broker named by `CORELOG_INTEROP_BOOTSTRAP`, or a fresh corelog process.
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    /// Like [`Broker::start`], with extra `--set KEY=VALUE` properties for a started corelog
    /// (ignored for an external broker).
    pub fn start_with(props: &[(&str, &str)]) -> Broker {
        if let Ok(bootstrap) = std::env::var(BOOTSTRAP_ENV) {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(bootstrap.trim())
                .unwrap_or_else(|e| panic!("{BOOTSTRAP_ENV}={bootstrap:?}: {e}"))
                .next()
                .unwrap_or_else(|| panic!("{BOOTSTRAP_ENV}={bootstrap:?}: no address"));
            let broker = Broker {
                addr,
                process: None,
            };
            broker.wait_until_answering(Duration::from_secs(10));
            return broker;
        }
        let data_dir = tempfile::Builder::new()
            .prefix("corelog-interop-")
            .tempdir()
            .expect("temp data dir");
        let log_path = data_dir.path().join("corelog.log");
        let port = free_port();
        let mut args = vec![
            "serve".to_string(),
            "--set".to_string(),
            format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            "--set".to_string(),
            format!("log.dirs={}", data_dir.path().join("data").display()),
        ];
        for (k, v) in props {
            args.push("--set".to_string());
            args.push(format!("{k}={v}"));
        }
        let child = spawn_corelog(&args, &log_path);
        let broker = Broker {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            process: Some(Process {
                child,
                _data_dir: data_dir,
                log_path,
                args,
            }),
        };
        broker.wait_until_answering(START_TIMEOUT);
        broker
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `HOST:PORT`, what every client takes as bootstrap.servers.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Whether this is a corelog process the harness started (false: an external broker).
    pub fn is_spawned(&self) -> bool {
        self.process.is_some()
    }

    /// The data directory (`log.dirs`) of a started corelog; `None` for an external broker.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.process
            .as_ref()
            .map(|p| p._data_dir.path().join("data"))
    }

    /// The broker's log so far (empty for an external broker).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .and_then(|p| std::fs::read_to_string(&p.log_path).ok())
            .unwrap_or_default()
    }

    /// Panics (with the broker's log) if a started corelog is no longer running.
    pub fn assert_alive(&mut self) {
        if let Some(p) = self.process.as_mut() {
            if let Some(status) = p.child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&p.log_path).unwrap_or_default();
                panic!("corelog exited ({status}) while under test; its log:\n{log}");
            }
        }
    }

    /// Blocks until the broker answers an ApiVersions request.
    fn wait_until_answering(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last_err = String::new();
        while Instant::now() < deadline {
            if let Some(p) = &self.process {
                // Not try_wait on a shared ref: check through /proc instead of reaping.
                let pid = p.child.id();
                if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
                    let log = std::fs::read_to_string(&p.log_path).unwrap_or_default();
                    panic!("corelog exited during start-up; its log:\n{log}");
                }
            }
            match api_versions_ok(self.addr) {
                Ok(()) => return,
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "broker at {} did not answer ApiVersions within {timeout:?}: {last_err}\n{}",
            self.addr,
            self.log()
        );
    }

    /// Stops a started corelog with SIGTERM and asserts a graceful exit (status 0); nothing for
    /// an external broker. Call at the end of every test that started one.
    pub fn stop(mut self) {
        let Some(mut p) = self.process.take() else {
            return;
        };
        if let Some(status) = p.child.try_wait().expect("try_wait") {
            let log = std::fs::read_to_string(&p.log_path).unwrap_or_default();
            panic!("corelog had already exited ({status}) before SIGTERM; its log:\n{log}");
        }
        // SAFETY: kill(2) on the pid of a child this process has not reaped yet.
        let rc = unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
        let status = wait_timeout(&mut p.child, STOP_TIMEOUT);
        let log = std::fs::read_to_string(&p.log_path).unwrap_or_default();
        match status {
            Some(status) => assert!(
                status.success(),
                "corelog did not exit 0 after SIGTERM ({status}); its log:\n{log}"
            ),
            None => {
                let _ = p.child.kill();
                let _ = p.child.wait();
                panic!("corelog did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{log}");
            }
        }
    }

    /// Stops a started corelog gracefully (SIGTERM, exit 0 asserted) and starts it again on the
    /// same data dir, port and properties. Panics for an external broker.
    pub fn restart(&mut self) {
        self.respawn_after(libc::SIGTERM);
    }

    /// Like [`Broker::restart`], but kills the process with SIGKILL first: nothing runs at exit,
    /// so what the restarted broker still knows is what it had made durable.
    pub fn kill_and_restart(&mut self) {
        self.respawn_after(libc::SIGKILL);
    }

    fn respawn_after(&mut self, signal: libc::c_int) {
        let p = self
            .process
            .as_mut()
            .expect("restart needs a corelog started by the harness");
        assert!(
            p.child.try_wait().expect("try_wait").is_none(),
            "corelog had already exited before the restart; its log:\n{}",
            std::fs::read_to_string(&p.log_path).unwrap_or_default()
        );
        // SAFETY: kill(2) on the pid of a child this process has not reaped yet.
        let rc = unsafe { libc::kill(p.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal}): {}", std::io::Error::last_os_error());
        let status = wait_timeout(&mut p.child, STOP_TIMEOUT).unwrap_or_else(|| {
            panic!("corelog did not exit within {STOP_TIMEOUT:?} of signal {signal}")
        });
        if signal == libc::SIGTERM {
            assert!(
                status.success(),
                "corelog did not exit 0 after SIGTERM ({status}); its log:\n{}",
                std::fs::read_to_string(&p.log_path).unwrap_or_default()
            );
        }
        // A dead process's io_uring is torn down asynchronously and its multishot accept keeps
        // the listening socket open until then; a new broker on the same SO_REUSEPORT port would
        // share connections with that dying socket, so wait until nothing accepts any more.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the dead broker's listener lingers"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        p.child = spawn_corelog(&p.args, &p.log_path);
        self.wait_until_answering(START_TIMEOUT);
    }
}

/// Starts `corelog` with `args`, appending its output to `log_path`.
fn spawn_corelog(args: &[String], log_path: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("CORELOG_INTEROP_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn corelog")
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Reached with a process only when a test failed before stop(): do not leave it running.
        if let Some(p) = self.process.as_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&p.log_path).unwrap_or_default();
                eprintln!("---- corelog log ----\n{log}---- end of corelog log ----");
            }
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A topic name unique to this test process and call, so that runs against a long-lived broker
/// never see each other's data.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long creating a topic and seeing all its partitions led may take.
const TOPIC_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates `topic` with `partitions` partitions (CreateTopics) and waits until every partition
/// has a leader in the metadata.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("rdkafka admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(TOPIC_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("CreateTopics {name}: {code:?}");
        }
    }
    let deadline = Instant::now() + TOPIC_TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(10));
        let ready = md.as_ref().ok().and_then(|md| {
            md.topics().iter().find(|t| t.name() == topic).map(|t| {
                t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            })
        });
        if ready == Some(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} not ready (all partitions led) within {TOPIC_TIMEOUT:?}: {:?}",
            md.map(|m| m
                .topics()
                .iter()
                .map(|t| (t.name().to_string(), t.error(), t.partitions().len()))
                .collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw wire helpers (independent of the broker's own protocol crate).
// ---------------------------------------------------------------------------------------------

/// An ApiVersions v3 request frame (request header v2, flexible body), size prefix included.
pub fn api_versions_v3_frame(correlation_id: i32) -> Vec<u8> {
    api_versions_frame(3, correlation_id)
}

/// An ApiVersions request frame at `version` in the v3 (flexible) layout, which is what a client
/// newer than the broker sends (KIP-511).
pub fn api_versions_frame(version: i16, correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key ApiVersions
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    let client_id = b"corelog-interop";
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.push(0); // header tagged fields
    for s in [&b"corelog-interop"[..], &b"1.0"[..]] {
        body.push(s.len() as u8 + 1); // compact string: uvarint(len + 1)
        body.extend_from_slice(s);
    }
    body.push(0); // body tagged fields
    frame(&body)
}

/// `size | payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one response frame (without its size prefix). `Ok(None)`: the broker closed the
/// connection (EOF or reset) before a whole frame arrived.
pub fn read_frame(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, String> {
    let mut size = [0u8; 4];
    if !read_exact_or_closed(stream, &mut size)? {
        return Ok(None);
    }
    let size = i32::from_be_bytes(size);
    if !(4..=64 << 20).contains(&size) {
        return Err(format!("response frame size {size}"));
    }
    let mut buf = vec![0u8; size as usize];
    match read_exact_or_closed(stream, &mut buf)? {
        false => Ok(None),
        true => Ok(Some(buf)),
    }
}

fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8]) -> Result<bool, String> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(true)
}

/// Parsed fields of an ApiVersions response.
#[derive(Debug)]
pub struct ApiVersionsAnswer {
    pub correlation_id: i32,
    pub error_code: i16,
    /// (api key, min version, max version)
    pub keys: Vec<(i16, i16, i16)>,
}

/// Parses an ApiVersions response frame: header v0 (correlation id only, always, KIP-511), body
/// in the v0 layout (`flexible == false`) or the v3+ layout.
pub fn parse_api_versions(frame: &[u8], flexible: bool) -> Result<ApiVersionsAnswer, String> {
    let mut r = Reader(frame);
    let correlation_id = r.i32()?;
    let error_code = r.i16()?;
    let n = if flexible {
        r.uvarint()? as i64 - 1
    } else {
        r.i32()? as i64
    };
    if !(0..=10_000).contains(&n) {
        return Err(format!("api key count {n}"));
    }
    let mut keys = Vec::new();
    for _ in 0..n {
        let k = (r.i16()?, r.i16()?, r.i16()?);
        if flexible {
            r.skip_tagged()?;
        }
        keys.push(k);
    }
    Ok(ApiVersionsAnswer {
        correlation_id,
        error_code,
        keys,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("response truncated: wanted {n} more bytes"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn uvarint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn skip_tagged(&mut self) -> Result<(), String> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let len = self.uvarint()? as usize;
            self.take(len)?;
        }
        Ok(())
    }
}

/// Connects with read/write timeouts set.
pub fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One ApiVersions v3 exchange on a fresh connection; Ok if it answers without error and lists
/// ApiVersions itself.
pub fn api_versions_ok(addr: SocketAddr) -> Result<(), String> {
    let mut s = connect(addr)?;
    s.write_all(&api_versions_v3_frame(7))
        .map_err(|e| format!("write: {e}"))?;
    let frame = read_frame(&mut s)?.ok_or("connection closed instead of an answer")?;
    let a = parse_api_versions(&frame, true)?;
    if a.correlation_id != 7 || a.error_code != 0 || !a.keys.iter().any(|k| k.0 == 18) {
        return Err(format!("unexpected ApiVersions answer {a:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// External tools.
// ---------------------------------------------------------------------------------------------

const INSTALL_HINT: &str = "install the interop tools with `bash scripts/install-interop.sh` \
     (scripts/test.sh does this before cargo test)";

/// The venv python with confluent-kafka.
pub fn python() -> PathBuf {
    let p = repo_root().join(".cache/venv/bin/python");
    assert!(p.exists(), "{} is missing: {INSTALL_HINT}", p.display());
    p
}

/// The Kafka 4.x Java client jars directory (`.cache/kafka-tools/lib`).
pub fn kafka_client_lib() -> PathBuf {
    let p = repo_root().join(".cache/kafka-tools/lib");
    let has_client = std::fs::read_dir(&p)
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kafka-clients-")
            })
        })
        .unwrap_or(false);
    assert!(
        has_client,
        "no kafka-clients jar in {}: {INSTALL_HINT}",
        p.display()
    );
    p
}

/// Asserts that `program` can be run from PATH.
pub fn require_on_path(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "`{program}` is not on PATH: {INSTALL_HINT}");
}

/// Runs a command with a wall-clock limit (coreutils `timeout`), feeding `stdin`, and returns
/// its output. Panics if it cannot be started.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if done.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done.load(Ordering::SeqCst) {
                // SAFETY: kill(2) on our own child's pid, still unreaped (wait_with_output runs).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                return true;
            }
            false
        })
    };
    let out = child.wait_with_output().expect("wait for child");
    done.store(true, Ordering::SeqCst);
    let _ = writer.join();
    let killed = watchdog.join().unwrap_or(false);
    assert!(
        !killed,
        "{cmd:?} ran past {limit:?} and was killed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
