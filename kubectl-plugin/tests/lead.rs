//! `kubectl zen lead` as a user runs it: help, usage errors, `lead status` exit codes and
//! output, and the controller run until SIGINT, against zen-sim and the real control plane.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{BIN, TestCluster, text};

fn zen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the plugin runs")
}

/// A cluster with a pod and an opted-in Service selecting it in the test's namespace.
fn started() -> TestCluster {
    let cluster = support::cluster();
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-a, labels: {app: web}}\nspec: {containers: [{name: app, image: pause}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, annotations: {zen-lead.io/enabled: \"true\"}}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
    );
    cluster
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
    let cluster = started();
    let before = cluster.zen(&["lead", "status"]);
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
    let nowhere = format!("{}-empty", cluster.namespace());
    let empty = zen(&[
        "--kubeconfig",
        cluster.kubeconfig(),
        "-n",
        &nowhere,
        "lead",
        "status",
    ]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    assert!(
        text(&empty.stderr).contains(&format!("no Service in namespace {nowhere}")),
        "{}",
        text(&empty.stderr)
    );

    let controller = cluster
        .zen_command(&["lead", "--leader-elect=false"])
        .args(["--metrics-addr", "127.0.0.1:0", "--workers", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let out = cluster.zen(&["lead", "status", "-o", "json"]);
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
    let cluster = started();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = cluster.zen(&["lead", "--leader-elect=false", "--metrics-addr", &address]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot serve metrics") && stderr.contains("--metrics-addr"),
        "{stderr}"
    );
}
