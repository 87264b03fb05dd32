//! The one retry delay policy: exponential growth from a base, capped, with
//! "equal jitter" (half the delay fixed, half drawn at random).
//!
//! Every retry loop of the project uses it: broker reconnects, Redis commands,
//! worker requeues and commit retries. Without jitter, every worker that lost
//! the broker at the same instant reconnects at the same instant too, and keeps
//! doing so on every attempt; with it the attempts spread over half the delay.

use std::time::Duration;

/// Delay before retry `attempt` (1 = the first retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay of the first attempt before jitter.
    pub base: Duration,
    /// Largest delay before jitter.
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The delay without jitter: `base · 2^(attempt-1)`, capped at `max`
    /// (never below `base`).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let grown = self.base.saturating_mul(1u32 << doublings);
        grown.min(self.max.max(self.base))
    }

    /// The delay to sleep: half the ceiling plus a uniform draw over the other
    /// half, so concurrent retriers spread out but none waits longer than the
    /// ceiling or less than half of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }

    /// [`Backoff::delay`] with the random draw `u` in [0, 1) given (tests).
    pub fn delay_with(&self, attempt: u32, u: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(u.clamp(0.0, 1.0))
    }

    /// Sleeps for [`Backoff::delay`].
    pub async fn sleep(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(5000));

    #[test]
    fn ceiling_doubles_then_caps() {
        assert_eq!(B.ceiling(1), Duration::from_millis(100));
        assert_eq!(B.ceiling(2), Duration::from_millis(200));
        assert_eq!(B.ceiling(6), Duration::from_millis(3200));
        assert_eq!(B.ceiling(7), Duration::from_millis(5000));
        assert_eq!(B.ceiling(u32::MAX), Duration::from_millis(5000));
        // A max below the base never shortens the first delay.
        let odd = Backoff::new(Duration::from_millis(100), Duration::from_millis(10));
        assert_eq!(odd.ceiling(3), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spans_the_upper_half_of_the_ceiling() {
        assert_eq!(B.delay_with(3, 0.0), Duration::from_millis(200));
        assert_eq!(B.delay_with(3, 0.5), Duration::from_millis(300));
        assert!(B.delay_with(3, 0.999_999) < Duration::from_millis(400));
        for attempt in 1..12 {
            for _ in 0..50 {
                let d = B.delay(attempt);
                assert!(d >= B.ceiling(attempt) / 2 && d <= B.ceiling(attempt), "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn concurrent_retriers_do_not_wake_together() {
        // 32 retriers of the same attempt: with jitter their delays differ
        // (without it all 32 would be equal).
        let delays: std::collections::BTreeSet<Duration> = (0..32).map(|_| B.delay(4)).collect();
        assert!(delays.len() > 16, "only {} distinct delays", delays.len());
    }
}
