//! The tower layer under every request of a [`Cluster`](super::Cluster): the rate limiter, a
//! per-request timeout and the retry policy, with counters.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use tower::{BoxError, Layer, Service, ServiceExt as _};

use super::limiter::RateLimiter;
use super::retry::{Outcome, OutcomeKind, RetryPolicy, idempotent_request};

/// Counters of what the transport did; read them with [`Counters::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    succeeded_after_retry: AtomicU64,
    gave_up: AtomicU64,
    timeouts: AtomicU64,
    transport_errors: AtomicU64,
    throttled_by_server: AtomicU64,
    server_errors: AtomicU64,
    pub(crate) conflict_retries: AtomicU64,
}

/// What a client's transport has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientStats {
    /// Requests sent by callers (each counted once, however many attempts it took).
    pub requests: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Requests that succeeded only after a retry.
    pub succeeded_after_retry: u64,
    /// Requests that failed with retries left but not allowed (the limit or an unsafe repeat).
    pub gave_up: u64,
    /// Attempts that got no response within the request timeout.
    pub timeouts: u64,
    /// Attempts that failed in the connection (refused, reset, TLS) rather than with a status.
    pub transport_errors: u64,
    /// 429 responses.
    pub throttled_by_server: u64,
    /// 5xx responses.
    pub server_errors: u64,
    /// Read-modify-write cycles repeated after a 409 conflict.
    pub conflict_retries: u64,
    /// Attempts the client-side rate limiter held back.
    pub rate_limited: u64,
    /// The time they waited in all, in microseconds.
    pub rate_limited_wait_us: u64,
}

impl ClientStats {
    /// What happened between `before` (an earlier snapshot of the same client) and this one.
    #[must_use]
    pub fn since(&self, before: &Self) -> Self {
        Self {
            requests: self.requests.saturating_sub(before.requests),
            retries: self.retries.saturating_sub(before.retries),
            succeeded_after_retry: self
                .succeeded_after_retry
                .saturating_sub(before.succeeded_after_retry),
            gave_up: self.gave_up.saturating_sub(before.gave_up),
            timeouts: self.timeouts.saturating_sub(before.timeouts),
            transport_errors: self
                .transport_errors
                .saturating_sub(before.transport_errors),
            throttled_by_server: self
                .throttled_by_server
                .saturating_sub(before.throttled_by_server),
            server_errors: self.server_errors.saturating_sub(before.server_errors),
            conflict_retries: self
                .conflict_retries
                .saturating_sub(before.conflict_retries),
            rate_limited: self.rate_limited.saturating_sub(before.rate_limited),
            rate_limited_wait_us: self
                .rate_limited_wait_us
                .saturating_sub(before.rate_limited_wait_us),
        }
    }
}

impl Counters {
    pub(crate) fn snapshot(&self, limiter: &RateLimiter) -> ClientStats {
        let (rate_limited, waited) = limiter.throttled();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            requests: load(&self.requests),
            retries: load(&self.retries),
            succeeded_after_retry: load(&self.succeeded_after_retry),
            gave_up: load(&self.gave_up),
            timeouts: load(&self.timeouts),
            transport_errors: load(&self.transport_errors),
            throttled_by_server: load(&self.throttled_by_server),
            server_errors: load(&self.server_errors),
            conflict_retries: load(&self.conflict_retries),
            rate_limited,
            rate_limited_wait_us: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

/// The shared state of the layer.
#[derive(Debug, Clone)]
pub(crate) struct Governor {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) policy: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    pub(crate) counters: Arc<Counters>,
}

impl<S> Layer<S> for Governor {
    type Service = Governed<S>;

    fn layer(&self, inner: S) -> Governed<S> {
        Governed {
            inner,
            governor: self.clone(),
        }
    }
}

/// A service that sends each request through the governor.
#[derive(Debug, Clone)]
pub(crate) struct Governed<S> {
    inner: S,
    governor: Governor,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Body>> for Governed<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited on the clone that sends each attempt.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let governor = self.governor.clone();
        Box::pin(async move { governor.send(inner, request).await })
    }
}

impl Governor {
    async fn send<S, B>(&self, inner: S, request: Request<Body>) -> Result<Response<B>, BoxError>
    where
        S: Service<Request<Body>, Response = Response<B>, Error = BoxError> + Clone + Send,
        S::Future: Send,
    {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let idempotent = idempotent_request(
            request.method(),
            request.headers().get(http::header::CONTENT_TYPE),
        );
        let (parts, body) = request.into_parts();
        // A body that cannot be cloned (a stream) is sent once; kube's requests are all buffered.
        let spare = body.try_clone();
        let mut body = Some(body);
        let mut attempt = 1;
        loop {
            let this_body = match body.take() {
                Some(body) => body,
                None => spare
                    .as_ref()
                    .and_then(Body::try_clone)
                    .unwrap_or_else(Body::empty),
            };
            let mut attempt_request = Request::new(this_body);
            *attempt_request.method_mut() = parts.method.clone();
            *attempt_request.uri_mut() = parts.uri.clone();
            *attempt_request.version_mut() = parts.version;
            *attempt_request.headers_mut() = parts.headers.clone();
            *attempt_request.extensions_mut() = parts.extensions.clone();

            self.limiter.acquire().await;
            let sent = inner.clone().oneshot(attempt_request);
            let result = match self.timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(result) => result.map_err(Failure::Error),
                    Err(_) => Err(Failure::TimedOut(limit)),
                },
                None => sent.await.map_err(Failure::Error),
            };
            let outcome = match &result {
                Ok(response) => {
                    let outcome = Outcome::of_response(
                        response.status(),
                        response.headers().get(http::header::RETRY_AFTER),
                    );
                    let counter = match outcome.kind {
                        OutcomeKind::Throttled => Some(&self.counters.throttled_by_server),
                        OutcomeKind::ServerError => Some(&self.counters.server_errors),
                        _ => None,
                    };
                    if let Some(counter) = counter {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    outcome
                }
                Err(Failure::TimedOut(_)) => {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    Outcome::of_failure(OutcomeKind::TimedOut)
                }
                Err(Failure::Error(error)) => {
                    self.counters
                        .transport_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if is_connect_error(error.as_ref()) {
                        Outcome::of_failure(OutcomeKind::ConnectFailed)
                    } else {
                        // Sent, perhaps acted on, no answer: treated as a timeout.
                        Outcome::of_failure(OutcomeKind::TimedOut)
                    }
                }
            };
            let wait = if spare.is_some() {
                self.policy
                    .next(attempt, &outcome, idempotent, fastrand::f64())
            } else {
                None
            };
            let Some(wait) = wait else {
                if outcome.kind != OutcomeKind::Final {
                    self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
                } else if attempt > 1 && result.as_ref().is_ok_and(|r| r.status().is_success()) {
                    self.counters
                        .succeeded_after_retry
                        .fetch_add(1, Ordering::Relaxed);
                }
                return result.map_err(Failure::into_box);
            };
            drop(result);
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

enum Failure {
    Error(BoxError),
    TimedOut(Duration),
}

impl Failure {
    fn into_box(self) -> BoxError {
        match self {
            Self::Error(error) => error,
            Self::TimedOut(limit) => format!(
                "no response from the API server within {}s",
                limit.as_secs_f64()
            )
            .into(),
        }
    }
}

/// Whether the failure happened before anything was sent (hyper's connect errors).
fn is_connect_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(hyper_error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            return hyper_error.is_connect();
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            );
        }
        current = error.source();
    }
    false
}
