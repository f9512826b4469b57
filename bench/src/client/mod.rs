//! A minimal Kafka-protocol client on corelog's io_uring runtime: framing, request encoding and
//! response decoding over one TCP connection. The producer and consumer drive it; `admin` holds the
//! one-shot calls (metadata, topics, offsets, producer ids).
//!
//! Requests on one Kafka connection are answered in order, so a connection needs no map from
//! correlation id to waiter: a FIFO of what was sent is enough, and every response is checked
//! against the correlation id at the head of it.

pub mod admin;
pub mod records;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use corelog_engine::runtime::ops;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The largest response frame accepted (a fetch is bounded by the fetch.max.bytes it asked for,
/// 50 MiB by default, plus headers): anything larger is a broken or hostile peer.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes asked of the kernel per recv.
const RECV_CHUNK_BYTES: usize = 256 * 1024;
/// Sent as client.id, so a broker's logs and tools show who the load came from.
pub const CLIENT_ID: &str = "corelog-bench";

/// Resolves `host:port` to the first address.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

/// One connection to a broker. Owned by one task at a time, or split into a sending and a
/// receiving task that share the descriptor (io_uring allows a send and a recv in flight on one
/// socket).
pub struct Conn {
    fd: OwnedFd,
    next_correlation_id: i32,
    reader: FrameReader,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let fd = ops::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        set_nodelay(fd.as_raw_fd()).context("TCP_NODELAY")?;
        Ok(Conn {
            fd,
            next_correlation_id: 0,
            reader: FrameReader::new(),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Encodes `req` as a complete frame (size prefix included) under a fresh correlation id.
    pub fn encode<R: Request>(&mut self, req: &R, version: i16) -> Result<(i32, Vec<u8>)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        Ok((
            correlation_id,
            encode_request(req, version, correlation_id)?,
        ))
    }

    /// Sends a request and waits for its response: for one-shot calls on an otherwise idle
    /// connection.
    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response>
    where
        R::Response: Decodable + HeaderVersion,
    {
        let (correlation_id, frame) = self.encode(req, version)?;
        send_frame(self.raw_fd(), frame).await?;
        let body = self.reader.next_frame(self.fd.as_raw_fd()).await?;
        decode_response::<R>(body, version, correlation_id)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_only<R: Request>(&mut self, req: &R, version: i16) -> Result<()> {
        let (_, frame) = self.encode(req, version)?;
        send_frame(self.raw_fd(), frame).await.map(|_| ())
    }

    /// Splits off the receiving half, for a task that reads responses while another sends.
    pub fn take_reader(&mut self) -> FrameReader {
        std::mem::take(&mut self.reader)
    }
}

/// Sends a whole frame; returns the buffer for reuse.
pub async fn send_frame(fd: RawFd, frame: Vec<u8>) -> Result<Vec<u8>> {
    let (res, buf) = ops::send_all(fd, frame).await;
    res.context("sending a request")?;
    Ok(buf)
}

/// Encodes a request frame: 4-byte size, request header, body.
pub fn encode_request<R: Request>(req: &R, version: i16, correlation_id: i32) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + req.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size).context("request too large")?);
    header.encode(&mut buf, header_version)?;
    req.encode(&mut buf, version)?;
    debug_assert_eq!(buf.len(), 4 + size);
    Ok(buf.to_vec())
}

/// Decodes a response frame body (size prefix already removed) and checks its correlation id.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response>
where
    R::Response: Decodable + HeaderVersion,
{
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
    if header.correlation_id != correlation_id {
        bail!(
            "response to correlation id {} where {} was expected",
            header.correlation_id,
            correlation_id
        );
    }
    let response = R::Response::decode(&mut body, version)
        .with_context(|| format!("decoding {:?} v{version} response", R::KEY))?;
    Ok(response)
}

/// Cuts a TCP byte stream into Kafka frames.
pub struct FrameReader {
    pending: BytesMut,
    chunk: Vec<u8>,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader::new()
    }
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader {
            pending: BytesMut::new(),
            chunk: vec![0; RECV_CHUNK_BYTES],
        }
    }

    /// The next complete frame body from `fd`, receiving as needed.
    pub async fn next_frame(&mut self, fd: RawFd) -> Result<Bytes> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(frame);
            }
            let chunk = std::mem::take(&mut self.chunk);
            let (res, chunk) = ops::recv(fd, chunk).await;
            self.chunk = chunk;
            let n = res.context("receiving a response")?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
            self.pending.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// A complete frame already received, if any.
    pub fn take_frame(&mut self) -> Result<Option<Bytes>> {
        if self.pending.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes(self.pending[..4].try_into().expect("4 bytes"));
        let size = usize::try_from(size).map_err(|_| anyhow!("negative frame size {size}"))?;
        if size > MAX_RESPONSE_BYTES {
            bail!("response frame of {size} bytes exceeds the {MAX_RESPONSE_BYTES}-byte limit");
        }
        if self.pending.len() < 4 + size {
            self.pending.reserve(4 + size - self.pending.len());
            return Ok(None);
        }
        self.pending.advance(4);
        Ok(Some(self.pending.split_to(size).freeze()))
    }
}

fn set_nodelay(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int for the duration of the call and its size is passed with it;
    // setsockopt does not keep the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_at_their_size_prefix_and_bounded() {
        let mut r = FrameReader::new();
        r.pending.extend_from_slice(&[0, 0, 0, 3, b'a', b'b']);
        assert!(r.take_frame().unwrap().is_none());
        r.pending.extend_from_slice(&[b'c', 0, 0, 0, 1]);
        assert_eq!(r.take_frame().unwrap().unwrap().as_ref(), b"abc");
        assert!(r.take_frame().unwrap().is_none());
        r.pending.extend_from_slice(b"z");
        assert_eq!(r.take_frame().unwrap().unwrap().as_ref(), b"z");

        let mut r = FrameReader::new();
        r.pending
            .extend_from_slice(&((MAX_RESPONSE_BYTES + 1) as i32).to_be_bytes());
        assert!(r.take_frame().is_err());
        let mut r = FrameReader::new();
        r.pending.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(r.take_frame().is_err());
    }
}
