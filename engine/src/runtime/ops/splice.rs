//! Zero-copy sends: splice file → pipe → socket through the ring.
//!
//! io_uring runs splice in its io-wq worker threads, so a cold page cache never stalls the
//! shard. The socket side runs non-blocking: a full send buffer returns EAGAIN, which
//! [`send_file_range`] answers with a one-shot poll for POLLOUT instead of parking an io-wq
//! worker on the socket. Pipes are meant to be pooled (one per connection at most): each costs
//! [`PIPE_BYTES`] of pipe buffers against `pipe-user-pages-soft`.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use io_uring::{opcode, types};

use super::net::poll;
use super::MAX_OP_BYTES;
use crate::runtime::ring::Op;

/// Bytes moved by successful [`splice`] ops since start (each leg counts: a file range sent
/// through a pipe adds twice its length). Lets tests and metrics prove data went by splice.
pub static SPLICED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Times [`send_file_range`] found the socket full (EAGAIN) and waited for POLLOUT.
pub static SEND_FILE_POLL_WAITS: AtomicU64 = AtomicU64::new(0);

/// Capacity requested for each [`Pipe`], in bytes: 1 MiB, the default `pipe-max-size`, so one
/// splice moves up to 1 MiB. If the kernel refuses, the pipe keeps its default (64 KiB).
pub const PIPE_BYTES: usize = 1 << 20;

/// Scratch size for emptying a pipe after a failed transfer, in bytes.
const DRAIN_CHUNK_BYTES: usize = 64 * 1024;

/// A pipe used as the in-kernel buffer of splice transfers. Both ends are non-blocking and
/// close-on-exec. One transfer at a time may use a pipe.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    busy: Cell<bool>,
    /// A transfer was dropped mid-flight: an orphaned splice may still add bytes, so the pipe's
    /// content is unknown and it must not be reused.
    poisoned: Cell<bool>,
}

impl Pipe {
    /// A pipe of [`PIPE_BYTES`] (or the system default if that is refused).
    pub fn new() -> io::Result<Pipe> {
        Self::with_capacity(PIPE_BYTES)
    }

    /// A pipe whose capacity is `bytes` rounded up by the kernel to a power-of-two pages.
    pub fn with_capacity(bytes: usize) -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two fresh descriptors owned here.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let requested = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl on a descriptor we own, integer argument.
        let mut capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, requested) };
        if capacity < 0 {
            tracing::warn!(
                bytes,
                error = %io::Error::last_os_error(),
                "F_SETPIPE_SZ refused; using the default pipe size"
            );
            // SAFETY: as above.
            capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if capacity < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Pipe {
            read,
            write,
            capacity: capacity as usize,
            busy: Cell::new(false),
            poisoned: Cell::new(false),
        })
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Discards whatever the pipe holds (non-blocking reads until it is empty).
    fn drain(&self) {
        let mut scratch = vec![0u8; DRAIN_CHUNK_BYTES];
        loop {
            // SAFETY: reads at most `scratch.len()` bytes into `scratch`.
            let n = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                )
            };
            if n <= 0 {
                break;
            }
        }
    }
}

/// `splice(2)` on the calling thread from pipe `fd_in` to `fd_out` (neither with an offset),
/// counted in [`SPLICED_BYTES`] like a ring splice; EINTR is retried.
fn splice_now(fd_in: RawFd, fd_out: RawFd, len: usize, flags: u32) -> io::Result<usize> {
    loop {
        // SAFETY: no offsets are passed (null pointers: pipe and socket positions are
        // implicit); the call reads and writes no memory of ours.
        let n = unsafe {
            libc::splice(
                fd_in,
                std::ptr::null_mut(),
                fd_out,
                std::ptr::null_mut(),
                len,
                flags,
            )
        };
        if n >= 0 {
            SPLICED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `splice(2)` through the ring: moves up to `len` bytes from `fd_in` to `fd_out`, one of which
/// must be a pipe. An offset of `None` uses (and, for files, advances) the file position; a pipe
/// takes `None`. `flags` are `SPLICE_F_*`. Returns the count moved (0 = end of input).
pub async fn splice(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: u32,
    flags: u32,
) -> io::Result<usize> {
    let off = |o: Option<u64>| -> io::Result<i64> {
        match o {
            None => Ok(-1),
            Some(v) => i64::try_from(v)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large")),
        }
    };
    let (off_in, off_out) = (off(off_in)?, off(off_out)?);
    // SAFETY: a splice SQE carries no pointers.
    let op = unsafe {
        Op::submit((), |_| {
            opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), off_out, len)
                .flags(flags)
                .build()
        })
    };
    let (c, ()) = op.await;
    let n = c.io_result()? as usize;
    SPLICED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
    Ok(n)
}

/// Sets O_NONBLOCK on `fd` if it is not set: splice into a blocking socket would park an io-wq
/// worker until the peer reads, instead of returning EAGAIN.
fn ensure_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a caller-provided descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks the pipe busy for one transfer; if the transfer's future is dropped before finishing,
/// poisons it.
struct PipeUse<'a> {
    pipe: &'a Pipe,
    finished: bool,
}

impl Drop for PipeUse<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.pipe.poisoned.set(true);
        }
        self.pipe.busy.set(false);
    }
}

/// Sends `len` bytes of `file_fd` starting at `pos` to `socket`, file → `pipe` → socket, never
/// copying through user space.
///
/// Returns `len`, or fewer bytes if the file ends first. The socket is switched to
/// non-blocking if it is not already (see [`ensure_nonblocking`]); when its send buffer is full
/// the transfer awaits POLLOUT and retries. On error the pipe is emptied, so it can be reused;
/// if this future is dropped mid-transfer the pipe is poisoned (later calls fail) because a
/// cancelled splice may still complete into it.
pub async fn send_file_range(
    socket: RawFd,
    file_fd: RawFd,
    pos: u64,
    len: usize,
    pipe: &Pipe,
) -> io::Result<usize> {
    if pipe.poisoned.get() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe poisoned by an interrupted transfer; use a new one",
        ));
    }
    if pipe.busy.replace(true) {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "pipe already in use by another transfer",
        ));
    }
    let mut guard = PipeUse {
        pipe,
        finished: false,
    };
    let res = transfer(socket, file_fd, pos, len, pipe).await;
    if res.is_err() {
        pipe.drain();
    }
    guard.finished = true;
    res
}

async fn transfer(
    socket: RawFd,
    file_fd: RawFd,
    pos: u64,
    len: usize,
    pipe: &Pipe,
) -> io::Result<usize> {
    ensure_nonblocking(socket)?;
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    let mut sent = 0usize;
    let mut in_pipe = 0usize;
    let mut file_pos = pos;
    let mut eof = false;
    while sent < len {
        let unread = len - sent - in_pipe;
        if !eof && unread > 0 && in_pipe < pipe.capacity {
            let chunk = unread.min(pipe.capacity - in_pipe).min(MAX_OP_BYTES) as u32;
            match splice(file_fd, Some(file_pos), pipe.write_fd(), None, chunk, flags).await {
                Ok(0) => eof = true,
                Ok(n) => {
                    in_pipe += n;
                    file_pos += n as u64;
                }
                // The pipe ran out of slots (partially filled pages): drain it first.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && in_pipe > 0 => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll(pipe.write_fd(), libc::POLLOUT as u32).await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        if in_pipe == 0 {
            if eof {
                break;
            }
            continue;
        }
        let chunk = in_pipe.min(MAX_OP_BYTES);
        // Pipe to socket inline, not through the ring: io_uring always hands a splice to an
        // io-wq worker, and this half never blocks (a non-blocking socket and
        // SPLICE_F_NONBLOCK: a full socket is EAGAIN, then a ring poll). The file-to-pipe
        // half above stays on the ring because reading a cold page cache would block.
        match splice_now(pipe.read_fd(), socket, chunk, flags) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "splice to socket moved 0 bytes",
                ))
            }
            Ok(n) => {
                in_pipe -= n;
                sent += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                SEND_FILE_POLL_WAITS.fetch_add(1, Ordering::Relaxed);
                poll(socket, libc::POLLOUT as u32).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}
