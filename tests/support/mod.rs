//! The one test harness for everything that talks to a cluster: zen-sim in-process by default,
//! any real cluster when `ZEN_TEST_KUBECONFIG` names a kubeconfig. Every test works in a fresh
//! namespace labelled `kubezen.io/test=true` (after a failed run on a real cluster,
//! `kubectl delete ns -l kubezen.io/test=true` removes the leftovers).

#![allow(dead_code, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use kubezen::cluster::{Cluster, ClusterOptions};
use kubezen::sim::{Sim, SimOptions};

mod shared;
pub use shared::skip;
use shared::{TEST_NAMESPACE, control_plane};

/// A cluster to test against, with a namespace of the test's own.
pub struct TestCluster {
    pub cluster: Cluster,
    pub client: Client,
    pub namespace: String,
    pub sim: Option<Sim>,
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    turn: Option<Turn>,
}

/// The tests of one binary share a real cluster, and its API server: a test that restarts it
/// runs alone ([`cluster_alone`]), the others beside each other. Each zen-sim is a test's own.
static API_SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(Alone),
}

/// A test's turn alone on the real API server. After a restart, the turn ends only once the
/// cluster works end to end again (`cluster.sh settle`), for the tests that follow.
struct Alone {
    _guard: tokio::sync::RwLockWriteGuard<'static, ()>,
    restarted: std::sync::atomic::AtomicBool,
}

impl Drop for Alone {
    fn drop(&mut self) {
        let dir = control_plane();
        if let (true, Some(dir)) = (*self.restarted.get_mut(), dir) {
            let settled = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/control-plane/cluster.sh"
                ))
                .arg("settle")
                .arg(dir)
                .status();
            if !settled
                .as_ref()
                .is_ok_and(std::process::ExitStatus::success)
                && !std::thread::panicking()
            {
                panic!("the cluster did not settle after the API server restart: {settled:?}");
            }
        }
    }
}

/// The cluster for one test: `ZEN_TEST_KUBECONFIG`'s, or a new zen-sim.
pub async fn cluster() -> TestCluster {
    cluster_with(ClusterOptions::default()).await
}

/// The cluster for a test that restarts the API server ([`TestCluster::restart_api_server`]):
/// on a real cluster no other test of the binary runs meanwhile.
pub async fn cluster_alone() -> TestCluster {
    connect(ClusterOptions::default(), true).await
}

/// The same, with client options (qps, burst, retry policy) of the test's choosing.
pub async fn cluster_with(options: ClusterOptions) -> TestCluster {
    connect(options, false).await
}

async fn connect(mut options: ClusterOptions, alone: bool) -> TestCluster {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let real = std::env::var_os("ZEN_TEST_KUBECONFIG").filter(|value| !value.is_empty());
    let turn = match (&real, alone) {
        (None, _) => None,
        (Some(_), false) => Some(Turn::Shared(API_SERVER.read().await)),
        (Some(_), true) => Some(Turn::Alone(Alone {
            _guard: API_SERVER.write().await,
            restarted: std::sync::atomic::AtomicBool::new(false),
        })),
    };
    let (sim, kubeconfig) = if let Some(path) = real {
        (None, PathBuf::from(path))
    } else {
        let sim = Sim::start(SimOptions::default())
            .await
            .expect("zen-sim starts");
        let path = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&path)
            .expect("the kubeconfig is written");
        (Some(sim), path)
    };
    options.kubeconfig = Some(kubeconfig.clone());
    let cluster = Cluster::connect(&options)
        .await
        .expect("the cluster is reachable");
    let client = cluster.client();
    let namespace = format!("zen-test-{}", fastrand::u32(..));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {"kubezen.io/test": "true"}}
    }))
    .expect("a namespace");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .expect("the test namespace is created");
    if sim.is_none() {
        // A real cluster's controller manager gives a new namespace its `default`
        // ServiceAccount a moment later; until then the ServiceAccount admission plugin refuses
        // pods there. Clients of a real cluster wait for it, as these tests do.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
        eventually(
            Duration::from_secs(60),
            "the namespace's default ServiceAccount",
            || async { accounts.get_opt("default").await.ok().flatten() },
        )
        .await;
    }
    TestCluster {
        cluster,
        client,
        namespace,
        sim,
        kubeconfig,
        dir,
        turn,
    }
}

impl TestCluster {
    /// The simulator, or `None` (with a note on stderr) on a real cluster, for tests of what
    /// only zen-sim can do (fault injection, forced compaction).
    pub fn sim_only(&self, what: &str) -> Option<&Sim> {
        if self.sim.is_none() {
            skip(&format!("on a real cluster, {what} needs zen-sim"));
        }
        self.sim.as_ref()
    }

    /// Restarts the API server: zen-sim's restart fault, or on the real control plane of
    /// `tests/control-plane/cluster.sh run` (`ZEN_TEST_CONTROL_PLANE`) kube-apiserver killed and
    /// started again after `down_for`. Returns once it serves again; `false` (and a skip
    /// noted) on another cluster, which the tests cannot restart.
    pub async fn restart_api_server(&self, down_for: Duration) -> bool {
        if let Some(sim) = &self.sim {
            sim.restart(down_for).await;
            return true;
        }
        let Some(Turn::Alone(alone)) = &self.turn else {
            panic!("a test that restarts the API server starts with support::cluster_alone()");
        };
        let Some(dir) = control_plane() else {
            skip("restarting the API server needs zen-sim or tests/control-plane/cluster.sh");
            return false;
        };
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/control-plane/cluster.sh"
        );
        let seconds = format!("{:.1}", down_for.as_secs_f64());
        let status = tokio::process::Command::new("bash")
            .args([
                script.as_ref(),
                "restart-apiserver".as_ref(),
                dir.as_os_str(),
                seconds.as_ref(),
            ])
            .status()
            .await
            .expect("cluster.sh runs");
        alone
            .restarted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            status.success(),
            "cluster.sh restart-apiserver failed: {status}"
        );
        true
    }

    /// An API for namespaced objects in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Deletes the test's namespace, and on the real control plane the port-forward rules
    /// [`TestCluster::serve_pod_port`] made for it.
    pub async fn cleanup(self) {
        if self.sim.is_none() && control_plane().is_some() {
            let rules: Api<DynamicObject> = Api::all_with(self.client.clone(), &port_forwards());
            let _ = rules
                .delete_collection(
                    &DeleteParams::default(),
                    &ListParams::default().labels(&format!("{TEST_NAMESPACE}={}", self.namespace)),
                )
                .await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }

    /// Makes `port` of every pod in the test's namespace answer as `backend` does, as an image
    /// serving that port would. On zen-sim the pods say so themselves (the tests give them
    /// `zen-sim.kubezen.io/port-forward`, [`kubezen::sim::BACKENDS_ANNOTATION`]); on the real
    /// control plane of `cluster.sh` kwok forwards to where a `ClusterPortForward` selecting
    /// the namespace says. Returns `false` (a skip noted) on another real cluster, whose
    /// pods' ports the tests cannot choose.
    pub async fn serve_pod_port(&self, port: u16, backend: SocketAddr) -> bool {
        if self.sim.is_some() {
            return true;
        }
        if control_plane().is_none() {
            skip("a pod port standing in for a server needs zen-sim or cluster.sh's kwok");
            return false;
        }
        let rules: Api<DynamicObject> = Api::all_with(self.client.clone(), &port_forwards());
        let name = format!("{}-{port}", self.namespace);
        let rule = serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
            "metadata": {"name": name, "labels": {TEST_NAMESPACE: self.namespace}},
            "spec": {"selector": {"matchNamespaces": [self.namespace]},
                     "forwards": [{"ports": [port],
                                   "target": {"address": backend.ip().to_string(), "port": backend.port()}}]},
        });
        rules
            .patch(
                &name,
                &PatchParams::apply("kubezen-tests").force(),
                &Patch::Apply(rule),
            )
            .await
            .expect("the ClusterPortForward is applied");
        true
    }

    /// Marks pod `name` of the test's namespace ready or not, as its readiness probe
    /// would: zen-sim's switch, or on the real control plane of `cluster.sh` the kubelet's own
    /// status write (kwok leaves a running pod's conditions alone). `false` (a skip noted) on
    /// another real cluster, whose kubelets would write their own answer back.
    pub async fn set_pod_ready(&self, name: &str, ready: bool) -> bool {
        if let Some(sim) = &self.sim {
            sim.set_pod_ready(&self.namespace, name, ready)
                .expect("the pod exists");
            return true;
        }
        if control_plane().is_none() {
            skip("flipping a pod's readiness needs zen-sim or cluster.sh's kwok");
            return false;
        }
        let pods: Api<k8s_openapi::api::core::v1::Pod> = self.api();
        let pod = pods.get_status(name).await.expect("the pod exists");
        let mut status = serde_json::to_value(pod.status).expect("a pod status");
        let flag = if ready { "True" } else { "False" };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for condition in status["conditions"].as_array_mut().into_iter().flatten() {
            if matches!(
                condition["type"].as_str(),
                Some("Ready" | "ContainersReady")
            ) && condition["status"] != flag
            {
                condition["status"] = flag.into();
                condition["lastTransitionTime"] = now.clone().into();
            }
        }
        for container in status["containerStatuses"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            container["ready"] = ready.into();
        }
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": status})),
        )
        .await
        .expect("the pod's status is written");
        true
    }

    /// The kubeconfig file, for kubectl.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A directory of the test's own, removed when the test ends (kubectl's cache lives here).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes `name` (if it is still there) and waits until the server has let it go: on a real
/// cluster a Namespace is emptied first, and a CRD's instances are removed first.
pub async fn remove<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => panic!("cannot delete {name}: {error}"),
    }
    gone(api, name, Duration::from_secs(120)).await;
}

/// Waits until `name` no longer exists.
pub async fn gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(timeout, &format!("{name} gone"), || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// An object from JSON.
pub fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// `N` distinct loopback addresses that are free now, taken from below the kernel's ephemeral
/// port range: a port `bind(0)` handed out and the test released can be given at once to an
/// outgoing connection or another `bind(0)` of a test running beside it; ports below the range
/// are only ever taken by an explicit bind.
pub fn unused_addresses<const N: usize>() -> [SocketAddr; N] {
    let range: Vec<u16> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (low, high) = match range[..] {
        [low, high] => (low, high),
        _ => (32768, 60999),
    };
    // Below the range when there is room there, else above it.
    let (first, last) = if low > 11_000 {
        (10_000, low - 1)
    } else {
        (high.saturating_add(1).min(u16::MAX - 1000), u16::MAX)
    };
    let start = fastrand::u16(first..last);
    let mut held = Vec::with_capacity(N);
    for port in (start..=last).chain(first..start) {
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            if held.len() == N {
                break;
            }
        }
    }
    assert_eq!(held.len(), N, "{N} free loopback ports in {first}-{last}");
    std::array::from_fn(|i| held[i].local_addr().expect("a bound address"))
}

/// kwok's `ClusterPortForward` (kwok.x-k8s.io/v1alpha1), which `cluster.sh` installs.
fn port_forwards() -> ApiResource {
    ApiResource {
        group: "kwok.x-k8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "kwok.x-k8s.io/v1alpha1".into(),
        kind: "ClusterPortForward".into(),
        plural: "clusterportforwards".into(),
    }
}
