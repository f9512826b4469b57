//! What the orchestrating thread and the generator's tasks share while a run is under way: the
//! clock, the measured window, stop and readiness flags, and the live counters; and a task-local
//! signal for waking a producer when an acknowledgement frees room.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::live::LiveCounters;

/// Nanoseconds since the first call in this process (monotonic). Producers write it into every
/// value; consumers in the same process subtract it from their own reading.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The `Instant` at `ns` on the `now_ns` clock.
pub fn instant_at(ns: u64) -> Instant {
    let now = now_ns();
    let here = Instant::now();
    if ns >= now {
        here + Duration::from_nanos(ns - now)
    } else {
        here - Duration::from_nanos(now - ns)
    }
}

/// Latencies are recorded in microseconds, up to an hour, with 3 significant digits.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Records `count` samples of the latency from `from_ns` to `to_ns`.
pub fn record_latency(h: &mut Histogram<u64>, from_ns: u64, to_ns: u64) {
    let us = (to_ns.saturating_sub(from_ns) / 1_000).clamp(1, MAX_LATENCY_US);
    h.record(us).expect("value within bounds");
}

/// Shared by the orchestrator and every task of one run.
pub struct Control {
    pub live: Arc<LiveCounters>,
    /// Start of the measured window on the `now_ns` clock; `u64::MAX` until it begins.
    window_start_ns: AtomicU64,
    /// End of the measured window; `u64::MAX` until it ends.
    window_end_ns: AtomicU64,
    /// Tasks that finished their set-up (connected, offsets known), successfully or not.
    pub ready: AtomicUsize,
    /// Set once every task is ready: producers begin.
    go: AtomicBool,
    /// Producers stop generating and flush what they hold.
    stop: AtomicBool,
    /// Producers that have flushed everything and seen every acknowledgement.
    pub producers_done: AtomicUsize,
    /// Consumers that have read up to the end of their partitions (consume-only runs end then).
    pub consumers_caught_up: AtomicUsize,
    /// Records acknowledged inside the window (for --messages).
    pub window_acked: AtomicU64,
    pub window_consumed: AtomicU64,
    /// A task failed; the orchestrator ends the run.
    pub failed: AtomicBool,
}

impl Control {
    pub fn new(live: Arc<LiveCounters>) -> Control {
        Control {
            live,
            window_start_ns: AtomicU64::new(u64::MAX),
            window_end_ns: AtomicU64::new(u64::MAX),
            ready: AtomicUsize::new(0),
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            producers_done: AtomicUsize::new(0),
            consumers_caught_up: AtomicUsize::new(0),
            window_acked: AtomicU64::new(0),
            window_consumed: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    pub fn start_window(&self) -> u64 {
        let now = now_ns();
        self.window_start_ns.store(now, Ordering::Release);
        now
    }

    pub fn end_window(&self) -> u64 {
        let now = now_ns();
        self.window_end_ns.store(now, Ordering::Release);
        now
    }

    /// Whether an event at `ns` falls in the measured window.
    pub fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start_ns.load(Ordering::Acquire)
            && ns < self.window_end_ns.load(Ordering::Acquire)
    }

    pub fn window_started(&self) -> bool {
        self.window_start_ns.load(Ordering::Acquire) != u64::MAX
    }

    pub fn go(&self) {
        self.go.store(true, Ordering::Release);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.failed.load(Ordering::Relaxed)
    }

    /// Waits (on a runtime thread) until the orchestrator says go, or the run is abandoned.
    pub async fn wait_for_go(&self) {
        while !self.go.load(Ordering::Acquire) && !self.stopping() {
            corelog_engine::runtime::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A one-task wake-up: `notify` from any task on the same thread, `wait_until` in the waiting one.
#[derive(Default)]
pub struct Signal {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub fn notify(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Returns when notified (since the last return) or at `deadline`, whichever comes first.
    pub async fn wait_until(&self, deadline: Instant) {
        let mut timer = pin!(corelog_engine::runtime::sleep_until(deadline));
        std::future::poll_fn(|cx| {
            if self.fired.replace(false) {
                return Poll::Ready(());
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
