//! Positional file reads and writes, data sync, and a write linked to its data sync.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::{op_len, IoBuf, IoBufMut, MAX_OP_BYTES};
use crate::runtime::ring::Op;

/// Reads from `fd` at `pos` into `buf[0..buf.len())`; returns the count read (0 at EOF) and
/// the buffer.
pub async fn read_at<B: IoBufMut>(fd: RawFd, buf: B, pos: u64) -> (io::Result<usize>, B) {
    // SAFETY: the SQE points into `buf`'s stable memory, owned by the op until its CQE.
    let op = unsafe {
        Op::submit(buf, |b| {
            opcode::Read::new(types::Fd(fd), b.stable_mut_ptr(), op_len(b.bytes_init()))
                .offset(pos)
                .build()
        })
    };
    let (c, buf) = op.await;
    (c.io_result().map(|n| n as usize), buf)
}

/// Writes `buf[start..]` to `fd` at `pos`.
async fn write_from<B: IoBuf>(fd: RawFd, buf: B, start: usize, pos: u64) -> (io::Result<usize>, B) {
    debug_assert!(start <= buf.bytes_init());
    // SAFETY: the SQE points into `buf`'s stable memory (`start` is within it), owned by the
    // op until its CQE.
    let op = unsafe {
        Op::submit(buf, |b| {
            opcode::Write::new(
                types::Fd(fd),
                b.stable_ptr().add(start),
                op_len(b.bytes_init() - start),
            )
            .offset(pos)
            .build()
        })
    };
    let (c, buf) = op.await;
    (c.io_result().map(|n| n as usize), buf)
}

/// Writes `buf[0..len)` to `fd` at `pos`; returns the count written, which may be short.
pub async fn write_at<B: IoBuf>(fd: RawFd, buf: B, pos: u64) -> (io::Result<usize>, B) {
    write_from(fd, buf, 0, pos).await
}

/// Writes all of `buf` at `pos`, issuing further writes after short ones.
/// A write that makes no progress fails with `ErrorKind::WriteZero`.
pub async fn write_all_at<B: IoBuf>(fd: RawFd, mut buf: B, pos: u64) -> (io::Result<()>, B) {
    let len = buf.bytes_init();
    let mut done = 0;
    while done < len {
        let (res, b) = write_from(fd, buf, done, pos + done as u64).await;
        buf = b;
        match res {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "write returned 0 bytes",
                    )),
                    buf,
                )
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// `fdatasync(fd)`: makes the file's data (and the metadata needed to read it) durable.
pub async fn fdatasync(fd: RawFd) -> io::Result<()> {
    // SAFETY: the SQE carries no pointers.
    let op = unsafe {
        Op::submit((), |_| {
            opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
        })
    };
    let (c, ()) = op.await;
    c.io_result().map(|_| ())
}

/// Writes `buf` at `pos` and then `fdatasync`s, as one Write SQE linked (IOSQE_IO_LINK) to a
/// DATASYNC Fsync SQE: the sync starts only after the write completed in full, without a round
/// trip through the executor.
///
/// `Ok(n)` (n = the buffer's length) only if the whole buffer was written and the sync succeeded.
/// A short write makes the kernel cancel the linked sync; that is reported as
/// `ErrorKind::WriteZero` naming both counts, and nothing is known to be durable. Buffers over
/// [`MAX_OP_BYTES`] are refused (`InvalidInput`).
pub async fn write_at_then_fdatasync<B: IoBuf>(
    fd: RawFd,
    buf: B,
    pos: u64,
) -> (io::Result<usize>, B) {
    if buf.bytes_init() > MAX_OP_BYTES {
        // One SQE cannot carry it, and a partial write must not be followed by the sync.
        return (
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write_at_then_fdatasync: buffer larger than {MAX_OP_BYTES} bytes"),
            )),
            buf,
        );
    }
    let len = op_len(buf.bytes_init());
    // SAFETY: the write SQE points into `buf`'s stable memory, owned by its op until its CQE;
    // the sync SQE carries no pointers.
    let (write, sync) = unsafe {
        Op::submit_linked(
            buf,
            |b| {
                opcode::Write::new(types::Fd(fd), b.stable_ptr(), len)
                    .offset(pos)
                    .build()
            },
            (),
            |_| {
                opcode::Fsync::new(types::Fd(fd))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
            },
        )
    };
    let (wc, buf) = write.await;
    let (sc, ()) = sync.await;
    let res = match wc.io_result() {
        Err(e) => Err(e),
        Ok(n) if n < len => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {len} bytes written; the linked fdatasync was cancelled"),
        )),
        Ok(n) => sc.io_result().map(|_| n as usize),
    };
    (res, buf)
}
