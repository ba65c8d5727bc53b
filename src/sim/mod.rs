//! zen-sim: a Kubernetes-API-compatible server for tests, demos and notebooks.
//!
//! It speaks the API server's HTTP protocol closely enough that `kubectl` and the `kube` client
//! work against it unchanged: discovery, JSON objects with uid/resourceVersion/generation,
//! optimistic concurrency, label and field selectors, paging, watches with bookmarks and 410
//! Gone, merge/JSON/strategic-merge patches, server-side apply with `managedFields` and
//! conflicts, status and scale subresources, finalizers, garbage collection, namespace deletion
//! and CRDs whose kinds are served and validated. A small control plane runs Deployments,
//! `ReplicaSets`, `StatefulSets`, `DaemonSets` and Jobs, makes pods Ready after a delay, keeps
//! Endpoints/EndpointSlices, and serves metrics.k8s.io from a usage model. `pods/portforward`
//! speaks WebSocket (`v4.channel.k8s.io`) to local TCP servers standing in for pod ports
//! ([`BACKENDS_ANNOTATION`]). Faults (429 with
//! Retry-After, 5xx, latency, dropped watches, expired resource versions) can be injected per
//! resource and verb.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubezen::sim::SimError> {
//! let sim = kubezen::sim::Sim::start(kubezen::sim::SimOptions::default()).await?;
//! let client = kube::Client::try_from(sim.kube_config().await?).expect("client");
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod api;
mod control;
mod error;
mod events;
mod faults;
mod fields;
mod openapi;
mod portforward;
pub mod protobuf;
mod rbac;
mod registry;
pub(crate) mod select;
mod store;
mod table;
mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

pub use faults::{Fault, FaultAction, Faults};
pub use portforward::{BACKENDS_ANNOTATION, echo_backend};
pub use rbac::Access;

/// The Kubernetes version zen-sim reports and behaves as: the release of the real control plane
/// the tests' second pass runs against (`tests/control-plane/kubernetes/go.mod`), where the two
/// are compared; a test keeps them equal.
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// How the simulated containers use resources, for metrics.k8s.io.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageModel {
    /// CPU used, as a fraction of the container's CPU request.
    pub cpu_fraction: f64,
    /// Memory used, as a fraction of the container's memory request.
    pub memory_fraction: f64,
    /// CPU of a container without a request, in millicores.
    pub default_cpu_millicores: f64,
    /// Memory of a container without a request, in bytes.
    pub default_memory_bytes: f64,
    /// How far usage swings around its level (0.2 = +-20 % for CPU, a quarter of that for memory).
    pub noise: f64,
    /// The period of the swing.
    pub period: Duration,
}

impl UsageModel {
    /// The default model with these levels: CPU and memory used as fractions of the requests
    /// (each above 0 and at most 10) and the swing around them (from 0 to below 1).
    ///
    /// # Errors
    /// A level or swing outside those ranges, said in words.
    pub fn with_levels(
        cpu_fraction: f64,
        memory_fraction: f64,
        noise: f64,
    ) -> Result<Self, String> {
        for (name, value) in [("cpu", cpu_fraction), ("memory", memory_fraction)] {
            if !(value > 0.0 && value <= 10.0) {
                return Err(format!(
                    "the {name} usage fraction must be above 0 and at most 10, not {value}"
                ));
            }
        }
        if !(0.0..1.0).contains(&noise) {
            return Err(format!(
                "the usage noise must be from 0 to below 1, not {noise}"
            ));
        }
        Ok(Self {
            cpu_fraction,
            memory_fraction,
            noise,
            ..Self::default()
        })
    }
}

impl Default for UsageModel {
    fn default() -> Self {
        Self {
            cpu_fraction: 0.4,
            memory_fraction: 0.6,
            default_cpu_millicores: 10.0,
            default_memory_bytes: 32.0 * 1024.0 * 1024.0,
            noise: 0.2,
            period: Duration::from_secs(300),
        }
    }
}

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The address to listen on; loopback by default.
    pub host: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// Serve HTTPS with a fresh self-signed CA (the kubeconfig carries it).
    pub tls: bool,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// How long a scheduled pod takes to become Ready.
    pub ready_delay: Duration,
    /// Nodes to create at start.
    pub nodes: usize,
    /// Each node's CPU capacity.
    pub node_cpu: String,
    /// Each node's memory capacity.
    pub node_memory: String,
    /// The usage model behind metrics.k8s.io.
    pub usage: UsageModel,
    /// Events kept for watches that resume from a resourceVersion; older ones get 410 Gone.
    pub history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tls: false,
            token: None,
            ready_delay: Duration::from_millis(200),
            nodes: 3,
            node_cpu: "4".into(),
            node_memory: "16Gi".into(),
            usage: UsageModel::default(),
            history: 100_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(String),
    /// The kubeconfig could not be used or written.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The runtime for a background simulator could not be built.
    #[error("cannot start the simulator's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a simulator has served and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Objects stored.
    pub objects: usize,
    /// The current resourceVersion.
    pub revision: u64,
    /// Requests served.
    pub requests: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// State shared by the server, the handlers and the controllers.
pub(crate) struct SimState {
    pub(crate) options: SimOptions,
    pub(crate) store: store::Store,
    pub(crate) faults: Faults,
    pub(crate) address: SocketAddr,
    /// What impersonated users asked for, and whether RBAC allowed it.
    pub(crate) access: rbac::AccessLog,
    requests: AtomicU64,
    started: Instant,
    timings: std::sync::Mutex<std::collections::BTreeMap<&'static str, crate::bench::Recorder>>,
    /// Restarts asked of the serving loop ([`Sim::restart`], `POST /zen-sim/v1/restart`).
    restarts: tokio::sync::mpsc::UnboundedSender<Restart>,
}

impl SimState {
    /// A restart of `down_for`, begun a moment from now: the answer of the request that asked
    /// for it goes out first, then every connection (that one's too) is cut.
    pub(crate) fn restart_soon(&self, down_for: Duration) {
        let restarts = self.restarts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = restarts.send(Restart {
                down_for,
                serving: None,
            });
        });
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts timing a request of `verb`; the time is recorded when the guard drops.
    pub(crate) fn time(&self, verb: &'static str) -> Timer<'_> {
        Timer {
            state: self,
            verb,
            started: Instant::now(),
        }
    }

    pub(crate) fn timings(&self) -> std::collections::BTreeMap<String, crate::bench::Latency> {
        self.timings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(verb, recorder)| ((*verb).to_owned(), recorder.summary()))
            .collect()
    }

    pub(crate) fn reset_timings(&self) {
        self.timings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn stats(&self) -> SimStats {
        SimStats {
            objects: self.store.len(),
            revision: self.store.revision(),
            requests: self.requests.load(Ordering::Relaxed),
            uptime_seconds: self.started.elapsed().as_secs(),
        }
    }
}

/// Times one request from the moment its verb is known until its response is ready (the
/// body of a watch streams afterwards, and is not timed).
pub(crate) struct Timer<'a> {
    state: &'a SimState,
    verb: &'static str,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.state
            .timings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(self.verb)
            .or_default()
            .record(elapsed);
    }
}

pub(crate) fn version_info() -> Value {
    let (major, minor) = KUBERNETES_VERSION
        .trim_start_matches('v')
        .split_once('.')
        .unwrap_or(("1", "37.0"));
    let minor = minor.split('.').next().unwrap_or("37");
    json!({
        "major": major, "minor": minor, "gitVersion": KUBERNETES_VERSION, "gitCommit": "zen-sim",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "zen-sim",
        "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "emulationMajor": major, "emulationMinor": minor,
    })
}

/// A running simulator. Dropping it (or [`Sim::stop`]) stops it.
pub struct Sim {
    state: Arc<SimState>,
    url: String,
    ca_pem: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// An API server restart asked of the serving loop: down for `down_for`, then `serving` (when
/// someone waits) says it accepts connections again.
pub(crate) struct Restart {
    down_for: Duration,
    serving: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Starts a simulator on the current tokio runtime.
    ///
    /// # Errors
    /// The address cannot be bound, or TLS cannot be set up.
    pub async fn start(options: SimOptions) -> Result<Self, SimError> {
        let requested = SocketAddr::new(options.host, options.port);
        let listener = tokio::net::TcpListener::bind(requested)
            .await
            .map_err(|source| SimError::Bind {
                address: requested,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| SimError::Bind {
            address: requested,
            source,
        })?;
        let identity = if options.tls {
            Some(tls::identity(&options.host.to_string()).map_err(SimError::Tls)?)
        } else {
            None
        };
        let scheme = if options.tls { "https" } else { "http" };
        let (restarts, restart_requests) = tokio::sync::mpsc::unbounded_channel();
        let host = match address.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let url = format!("{scheme}://{host}:{}", address.port());
        let state = Arc::new(SimState {
            store: store::Store::new(options.history),
            options,
            faults: Faults::default(),
            address,
            access: rbac::AccessLog::default(),
            requests: AtomicU64::new(0),
            started: Instant::now(),
            timings: std::sync::Mutex::default(),
            restarts,
        });
        tracing::info!(
            url = url.as_str(),
            tls = state.options.tls,
            nodes = state.options.nodes,
            token = state.options.token.is_some(),
            "zen-sim serving at {url}"
        );
        let events = state.store.subscribe();
        let controllers = tokio::spawn(control::run(Arc::clone(&state), events));
        control::seed(&state);
        let acceptor = identity
            .as_ref()
            .map(|identity| tokio_rustls::TlsAcceptor::from(Arc::clone(&identity.config)));
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&state),
            acceptor,
            restart_requests,
        ));
        Ok(Self {
            state,
            url,
            ca_pem: identity.map(|identity| identity.ca_pem),
            tasks: vec![controllers, server],
        })
    }

    /// Plays an API server restart, as killing kube-apiserver and starting it again does: every
    /// open connection (watches included) is dropped at once, new ones are refused for
    /// `down_for`, then it serves again on the same address with every object kept (as etcd
    /// keeps them). Returns once it serves again.
    pub async fn restart(&self, down_for: Duration) {
        let (serving, served) = tokio::sync::oneshot::channel();
        let restart = Restart {
            down_for,
            serving: Some(serving),
        };
        if self.state.restarts.send(restart).is_ok() {
            let _ = served.await;
        }
    }

    /// The server's URL, `http://127.0.0.1:PORT` (or https).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig (YAML) with one context, `zen-sim`, for this simulator.
    #[must_use]
    pub fn kubeconfig(&self) -> String {
        use base64::Engine as _;
        let mut cluster = json!({"server": self.url});
        if let Some(pem) = &self.ca_pem {
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(pem));
        }
        // Without a credential of some kind kubectl asks for a username over https; a server
        // that needs no token ignores this one.
        let token = self
            .state
            .options
            .token
            .as_deref()
            .unwrap_or("zen-sim-anonymous");
        let user = json!({"token": token});
        let config = json!({
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "zen-sim", "cluster": cluster}],
            "users": [{"name": "zen-sim", "user": user}],
            "contexts": [{"name": "zen-sim", "context": {"cluster": "zen-sim", "user": "zen-sim", "namespace": "default"}}],
            "current-context": "zen-sim",
        });
        serde_norway::to_string(&config).unwrap_or_default()
    }

    /// Writes [`Sim::kubeconfig`] to a file (mode 0600: it may hold the token).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        write_private(path, &self.kubeconfig()).map_err(|error| {
            SimError::Kubeconfig(format!("cannot write {}: {error}", path.display()))
        })
    }

    /// A `kube` client configuration for this simulator.
    ///
    /// # Errors
    /// Never in practice: the kubeconfig is generated.
    pub async fn kube_config(&self) -> Result<kube::Config, SimError> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())
            .map_err(|error| SimError::Kubeconfig(error.to_string()))?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|error| SimError::Kubeconfig(error.to_string()))
    }

    /// The fault rules: inject, list, clear.
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Marks a pod Ready or `NotReady`, as a readiness probe would.
    ///
    /// # Errors
    /// The pod does not exist.
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) -> Result<(), String> {
        control::set_pod_ready(&self.state, namespace, name, ready).map_err(|error| error.message)
    }

    /// The server's own time per verb (from the request's arrival at the handler to its
    /// response being ready, watches left out), since start or the last
    /// [`Sim::reset_timings`]: an independent measurement to check a client's figures by.
    #[must_use]
    pub fn timings(&self) -> std::collections::BTreeMap<String, crate::bench::Latency> {
        self.state.timings()
    }

    /// Every distinct request an impersonated user (`Impersonate-User`, `kubectl --as`, a
    /// kubeconfig's `as:`) made, by verb, resource and namespace, and whether a Role or
    /// `ClusterRole` bound to it allowed it. Requests without impersonation are the admin's and
    /// are neither checked nor recorded.
    #[must_use]
    pub fn access(&self) -> Vec<Access> {
        self.state.access.list()
    }

    /// Forgets the recorded accesses.
    pub fn reset_access(&self) {
        self.state.access.clear();
    }

    /// Forgets the timings so far.
    pub fn reset_timings(&self) {
        self.state.reset_timings();
    }

    /// The loopback's share of a client's latency for `GET path`, measured without any HTTP
    /// client: the median round trip of `rounds` such requests on one kept-alive plain socket,
    /// less zen-sim's own median time for them (its timings are reset before and after). The
    /// same request under the same server-side conditions (injected delays included) pays the
    /// same wake-ups from idle, so server time plus this is what an ideal client would see.
    /// Blocks; call it off the simulator's runtime (from `spawn_blocking`, or another thread).
    /// Plain HTTP only.
    ///
    /// # Errors
    /// A TLS simulator, a connection that fails, or a response that is not 200.
    pub fn loopback_round_trip(&self, path: &str, rounds: usize) -> std::io::Result<Duration> {
        if self.state.options.tls {
            return Err(std::io::Error::other(
                "a TLS simulator: measure over plain HTTP",
            ));
        }
        let mut stream = std::net::TcpStream::connect(self.state.address)?;
        stream.set_nodelay(true)?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: zen-sim\r\nAccept: application/json\r\n\r\n");
        self.reset_timings();
        let mut times = Vec::with_capacity(rounds.max(1));
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            std::io::Write::write_all(&mut stream, request.as_bytes())?;
            read_response(&mut stream)?;
            times.push(started.elapsed());
        }
        times.sort();
        let round_trip = times[times.len() / 2];
        let server = self
            .timings()
            .values()
            .map(|latency| latency.p50_ms)
            .fold(0.0, f64::max);
        self.reset_timings();
        Ok(round_trip.saturating_sub(Duration::from_secs_f64(server / 1000.0)))
    }

    /// Objects, revision, requests served.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// Stops serving; connections and watches end.
    pub fn stop(self) {
        drop(self);
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` (zen-sim's are) off `stream`.
fn read_response(stream: &mut std::net::TcpStream) -> std::io::Result<()> {
    use std::io::Read as _;
    let mut read = Vec::new();
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        read.extend_from_slice(&buffer[..n]);
        let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(format!(
                "zen-sim answered {}",
                head.lines().next().unwrap_or_default()
            )));
        }
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other("a response without Content-Length"))?;
        while read.len() < end + 4 + length {
            let n = stream.read(&mut buffer)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            read.extend_from_slice(&buffer[..n]);
        }
        return Ok(());
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())
}

async fn serve(
    mut listener: tokio::net::TcpListener,
    state: Arc<SimState>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut restarts: tokio::sync::mpsc::UnboundedReceiver<Restart>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            Some(restart) = restarts.recv() => {
                tracing::info!(
                    down_for_seconds = restart.down_for.as_secs_f64(),
                    connections = connections.len(),
                    "zen-sim restarts: {} connections cut, new ones refused for {:?}",
                    connections.len(),
                    restart.down_for
                );
                // Down: the socket closed (connections refused), every connection cut.
                connections.abort_all();
                let address = listener.local_addr().unwrap_or(state.address);
                drop(listener);
                while connections.join_next().await.is_some() {}
                tokio::time::sleep(restart.down_for).await;
                listener = loop {
                    match tokio::net::TcpListener::bind(address).await {
                        Ok(listener) => break listener,
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                tracing::info!(%address, "zen-sim serves again at {address}, every object kept");
                if let Some(serving) = restart.serving {
                    let _ = serving.send(());
                }
                continue;
            }
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |request| api::handle(Arc::clone(&state), request));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// A simulator on its own threads, for callers without a tokio runtime (the plugin, Python).
pub struct BackgroundSim {
    sim: Option<Sim>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BackgroundSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSim")
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

impl BackgroundSim {
    /// Starts a simulator on a runtime of its own (two worker threads).
    ///
    /// # Errors
    /// As [`Sim::start`], or the runtime cannot be built.
    pub fn start(options: SimOptions) -> Result<Self, SimError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zen-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        let sim = runtime.block_on(Sim::start(options))?;
        Ok(Self {
            sim: Some(sim),
            runtime: Some(runtime),
        })
    }

    /// The running simulator.
    ///
    /// # Panics
    /// Never: the simulator lives as long as this value.
    #[must_use]
    pub fn sim(&self) -> &Sim {
        self.sim.as_ref().expect("the simulator runs until stopped")
    }

    /// [`Sim::restart`], for callers without a runtime: returns once it serves again.
    ///
    /// # Panics
    /// Never: the simulator lives as long as this value.
    pub fn restart(&self, down_for: Duration) {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives until stopped");
        runtime.block_on(self.sim().restart(down_for));
    }

    /// Stops the simulator and its threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let _guard = runtime.enter();
            drop(self.sim.take());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for BackgroundSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_release_of_the_real_control_plane_it_is_compared_with() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/control-plane/kubernetes/go.mod"
        );
        let go_mod = std::fs::read_to_string(path).unwrap();
        let required = go_mod
            .lines()
            .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes v"))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("go.mod requires k8s.io/kubernetes");
        assert_eq!(KUBERNETES_VERSION, format!("v{required}"));
        assert_eq!(version_info()["minor"], required.split('.').nth(1).unwrap());
    }

    /// The controllers subscribe before the store is seeded: a subscription taken inside
    /// their task could come after the seed, and then no namespace got its default account.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_seeded_namespace_gets_its_default_service_account() {
        for _ in 0..20 {
            let sim = Sim::start(SimOptions::default()).await.unwrap();
            let accounts = sim
                .state
                .store
                .resource("", "v1", "serviceaccounts")
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let (stored, _, _) = sim.state.store.watch_current(&accounts, None);
                if stored.len() == 4 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} of 4 default ServiceAccounts",
                    stored.len()
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }

    #[test]
    fn usage_levels_are_checked() {
        let model = UsageModel::with_levels(0.7, 0.5, 0.1).unwrap();
        assert_eq!(
            (model.cpu_fraction, model.memory_fraction, model.noise),
            (0.7, 0.5, 0.1)
        );
        assert!(
            UsageModel::with_levels(0.0, 0.5, 0.1)
                .unwrap_err()
                .contains("cpu usage fraction")
        );
        assert!(
            UsageModel::with_levels(0.5, f64::NAN, 0.1)
                .unwrap_err()
                .contains("memory usage fraction")
        );
        assert!(
            UsageModel::with_levels(0.5, 0.5, 1.0)
                .unwrap_err()
                .contains("noise")
        );
    }
}
