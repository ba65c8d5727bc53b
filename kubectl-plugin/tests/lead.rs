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
    // The choice is an Event on the Service, as `kubectl describe service web` shows it.
    let elected = cluster.event("web", "LeaderElected");
    assert_eq!(elected["type"], "Normal", "{elected:#}");
    assert_eq!(
        elected["reportingComponent"], "kubectl-zen/zen-lead",
        "{elected:#}"
    );
    assert_eq!(elected["involvedObject"]["kind"], "Service", "{elected:#}");
    assert!(
        elected["message"]
            .as_str()
            .is_some_and(|m| m.contains("pod web-a leads") && m.contains("web-leader")),
        "{elected:#}"
    );
    support::signal(&controller, "-INT");
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

/// The JSON log lines of a controller, read from its standard error until `found` holds of
/// one of them (or `timeout` passes); every line must be a JSON object.
fn json_lines_until(
    stderr: std::process::ChildStderr,
    timeout: Duration,
    found: impl Fn(&serde_json::Value) -> bool + Send + 'static,
) -> Vec<serde_json::Value> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        let done = found(&value);
        lines.push(value);
        if done {
            break;
        }
    }
    lines
}

#[test]
fn a_write_rbac_denies_is_logged_as_json_and_an_event_naming_the_object_and_the_missing_rule() {
    let cluster = started();
    let user = format!("zen-test-denied-{}", cluster.namespace());
    deny_slice_patches(&cluster, &user);
    let kubeconfig = cluster.kubeconfig_as(&user);
    let mut controller = Command::new(BIN)
        .args(["--kubeconfig", &kubeconfig, "-n", cluster.namespace()])
        .args([
            "lead",
            "--leader-elect=false",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = controller.stderr.take().unwrap();
    let lines = json_lines_until(stderr, Duration::from_secs(30), |line| {
        line["level"] == "ERROR" && line["name"] == "web"
    });
    // And an Event on the Service says the same to `kubectl describe`.
    let denied_event = cluster.event("web", "PermissionDenied");
    assert_eq!(denied_event["type"], "Warning", "{denied_event:#}");
    assert!(
        denied_event["message"]
            .as_str()
            .is_some_and(|m| m.contains("403") && m.contains("endpointslices")),
        "{denied_event:#}"
    );
    support::signal(&controller, "-INT");
    let _ = controller.wait();
    let denied = lines
        .iter()
        .find(|line| line["level"] == "ERROR" && line["name"] == "web")
        .unwrap_or_else(|| panic!("no denial logged: {lines:#?}"));
    for (key, value) in [
        ("kind", "Service"),
        ("controller", "zen-lead"),
        ("verb", "patch"),
        ("resource", "endpointslices"),
        ("group", "discovery.k8s.io"),
        ("user", user.as_str()),
    ] {
        assert_eq!(denied[key], value, "{key}: {denied:#}");
    }
    assert_eq!(denied["namespace"], cluster.namespace(), "{denied:#}");
    assert_eq!(
        denied["denied_namespace"],
        cluster.namespace(),
        "{denied:#}"
    );
    assert_eq!(denied["status"], 403, "{denied:#}");
    let message = denied["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "permission denied reconciling Service {}/web",
            cluster.namespace()
        )) && message.contains("verbs: [\"patch\"]")
            && message.contains("retrying in 2s"),
        "{message}"
    );
    assert_status_shows_the_last_error(&cluster);
    for key in ["time", "level", "target", "message"] {
        assert!(
            lines.iter().all(|line| line.get(key).is_some()),
            "{key}: {lines:#?}"
        );
    }
    let started = &lines[0];
    assert!(
        started["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("zen-lead started:")),
        "{started:#}"
    );
    assert_eq!(started["election"], false);
    assert_no_credentials(&cluster, &lines);
}

/// No credential of the test's kubeconfig (token, client key or certificate, password) appears
/// in any of `lines`.
fn assert_no_credentials(cluster: &TestCluster, lines: &[serde_json::Value]) {
    // No credential of the kubeconfig in any line.
    let said = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let secrets: Vec<&str> = said
        .lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(": ")?;
            matches!(
                key,
                "token" | "client-key-data" | "client-certificate-data" | "password"
            )
            .then_some(value.trim())
        })
        .collect();
    let all = serde_json::to_string(lines).unwrap();
    for secret in secrets {
        assert!(!all.contains(secret), "a credential was logged");
    }
}

/// Binds `user` to a Role of everything zen-lead calls in the test's namespace (and Events), but
/// the patch of its `EndpointSlices`.
fn deny_slice_patches(cluster: &TestCluster, user: &str) {
    cluster.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: lead-but-slices}}\nrules:\n\
         - {{apiGroups: [\"\"], resources: [services], verbs: [get, list, watch, create, patch, delete]}}\n\
         - {{apiGroups: [\"\"], resources: [pods], verbs: [get, list, watch]}}\n\
         - {{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch, create, delete]}}\n\
         - {{apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}}\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: lead-but-slices}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: lead-but-slices}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
    ));
}

/// `lead status` shows the denial as the controller's last error on the Service `web`.
fn assert_status_shows_the_last_error(cluster: &TestCluster) {
    let status = cluster.zen(&["lead", "status", "-o", "json"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let web = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["service"] == "web"))
        .unwrap_or_else(|| panic!("{rows:#}"));
    assert!(
        web["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("PermissionDenied: ") && e.contains("403")),
        "{web:#}"
    );
    assert!(
        web["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p
                .as_str()
                .is_some_and(|p| p.starts_with("the controller's last error")))),
        "{web:#}"
    );
}

#[test]
fn an_injected_403_is_logged_as_a_permission_denial_once_not_per_retry() {
    let cluster = started();
    let Some(sim) = cluster.sim_only("injecting a 403") else {
        return;
    };
    sim.sim().faults().inject(kubezen::sim::Fault::on(
        "endpointslices",
        "patch",
        kubezen::sim::FaultAction::Status {
            code: 403,
            retry_after_seconds: None,
        },
    ));
    let mut controller = cluster
        .zen_command(&[
            "lead",
            "--leader-elect=false",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = controller.stderr.take().unwrap();
    // Retried every 2 s: 5 s is two or three failures, said once.
    let lines = json_lines_until(stderr, Duration::from_secs(5), |_| false);
    support::signal(&controller, "-INT");
    let _ = controller.wait();
    let denials: Vec<_> = lines
        .iter()
        .filter(|line| line["name"] == "web" && line["status"] == 403)
        .collect();
    assert_eq!(denials.len(), 1, "said once, not per retry: {lines:#?}");
    let denial = denials[0];
    assert_eq!(denial["level"], "ERROR", "{denial:#}");
    assert_eq!(denial["kind"], "Service");
    assert_eq!(denial["namespace"], cluster.namespace());
    let message = denial["message"].as_str().unwrap();
    assert!(
        message.starts_with("permission denied reconciling Service")
            && message.contains("apply EndpointSlice")
            && message.contains("403"),
        "{message}"
    );
}
