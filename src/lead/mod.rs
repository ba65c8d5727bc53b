//! zen-lead's leader-Service controller: every Service annotated `zen-lead.io/enabled: "true"`
//! gets a selector-less `<svc>-leader` Service and one `EndpointSlice` holding exactly one Ready
//! pod, so clients that connect to the leader Service reach a single active replica. No CRDs,
//! no webhooks, pods never written.
//!
//! - [`run`] runs the controller until cancelled: a watch of Services, pods and the slices it
//!   made; `workers` Services reconciled at once; the leader kept while it stays Ready (sticky),
//!   else the pod Ready the longest (`zen-lead.io/min-ready-duration` long at least), after
//!   `zen-lead.io/failover-min-delay` when the leader went `NotReady`; the guide's caches, client
//!   rate, retry profiles and `zen_lead_*` metrics; replicas elect one leader on a Lease
//!   ([`crate::cluster::election`]).
//! - [`status`] reads every opted-in Service's state and says what is wrong.
//!
//! The choice of leader and the objects written are pure functions in [`select`].

mod controller;
use crate::cluster::election;
pub mod select;
mod status;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use kube::Api;

pub use controller::{RunSummary, run};
pub use status::{LeaderStatus, status};

/// The opt-in annotation on a Service: `"true"` enables it.
pub const ENABLED: &str = "zen-lead.io/enabled";
/// Names the leader Service instead of `<svc>-leader`.
pub const LEADER_SERVICE_NAME: &str = "zen-lead.io/leader-service-name";
/// `"false"` lets a pod Ready longer than the leader take over; default `"true"`.
pub const STICKY: &str = "zen-lead.io/sticky";
/// How long a pod must have been Ready to become leader (Go duration, e.g. `30s`).
pub const MIN_READY_DURATION: &str = "zen-lead.io/min-ready-duration";
/// How long a `NotReady` leader keeps the role before another pod takes it (e.g. `5s`).
pub const FAILOVER_MIN_DELAY: &str = "zen-lead.io/failover-min-delay";
/// On the leader Service: the leader pod's name.
pub const LEADER_POD_NAME: &str = "zen-lead.io/leader-pod-name";
/// On the leader Service: the leader pod's uid (a pod recreated under the same name is another).
pub const LEADER_POD_UID: &str = "zen-lead.io/leader-pod-uid";
/// On the leader Service: when the leader last changed (RFC 3339).
pub const LAST_SWITCH_TIME: &str = "zen-lead.io/leader-last-switch-time";
/// On what the controller makes: the parent Service's name.
pub const SOURCE_SERVICE: &str = "zen-lead.io/source-service";
/// The managed-by label on what the controller makes.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value, and that of [`SLICE_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "zen-lead";
/// The `EndpointSlice` label that keeps Kubernetes' own `EndpointSlice` controller away.
pub const SLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The default leader Service name: the parent's name and this suffix.
pub const LEADER_SUFFIX: &str = "-leader";
/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "kubectl-zen-lead";

/// The Lease replicas of zen-lead elect their leader on, as zen-lead names it.
pub const LEASE_NAME: &str = "zen-lead-controller-leader-election";

/// How the controller runs; the defaults are zen-lead's.
#[derive(Debug, Clone)]
pub struct LeadOptions {
    /// Only Services in this namespace; `None` for all.
    pub namespace: Option<String>,
    /// Services reconciled at once (zen-lead's `MaxConcurrentReconciles`, 10).
    pub workers: u16,
    /// Opted-in Services kept per namespace for mapping pod events to Services (1,000).
    pub max_cache_size_per_namespace: usize,
    /// Whether the current leader pod is read through a cache (true).
    pub leader_pod_cache: bool,
    /// How long a cached leader pod is trusted without a watch event (30 s).
    pub leader_pod_cache_ttl: Duration,
    /// The retry profile of failover-critical requests (reading the leader pod, listing the
    /// candidates, writing the `EndpointSlice`): [`crate::cluster::RetryPolicy::fast`].
    pub fast_retry: crate::cluster::RetryPolicy,
    /// Every Service is reconciled again this often (10 minutes).
    pub resync: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election among replicas; `None` reconciles without it (one replica only).
    pub election: Option<election::ElectionOptions>,
}

impl Default for LeadOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            workers: 10,
            max_cache_size_per_namespace: 1000,
            leader_pod_cache: true,
            leader_pod_cache_ttl: Duration::from_secs(30),
            fast_retry: crate::cluster::RetryPolicy::fast(),
            resync: Duration::from_secs(600),
            metrics_addr: None,
            election: None,
        }
    }
}

/// Every API call [`run`] makes with `options`, as RBAC permissions: watches of Services, pods
/// and the `EndpointSlice`s it made; server-side applies and deletes of the leader Services and
/// slices (and a read of a source Service before its leader is deleted); reads of the leader
/// pod; Events on the Services (created, and patched when one repeats); and, with election, its Lease in the namespace it runs in (`kubectl zen install lead`
/// makes the Roles from this; `tests/install.rs` runs the controller under them).
///
/// An apply that creates its object is authorized as a `create` as well as a `patch`, so each
/// kind it applies has both verbs.
#[must_use]
pub fn permissions(options: &LeadOptions) -> Vec<crate::cluster::Permission> {
    use crate::cluster::{Permission, Scope};
    let mut permissions = vec![
        Permission::new(
            Scope::Cluster,
            "",
            "services",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        Permission::new(Scope::Cluster, "", "pods", &["get", "list", "watch"]),
        Permission::new(
            Scope::Cluster,
            "discovery.k8s.io",
            "endpointslices",
            &["list", "watch", "create", "patch", "delete"],
        ),
        crate::cluster::Events::permission(),
    ];
    if let Some(election) = &options.election {
        permissions.extend(election::permissions(election));
    }
    permissions
}

/// Why the controller or a status read failed.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// The API server refused or failed a request.
    #[error("{what}: {failure}")]
    Api {
        /// What was being done.
        what: String,
        /// What the server said: status code, reason, message, and a denial's missing rule.
        failure: Box<crate::cluster::ApiFailure>,
    },
    /// Options that cannot work together.
    #[error("{0}")]
    Options(String),
    /// This replica no longer holds the Lease: another reconciles now, and this one writes
    /// nothing more.
    #[error("this replica no longer holds the Lease")]
    NotLeading,
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An API for `K` in `namespace`, or in every namespace.
pub(crate) fn scoped<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    }
}

impl LeadError {
    fn api(what: impl Into<String>, error: &kube::Error) -> Self {
        Self::Api {
            what: what.into(),
            failure: Box::new(crate::cluster::ApiFailure::of(error)),
        }
    }
}
