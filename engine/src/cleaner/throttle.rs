//! Pacing the cleaner's I/O to `log.cleaner.io.max.bytes.per.second` (read plus written bytes).

use std::time::{Duration, Instant};

/// Length of one measuring window: after a window in which the cleaner kept under the rate the
/// count starts over, so an idle cleaner does not bank an unbounded burst.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(1);

/// Paces a cleaner's I/O to `io_max_bytes_per_second`. One per cleaner thread, kept across jobs.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: u64,
    window_start: Instant,
    window_bytes: u64,
    /// Time spent sleeping so far, for the cleaner's statistics.
    slept: Duration,
}

impl Throttle {
    /// `u64::MAX` (Kafka's default, `Double.MAX_VALUE`) never waits.
    pub fn new(bytes_per_second: u64) -> Throttle {
        Throttle {
            bytes_per_second: bytes_per_second.max(1),
            window_start: Instant::now(),
            window_bytes: 0,
            slept: Duration::ZERO,
        }
    }

    /// Changes the rate (a live config change); the current window starts over.
    pub fn set_rate(&mut self, bytes_per_second: u64) {
        *self = Throttle {
            slept: self.slept,
            ..Throttle::new(bytes_per_second)
        };
    }

    /// Total time this throttle has made its thread sleep.
    pub fn slept(&self) -> Duration {
        self.slept
    }

    /// Accounts for `bytes` of I/O and sleeps as long as it takes to bring the rate since the
    /// window began back to the limit.
    pub fn consume(&mut self, bytes: u64) {
        if self.bytes_per_second == u64::MAX {
            return;
        }
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let due = Duration::from_secs_f64(self.window_bytes as f64 / self.bytes_per_second as f64);
        let elapsed = self.window_start.elapsed();
        if due > elapsed {
            let wait = due - elapsed;
            std::thread::sleep(wait);
            self.slept += wait;
        }
        if self.window_start.elapsed() >= THROTTLE_WINDOW {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let mut t = Throttle::new(1_000_000);
        let start = Instant::now();
        for _ in 0..10 {
            t.consume(20_000);
        }
        // 200 kB at 1 MB/s takes at least 200 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(195),
            "{:?}",
            start.elapsed()
        );
        let mut free = Throttle::new(u64::MAX);
        let start = Instant::now();
        free.consume(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
