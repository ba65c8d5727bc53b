//! The controller loop: kube's `Controller` over Services, pod and `EndpointSlice` events mapped
//! to the Services they concern, leader election, metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::election::Elector;
use super::select::{self, LeadConfig, Unfit};
use super::{
    FIELD_MANAGER, LEADER_POD_NAME, LEADER_POD_UID, LeadError, LeadOptions, MANAGED_BY,
    MANAGED_BY_VALUE, SLICE_MANAGED_BY, SOURCE_SERVICE, scoped,
};
use crate::bench::{Latency, Recorder};
use crate::cluster::{
    CacheOptions, ClientStats, Cluster, Events, FailedReconcile, ObjectCache, Repeats, Say,
    Severity, is_not_found, log_recovered,
};
use crate::metrics::{Endpoint, serve};

type Labels = Vec<(String, String)>;

/// How long after a failed reconcile the Service is reconciled again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// A failure that repeats is logged at most this often (with the count of the others).
const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// The controller's name in logs and Events.
const CONTROLLER: &str = "zen-lead";

/// zen-lead's histogram buckets, 1 ms to 5 s.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What a run of the controller did, for tests, benchmarks and the closing line.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Reconciles of opted-in Services.
    pub reconciles: u64,
    /// Reconciles that failed (and were retried).
    pub errors: u64,
    /// Leader Services and `EndpointSlices` created or changed, and leftovers deleted.
    pub writes: u64,
    /// Leader changes.
    pub failovers: u64,
    /// How long reconciles of opted-in Services took.
    pub latency: Latency,
    /// Times this replica became leader of the controller replicas.
    pub terms: u64,
    /// Times the pod watch broke (a dropped connection, an API server restart, a compacted
    /// history) and was ridden out: listed again, and what changed meanwhile reconciled.
    pub watch_restarts: u64,
    /// What the client did (requests, retries, timeouts...).
    pub client: ClientStats,
}

/// The `zen_lead_*` metrics.
#[derive(Debug, Clone)]
struct Metrics {
    duration: Family<Labels, Histogram>,
    failover_latency: Family<Labels, Histogram>,
    failovers: Family<Labels, Counter>,
    without_endpoints: Family<Labels, Gauge>,
    cache_hits: Family<Labels, Counter>,
    cache_misses: Family<Labels, Counter>,
    cache_size: Family<Labels, Gauge>,
    retry_attempts: Counter,
    success_after_retry: Counter,
    timeouts: Counter,
    is_leader: Gauge,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    fn new(endpoint: &Endpoint) -> Self {
        let metrics = Self {
            duration: Family::new_with_constructor(histogram),
            failover_latency: Family::new_with_constructor(histogram),
            failovers: Family::default(),
            without_endpoints: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            cache_size: Family::default(),
            retry_attempts: Counter::default(),
            success_after_retry: Counter::default(),
            timeouts: Counter::default(),
            is_leader: Gauge::default(),
        };
        let mut registry = endpoint
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let registry = registry.sub_registry_with_prefix("zen_lead");
        let m = metrics.clone();
        registry.register(
            "reconciliation_duration_seconds",
            "Duration of reconciliation loops in seconds, by namespace, service and result",
            m.duration,
        );
        registry.register(
            "failover_latency_seconds",
            "Time from leader unhealthy detection to new leader written, in seconds",
            m.failover_latency,
        );
        registry.register(
            "failover_count",
            "Leader changes, by reason (notReady, terminating, noIP, noneReady)",
            m.failovers,
        );
        registry.register(
            "leader_service_without_endpoints",
            "Leader Services with no endpoint (1) or one (0)",
            m.without_endpoints,
        );
        registry.register(
            "cache_hits",
            "Pod events mapped with the namespace's opted-in Services already cached",
            m.cache_hits,
        );
        registry.register(
            "cache_misses",
            "Pod events that had to rebuild the namespace's opted-in Services",
            m.cache_misses,
        );
        registry.register(
            "cache_size",
            "Opted-in Services cached, by namespace",
            m.cache_size,
        );
        registry.register(
            "retry_attempts",
            "API requests tried again (attempts beyond the first)",
            m.retry_attempts,
        );
        registry.register(
            "retry_success_after_retry",
            "API requests that succeeded only after a retry",
            m.success_after_retry,
        );
        registry.register(
            "timeout_occurrences",
            "API request attempts that got no answer within the request timeout",
            m.timeouts,
        );
        registry.register(
            "is_leader",
            "1 while this replica leads the controller replicas and reconciles",
            m.is_leader,
        );
        metrics
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// One opted-in Service, as pod events are mapped.
#[derive(Debug, PartialEq, Eq)]
struct OptedIn {
    name: String,
    selector: BTreeMap<String, String>,
    leader_service: String,
    sticky: bool,
}

impl OptedIn {
    /// `service` as pod events are mapped, if it has opted in with a selector.
    fn of(service: &Service) -> Option<Self> {
        if !select::enabled(service) {
            return None;
        }
        let selector = service.spec.as_ref()?.selector.clone()?;
        let config = LeadConfig::of(service);
        (!selector.is_empty()).then(|| Self {
            name: service.name_any(),
            selector,
            leader_service: config.leader_service,
            sticky: config.sticky,
        })
    }
}

/// zen-lead's cache of opted-in Services per namespace, built from the Service store on a miss
/// and dropped for a namespace when one of its Services changes. At most `capacity` Services a
/// namespace are kept, those pod events concerned most recently (LRU); a namespace with more is
/// marked incomplete, and its pod events look at the others in the store too (slower, counted
/// as a miss, never wrong).
#[derive(Debug, Default)]
struct OptedInCache {
    namespaces: RwLock<HashMap<String, Arc<OptedInList>>>,
    /// When pod events last concerned each Service.
    used: Mutex<HashMap<Key, Instant>>,
    capacity: usize,
}

/// A namespace's cached opted-in Services.
#[derive(Debug)]
struct OptedInList {
    services: Vec<OptedIn>,
    /// Whether every opted-in Service of the namespace is here.
    complete: bool,
}

/// How long a written object is trusted over a store that has not shown it.
const WRITTEN_TRUSTED: Duration = Duration::from_secs(5);

/// The objects this controller wrote last, by parent Service, until its watches deliver them:
/// a reconcile that runs before the store has caught up with the previous write (the slice's
/// own watch event triggers one) must not take the older object for the truth, count the same
/// failover twice and write again. Objects the watches saw deleted (by uid) are never taken
/// for the truth again, from the store or from here: a write made just before a deletion must
/// not hide the deletion from the next reconcile.
struct Written<K>(Mutex<WrittenState<K>>);

struct WrittenState<K> {
    written: HashMap<Key, (Arc<K>, Instant)>,
    /// The uid of the object last seen deleted, by parent Service.
    gone: HashMap<Key, String>,
}

/// A parent Service: namespace and name.
type Key = (String, String);

impl<K> Default for Written<K> {
    fn default() -> Self {
        Self(Mutex::new(WrittenState {
            written: HashMap::new(),
            gone: HashMap::new(),
        }))
    }
}

impl<K: kube::Resource> Written<K> {
    fn state(&self) -> std::sync::MutexGuard<'_, WrittenState<K>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, key: &Key, object: K) {
        let mut state = self.state();
        if state.gone.get(key) != object.meta().uid.as_ref() {
            state.gone.remove(key);
        }
        state
            .written
            .insert(key.clone(), (Arc::new(object), Instant::now()));
    }

    fn forget(&self, key: &Key) {
        let mut state = self.state();
        state.written.remove(key);
        state.gone.remove(key);
    }

    /// A watch saw `object`, made for `key`, deleted.
    fn deleted(&self, key: &Key, object: &K) {
        let Some(uid) = object.meta().uid.clone() else {
            return;
        };
        let mut state = self.state();
        state.written.remove(key);
        state.gone.insert(key.clone(), uid);
    }

    /// The store's object once it shows what was written, or after [`WRITTEN_TRUSTED`] (the
    /// store then shows whatever happened since); until then, the written one. Never an object
    /// seen deleted.
    fn fresher(&self, key: &Key, stored: Option<Arc<K>>) -> Option<Arc<K>> {
        let mut state = self.state();
        let gone = state.gone.get(key).cloned();
        let alive = |object: &K| gone.is_none() || object.meta().uid != gone;
        let stored = stored.filter(|found| alive(found));
        let Some((mine, at)) = state.written.get(key) else {
            return stored;
        };
        let caught_up = stored
            .as_deref()
            .is_some_and(|found| found.resource_version() == mine.resource_version());
        if caught_up || at.elapsed() > WRITTEN_TRUSTED || !alive(mine) {
            state.written.remove(key);
            return stored;
        }
        Some(Arc::clone(mine))
    }
}

/// What every reconcile shares.
struct Context {
    cluster: Cluster,
    fast: Cluster,
    options: LeadOptions,
    metrics: Metrics,
    store: Store<Service>,
    slices: Store<EndpointSlice>,
    leader_pods: Option<ObjectCache<Pod>>,
    opted_in: OptedInCache,
    /// When each Service's leader was first seen unfit, and why.
    unfit_since: Mutex<HashMap<(String, String), (Instant, Unfit)>>,
    /// Leader Services by (namespace, parent), learnt as they are reconciled.
    leaders_of: Mutex<HashMap<(String, String), String>>,
    /// What this controller last wrote, until the watches deliver it (see [`Written`]).
    written_services: Written<Service>,
    written_slices: Written<EndpointSlice>,
    /// True once the slice store holds its first list (kube's `Controller` holds reconciles
    /// until its own Service store does). kube's `Store::wait_until_ready` wakes only one of
    /// several tasks waiting at once, so one task waits there and every reconcile here.
    stores_ready: watch::Receiver<bool>,
    leading: watch::Receiver<bool>,
    latency: Mutex<Recorder>,
    reconciles: AtomicU64,
    errors: AtomicU64,
    writes: AtomicU64,
    failovers: AtomicU64,
    /// Re-lists of the pod watch after its first.
    watch_restarts: AtomicU64,
    last_stats: Mutex<ClientStats>,
    /// Failures said lately, so one that repeats is said with a count, not a flood.
    repeats: Repeats,
    /// Events on the opted-in Services: leaders chosen and changed, writes refused.
    events: Events,
}

impl Context {
    /// Brings the retry and timeout counters up to the client's.
    fn sync_client_stats(&self) {
        let now = self.cluster.stats();
        let mut last = self
            .last_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let delta = now.since(&last);
        self.metrics.retry_attempts.inc_by(delta.retries);
        self.metrics
            .success_after_retry
            .inc_by(delta.succeeded_after_retry);
        self.metrics.timeouts.inc_by(delta.timeouts);
        *last = now;
    }

    /// The namespace's opted-in Services, counting a hit or a miss.
    fn opted_in(&self, namespace: &str) -> Arc<OptedInList> {
        let key = labels(&[("namespace", namespace)]);
        if let Some(found) = self
            .opted_in
            .namespaces
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(namespace)
        {
            self.metrics.cache_hits.get_or_create(&key).inc();
            return Arc::clone(found);
        }
        self.metrics.cache_misses.get_or_create(&key).inc();
        let mut services = self.opted_in_store(namespace, &[]);
        let capacity = self.opted_in.capacity.max(1);
        let complete = services.len() <= capacity;
        if !complete {
            let used = self
                .opted_in
                .used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let last_used = |entry: &OptedIn| {
                used.get(&(namespace.to_owned(), entry.name.clone()))
                    .copied()
            };
            // Most recently used first (never used last), then by name.
            services.sort_by(|a, b| {
                last_used(b)
                    .cmp(&last_used(a))
                    .then_with(|| a.name.cmp(&b.name))
            });
            services.truncate(capacity);
        }
        #[allow(clippy::cast_possible_wrap)]
        self.metrics
            .cache_size
            .get_or_create(&key)
            .set(services.len() as i64);
        let list = Arc::new(OptedInList { services, complete });
        self.opted_in
            .namespaces
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(namespace.to_owned(), Arc::clone(&list));
        list
    }

    /// The namespace's opted-in Services in the store, but those in `cached`, by name.
    fn opted_in_store(&self, namespace: &str, cached: &[OptedIn]) -> Vec<OptedIn> {
        let mut services: Vec<OptedIn> = self
            .store
            .state()
            .iter()
            .filter(|service| service.namespace().as_deref() == Some(namespace))
            .filter_map(|service| OptedIn::of(service))
            .filter(|entry| !cached.iter().any(|known| known.name == entry.name))
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        services
    }

    /// Drops the namespace's opted-in list when `service` is not in it as it is now.
    fn notice(&self, service: &Service) {
        let namespace = service.namespace().unwrap_or_default();
        let cached = self
            .opted_in
            .namespaces
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&namespace)
            .cloned();
        let Some(cached) = cached else { return };
        let name = service.name_any();
        let now = OptedIn::of(service);
        let was = cached.services.iter().find(|entry| entry.name == name);
        // A Service an incomplete list left out is read from the store at each pod event.
        let stale = match was {
            Some(was) => now.as_ref() != Some(was),
            None => now.is_some() && cached.complete,
        };
        if stale {
            self.opted_in
                .namespaces
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&namespace);
        }
    }

    /// The Services a pod event concerns: those whose leader it is, and, when it may lead,
    /// those with no leader or not sticky. A healthy pod coming or going beside a healthy
    /// sticky leader changes nothing and triggers nothing.
    ///
    /// Also says whether the pod leads any of them.
    fn services_for(&self, pod: &Pod, deleted: bool) -> (Vec<ObjectRef<Service>>, bool) {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let fit = !deleted && select::fitness(pod).is_ok();
        let pod_labels = pod.labels();
        let mut wanted = Vec::new();
        let mut leads = false;
        let cached = self.opted_in(&namespace);
        let others = if cached.complete {
            Vec::new()
        } else {
            self.metrics
                .cache_misses
                .get_or_create(&labels(&[("namespace", &namespace)]))
                .inc();
            self.opted_in_store(&namespace, &cached.services)
        };
        for entry in cached.services.iter().chain(&others) {
            // What this controller wrote last, if the store has not shown it yet: a pod that
            // just became leader is mapped to its Service.
            let leader_service = self.written_services.fresher(
                &(namespace.clone(), entry.name.clone()),
                self.store
                    .get(&ObjectRef::new(&entry.leader_service).within(&namespace)),
            );
            let leader = leader_service
                .and_then(|service| service.annotations().get(LEADER_POD_NAME).cloned());
            let is_leader = leader.as_deref() == Some(name.as_str());
            leads |= is_leader;
            let concerned = is_leader
                || (select::selects(&entry.selector, pod_labels)
                    && fit
                    && (leader.is_none() || !entry.sticky));
            if concerned {
                wanted.push(ObjectRef::new(&entry.name).within(&namespace));
            }
        }
        if !wanted.is_empty() {
            let now = Instant::now();
            let mut used = self
                .opted_in
                .used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for service in &wanted {
                used.insert((namespace.clone(), service.name.clone()), now);
            }
        }
        (wanted, leads)
    }

    /// Forgets what was known of a parent Service that was deleted or opted out.
    fn forget_parent(&self, key: &Key) {
        let (namespace, name) = key;
        let mut cached = self
            .opted_in
            .namespaces
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached
            .get(namespace)
            .is_some_and(|list| list.services.iter().any(|entry| entry.name == *name))
        {
            cached.remove(namespace);
        }
        drop(cached);
        self.leaders_of
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        self.unfit_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        self.opted_in
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        self.metrics
            .without_endpoints
            .remove(&labels(&[("namespace", namespace), ("service", name)]));
        self.written_services.forget(key);
        self.written_slices.forget(key);
    }

    fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Checked before every write: a replica that lost the Lease while reconciling (a request
    /// that waited, or was retried, past the renew deadline) writes nothing more.
    fn ensure_leading(&self) -> Result<(), LeadError> {
        if self.leading() {
            Ok(())
        } else {
            Err(LeadError::NotLeading)
        }
    }
}

/// Runs the controller until `shutdown`. With election options, it reconciles only while this
/// replica holds the Lease, and stops writing as soon as it loses it.
///
/// # Errors
/// Options that do not fit together, or a metrics address that cannot be bound.
pub async fn run(
    cluster: Cluster,
    options: &LeadOptions,
    shutdown: &CancellationToken,
) -> Result<RunSummary, LeadError> {
    if options.workers == 0 {
        return Err(LeadError::Options("--workers must be at least 1".into()));
    }
    let election = options
        .election
        .clone()
        .map(super::election::ElectionOptions::checked)
        .transpose()
        .map_err(LeadError::Options)?;
    let fast = cluster
        .with_retry(options.fast_retry)
        .map_err(|error| LeadError::Options(error.to_string()))?;
    let endpoint = Arc::new(Endpoint::default());
    let metrics = Metrics::new(&endpoint);
    let stop = shutdown.child_token();
    let server = match options.metrics_addr {
        Some(address) => Some(
            serve(address, Arc::clone(&endpoint), stop.clone())
                .await
                .map_err(|source| LeadError::Metrics { address, source })?,
        ),
        None => None,
    };
    log_start(options, server.as_ref().map(|server| server.address));
    let (leading_tx, leading) = watch::channel(election.is_none());
    // The elector outlives the controller's last term: the Lease is released only once the
    // reconciles in flight have finished, so a standby never writes beside them.
    let elector_stop = CancellationToken::new();
    let elector = if let Some(election) = election {
        let elector = Elector::new(cluster.client(), election);
        Some(tokio::spawn(elector.run(leading_tx, elector_stop.clone())))
    } else {
        drop(leading_tx);
        None
    };
    endpoint.ready.store(true, Ordering::Relaxed);
    let before = cluster.stats();
    let mut summary = RunSummary::default();
    let mut latency = Recorder::new();
    let mut leading_rx = leading.clone();
    while !stop.is_cancelled() {
        // Wait to lead.
        while !*leading_rx.borrow_and_update() {
            tokio::select! {
                changed = leading_rx.changed() => if changed.is_err() { break },
                () = stop.cancelled() => break,
            }
        }
        if stop.is_cancelled() || !*leading_rx.borrow() {
            break;
        }
        summary.terms += 1;
        metrics.is_leader.set(1);
        let term = stop.child_token();
        let lost = {
            let term = term.clone();
            let mut rx = leading_rx.clone();
            tokio::spawn(async move {
                while *rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        // No election: leading for ever.
                        term.cancelled().await;
                        return;
                    }
                }
                term.cancel();
            })
        };
        let context = run_term(&cluster, &fast, options, &metrics, leading.clone(), &term).await;
        lost.abort();
        term.cancel();
        metrics.is_leader.set(0);
        summary.reconciles += context.reconciles.load(Ordering::Relaxed);
        summary.errors += context.errors.load(Ordering::Relaxed);
        summary.writes += context.writes.load(Ordering::Relaxed);
        summary.failovers += context.failovers.load(Ordering::Relaxed);
        summary.watch_restarts += context.watch_restarts.load(Ordering::Relaxed);
        latency.merge(
            &context
                .latency
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if options.election.is_none() {
            break;
        }
    }
    stop.cancel();
    elector_stop.cancel();
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    // Its address free again before this returns: a controller started anew can bind it.
    if let Some(server) = server {
        server.stopped().await;
    }
    summary.latency = latency.summary();
    summary.client = cluster.stats().since(&before);
    log_stopped(&summary);
    Ok(summary)
}

/// The closing line: what the run did.
fn log_stopped(summary: &RunSummary) {
    tracing::info!(
        controller = CONTROLLER,
        reconciles = summary.reconciles,
        errors = summary.errors,
        writes = summary.writes,
        failovers = summary.failovers,
        watch_restarts = summary.watch_restarts,
        p95_ms = summary.latency.p95_ms,
        "zen-lead stopped: {} reconciles (p95 {:.1} ms), {} writes, {} failovers, {} errors; \
         rode out {} watch restarts",
        summary.reconciles,
        summary.latency.p95_ms,
        summary.writes,
        summary.failovers,
        summary.errors,
        summary.watch_restarts
    );
}

/// The start-up line: every setting that shapes the run (nothing secret is among them).
fn log_start(options: &LeadOptions, metrics: Option<std::net::SocketAddr>) {
    let settings = crate::cluster::run_settings(
        options.namespace.as_deref(),
        options.election.as_ref(),
        metrics,
    );
    tracing::info!(
        controller = CONTROLLER,
        namespace = options.namespace.as_deref().unwrap_or_default(),
        workers = options.workers,
        resync_seconds = options.resync.as_secs(),
        leader_pod_cache = options.leader_pod_cache,
        election = options.election.is_some(),
        metrics = metrics.map(|a| a.to_string()).unwrap_or_default(),
        "zen-lead started: Services in {settings}; {} workers, resync every {}s",
        options.workers,
        options.resync.as_secs()
    );
}

/// One term as leader: the controller runs until `term` is cancelled.
#[allow(clippy::too_many_lines)] // the wiring of four streams, read best in one place
async fn run_term(
    cluster: &Cluster,
    fast: &Cluster,
    options: &LeadOptions,
    metrics: &Metrics,
    leading: watch::Receiver<bool>,
    term: &CancellationToken,
) -> Arc<Context> {
    let client = cluster.client();
    let scope = options.namespace.as_deref();
    let (services, pods, slices_api): (Api<Service>, Api<Pod>, Api<EndpointSlice>) = (
        scoped(client.clone(), scope),
        scoped(client.clone(), scope),
        scoped(client.clone(), scope),
    );
    let (service_store, service_writer) = reflector::store();
    let (slice_store, slice_writer) = reflector::store();
    let leader_pods = options.leader_pod_cache.then(|| {
        let mut cache_options = CacheOptions {
            default_ttl: options.leader_pod_cache_ttl,
            per_namespace_capacity: options.max_cache_size_per_namespace as u64,
            ..CacheOptions::default()
        };
        cache_options
            .ttl_by_kind
            .insert("Pod".into(), options.leader_pod_cache_ttl);
        ObjectCache::new(fast.client(), &cache_options)
    });
    let (ready_tx, stores_ready) = watch::channel(false);
    let context = Arc::new(Context {
        cluster: cluster.clone(),
        fast: fast.clone(),
        options: options.clone(),
        metrics: metrics.clone(),
        store: service_store.clone(),
        slices: slice_store,
        leader_pods,
        opted_in: OptedInCache {
            capacity: options.max_cache_size_per_namespace,
            ..OptedInCache::default()
        },
        unfit_since: Mutex::default(),
        leaders_of: Mutex::default(),
        written_services: Written::default(),
        written_slices: Written::default(),
        stores_ready,
        leading,
        latency: Mutex::new(Recorder::new()),
        reconciles: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        failovers: AtomicU64::new(0),
        watch_restarts: AtomicU64::new(0),
        last_stats: Mutex::new(cluster.stats()),
        repeats: Repeats::new(REPEAT_EVERY),
        events: Events::new(cluster, CONTROLLER),
    });
    let (trigger_tx, trigger_rx) = mpsc::unbounded_channel::<ObjectRef<Service>>();
    let triggers = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    // Pod events: the leader cache refreshed first, then the Services concerned triggered.
    let pod_task = {
        let context = Arc::clone(&context);
        let tx = trigger_tx.clone();
        // While the watch is live, it has told of every change to the cached leader pods: they
        // are renewed every third of the TTL, so the TTL bounds how stale a leader pod can be
        // only while the watch is down. (Without this, every cached leader expired together and
        // the next resync read all of them again, queueing failovers behind them at --qps.)
        let renew_every = (options.leader_pod_cache_ttl / 3).max(Duration::from_millis(100));
        let scope = scope.map(str::to_owned);
        tokio::spawn(async move {
            let events = watcher(pods, watcher::Config::default()).default_backoff();
            let mut events = std::pin::pin!(events);
            let mut renew = tokio::time::interval(renew_every);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut live = false;
            // The pods of a list after the first: the watch broke (a dropped connection, 410
            // Gone, an API server restart) and listed again, and a pod deleted meanwhile is only
            // absent from that list. `None` during the first list and between lists.
            let mut relisted: Option<std::collections::HashSet<(String, String)>> = None;
            let mut listed_once = false;
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = renew.tick() => {
                        if let (true, Some(cache)) = (live, &context.leader_pods) {
                            cache.renew_all();
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                let (pod, deleted) = match event {
                    Ok(watcher::Event::Apply(pod)) => (pod, false),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let Some(listed) = relisted.as_mut() {
                            listed.insert((pod.namespace().unwrap_or_default(), pod.name_any()));
                        }
                        (pod, false)
                    }
                    Ok(watcher::Event::Delete(pod)) => (pod, true),
                    Ok(watcher::Event::InitDone) => {
                        live = true;
                        if let Some(listed) = relisted.take() {
                            // Leader pods deleted while the watch was down leave the cache, and
                            // every opted-in Service is reconciled again: its leader may be one.
                            if let Some(cache) = &context.leader_pods {
                                cache.forget_unlisted(scope.as_deref(), &listed);
                            }
                            for service in context.store.state() {
                                if select::enabled(&service) {
                                    let _ = tx.send(ObjectRef::from_obj(&*service));
                                }
                            }
                        }
                        listed_once = true;
                        continue;
                    }
                    Ok(watcher::Event::Init) => {
                        live = false;
                        if listed_once && relisted.is_none() {
                            context.watch_restarts.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                controller = CONTROLLER,
                                watch = "pods",
                                "the watch of pods restarted: listing them again, then \
                                 reconciling every opted-in Service"
                            );
                        }
                        relisted = listed_once.then(std::collections::HashSet::new);
                        continue;
                    }
                    Err(error) => {
                        live = false;
                        log_watch_error("pods", &error, &context.repeats);
                        continue;
                    }
                };
                let (services, leads) = context.services_for(&pod, deleted);
                if let Some(cache) = &context.leader_pods {
                    if deleted {
                        cache.invalidate(&pod.namespace().unwrap_or_default(), &pod.name_any());
                    } else if leads {
                        // Leader pods seen by the watch (its first list included) are cached,
                        // so a restarted controller reads none of them with a request.
                        cache.insert(pod.clone());
                    } else {
                        cache.update(pod.clone());
                    }
                }
                for service in services {
                    let _ = tx.send(service);
                }
            }
        })
    };
    // Deletions, seen once the store shows them: what was made for a parent is made again (the
    // object deleted is never taken for the truth again); what was known of a deleted parent
    // is forgotten. kube's `Controller` reconciles only objects that exist.
    let deletions = {
        let context = Arc::clone(&context);
        let tx = trigger_tx.clone();
        move |event: &watcher::Result<watcher::Event<Service>>| {
            let Ok(watcher::Event::Delete(service)) = event else {
                return;
            };
            let namespace = service.namespace().unwrap_or_default();
            match service.labels().get(SOURCE_SERVICE) {
                Some(source) if select::is_leader_service(service) => {
                    let key = (namespace.clone(), source.clone());
                    context.written_services.deleted(&key, service);
                    let _ = tx.send(ObjectRef::new(source).within(&namespace));
                }
                _ => context.forget_parent(&(namespace, service.name_any())),
            }
        }
    };
    let service_events = watcher(services, watcher::Config::default())
        .default_backoff()
        .reflect(service_writer)
        .inspect(deletions)
        .applied_objects();
    let controller = Controller::for_stream(service_events, service_store)
        .with_config(controller::Config::default().concurrency(options.workers));
    // The slices the controller made: a store to compare with, and drift repaired.
    let slice_task = {
        let context = Arc::clone(&context);
        let tx = trigger_tx.clone();
        let config =
            watcher::Config::default().labels(&format!("{SLICE_MANAGED_BY}={MANAGED_BY_VALUE}"));
        tokio::spawn(async move {
            let events = watcher(slices_api, config)
                .default_backoff()
                .reflect(slice_writer);
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let (slice, deleted) = match event {
                    Ok(watcher::Event::Apply(slice) | watcher::Event::InitApply(slice)) => {
                        (slice, false)
                    }
                    Ok(watcher::Event::Delete(slice)) => (slice, true),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                    Err(error) => {
                        log_watch_error("EndpointSlices", &error, &context.repeats);
                        continue;
                    }
                };
                if let (Some(source), Some(namespace)) = (
                    slice.labels().get(SOURCE_SERVICE),
                    slice.namespace().as_deref(),
                ) {
                    if deleted {
                        let key = (namespace.to_owned(), source.clone());
                        context.written_slices.deleted(&key, &slice);
                    }
                    let _ = tx.send(ObjectRef::new(source).within(namespace));
                }
            }
        })
    };
    drop(trigger_tx);
    let ready_task = {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            if context.slices.wait_until_ready().await.is_ok() {
                let _ = ready_tx.send(true);
            }
        })
    };
    let stats_task = {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                context.sync_client_stats();
            }
        })
    };
    let stop = term.clone();
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, Arc::clone(&context))
        .for_each(|result| {
            // Failed reconciles are logged where they end; a failed Service watch is here.
            if let Err(controller::Error::QueueError(error)) = result {
                log_watch_error("Services", &error, &context.repeats);
            }
            futures::future::ready(())
        })
        .await;
    pod_task.abort();
    slice_task.abort();
    ready_task.abort();
    stats_task.abort();
    context.sync_client_stats();
    context
}

fn error_policy(_: Arc<Service>, _: &LeadError, _: Arc<Context>) -> Action {
    Action::requeue(RETRY_AFTER)
}

/// Logs how a reconcile of `service` ended: a failure (at most once a minute while it repeats),
/// or the first success after failures.
fn log_outcome(service: &Service, outcome: &Result<Action, LeadError>, context: &Context) {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    match outcome {
        Ok(_) => log_recovered(
            CONTROLLER,
            "Service",
            &format!("{namespace}/{name}"),
            &context.repeats,
        ),
        Err(LeadError::NotLeading) => {}
        Err(error) => {
            let failure = match error {
                LeadError::Api { failure, .. } => Some(&**failure),
                _ => None,
            };
            let cause = error.to_string();
            let failed = FailedReconcile {
                controller: CONTROLLER,
                kind: "Service",
                namespace: Some(&namespace),
                name: &name,
                cause: &cause,
                failure,
                retry_in: RETRY_AFTER,
            };
            if failed.log(&context.repeats) {
                let reason = if failed.denied() {
                    "PermissionDenied"
                } else {
                    "ReconcileFailed"
                };
                let note = format!("{cause}; retrying in {}s", RETRY_AFTER.as_secs());
                context.events.record(
                    service.object_ref(&()),
                    Severity::Warning,
                    reason,
                    "Reconcile",
                    &note,
                );
            }
        }
    }
}

/// The pod a leader `EndpointSlice` routes to (uid, name), if any.
fn routed_pod(slice: &EndpointSlice) -> Option<(Option<String>, ObjectReference)> {
    let target = slice
        .endpoints
        .iter()
        .flatten()
        .next()?
        .target_ref
        .as_ref()?;
    Some((target.uid.clone(), target.clone()))
}

/// The Event on `parent` when the pod its leader Service routes to is chosen, changes or is
/// lost, and the log line.
fn record_leader_change(
    context: &Context,
    parent: &Service,
    leader_service: &str,
    previous: Option<ObjectReference>,
    leader: Option<ObjectReference>,
    why: Option<&'static str>,
) {
    let namespace = parent.namespace().unwrap_or_default();
    let name = parent.name_any();
    let why = why.map(|reason| format!(" ({reason})")).unwrap_or_default();
    let name_of = |pod: &Option<ObjectReference>| pod.as_ref().and_then(|p| p.name.clone());
    let (severity, reason, note) = match (name_of(&previous), name_of(&leader)) {
        (None, Some(leader)) => (
            Severity::Normal,
            "LeaderElected",
            format!("pod {leader} leads: {leader_service} routes to it"),
        ),
        (Some(previous), Some(leader)) => (
            Severity::Normal,
            "LeaderChanged",
            format!("pod {leader} leads, replacing {previous}{why}: {leader_service} routes to it"),
        ),
        (Some(previous), None) => (
            Severity::Warning,
            "NoLeader",
            format!("{previous} no longer leads{why}: {leader_service} has no endpoint"),
        ),
        (None, None) => return,
    };
    if severity == Severity::Warning {
        tracing::warn!(
            controller = CONTROLLER,
            kind = "Service",
            namespace,
            name,
            reason,
            "Service {namespace}/{name}: {note}"
        );
    } else {
        tracing::info!(
            controller = CONTROLLER,
            kind = "Service",
            namespace,
            name,
            reason,
            "Service {namespace}/{name}: {note}"
        );
    }
    // The pod it is about: each new leader its own Event, not a repeat of the last one.
    let related = leader.or(previous);
    context.events.record_related(
        parent.object_ref(&()),
        related,
        severity,
        reason,
        "Elect",
        &note,
    );
}

/// Logs a watch that failed (kube's watcher retries it with backoff), once a minute at most
/// while it keeps failing.
fn log_watch_error(what: &str, error: &watcher::Error, repeats: &Repeats) {
    let cause = error.to_string();
    if let Say::Now { repeats } = repeats.note(&format!("watch/{what}"), &cause) {
        tracing::warn!(
            controller = CONTROLLER,
            watch = what,
            repeats,
            "the watch of {what} failed: {cause}; watching again after a backoff"
        );
    }
}

async fn reconcile(service: Arc<Service>, context: Arc<Context>) -> Result<Action, LeadError> {
    if !context.leading() {
        // Lost the Lease mid-flight: another replica reconciles now.
        return Ok(Action::await_change());
    }
    context.notice(&service);
    let outcome = if select::is_leader_service(&service) {
        reconcile_leader_service(&service, &context).await
    } else if select::enabled(&service) {
        reconcile_opted_in(&service, &context).await
    } else {
        cleanup(&service, &context)
            .await
            .map(|()| Action::await_change())
    };
    log_outcome(&service, &outcome, &context);
    match outcome {
        // Lost the Lease before a write: another replica reconciles now.
        Err(LeadError::NotLeading) => Ok(Action::await_change()),
        outcome => outcome,
    }
}

/// An opted-in Service reconciled, timed and counted (a reconcile cut short by the loss of the
/// Lease is neither).
async fn reconcile_opted_in(service: &Service, context: &Context) -> Result<Action, LeadError> {
    let started = Instant::now();
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let outcome = reconcile_parent(service, context).await;
    if matches!(outcome, Err(LeadError::NotLeading)) {
        return outcome;
    }
    let elapsed = started.elapsed();
    let result = if outcome.is_ok() { "success" } else { "error" };
    context
        .metrics
        .duration
        .get_or_create(&labels(&[
            ("namespace", &namespace),
            ("service", &name),
            ("result", result),
        ]))
        .observe(elapsed.as_secs_f64());
    context
        .latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .record(elapsed);
    context.reconciles.fetch_add(1, Ordering::Relaxed);
    if outcome.is_err() {
        context.errors.fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

/// A leader Service whose parent is gone, no longer opted in, or names another leader Service
/// is deleted (its `EndpointSlice` goes with it, by `ownerReference` and explicitly).
async fn reconcile_leader_service(
    leader: &Service,
    context: &Context,
) -> Result<Action, LeadError> {
    let namespace = leader.namespace().unwrap_or_default();
    let name = leader.name_any();
    let Some(source) = leader.labels().get(SOURCE_SERVICE).cloned() else {
        return Ok(Action::await_change());
    };
    let parent = context
        .store
        .get(&ObjectRef::new(&source).within(&namespace));
    let wanted = parent.as_deref().is_some_and(|parent| {
        select::enabled(parent) && LeadConfig::of(parent).leader_service == name
    });
    if wanted {
        context
            .leaders_of
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((namespace, source), name);
        return Ok(Action::await_change());
    }
    // The parent may only be missing from a store still filling: its absence is checked with
    // the API server before anything is deleted.
    let services: Api<Service> = Api::namespaced(context.cluster.client(), &namespace);
    if parent.is_none() {
        match services.get_opt(&source).await {
            Ok(Some(found))
                if select::enabled(&found) && LeadConfig::of(&found).leader_service == name =>
            {
                return Ok(Action::await_change());
            }
            Ok(_) => {}
            Err(error) => {
                return Err(LeadError::api(
                    format!("get Service {namespace}/{source}"),
                    &error,
                ));
            }
        }
    }
    delete_leader(&namespace, &name, context).await?;
    // A parent that names another leader Service keeps what is known of it.
    let renamed = parent.as_deref().is_some_and(select::enabled);
    if !renamed {
        context.forget_parent(&(namespace, source));
    }
    Ok(Action::await_change())
}

/// Deletes the leader Service `leader` and its slice if this controller made them for
/// `parent` (a Service of that name made by anyone else is left alone).
async fn delete_leader_made_for(
    namespace: &str,
    parent: &str,
    leader: &str,
    context: &Context,
) -> Result<(), LeadError> {
    let ours = context
        .store
        .get(&ObjectRef::new(leader).within(namespace))
        .is_some_and(|found| {
            select::is_leader_service(&found)
                && found.labels().get(SOURCE_SERVICE).map(String::as_str) == Some(parent)
        });
    if ours {
        delete_leader(namespace, leader, context).await?;
    }
    Ok(())
}

async fn delete_leader(namespace: &str, name: &str, context: &Context) -> Result<(), LeadError> {
    let slices: Api<EndpointSlice> = Api::namespaced(context.cluster.client(), namespace);
    delete_made(context, &slices, name, "EndpointSlice").await?;
    let services: Api<Service> = Api::namespaced(context.cluster.client(), namespace);
    delete_made(context, &services, name, "leader Service").await
}

/// Deletes an object this controller made (one already gone is fine), counted.
async fn delete_made<K>(
    context: &Context,
    api: &Api<K>,
    name: &str,
    what: &str,
) -> Result<(), LeadError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    context.ensure_leading()?;
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            context.writes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(LeadError::api(
            format!(
                "delete {what} {}/{name}",
                api.namespace().unwrap_or_default()
            ),
            &error,
        )),
    }
}

/// A Service not (or no longer) opted in: what was made for it goes.
async fn cleanup(service: &Service, context: &Context) -> Result<(), LeadError> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let known = context
        .leaders_of
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&(namespace.clone(), name.clone()));
    let default = LeadConfig::of(service).leader_service;
    for leader in known.into_iter().chain(std::iter::once(default)) {
        delete_leader_made_for(&namespace, &name, &leader, context).await?;
    }
    context.forget_parent(&(namespace, name));
    Ok(())
}

/// Reads the current leader pod: through the cache, else from the API server; `None` when it
/// is gone or was recreated under the same name.
async fn current_leader(
    context: &Context,
    namespace: &str,
    existing: Option<&Service>,
) -> Result<Option<Arc<Pod>>, LeadError> {
    let Some(existing) = existing else {
        return Ok(None);
    };
    let annotations = existing.annotations();
    let (Some(name), Some(uid)) = (
        annotations.get(LEADER_POD_NAME),
        annotations.get(LEADER_POD_UID),
    ) else {
        return Ok(None);
    };
    let pod = match &context.leader_pods {
        Some(cache) => cache.get(namespace, name).await,
        None => Api::<Pod>::namespaced(context.fast.client(), namespace)
            .get_opt(name)
            .await
            .map(|pod| pod.map(Arc::new)),
    }
    .map_err(|error| LeadError::api(format!("get leader pod {namespace}/{name}"), &error))?;
    Ok(pod.filter(|pod| pod.uid().as_deref() == Some(uid.as_str())))
}

#[allow(clippy::too_many_lines)]
async fn reconcile_parent(parent: &Service, context: &Context) -> Result<Action, LeadError> {
    let namespace = parent.namespace().unwrap_or_default();
    let name = parent.name_any();
    let key = (namespace.clone(), name.clone());
    let config = LeadConfig::of(parent);
    let resync = Action::requeue(context.options.resync);
    let selector = parent
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    // zen-lead needs the selector to find pods: without one no pod leads (`lead status` says
    // why), rather than the last leader for ever.
    let has_selector = !selector.is_empty();
    // A slice store still filling after a (re)start would make every slice look missing and
    // be rewritten.
    let _ = context.stores_ready.clone().wait_for(|ready| *ready).await;
    let existing = context.written_services.fresher(
        &key,
        context
            .store
            .get(&ObjectRef::new(&config.leader_service).within(&namespace)),
    );
    if existing
        .as_deref()
        .is_some_and(|found| found.labels().get(SOURCE_SERVICE) != Some(&name))
    {
        // Someone else's Service has the name: never overwritten; `lead status` reports it.
        return Ok(resync);
    }
    let renamed_from = context
        .leaders_of
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        .filter(|previous| **previous != config.leader_service)
        .cloned();
    if let Some(previous) = renamed_from {
        // zen-lead.io/leader-service-name changed: the old leader Service must not keep
        // routing to a leader nobody maintains (remembered until it is gone, so a failed
        // delete is tried again).
        delete_leader_made_for(&namespace, &name, &previous, context).await?;
    }
    context
        .leaders_of
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key.clone(), config.leader_service.clone());
    let current = if has_selector {
        current_leader(context, &namespace, existing.as_deref()).await?
    } else {
        None
    };
    let now = Timestamp::now();
    let verdict = current.as_deref().map(select::fitness);
    // What the current leader's state asks for.
    let mut retry_in: Option<Duration> = None;
    let mut failover: Option<(Instant, &'static str)> = None;
    let keep: Option<Arc<Pod>> = match (&current, verdict) {
        (Some(pod), Some(Ok(_))) => {
            context
                .unfit_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            config.sticky.then(|| Arc::clone(pod))
        }
        (Some(pod), Some(Err(unfit))) => {
            let since = *context
                .unfit_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(key.clone())
                .or_insert((Instant::now(), unfit));
            let waited = since.0.elapsed();
            if unfit == Unfit::NotReady && waited < config.failover_min_delay {
                retry_in = Some(config.failover_min_delay.saturating_sub(waited));
                Some(Arc::clone(pod))
            } else {
                failover = Some((since.0, unfit.reason()));
                None
            }
        }
        _ => {
            let had_one = existing
                .as_deref()
                .is_some_and(|found| found.annotations().contains_key(LEADER_POD_NAME));
            if had_one {
                // The leader pod is gone (deleted, or recreated with another uid).
                let since = context
                    .unfit_since
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&key)
                    .map_or_else(Instant::now, |found| found.0);
                failover = Some((since, Unfit::Terminating.reason()));
            }
            None
        }
    };
    let candidates;
    let leader: Option<&Pod> = if let Some(pod) = keep.as_deref() {
        Some(pod)
    } else if !has_selector {
        None
    } else {
        let selector_text = selector
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        candidates = Api::<Pod>::namespaced(context.fast.client(), &namespace)
            .list(&ListParams::default().labels(&selector_text))
            .await
            .map_err(|error| LeadError::api(format!("list pods of {namespace}/{name}"), &error))?
            .items;
        let choice = select::choose(&candidates, now, config.min_ready);
        retry_in = retry_in.or(choice.retry_in);
        // Not sticky: the current leader stays only while it is still the best choice.
        choice.leader
    };
    let (ports, leader_for_slice) = match select::resolve_ports(parent, leader) {
        Ok(ports) => (ports, leader),
        // Fail closed: a port that cannot be resolved routes nowhere rather than wrongly.
        Err(_) => (
            select::resolve_ports(parent, None).unwrap_or_default(),
            None,
        ),
    };
    let desired = select::leader_service(
        parent,
        &config,
        ports.clone(),
        leader,
        existing.as_deref(),
        now,
    );
    let leader_uid = match existing.as_deref() {
        Some(found) if up_to_date(found, &desired) => found.uid(),
        _ => {
            let api = Api::namespaced(context.cluster.client(), &namespace);
            let applied = apply(context, &api, &desired, "leader Service").await?;
            let uid = applied.uid();
            context.written_services.remember(&key, applied);
            uid
        }
    };
    let mut owner = desired.clone();
    owner.metadata.uid = leader_uid;
    let current_slice = context.written_slices.fresher(
        &key,
        context
            .slices
            .get(&ObjectRef::new(&config.leader_service).within(&namespace)),
    );
    let slice = select::endpoint_slice(
        parent,
        &owner,
        &ports,
        leader_for_slice,
        current_slice
            .as_deref()
            .map(|found| found.address_type.as_str()),
    );
    let current_slice = match current_slice {
        Some(found) if found.address_type != slice.address_type => {
            // A leader of the other IP family (dual-stack pods): an addressType cannot change,
            // so the slice is made again.
            let api: Api<EndpointSlice> = Api::namespaced(context.fast.client(), &namespace);
            delete_made(context, &api, &config.leader_service, "EndpointSlice").await?;
            context.written_slices.deleted(&key, &found);
            None
        }
        found => found,
    };
    // The pod the slice routes to, before and after: what clients of the leader Service see
    // change (an Event says so once the new slice is written).
    let routed_before = current_slice.as_deref().and_then(routed_pod);
    let routed_now = routed_pod(&slice);
    let slice_current = current_slice.as_deref().is_some_and(|found| {
        let (Ok(have), Ok(want)) = (serde_json::to_value(found), serde_json::to_value(&slice))
        else {
            return false;
        };
        select::covers(&have, &want)
    });
    if !slice_current {
        let api = Api::namespaced(context.fast.client(), &namespace);
        let applied = apply(context, &api, &slice, "EndpointSlice").await?;
        context.written_slices.remember(&key, applied);
    }
    let previous_uid = existing
        .as_deref()
        .and_then(|found| found.annotations().get(LEADER_POD_UID).cloned());
    let new_uid = leader.and_then(ResourceExt::uid);
    if routed_before.as_ref().map(|(uid, _)| uid) != routed_now.as_ref().map(|(uid, _)| uid) {
        record_leader_change(
            context,
            parent,
            &config.leader_service,
            routed_before.map(|(_, pod)| pod),
            routed_now.map(|(_, pod)| pod),
            failover.map(|(_, reason)| reason),
        );
    }
    if previous_uid.is_some() && previous_uid != new_uid {
        let (since, reason) = match failover {
            Some(found) => found,
            None if leader.is_none() => (Instant::now(), "noneReady"),
            // Not sticky: a pod Ready longer took over from a healthy leader.
            None => (Instant::now(), "notSticky"),
        };
        let key_labels = labels(&[
            ("namespace", &namespace),
            ("service", &name),
            ("reason", reason),
        ]);
        context.metrics.failovers.get_or_create(&key_labels).inc();
        if leader.is_some() {
            context
                .metrics
                .failover_latency
                .get_or_create(&key_labels)
                .observe(since.elapsed().as_secs_f64());
        }
        context.failovers.fetch_add(1, Ordering::Relaxed);
    }
    if leader.is_some() && keep.is_none() {
        context
            .unfit_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    }
    context
        .metrics
        .without_endpoints
        .get_or_create(&labels(&[("namespace", &namespace), ("service", &name)]))
        .set(i64::from(leader_for_slice.is_none()));
    context.sync_client_stats();
    Ok(retry_in.map_or(resync, Action::requeue))
}

/// Writes `object` with server-side apply (forced: the controller owns what it made), counted.
async fn apply<K>(context: &Context, api: &Api<K>, object: &K, what: &str) -> Result<K, LeadError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    context.ensure_leading()?;
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|error| {
            let namespace = object.namespace().unwrap_or_default();
            LeadError::api(format!("apply {what} {namespace}/{name}"), &error)
        })?;
    context.writes.fetch_add(1, Ordering::Relaxed);
    Ok(applied)
}

/// Whether the leader Service as it is says what `desired` says, including which pod leads.
fn up_to_date(existing: &Service, desired: &Service) -> bool {
    let same_leader = [LEADER_POD_NAME, LEADER_POD_UID]
        .iter()
        .all(|key| existing.annotations().get(*key) == desired.annotations().get(*key));
    let owned = existing.owner_references().iter().any(|owner| {
        desired
            .owner_references()
            .first()
            .is_some_and(|want| want.uid == owner.uid)
    });
    let (Ok(have), Ok(want)) = (
        serde_json::to_value(existing),
        serde_json::to_value(desired),
    ) else {
        return false;
    };
    same_leader
        && owned
        && existing.labels().get(MANAGED_BY).is_some()
        && select::covers(&have, &want)
}
