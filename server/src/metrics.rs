//! `GET /metrics`: consumer lag and a few broker counters in the Prometheus text exposition
//! format (version 0.0.4), served by the broker itself so that no external exporter is needed.
//!
//! The endpoint lives on shard 0's io_uring runtime beside the Kafka listener (config key
//! `corelog.metrics.listener`). It is deliberately small: one request per connection
//! (`Connection: close`), a request head larger than [`MAX_REQUEST_BYTES`] closes the
//! connection, and at most [`MAX_CONNECTIONS`] scrapes are served at once. Log-end offsets are
//! asked of each partition's owner shard, one message per shard per scrape.
//!
//! Transactions: each partition's last stable offset (LSO) is exported too, and lag is given
//! twice: `corelog_consumer_lag` to the high watermark (what Kafka's tools show) and
//! `corelog_consumer_lag_stable` to the LSO, the lag of a read_committed consumer (records of
//! open transactions are not consumable yet, so they are not its lag).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use corelog_engine::runtime::{self, ops};

use crate::broker::{owner_of, shard};

/// The largest HTTP request head (request line and headers) read; a bigger one is closed
/// without an answer. A scrape is a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Scrape connections served at once; more are closed on accept, so a flood of idle
/// connections cannot pile up tasks on shard 0.
pub const MAX_CONNECTIONS: u32 = 16;
/// Bytes read per receive.
const RECV_CHUNK_BYTES: usize = 2 * 1024;
/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

use crate::groups::CommittedOffset;

/// What one scrape reports.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// (topic, partition) → log-end offset (the high watermark, what ListOffsets LATEST answers).
    pub log_end: BTreeMap<(String, i32), i64>,
    /// (topic, partition) → last stable offset (what ListOffsets LATEST read_committed answers).
    pub stable_end: BTreeMap<(String, i32), i64>,
    pub committed: Vec<CommittedOffset>,
    pub open_connections: u64,
    pub fetch_zero_copy_bytes: u64,
    pub fetch_copied_bytes: u64,
}

/// Escapes a label value for the text format: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders a snapshot in the Prometheus text format. Lag is the log-end offset minus the
/// committed offset (never negative), only for partitions that exist.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut committed = s.committed.clone();
    committed
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    let labels = |c: &CommittedOffset| {
        format!(
            "group=\"{}\",topic=\"{}\",partition=\"{}\"",
            escape_label(&c.group),
            escape_label(&c.topic),
            c.partition
        )
    };
    family(
        &mut out,
        "corelog_consumer_lag",
        "gauge",
        "Records between a consumer group's committed offset and the partition's log-end offset.",
    );
    for c in &committed {
        if let Some(end) = s.log_end.get(&(c.topic.clone(), c.partition)) {
            let _ = writeln!(
                out,
                "corelog_consumer_lag{{{}}} {}",
                labels(c),
                (end - c.offset).max(0)
            );
        }
    }
    family(
        &mut out,
        "corelog_consumer_lag_stable",
        "gauge",
        "Records between a consumer group's committed offset and the partition's last stable offset (the lag of a read_committed consumer).",
    );
    for c in &committed {
        if let Some(end) = s.stable_end.get(&(c.topic.clone(), c.partition)) {
            let _ = writeln!(
                out,
                "corelog_consumer_lag_stable{{{}}} {}",
                labels(c),
                (end - c.offset).max(0)
            );
        }
    }
    family(
        &mut out,
        "corelog_consumer_committed_offset",
        "gauge",
        "The offset a consumer group committed for a partition.",
    );
    for c in &committed {
        let _ = writeln!(
            out,
            "corelog_consumer_committed_offset{{{}}} {}",
            labels(c),
            c.offset
        );
    }
    family(
        &mut out,
        "corelog_log_end_offset",
        "gauge",
        "The log-end offset (high watermark) of a partition.",
    );
    for ((topic, partition), end) in &s.log_end {
        let _ = writeln!(
            out,
            "corelog_log_end_offset{{topic=\"{}\",partition=\"{partition}\"}} {end}",
            escape_label(topic)
        );
    }
    family(
        &mut out,
        "corelog_last_stable_offset",
        "gauge",
        "The last stable offset of a partition (below it no transaction is open).",
    );
    for ((topic, partition), end) in &s.stable_end {
        let _ = writeln!(
            out,
            "corelog_last_stable_offset{{topic=\"{}\",partition=\"{partition}\"}} {end}",
            escape_label(topic)
        );
    }
    family(
        &mut out,
        "corelog_open_connections",
        "gauge",
        "Kafka client connections open now.",
    );
    let _ = writeln!(out, "corelog_open_connections {}", s.open_connections);
    family(
        &mut out,
        "corelog_fetch_zero_copy_bytes_total",
        "counter",
        "Record bytes fetches sent spliced from segment files.",
    );
    let _ = writeln!(
        out,
        "corelog_fetch_zero_copy_bytes_total {}",
        s.fetch_zero_copy_bytes
    );
    family(
        &mut out,
        "corelog_fetch_copied_bytes_total",
        "counter",
        "Record bytes fetches copied through memory.",
    );
    let _ = writeln!(
        out,
        "corelog_fetch_copied_bytes_total {}",
        s.fetch_copied_bytes
    );
    out
}

/// What the request head read so far amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head has not ended yet: read more.
    Incomplete,
    /// A complete head: method and path (query string removed).
    Request { method: String, path: String },
    /// Not an HTTP/1.x request head, or over [`MAX_REQUEST_BYTES`].
    Bad,
}

/// Parses an HTTP/1.x request head (request line, headers, empty line). A body is never
/// expected: only GET is served.
pub fn parse_request(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_REQUEST_BYTES {
            Parsed::Bad
        } else {
            Parsed::Incomplete
        };
    };
    if end + 4 > MAX_REQUEST_BYTES {
        return Parsed::Bad;
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Bad;
    };
    let request_line = head.split("\r\n").next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad;
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Parsed::Bad;
    }
    let path = target.split('?').next().unwrap_or(target);
    Parsed::Request {
        method: method.to_string(),
        path: path.to_string(),
    }
}

/// The whole HTTP response to a request.
fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Binds the metrics listener and serves it on this shard's runtime. A bind failure (the port
/// taken, by another broker on the same machine for instance) is logged and the broker goes
/// on serving Kafka without metrics.
pub fn start(addr: SocketAddr) {
    // std's listener: SO_REUSEADDR but not SO_REUSEPORT, so that a second broker cannot bind
    // the same metrics port and silently split the scrapes with the first.
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => OwnedFd::from(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "metrics listener not started; serving without /metrics");
            return;
        }
    };
    tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    runtime::spawn(accept_loop(listener));
}

async fn accept_loop(listener: OwnedFd) {
    let open = std::rc::Rc::new(Cell::new(0u32));
    let mut accepted = ops::accept_multishot(listener.as_raw_fd());
    while let Some(conn) = accepted.next().await {
        if shard().broker.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            // Dropping the descriptor closes it.
            continue;
        }
        open.set(open.get() + 1);
        let open = open.clone();
        runtime::spawn(async move {
            serve(conn).await;
            open.set(open.get() - 1);
        });
    }
}

/// Serves one request on one connection, then closes it.
async fn serve(conn: OwnedFd) {
    let fd = conn.as_raw_fd();
    let Some(parsed) = read_head(fd).await else {
        return;
    };
    let reply = match parsed {
        Parsed::Request { method, path } if method == "GET" && path == "/metrics" => {
            response("200 OK", CONTENT_TYPE, &render(&gather().await))
        }
        Parsed::Request { method, .. } if method != "GET" => response(
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n",
        ),
        Parsed::Request { .. } => response("404 Not Found", "text/plain", "try /metrics\n"),
        Parsed::Bad | Parsed::Incomplete => {
            response("400 Bad Request", "text/plain", "bad request\n")
        }
    };
    let (result, _) = ops::send_all(fd, reply).await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics response not sent");
    }
}

/// Reads a request head; `None` when the peer closed, failed, or sent more than
/// [`MAX_REQUEST_BYTES`] without ending the head (the connection is then closed unanswered).
async fn read_head(fd: RawFd) -> Option<Parsed> {
    let mut head = Vec::new();
    let mut chunk = vec![0u8; RECV_CHUNK_BYTES];
    loop {
        let (result, buf) = ops::recv(fd, chunk).await;
        chunk = buf;
        let n = result.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
        match parse_request(&head) {
            Parsed::Incomplete => continue,
            Parsed::Bad if head.len() >= MAX_REQUEST_BYTES => return None,
            parsed => return Some(parsed),
        }
    }
}

/// Collects one snapshot: log-end offsets from every shard (one message per shard), committed
/// offsets from the group coordinator, and the broker counters.
async fn gather() -> Snapshot {
    let here = shard();
    let broker = here.broker.clone();
    let mut per_shard: Vec<Vec<(String, u32)>> = vec![Vec::new(); broker.shard_count()];
    for topic in broker.metadata.snapshot().topics() {
        for p in 0..topic.partitions {
            per_shard[owner_of(&broker, &topic.name, p)].push((topic.name.clone(), p));
        }
    }
    let mut log_end = BTreeMap::new();
    let mut stable_end = BTreeMap::new();
    for (id, partitions) in per_shard.into_iter().enumerate() {
        if partitions.is_empty() {
            continue;
        }
        let ends = if id == here.id {
            high_watermarks(partitions)
        } else {
            broker
                .router()
                .spawn_on(id, move || async move { high_watermarks(partitions) })
                .await
        };
        for (tp, (hw, lso)) in ends {
            stable_end.insert(tp.clone(), lso);
            log_end.insert(tp, hw);
        }
    }
    Snapshot {
        log_end,
        stable_end,
        committed: crate::groups::committed_offsets().await,
        open_connections: broker.open_connections.load(Ordering::Relaxed) as u64,
        fetch_zero_copy_bytes: crate::handlers::fetch::ZERO_COPY_BYTES.load(Ordering::Relaxed),
        fetch_copied_bytes: crate::handlers::fetch::COPIED_BYTES.load(Ordering::Relaxed),
    }
}

/// On the owner shard: the high watermark and last stable offset of each of `partitions` that
/// is open here.
fn high_watermarks(partitions: Vec<(String, u32)>) -> Vec<((String, i32), (i64, i64))> {
    let state = shard();
    partitions
        .into_iter()
        .filter_map(|(topic, p)| {
            let hw = state.local_partition(&topic, p)?.log().high_watermark();
            let lso = state
                .producers
                .get(&topic, p)
                .map_or(hw, |s| s.borrow().last_stable_offset(hw));
            Some(((topic, p as i32), (hw, lso)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, topic: &str, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
        }
    }

    #[test]
    fn renders_lag_committed_and_log_end_sorted() {
        let s = Snapshot {
            log_end: [
                (("t".to_string(), 1), 10),
                (("t".to_string(), 0), 20),
                (("u".to_string(), 0), 3),
            ]
            .into_iter()
            .collect(),
            // An open transaction holds t-1 at 7.
            stable_end: [
                (("t".to_string(), 1), 7),
                (("t".to_string(), 0), 20),
                (("u".to_string(), 0), 3),
            ]
            .into_iter()
            .collect(),
            committed: vec![
                offset("g", "t", 1, 4),
                offset("g", "t", 0, 20),
                // A committed offset past the end (truncated log): lag 0, not negative.
                offset("a", "u", 0, 5),
                // A topic that no longer exists: committed offset, but no lag.
                offset("a", "gone", 0, 1),
            ],
            open_connections: 3,
            fetch_zero_copy_bytes: 100,
            fetch_copied_bytes: 7,
        };
        let text = render(&s);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            vec![
                r#"corelog_consumer_lag{group="a",topic="u",partition="0"} 0"#,
                r#"corelog_consumer_lag{group="g",topic="t",partition="0"} 0"#,
                r#"corelog_consumer_lag{group="g",topic="t",partition="1"} 6"#,
                r#"corelog_consumer_lag_stable{group="a",topic="u",partition="0"} 0"#,
                r#"corelog_consumer_lag_stable{group="g",topic="t",partition="0"} 0"#,
                r#"corelog_consumer_lag_stable{group="g",topic="t",partition="1"} 3"#,
                r#"corelog_consumer_committed_offset{group="a",topic="gone",partition="0"} 1"#,
                r#"corelog_consumer_committed_offset{group="a",topic="u",partition="0"} 5"#,
                r#"corelog_consumer_committed_offset{group="g",topic="t",partition="0"} 20"#,
                r#"corelog_consumer_committed_offset{group="g",topic="t",partition="1"} 4"#,
                r#"corelog_log_end_offset{topic="t",partition="0"} 20"#,
                r#"corelog_log_end_offset{topic="t",partition="1"} 10"#,
                r#"corelog_log_end_offset{topic="u",partition="0"} 3"#,
                r#"corelog_last_stable_offset{topic="t",partition="0"} 20"#,
                r#"corelog_last_stable_offset{topic="t",partition="1"} 7"#,
                r#"corelog_last_stable_offset{topic="u",partition="0"} 3"#,
                "corelog_open_connections 3",
                "corelog_fetch_zero_copy_bytes_total 100",
                "corelog_fetch_copied_bytes_total 7",
            ]
        );
        // Every family is declared once, before its samples.
        assert!(text.starts_with("# HELP corelog_consumer_lag "));
        assert_eq!(text.matches("# TYPE ").count(), 8);
        assert!(text.contains("# TYPE corelog_fetch_copied_bytes_total counter\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), r"x\ny");
        let s = Snapshot {
            log_end: [(("t".to_string(), 0), 2)].into_iter().collect(),
            committed: vec![offset("we\"ird\\g\n", "t", 0, 1)],
            ..Snapshot::default()
        };
        assert!(render(&s)
            .contains(r#"corelog_consumer_lag{group="we\"ird\\g\n",topic="t",partition="0"} 1"#));
    }

    #[test]
    fn request_heads_are_parsed() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            Parsed::Request {
                method: "GET".into(),
                path: "/metrics".into()
            }
        );
        assert_eq!(
            parse_request(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"),
            Parsed::Request {
                method: "GET".into(),
                path: "/metrics".into()
            }
        );
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\n\r\n"),
            Parsed::Request {
                method: "POST".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost"),
            Parsed::Incomplete
        );
        assert_eq!(parse_request(b""), Parsed::Incomplete);
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Parsed::Bad, "{bad:?}");
        }
    }

    #[test]
    fn oversized_request_heads_are_refused() {
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST_BYTES, b'a');
        assert_eq!(parse_request(&big), Parsed::Bad);
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&big), Parsed::Bad);
        let mut fits = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        fits.resize(MAX_REQUEST_BYTES - 4, b'a');
        fits.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse_request(&fits), Parsed::Request { .. }));
    }
}
