//! Cluster access: the one way every capability talks to Kubernetes.
//!
//! [`Cluster::connect`] builds a [`kube::Client`] from a kubeconfig (the `--kubeconfig` and
//! `--context` flags, then `$KUBECONFIG`, then `~/.kube/config`) or, with none of those, from
//! the in-cluster service account. Under every request sit a client-side token bucket
//! ([`RateLimiter`], `--qps`/`--burst`, 50/100 by default as in the zen-lead guide), a request
//! timeout and the [`RetryPolicy`] (3 attempts, 100 ms doubling to a 5 s cap, jittered; on
//! timeouts, 429 with its `Retry-After`, and 5xx where the request is safe to repeat), all
//! counted in [`ClientStats`]. Conflicts (409) are retried only where the caller re-reads:
//! [`Cluster::retry_on_conflict`].
//!
//! [`ObjectCache`] keeps objects of one kind, read through from the API, refreshed and
//! invalidated by a watch, with a TTL per kind and an LRU cap per namespace. [`election`]
//! elects one active replica of a controller on a Lease (zen-lead and the reconcile controller
//! use it), and [`Permission`] is what a controller's code needs RBAC to grant.

mod cache;
mod diff;
pub mod election;
mod events;
mod failure;
mod limiter;
mod permission;
mod retry;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use cache::{CacheOptions, CacheStats, ObjectCache};
pub use diff::{APPLIED_HASH_ANNOTATION, yaml_diff};
pub use events::{Events, Severity};
pub use failure::{ApiFailure, Denial, FailedReconcile, Repeats, Say, log_recovered};
pub use limiter::RateLimiter;
pub use permission::{Permission, Scope};
pub use retry::{Outcome, OutcomeKind, RetryPolicy, idempotent_request};
pub use transport::ClientStats;

/// The field manager of every write kubectl-zen makes.
pub const FIELD_MANAGER: &str = "kubectl-zen";

/// The client-side rate of the zen-lead guide: 50 requests a second.
pub const DEFAULT_QPS: f64 = 50.0;
/// The client-side burst of the zen-lead guide: 100 requests at once.
pub const DEFAULT_BURST: u32 = 100;
/// How long a request may wait for its response headers before it counts as timed out.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach a cluster and how politely to talk to it.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The kubeconfig file; `None` means `$KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None` means the file's current context.
    pub context: Option<String>,
    /// The namespace to work in; `None` means the context's (or `default`).
    pub namespace: Option<String>,
    /// Client-side requests per second; 0 means unlimited.
    pub qps: f64,
    /// Client-side burst.
    pub burst: u32,
    /// What to retry and how.
    pub retry: RetryPolicy,
    /// The longest wait for a response's headers; `None` waits for ever.
    pub request_timeout: Option<Duration>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespace: None,
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
            retry: RetryPolicy::default(),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

/// Why a cluster could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file, or a description of where it was looked for.
        path: String,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig and not inside a cluster.
    #[error(
        "no cluster configured: no kubeconfig at $KUBECONFIG or ~/.kube/config and not running \
         in a pod ({0}); pass --kubeconfig FILE, or start one with `kubectl zen sim --write-kubeconfig FILE`"
    )]
    NoConfig(String),
    /// The client could not be built from the configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// A connection to one cluster: a [`kube::Client`] with the governor under it.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
    server: String,
    limiter: Arc<RateLimiter>,
    counters: Arc<transport::Counters>,
    policy: RetryPolicy,
    /// What the client was built from, for [`Cluster::with_retry`].
    config: kube::Config,
    timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Whether `text` is a label value: empty, or at most 63 letters, digits, `-`, `_` and `.`,
/// beginning and ending with a letter or digit.
#[must_use]
pub fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.is_empty()
        || (bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

/// How a [`Cluster`]'s client is set up, as reports record it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettings {
    /// Client-side requests per second; 0 means unlimited.
    pub qps: f64,
    /// Client-side burst.
    pub burst: f64,
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The longest wait for a response's headers, when there is one.
    pub request_timeout_seconds: Option<f64>,
}

impl Cluster {
    /// Connects as `options` say. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A kubeconfig that cannot be read or names an unknown context, no configuration at all, or
    /// a client that cannot be built (bad certificates, say).
    pub async fn connect(options: &ClusterOptions) -> Result<Self, ClusterError> {
        let config = load_config(options).await?;
        Self::from_config(config, options)
    }

    /// Connects with a ready [`kube::Config`] (its namespace replaced by `options.namespace` when
    /// given). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A client that cannot be built.
    pub fn from_config(
        mut config: kube::Config,
        options: &ClusterOptions,
    ) -> Result<Self, ClusterError> {
        if let Some(namespace) = &options.namespace {
            config.default_namespace.clone_from(namespace);
        }
        // Our policy replaces kube's own retry layer, so retries are counted and bounded once.
        config.default_retry = false;
        let limiter = Arc::new(RateLimiter::new(options.qps, options.burst));
        let counters = Arc::new(transport::Counters::default());
        Self::build(
            config,
            limiter,
            counters,
            options.retry,
            options.request_timeout,
        )
    }

    fn build(
        config: kube::Config,
        limiter: Arc<RateLimiter>,
        counters: Arc<transport::Counters>,
        policy: RetryPolicy,
        timeout: Option<std::time::Duration>,
    ) -> Result<Self, ClusterError> {
        let server = config.cluster_url.to_string();
        let namespace = config.default_namespace.clone();
        let governor = transport::Governor {
            limiter: Arc::clone(&limiter),
            policy,
            timeout,
            counters: Arc::clone(&counters),
        };
        let client = kube::client::ClientBuilder::try_from(config.clone())
            .map_err(ClusterError::Client)?
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&governor)
            .build();
        Ok(Self {
            client,
            namespace,
            server,
            limiter,
            counters,
            policy,
            config,
            timeout,
        })
    }

    /// The same cluster with another retry policy: a second client that shares this one's rate
    /// limiter (one budget of requests) and counters (one set of [`ClientStats`]). zen-lead's
    /// failover-critical requests use [`RetryPolicy::fast`] this way.
    ///
    /// # Errors
    /// A client that cannot be built.
    pub fn with_retry(&self, policy: RetryPolicy) -> Result<Self, ClusterError> {
        Self::build(
            self.config.clone(),
            Arc::clone(&self.limiter),
            Arc::clone(&self.counters),
            policy,
            self.timeout,
        )
    }

    /// The same cluster without the client-side rate limit (the counters and retry policy
    /// shared): for requests a user's own traffic opens one by one, such as a port-forward
    /// stream per local connection (kubectl's streams are not rate-limited either).
    ///
    /// # Errors
    /// A client that cannot be built.
    pub fn unlimited(&self) -> Result<Self, ClusterError> {
        Self::build(
            self.config.clone(),
            Arc::new(RateLimiter::new(0.0, 1)),
            Arc::clone(&self.counters),
            self.policy,
            self.timeout,
        )
    }

    /// The same cluster with a rate limit of its own (`qps` requests a second, `burst` at
    /// once), the counters and retry policy shared: for traffic that must not take from the
    /// main budget, such as the controllers' Events.
    ///
    /// # Errors
    /// A client that cannot be built.
    pub fn with_rate(&self, qps: f64, burst: u32) -> Result<Self, ClusterError> {
        Self::build(
            self.config.clone(),
            Arc::new(RateLimiter::new(qps, burst)),
            Arc::clone(&self.counters),
            self.policy,
            self.timeout,
        )
    }

    /// The client; cheap to clone.
    #[must_use]
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The namespace to work in.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The API server's URL.
    #[must_use]
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How the client is set up: rate limit, retries, request timeout.
    #[must_use]
    pub fn settings(&self) -> ClientSettings {
        let (qps, burst) = self.limiter.rate();
        ClientSettings {
            qps: if self.limiter.is_limited() { qps } else { 0.0 },
            burst,
            attempts: self.policy.attempts,
            request_timeout_seconds: self.timeout.map(|timeout| timeout.as_secs_f64()),
        }
    }

    /// What the transport has done so far.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.counters.snapshot(&self.limiter)
    }

    /// Lists every object of `resource` (in `namespace`, or in all namespaces when `None`)
    /// page by page, 500 at a time, handing each to `each` with its `apiVersion` and `kind`
    /// set (real API servers leave them off list items). Returns how many there were. Memory
    /// holds one page, however many objects there are.
    ///
    /// # Errors
    /// The first failed page (after the client's retries).
    pub async fn list_each(
        &self,
        resource: &kube::api::ApiResource,
        namespace: Option<&str>,
        params: &kube::api::ListParams,
        mut each: impl FnMut(serde_json::Value),
    ) -> Result<u64, kube::Error> {
        let api: kube::Api<kube::api::DynamicObject> = match namespace {
            Some(namespace) => kube::Api::namespaced_with(self.client(), namespace, resource),
            None => kube::Api::all_with(self.client(), resource),
        };
        let mut params = params.clone();
        params.limit = Some(params.limit.unwrap_or(500));
        let mut count = 0;
        loop {
            let page = api.list(&params).await?;
            for item in page.items {
                let mut object = serde_json::to_value(item).unwrap_or_default();
                if let Some(map) = object.as_object_mut() {
                    map.insert("apiVersion".into(), resource.api_version.clone().into());
                    map.insert("kind".into(), resource.kind.clone().into());
                }
                each(object);
                count += 1;
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params.continue_token = Some(token),
                None => return Ok(count),
            }
        }
    }

    /// Runs a read-modify-write cycle, repeating all of it (the read included) when the write
    /// meets a 409 conflict, under the client's retry policy, as client-go's `RetryOnConflict`.
    ///
    /// # Errors
    /// The last error of `cycle`, when it is not a conflict or the attempts are used up.
    pub async fn retry_on_conflict<T, F, Fut>(&self, mut cycle: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut attempt = 1;
        loop {
            match cycle().await {
                Err(error) if is_conflict(&error) && attempt < self.policy.attempts => {
                    self.counters
                        .conflict_retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(self.policy.delay(attempt, fastrand::f64())).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Whether an error is a 409 "the object has been modified" (not "already exists").
#[must_use]
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict")
}

/// An API error as the API server words it, `422 Invalid: Deployment.apps "web" is
/// invalid: ...`; other errors as they display.
#[must_use]
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    }
}

/// How a controller's start-up line names its scope, election and metrics endpoint:
/// `all namespaces; no leader election; metrics on http://127.0.0.1:8080/metrics`.
pub(crate) fn run_settings(
    namespace: Option<&str>,
    election: Option<&election::ElectionOptions>,
    metrics: Option<std::net::SocketAddr>,
) -> String {
    let scope = namespace.map_or_else(
        || "all namespaces".to_owned(),
        |ns| format!("namespace {ns}"),
    );
    let election = election.map_or_else(
        || "no leader election".to_owned(),
        |e| {
            format!(
                "leader election on Lease {}/{} as {}",
                e.namespace, e.name, e.identity
            )
        },
    );
    let served = metrics.map_or_else(
        || "no metrics endpoint".to_owned(),
        |address| format!("metrics on http://{address}/metrics"),
    );
    format!("{scope}; {election}; {served}")
}

/// Whether an error is a 404.
#[must_use]
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

async fn load_config(options: &ClusterOptions) -> Result<kube::Config, ClusterError> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    if let Some(path) = &options.kubeconfig {
        let shown = path.display().to_string();
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|source| ClusterError::Kubeconfig {
                path: shown.clone(),
                source,
            })?;
        return kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
            .await
            .map_err(|source| ClusterError::Kubeconfig {
                path: shown,
                source,
            });
    }
    let from_env = std::env::var_os("KUBECONFIG").is_some_and(|value| !value.is_empty());
    let home_file = std::env::home_dir().map(|home| home.join(".kube").join("config"));
    if from_env || home_file.as_ref().is_some_and(|file| file.exists()) || options.context.is_some()
    {
        let shown = if from_env {
            "$KUBECONFIG".to_owned()
        } else {
            "~/.kube/config".to_owned()
        };
        return kube::Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|source| ClusterError::Kubeconfig {
                path: shown,
                source,
            });
    }
    kube::Config::incluster().map_err(|error| ClusterError::NoConfig(error.to_string()))
}
