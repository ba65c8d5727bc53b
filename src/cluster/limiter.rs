//! A client-side token bucket, as client-go's `flowcontrol` limiter: `qps` tokens a second,
//! at most `burst` saved up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest wait one request is ever given.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A token bucket shared by every request of one client.
///
/// A request takes one token; when none is left it waits its turn. Waiting requests reserve
/// their tokens in arrival order (the bucket may go negative), so a burst of callers is served
/// first come, first served at exactly `qps`.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    throttled: AtomicU64,
    throttled_nanos: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A limiter allowing `qps` requests a second on average and `burst` at once. A `qps` that is
    /// zero, negative or not a finite number means no limit.
    #[must_use]
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
            }),
            throttled: AtomicU64::new(0),
            throttled_nanos: AtomicU64::new(0),
        }
    }

    /// Requests a second on average (0 or less: no limit) and at once.
    #[must_use]
    pub fn rate(&self) -> (f64, f64) {
        (self.qps, self.burst)
    }

    /// Whether this limiter ever makes a caller wait.
    #[must_use]
    pub fn is_limited(&self) -> bool {
        self.qps.is_finite() && self.qps > 0.0
    }

    /// Waits until the caller may send one request.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one token at `now` and says how long the caller must wait before using it
    /// ([`RateLimiter::acquire`] sleeps that long).
    ///
    /// # Panics
    /// Never: a poisoned lock is recovered.
    pub fn reserve(&self, now: Instant) -> Duration {
        if !self.is_limited() {
            return Duration::ZERO;
        }
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.qps).min(self.burst);
        bucket.refilled = bucket.refilled.max(now);
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            return Duration::ZERO;
        }
        // An absurdly small qps would ask for an absurd wait: an hour is the most.
        let wait = Duration::try_from_secs_f64(-bucket.tokens / self.qps)
            .map_or(MAX_WAIT, |wait| wait.min(MAX_WAIT));
        drop(bucket);
        self.throttled.fetch_add(1, Ordering::Relaxed);
        self.throttled_nanos.fetch_add(
            u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        wait
    }

    /// How many requests had to wait, and for how long in all.
    #[must_use]
    pub fn throttled(&self) -> (u64, Duration) {
        (
            self.throttled.load(Ordering::Relaxed),
            Duration::from_nanos(self.throttled_nanos.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_serves_the_burst_at_once_then_paces_at_qps() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.reserve(start), Duration::ZERO);
        }
        // The sixth waits one token's time, the seventh two: first come, first served.
        assert_eq!(limiter.reserve(start), Duration::from_millis(100));
        assert_eq!(limiter.reserve(start), Duration::from_millis(200));
        assert_eq!(limiter.throttled(), (2, Duration::from_millis(300)));
    }

    #[test]
    fn tokens_refill_with_time_but_never_above_the_burst() {
        let limiter = RateLimiter::new(10.0, 2);
        let start = Instant::now();
        assert_eq!(limiter.reserve(start), Duration::ZERO);
        assert_eq!(limiter.reserve(start), Duration::ZERO);
        // An hour idle refills two tokens, not 36,000.
        let later = start + Duration::from_secs(3600);
        assert_eq!(limiter.reserve(later), Duration::ZERO);
        assert_eq!(limiter.reserve(later), Duration::ZERO);
        assert_eq!(limiter.reserve(later), Duration::from_millis(100));
        // Half a token's time later, the debt is half paid.
        let wait = limiter.reserve(later + Duration::from_millis(50));
        assert_eq!(wait, Duration::from_millis(150));
    }

    #[test]
    fn a_tiny_qps_waits_at_most_an_hour() {
        let limiter = RateLimiter::new(1e-300, 1);
        let now = Instant::now();
        assert_eq!(limiter.reserve(now), Duration::ZERO);
        assert_eq!(limiter.reserve(now), MAX_WAIT);
    }

    #[test]
    fn zero_or_infinite_qps_never_waits() {
        for qps in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let limiter = RateLimiter::new(qps, 1);
            let now = Instant::now();
            for _ in 0..1000 {
                assert_eq!(limiter.reserve(now), Duration::ZERO);
            }
            assert!(!limiter.is_limited());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_sleeps_for_the_reserved_time() {
        let limiter = RateLimiter::new(100.0, 1);
        let start = tokio::time::Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        limiter.acquire().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(19), "{waited:?}");
    }
}
