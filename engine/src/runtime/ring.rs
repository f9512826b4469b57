//! The ring driver: one io_uring per thread, its op slots, and the futures that await them.
//!
//! Every submitted SQE gets a slot in a slab; the slot's index is the SQE's `user_data`, so a CQE
//! finds its slot in O(1). A slot is
//! - [`Slot::Single`]: a one-shot op waiting for (or holding) its completion;
//! - [`Slot::Multi`]: a multishot op queueing completions while they carry `IORING_CQE_F_MORE`;
//! - [`Slot::Orphan`]: the future that issued the op was dropped while the kernel still used the
//!   op's memory. The slot then owns the op's resources (buffers, timespecs, fds) until the final
//!   CQE arrives, so dropping a future mid-flight never frees memory the kernel writes into.
//!
//! SQEs are queued and submitted lazily, once per executor turn (or when the SQ is full), so the
//! ops that many tasks issue in one turn cost one `io_uring_enter`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::slab::Slab;

/// Submission queue size of each thread's ring, in entries. Big enough that a turn of the
/// executor (at most [`TASKS_PER_TURN`](super::executor::TASKS_PER_TURN) tasks, each issuing a
/// few ops) rarely fills it; a full SQ is submitted early, never an error.
pub const RING_ENTRIES: u32 = 1024;

/// Completion queue size, in entries: four times the SQ so that bursts of multishot completions
/// (accepts) fit between two reaps without spilling into the kernel's overflow list.
pub const CQ_ENTRIES: u32 = 4 * RING_ENTRIES;

/// `user_data` of the eventfd read that lets another thread wake a ring sleeping in
/// `io_uring_enter`.
const WAKE_TOKEN: u64 = u64::MAX;
/// `user_data` of SQEs whose completion nobody needs (cancel requests, drain timers).
const IGNORED_TOKEN: u64 = u64::MAX - 1;
/// Size of an eventfd counter, in bytes.
const EVENTFD_VALUE_BYTES: usize = 8;
/// How long dropping a driver waits for its cancelled in-flight ops to complete before leaking
/// their resources instead of freeing memory the kernel may still use.
const DROP_DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Granularity of that wait.
const DROP_DRAIN_TICK: Duration = Duration::from_millis(20);

/// The driver as ops hold it: shared within its thread, never across threads.
pub(crate) type DriverRef = Rc<RefCell<Driver>>;

/// One CQE's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The op's result: a count or a descriptor if `>= 0`, `-errno` otherwise.
    pub(crate) result: i32,
    /// `IORING_CQE_F_*` flags.
    pub(crate) flags: u32,
}

impl Completion {
    /// The result as an `io::Result`.
    pub(crate) fn io_result(self) -> io::Result<u32> {
        if self.result < 0 {
            Err(io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }

    /// Whether more CQEs follow for this (multishot) op.
    pub(crate) fn more(self) -> bool {
        cqueue::more(self.flags)
    }
}

/// What to do with a completion nobody will read (e.g. close an accepted fd).
pub(crate) type Discard = fn(Completion);

enum Slot {
    Single {
        waker: Option<Waker>,
        done: Option<Completion>,
    },
    Multi {
        waker: Option<Waker>,
        queue: VecDeque<Completion>,
        discard: Option<Discard>,
    },
    Orphan {
        /// Kept alive (never read) until the kernel is done with them.
        resources: Option<Box<dyn Any>>,
        multishot: bool,
        discard: Option<Discard>,
    },
}

/// One thread's ring and op slots.
pub(crate) struct Driver {
    ring: IoUring,
    slots: Slab<Slot>,
    /// Resources of orphaned ops whose final CQE arrived; dropped by the executor after it
    /// releases its borrow of the driver (their destructors may need the driver themselves).
    graveyard: Vec<Box<dyn Any>>,
    wake_fd: Arc<OwnedFd>,
    wake_buf: Box<[u8; EVENTFD_VALUE_BYTES]>,
    wake_armed: bool,
    drain_tick: Box<types::Timespec>,
}

/// Most io-wq workers per ring for bounded work (regular file I/O, fdatasync).
pub const IOWQ_MAX_BOUNDED_WORKERS: u32 = 32;
/// Most io-wq workers per ring for unbounded work (sockets, pipes): splices to slow sockets
/// must not multiply kernel threads without limit.
pub const IOWQ_MAX_UNBOUNDED_WORKERS: u32 = 16;

impl Driver {
    pub(crate) fn new(wake_fd: Arc<OwnedFd>) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_clamp()
            .build(RING_ENTRIES)?;
        // Bounded io-wq workers run the file ops that cannot complete inline, fdatasync above
        // all: each sync holds a worker until the disk answers. Enough of them let a group-commit
        // round's fdatasyncs (one per dirty partition) run together so the filesystem journal
        // batches them; measured with the append bench, 32 beat the kernel default (4 per CPU)
        // by about a third at 1024 partitions. Failure (old kernel) only costs that tuning.
        let mut max_workers = [IOWQ_MAX_BOUNDED_WORKERS, IOWQ_MAX_UNBOUNDED_WORKERS];
        if let Err(e) = ring.submitter().register_iowq_max_workers(&mut max_workers) {
            tracing::warn!("could not set io-wq worker limits: {e}");
        }
        Ok(Driver {
            ring,
            slots: Slab::new(),
            graveyard: Vec::new(),
            wake_fd,
            wake_buf: Box::new([0; EVENTFD_VALUE_BYTES]),
            wake_armed: false,
            drain_tick: Box::new(types::Timespec::from(DROP_DRAIN_TICK)),
        })
    }

    /// Queues `entries` contiguously in the SQ (linked SQEs must be adjacent), submitting first
    /// if there is not enough room.
    ///
    /// # Safety
    /// Every pointer an entry carries must stay valid until the entry's CQE is reaped: it points
    /// into memory owned by the op's future or slot (see [`Op`]), or into the driver itself.
    unsafe fn push(&mut self, entries: &[squeue::Entry]) {
        loop {
            {
                let mut sq = self.ring.submission();
                if sq.capacity() - sq.len() >= entries.len() {
                    // SAFETY: the caller guarantees the entries' pointers outlive the ops, and
                    // there is room for all of them.
                    unsafe { sq.push_multiple(entries) }.expect("SQ has room for the entries");
                    return;
                }
            }
            self.submit();
        }
    }

    /// Hands queued SQEs to the kernel (and flushes an overflowed CQ). Transient refusals (EBUSY
    /// while completions are backlogged, EAGAIN, EINTR) are answered by reaping; the next turn
    /// submits again.
    pub(crate) fn submit(&mut self) {
        match self.ring.submit() {
            Ok(_) => {}
            Err(e) if is_transient(&e) => self.reap(),
            Err(e) => panic!("io_uring_enter (submit) failed: {e}"),
        }
    }

    /// Submits if anything is queued or the kernel holds overflowed completions.
    pub(crate) fn submit_if_needed(&mut self) {
        let mut sq = self.ring.submission();
        sq.sync();
        let needed = !sq.is_empty() || sq.cq_overflow();
        drop(sq);
        if needed {
            self.submit();
        }
    }

    /// Submits and sleeps until at least one completion arrives (the armed eventfd read turns a
    /// remote wake into one).
    pub(crate) fn submit_and_wait(&mut self) {
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => panic!("io_uring_enter (wait) failed: {e}"),
        }
    }

    /// Makes sure a read of the wake eventfd is in flight, so a remote `write` to it completes a
    /// CQE and ends [`submit_and_wait`](Self::submit_and_wait).
    pub(crate) fn arm_wake(&mut self) {
        if self.wake_armed {
            return;
        }
        let entry = opcode::Read::new(
            types::Fd(self.wake_fd.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            EVENTFD_VALUE_BYTES as u32,
        )
        .offset(u64::MAX)
        .build()
        .user_data(WAKE_TOKEN);
        // SAFETY: the buffer is boxed in the driver and the eventfd is kept open by the `Arc`;
        // `Drop` waits for (or leaks) this read before freeing either.
        unsafe { self.push(&[entry]) };
        self.wake_armed = true;
    }

    /// Moves every available CQE into its slot, waking the waiting tasks.
    pub(crate) fn reap(&mut self) {
        let Driver {
            ring,
            slots,
            graveyard,
            wake_armed,
            ..
        } = self;
        for cqe in ring.completion() {
            let c = Completion {
                result: cqe.result(),
                flags: cqe.flags(),
            };
            match cqe.user_data() {
                WAKE_TOKEN => *wake_armed = false,
                IGNORED_TOKEN => {}
                key => complete(slots, graveyard, key as usize, c),
            }
        }
    }

    /// Resources freed by completions since the last call; drop them without borrowing the
    /// driver.
    pub(crate) fn take_graveyard(&mut self) -> Vec<Box<dyn Any>> {
        std::mem::take(&mut self.graveyard)
    }

    /// Queues a one-shot op and returns its slot.
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    unsafe fn submit_single(&mut self, entry: squeue::Entry) -> usize {
        let key = self.slots.insert(Slot::Single {
            waker: None,
            done: None,
        });
        // SAFETY: forwarded from the caller.
        unsafe { self.push(&[entry.user_data(key as u64)]) };
        key
    }

    /// Queues `first` linked (IOSQE_IO_LINK) to `second`: `second` starts only after `first`
    /// completes in full, and is cancelled (-ECANCELED) if `first` fails or is short.
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    unsafe fn submit_linked(
        &mut self,
        first: squeue::Entry,
        second: squeue::Entry,
    ) -> (usize, usize) {
        let single = || Slot::Single {
            waker: None,
            done: None,
        };
        let a = self.slots.insert(single());
        let b = self.slots.insert(single());
        let entries = [
            first.flags(squeue::Flags::IO_LINK).user_data(a as u64),
            second.user_data(b as u64),
        ];
        // SAFETY: forwarded from the caller.
        unsafe { self.push(&entries) };
        (a, b)
    }

    /// Queues a multishot op.
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    unsafe fn submit_multi(&mut self, entry: squeue::Entry, discard: Option<Discard>) -> usize {
        let key = self.slots.insert(Slot::Multi {
            waker: None,
            queue: VecDeque::new(),
            discard,
        });
        // SAFETY: forwarded from the caller.
        unsafe { self.push(&[entry.user_data(key as u64)]) };
        key
    }

    fn poll_single(&mut self, key: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        match self.slots.get_mut(key) {
            Some(Slot::Single { waker, done }) => {
                if let Some(c) = done.take() {
                    self.slots.remove(key);
                    return Poll::Ready(c);
                }
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            _ => unreachable!("op slot {key} is not a pending one-shot op"),
        }
    }

    /// The next completion of a multishot op; the slot is freed with the final one (no
    /// `IORING_CQE_F_MORE`).
    fn poll_multi(&mut self, key: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        match self.slots.get_mut(key) {
            Some(Slot::Multi { waker, queue, .. }) => {
                if let Some(c) = queue.pop_front() {
                    if !c.more() {
                        self.slots.remove(key);
                    }
                    return Poll::Ready(c);
                }
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            _ => unreachable!("op slot {key} is not a multishot op"),
        }
    }

    /// The op's future is gone. A finished op's slot is freed and its resources returned (to be
    /// dropped by the caller once it has released the driver); an op still in flight is
    /// cancelled and its slot keeps the resources until the final CQE.
    fn release(&mut self, key: usize, resources: Option<Box<dyn Any>>) -> Option<Box<dyn Any>> {
        let Some(slot) = self.slots.get_mut(key) else {
            return resources;
        };
        match slot {
            Slot::Single { done: Some(_), .. } => {
                self.slots.remove(key);
                resources
            }
            Slot::Single { done: None, .. } => {
                *slot = Slot::Orphan {
                    resources,
                    multishot: false,
                    discard: None,
                };
                self.cancel(key);
                None
            }
            Slot::Multi { queue, discard, .. } => {
                let ended = queue.back().is_some_and(|c| !c.more());
                let discard = *discard;
                for c in queue.drain(..) {
                    if let Some(d) = discard {
                        d(c);
                    }
                }
                if ended {
                    self.slots.remove(key);
                    resources
                } else {
                    *slot = Slot::Orphan {
                        resources,
                        multishot: true,
                        discard,
                    };
                    self.cancel(key);
                    None
                }
            }
            Slot::Orphan { .. } => unreachable!("op slot {key} released twice"),
        }
    }

    /// Asks the kernel to cancel the op in `key`; its CQE (-ECANCELED, or the real result if it
    /// was too late) still arrives and frees the slot.
    fn cancel(&mut self, key: usize) {
        let entry = opcode::AsyncCancel::new(key as u64)
            .build()
            .user_data(IGNORED_TOKEN);
        // SAFETY: a cancel request carries no pointers.
        unsafe { self.push(&[entry]) };
    }

    /// Registers `iovecs` as this ring's fixed buffers.
    ///
    /// # Safety
    /// The memory must stay allocated until the buffers are unregistered.
    pub(crate) unsafe fn register_buffers(&self, iovecs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.ring.submitter().register_buffers(iovecs) }
    }

    pub(crate) fn unregister_buffers(&self) -> io::Result<()> {
        self.ring.submitter().unregister_buffers()
    }

    /// Number of ops whose slot is still held (in flight, or completed and not yet read).
    #[cfg(test)]
    pub(crate) fn slots_in_use(&self) -> usize {
        self.slots.len()
    }
}

fn complete(slots: &mut Slab<Slot>, graveyard: &mut Vec<Box<dyn Any>>, key: usize, c: Completion) {
    match slots.get_mut(key) {
        Some(Slot::Single { waker, done }) => {
            *done = Some(c);
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
        Some(Slot::Multi { waker, queue, .. }) => {
            queue.push_back(c);
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
        Some(Slot::Orphan {
            multishot, discard, ..
        }) => {
            if let Some(d) = discard {
                d(c);
            }
            if !*multishot || !c.more() {
                if let Some(Slot::Orphan {
                    resources: Some(r), ..
                }) = slots.remove(key)
                {
                    graveyard.push(r);
                }
            }
        }
        None => tracing::debug!(key, "completion for a free op slot"),
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

impl Drop for Driver {
    /// Cancels every op still in flight and waits (bounded) for their completions, so no buffer
    /// is freed while the kernel may still write into it. Whatever does not complete in time is
    /// leaked rather than freed.
    fn drop(&mut self) {
        let in_flight: Vec<usize> = self.slots.keys().collect();
        for key in in_flight {
            if matches!(
                self.slots.get_mut(key),
                Some(Slot::Single { done: Some(_), .. })
            ) {
                continue;
            }
            self.cancel(key);
        }
        if self.wake_armed {
            let entry = opcode::AsyncCancel::new(WAKE_TOKEN)
                .build()
                .user_data(IGNORED_TOKEN);
            // SAFETY: a cancel request carries no pointers.
            unsafe { self.push(&[entry]) };
        }
        let deadline = Instant::now() + DROP_DRAIN_LIMIT;
        let busy = |d: &mut Driver| {
            d.wake_armed
                || d.slots.keys().collect::<Vec<_>>().into_iter().any(|k| {
                    !matches!(d.slots.get_mut(k), Some(Slot::Single { done: Some(_), .. }))
                })
        };
        while busy(self) && Instant::now() < deadline {
            let tick = opcode::Timeout::new(&*self.drain_tick as *const types::Timespec)
                .build()
                .user_data(IGNORED_TOKEN);
            // SAFETY: the timespec is boxed in the driver, which outlives this loop.
            unsafe { self.push(&[tick]) };
            self.submit_and_wait();
            self.reap();
        }
        if busy(self) {
            tracing::warn!("io_uring ops still in flight at ring teardown; leaking their memory");
            for key in self.slots.keys().collect::<Vec<_>>() {
                if let Some(Slot::Orphan {
                    resources: Some(r), ..
                }) = self.slots.remove(key)
                {
                    std::mem::forget(r);
                }
            }
            if self.wake_armed {
                std::mem::forget(std::mem::replace(
                    &mut self.wake_buf,
                    Box::new([0; EVENTFD_VALUE_BYTES]),
                ));
                std::mem::forget(self.wake_fd.clone());
            }
            std::mem::forget(std::mem::replace(
                &mut self.drain_tick,
                Box::new(types::Timespec::new()),
            ));
        }
    }
}

/// A one-shot op in flight, owning the resources (`T`) its SQE points into. Awaiting it yields
/// the completion and gives the resources back; dropping it early hands them to the driver
/// until the kernel is done with them.
pub(crate) struct Op<T: 'static> {
    driver: DriverRef,
    key: Option<usize>,
    data: Option<T>,
}

// The resources are never pinned: the SQE points into their heap memory, not into the `Op`.
impl<T: 'static> Unpin for Op<T> {}

impl<T: 'static> Op<T> {
    /// Queues the SQE that `build` makes from `data` on `driver`'s ring.
    ///
    /// # Safety
    /// The entry may point only into memory that `data` owns at a stable address (heap memory
    /// that does not move when `data` moves, see [`IoBuf`](super::ops::IoBuf)) or into memory that
    /// outlives the op; such memory must remain valid for what the op does with it.
    pub(crate) unsafe fn submit_on(
        driver: DriverRef,
        mut data: T,
        build: impl FnOnce(&mut T) -> squeue::Entry,
    ) -> Self {
        let entry = build(&mut data);
        // SAFETY: the entry's pointers go into `data`, which the op (or its orphaned slot) keeps
        // alive until the CQE.
        let key = unsafe { driver.borrow_mut().submit_single(entry) };
        Op {
            driver,
            key: Some(key),
            data: Some(data),
        }
    }

    /// [`submit_on`](Self::submit_on) on this thread's ring.
    ///
    /// # Safety
    /// As for [`submit_on`](Self::submit_on).
    pub(crate) unsafe fn submit(data: T, build: impl FnOnce(&mut T) -> squeue::Entry) -> Self {
        let driver = super::executor::current().driver.clone();
        // SAFETY: forwarded from the caller.
        unsafe { Self::submit_on(driver, data, build) }
    }

    /// Queues two ops, the second linked behind the first (see [`Driver::submit_linked`]).
    ///
    /// # Safety
    /// As for [`submit_on`](Self::submit_on), for both.
    pub(crate) unsafe fn submit_linked<U: 'static>(
        mut first: T,
        build_first: impl FnOnce(&mut T) -> squeue::Entry,
        mut second: U,
        build_second: impl FnOnce(&mut U) -> squeue::Entry,
    ) -> (Op<T>, Op<U>) {
        let driver = super::executor::current().driver.clone();
        let a = build_first(&mut first);
        let b = build_second(&mut second);
        // SAFETY: each entry points into the data of its own op, kept alive as in `submit_on`.
        let (ka, kb) = unsafe { driver.borrow_mut().submit_linked(a, b) };
        (
            Op {
                driver: driver.clone(),
                key: Some(ka),
                data: Some(first),
            },
            Op {
                driver,
                key: Some(kb),
                data: Some(second),
            },
        )
    }
}

impl<T: 'static> Future for Op<T> {
    type Output = (Completion, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let key = self.key.expect("Op polled after completion");
        let c = std::task::ready!(self.driver.borrow_mut().poll_single(key, cx));
        self.key = None;
        let data = self
            .data
            .take()
            .expect("op resources present until completion");
        Poll::Ready((c, data))
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let resources = self.data.take().map(|d| Box::new(d) as Box<dyn Any>);
        match self.driver.try_borrow_mut() {
            Ok(mut d) => {
                let leftover = d.release(key, resources);
                drop(d);
                drop(leftover);
            }
            // Only reachable if a destructor runs inside a driver call; keeping the memory
            // forever is the sound choice there.
            Err(_) => std::mem::forget(resources),
        }
    }
}

/// A multishot op in flight (no owned resources). Yields completions until one arrives without
/// `IORING_CQE_F_MORE`; dropping it cancels the op and routes later completions to its
/// [`Discard`].
pub(crate) struct MultiOp {
    driver: DriverRef,
    key: Option<usize>,
}

impl MultiOp {
    /// # Safety
    /// The entry must carry no pointer into memory that does not outlive the op.
    pub(crate) unsafe fn submit(entry: squeue::Entry, discard: Option<Discard>) -> Self {
        let driver = super::executor::current().driver.clone();
        // SAFETY: forwarded from the caller.
        let key = unsafe { driver.borrow_mut().submit_multi(entry, discard) };
        MultiOp {
            driver,
            key: Some(key),
        }
    }

    /// The next completion; `Ready(None)` once the final one has been returned.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        let Some(key) = self.key else {
            return Poll::Ready(None);
        };
        let c = std::task::ready!(self.driver.borrow_mut().poll_multi(key, cx));
        if !c.more() {
            self.key = None;
        }
        Poll::Ready(Some(c))
    }
}

impl Drop for MultiOp {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if let Ok(mut d) = self.driver.try_borrow_mut() {
                let leftover = d.release(key, None);
                drop(d);
                drop(leftover);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::task::Poll;
    use std::time::Duration;

    use crate::runtime::executor::{block_on, current, sleep};
    use crate::runtime::ops::read_at;

    #[test]
    fn dropped_op_keeps_its_slot_until_the_cancellation_completes() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors owned here.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let rfd = r.as_raw_fd();
        block_on(async move {
            let driver = current().driver.clone();
            let base = driver.borrow().slots_in_use();
            let mut read = Box::pin(read_at(rfd, vec![0u8; 4096], 0));
            poll_fn(|cx| {
                assert!(read.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(driver.borrow().slots_in_use(), base + 1);
            drop(read);
            // Orphaned: the slot (and the buffer in it) lives until the CQE arrives.
            assert_eq!(driver.borrow().slots_in_use(), base + 1);
            sleep(Duration::from_millis(5)).await;
            assert_eq!(driver.borrow().slots_in_use(), base);
        });
    }
}
