//! Socket ops: multishot accept, recv, send, poll, connect.
//!
//! Sockets made here (accepted or connected) are non-blocking (`SOCK_NONBLOCK`), because
//! splicing into a socket only reports a full send buffer (EAGAIN) on a non-blocking socket (see
//! [`send_file_range`](super::send_file_range)). `recv` and `send` hide that: on EAGAIN they
//! await readiness with a one-shot poll and retry, so they work on blocking and non-blocking
//! sockets alike.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::{op_len, IoBuf, IoBufMut};
use crate::runtime::ring::{Completion, MultiOp, Op};

/// A stream of connections accepted by one multishot accept SQE, re-armed when the kernel ends
/// it (a CQE without `IORING_CQE_F_MORE`, e.g. after an error or under memory pressure).
///
/// Dropping the stream cancels the accept; connections accepted but not yet taken are closed.
pub struct AcceptStream {
    listener: RawFd,
    op: Option<MultiOp>,
    closed: bool,
}

/// Starts accepting on `listener` (a bound, listening socket that outlives the stream).
pub fn accept_multishot(listener: RawFd) -> AcceptStream {
    AcceptStream {
        listener,
        op: None,
        closed: false,
    }
}

/// Closes a connection accepted after its stream was dropped.
fn close_accepted(c: Completion) {
    if c.result >= 0 {
        // SAFETY: a successful accept CQE carries a fresh descriptor that nobody else owns.
        drop(unsafe { OwnedFd::from_raw_fd(c.result) });
    }
}

impl AcceptStream {
    /// The next accepted connection (non-blocking, close-on-exec).
    ///
    /// Errors are yielded as they come and accepting continues; after an error meaning the
    /// listener is unusable (EBADF, ENOTSOCK, EINVAL, EOPNOTSUPP) the stream ends with `None`.
    /// Cancellation safe: connections accepted while no `next` is awaited are queued.
    pub async fn next(&mut self) -> Option<io::Result<OwnedFd>> {
        loop {
            if self.closed {
                return None;
            }
            if self.op.is_none() {
                let entry = opcode::AcceptMulti::new(types::Fd(self.listener))
                    .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                    .build();
                // SAFETY: a multishot accept SQE carries no pointers.
                self.op = Some(unsafe { MultiOp::submit(entry, Some(close_accepted)) });
            }
            let op = self.op.as_mut().expect("armed above");
            let next = poll_fn(|cx| op.poll_next(cx)).await;
            let Some(c) = next else {
                self.op = None;
                continue;
            };
            if !c.more() {
                // The kernel ended this multishot; the next call re-arms.
                self.op = None;
            }
            return Some(match c.io_result() {
                // SAFETY: a successful accept CQE carries a fresh descriptor we now own.
                Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EOPNOTSUPP)
                    ) {
                        self.closed = true;
                        self.op = None;
                    }
                    Err(e)
                }
            });
        }
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Receives into `buf[0..len)`; returns the count (0 = the peer closed) and the buffer.
pub async fn recv<B: IoBufMut>(fd: RawFd, mut buf: B) -> (io::Result<usize>, B) {
    loop {
        // SAFETY: the SQE points into `buf`'s stable memory, owned by the op until its CQE.
        let op = unsafe {
            Op::submit(buf, |b| {
                opcode::Recv::new(types::Fd(fd), b.stable_mut_ptr(), op_len(b.bytes_init())).build()
            })
        };
        let (c, b) = op.await;
        buf = b;
        match c.io_result() {
            Err(e) if is_would_block(&e) => {
                if let Err(e) = poll(fd, libc::POLLIN as u32).await {
                    return (Err(e), buf);
                }
            }
            res => return (res.map(|n| n as usize), buf),
        }
    }
}

/// Sends `buf[0..len)` (MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE); returns the count
/// sent, which may be short, and the buffer.
pub async fn send<B: IoBuf>(fd: RawFd, buf: B) -> (io::Result<usize>, B) {
    send_from(fd, buf, 0).await
}

async fn send_from<B: IoBuf>(fd: RawFd, mut buf: B, start: usize) -> (io::Result<usize>, B) {
    loop {
        // SAFETY: the SQE points into `buf`'s stable memory (`start` is within it), owned by the
        // op until its CQE.
        let op = unsafe {
            Op::submit(buf, |b| {
                opcode::Send::new(
                    types::Fd(fd),
                    b.stable_ptr().add(start),
                    op_len(b.bytes_init() - start),
                )
                .flags(libc::MSG_NOSIGNAL)
                .build()
            })
        };
        let (c, b) = op.await;
        buf = b;
        match c.io_result() {
            Err(e) if is_would_block(&e) => {
                if let Err(e) = poll(fd, libc::POLLOUT as u32).await {
                    return (Err(e), buf);
                }
            }
            res => return (res.map(|n| n as usize), buf),
        }
    }
}

/// Sends all of `buf`, issuing further sends after short ones.
pub async fn send_all<B: IoBuf>(fd: RawFd, mut buf: B) -> (io::Result<()>, B) {
    let len = buf.bytes_init();
    let mut done = 0;
    while done < len {
        let (res, b) = send_from(fd, buf, done).await;
        buf = b;
        match res {
            Ok(0) => {
                return (
                    Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0")),
                    buf,
                )
            }
            Ok(n) => done += n,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Waits (one-shot POLL_ADD) until `fd` reports any of `events` (`POLLIN`, `POLLOUT`, ...);
/// returns the events that are ready (POLLERR/POLLHUP included when they occur).
pub async fn poll(fd: RawFd, events: u32) -> io::Result<u32> {
    // SAFETY: a poll SQE carries no pointers.
    let op = unsafe { Op::submit((), |_| opcode::PollAdd::new(types::Fd(fd), events).build()) };
    let (c, ()) = op.await;
    c.io_result()
}

/// A listening TCP socket with SO_REUSEPORT, so that every shard accepts on the same port and
/// the kernel spreads connections across them.
pub fn listen_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` outlives the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let sa = sock_addr(&addr);
    // SAFETY: `sa.storage` holds a valid sockaddr of `sa.len` bytes for the socket's family.
    if unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &sa.storage as *const libc::sockaddr_storage as *const libc::sockaddr,
            sa.len,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen(2) on a bound socket we own.
    if unsafe { libc::listen(sock.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// A socket address in the kernel's layout.
struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

fn sock_addr(addr: &SocketAddr) -> Box<SockAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    Box::new(SockAddr {
        storage,
        len: len as libc::socklen_t,
    })
}

/// Opens a non-blocking TCP connection to `addr`.
pub async fn connect(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket has no memory arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor owned here.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the SQE points at the boxed address, owned by the op until its CQE.
    let op = unsafe {
        Op::submit(sock_addr(&addr), |a| {
            opcode::Connect::new(
                types::Fd(fd),
                (&a.storage as *const libc::sockaddr_storage).cast(),
                a.len,
            )
            .build()
        })
    };
    let (c, _addr) = op.await;
    match c.io_result() {
        Ok(_) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            poll(fd, libc::POLLOUT as u32).await?;
            match socket_error(fd)? {
                0 => Ok(socket),
                errno => Err(io::Error::from_raw_os_error(errno)),
            }
        }
        Err(e) => Err(e),
    }
}

fn socket_error(fd: RawFd) -> io::Result<i32> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `err`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(err)
    }
}
