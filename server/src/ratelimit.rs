//! Keyed rate limits (the `governor` crate's GCRA): one limiter per class of
//! work (posting, every other authenticated request, WebSocket frames from a
//! client), each keyed by user.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};

/// Keys kept before idle ones are dropped. Only keys whose bucket is full
/// again are dropped: nobody's spent budget is forgiven by pruning.
const PRUNE_ABOVE: usize = 500_000;

/// A rate limit per key: `rate` per second sustained, bursts of `burst`.
pub struct RateLimiter {
    inner: DefaultKeyedRateLimiter<String>,
    prune_above: usize,
    prune_every: Duration,
    /// When keys were last pruned: a scan of every key runs at most once
    /// per `prune_every`, however many are tracked.
    pruned: Mutex<Instant>,
}

/// Shortest time between two scans for idle keys.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

impl RateLimiter {
    /// A limiter allowing `rate` per second with bursts of `burst` (at least
    /// one; settings validation keeps both positive).
    pub fn new(rate: f64, burst: f64) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
        let burst =
            NonZeroU32::new(burst.max(1.0).min(u32::MAX as f64) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            inner: DefaultKeyedRateLimiter::keyed(quota),
            prune_above: PRUNE_ABOVE,
            prune_every: PRUNE_EVERY,
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Prune idle keys whenever more than `n` are tracked, with no pause
    /// between scans (for tests).
    pub fn prune_above(mut self, n: usize) -> Self {
        self.prune_above = n;
        self.prune_every = Duration::ZERO;
        self
    }

    /// Take one cell for `key`; false when its budget is spent.
    pub fn allow(&self, key: &str) -> bool {
        if self.inner.len() > self.prune_above {
            let mut pruned = self.pruned.lock().expect("prune lock");
            if pruned.elapsed() >= self.prune_every {
                self.inner.retain_recent();
                *pruned = Instant::now();
            }
        }
        self.inner.check_key(&key.to_string()).is_ok()
    }

    /// Keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let l = RateLimiter::new(0.001, 3.0);
        assert!(l.allow("a") && l.allow("a") && l.allow("a"));
        assert!(!l.allow("a"));
        assert!(l.allow("b"), "buckets are per key");
    }

    /// Finding 14: above 500k keys the old map was cleared, forgiving every
    /// user's spent budget at once. Pruning now keeps spent buckets.
    #[test]
    fn finding_14_pruning_never_forgives_a_spent_budget() {
        let l = RateLimiter::new(0.001, 2.0).prune_above(10);
        assert!(l.allow("flooder") && l.allow("flooder"));
        assert!(!l.allow("flooder"));
        for i in 0..20 {
            l.allow(&format!("k{i}"));
        }
        // Every call above 10 keys prunes; the flooder stays refused.
        assert!(l.tracked() > 10);
        assert!(!l.allow("flooder"));
    }
}
