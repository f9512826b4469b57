//! Shards: one OS thread per core, each pinned to its core and running its own ring and
//! executor. Shards share nothing; they talk by message passing only: each has a channel of jobs
//! plus the eventfd wake of its runtime, so a shard asleep in `io_uring_enter` wakes as soon as
//! a job arrives.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::executor::{block_on, spawn, try_current};

/// Most jobs a shard takes off its channel per poll, so a flood of jobs cannot starve the
/// shard's running tasks and I/O.
pub const JOBS_PER_POLL: usize = 64;

/// How many shards to start and whether to pin them.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Number of shards; 0 = one per CPU this process may run on.
    pub count: usize,
    /// Pin shard `i` to the `i`-th allowed CPU (modulo their number).
    pub pin_to_cores: bool,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            count: 0,
            pin_to_cores: true,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

enum Msg {
    Run(Job),
    Stop,
}

/// Where jobs for one shard are posted.
#[derive(Clone)]
struct Mailbox {
    tx: Sender<Msg>,
    /// Wakes the shard's main loop (a `Send` waker: remote wakes go through its inbox + eventfd).
    waker: Waker,
}

impl Mailbox {
    fn send(&self, msg: Msg) -> bool {
        let ok = self.tx.send(msg).is_ok();
        self.waker.wake_by_ref();
        ok
    }
}

/// A running set of shard threads. Dropping it shuts them down.
pub struct ShardSet {
    router: ShardRouter,
    threads: Vec<Option<thread::JoinHandle<()>>>,
}

/// A cheap, cloneable handle that posts work to any shard of a [`ShardSet`]: what a shard keeps
/// to fan requests out to the others. It does not keep the shards alive.
#[derive(Clone)]
pub struct ShardRouter {
    mailboxes: Arc<[Mailbox]>,
}

thread_local! {
    static CURRENT_SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the shard running on this thread, if this is a shard thread.
pub fn current_shard() -> Option<usize> {
    CURRENT_SHARD.with(|c| c.get())
}

/// CPUs this process may run on, in ascending order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: callers pass a CPU from `allowed_cpus`, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from `set`; 0 = this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A shard thread's main loop: runs jobs as they arrive until told to stop.
async fn shard_main(rx: Receiver<Msg>, ready: Sender<io::Result<Waker>>) {
    let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    if ready.send(Ok(waker)).is_err() {
        return;
    }
    drop(ready);
    poll_fn(|cx| {
        for _ in 0..JOBS_PER_POLL {
            match rx.try_recv() {
                Ok(Msg::Run(job)) => job(),
                Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => return Poll::Ready(()),
                Err(TryRecvError::Empty) => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

impl ShardSet {
    /// Starts the shards; returns once every one runs its ring (or the first start-up error).
    pub fn new(config: ShardConfig) -> io::Result<ShardSet> {
        let count = if config.count == 0 {
            thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.count
        };
        let cpus = if config.pin_to_cores {
            allowed_cpus()
        } else {
            Vec::new()
        };
        if config.pin_to_cores && cpus.is_empty() {
            tracing::warn!("cannot read the CPU affinity mask; shards run unpinned");
        }
        let mut mailboxes = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
            let (ready_tx, ready_rx) = crossbeam_channel::bounded::<io::Result<Waker>>(1);
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let thread = thread::Builder::new()
                .name(format!("corelog-shard-{index}"))
                .spawn(move || {
                    CURRENT_SHARD.with(|c| c.set(Some(index)));
                    if let Some(cpu) = cpu {
                        if let Err(e) = pin_current_thread(cpu) {
                            tracing::warn!(shard = index, cpu, error = %e, "cannot pin shard to its core");
                        }
                    }
                    if let Err(e) = try_current() {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    block_on(shard_main(rx, ready_tx));
                })?;
            let waker = match ready_rx.recv() {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => {
                    let _ = thread.join();
                    stop_and_join(&mailboxes, &mut threads);
                    return Err(e);
                }
                Err(_) => {
                    let _ = thread.join();
                    stop_and_join(&mailboxes, &mut threads);
                    return Err(io::Error::other(format!(
                        "shard {index} died while starting"
                    )));
                }
            };
            mailboxes.push(Mailbox { tx, waker });
            threads.push(Some(thread));
        }
        Ok(ShardSet {
            router: ShardRouter {
                mailboxes: mailboxes.into(),
            },
            threads,
        })
    }

    /// A handle that posts work to these shards from anywhere (another shard included).
    pub fn router(&self) -> ShardRouter {
        self.router.clone()
    }

    /// The index of the shard running on this thread (same as [`current_shard`]).
    pub fn current_shard() -> Option<usize> {
        current_shard()
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.router.len()
    }

    pub fn is_empty(&self) -> bool {
        self.router.is_empty()
    }

    /// Runs `f` on shard `shard` (see [`ShardRouter::spawn_on`]).
    pub fn spawn_on<F, Fut, T>(&self, shard: usize, f: F) -> RemoteHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        self.router.spawn_on(shard, f)
    }

    /// Stops every shard (tasks still running are dropped) and joins the threads.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        stop_and_join(&self.router.mailboxes, &mut self.threads);
    }
}

fn stop_and_join(mailboxes: &[Mailbox], threads: &mut [Option<thread::JoinHandle<()>>]) {
    for mailbox in mailboxes {
        mailbox.send(Msg::Stop);
    }
    for (i, thread) in threads.iter_mut().enumerate() {
        if let Some(t) = thread.take() {
            if t.join().is_err() {
                tracing::warn!(shard = i, "shard thread panicked");
            }
        }
    }
}

impl ShardRouter {
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Runs `f` on shard `shard`, where it builds a future (which need not be `Send`) and spawns
    /// it as a task; the returned handle yields the task's output.
    ///
    /// # Panics
    /// If `shard >= self.len()`.
    pub fn spawn_on<F, Fut, T>(&self, shard: usize, f: F) -> RemoteHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let mailbox = &self.mailboxes[shard];
        let (completer, handle) = remote_pair();
        let job: Job = Box::new(move || {
            let fut = f();
            // Detached: the completer reports the output (or the task's drop).
            drop(spawn(async move {
                let value = fut.await;
                completer.complete(value);
            }));
        });
        // If the shard has stopped, the job (and its completer) is dropped and the handle
        // reports it.
        mailbox.send(Msg::Run(job));
        handle
    }
}

impl Drop for ShardSet {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A completer and the handle it reports to: how work done elsewhere (another shard, a
/// [`super::background::BackgroundThread`]) hands its output back to an awaiting task.
pub(crate) fn remote_pair<T>() -> (RemoteCompleter<T>, RemoteHandle<T>) {
    let (tx, rx) = crossbeam_channel::bounded::<T>(1);
    let notify = Arc::new(Mutex::new(None::<Waker>));
    let completer = RemoteCompleter {
        tx: Some(tx),
        notify: notify.clone(),
    };
    (completer, RemoteHandle { rx, notify })
}

/// Sends a task's output back to its [`RemoteHandle`] and wakes whoever awaits it. Dropped
/// without completing (the task was dropped), it wakes the handle too, which then reports it.
pub(crate) struct RemoteCompleter<T> {
    /// `None` once dropped: the channel must disconnect before the wake, so a woken handle
    /// sees either the value or the disconnection.
    tx: Option<Sender<T>>,
    notify: Arc<Mutex<Option<Waker>>>,
}

impl<T> RemoteCompleter<T> {
    pub(crate) fn complete(self, value: T) {
        // The handle may be gone (detached); then the value is simply dropped.
        if let Some(tx) = &self.tx {
            let _ = tx.send(value);
        }
        // `Drop` wakes the awaiting task.
    }
}

impl<T> Drop for RemoteCompleter<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        let waker = self
            .notify
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The output of a task started with [`ShardSet::spawn_on`]. Await it from any runtime thread
/// (the completion wakes the awaiting task across threads), or [`wait`](Self::wait) for it on a
/// plain thread. Dropping it detaches the task.
pub struct RemoteHandle<T> {
    rx: Receiver<T>,
    notify: Arc<Mutex<Option<Waker>>>,
}

const DROPPED: &str = "remote task was dropped before completing (its shard stopped or panicked)";

impl<T> RemoteHandle<T> {
    /// Blocks this thread until the task's output arrives.
    ///
    /// # Panics
    /// If the task was dropped before completing.
    pub fn wait(self) -> T {
        self.rx.recv().expect(DROPPED)
    }
}

impl<T> Future for RemoteHandle<T> {
    type Output = T;

    /// # Panics
    /// If the task was dropped before completing.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.rx.try_recv() {
            Ok(v) => return Poll::Ready(v),
            Err(TryRecvError::Disconnected) => panic!("{DROPPED}"),
            Err(TryRecvError::Empty) => {}
        }
        *self
            .notify
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cx.waker().clone());
        // Checked again after registering: the value may have arrived in between.
        match self.rx.try_recv() {
            Ok(v) => Poll::Ready(v),
            Err(TryRecvError::Disconnected) => panic!("{DROPPED}"),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}
