//! Exponential backoff: the one implementation of "wait longer after each
//! failure" shared by the job queue, the gateway's uploader, outbound HTTP
//! (`insights-http`: Graph, token endpoints) and the AI providers.
//!
//! Pure arithmetic and a random draw, no I/O, no clock: callers decide
//! what an attempt is and when to sleep. Each caller keeps its own jitter
//! kind, chosen by the method it calls:
//!
//! * [`Backoff::ceiling`]: no jitter (AI provider requests);
//! * [`Backoff::delay`]: equal jitter from a given sample in `0..=1`, and a
//!   server's `Retry-After` honoured when longer (the job queue, whose
//!   tests pass the sample);
//! * [`Backoff::random_delay`]: equal jitter drawn here, in whole
//!   milliseconds (uploader, Graph and token requests).

use std::time::Duration;

/// `min(max, base · 2^(attempt-1))`: the delay after failed attempt
/// number `attempt` (1-based), before any jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt (before jitter).
    pub base: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// The job queue's default: 10 s doubling up to 30 minutes.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(30 * 60),
        }
    }
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// `min(max, base · 2^(attempt-1))` without jitter; attempt 0 counts
    /// as 1. Saturating: never overflows, whatever the attempt.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let mut d = self.base;
        // At most ~95 doublings take any non-zero base past any cap.
        for _ in 1..attempt {
            if d >= self.max || d.is_zero() {
                break;
            }
            d = d.saturating_mul(2);
        }
        d.min(self.max)
    }

    /// The delay after failed attempt number `attempt` (1-based):
    /// [`ceiling`](Self::ceiling) scaled by `0.5 + jitter/2` with `jitter`
    /// in 0..=1 ("equal jitter": never less than half, so retries still
    /// back off, yet workers that failed together spread). A server's
    /// `Retry-After` (`at_least`) is honoured when longer.
    pub fn delay(&self, attempt: u32, jitter: f64, at_least: Option<Duration>) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        let d = self.ceiling(attempt).mul_f64(0.5 + jitter / 2.0);
        match at_least {
            Some(min) if min > d => min,
            _ => d,
        }
    }

    /// Equal jitter drawn here: a uniformly random whole number of
    /// milliseconds in the upper half `⌈ms/2⌉..=ms` of
    /// [`ceiling`](Self::ceiling) (`ms` at least 1), so that many clients
    /// that failed together do not retry in step.
    pub fn random_delay(&self, attempt: u32) -> Duration {
        let ms = u64::try_from(self.ceiling(attempt).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::random_range(ms.div_ceil(2)..=ms))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
        };
        assert_eq!(b.delay(1, 1.0, None), Duration::from_secs(10));
        assert_eq!(b.delay(2, 1.0, None), Duration::from_secs(20));
        assert_eq!(b.delay(3, 1.0, None), Duration::from_secs(40));
        assert_eq!(b.delay(5, 1.0, None), Duration::from_secs(100));
        assert_eq!(b.delay(60, 1.0, None), Duration::from_secs(100));
        assert_eq!(b.delay(2, 0.0, None), Duration::from_secs(10));
        assert_eq!(
            b.delay(1, 0.0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn ceiling_doubles_without_jitter_and_saturates() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (1..=5).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(500));
        let unbounded = Backoff::new(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(unbounded.ceiling(u32::MAX), Duration::MAX);
        assert_eq!(unbounded.ceiling(11), Duration::from_nanos(1024));
        let zero = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(zero.ceiling(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn random_delay_is_in_the_upper_half_and_spread() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..200 {
            let d1 = b.random_delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d4 = b.random_delay(4);
            assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
            let d30 = b.random_delay(30);
            assert!(d30 >= Duration::from_secs(5) && d30 <= Duration::from_secs(10));
        }
        let spread: BTreeSet<_> = (0..50).map(|_| b.random_delay(5)).collect();
        assert!(spread.len() > 5, "jittered");
        let tiny = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(tiny.random_delay(1), Duration::from_millis(1));
    }
}
