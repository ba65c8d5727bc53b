//! `kubectl zen lead` as a user runs it: help, usage errors, `lead status` exit codes and
//! output, and the controller run until SIGINT against zen-sim.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubezen::sim::{BackgroundSim, SimOptions};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

fn zen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the plugin runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// zen-sim with a pod and two opted-in Services (one selecting nothing) in `default`.
fn started() -> (BackgroundSim, tempfile::TempDir, String) {
    let sim = BackgroundSim::start(SimOptions::default()).expect("zen-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.sim().write_kubeconfig(&kubeconfig).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let mut apply = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(["apply", "-n", "default", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl is on PATH");
    std::io::Write::write_all(
        apply.stdin.as_mut().unwrap(),
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: web-a, labels: {app: web}}\nspec: {containers: [{name: app, image: pause}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, annotations: {zen-lead.io/enabled: \"true\"}}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
    )
    .unwrap();
    drop(apply.stdin.take());
    assert!(apply.wait().unwrap().success());
    (sim, dir, kubeconfig)
}

#[test]
fn help_teaches_the_annotations_flags_and_metrics() {
    let out = zen(&["lead", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "zen-lead.io/enabled",
        "zen-lead.io/min-ready-duration",
        "zen-lead.io/failover-min-delay",
        "--max-cache-size-per-namespace",
        "--leader-pod-cache-ttl-seconds",
        "--fast-retry-max-attempts",
        "--leader-election-id",
        "zen_lead_failover_latency_seconds",
        "kubectl zen lead status -A",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["lead", "--workers", "0"][..],
        &["lead", "--resync", "soon"],
        &["lead", "--metrics-addr", "nowhere"],
        &["lead", "--leader-elect", "maybe"],
    ] {
        let out = zen(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn status_says_what_is_missing_then_the_controller_fixes_it() {
    let (_sim, _dir, kubeconfig) = started();
    let before = zen(&["--kubeconfig", &kubeconfig, "lead", "status", "-A"]);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before.stderr));
    let table = text(&before.stdout);
    assert!(
        table.contains("NAMESPACE") && table.contains("PROBLEMS"),
        "{table}"
    );
    assert!(
        table.contains("does not exist (is `kubectl zen lead` running?)"),
        "{table}"
    );
    let empty = zen(&[
        "--kubeconfig",
        &kubeconfig,
        "-n",
        "kube-system",
        "lead",
        "status",
    ]);
    assert_eq!(empty.status.code(), Some(0));
    assert!(text(&empty.stderr).contains("no Service in namespace kube-system"));

    let controller = Command::new(BIN)
        .args(["--kubeconfig", &kubeconfig, "lead", "--leader-elect=false"])
        .args(["--metrics-addr", "127.0.0.1:0", "--workers", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let out = zen(&[
            "--kubeconfig",
            &kubeconfig,
            "lead",
            "status",
            "-A",
            "-o",
            "json",
        ]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if out.status.code() == Some(0) {
            break rows;
        }
        assert!(Instant::now() < deadline, "never healthy: {rows}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report[0]["leader"], "web-a", "{report}");
    assert_eq!(report[0]["leaderService"], "web-leader");
    assert_eq!(report[0]["endpoints"], 1);
    Command::new("kill")
        .args(["-INT", &controller.id().to_string()])
        .status()
        .unwrap();
    let out = controller.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no leader election"), "{stderr}");
    assert!(
        stderr.contains("zen-lead stopped:") && stderr.contains("0 errors"),
        "{stderr}"
    );
}

#[test]
fn an_unbindable_metrics_address_is_explained() {
    let (_sim, _dir, kubeconfig) = started();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = zen(&[
        "--kubeconfig",
        &kubeconfig,
        "lead",
        "--leader-elect=false",
        "--metrics-addr",
        &address,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot serve metrics") && stderr.contains("--metrics-addr"),
        "{stderr}"
    );
}
