//! The per-thread executor: `!Send` tasks, a local ready queue, a remote inbox, and the loop that
//! drives them together with the thread's ring.
//!
//! Each thread that calls [`block_on`] gets one [`Runtime`] (ring + tasks), kept for the thread's
//! lifetime so fixed buffers registered on the ring stay valid across `block_on` calls.
//!
//! Wakers are `Send + Sync` so any thread may wake a task: on the owning thread a wake pushes the
//! task onto the local ready queue; from another thread it goes through the runtime's inbox and,
//! if the owner is (or may be) asleep in `io_uring_enter`, one eventfd write, which completes the
//! eventfd read armed in the ring.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use io_uring::{opcode, types};

use super::ring::{Driver, DriverRef, Op};
use super::slab::Slab;

/// Most tasks polled per turn before the loop reaps completions and drains remote wakes, so
/// I/O and cross-thread work are not starved by a long ready queue.
pub const TASKS_PER_TURN: usize = 64;

/// Waker key of the future passed to [`block_on`] (never a task key: task indices are < 2^32-1).
const MAIN_KEY: u64 = u64::MAX;

/// The part of a runtime that other threads touch: the remote wake path.
pub(crate) struct Shared {
    inbox_tx: Sender<u64>,
    inbox_rx: Receiver<u64>,
    eventfd: Arc<OwnedFd>,
    /// Set while the owner is about to sleep (or sleeps) in the ring; a remote waker that finds it
    /// set clears it and writes the eventfd, so one sleep costs at most one write.
    sleeping: AtomicBool,
}

impl Shared {
    fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let eventfd = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let (inbox_tx, inbox_rx) = crossbeam_channel::unbounded();
        Ok(Shared {
            inbox_tx,
            inbox_rx,
            eventfd,
            sleeping: AtomicBool::new(false),
        })
    }

    fn remote_wake(&self, key: u64) {
        // Cannot fail: `self` owns the receiver.
        let _ = self.inbox_tx.send(key);
        // Pairs with the fence in `Runtime::turn`: either the owner sees the key in the inbox
        // before sleeping, or we see `sleeping` and wake it.
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.notify();
        }
    }

    fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we keep open. EAGAIN (counter
        // saturated) means a wake is already pending, so the result is deliberately ignored.
        let _ = unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// A task's waker. `scheduled` deduplicates wakes: a task is queued at most once until polled.
struct TaskWaker {
    key: u64,
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = CURRENT
            .try_with(|c| match c.try_borrow() {
                Ok(rt) => match &*rt {
                    Some(rt) if Arc::ptr_eq(&rt.shared, &self.shared) => {
                        match rt.ready.try_borrow_mut() {
                            Ok(mut q) => {
                                q.push_back(self.key);
                                true
                            }
                            Err(_) => false,
                        }
                    }
                    _ => false,
                },
                Err(_) => false,
            })
            .unwrap_or(false);
        if !local {
            self.shared.remote_wake(self.key);
        }
    }
}

struct Task {
    /// Spawn sequence number, the upper half of the waker key: a stale wake for a freed (and
    /// reused) slot does not poll the new task.
    seq: u32,
    /// `None` while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    header: Arc<TaskWaker>,
}

/// One thread's ring and executor.
pub(crate) struct Runtime {
    // Field order is drop order: tasks (whose ops release into the driver) before the driver.
    tasks: RefCell<Slab<Task>>,
    ready: RefCell<VecDeque<u64>>,
    next_seq: Cell<u32>,
    in_block_on: Cell<bool>,
    pub(crate) driver: DriverRef,
    shared: Arc<Shared>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// This thread's runtime, created on first use.
pub(crate) fn try_current() -> io::Result<Rc<Runtime>> {
    CURRENT.with(|c| {
        if let Some(rt) = &*c.borrow() {
            return Ok(rt.clone());
        }
        let shared = Arc::new(Shared::new()?);
        let driver = Rc::new(RefCell::new(Driver::new(shared.eventfd.clone())?));
        let rt = Rc::new(Runtime {
            tasks: RefCell::new(Slab::new()),
            ready: RefCell::new(VecDeque::new()),
            next_seq: Cell::new(0),
            in_block_on: Cell::new(false),
            driver,
            shared,
        });
        *c.borrow_mut() = Some(rt.clone());
        Ok(rt)
    })
}

/// This thread's runtime; panics if the ring cannot be created (io_uring unavailable).
pub(crate) fn current() -> Rc<Runtime> {
    try_current().unwrap_or_else(|e| panic!("cannot create this thread's io_uring: {e}"))
}

impl Runtime {
    fn spawn_boxed(&self, future: Pin<Box<dyn Future<Output = ()>>>) {
        let mut tasks = self.tasks.borrow_mut();
        let idx = tasks.vacant_key();
        assert!(idx < u32::MAX as usize, "too many tasks");
        let seq = self.next_seq.get();
        self.next_seq.set(seq.wrapping_add(1));
        let key = (u64::from(seq) << 32) | idx as u64;
        let header = Arc::new(TaskWaker {
            key,
            scheduled: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        tasks.insert(Task {
            seq,
            future: Some(future),
            header,
        });
        drop(tasks);
        self.ready.borrow_mut().push_back(key);
    }

    fn run_task(&self, key: u64) {
        let idx = (key & u64::from(u32::MAX)) as usize;
        let seq = (key >> 32) as u32;
        let (mut future, header) = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(idx) {
                Some(t) if t.seq == seq => match t.future.take() {
                    Some(f) => (f, t.header.clone()),
                    None => return,
                },
                _ => return,
            }
        };
        // Cleared before polling: a wake during the poll queues the task again.
        header.scheduled.store(false, Ordering::Release);
        let waker = Waker::from(header);
        let done = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        let mut finished = None;
        let mut removed = None;
        match tasks.get_mut(idx) {
            Some(t) if t.seq == seq && !done => t.future = Some(future),
            Some(t) if t.seq == seq => {
                removed = tasks.remove(idx);
                finished = Some(future);
            }
            _ => finished = Some(future),
        }
        drop(tasks);
        // Dropped outside the borrow: a task's destructor may spawn or release ops.
        drop(finished);
        drop(removed);
    }

    fn drain_inbox(&self) {
        let mut ready = self.ready.borrow_mut();
        while let Ok(key) = self.shared.inbox_rx.try_recv() {
            ready.push_back(key);
        }
    }

    /// Submits queued SQEs and reaps CQEs; if `idle`, sleeps in the ring until a completion or a
    /// remote wake.
    fn turn(&self, idle: bool) {
        let graveyard = {
            let mut d = self.driver.borrow_mut();
            if idle {
                d.arm_wake();
                self.shared.sleeping.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if self.shared.inbox_rx.is_empty() {
                    d.submit_and_wait();
                } else {
                    d.submit();
                }
                self.shared.sleeping.store(false, Ordering::SeqCst);
            } else {
                d.submit_if_needed();
            }
            d.reap();
            d.take_graveyard()
        };
        drop(graveyard);
    }

    /// Drops every task (their in-flight ops are cancelled and orphaned) and forgets stale wakes.
    fn drop_all_tasks(&self) {
        loop {
            let tasks = std::mem::replace(&mut *self.tasks.borrow_mut(), Slab::new());
            if tasks.is_empty() {
                break;
            }
            drop(tasks);
        }
        self.ready.borrow_mut().clear();
        while self.shared.inbox_rx.try_recv().is_ok() {}
        let graveyard = self.driver.borrow_mut().take_graveyard();
        drop(graveyard);
    }
}

/// Resets the runtime when `block_on` returns or unwinds.
struct BlockOnGuard<'a>(&'a Runtime);

impl Drop for BlockOnGuard<'_> {
    fn drop(&mut self) {
        self.0.drop_all_tasks();
        self.0.in_block_on.set(false);
    }
}

/// Runs `fut` to completion on this thread, together with every task it spawns.
///
/// Creates the thread's runtime (ring of [`RING_ENTRIES`](super::ring::RING_ENTRIES)) on first
/// use and keeps it for later calls. When `fut` completes, tasks still running are dropped (their
/// in-flight ops are cancelled safely), so each call starts from a clean executor.
///
/// # Panics
/// If called from inside `block_on` on the same thread, or if io_uring is unavailable.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let rt = current();
    assert!(
        !rt.in_block_on.replace(true),
        "block_on called from inside block_on on the same thread"
    );
    let _guard = BlockOnGuard(&rt);
    let mut fut = std::pin::pin!(fut);
    let main = Arc::new(TaskWaker {
        key: MAIN_KEY,
        scheduled: AtomicBool::new(true),
        shared: rt.shared.clone(),
    });
    let main_waker = Waker::from(main.clone());
    rt.ready.borrow_mut().push_back(MAIN_KEY);
    loop {
        for _ in 0..TASKS_PER_TURN {
            let Some(key) = rt.ready.borrow_mut().pop_front() else {
                break;
            };
            if key == MAIN_KEY {
                main.scheduled.store(false, Ordering::Release);
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&main_waker)) {
                    return v;
                }
            } else {
                rt.run_task(key);
            }
        }
        rt.drain_inbox();
        let idle = rt.ready.borrow().is_empty();
        rt.turn(idle);
        rt.drain_inbox();
    }
}

struct JoinState<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The task was dropped before finishing (its `block_on` ended).
    dropped: bool,
}

/// Awaits a spawned task's output. Dropping the handle detaches the task.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has produced its output.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().value.is_some()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    /// # Panics
    /// If the task was dropped before completing.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.state.borrow_mut();
        if let Some(v) = s.value.take() {
            return Poll::Ready(v);
        }
        assert!(!s.dropped, "the task was dropped before it completed");
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Lives inside a spawned task; reports its output, or its drop, to the `JoinHandle`.
struct Completer<T>(Rc<RefCell<JoinState<T>>>);

impl<T> Completer<T> {
    fn finish(self, value: T) {
        let waker = {
            let mut s = self.0.borrow_mut();
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.borrow_mut();
            if s.value.is_some() {
                return;
            }
            s.dropped = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Spawns a `!Send` task on this thread's executor. It runs while a [`block_on`] runs on this
/// thread.
pub fn spawn<F, T>(fut: F) -> JoinHandle<T>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    let state = Rc::new(RefCell::new(JoinState {
        value: None,
        waker: None,
        dropped: false,
    }));
    let completer = Completer(state.clone());
    current().spawn_boxed(Box::pin(async move {
        let value = fut.await;
        // Completing after a normal finish; on drop the completer reports the cancellation.
        let c = completer;
        c.finish(value);
    }));
    JoinHandle { state }
}

/// Lets other ready tasks (and the ring) run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Sleeps for at least `d`, as an io_uring timeout (no timer thread, no timer wheel).
pub async fn sleep(d: Duration) {
    let ts = Box::new(types::Timespec::from(d));
    // SAFETY: the SQE points at the boxed timespec, which the op owns until its CQE.
    let op = unsafe {
        Op::submit(ts, |ts| {
            opcode::Timeout::new(&**ts as *const types::Timespec).build()
        })
    };
    // -ETIME is the normal expiry; anything else (e.g. -ECANCELED at teardown) also ends the sleep.
    let _ = op.await;
}

/// Sleeps until `deadline` (returns at once if it has passed).
pub async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        sleep(deadline - now).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_returns_value_and_is_reentrant_across_calls() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        assert_eq!(block_on(async { spawn(async { 3 }).await }), 3);
    }

    #[test]
    fn leftover_tasks_are_dropped_when_block_on_ends() {
        let flag = Rc::new(Cell::new(false));
        struct SetOnDrop(Rc<Cell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let f = flag.clone();
        block_on(async move {
            spawn(async move {
                let _g = SetOnDrop(f);
                sleep(Duration::from_secs(3600)).await;
            });
            yield_now().await;
        });
        assert!(flag.get());
        // The cancelled timer's slot is freed once its CQE arrives.
        block_on(sleep(Duration::from_millis(1)));
        assert_eq!(current().driver.borrow().slots_in_use(), 0);
    }

    #[test]
    fn wake_from_another_thread_reaches_a_sleeping_ring() {
        // block_on runs on its own thread so that a lost wake fails the test instead of
        // hanging it.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = block_on(async {
                let (tx, rx) = crossbeam_channel::bounded::<Waker>(1);
                let flag = Arc::new(AtomicBool::new(false));
                let f2 = flag.clone();
                let t = std::thread::spawn(move || {
                    let w = rx.recv().unwrap();
                    // Long enough for the ring to go to sleep.
                    std::thread::sleep(Duration::from_millis(50));
                    f2.store(true, Ordering::SeqCst);
                    w.wake();
                });
                let mut sent = false;
                poll_fn(|cx| {
                    if flag.load(Ordering::SeqCst) {
                        return Poll::Ready(());
                    }
                    if !sent {
                        tx.send(cx.waker().clone()).unwrap();
                        sent = true;
                    }
                    Poll::Pending
                })
                .await;
                t.join().unwrap();
                true
            });
            let _ = done_tx.send(got);
        });
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)), Ok(true));
    }
}
