//! The supervisor: one task per entry, a listener on its local port, a ready pod behind it,
//! the `kube` client's port-forward for every connection, and reconnects with backoff.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Portforwarder};
use kube::core::{Selector, SelectorExt as _};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::alloc::{
    CachedPorts, Claimed, PortCheck, SystemPorts, allocate_with, fallback_ports, first_free,
};
use super::config::{Config, Entry, PortRef, TargetKind};
use crate::cluster::{Cluster, api_message, is_not_found};
use crate::lead::select::{choose, fitness, named_port, selects};

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Opening its local port and finding a pod the first time.
    Starting,
    /// Listening, with a pod behind it; the last connection (if any) went through.
    Running,
    /// Listening with a pod behind it, but the last connection failed (the pod refused it, or
    /// the stream broke); the next that succeeds makes it Running again.
    Degraded,
    /// Could not go on without a change: no such port on the target, a Service without a
    /// selector, a request the cluster forbids. Tried again at the longest backoff.
    Failed,
    /// Disabled in the configuration, or no local port was left for it.
    Suspended,
    /// Its pod went away (deleted, not ready) or none is ready yet: waiting out a backoff
    /// before choosing again. Connections made meanwhile wait in the listen queue.
    Reconnecting,
}

impl State {
    /// Its name, as the table and JSON write it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Degraded => "Degraded",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
            Self::Reconnecting => "Reconnecting",
        }
    }
}

/// One entry's state, as the status table shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The entry.
    pub name: String,
    /// `svc/NAME`, `pod/NAME` or `deploy/NAME`.
    pub target: String,
    /// The target's namespace.
    pub namespace: String,
    /// The port it listens on, on 127.0.0.1.
    pub local_port: Option<u16>,
    /// Where it is.
    pub state: State,
    /// When it got there.
    #[serde(serialize_with = "timestamp")]
    pub since: Timestamp,
    /// Times it lost its pod or connection and chose again.
    pub restarts: u32,
    /// The pod behind it, while there is one.
    pub pod: Option<String>,
    /// The pod's port.
    pub pod_port: Option<u16>,
    /// Connections forwarded.
    pub connections: u64,
    /// Bytes forwarded, both ways.
    pub bytes: u64,
    /// Why it is where it is, when that is not plain.
    pub message: Option<String>,
}

impl Status {
    fn initial(entry: &Entry, namespace: String, local_port: Option<u16>, now: Timestamp) -> Self {
        Self {
            name: entry.name.clone(),
            target: entry.target.to_string(),
            namespace,
            local_port: if entry.disabled { None } else { local_port },
            state: if entry.disabled {
                State::Suspended
            } else {
                State::Starting
            },
            since: now,
            restarts: 0,
            pod: None,
            pod_port: None,
            connections: 0,
            bytes: 0,
            message: entry
                .disabled
                .then(|| "disabled in the configuration".to_owned()),
        }
    }

    /// Seconds since it got to its state.
    #[must_use]
    pub fn seconds_in_state(&self) -> i64 {
        Timestamp::now().as_second() - self.since.as_second()
    }
}

fn timestamp<S: serde::Serializer>(value: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// How the supervisor runs. Local ports listen on 127.0.0.1, where the allocator checks them.
#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    /// How long in-flight connections may finish after a shutdown is asked for.
    pub grace: Duration,
    /// How long an entry must stay Running for its backoff to start again from the first wait.
    pub stable_after: Duration,
    /// After a local client closes its sending side, how long the pod may still answer: a
    /// `v4.channel.k8s.io` stream cannot be half-closed, so it is kept open this long at most.
    pub linger: Duration,
}

impl Default for SuperviseOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(2),
            stable_after: Duration::from_secs(10),
            linger: Duration::from_secs(2),
        }
    }
}

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No entry is enabled.
    #[error(
        "no enabled entries: add one under portForwards (kubectl zen forward config show prints the merged configuration)"
    )]
    NothingToForward,
    /// The client for port-forward streams could not be built.
    #[error(transparent)]
    Client(#[from] crate::cluster::ClusterError),
}

struct Shared {
    statuses: Mutex<Vec<Status>>,
    changes: watch::Sender<u64>,
}

impl Shared {
    fn update(&self, index: usize, change: impl FnOnce(&mut Status)) {
        let mut statuses = self
            .statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let status = &mut statuses[index];
        let before = (status.state, status.message.clone(), status.pod.clone());
        change(status);
        if (status.state, status.message.clone(), status.pod.clone()) != before {
            status.since = Timestamp::now();
            log_change(status);
        }
        drop(statuses);
        self.changes.send_modify(|version| *version += 1);
    }

    fn set(&self, index: usize, state: State, message: Option<String>) {
        self.update(index, |status| {
            status.state = state;
            status.message = message;
        });
    }
}

/// Logs an entry's new state: once per change, so a state held (or a failure retried) is not
/// said again. Trouble at warn; the rest at debug, since the status table says it already.
fn log_change(status: &Status) {
    let state = status.state.as_str();
    let pod = status.pod.as_deref().unwrap_or_default();
    let why = status
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let port = status
        .local_port
        .map(|p| format!(" on 127.0.0.1:{p}"))
        .unwrap_or_default();
    let (name, namespace, target) = (
        status.name.as_str(),
        status.namespace.as_str(),
        status.target.as_str(),
    );
    match status.state {
        State::Failed | State::Reconnecting => tracing::warn!(
            name,
            namespace,
            target,
            state,
            pod,
            restarts = status.restarts,
            "forward {name} ({namespace}/{target}) is {state}{why}"
        ),
        _ => tracing::debug!(
            name,
            namespace,
            target,
            state,
            pod,
            restarts = status.restarts,
            "forward {name} ({namespace}/{target}) is {state}{port}{}{why}",
            if pod.is_empty() {
                String::new()
            } else {
                format!(" to pod {pod}")
            }
        ),
    }
}

/// Pods of one namespace, kept by a watch.
#[derive(Clone)]
struct Pods {
    store: Store<Pod>,
    changes: watch::Receiver<u64>,
    /// True once the first list is in the store. (The store's own `wait_until_ready` wakes
    /// only one of many waiters.)
    ready: watch::Receiver<bool>,
    /// The watch's last error while it has not recovered, and whether it was a refusal
    /// (401/403).
    errors: watch::Receiver<Option<(String, bool)>>,
}

impl Pods {
    /// Starts watching the pods of `namespace` (on `watches`, until `cancel`).
    fn watch(
        cluster: &Cluster,
        namespace: &str,
        cancel: &CancellationToken,
        watches: &mut JoinSet<()>,
        watch_errors: &Arc<AtomicU64>,
    ) -> Self {
        let watch_errors = Arc::clone(watch_errors);
        let (store, writer) = reflector::store();
        let (tx, changes) = watch::channel(0u64);
        let (ready_tx, ready) = watch::channel(false);
        let (errors_tx, errors) = watch::channel(None);
        let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
        let cancel = cancel.clone();
        let listing = format!("watching the pods of namespace {namespace}");
        watches.spawn(async move {
            let events = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer);
            let mut events = std::pin::pin!(events);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    event = events.next() => match event {
                        Some(Ok(event)) => {
                            if matches!(event, watcher::Event::InitDone) {
                                let _ = ready_tx.send(true);
                            }
                            errors_tx.send_if_modified(|last| last.take().is_some());
                            tx.send_modify(|version| *version += 1);
                        }
                        // The watcher retries with backoff and the store keeps what it knew;
                        // entries still waiting for the first list say why.
                        Some(Err(error)) => {
                            watch_errors.fetch_add(1, Ordering::Relaxed);
                            let refused = watch_refused(&error);
                            let _ = errors_tx.send(Some((format!("{listing}: {error}"), refused)));
                        }
                        None => break,
                    },
                }
            }
        });
        Self {
            store,
            changes,
            ready,
            errors,
        }
    }

    /// The pods `matches` selects.
    fn selected(&self, matches: impl Fn(&BTreeMap<String, String>) -> bool) -> Vec<Pod> {
        let none = BTreeMap::new();
        self.store
            .state()
            .iter()
            .filter(|pod| matches(pod.metadata.labels.as_ref().unwrap_or(&none)))
            .map(|pod| (**pod).clone())
            .collect()
    }
}

/// Whether a watch error is the cluster refusing the request.
fn watch_refused(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(error)
        | watcher::Error::WatchStartFailed(error)
        | watcher::Error::WatchFailed(error) => refused(error),
        watcher::Error::WatchError(status) => matches!(status.code, 401 | 403),
        watcher::Error::NoResourceVersion => false,
    }
}

/// Whether the cluster refused a request (401, 403): only a change of rights helps.
fn refused(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403 || status.code == 401)
}

fn no_free_port(requested: Option<u16>, (low, high): (u16, u16)) -> String {
    match requested {
        Some(port) => format!(
            "no free local port: {port}, every port above it and localPorts {low}-{high} are taken"
        ),
        None => format!("no free local port: every port of localPorts {low}-{high} is taken"),
    }
}

/// Port-forwards for a configuration's enabled entries, supervised until shut down.
pub struct Supervisor {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    entries: JoinSet<()>,
    watches: JoinSet<()>,
    watch_errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Allocates local ports (see [`allocate_with`]), starts watching the
    /// pods of the entries' namespaces and one task per entry (which opens its port). Returns at
    /// once: follow [`Supervisor::statuses`] and [`Supervisor::subscribe`]. Call it on a tokio
    /// runtime.
    ///
    /// # Errors
    /// No entry is enabled, or the client for the streams cannot be built.
    pub fn start(
        cluster: &Cluster,
        config: &Config,
        options: &SuperviseOptions,
    ) -> Result<Self, ForwardError> {
        if config.entries.iter().all(|entry| entry.disabled) {
            return Err(ForwardError::NothingToForward);
        }
        let mut check = CachedPorts::new(SystemPorts, config.settings.port_check_ttl);
        let mut claimed = Claimed::default();
        let allocation = allocate_with(config, &mut check, &mut claimed);
        let namespace_of = |entry: &Entry| {
            entry
                .namespace
                .clone()
                .unwrap_or_else(|| cluster.namespace().to_owned())
        };
        let now = Timestamp::now();
        let statuses: Vec<Status> = config
            .entries
            .iter()
            .map(|entry| {
                Status::initial(
                    entry,
                    namespace_of(entry),
                    allocation.port(&entry.name),
                    now,
                )
            })
            .collect();
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            statuses: Mutex::new(statuses),
            changes,
        });
        let cancel = CancellationToken::new();
        let mut watches = JoinSet::new();
        let mut pods: HashMap<String, Pods> = HashMap::new();
        let watch_errors = Arc::new(AtomicU64::new(0));
        for entry in config.entries.iter().filter(|entry| !entry.disabled) {
            let namespace = namespace_of(entry);
            if pods.contains_key(&namespace) {
                continue;
            }
            let namespace_pods =
                Pods::watch(cluster, &namespace, &cancel, &mut watches, &watch_errors);
            pods.insert(namespace, namespace_pods);
        }
        let ports = Arc::new(Mutex::new((check, claimed, config.settings.local_ports)));
        // One stream per local connection: the user's traffic, not the tool's own reads, so
        // not held by the client-side rate limit.
        let streams = cluster.unlimited()?.client();
        let mut entries = JoinSet::new();
        for (index, entry) in config.entries.iter().enumerate() {
            if entry.disabled {
                continue;
            }
            let Some(port) = allocation.port(&entry.name) else {
                shared.set(
                    index,
                    State::Suspended,
                    Some(no_free_port(entry.local_port, config.settings.local_ports)),
                );
                continue;
            };
            let namespace = namespace_of(entry);
            let task = EntryTask {
                index,
                entry: entry.clone(),
                namespace: namespace.clone(),
                cluster: cluster.clone(),
                streams: streams.clone(),
                pods: pods[&namespace].clone(),
                shared: Arc::clone(&shared),
                cancel: cancel.clone(),
                backoff: (config.settings.backoff_initial, config.settings.backoff_max),
                options: options.clone(),
                ports: Arc::clone(&ports),
            };
            entries.spawn(task.run(port));
        }
        Ok(Self {
            shared,
            cancel,
            entries,
            watches,
            watch_errors,
        })
    }

    /// Errors of the pod watches so far (a dropped connection, an API server down or
    /// restarting), each ridden out by watching again after a backoff while the forwards kept
    /// the pods they knew.
    #[must_use]
    pub fn watch_errors(&self) -> u64 {
        self.watch_errors.load(Ordering::Relaxed)
    }

    /// Every entry's status, in the configuration's order (by name).
    #[must_use]
    pub fn statuses(&self) -> Vec<Status> {
        self.shared
            .statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A receiver that changes whenever a status does.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Waits until no entry is Starting, Reconnecting or Failed (each Running, Degraded, or
    /// Suspended with nothing to wait for), or `timeout` passes; true when none is.
    pub async fn wait_running(&self, timeout: Duration) -> bool {
        let mut changes = self.subscribe();
        let all_running = |statuses: Vec<Status>| {
            statuses
                .iter()
                .all(|s| matches!(s.state, State::Running | State::Degraded | State::Suspended))
        };
        tokio::time::timeout(timeout, async {
            loop {
                if all_running(self.statuses()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && all_running(self.statuses())
    }

    /// Stops: local ports closed at once, connections in flight given the grace period to
    /// finish, then ended. Returns the last statuses.
    pub async fn shutdown(mut self) -> Vec<Status> {
        self.cancel.cancel();
        while self.entries.join_next().await.is_some() {}
        self.watches.shutdown().await;
        self.statuses()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The pod and port a forward goes to.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    pod: String,
    uid: Option<String>,
    port: u16,
    /// For Services and Deployments: leave the pod once it is not Ready.
    needs_ready: bool,
}

/// Why no endpoint.
#[derive(Debug)]
enum Problem {
    /// May pass: not found yet, no ready pod, a transient API error.
    Wait(String),
    /// Needs a change to the target or the configuration.
    Fatal(String),
}

/// How a forwarded connection ended.
enum Ended {
    /// Done (the pod's side ended, the local client went, or it lingered out): bytes both ways.
    Ok(u64),
    /// The pod is gone: choose again.
    PodGone(String),
    /// The cluster refused the stream (401, 403).
    Refused(String),
    /// The pod's side failed this connection (nothing listens on its port, say): why, and the
    /// bytes moved before.
    Failed(String, u64),
}

/// How serving a pod ended.
enum Served {
    /// The pod went (Reconnecting) or streams are refused (Failed): why.
    Lost(State, String),
    /// A shutdown was asked for: the connections still in flight.
    Stopped(JoinSet<Ended>),
}

type Ports = Arc<Mutex<(CachedPorts<SystemPorts>, Claimed, (u16, u16))>>;

struct EntryTask {
    index: usize,
    entry: Entry,
    namespace: String,
    cluster: Cluster,
    /// The client port-forward streams are opened with.
    streams: kube::Client,
    pods: Pods,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    backoff: (Duration, Duration),
    options: SuperviseOptions,
    ports: Ports,
}

impl EntryTask {
    async fn run(self, port: u16) {
        let Some(listener) = self.listen(port).await else {
            return;
        };
        if !self.wait_for_pods().await {
            return;
        }
        // Consecutive failures to serve: the backoff doubles with each.
        let mut failures: u32 = 0;
        loop {
            let resolved = tokio::select! {
                () = self.cancel.cancelled() => return,
                resolved = self.resolve() => resolved,
            };
            let (state, message) = match resolved {
                Ok(endpoint) => {
                    let started = Instant::now();
                    self.shared.update(self.index, |status| {
                        status.state = State::Running;
                        status.message = None;
                        status.pod = Some(endpoint.pod.clone());
                        status.pod_port = Some(endpoint.port);
                    });
                    let (state, why) = match self.serve(&listener, &endpoint).await {
                        Served::Lost(state, why) => (state, why),
                        Served::Stopped(connections) => {
                            drop(listener);
                            self.finish(connections).await;
                            return;
                        }
                    };
                    if started.elapsed() >= self.options.stable_after {
                        failures = 0;
                    }
                    self.shared.update(self.index, |status| {
                        status.restarts += 1;
                        status.pod = None;
                        status.pod_port = None;
                    });
                    (state, why)
                }
                Err(Problem::Wait(why)) => (State::Reconnecting, why),
                Err(Problem::Fatal(why)) => (State::Failed, why),
            };
            // Only a change can help a Failed entry: tried again at the longest wait, and a
            // success after it starts the backoff afresh.
            let wait = if state == State::Failed {
                failures = 0;
                self.backoff.1
            } else {
                let wait = backoff(self.backoff, failures);
                failures = failures.saturating_add(1);
                wait
            };
            self.shared.set(self.index, state, Some(message));
            if !self.pause(&listener, state, wait).await {
                return;
            }
        }
    }

    /// Waits `wait` (false when a shutdown came first). Connections made to a Reconnecting
    /// entry wait in the listen queue for its next pod; a Failed entry closes them at once.
    async fn pause(&self, listener: &TcpListener, state: State, wait: Duration) -> bool {
        let until = tokio::time::sleep(wait);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                () = &mut until => return true,
                accepted = listener.accept(), if state == State::Failed => {
                    if accepted.is_err() {
                        // Out of file descriptors, say: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    /// Waits for the first list of the namespace's pods (false when a shutdown came first),
    /// saying meanwhile why the list fails, if it does.
    async fn wait_for_pods(&self) -> bool {
        let (mut ready, mut errors) = (self.pods.ready.clone(), self.pods.errors.clone());
        loop {
            if *ready.borrow_and_update() {
                return true;
            }
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                changed = ready.changed() => if changed.is_err() { return false },
                changed = errors.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    let error = errors.borrow_and_update().clone();
                    if let Some((message, refused)) = error {
                        let state = if refused { State::Failed } else { State::Reconnecting };
                        self.shared.set(self.index, state, Some(message));
                    }
                }
            }
        }
    }

    /// Gives the connections in flight at a shutdown the grace period, counting those that end.
    async fn finish(&self, mut connections: JoinSet<Ended>) {
        let _ = tokio::time::timeout(self.options.grace, async {
            while let Some(ended) = connections.join_next().await {
                if let Ok(ended) = ended {
                    self.account(ended);
                }
            }
        })
        .await;
        connections.shutdown().await;
    }

    /// Counts a finished connection; the state the entry must leave Running for, if any.
    fn account(&self, ended: Ended) -> Option<(State, String)> {
        match ended {
            Ended::Ok(bytes) => self.shared.update(self.index, |status| {
                status.connections += 1;
                status.bytes += bytes;
                if status.state == State::Degraded {
                    status.state = State::Running;
                    status.message = None;
                }
            }),
            Ended::Failed(why, bytes) => self.shared.update(self.index, |status| {
                status.connections += 1;
                status.bytes += bytes;
                status.state = State::Degraded;
                status.message = Some(why);
            }),
            Ended::PodGone(why) => return Some((State::Reconnecting, why)),
            Ended::Refused(why) => return Some((State::Failed, why)),
        }
        None
    }

    /// Binds the allocated port; one taken since it was checked is given up for the next free.
    async fn listen(&self, mut port: u16) -> Option<TcpListener> {
        loop {
            let error = match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
            {
                Ok(listener) => {
                    self.shared
                        .update(self.index, |status| status.local_port = Some(port));
                    return Some(listener);
                }
                Err(error) => error,
            };
            let next = (error.kind() == std::io::ErrorKind::AddrInUse)
                .then(|| {
                    let mut guard = self
                        .ports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (check, claimed, range) = &mut *guard;
                    check.forget(port);
                    let range = *range;
                    first_free(fallback_ports(Some(port), range), claimed, check)
                })
                .flatten();
            let Some(next) = next else {
                self.shared.set(
                    self.index,
                    State::Suspended,
                    Some(if error.kind() == std::io::ErrorKind::AddrInUse {
                        format!(
                            "cannot listen on 127.0.0.1:{port} ({error}) and no other port is free"
                        )
                    } else {
                        format!("cannot listen on 127.0.0.1:{port}: {error}")
                    }),
                );
                return None;
            };
            port = next;
        }
    }

    fn described(&self) -> String {
        format!("{} in namespace {}", self.entry.target, self.namespace)
    }

    /// A read of the target failed: not found (yet) and transient errors pass; refusals do not.
    fn api_problem(&self, error: &kube::Error) -> Problem {
        let target = self.described();
        if is_not_found(error) {
            Problem::Wait(format!("{target} not found"))
        } else if refused(error) {
            Problem::Fatal(format!("reading {target}: {}", api_message(error)))
        } else {
            Problem::Wait(format!("reading {target}: {}", api_message(error)))
        }
    }

    async fn resolve(&self) -> Result<Endpoint, Problem> {
        match self.entry.target.kind {
            TargetKind::Pod => self.resolve_pod(),
            TargetKind::Service => self.resolve_service().await,
            TargetKind::Deployment => self.resolve_deployment().await,
        }
    }

    fn resolve_pod(&self) -> Result<Endpoint, Problem> {
        let target = self.described();
        let pod = self
            .pods
            .store
            .get(&ObjectRef::new(&self.entry.target.name).within(&self.namespace))
            .ok_or_else(|| Problem::Wait(format!("{target} not found")))?;
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(Problem::Wait(format!("{target} is terminating")));
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Running") {
            return Err(Problem::Wait(format!(
                "{target} is {}, not Running",
                phase.unwrap_or("without a phase")
            )));
        }
        let port = container_port(&pod, &self.entry.target_port)?;
        Ok(endpoint(&pod, port, false))
    }

    async fn resolve_service(&self) -> Result<Endpoint, Problem> {
        let target = self.described();
        let api: Api<Service> = Api::namespaced(self.cluster.client(), &self.namespace);
        let service = api
            .get(&self.entry.target.name)
            .await
            .map_err(|e| self.api_problem(&e))?;
        let spec = service.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        if selector.is_empty() {
            return Err(Problem::Fatal(format!(
                "{target} has no selector, so no pods: forward to a pod/NAME instead"
            )));
        }
        let ports = spec.ports.unwrap_or_default();
        let wanted = &self.entry.target_port;
        let Some(service_port) = ports.iter().find(|port| match wanted {
            PortRef::Number(number) => port.port == i32::from(*number),
            PortRef::Name(name) => port.name.as_deref() == Some(name.as_str()),
        }) else {
            let known: Vec<String> = ports
                .iter()
                .map(|p| match &p.name {
                    Some(name) => format!("{}/{name}", p.port),
                    None => p.port.to_string(),
                })
                .collect();
            return Err(Problem::Fatal(format!(
                "{target} has no port {wanted} (its ports: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        };
        let candidates = self.pods.selected(|labels| selects(&selector, labels));
        let pod = ready_pod(&candidates, &target)?;
        let port = match &service_port.target_port {
            None => service_port.port,
            Some(IntOrString::Int(number)) => *number,
            Some(IntOrString::String(name)) => match name.parse::<i32>() {
                Ok(number) => number,
                Err(_) => named_port(pod, name).ok_or_else(|| {
                    Problem::Wait(format!(
                        "pod {} behind {target} has no container port named {name:?}",
                        pod.metadata.name.as_deref().unwrap_or_default()
                    ))
                })?,
            },
        };
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Problem::Fatal(format!("{target}: target port {port} is not a port")))?;
        Ok(endpoint(pod, port, true))
    }

    async fn resolve_deployment(&self) -> Result<Endpoint, Problem> {
        let target = self.described();
        let api: Api<Deployment> = Api::namespaced(self.cluster.client(), &self.namespace);
        let deployment = api
            .get(&self.entry.target.name)
            .await
            .map_err(|e| self.api_problem(&e))?;
        let selector = Selector::try_from(deployment.spec.selector).map_err(|e| {
            Problem::Fatal(format!("{target} has a selector that cannot be read: {e}"))
        })?;
        let candidates = self.pods.selected(|labels| selector.matches(labels));
        let pod = ready_pod(&candidates, &target)?;
        let port = container_port(pod, &self.entry.target_port)?;
        Ok(endpoint(pod, port, true))
    }

    /// Serves connections to `endpoint` until the pod goes, streams are refused, or a shutdown
    /// is asked for.
    async fn serve(&self, listener: &TcpListener, endpoint: &Endpoint) -> Served {
        let api: Api<Pod> = Api::namespaced(self.streams.clone(), &self.namespace);
        let mut changes = self.pods.changes.clone();
        let mut connections: JoinSet<Ended> = JoinSet::new();
        let reference = ObjectRef::new(&endpoint.pod).within(&self.namespace);
        loop {
            tokio::select! {
                // A shutdown ends the pod watches too: it must be seen first.
                biased;
                () = self.cancel.cancelled() => return Served::Stopped(connections),
                event = changes.changed() => {
                    if event.is_err() {
                        return Served::Lost(State::Reconnecting, "the pod watch ended".into());
                    }
                    let pod = self.pods.store.get(&reference);
                    if let Some(why) = gone(pod.as_deref(), endpoint) {
                        return Served::Lost(State::Reconnecting, why);
                    }
                }
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(ended) = ended
                        && let Some((state, why)) = self.account(ended)
                    {
                        return Served::Lost(state, why);
                    }
                }
                // Last: a burst of connections does not hold back seeing the pod go.
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else {
                        // Out of file descriptors, say: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    connections.spawn(forward(
                        api.clone(),
                        endpoint.pod.clone(),
                        endpoint.port,
                        socket,
                        self.options.linger,
                        self.cancel.clone(),
                    ));
                }
            }
        }
    }
}

fn endpoint(pod: &Pod, port: u16, needs_ready: bool) -> Endpoint {
    Endpoint {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        port,
        needs_ready,
    }
}

/// Why the pod behind `endpoint` no longer serves it, if it does not.
fn gone(pod: Option<&Pod>, endpoint: &Endpoint) -> Option<String> {
    let name = &endpoint.pod;
    let Some(pod) = pod else {
        return Some(format!("pod {name} was deleted"));
    };
    if pod.metadata.uid != endpoint.uid {
        return Some(format!("pod {name} was replaced"));
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(format!("pod {name} is terminating"));
    }
    if endpoint.needs_ready {
        if fitness(pod).is_err() {
            return Some(format!("pod {name} is not ready"));
        }
    } else if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
        return Some(format!("pod {name} is not running"));
    }
    None
}

fn ready_pod<'a>(candidates: &'a [Pod], target: &str) -> Result<&'a Pod, Problem> {
    choose(candidates, Timestamp::now(), Duration::ZERO)
        .leader
        .ok_or_else(|| {
            Problem::Wait(match candidates.len() {
                0 => format!("no pods behind {target}"),
                n => format!("none of the {n} pods behind {target} is ready"),
            })
        })
}

fn container_port(pod: &Pod, wanted: &PortRef) -> Result<u16, Problem> {
    match wanted {
        PortRef::Number(number) => Ok(*number),
        PortRef::Name(name) => named_port(pod, name)
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| {
                Problem::Fatal(format!(
                    "pod {} has no container port named {name:?}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ))
            }),
    }
}

/// The wait before attempt `failures + 1`: the initial wait doubled per failure, capped.
#[must_use]
pub fn backoff((initial, max): (Duration, Duration), failures: u32) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

/// A port-forward whose background task ends with it (dropping a `Portforwarder` leaves its
/// task running until the server closes the stream).
struct Stream(Portforwarder);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection through the pod's port-forward.
async fn forward(
    api: Api<Pod>,
    pod: String,
    port: u16,
    socket: TcpStream,
    linger: Duration,
    stop: CancellationToken,
) -> Ended {
    let mut stream = match api.portforward(&pod, &[port]).await {
        Ok(forwarder) => Stream(forwarder),
        Err(error) if is_not_found(&error) => {
            return Ended::PodGone(format!("pod {pod} was not found"));
        }
        Err(error) => {
            let why = format!("port-forward to pod {pod}: {}", api_message(&error));
            return if refused(&error) {
                Ended::Refused(why)
            } else {
                Ended::Failed(why, 0)
            };
        }
    };
    let (Some(upstream), Some(error)) = (stream.0.take_stream(port), stream.0.take_error(port))
    else {
        return Ended::Failed("the port-forward opened without its stream".into(), 0);
    };
    match relay(socket, upstream, error, linger, stop).await {
        (bytes, None) => Ended::Ok(bytes),
        (bytes, Some(message)) => Ended::Failed(message, bytes),
    }
}

/// Copies both ways, each direction on its own (neither waits on the other), until the pod's
/// side ends, the local client's fails, or `linger` after the client stopped sending (at once
/// at a shutdown): the bytes moved, and the message of the port's error channel if the pod's
/// side failed.
async fn relay(
    socket: TcpStream,
    upstream: tokio::io::DuplexStream,
    error: impl Future<Output = Option<String>>,
    linger: Duration,
    stop: CancellationToken,
) -> (u64, Option<String>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut local_read, mut local_write) = socket.into_split();
    let (mut pod_read, mut pod_write) = tokio::io::split(upstream);
    let moved = std::sync::atomic::AtomicU64::new(0);
    let count = |n: usize| {
        moved.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    };
    // True at a clean end of what the client sends; false when either side broke.
    let up = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match local_read.read(&mut buffer).await {
                Ok(0) => return true,
                Ok(n) => {
                    if pod_write.write_all(&buffer[..n]).await.is_err() {
                        return false;
                    }
                    count(n);
                }
                Err(_) => return false,
            }
        }
    };
    let down = async {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = pod_read.read(&mut buffer).await {
            if n == 0 || local_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
            count(n);
        }
        let _ = local_write.shutdown().await;
    };
    // Armed when the client stops sending.
    let deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(up, down, error, deadline);
    let (mut up_done, mut error_done) = (false, false);
    loop {
        tokio::select! {
            // The pod's error is sent before its stream ends: it is looked at first.
            biased;
            message = &mut error, if !error_done => match message {
                Some(message) => return (moved.load(std::sync::atomic::Ordering::Relaxed), Some(message)),
                // The stream's task ended: the pod's side is ending.
                None => error_done = true,
            },
            clean = &mut up, if !up_done => {
                if !clean {
                    break;
                }
                up_done = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + linger);
            }
            () = &mut down => break,
            () = &mut deadline, if up_done => break,
            // Only lingering: nothing more will come from the client.
            () = stop.cancelled(), if up_done => break,
        }
    }
    let failed = if error_done {
        None
    } else {
        futures::FutureExt::now_or_never(&mut error).flatten()
    };
    (moved.load(std::sync::atomic::Ordering::Relaxed), failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, phase: &str, ready: &str, deleting: bool) -> Pod {
        let mut value = serde_json::json!({
            "metadata": {"name": "web-0", "uid": uid},
            "status": {"phase": phase, "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": ready}]}
        });
        if deleting {
            value["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let limits = (Duration::from_millis(250), Duration::from_secs(30));
        let waits: Vec<u128> = (0..10).map(|n| backoff(limits, n).as_millis()).collect();
        assert_eq!(
            waits,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(limits, u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn a_pod_is_gone_when_deleted_replaced_terminating_or_not_ready() {
        let served = |needs_ready| Endpoint {
            pod: "web-0".into(),
            uid: Some("a".into()),
            port: 80,
            needs_ready,
        };
        assert_eq!(
            gone(Some(&pod("a", "Running", "True", false)), &served(true)),
            None
        );
        assert!(gone(None, &served(true)).unwrap().contains("deleted"));
        assert!(
            gone(Some(&pod("b", "Running", "True", false)), &served(true))
                .unwrap()
                .contains("replaced")
        );
        assert!(
            gone(Some(&pod("a", "Running", "True", true)), &served(true))
                .unwrap()
                .contains("terminating")
        );
        assert!(
            gone(Some(&pod("a", "Running", "False", false)), &served(true))
                .unwrap()
                .contains("not ready")
        );
        // pod/NAME: readiness is not asked for, as kubectl port-forward does not.
        assert_eq!(
            gone(Some(&pod("a", "Running", "False", false)), &served(false)),
            None
        );
        assert!(
            gone(Some(&pod("a", "Succeeded", "False", false)), &served(false))
                .unwrap()
                .contains("not running")
        );
    }

    #[test]
    fn the_ready_pod_is_the_one_ready_longest_and_none_is_explained() {
        assert!(
            matches!(ready_pod(&[], "svc/web"), Err(Problem::Wait(m)) if m == "no pods behind svc/web")
        );
        let unready = [pod("a", "Running", "False", false)];
        assert!(
            matches!(ready_pod(&unready, "svc/web"), Err(Problem::Wait(m)) if m.contains("none of the 1 pods"))
        );
        let ready = [
            pod("a", "Running", "False", false),
            pod("b", "Running", "True", false),
        ];
        assert_eq!(
            ready_pod(&ready, "svc/web")
                .unwrap()
                .metadata
                .uid
                .as_deref(),
            Some("b")
        );
        assert!(no_free_port(Some(8080), (1, 2)).contains("8080, every port above it"));
        assert!(no_free_port(None, (1, 2)).contains("localPorts 1-2"));
    }
}
