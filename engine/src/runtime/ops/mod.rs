//! Async, ownership-passing io_uring ops.
//!
//! A buffer moves into the op and comes back with the result, because the kernel uses it until
//! the completion arrives; a borrowed buffer could be freed by a dropped future while the kernel
//! still writes into it. If the op's future is dropped early, the ring driver keeps the buffer
//! until the completion (see [`ring`](super::ring)).
//!
//! Buffer semantics: a read (`read_at`, `recv`, `read_fixed_at`) fills the buffer's initialized
//! region `[0, len)` (for a `Vec<u8>`, its `len()`, not its capacity) starting at index 0 and
//! returns how many bytes it wrote there; the length is never changed. A write sends `[0, len)`.
//!
//! One op moves at most [`MAX_OP_BYTES`]; larger buffers give short counts (the `*_all`
//! helpers loop).

mod file;
mod fixed;
mod net;
mod splice;

pub use file::{fdatasync, read_at, write_all_at, write_at, write_at_then_fdatasync};
pub use fixed::{
    read_fixed_at, write_fixed_at, FixedBuf, FixedBufPool, MAX_FIXED_BUFFERS, MAX_FIXED_BUF_BYTES,
};
pub use net::{
    accept_multishot, connect, listen_reuseport, poll, recv, send, send_all, AcceptStream,
};
pub use splice::{send_file_range, splice, Pipe, PIPE_BYTES, SEND_FILE_POLL_WAITS, SPLICED_BYTES};

/// Most bytes one read/write/splice op moves: Linux caps a single transfer at `MAX_RW_COUNT`
/// (2 GiB minus a page) anyway; clamping here keeps lengths inside the SQE's u32.
pub const MAX_OP_BYTES: usize = 0x7fff_f000;

/// A buffer an op may read from: `'static`, owning its memory at a stable address.
///
/// # Safety
/// `stable_ptr` must point to at least `bytes_init` initialized bytes, and that memory must not
/// move or be freed while the value is moved around (only when it is dropped): the kernel keeps
/// using the pointer after the buffer has moved into the op.
pub unsafe trait IoBuf: 'static {
    /// Start of the buffer.
    fn stable_ptr(&self) -> *const u8;
    /// Bytes readable from `stable_ptr`.
    fn bytes_init(&self) -> usize;
}

/// A buffer an op may write into: the region `[0, bytes_init)`.
///
/// # Safety
/// As for [`IoBuf`], and `stable_mut_ptr` must be valid for writes of `bytes_init` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer, writable.
    fn stable_mut_ptr(&mut self) -> *mut u8;
}

// SAFETY: a Vec's heap block does not move when the Vec value moves; `len` bytes are initialized.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf`; the Vec uniquely owns its block, so writes through it are exclusive.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

// SAFETY: a boxed slice's heap block does not move when the box moves.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf`; the box uniquely owns its block.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

/// The op length for a buffer of `len` bytes.
fn op_len(len: usize) -> u32 {
    len.min(MAX_OP_BYTES) as u32
}
