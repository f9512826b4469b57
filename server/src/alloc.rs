//! The broker's global allocator: the system allocator, except that very large allocations are
//! reserved lazily.
//!
//! Why: the request decoders of `kafka-protocol` size a `Vec` from an array length read off the
//! wire (`Vec::with_capacity(n)`) before decoding the elements. A 14-byte Metadata request that
//! claims 2^31 topics asks for ~150 GB; the system allocator refuses and Rust aborts the whole
//! broker. Served here by an `MAP_NORESERVE` anonymous mapping, such a reservation costs address
//! space only: no page is committed until written, the element decoder fails at the end of the
//! (size-checked) frame after writing at most a frame's worth of elements, and the mapping is
//! unmapped when the `Vec` drops. The request is refused with a closed connection instead of a
//! crash. Legitimate allocations of this size do not exist in the broker (frames are capped by
//! `socket.request.max.bytes`, reads by the fetch limits).

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are reserved lazily with mmap.
pub const LAZY_ALLOCATION_MIN_BYTES: usize = 1 << 30;
/// mmap returns page-aligned memory; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

pub struct BrokerAllocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_ALLOCATION_MIN_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: every pointer handed out is either the system allocator's (and goes back to it, since
// `dealloc` dispatches on the same layout test as `alloc`) or a fresh private anonymous mapping
// of at least `layout.size()` bytes, page-aligned (so aligned for any `align <= PAGE_BYTES`),
// readable and writable, zero-filled, and unmapped exactly once in `dealloc`.
unsafe impl GlobalAlloc for BrokerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            // SAFETY: forwarded with the caller's guarantees (non-zero size layout).
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping touches no existing memory; the result is
        // checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // Anonymous mappings are zero-filled; writing zeros would commit every page.
            // SAFETY: same contract as `alloc`.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            // SAFETY: `ptr` came from the mmap in `alloc` with this same size (same layout).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System.alloc*` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_reservation_is_lazy_and_freed() {
        // ~150 GB: more than the machine has; only the pages written are committed.
        let mut v: Vec<u64> = Vec::with_capacity(1 << 34);
        v.push(7);
        v.extend(0..1000u64);
        assert_eq!(v[0], 7);
        assert_eq!(v.len(), 1001);
        drop(v);
        let small: Vec<u8> = vec![1; 1024];
        assert_eq!(small.iter().map(|&b| b as usize).sum::<usize>(), 1024);
    }
}
