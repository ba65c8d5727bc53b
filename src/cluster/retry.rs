//! The retry policy: which failures are worth another attempt, and how long to wait first.

use std::time::Duration;

use http::{Method, StatusCode};

/// How often and how patiently a failed request is tried again.
///
/// The defaults are the zen-lead guide's: 3 attempts in all, waiting 100 ms, then 200 ms, growing
/// x2 up to 5 s, each wait spread by +-20 % jitter so that many clients do not retry in step. A
/// `Retry-After` from the server (429, 503) replaces the computed wait, up to
/// [`RetryPolicy::max_retry_after`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means never retry.
    pub attempts: u32,
    /// The wait before the first retry.
    pub initial: Duration,
    /// The factor each further wait grows by.
    pub multiplier: f64,
    /// The longest computed wait.
    pub cap: Duration,
    /// The spread of each wait, as a fraction of it (0.2 = +-20 %).
    pub jitter: f64,
    /// The longest `Retry-After` honoured; a server asking for more is not retried.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(5),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The zen-lead guide's fast-retry profile, for failover-critical requests (reading the
    /// leader pod, writing the EndpointSlice): 2 attempts, 20 ms before the retry, 500 ms cap.
    #[must_use]
    pub fn fast() -> Self {
        Self {
            attempts: 2,
            initial: Duration::from_millis(20),
            cap: Duration::from_millis(500),
            ..Self::default()
        }
    }

    /// Never retry.
    #[must_use]
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), before jitter.
    #[must_use]
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        if secs.is_finite() && secs < self.cap.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.cap
        }
    }

    /// The wait before retry number `retry`, jittered with `unit` drawn uniformly from [0, 1).
    #[must_use]
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let base = self.base_delay(retry).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0) * (unit.clamp(0.0, 1.0) * 2.0 - 1.0);
        Duration::from_secs_f64((base * (1.0 + spread)).max(0.0))
    }

    /// What to do after attempt number `attempt` (1-based) ended in `outcome`: `Some(wait)` to try
    /// again after `wait`, `None` to give up and hand the outcome to the caller.
    #[must_use]
    pub fn next(
        &self,
        attempt: u32,
        outcome: &Outcome,
        idempotent: bool,
        unit: f64,
    ) -> Option<Duration> {
        if attempt >= self.attempts || !outcome.retryable(idempotent) {
            return None;
        }
        match outcome.retry_after {
            Some(asked) if asked > self.max_retry_after => None,
            Some(asked) => Some(asked),
            None => Some(self.delay(attempt, unit)),
        }
    }
}

/// What one attempt ended in, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The kind of ending.
    pub kind: OutcomeKind,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

/// The kinds of ending a retry decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A response the caller should see: success, or a client error.
    Final,
    /// 429 Too Many Requests: the server did not act on the request.
    Throttled,
    /// A 5xx: the server may or may not have acted.
    ServerError,
    /// No connection could be made: nothing was sent.
    ConnectFailed,
    /// No response in time: the server may or may not have acted.
    TimedOut,
}

impl Outcome {
    /// The outcome of an HTTP response.
    #[must_use]
    pub fn of_response(status: StatusCode, retry_after: Option<&http::HeaderValue>) -> Self {
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            OutcomeKind::Throttled
        } else if matches!(status.as_u16(), 500 | 502 | 503 | 504) {
            OutcomeKind::ServerError
        } else {
            OutcomeKind::Final
        };
        let retry_after = retry_after
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Self { kind, retry_after }
    }

    /// The outcome of a transport failure.
    #[must_use]
    pub fn of_failure(kind: OutcomeKind) -> Self {
        Self {
            kind,
            retry_after: None,
        }
    }

    /// Whether repeating the request after this outcome is safe: a throttled or unsent request
    /// always is; one the server may have acted on only when it is idempotent (see
    /// [`idempotent_request`]: a create or a JSON patch could take effect twice).
    #[must_use]
    pub fn retryable(&self, idempotent: bool) -> bool {
        match self.kind {
            OutcomeKind::Final => false,
            OutcomeKind::Throttled | OutcomeKind::ConnectFailed => true,
            OutcomeKind::ServerError | OutcomeKind::TimedOut => idempotent,
        }
    }
}

/// Whether sending a request of this method twice has the effect of sending it once.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::PATCH
    )
}

/// Whether a request may be repeated after the server may have acted on it: idempotent methods,
/// except JSON patches (`op: add` on a list appends twice).
#[must_use]
pub fn idempotent_request(method: &Method, content_type: Option<&http::HeaderValue>) -> bool {
    if *method == Method::PATCH {
        let json_patch = content_type
            .and_then(|value| value.to_str().ok())
            .is_some_and(|text| text.starts_with("application/json-patch+json"));
        return !json_patch;
    }
    idempotent(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_from_100ms_doubling_to_the_5s_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=8)
            .map(|retry| policy.base_delay(retry).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(policy.base_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_spreads_each_wait_by_twenty_percent() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(80));
        assert_eq!(policy.delay(1, 0.5), Duration::from_millis(100));
        assert!(policy.delay(1, 0.999_999) <= Duration::from_millis(120));
        assert_eq!(policy.delay(2, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn three_attempts_in_all_by_default() {
        let policy = RetryPolicy::default();
        let busy = Outcome::of_response(StatusCode::SERVICE_UNAVAILABLE, None);
        assert!(policy.next(1, &busy, true, 0.5).is_some());
        assert!(policy.next(2, &busy, true, 0.5).is_some());
        assert_eq!(policy.next(3, &busy, true, 0.5), None);
        assert_eq!(RetryPolicy::none().next(1, &busy, true, 0.5), None);
    }

    #[test]
    fn retry_after_is_honoured_and_an_unreasonable_one_gives_up() {
        let policy = RetryPolicy::default();
        let header = http::HeaderValue::from_static("2");
        let throttled = Outcome::of_response(StatusCode::TOO_MANY_REQUESTS, Some(&header));
        assert_eq!(
            policy.next(1, &throttled, false, 0.0),
            Some(Duration::from_secs(2))
        );
        let header = http::HeaderValue::from_static("3600");
        let throttled = Outcome::of_response(StatusCode::TOO_MANY_REQUESTS, Some(&header));
        assert_eq!(policy.next(1, &throttled, true, 0.0), None);
        // A date instead of seconds is ignored: the computed wait applies.
        let header = http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        let throttled = Outcome::of_response(StatusCode::TOO_MANY_REQUESTS, Some(&header));
        assert_eq!(
            policy.next(1, &throttled, true, 0.5),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn only_safe_repeats_are_retried() {
        let server_error = Outcome::of_response(StatusCode::INTERNAL_SERVER_ERROR, None);
        let timed_out = Outcome::of_failure(OutcomeKind::TimedOut);
        let throttled = Outcome::of_response(StatusCode::TOO_MANY_REQUESTS, None);
        let unsent = Outcome::of_failure(OutcomeKind::ConnectFailed);
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let idempotent = idempotent_request(&method, None);
            assert!(
                server_error.retryable(idempotent) && timed_out.retryable(idempotent),
                "{method}"
            );
        }
        // A create the server may have performed is not repeated; a throttled or unsent one is.
        let create = idempotent_request(&Method::POST, None);
        assert!(!server_error.retryable(create));
        assert!(!timed_out.retryable(create));
        assert!(throttled.retryable(create));
        assert!(unsent.retryable(create));
        for status in [200, 201, 400, 401, 403, 404, 409, 410, 422] {
            let outcome = Outcome::of_response(StatusCode::from_u16(status).unwrap(), None);
            assert!(!outcome.retryable(true), "{status}");
        }
    }

    #[test]
    fn json_patches_are_not_idempotent() {
        let json = http::HeaderValue::from_static("application/json-patch+json");
        let merge = http::HeaderValue::from_static("application/merge-patch+json");
        let apply = http::HeaderValue::from_static("application/apply-patch+yaml");
        assert!(!idempotent_request(&Method::PATCH, Some(&json)));
        assert!(idempotent_request(&Method::PATCH, Some(&merge)));
        assert!(idempotent_request(&Method::PATCH, Some(&apply)));
        assert!(!idempotent_request(&Method::POST, None));
        assert!(idempotent_request(&Method::PUT, None));
    }
}
