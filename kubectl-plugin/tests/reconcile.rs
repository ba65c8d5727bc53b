//! `kubectl zen reconcile` as a user runs it: offline rendering, usage and instance errors with
//! their exit codes, and a live apply, re-apply, diff and delete against zen-sim.

use std::process::{Command, Output};

use kubezen::sim::{BackgroundSim, SimOptions};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");
const RGD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rgd/web-app.yaml");
const INSTANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/reconcile/web-app-instance.yaml"
);

fn zen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the plugin runs")
}

/// zen-sim on threads of its own, with its kubeconfig in the directory as `kubeconfig`.
fn started() -> (BackgroundSim, tempfile::TempDir) {
    let sim = BackgroundSim::start(SimOptions::default()).expect("zen-sim starts");
    let dir = tempfile::tempdir().unwrap();
    sim.sim()
        .write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    (sim, dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dry_run_prints_a_yaml_stream_without_a_cluster() {
    let out = zen(&[
        "reconcile",
        "-f",
        RGD,
        "-i",
        INSTANCE,
        "--dry-run",
        "-n",
        "shop-ns",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("---\n# config (level 0)\n"), "{stdout}");
    assert!(
        stdout.contains("# ingress (level 3): excluded by includeWhen"),
        "{stdout}"
    );
    assert!(stdout.contains("namespace: shop-ns"), "{stdout}");
    assert!(
        stdout.contains("#   url: http://shop.shop-ns.svc:8080"),
        "{stdout}"
    );
    let json = zen(&[
        "reconcile",
        "-f",
        RGD,
        "-i",
        INSTANCE,
        "--dry-run",
        "-o",
        "json",
    ]);
    let rendering: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        rendering["resources"][1]["objects"][0]["kind"],
        "Deployment"
    );
}

#[test]
fn usage_and_instance_errors_say_what_to_fix() {
    let missing = zen(&["reconcile", "-f", RGD]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("-i INSTANCE"),
        "{}",
        text(&missing.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: kro.run/v1alpha1\nkind: WebApp\nmetadata: {name: x}\nspec: {name: x, port: 0, extra: 1}\n",
    )
    .unwrap();
    let out = zen(&[
        "reconcile",
        "-f",
        RGD,
        "-i",
        bad.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "spec.image: Required value",
        "spec.port",
        "spec.extra: unknown field",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    let both = zen(&[
        "reconcile",
        "-f",
        RGD,
        "-i",
        INSTANCE,
        "--dry-run",
        "--delete",
    ]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn apply_reapply_diff_and_delete_against_zen_sim() {
    let (sim, dir) = started();
    let kubeconfig = dir.path().join("kubeconfig");
    let kc = kubeconfig.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["reconcile", "--kubeconfig", kc, "-f", RGD, "-i", INSTANCE];
        args.extend_from_slice(extra);
        zen(&args)
    };
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("Deployment/shop") && stdout.contains("created"),
        "{stdout}"
    );
    assert!(
        stdout.contains("state: ACTIVE") && stdout.contains("availableReplicas: 1"),
        "{stdout}"
    );
    let stderr = text(&first.stderr);
    assert!(
        stderr.contains("level 1/4: config") && stderr.contains("done in"),
        "{stderr}"
    );

    let again = run(&["-o", "json"]);
    assert!(again.status.success());
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["writes"], 0, "{report}");

    let diff = run(&["--diff"]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "no changes: {}",
        text(&diff.stdout)
    );
    let changed = dir.path().join("changed.yaml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(INSTANCE)
            .unwrap()
            .replace("min: 1", "min: 2"),
    )
    .unwrap();
    let diff = zen(&[
        "reconcile",
        "--kubeconfig",
        kc,
        "-f",
        RGD,
        "-i",
        changed.to_str().unwrap(),
        "--diff",
    ]);
    assert_eq!(diff.status.code(), Some(1), "changes found exit 1");
    assert!(
        text(&diff.stdout).contains("+  replicas: 2"),
        "{}",
        text(&diff.stdout)
    );

    let deleted = run(&["--delete"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(
        text(&deleted.stdout).contains("deleted WebApp/shop"),
        "{}",
        text(&deleted.stdout)
    );
    sim.stop();
}

/// One request to zen-sim over plain HTTP, with a JSON body or none; the whole answer.
fn request(url: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> String {
    use std::io::{Read as _, Write as _};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = body.map(ToString::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn graphs_are_read_from_the_cluster_as_rgd_name() {
    let (sim, dir) = started();
    let kubeconfig = dir.path().join("kubeconfig");
    let kc = kubeconfig.to_str().unwrap();
    let missing = zen(&["graph", "inspect", "rgd/web-app", "--kubeconfig", kc]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("cannot read rgd/web-app from"),
        "{}",
        text(&missing.stderr)
    );
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "resourcegraphdefinitions.kro.run"},
        "spec": {"group": "kro.run", "scope": "Cluster",
                 "names": {"kind": "ResourceGraphDefinition", "plural": "resourcegraphdefinitions", "singular": "resourcegraphdefinition", "shortNames": ["rgd"]},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    let url = sim.sim().url().to_owned();
    assert!(
        request(
            &url,
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(&crd)
        )
        .contains(" 201 ")
    );
    let rgd: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(RGD).unwrap()).unwrap();
    let mut created = String::new();
    for _ in 0..50 {
        created = request(
            &url,
            "POST",
            "/apis/kro.run/v1alpha1/resourcegraphdefinitions",
            Some(&rgd),
        );
        if created.contains(" 201 ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(created.contains(" 201 "), "{created}");
    let inspected = zen(&["graph", "inspect", "rgd/web-app", "--kubeconfig", kc]);
    assert!(inspected.status.success(), "{}", text(&inspected.stderr));
    assert!(
        text(&inspected.stdout).contains("disruptionBudget"),
        "{}",
        text(&inspected.stdout)
    );
    let rendered = zen(&[
        "reconcile",
        "-f",
        "rgd/web-app",
        "-i",
        INSTANCE,
        "--kubeconfig",
        kc,
        "--dry-run",
    ]);
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    assert!(text(&rendered.stdout).contains("kind: Deployment"));
    sim.stop();
}

/// A graph whose second resource waits on a readiness that never comes.
const STUCK: &str = r#"apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {name: stuck}
spec:
  schema:
    apiVersion: v1alpha1
    kind: Stuck
    spec: {name: string | required=true}
  resources:
    - id: gate
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${schema.spec.name}-gate"}
      readyWhen:
        - ${has(gate.data) && gate.data.open == "yes"}
    - id: after
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${gate.metadata.name}-after"}
"#;

#[test]
fn failures_exit_1_and_ctrl_c_stops_the_run() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let (sim, dir) = started();
    let kubeconfig = dir.path().join("kubeconfig");
    let kc = kubeconfig.to_str().unwrap();
    let rgd = dir.path().join("stuck.yaml");
    std::fs::write(&rgd, STUCK).unwrap();
    let instance = dir.path().join("instance.yaml");
    std::fs::write(
        &instance,
        "apiVersion: kro.run/v1alpha1\nkind: Stuck\nmetadata: {name: s}\nspec: {name: s}\n",
    )
    .unwrap();
    let args = [
        "reconcile",
        "--kubeconfig",
        kc,
        "-f",
        rgd.to_str().unwrap(),
        "-i",
        instance.to_str().unwrap(),
    ];

    let timed_out = zen(&[&args[..], &["--timeout", "1s"]].concat());
    assert_eq!(timed_out.status.code(), Some(1), "a failure exits 1");
    assert!(
        text(&timed_out.stdout).contains("not ready before the timeout"),
        "{}",
        text(&timed_out.stdout)
    );

    // A second instance, whose gate the first run did not make.
    std::fs::write(
        &instance,
        "apiVersion: kro.run/v1alpha1\nkind: Stuck\nmetadata: {name: t}\nspec: {name: t}\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the gate exists it is waiting for it: interrupt it as Ctrl-C does.
    let url = sim.sim().url().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !request(
        &url,
        "GET",
        "/api/v1/namespaces/default/configmaps/t-gate",
        None,
    )
    .contains(" 200 ")
    {
        assert!(Instant::now() < deadline, "the gate was never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("interrupted: finishing the writes in flight"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert!(stdout.contains("interrupted while waiting for"), "{stdout}");
    sim.stop();
}
