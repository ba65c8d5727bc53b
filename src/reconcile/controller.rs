//! The graph's controller: the instance CRD installed, every instance reconciled with the same
//! engine as a one-off run, a finalizer for ordered deletion, and Prometheus metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::{FIELD_MANAGER, Options, Plan, ReconcileError, Reconciler};
use crate::cluster::election::{ElectionOptions, Elector};
use crate::cluster::{
    ApiFailure, Cluster, Events, FailedReconcile, Permission, Repeats, Say, Scope, Severity,
    api_message, log_recovered,
};
use crate::metrics::{Endpoint, serve};

/// The finalizer that holds an instance until its objects are deleted in order.
pub const FINALIZER: &str = "zen.kubezen.io/finalizer";

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Each reconcile's options (timeout, conflicts, pruning; `workers` objects at once).
    pub run: Options,
    /// Instances reconciled at once.
    pub workers: usize,
    /// Every instance is reconciled again after this long.
    pub resync: Duration,
    /// Where to serve metrics and health checks; `None` serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// Only instances in this namespace; `None` for all.
    pub namespace: Option<String>,
    /// Leader election among replicas: only the Lease holder reconciles, and a replica that
    /// loses the Lease returns [`ReconcileError::NotLeading`]. `None`: this is the only replica.
    pub election: Option<ElectionOptions>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            run: Options::default(),
            workers: 4,
            resync: Duration::from_secs(300),
            metrics_addr: None,
            namespace: None,
            election: None,
        }
    }
}

/// What a run of [`run_controller`] did, for its closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerSummary {
    /// Reconciles of instances that succeeded.
    pub reconciles: u64,
    /// Reconciles that failed (each retried).
    pub errors: u64,
    /// Errors of the instances' watch (a dropped connection, an API server down or restarting,
    /// a compacted history), each ridden out by listing and watching again after a backoff.
    pub watch_errors: u64,
}

/// The controller's metrics.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    duration: Family<Vec<(String, String)>, Histogram>,
    errors: Counter,
    queue_depth: Gauge,
    applied: Family<Vec<(String, String)>, Counter>,
}

impl ControllerMetrics {
    fn new(endpoint: &Endpoint) -> Self {
        let metrics = Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            errors: Counter::default(),
            queue_depth: Gauge::default(),
            applied: Family::default(),
        };
        let mut registry = endpoint
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let registry = registry.sub_registry_with_prefix("kubezen_reconcile");
        registry.register(
            "duration_seconds",
            "Time one reconcile of an instance took, by action (apply, delete)",
            metrics.duration.clone(),
        );
        registry.register("errors", "Reconciles that failed", metrics.errors.clone());
        registry.register(
            "queue_depth",
            "Instances changed since they were last reconciled",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "applied_objects",
            "Objects written, by outcome (created, configured, pruned, deleted)",
            metrics.applied.clone(),
        );
        metrics
    }
}

/// What each reconcile shares.
struct Context {
    reconciler: Reconciler,
    options: ControllerOptions,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
    /// The generation last reconciled, by uid.
    done: Mutex<HashMap<String, i64>>,
    store: Mutex<Option<Store<DynamicObject>>>,
    /// Failures said lately, so one that repeats is said with a count, not a flood.
    repeats: Repeats,
    /// Events on the instances: applied, failed, deleted.
    events: Events,
}

/// The controller's name in logs and Events.
const CONTROLLER: &str = "reconcile-controller";
/// A failure that repeats is logged at most this often (with the count of the others).
const REPEAT_EVERY: Duration = Duration::from_secs(60);

impl Context {
    fn update_depth(&self) {
        let Some(store) = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let done = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = store
            .state()
            .iter()
            .filter(|o| {
                let uid = o.metadata.uid.as_deref().unwrap_or_default();
                done.get(uid) != o.metadata.generation.as_ref()
            })
            .count();
        self.metrics
            .queue_depth
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}

/// A failed reconcile, retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
struct Failed {
    cause: String,
    /// The API call that failed, when one did.
    failure: Option<Box<ApiFailure>>,
}

impl Failed {
    fn new(cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            failure: None,
        }
    }

    fn api(error: &kube::Error) -> Self {
        let failure = ApiFailure::of(error);
        Self {
            cause: failure.to_string(),
            failure: Some(Box::new(failure)),
        }
    }
}

/// Every API call [`run_controller`] makes for `plan`, as RBAC permissions: a server-side apply
/// of the instance CRD (by name); watches, reads and patches of the instances and their status
/// (the finalizer); of each kind the graph's templates create, lists (pruning), applies,
/// deletes and watches (readiness and deletions waited for); of each kind it only references,
/// reads, and watches where `readyWhen` waits; the `ConfigMap`s that are each instance's apply
/// set; Events on the instances (created, and patched when one repeats); and, with election,
/// the Lease in the controller's own namespace. An apply that creates
/// its object is authorized as a `create` as well as a `patch`, so what it applies has both.
///
/// # Errors
/// [`ReconcileError::Api`] when a template's `apiVersion` or `kind` is an expression, so its
/// resource cannot be known before it renders.
pub fn permissions(
    plan: &Plan,
    options: &ControllerOptions,
) -> Result<Vec<Permission>, ReconcileError> {
    let crd = plan.crd["metadata"]["name"].as_str().unwrap_or_default();
    let (group, plural) = crd.split_once('.').map_or(("", crd), |(p, g)| (g, p));
    let mut permissions = vec![
        Permission::new(
            Scope::Cluster,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &["create", "patch"],
        )
        .named(&[crd]),
        Permission::new(
            Scope::Cluster,
            group,
            plural,
            &["get", "list", "watch", "patch"],
        ),
        Permission::new(
            Scope::Cluster,
            group,
            &format!("{plural}/status"),
            &["patch"],
        ),
        Permission::new(
            Scope::Cluster,
            "",
            "configmaps",
            &["get", "list", "create", "patch", "delete"],
        ),
        Events::permission(),
    ];
    // Per kind: managed objects are listed (pruning), applied and deleted; external ones are
    // read; either is watched while `readyWhen` waits.
    let mut kinds: std::collections::BTreeMap<(String, String), Vec<&str>> =
        std::collections::BTreeMap::new();
    for step in &plan.steps {
        let Some((api_version, kind)) = step
            .type_meta
            .as_ref()
            .filter(|(api_version, kind)| !api_version.contains("${") && !kind.contains("${"))
        else {
            return Err(ReconcileError::Api(format!(
                "resource {}: its apiVersion or kind is an expression, so the permissions it needs cannot be known before it renders",
                step.id
            )));
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let verbs = kinds.entry((resource.group, resource.plural)).or_default();
        if step.external {
            verbs.push("get");
            if !step.ready_when.is_empty() {
                verbs.push("watch");
            }
        } else {
            // Watched while readyWhen waits, and while a deletion waits for the object to go.
            verbs.extend(["list", "watch", "create", "patch", "delete"]);
        }
    }
    for ((group, plural), verbs) in kinds {
        let verbs: Vec<&str> = ["get", "list", "watch", "create", "patch", "delete"]
            .into_iter()
            .filter(|verb| verbs.contains(verb))
            .collect();
        permissions.push(Permission::new(Scope::Cluster, &group, &plural, &verbs));
    }
    if let Some(election) = &options.election {
        permissions.extend(crate::cluster::election::permissions(election));
    }
    Ok(permissions)
}

/// This replica's election: the elector's task, its stop token and whether it leads.
type Election = (
    tokio::task::JoinHandle<()>,
    CancellationToken,
    tokio::sync::watch::Receiver<bool>,
);

/// Stands by (ready) until this replica holds the Lease; `None` when `shutdown` came first.
async fn lead_or_stand_by(
    cluster: &Cluster,
    options: &ElectionOptions,
    endpoint: &Endpoint,
    shutdown: &CancellationToken,
) -> Result<Option<Election>, ReconcileError> {
    let options = options.clone().checked().map_err(ReconcileError::Api)?;
    // A standby is ready: it takes over as soon as the Lease is free.
    endpoint.ready.store(true, Ordering::Relaxed);
    let (leading_tx, mut leading) = tokio::sync::watch::channel(false);
    let stop = CancellationToken::new();
    let task = tokio::spawn(Elector::new(cluster.client(), options).run(leading_tx, stop.clone()));
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    if shutdown.is_cancelled() || !*leading.borrow() {
        stop.cancel();
        let _ = task.await;
        return Ok(None);
    }
    Ok(Some((task, stop, leading)))
}

/// Installs the graph's CRD and reconciles its instances until `shutdown`; with
/// [`ControllerOptions::election`], only while this replica holds the Lease.
///
/// Returns what the run did; a replica that never led did nothing.
///
/// # Errors
/// [`ReconcileError::Api`] when the CRD cannot be installed or served, the metrics address
/// cannot be bound, or the election's timings do not fit; [`ReconcileError::NotLeading`] when
/// another replica took the Lease.
pub async fn run_controller(
    cluster: Cluster,
    plan: Arc<Plan>,
    options: &ControllerOptions,
    shutdown: &CancellationToken,
) -> Result<ControllerSummary, ReconcileError> {
    let endpoint = Arc::new(Endpoint::default());
    let metrics = ControllerMetrics::new(&endpoint);
    // The server stops with the controller, whichever way it returns.
    let serving = shutdown.child_token();
    let _stop_serving = serving.clone().drop_guard();
    let server = match options.metrics_addr {
        Some(address) => Some(
            serve(address, Arc::clone(&endpoint), serving.clone())
                .await
                .map_err(|error| {
                    ReconcileError::Api(format!("cannot serve metrics on {address}: {error}"))
                })?,
        ),
        None => None,
    };
    log_start(&plan, options, server.as_ref().map(|server| server.address));
    let election = if let Some(election) = &options.election {
        let Some(election) = lead_or_stand_by(&cluster, election, &endpoint, shutdown).await?
        else {
            serving.cancel();
            if let Some(server) = server {
                server.stopped().await;
            }
            return Ok(ControllerSummary::default());
        };
        Some(election)
    } else {
        None
    };
    // This term: until `shutdown`, or until the Lease is lost.
    let term = shutdown.child_token();
    let lost = election.as_ref().map(|(_, _, leading)| {
        let (term, mut leading) = (term.clone(), leading.clone());
        tokio::spawn(async move {
            while *leading.borrow_and_update() {
                if leading.changed().await.is_err() {
                    break;
                }
            }
            term.cancel();
            true
        })
    });
    let shutdown = &term;
    install_crd(&cluster, &plan, shutdown).await?;
    let reconciler = Reconciler::new(cluster.clone(), Arc::clone(&plan)).for_controller();
    let kind = reconciler
        .kind(&plan.api_version, &plan.kind)
        .await
        .map_err(ReconcileError::Api)?;
    let api: Api<DynamicObject> = match &options.namespace {
        Some(namespace) if kind.namespaced => {
            Api::namespaced_with(cluster.client(), namespace, &kind.resource)
        }
        _ => Api::all_with(cluster.client(), &kind.resource),
    };
    let context = Arc::new(Context {
        reconciler,
        options: options.clone(),
        metrics,
        shutdown: shutdown.clone(),
        done: Mutex::new(HashMap::new()),
        store: Mutex::new(None),
        repeats: Repeats::new(REPEAT_EVERY),
        events: Events::new(&cluster, CONTROLLER),
    });
    let stop = shutdown.clone();
    let controller = Controller::new_with(api, watcher::Config::default(), kind.resource.clone())
        .with_config(
            controller::Config::default()
                .concurrency(u16::try_from(options.workers.max(1)).unwrap_or(u16::MAX)),
        )
        .graceful_shutdown_on(async move { stop.cancelled().await });
    *context
        .store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(controller.store());
    endpoint.ready.store(true, Ordering::Relaxed);
    let summary = summarize(controller.run(reconcile, error_policy, Arc::clone(&context))).await;
    let lost = match lost {
        Some(watch) if !watch.is_finished() => {
            watch.abort();
            false
        }
        Some(watch) => watch.await.unwrap_or(false),
        None => false,
    };
    // The Lease released once the last reconcile has finished, so no standby writes beside it.
    if let Some((task, stop, _)) = election {
        stop.cancel();
        let _ = task.await;
    }
    // Its address free again before this returns: a controller started anew can bind it.
    serving.cancel();
    if let Some(server) = server {
        server.stopped().await;
    }
    log_stopped(&summary, lost);
    if lost {
        return Err(ReconcileError::NotLeading);
    }
    Ok(summary)
}

/// The closing line: what the run did.
fn log_stopped(summary: &ControllerSummary, lost: bool) {
    tracing::info!(
        controller = CONTROLLER,
        reconciles = summary.reconciles,
        errors = summary.errors,
        watch_errors = summary.watch_errors,
        lost_lease = lost,
        "reconcile controller stopped: {} reconciles, {} errors; rode out {} watch errors",
        summary.reconciles,
        summary.errors,
        summary.watch_errors
    );
}

/// The start-up line: every setting that shapes the run (nothing secret is among them).
fn log_start(plan: &Plan, options: &ControllerOptions, metrics: Option<SocketAddr>) {
    let settings = crate::cluster::run_settings(
        options.namespace.as_deref(),
        options.election.as_ref(),
        metrics,
    );
    tracing::info!(
        controller = CONTROLLER,
        graph = plan.graph(),
        kind = plan.kind(),
        api_version = plan.api_version.as_str(),
        namespace = options.namespace.as_deref().unwrap_or_default(),
        workers = options.workers,
        resync_seconds = options.resync.as_secs(),
        election = options.election.is_some(),
        metrics = metrics.map(|a| a.to_string()).unwrap_or_default(),
        "reconcile controller started: {} instances of {} in {settings}; {} workers, resync every {}s",
        plan.kind(),
        plan.graph(),
        options.workers,
        options.resync.as_secs()
    );
}

/// Drives the controller's runs to their end, counting what they did.
async fn summarize<T, E>(
    runs: impl futures::Stream<Item = Result<T, controller::Error<E, watcher::Error>>>,
) -> ControllerSummary
where
    E: std::error::Error + 'static,
{
    let mut summary = ControllerSummary::default();
    let mut runs = std::pin::pin!(runs);
    let repeats = Repeats::new(REPEAT_EVERY);
    while let Some(result) = runs.next().await {
        match result {
            Ok(_) => summary.reconciles += 1,
            Err(controller::Error::QueueError(error)) => {
                summary.watch_errors += 1;
                let cause = error.to_string();
                if let Say::Now { repeats } = repeats.note("watch", &cause) {
                    tracing::warn!(
                        controller = CONTROLLER,
                        repeats,
                        "the watch of the instances failed: {cause}; watching again after a backoff"
                    );
                }
            }
            // Logged where the reconcile ended.
            Err(_) => summary.errors += 1,
        }
    }
    summary
}

/// Applies the instance CRD and waits until the API serves it.
async fn install_crd(
    cluster: &Cluster,
    plan: &Plan,
    shutdown: &CancellationToken,
) -> Result<(), ReconcileError> {
    let crds: Api<DynamicObject> = Api::all_with(
        cluster.client(),
        &kube::api::ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
    );
    let name = plan.crd["metadata"]["name"].as_str().unwrap_or_default();
    crds.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&plan.crd),
    )
    .await
    .map_err(|error| {
        ReconcileError::Api(format!(
            "cannot install the CRD {name}: {}",
            api_message(&error)
        ))
    })?;
    let (group, version) = plan
        .api_version
        .split_once('/')
        .unwrap_or(("", &plan.api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &plan.kind);
    let started = Instant::now();
    loop {
        if kube::discovery::pinned_kind(&cluster.client(), &gvk)
            .await
            .is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) || shutdown.is_cancelled() {
            return Err(ReconcileError::Api(format!(
                "the CRD {name} is not served after 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reconcile(object: Arc<DynamicObject>, context: Arc<Context>) -> Result<Action, Failed> {
    context.update_depth();
    let started = Instant::now();
    let deleting = object.metadata.deletion_timestamp.is_some();
    let result = if deleting {
        finalize(&object, &context).await
    } else {
        apply(&object, &context).await
    };
    let action = if deleting { "delete" } else { "apply" };
    context
        .metrics
        .duration
        .get_or_create(&vec![("action".into(), action.into())])
        .observe(started.elapsed().as_secs_f64());
    if let Some(uid) = &object.metadata.uid
        && result.is_ok()
    {
        context
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.clone(), object.metadata.generation.unwrap_or_default());
    }
    if result.is_err() {
        context.metrics.errors.inc();
    }
    log_outcome(&object, &result, &context);
    context.update_depth();
    result
}

/// How long after a failed reconcile the instance is reconciled again.
fn retry_after(context: &Context) -> Duration {
    context.options.resync.min(Duration::from_secs(15))
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller calls
fn error_policy(_: Arc<DynamicObject>, _: &Failed, context: Arc<Context>) -> Action {
    Action::requeue(retry_after(&context))
}

/// Logs how a reconcile of `object` ended: a failure (at most once a minute while it repeats),
/// or the first success after failures.
fn log_outcome(object: &DynamicObject, result: &Result<Action, Failed>, context: &Context) {
    let kind = &context.reconciler.plan().kind;
    let namespace = object.metadata.namespace.as_deref();
    let name = object.name_any();
    match result {
        Ok(_) => {
            let shown = namespace.map_or_else(|| name.clone(), |ns| format!("{ns}/{name}"));
            log_recovered(CONTROLLER, kind, &shown, &context.repeats);
        }
        Err(failed) => {
            let retry_in = retry_after(context);
            let said = FailedReconcile {
                controller: CONTROLLER,
                kind,
                namespace,
                name: &name,
                cause: &failed.cause,
                failure: failed.failure.as_deref(),
                retry_in,
            };
            if said.log(&context.repeats) {
                let reason = if said.denied() {
                    "PermissionDenied"
                } else {
                    "ReconcileFailed"
                };
                let note = format!("{}; retrying in {}s", failed.cause, retry_in.as_secs());
                record(context, object, Severity::Warning, reason, &note);
            }
        }
    }
}

/// Records an Event on the instance `object` (queued: recording never holds up a reconcile).
fn record(
    context: &Context,
    object: &DynamicObject,
    severity: Severity,
    reason: &'static str,
    note: &str,
) {
    let plan = context.reconciler.plan();
    let regarding = ObjectReference {
        api_version: Some(plan.api_version.clone()),
        kind: Some(plan.kind.clone()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        field_path: None,
    };
    context
        .events
        .record(regarding, severity, reason, "Reconcile", note);
}

/// What a run wrote, for an Event: `created 2, configured 1 (deployment, service, ingress)`.
fn written(report: &super::Report) -> Option<String> {
    let writes: Vec<_> = report
        .objects
        .iter()
        .filter(|o| o.outcome.is_write())
        .collect();
    if writes.is_empty() {
        return None;
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for object in &writes {
        let outcome = object.outcome.as_str();
        match counts.iter_mut().find(|(name, _)| *name == outcome) {
            Some((_, count)) => *count += 1,
            None => counts.push((outcome, 1)),
        }
    }
    let counted: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let ids: Vec<&str> = writes.iter().map(|o| o.id.as_str()).collect();
    Some(format!("{} ({})", counted.join(", "), ids.join(", ")))
}

fn api_for(object: &DynamicObject, context: &Context) -> Result<Api<DynamicObject>, Failed> {
    let kind = context
        .reconciler
        .cached_kind(
            &context.reconciler.plan().api_version,
            &context.reconciler.plan().kind,
        )
        .ok_or_else(|| Failed::new("the instance kind is not known"))?;
    Ok(match &object.metadata.namespace {
        Some(namespace) => Api::namespaced_with(
            context.reconciler.cluster().client(),
            namespace,
            &kind.resource,
        ),
        None => Api::all_with(context.reconciler.cluster().client(), &kind.resource),
    })
}

fn count(context: &Context, report: &super::Report) {
    for object in report.objects.iter().filter(|o| o.outcome.is_write()) {
        context
            .metrics
            .applied
            .get_or_create(&vec![("outcome".into(), object.outcome.as_str().into())])
            .inc();
    }
}

async fn apply(object: &DynamicObject, context: &Context) -> Result<Action, Failed> {
    let api = api_for(object, context)?;
    let name = object.metadata.name.clone().unwrap_or_default();
    let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut all = finalizers;
        all.push(FINALIZER.to_owned());
        let patch = json!({"metadata": {"finalizers": all, "resourceVersion": object.metadata.resource_version}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|error| Failed::api(&error))?;
        // The change triggers the next reconcile.
        return Ok(Action::await_change());
    }
    let json = serde_json::to_value(object).unwrap_or(Json::Null);
    let instance = match context.reconciler.admit(json) {
        Ok(instance) => instance,
        Err(error) => {
            // Said once per spec: the next change of the spec is what can fix it.
            context.metrics.errors.inc();
            let message = error.to_string();
            let said = object.data["status"]["conditions"][0].clone();
            if said["reason"] == "InvalidSpec"
                && said["message"] == message.as_str()
                && said["observedGeneration"] == json!(object.metadata.generation)
            {
                return Ok(Action::await_change());
            }
            let status = json!({
                "apiVersion": context.reconciler.plan().api_version, "kind": context.reconciler.plan().kind,
                "metadata": {"name": name},
                "status": {"state": "FAILED", "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                    "message": message, "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "observedGeneration": object.metadata.generation}]},
            });
            record(context, object, Severity::Warning, "InvalidSpec", &message);
            api.patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await
            .map_err(|error| Failed::api(&error))?;
            return Ok(Action::await_change());
        }
    };
    let report = context
        .reconciler
        .apply(&instance, &context.options.run, &(), &context.shutdown)
        .await
        .map_err(|error| Failed::new(error.to_string()))?;
    count(context, &report);
    if report.ok() {
        if let Some(written) = written(&report) {
            record(context, object, Severity::Normal, "Applied", &written);
        }
        // A resync too large for the clock's arithmetic is a year.
        Ok(Action::requeue(
            context
                .options
                .resync
                .min(Duration::from_secs(365 * 86_400)),
        ))
    } else {
        let first = report
            .objects
            .iter()
            .find(|o| o.outcome == super::Outcome::Failed)
            .or_else(|| report.objects.iter().find(|o| o.outcome.is_failure()));
        let blocked: Vec<&str> = report
            .objects
            .iter()
            .filter(|o| o.outcome == super::Outcome::Blocked)
            .map(|o| o.id.as_str())
            .collect();
        let behind = if blocked.is_empty() {
            String::new()
        } else {
            format!("; blocked behind it: {}", blocked.join(", "))
        };
        Err(Failed::new(first.map_or_else(
            || "interrupted".to_owned(),
            |o| {
                format!(
                    "{}: {}{behind}",
                    o.id,
                    o.message.clone().unwrap_or_default()
                )
            },
        )))
    }
}

async fn finalize(object: &DynamicObject, context: &Context) -> Result<Action, Failed> {
    if !held(object) {
        return Ok(Action::await_change());
    }
    let api = api_for(object, context)?;
    let report = context
        .reconciler
        .delete(
            &instance_of(&context.reconciler, object),
            &context.options.run,
            &(),
            &context.shutdown,
        )
        .await
        .map_err(|error| Failed::new(error.to_string()))?;
    count(context, &report);
    if !report.ok() {
        return Err(Failed::new(
            "the instance's objects are not all deleted yet",
        ));
    }
    remove_finalizer(&api, object, false)
        .await
        .map_err(|error| Failed::api(&error))?;
    let deleted = written(&report).unwrap_or_else(|| "nothing was left to delete".to_owned());
    record(context, object, Severity::Normal, "Deleted", &deleted);
    Ok(Action::await_change())
}

/// Whether the controller's finalizer holds `object`.
fn held(object: &DynamicObject) -> bool {
    object
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|finalizers| finalizers.iter().any(|f| f == FINALIZER))
}

/// `object` as an instance to delete: a spec that no longer validates must not keep it from
/// going, so it is deleted as one with an empty spec.
fn instance_of(reconciler: &Reconciler, object: &DynamicObject) -> super::Instance {
    let mut json = serde_json::to_value(object).unwrap_or(Json::Null);
    if let Ok(instance) = reconciler.admit(json.clone()) {
        return instance;
    }
    if let Some(map) = json.as_object_mut() {
        map.insert("spec".into(), json!({}));
    }
    super::Instance {
        name: object.metadata.name.clone().unwrap_or_default(),
        namespace: object.metadata.namespace.clone(),
        home: object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| reconciler.cluster().namespace().to_owned()),
        object: json,
    }
}

/// Removes the controller's finalizer from `object`, keeping any other: the patch carries the
/// resourceVersion read, and on a conflict (someone wrote meanwhile) the object is read again
/// and the removal retried. Gone already is done.
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    let name = object.name_any();
    let mut current = object.clone();
    let mut attempts = 0;
    loop {
        if !held(&current) {
            return Ok(());
        }
        let rest: Vec<&String> = current
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": current.metadata.resource_version}});
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(error) if crate::cluster::is_not_found(&error) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 5 => {
                attempts += 1;
                match api.get_opt(&name).await? {
                    Some(live) => current = live,
                    None => return Ok(()),
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// The instances of `plan`'s kind that the controller's finalizer holds, in every namespace:
/// once the controller is gone, nothing releases them, and a Namespace holding one can never
/// finish deleting. None where the kind is not served.
///
/// # Errors
/// [`ReconcileError::Api`] when discovery or the list fails.
pub async fn held_instances(
    cluster: &Cluster,
    plan: &Plan,
) -> Result<Vec<DynamicObject>, ReconcileError> {
    let Some(resource) = instances_resource(cluster, plan).await? else {
        return Ok(Vec::new());
    };
    let list = Api::<DynamicObject>::all_with(cluster.client(), &resource)
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|error| {
            ReconcileError::Api(format!(
                "cannot list the {} instances: {}",
                plan.kind,
                api_message(&error)
            ))
        })?;
    Ok(list.items.into_iter().filter(held).collect())
}

/// Releases an instance the controller's finalizer holds, as the controller would were it
/// running: with `delete`, the instance's objects are deleted in reverse dependency order and
/// the instance with them; either way the finalizer is then removed, so the instance (deleted
/// or orphaned, its objects kept) no longer waits for a controller. With `dry_run` nothing is
/// deleted and the server only checks the finalizer's removal.
///
/// # Errors
/// [`ReconcileError::Api`] when the instance kind is not served, the objects are not all
/// deleted, or the finalizer's removal is refused.
pub async fn release_instance(
    reconciler: &Reconciler,
    object: &DynamicObject,
    delete: bool,
    dry_run: bool,
    cancel: &CancellationToken,
) -> Result<(), ReconcileError> {
    // The reconciler's discovery, cached: releasing many instances asks the server once.
    let plan = reconciler.plan();
    let kind = reconciler
        .kind(&plan.api_version, &plan.kind)
        .await
        .map_err(ReconcileError::Api)?;
    let client = reconciler.cluster().client();
    let api = match &object.metadata.namespace {
        Some(namespace) => Api::namespaced_with(client, namespace, &kind.resource),
        None => Api::all_with(client, &kind.resource),
    };
    let name = object.name_any();
    if delete && !dry_run {
        let instance = instance_of(reconciler, object);
        let report = reconciler
            .delete(&instance, &Options::default(), &(), cancel)
            .await?;
        if !report.ok() {
            return Err(ReconcileError::Api(format!(
                "the objects of {} {name} are not all deleted, so it keeps its finalizer",
                reconciler.plan().kind
            )));
        }
    }
    remove_finalizer(&api, object, dry_run)
        .await
        .map_err(|error| {
            ReconcileError::Api(format!(
                "cannot remove the finalizer {FINALIZER} from {} {name}: {}",
                reconciler.plan().kind,
                api_message(&error)
            ))
        })
}

/// The instances' resource as the server serves it, or `None` where the kind is not served.
async fn instances_resource(
    cluster: &Cluster,
    plan: &Plan,
) -> Result<Option<kube::api::ApiResource>, ReconcileError> {
    let (group, version) = plan
        .api_version
        .split_once('/')
        .unwrap_or(("", plan.api_version.as_str()));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &plan.kind);
    match kube::discovery::pinned_kind(&cluster.client(), &gvk).await {
        Ok((resource, _)) => Ok(Some(resource)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(error) => Err(ReconcileError::Api(format!(
            "cannot find the {} API: {}",
            plan.kind,
            api_message(&error)
        ))),
    }
}
