//! The cluster a plugin test runs the plugin against: zen-sim on threads of its own, or, when
//! `ZEN_TEST_KUBECONFIG` names a kubeconfig (`tests/control-plane/cluster.sh run` sets it), that
//! real cluster. Each test works in a fresh namespace labelled `kubezen.io/test=true`. On a
//! real cluster, a test whose commands see the whole cluster (bench cleanup, install) or that
//! restarts the API server takes it alone ([`cluster_alone`]); the others run side by side.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use kubezen::sim::{BackgroundSim, SimOptions};

#[path = "../../../tests/support/shared.rs"]
mod shared;
pub use shared::skip;
use shared::{TEST_NAMESPACE, control_plane};

/// The plugin built with these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

/// The tests of a binary on a real cluster: side by side, or one alone.
static REAL_CLUSTER: RwLock<()> = RwLock::new(());

/// A test's turn on a real cluster.
enum Turn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A cluster to run the plugin against, with a namespace of the test's own.
pub struct TestCluster {
    sim: Option<BackgroundSim>,
    dir: tempfile::TempDir,
    kubeconfig: String,
    namespace: String,
    restarted: std::sync::atomic::AtomicBool,
    turn: Option<Turn>,
}

/// The cluster for one test: `ZEN_TEST_KUBECONFIG`'s, or a new zen-sim.
pub fn cluster() -> TestCluster {
    connect(false)
}

/// The same, for a test that must have a real cluster to itself: its commands see the whole
/// cluster (bench cleanup, install), or it restarts the API server.
pub fn cluster_alone() -> TestCluster {
    connect(true)
}

fn connect(alone: bool) -> TestCluster {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let real = std::env::var("ZEN_TEST_KUBECONFIG")
        .ok()
        .filter(|path| !path.is_empty());
    let (sim, kubeconfig, turn) = if let Some(path) = real {
        let turn = if alone {
            Turn::Alone(
                REAL_CLUSTER
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        } else {
            Turn::Shared(
                REAL_CLUSTER
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        };
        (None, path, Some(turn))
    } else {
        let sim = BackgroundSim::start(SimOptions::default()).expect("zen-sim starts");
        let path = dir.path().join("kubeconfig");
        sim.sim()
            .write_kubeconfig(&path)
            .expect("the kubeconfig is written");
        (Some(sim), path.display().to_string(), None)
    };
    let cluster = TestCluster {
        sim,
        dir,
        kubeconfig,
        namespace: format!("zen-test-{}", fastrand::u32(..)),
        restarted: std::sync::atomic::AtomicBool::new(false),
        turn,
    };
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}, labels: {{kubezen.io/test: \"true\"}}}}\n",
        cluster.namespace
    ));
    if cluster.sim.is_none() {
        // The controller manager gives a new namespace its `default` ServiceAccount a moment
        // later; until then the ServiceAccount admission plugin refuses pods there.
        eventually(
            Duration::from_secs(60),
            "the default ServiceAccount",
            || {
                cluster
                    .kubectl(&["get", "serviceaccount", "default"])
                    .status
                    .success()
            },
        );
    }
    cluster
}

impl TestCluster {
    /// The kubeconfig, for `--kubeconfig`.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// The test's namespace, for `-n`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A directory of the test's own, removed when it ends.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The test's kubeconfig acting as `user` (a kubeconfig's `as:`, kubectl's `--as`): both
    /// servers authorize the requests as that user's RBAC allows.
    pub fn kubeconfig_as(&self, user: &str) -> String {
        let said = std::fs::read_to_string(&self.kubeconfig).expect("the kubeconfig");
        let mut config: serde_json::Value = serde_norway::from_str(&said).expect("YAML");
        for entry in config["users"].as_array_mut().expect("users") {
            entry["user"]["as"] = serde_json::json!(user);
        }
        let path = self
            .dir
            .path()
            .join(format!("as-{}", user.replace(':', "-")));
        std::fs::write(&path, config.to_string()).expect("written");
        path.display().to_string()
    }

    /// The Event of `reason` on the object `name` in the test's namespace, read as `kubectl get
    /// events` reads it (the core group's Events, whichever group wrote it), once it is there.
    pub fn event(&self, name: &str, reason: &str) -> serde_json::Value {
        let mut found = serde_json::Value::Null;
        eventually(
            Duration::from_secs(60),
            &format!("the {reason} Event on {name}"),
            || {
                let selector = format!("involvedObject.name={name},reason={reason}");
                let out =
                    self.kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"]);
                let listed: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                match listed["items"].as_array().and_then(|items| items.first()) {
                    Some(event) => {
                        found = event.clone();
                        true
                    }
                    None => false,
                }
            },
        );
        found
    }

    /// Whether this is a real cluster rather than zen-sim.
    pub fn is_real(&self) -> bool {
        self.sim.is_none()
    }

    /// The simulator, or `None` (the skip noted) on a real cluster, for what only zen-sim does.
    pub fn sim_only(&self, what: &str) -> Option<&BackgroundSim> {
        if self.sim.is_none() {
            skip(&format!("on a real cluster, {what} needs zen-sim"));
        }
        self.sim.as_ref()
    }

    /// The plugin, run with `--kubeconfig` and `-n` of this cluster, then `args`.
    pub fn zen(&self, args: &[&str]) -> Output {
        self.zen_command(args).output().expect("the plugin runs")
    }

    /// The same command, to spawn.
    pub fn zen_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["--kubeconfig", &self.kubeconfig, "-n", &self.namespace])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG");
        command
    }

    /// kubectl against this cluster, in the test's namespace (`-A` or `-n` later overrides it).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args)
            .output()
            .expect("kubectl is on PATH")
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(["--kubeconfig", &self.kubeconfig, "-n", &self.namespace])
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args);
        command
    }

    /// `kubectl apply` of a YAML stream into the test's namespace; panics with kubectl's
    /// message when it fails.
    pub fn apply(&self, yaml: &str) {
        let mut child = self
            .kubectl_command(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is on PATH");
        child
            .stdin
            .take()
            .expect("a pipe")
            .write_all(yaml.as_bytes())
            .expect("kubectl reads its input");
        let out = child.wait_with_output().expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes `port` of every pod in the test's namespace answer as `backend` does, as an image
    /// serving that port would: zen-sim reads the pods' `zen-sim.kubezen.io/port-forward`
    /// annotation (which the tests set); on the real control plane of `cluster.sh`, kwok
    /// forwards to where a `ClusterPortForward` selecting the namespace says. `false` (a skip
    /// noted) on another real cluster, whose pods' ports the tests cannot choose.
    pub fn serve_pod_port(&self, port: u16, backend: std::net::SocketAddr) -> bool {
        if self.sim.is_some() {
            return true;
        }
        if control_plane().is_none() {
            skip("a pod port standing in for a server needs zen-sim or cluster.sh's kwok");
            return false;
        }
        self.apply(&format!(
            "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterPortForward\nmetadata: {{name: {ns}-{port}, labels: {{{TEST_NAMESPACE}: {ns}}}}}\nspec:\n  selector: {{matchNamespaces: [{ns}]}}\n  forwards: [{{ports: [{port}], target: {{address: '{}', port: {}}}}}]\n",
            backend.ip(),
            backend.port(),
            ns = self.namespace,
        ));
        true
    }

    /// How long to sample usage that zen-sim reports anew every second: metrics-server reads
    /// each pod every 10 s, so on a real cluster two readings take 21 s.
    pub fn sample_for(&self, zen_sim: &'static str) -> &'static str {
        if self.sim.is_some() { zen_sim } else { "21s" }
    }

    /// Restarts the API server: zen-sim's restart fault, or kube-apiserver of
    /// `tests/control-plane/cluster.sh run` (`ZEN_TEST_CONTROL_PLANE`) killed and started again
    /// after `down_for`. Returns once it serves again; `false` (a skip noted) on another
    /// cluster, which the tests cannot restart.
    pub fn restart_api_server(&self, down_for: Duration) -> bool {
        if let Some(sim) = &self.sim {
            sim.restart(down_for);
            return true;
        }
        assert!(
            matches!(self.turn, Some(Turn::Alone(_))),
            "a test that restarts the API server starts with support::cluster_alone()"
        );
        let Some(dir) = control_plane() else {
            skip("restarting the API server needs zen-sim or tests/control-plane/cluster.sh");
            return false;
        };
        self.restarted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let status = Command::new("bash")
            .arg(CLUSTER_SH)
            .arg("restart-apiserver")
            .arg(dir)
            .arg(format!("{:.1}", down_for.as_secs_f64()))
            .status()
            .expect("cluster.sh runs");
        assert!(status.success(), "cluster.sh restart-apiserver: {status}");
        true
    }
}

const CLUSTER_SH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/control-plane/cluster.sh"
);

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.sim.is_some() {
            return;
        }
        // After a restart the next test waits until the cluster works end to end again.
        if let (true, Some(dir)) = (*self.restarted.get_mut(), control_plane()) {
            let settled = Command::new("bash")
                .arg(CLUSTER_SH)
                .arg("settle")
                .arg(dir)
                .status();
            assert!(
                settled.is_ok_and(|status| status.success()) || std::thread::panicking(),
                "the cluster did not settle after the API server restart"
            );
        }
        if control_plane().is_some() {
            let _ = self.kubectl(&[
                "delete",
                "clusterportforwards",
                "-l",
                &format!("{TEST_NAMESPACE}={}", self.namespace),
                "--ignore-not-found",
            ]);
        }
        let _ = self.kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `name` (`-INT`, `-TERM`) to `child`, as Ctrl-C or a pod's stop would.
pub fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The number written right after `prefix` in `text` (`rode out 2 watch errors`), if any.
pub fn number_after(text: &str, prefix: &str) -> Option<u64> {
    text.split(prefix)
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Text of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
