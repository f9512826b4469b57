//! Fixed (registered) buffers: memory pinned and mapped by the kernel once, so reads and writes
//! through it skip the per-op page pinning of ordinary buffers.
//!
//! A ring has one table of registered buffers, so a thread registers at most one
//! [`FixedBufPool`] at a time (a second registration fails with EBUSY). The pool's memory is
//! page-aligned (usable with O_DIRECT), allocated once, and unregistered and freed when the
//! pool and every [`FixedBuf`] checked out of it are gone.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::rc::Rc;

use io_uring::{opcode, types};

use super::{IoBuf, IoBufMut};
use crate::runtime::executor::current;
use crate::runtime::ring::{DriverRef, Op};

/// Most buffers one ring can register (the kernel's `IORING_MAX_REG_BUFFERS`).
pub const MAX_FIXED_BUFFERS: usize = 1 << 14;
/// Largest registered buffer, in bytes (the kernel's limit is 1 GiB).
pub const MAX_FIXED_BUF_BYTES: usize = 1 << 30;
/// Alignment of the pool's memory, in bytes: one page, as O_DIRECT needs.
const PAGE_BYTES: usize = 4096;

struct PoolInner {
    driver: DriverRef,
    base: *mut u8,
    layout: Layout,
    buf_bytes: usize,
    free: RefCell<Vec<u16>>,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Every FixedBuf holds an Rc to this pool, so no op uses the buffers any more.
        let unregistered = match self.driver.try_borrow() {
            Ok(d) => d.unregister_buffers().is_ok(),
            Err(_) => false,
        };
        if unregistered {
            // SAFETY: `base` came from `alloc_zeroed(self.layout)` and is freed once, here.
            unsafe { alloc::dealloc(self.base, self.layout) };
        } else {
            // Still registered: the kernel maps these pages, so leak them rather than let the
            // allocator hand them out again.
            tracing::warn!("could not unregister fixed buffers; leaking them");
        }
    }
}

/// A set of equally sized buffers registered on this thread's ring. Cloning shares the pool.
#[derive(Clone)]
pub struct FixedBufPool {
    inner: Rc<PoolInner>,
}

impl FixedBufPool {
    /// Allocates `count` zeroed buffers of `size` bytes and registers them on this thread's ring.
    pub fn register(count: usize, size: usize) -> io::Result<FixedBufPool> {
        if count == 0 || count > MAX_FIXED_BUFFERS || size == 0 || size > MAX_FIXED_BUF_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fixed buffers: count must be 1..={MAX_FIXED_BUFFERS}, size 1..={MAX_FIXED_BUF_BYTES}"),
            ));
        }
        let total = count
            .checked_mul(size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pool too large"))?;
        let layout = Layout::from_size_align(total, PAGE_BYTES)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `layout` has a non-zero size (count, size >= 1).
        let base = unsafe { alloc::alloc_zeroed(layout) };
        if base.is_null() {
            alloc::handle_alloc_error(layout);
        }
        let iovecs: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                // SAFETY: `i * size < total`, inside the allocation.
                iov_base: unsafe { base.add(i * size) }.cast(),
                iov_len: size,
            })
            .collect();
        let driver = current().driver.clone();
        // SAFETY: the memory stays allocated until `PoolInner::drop` has unregistered it.
        let registered = unsafe { driver.borrow().register_buffers(&iovecs) };
        if let Err(e) = registered {
            // SAFETY: allocated above with `layout`, never registered, freed once.
            unsafe { alloc::dealloc(base, layout) };
            return Err(e);
        }
        Ok(FixedBufPool {
            inner: Rc::new(PoolInner {
                driver,
                base,
                layout,
                buf_bytes: size,
                free: RefCell::new((0..count as u16).rev().collect()),
            }),
        })
    }

    /// Takes a free buffer (its length set to its capacity), or `None` if all are checked out.
    /// It returns to the pool when dropped.
    pub fn checkout(&self) -> Option<FixedBuf> {
        let index = self.inner.free.borrow_mut().pop()?;
        Some(FixedBuf {
            pool: self.inner.clone(),
            index,
            len: self.inner.buf_bytes,
        })
    }

    /// Buffers not checked out.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Size of each buffer, in bytes.
    pub fn buf_size(&self) -> usize {
        self.inner.buf_bytes
    }
}

/// One registered buffer, checked out of a [`FixedBufPool`]. Its initialized length `len`
/// (at most its capacity) is the region reads fill and writes send.
pub struct FixedBuf {
    pool: Rc<PoolInner>,
    index: u16,
    len: usize,
}

impl FixedBuf {
    /// Index in the ring's registered-buffer table.
    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn capacity(&self) -> usize {
        self.pool.buf_bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length; panics if `len` exceeds the capacity. Bytes beyond the old length keep
    /// whatever the buffer held (it is zeroed at registration, so always initialized).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "FixedBuf length beyond capacity");
        self.len = len;
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: `index < count`, so the offset is inside the pool's allocation.
        unsafe {
            self.pool
                .base
                .add(usize::from(self.index) * self.pool.buf_bytes)
        }
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this buffer's region is initialized (zeroed at allocation), lives as long as
        // the pool this holds, and is used by no one else while checked out.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool.free.borrow_mut().push(self.index);
    }
}

// SAFETY: the region is owned by the pool allocation, which this buffer keeps alive and which
// never moves; `len` bytes of it are initialized.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
}

// SAFETY: as for `IoBuf`; the checked-out region is exclusively this buffer's.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr()
    }
}

/// Reads from `fd` at `pos` into `buf[0..len)` using the registered buffer (READ_FIXED).
pub async fn read_fixed_at(fd: RawFd, buf: FixedBuf, pos: u64) -> (io::Result<usize>, FixedBuf) {
    let driver = buf.pool.driver.clone();
    // SAFETY: the SQE points into the registered region of `buf`, which the op owns (and which
    // keeps the pool registered) until its CQE.
    let op = unsafe {
        Op::submit_on(driver, buf, |b| {
            opcode::ReadFixed::new(types::Fd(fd), b.ptr(), b.len as u32, b.index)
                .offset(pos)
                .build()
        })
    };
    let (c, buf) = op.await;
    (c.io_result().map(|n| n as usize), buf)
}

/// Writes `buf[0..len)` to `fd` at `pos` from the registered buffer (WRITE_FIXED).
pub async fn write_fixed_at(fd: RawFd, buf: FixedBuf, pos: u64) -> (io::Result<usize>, FixedBuf) {
    let driver = buf.pool.driver.clone();
    // SAFETY: as in `read_fixed_at`.
    let op = unsafe {
        Op::submit_on(driver, buf, |b| {
            opcode::WriteFixed::new(types::Fd(fd), b.ptr(), b.len as u32, b.index)
                .offset(pos)
                .build()
        })
    };
    let (c, buf) = op.await;
    (c.io_result().map(|n| n as usize), buf)
}
