//! One client connection: read size-prefixed request frames, dispatch each to its API handler,
//! write the responses back in order.
//!
//! Requests on one connection are handled one at a time, in order (Kafka's per-connection
//! ordering guarantee). Every length read from the wire is checked before anything is allocated
//! for it: a frame larger than `socket.request.max.bytes`, a negative size, a header that does
//! not parse or an API the broker does not speak closes the connection, as Kafka does.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use corelog_engine::runtime::ops::{self, Pipe};

use crate::broker::shard;
use crate::handlers::{self, Part, Reply, Request};

/// Bytes of buffer space offered to the socket per receive, at least.
const RECV_BUFFER_BYTES: usize = 64 * 1024;
/// Smallest valid request: api key, api version, correlation id (2 + 2 + 4 bytes).
const MIN_REQUEST_BYTES: usize = 8;

/// Why a connection was closed (logged at debug level).
#[derive(Debug)]
pub enum CloseReason {
    Io(std::io::Error),
    FrameTooLarge(i32),
    BadHeader(String),
    Protocol(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::FrameTooLarge(size) => {
                write!(f, "frame size {size} outside the allowed range")
            }
            CloseReason::BadHeader(why) => write!(f, "bad request header: {why}"),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

struct FrameReader {
    fd: RawFd,
    pending: BytesMut,
}

impl FrameReader {
    /// The next request frame (without its size prefix), `Ok(None)` on a clean end of stream.
    async fn next_frame(&mut self, max_bytes: usize) -> Result<Option<Bytes>, CloseReason> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let size = i32::from_be_bytes(self.pending[..4].try_into().expect("4 bytes"));
        if size < MIN_REQUEST_BYTES as i32 || size as usize > max_bytes {
            return Err(CloseReason::FrameTooLarge(size));
        }
        if !self.fill(4 + size as usize).await? {
            return Err(CloseReason::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.pending.advance(4);
        Ok(Some(self.pending.split_to(size as usize).freeze()))
    }

    /// Reads until `want` bytes are pending; false if the peer closed first.
    ///
    /// Bytes are received straight into `pending`, the buffer the frames are split from (and
    /// whose record batches the log writes from), so request bytes are never copied in user
    /// space. The socket is read without blocking while it has data and waited on with a
    /// ring poll when it has none.
    async fn fill(&mut self, want: usize) -> Result<bool, CloseReason> {
        while self.pending.len() < want {
            // At least the rest of the wanted frame, so that a large frame lands in one block.
            self.pending
                .reserve((want - self.pending.len()).max(RECV_BUFFER_BYTES));
            let spare = self.pending.spare_capacity_mut();
            // SAFETY: `spare` is the BytesMut's own writable, unused capacity (valid for
            // `spare.len()` bytes); the kernel writes at most that many bytes into it and reads
            // nothing from it.
            let n = unsafe {
                libc::recv(
                    self.fd,
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock => {
                        ops::poll(self.fd, libc::POLLIN as u32)
                            .await
                            .map_err(CloseReason::Io)?;
                    }
                    std::io::ErrorKind::Interrupted => {}
                    _ => return Err(CloseReason::Io(e)),
                }
                continue;
            }
            if n == 0 {
                return Ok(false);
            }
            // SAFETY: recv initialized the first `n` bytes of the spare capacity
            // (n <= spare.len()).
            unsafe { self.pending.set_len(self.pending.len() + n as usize) };
        }
        Ok(true)
    }
}

/// Serves one connection until the peer closes it or sends something unacceptable.
pub async fn serve(conn: OwnedFd) {
    // A TcpStream owns the socket from here on, for its peer address (the client host that
    // group members report, written like Kafka's "/127.0.0.1").
    let conn = std::net::TcpStream::from(conn);
    // As Kafka's SocketServer does: a response is often a small header followed by the records
    // (spliced separately); with Nagle on, the second part waits for the client's delayed ACK
    // (~40 ms on Linux), which was the whole end-to-end latency of a parked fetch.
    if let Err(e) = conn.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    let client_host: Rc<str> = match conn.peer_addr() {
        Ok(addr) => format!("/{}", addr.ip()).into(),
        Err(_) => "/unknown".into(),
    };
    let fd = conn.as_raw_fd();
    let max_frame_bytes = shard().broker.config.socket_request_max_bytes as usize;
    let mut reader = FrameReader {
        fd,
        pending: BytesMut::new(),
    };
    let mut pipe: Option<Pipe> = None;
    loop {
        let frame = match reader.next_frame(max_frame_bytes).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(reason) => {
                tracing::debug!(%reason, "closing connection");
                return;
            }
        };
        let in_flight = InFlight::start();
        let result = handle_frame(frame, &client_host).await;
        let sent = match result {
            Ok(Some((header, reply))) => send_reply(fd, header, reply, &mut pipe).await,
            Ok(None) => Ok(()),
            Err(reason) => {
                tracing::debug!(%reason, "closing connection");
                return;
            }
        };
        drop(in_flight);
        if let Err(e) = sent {
            tracing::debug!(error = %e, "closing connection: send failed");
            return;
        }
    }
}

/// Counts a request in `requests_in_flight` from its decoding until its answer is sent (or the
/// connection closes), so that a graceful shutdown lets it finish.
struct InFlight;

impl InFlight {
    fn start() -> InFlight {
        shard()
            .broker
            .requests_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        shard()
            .broker
            .requests_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Decodes the request header, runs the handler, and encodes the response header.
async fn handle_frame(
    mut frame: Bytes,
    client_host: &Rc<str>,
) -> Result<Option<(Bytes, Reply)>, CloseReason> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(api_key)
        .map_err(|_| CloseReason::BadHeader(format!("unknown api key {api_key}")))?;
    let header_version = key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| CloseReason::BadHeader(e.to_string()))?;
    let correlation_id = header.correlation_id;
    let request = Request {
        key,
        version: api_version,
        body: frame,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: client_host.clone(),
    };
    let reply = handlers::dispatch(request)
        .await
        .map_err(CloseReason::Protocol)?;
    if matches!(reply, Reply::None) {
        return Ok(None);
    }
    let response_header_version = if handlers::answers_in_v0(key, api_version) {
        0
    } else {
        key.response_header_version(api_version)
    };
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, response_header_version)
        .map_err(|e| CloseReason::Protocol(e.to_string()))?;
    Ok(Some((buf.freeze(), reply)))
}

/// Writes `size | header | body`, sending file ranges of the body with splice (zero-copy).
async fn send_reply(
    fd: RawFd,
    header: Bytes,
    reply: Reply,
    pipe: &mut Option<Pipe>,
) -> std::io::Result<()> {
    match reply {
        Reply::None => Ok(()),
        Reply::Body(body) => {
            let mut out = BytesMut::with_capacity(4 + header.len() + body.len());
            out.put_i32((header.len() + body.len()) as i32);
            out.put_slice(&header);
            out.put_slice(&body);
            let (result, _) = ops::send_all(fd, Vec::from(out)).await;
            result
        }
        Reply::Parts(parts) => {
            let body_len: usize = parts.iter().map(Part::len).sum();
            let mut head = BytesMut::with_capacity(4 + header.len());
            head.put_i32((header.len() + body_len) as i32);
            head.put_slice(&header);
            let mut pending = Vec::from(head);
            for part in parts {
                match part {
                    Part::Bytes(b) => pending.extend_from_slice(&b),
                    Part::File(range) => {
                        if !pending.is_empty() {
                            let (result, _) = ops::send_all(fd, std::mem::take(&mut pending)).await;
                            result?;
                        }
                        if pipe.is_none() {
                            *pipe = Some(Pipe::new()?);
                        }
                        let p = pipe.as_ref().expect("pipe created");
                        let sent = ops::send_file_range(
                            fd,
                            range.file.raw_fd(),
                            range.position,
                            range.len as usize,
                            p,
                        )
                        .await?;
                        if sent != range.len as usize {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "segment shorter than its range",
                            ));
                        }
                    }
                }
            }
            if !pending.is_empty() {
                let (result, _) = ops::send_all(fd, pending).await;
                result?;
            }
            Ok(())
        }
    }
}
