//! `kubectl zen tune` as a user runs it: manifests linted with exit codes and every output
//! format, usage errors, gateway and controller sizing, and against a cluster's metrics a snapshot
//! recorded and analysed offline, patches written, and Ctrl-C while sampling.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{BIN, TestCluster, text};
const MANIFESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/tune/manifests.yaml"
);

fn zen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the plugin runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn manifests_are_linted_in_every_format_and_errors_exit_one() {
    let table = zen(&["tune", "-f", MANIFESTS]);
    assert_eq!(
        table.status.code(),
        Some(1),
        "error findings: {}",
        text(&table.stderr)
    );
    let stdout = text(&table.stdout);
    assert!(
        stdout.starts_with("source: manifests\nWORKLOAD"),
        "{stdout}"
    );
    assert!(stdout.contains("requests over 5 workloads"), "{stdout}");
    assert!(stdout.contains("pdb-blocks-eviction"), "{stdout}");
    let report = json(&zen(&["tune", "-f", MANIFESTS, "-o", "json"]));
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "pdb-blocks-eviction",
        "heap-above-limit",
        "hpa-without-request",
        "best-effort",
        "limit-request-ratio",
        "single-replica-behind-service",
        "no-pdb",
    ] {
        assert!(checks.contains(&check), "{check} in {checks:?}");
    }
    assert_eq!(
        report["findings"][0]["severity"], "error",
        "most severe first"
    );
    let cron = report["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"]["kind"] == "CronJob")
        .unwrap();
    assert_eq!(cron["basis"], "preset:background-job");
    let csv = zen(&["tune", "-f", MANIFESTS, "-o", "csv", "deploy/web"]);
    let lines: Vec<String> = text(&csv.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "namespace,kind,workload,container,role,replicas,cpu_request,cpu_request_new"
    ));
    assert!(
        lines[1].starts_with("shop,Deployment,web,app,main,3,250,,2000,"),
        "{}",
        lines[1]
    );
    let yaml = zen(&["tune", "-f", MANIFESTS, "-o", "yaml", "worker"]);
    assert!(
        text(&yaml.stdout).contains("check: best-effort"),
        "{}",
        text(&yaml.stdout)
    );
    // A preset with --profile gives every workload without usage a number.
    let preset = json(&zen(&[
        "tune",
        "-f",
        MANIFESTS,
        "--profile",
        "web-api",
        "-o",
        "json",
        "deploy/worker",
    ]));
    assert_eq!(
        preset["recommendations"][0]["recommended"]["cpu_request"],
        100.0
    );
}

#[test]
fn bad_flags_and_inputs_say_what_to_fix() {
    let usage = |args: &[&str], expected: &str| {
        let out = zen(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    };
    usage(
        &["tune", "--cpu-limit", "ratio=0.5", "-f", MANIFESTS],
        "the CPU limit ratio must be from 1 to 100",
    );
    usage(
        &["tune", "--cpu-limit", "half", "-f", MANIFESTS],
        "is not none or ratio=R",
    );
    usage(
        &["tune", "--profile", "webapi", "-f", MANIFESTS],
        "use one of web-api, heavy-compute",
    );
    usage(
        &["tune", "--cpu-percentile", "0", "-f", MANIFESTS],
        "the CPU percentile must be above 0",
    );
    usage(
        &["tune", "-f", MANIFESTS, "--snapshot", "x"],
        "cannot be used with",
    );
    usage(&["tune", "--yes"], "--apply");
    usage(
        &["tune", "--history", "2 weeks", "--snapshot", "x"],
        "unknown unit",
    );
    usage(
        &["tune", "gateway", "--rps", "10", "-o", "csv"],
        "-o csv is for the recommendations",
    );
    usage(
        &["tune", "--prometheus", "http://p:9090", "--step", "30s"],
        "--step must be whole minutes from 1m to 1h",
    );
    usage(
        &["tune", "--prometheus", "http://p:9090", "--history", "500d"],
        "--history must be from one step to 400d",
    );
    usage(
        &["tune", "--prometheus", "http://me:secret@p:9090"],
        "carries credentials in its URL",
    );
    usage(
        &["tune", "--prometheus", "ftp://p"],
        "is not an http:// or https:// URL",
    );
    usage(
        &["tune", "--every", "0s"],
        "the sampling interval (--every) must be above 0",
    );
    let missing = zen(&["tune", "--snapshot", "/nonexistent/snap"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("/nonexistent/snap: no such directory"),
        "{}",
        text(&missing.stderr)
    );
    let unknown = zen(&["tune", "-f", MANIFESTS, "deploy/nothing"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no workload named deploy/nothing"),
        "{}",
        text(&unknown.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: [oops\n",
    )
    .unwrap();
    let out = zen(&["tune", "-f", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("broken.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn gateways_and_controllers_are_sized_from_the_guides_tables() {
    let gateway = json(&zen(&[
        "tune",
        "gateway",
        "--rps",
        "3000",
        "--concurrency",
        "10000",
        "-o",
        "json",
    ]));
    assert_eq!(
        (
            gateway["min_replicas"].as_u64(),
            gateway["max_replicas"].as_u64()
        ),
        (Some(5), Some(10))
    );
    assert_eq!(gateway["redis_pool_size"], 110);
    assert_eq!(gateway["load_level"], "very heavy");
    let table = text(&zen(&["tune", "gateway", "--rps", "50"]).stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("cache ttl: subscriptions"))
        .unwrap_or_default();
    assert!(line.contains(" 30s "), "{table}");
    let controller = json(&zen(&[
        "tune",
        "controller",
        "--objects",
        "5000",
        "--cores",
        "8",
        "-o",
        "json",
    ]));
    let value = |name: &str| {
        controller["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        (value("--qps"), value("--burst"), value("--workers")),
        ("100".into(), "200".into(), "6".into())
    );
}

/// A cluster with a Deployment of two pods using 150m and 80Mi each (zen-sim's annotations,
/// which kwok reports behind metrics-server on the real control plane), once their metrics are
/// served.
fn cluster_with_workload() -> TestCluster {
    let cluster = support::cluster();
    cluster.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n      annotations: {zen-sim.kubezen.io/cpu: 150m, zen-sim.kubezen.io/memory: 80Mi}\n    spec:\n      containers:\n      - {name: app, image: web, resources: {requests: {cpu: '1', memory: 1Gi}, limits: {memory: 1Gi}}}\n",
    );
    let pods = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
        cluster.namespace()
    );
    support::eventually(Duration::from_secs(60), "the pods' metrics", || {
        let out = cluster.kubectl(&["get", "--raw", &pods]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|list| {
            list["items"]
                .as_array()
                .is_some_and(|items| items.len() >= 2)
        })
    });
    cluster
}

#[test]
fn a_snapshot_is_recorded_live_and_analysed_offline_with_patches() {
    let cluster = cluster_with_workload();
    let ns = cluster.namespace().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let snap = snap.to_str().unwrap();
    let recorded = cluster.zen(&[
        "tune",
        "snapshot",
        snap,
        "--sample-for",
        cluster.sample_for("3s"),
        "--every",
        "250ms",
    ]);
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));
    assert!(
        text(&recorded.stderr).contains("recorded 1 workloads and"),
        "{}",
        text(&recorded.stderr)
    );
    drop(cluster);
    // Offline now: the cluster is gone.
    let patches = dir.path().join("patches");
    let out = zen(&[
        "tune",
        "--snapshot",
        snap,
        "--min-samples",
        "4",
        "-o",
        "json",
        "--patch",
        patches.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out);
    assert!(
        report["source"].as_str().unwrap().starts_with("snapshot "),
        "{}",
        report["source"]
    );
    let rec = &report["recommendations"][0];
    let cpu = rec["recommended"]["cpu_request"].as_f64().unwrap();
    assert!((120.0..=181.0).contains(&cpu), "{rec}");
    assert_eq!(rec["confidence"], "low");
    let patch =
        std::fs::read_to_string(patches.join(format!("patches/{ns}.deployment.web.yaml"))).unwrap();
    assert!(
        patch.contains("kind: Deployment") && patch.contains("- name: app"),
        "{patch}"
    );
    assert!(patches.join("kustomization.yaml").is_file());
    // Too few samples: no number, and why.
    let strict = json(&zen(&["tune", "--snapshot", snap, "-o", "json"]));
    let reason = strict["recommendations"][0]["cpu_reason"].as_str().unwrap();
    assert!(reason.contains("(needs 100, --min-samples)"), "{reason}");
}

#[test]
fn ctrl_c_while_sampling_analyses_what_was_sampled() {
    let cluster = cluster_with_workload();
    let child = cluster
        .zen_command(&[
            "tune",
            "--sample-for",
            "5m",
            "--every",
            "250ms",
            "--min-samples",
            "2",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it stopped sampling at once"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("interrupted: analysing what was sampled"),
        "{}",
        text(&out.stderr)
    );
    let report = json(&out);
    assert!(
        report["recommendations"][0]["recommended"]["cpu_request"].is_number(),
        "{report}"
    );
}

#[test]
fn apply_shows_the_diff_and_writes_only_with_consent() {
    let cluster = cluster_with_workload();
    let ns = cluster.namespace().to_owned();
    let args = [
        "tune",
        "deploy/web",
        "--sample-for",
        cluster.sample_for("2s"),
        "--every",
        "250ms",
        "--min-samples",
        "2",
        "--apply",
    ];
    // No terminal to ask on: refused before anything is read.
    let unasked = cluster.zen(&args);
    assert_eq!(unasked.status.code(), Some(2), "{}", text(&unasked.stderr));
    assert!(
        text(&unasked.stderr).contains("add --yes"),
        "{}",
        text(&unasked.stderr)
    );
    // kubectl apply (client-side) owns the fields: a conflict, said as such, and nothing written.
    let conflicted = cluster.zen(&[&args[..], &["--yes"]].concat());
    assert_eq!(
        conflicted.status.code(),
        Some(1),
        "{}",
        text(&conflicted.stderr)
    );
    assert!(
        text(&conflicted.stderr).contains("--force-conflicts takes them over"),
        "{}",
        text(&conflicted.stderr)
    );
    let cpu = || {
        let out = cluster.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].resources.requests.cpu}",
        ]);
        text(&out.stdout)
    };
    assert_eq!(cpu(), "1");
    let applied = cluster.zen(&[&args[..], &["--yes", "--force-conflicts"]].concat());
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let stderr = text(&applied.stderr);
    assert!(
        stderr.contains(&format!("--- {ns}/deployment/web"))
            && stderr.contains("-            cpu: '1'"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{ns}/deployment/web: applied")),
        "{stderr}"
    );
    let after = cpu();
    assert!(after.ends_with('m') && after != "1", "{after}");
}
