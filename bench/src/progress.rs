//! The progress line: while a run is under way, one line on stderr redrawn every
//! [`TTY_REDRAW_INTERVAL`] when stderr is a terminal, or a plain status line every
//! [`PLAIN_STATUS_INTERVAL`] when it is not (logs, CI).
//!
//! The drawing is a pure function of two counter snapshots ([`render`]) so that it can be tested
//! without a terminal or a clock.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::live::{LiveCounters, Phase};
use crate::spec::{StopAfter, WorkloadSpec};

pub const TTY_REDRAW_INTERVAL: Duration = Duration::from_millis(200);
pub const PLAIN_STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// Characters of the bar between the brackets.
const BAR_WIDTH_CHARS: usize = 20;
const MIB: f64 = 1024.0 * 1024.0;
/// Erase the whole line and return to its start (ANSI "EL2" after a carriage return).
const CLEAR_LINE: &str = "\r\x1b[2K";

/// The counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub phase: Option<Phase>,
    pub produced_messages: u64,
    pub produced_bytes: u64,
    pub acked_messages: u64,
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
    pub errors: u64,
}

impl Snapshot {
    pub fn take(live: &LiveCounters) -> Snapshot {
        Snapshot {
            phase: Some(live.phase()),
            produced_messages: LiveCounters::get(&live.produced_messages),
            produced_bytes: LiveCounters::get(&live.produced_bytes),
            acked_messages: LiveCounters::get(&live.acked_messages),
            consumed_messages: LiveCounters::get(&live.consumed_messages),
            consumed_bytes: LiveCounters::get(&live.consumed_bytes),
            errors: LiveCounters::get(&live.errors),
        }
    }
}

/// What the run's end is measured against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goal {
    pub stop_after: StopAfter,
    pub warmup: Duration,
    /// A consume-only run counts consumed records towards StopAfter::Messages.
    pub counts_consumed: bool,
}

impl Goal {
    pub fn of(spec: &WorkloadSpec) -> Goal {
        Goal {
            stop_after: spec.stop_after,
            warmup: spec.warmup,
            counts_consumed: spec.producers == 0,
        }
    }
}

fn phase_name(phase: Option<Phase>) -> &'static str {
    match phase {
        None | Some(Phase::Connecting) => "connecting",
        Some(Phase::WarmingUp) => "warming up",
        Some(Phase::Measuring) => "measuring",
        Some(Phase::Draining) => "draining",
        Some(Phase::Done) => "done",
    }
}

fn bar(fraction: f64) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (fraction * BAR_WIDTH_CHARS as f64).round() as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled),
        " ".repeat(BAR_WIDTH_CHARS - filled)
    )
}

/// A counter's growth since the previous snapshot; counters reset (e.g. at the end of warm-up)
/// count from zero.
fn delta(now: u64, prev: u64) -> u64 {
    if now >= prev {
        now - prev
    } else {
        now
    }
}

/// The status line. `phase_elapsed` is the time since the current phase began; `interval` is the
/// time between `prev` and `now` (rates are over it).
pub fn render(
    goal: &Goal,
    now: &Snapshot,
    prev: &Snapshot,
    interval: Duration,
    phase_elapsed: Duration,
) -> String {
    let mut line = String::new();
    line.push_str(phase_name(now.phase));
    let secs = phase_elapsed.as_secs_f64();
    match (now.phase, goal.stop_after) {
        (Some(Phase::WarmingUp), _) => {
            let total = goal.warmup.as_secs_f64();
            line.push_str(&format!(
                " {} {secs:.1}/{total:.1}s",
                bar(secs / total.max(f64::MIN_POSITIVE))
            ));
        }
        (Some(Phase::Measuring), StopAfter::Duration(d)) => {
            let total = d.as_secs_f64();
            line.push_str(&format!(
                " {} {secs:.1}/{total:.1}s",
                bar(secs / total.max(f64::MIN_POSITIVE))
            ));
        }
        (Some(Phase::Measuring), StopAfter::Messages(total)) => {
            let done = if goal.counts_consumed {
                now.consumed_messages
            } else {
                now.produced_messages
            };
            line.push_str(&format!(
                " {} {done}/{total} msgs {secs:.1}s",
                bar(done as f64 / total.max(1) as f64)
            ));
        }
        _ => line.push_str(&format!(" {secs:.1}s")),
    }
    let dt = interval.as_secs_f64().max(f64::MIN_POSITIVE);
    let rate = |n: u64, p: u64| delta(n, p) as f64 / dt;
    line.push_str(&format!(
        " | produce {:.1} MiB/s {:.0} msg/s | consume {:.1} MiB/s {:.0} msg/s",
        rate(now.produced_bytes, prev.produced_bytes) / MIB,
        rate(now.produced_messages, prev.produced_messages),
        rate(now.consumed_bytes, prev.consumed_bytes) / MIB,
        rate(now.consumed_messages, prev.consumed_messages),
    ));
    if now.errors > 0 {
        line.push_str(&format!(" | errors {}", now.errors));
    }
    line
}

/// The progress display of one run; [`ProgressBar::finish`] stops it.
pub struct ProgressBar {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressBar {
    pub fn start(live: Arc<LiveCounters>, spec: &WorkloadSpec) -> ProgressBar {
        let goal = Goal::of(spec);
        let tty = std::io::stderr().is_terminal();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || draw_until_stopped(&live, &goal, tty, &stopped))
            .ok();
        ProgressBar {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops the display, waits for its thread and clears the line.
    pub fn finish(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        // Dropping the sender wakes the thread at once.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn draw_until_stopped(live: &LiveCounters, goal: &Goal, tty: bool, stopped: &mpsc::Receiver<()>) {
    let interval = if tty {
        TTY_REDRAW_INTERVAL
    } else {
        PLAIN_STATUS_INTERVAL
    };
    let mut prev = Snapshot::take(live);
    let mut prev_at = Instant::now();
    let mut phase_started = prev_at;
    let mut drew = false;
    // Anything but a timeout (the sender dropped by `finish`) ends the loop.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let now = Snapshot::take(live);
        let at = Instant::now();
        if now.phase != prev.phase {
            phase_started = at;
        }
        let line = render(goal, &now, &prev, at - prev_at, at - phase_started);
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "{CLEAR_LINE}{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        drew = true;
        prev = now;
        prev_at = at;
    }
    if tty && drew {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{CLEAR_LINE}");
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(stop_after: StopAfter, counts_consumed: bool) -> Goal {
        Goal {
            stop_after,
            warmup: Duration::from_secs(2),
            counts_consumed,
        }
    }

    #[test]
    fn measuring_a_duration_shows_the_bar_and_rates_over_the_interval() {
        let g = goal(StopAfter::Duration(Duration::from_secs(10)), false);
        let prev = Snapshot {
            phase: Some(Phase::Measuring),
            produced_messages: 1000,
            produced_bytes: 10 * 1024 * 1024,
            acked_messages: 1000,
            ..Snapshot::default()
        };
        let now = Snapshot {
            produced_messages: 3000,
            produced_bytes: 30 * 1024 * 1024,
            acked_messages: 3000,
            consumed_messages: 500,
            consumed_bytes: 5 * 1024 * 1024,
            ..prev
        };
        let line = render(
            &g,
            &now,
            &prev,
            Duration::from_millis(500),
            Duration::from_secs(5),
        );
        assert!(
            line.starts_with("measuring [##########          ] 5.0/10.0s"),
            "{line}"
        );
        // 20 MiB and 2000 msgs in 0.5 s; consumed 5 MiB and 500 msgs from zero.
        assert!(line.contains("produce 40.0 MiB/s 4000 msg/s"), "{line}");
        assert!(line.contains("consume 10.0 MiB/s 1000 msg/s"), "{line}");
        assert!(!line.contains("errors"), "{line}");
    }

    #[test]
    fn message_goal_counts_consumed_records_in_a_consume_only_run() {
        let g = goal(StopAfter::Messages(1000), true);
        let now = Snapshot {
            phase: Some(Phase::Measuring),
            consumed_messages: 250,
            errors: 3,
            ..Snapshot::default()
        };
        let line = render(
            &g,
            &now,
            &Snapshot::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert!(
            line.contains("[#####               ] 250/1000 msgs"),
            "{line}"
        );
        assert!(line.ends_with("errors 3"), "{line}");
    }

    #[test]
    fn warm_up_and_counter_resets_render_sanely() {
        let g = goal(StopAfter::Duration(Duration::from_secs(10)), false);
        let prev = Snapshot {
            phase: Some(Phase::WarmingUp),
            produced_bytes: 100 * 1024 * 1024,
            ..Snapshot::default()
        };
        // The counters were reset when measuring began: the rate counts from zero, not negative.
        let now = Snapshot {
            phase: Some(Phase::Measuring),
            produced_bytes: 1024 * 1024,
            ..Snapshot::default()
        };
        let line = render(&g, &now, &prev, Duration::from_secs(1), Duration::ZERO);
        assert!(line.contains("produce 1.0 MiB/s"), "{line}");
        let warm = render(&g, &prev, &prev, Duration::ZERO, Duration::from_secs(3));
        // Past the warm-up's end the bar stays full; a zero interval gives zero rates.
        assert!(
            warm.starts_with("warming up [####################] 3.0/2.0s"),
            "{warm}"
        );
        assert!(warm.contains("produce 0.0 MiB/s"), "{warm}");
    }

    #[test]
    fn the_thread_stops_promptly_on_finish() {
        let live = Arc::new(LiveCounters::default());
        let spec = WorkloadSpec::new("127.0.0.1:1", "t");
        let started = Instant::now();
        let bar = ProgressBar::start(live, &spec);
        bar.finish();
        // Far less than the 5 s plain-status interval: finish does not wait for a tick.
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
