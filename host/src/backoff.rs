//! Exponential backoff with full jitter, 1 s up to 60 s by default, shared by every retry loop.

use std::time::Duration;

/// Backoff state for one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// The next delay: `min * 2^attempt` capped at `max`, jittered into its upper half so that
    /// 50 units retrying together spread out without ever retrying faster than half the step.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = delay_for(self.min, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// The un-jittered delay of attempt `n` (0-based).
pub fn delay_for(min: Duration, max: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.min(20));
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(delay_for(min, max, 0), min);
        assert_eq!(delay_for(min, max, 3), Duration::from_secs(8));
        assert_eq!(delay_for(min, max, 30), max);
        let mut b = Backoff::default();
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(500) && d <= max, "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
