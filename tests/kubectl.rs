//! Conformance through `kubectl`: what SREs type must behave the same on zen-sim and on a real
//! cluster (`ZEN_TEST_KUBECONFIG=...`). `.ci/run` installs kubectl.

mod support;

use std::process::Output;
use std::time::Duration;

use support::{TestCluster, cluster};

const WAIT: Duration = Duration::from_secs(60);

const MANIFESTS: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.9
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: web}}
data: {mode: fast}
";

/// Runs kubectl against the test's cluster and namespace, with a cache of the test's own.
async fn kubectl(test: &TestCluster, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    let cache = test.scratch().join("kubectl-cache");
    let mut command = tokio::process::Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(test.kubeconfig())
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--namespace", &test.namespace])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .expect("kubectl is on PATH (.ci/run installs it)");
    if let Some(mut input) = child.stdin.take()
        && let Some(text) = stdin
    {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn ok(test: &TestCluster, args: &[&str], stdin: Option<&str>) -> String {
    let output = kubectl(test, args, stdin).await;
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_and_delete() {
    let test = cluster().await;
    let created = ok(&test, &["apply", "-f", "-"], Some(MANIFESTS)).await;
    assert!(created.contains("deployment.apps/web created"), "{created}");
    assert!(
        created.contains("service/web created") && created.contains("configmap/settings created"),
        "{created}"
    );
    let again = ok(&test, &["apply", "-f", "-"], Some(MANIFESTS)).await;
    assert!(
        again.contains("deployment.apps/web unchanged")
            && again.contains("configmap/settings unchanged"),
        "{again}"
    );

    ok(
        &test,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ],
        None,
    )
    .await;
    let pods = ok(&test, &["get", "pods", "-l", "app=web"], None).await;
    let header: Vec<&str> = pods
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert_eq!(
        pods.lines()
            .filter(|line| line.contains("Running") && line.contains("1/1"))
            .count(),
        2,
        "{pods}"
    );
    let deployment = ok(&test, &["get", "deployment", "web"], None).await;
    assert!(
        deployment
            .lines()
            .nth(1)
            .is_some_and(|line| line.split_whitespace().nth(1) == Some("2/2")),
        "{deployment}"
    );

    let json: serde_json::Value = serde_json::from_str(
        &ok(&test, &["get", "configmap", "settings", "-o", "json"], None).await,
    )
    .unwrap();
    assert_eq!(json["data"]["mode"], "fast");
    let yaml = ok(&test, &["get", "configmap", "settings", "-o", "yaml"], None).await;
    assert!(yaml.contains("mode: fast"), "{yaml}");
    let names = ok(&test, &["get", "all", "-o", "name"], None).await;
    assert!(
        names.contains("deployment.apps/web") && names.contains("service/web"),
        "{names}"
    );

    let deleted = ok(
        &test,
        &["delete", "-f", "-", "--wait=true"],
        Some(MANIFESTS),
    )
    .await;
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    let missing = kubectl(&test, &["get", "configmap", "settings"], None).await;
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("NotFound") || text(&missing).contains("not found"),
        "{}",
        text(&missing)
    );
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_and_its_conflicts() {
    let test = cluster().await;
    let applied = ok(
        &test,
        &["apply", "--server-side", "-f", "-"],
        Some(MANIFESTS),
    )
    .await;
    assert!(
        applied.contains("configmap/settings serverside-applied"),
        "{applied}"
    );
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: safe}\n";
    let conflict = kubectl(
        &test,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "someone-else",
            "-f",
            "-",
        ],
        Some(other),
    )
    .await;
    assert!(!conflict.status.success());
    assert!(text(&conflict).contains("conflict"), "{}", text(&conflict));
    ok(
        &test,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "someone-else",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(other),
    )
    .await;
    let mode = ok(
        &test,
        &[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.mode}",
        ],
        None,
    )
    .await;
    assert_eq!(mode, "safe");
    let managed = ok(
        &test,
        &[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
            "--show-managed-fields",
        ],
        None,
    )
    .await;
    assert!(managed.contains("someone-else"), "{managed}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_changes() {
    let test = cluster().await;
    let cache = test.scratch().join("kubectl-cache");
    let mut watcher = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(test.kubeconfig())
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "--namespace",
            &test.namespace,
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ok(
        &test,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: b}\n"),
    )
    .await;
    ok(
        &test,
        &[
            "patch",
            "configmap",
            "watched",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"c"}}"#,
        ],
        None,
    )
    .await;
    ok(&test, &["delete", "configmap", "watched"], None).await;
    let stdout = watcher.stdout.take().unwrap();
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.iter().any(|line: &String| line.starts_with("DELETED")) {
        let mut line = String::new();
        let read = tokio::time::timeout_at(
            deadline,
            tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(_)) => {
                if line.contains("watched") {
                    seen.push(line.trim().to_owned());
                }
            }
            Ok(Err(error)) => panic!("{error}"),
        }
    }
    let _ = watcher.kill().await;
    let kinds: Vec<&str> = seen
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"], "{seen:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_and_rollout_status() {
    let test = cluster().await;
    ok(&test, &["apply", "-f", "-"], Some(MANIFESTS)).await;
    ok(&test, &["scale", "deployment/web", "--replicas=3"], None).await;
    let status = ok(
        &test,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    )
    .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let ready = ok(
        &test,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        None,
    )
    .await;
    assert_eq!(ready, "3");
    test.cleanup().await;
}

/// `kubectl get KIND NAME -o json`, parsed.
async fn object(test: &TestCluster, kind: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&ok(test, &["get", kind, name, "-o", "json"], None).await).unwrap()
}

/// The commands people type first. kubectl's typed commands send protobuf bodies and ask for
/// protobuf answers; every object reads back as kube-apiserver stores it, with the same
/// expectations on zen-sim and on the real control plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one command after another, each checked
async fn kubectl_everyday_commands_speak_protobuf_and_read_back_the_same() {
    use serde_json::json;
    let test = cluster().await;
    let made = format!("{}-made", test.namespace);
    let said = ok(&test, &["create", "namespace", &made], None).await;
    assert!(
        said.contains(&format!("namespace/{made} created")),
        "{said}"
    );
    let namespace = object(&test, "namespace", &made).await;
    assert_eq!(
        namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
        made.as_str()
    );
    assert_eq!(namespace["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(namespace["status"]["phase"], "Active");

    // Protobuf both ways: kubectl's log of the request and of the answer say so.
    let traced = kubectl(
        &test,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "-v=8",
        ],
        None,
    )
    .await;
    assert!(traced.status.success(), "{}", text(&traced));
    let log = String::from_utf8_lossy(&traced.stderr);
    let protobuf_headers = log
        .lines()
        .filter(|line| {
            line.contains("Content-Type") && line.contains("application/vnd.kubernetes.protobuf")
        })
        .count();
    assert!(
        protobuf_headers >= 2,
        "a protobuf request and answer: {log}"
    );
    assert_eq!(
        object(&test, "configmap", "settings").await["data"],
        json!({"mode": "fast"})
    );

    ok(
        &test,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=token=s3cret",
        ],
        None,
    )
    .await;
    let secret = object(&test, "secret", "creds").await;
    assert_eq!(
        secret["data"],
        json!({"token": "czNjcmV0"}),
        "base64, as stored"
    );
    assert_eq!(secret["type"], "Opaque");

    let image = "registry.k8s.io/pause:3.9";
    let said = ok(
        &test,
        &[
            "create",
            "deployment",
            "web",
            "--image",
            image,
            "--replicas=2",
            "--port=8080",
        ],
        None,
    )
    .await;
    assert!(said.contains("deployment.apps/web created"), "{said}");
    let deployment = object(&test, "deployment", "web").await;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(
        spec["template"]["metadata"],
        json!({"labels": {"app": "web"}}),
        "a zero creationTimestamp is omitted"
    );
    assert_eq!(spec["template"]["spec"]["containers"][0]["name"], "pause");
    assert_eq!(spec["template"]["spec"]["containers"][0]["image"], image);
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["resources"],
        json!({})
    );
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);

    let said = ok(
        &test,
        &[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ],
        None,
    )
    .await;
    assert!(said.contains("service/web exposed"), "{said}");
    let service = object(&test, "service", "web").await;
    assert_eq!(
        service["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(service["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(service["spec"]["type"], "ClusterIP");

    let said = ok(
        &test,
        &["run", "once", "--image", image, "--restart=Never"],
        None,
    )
    .await;
    assert!(said.contains("pod/once created"), "{said}");
    let pod = object(&test, "pod", "once").await;
    assert_eq!(pod["metadata"]["labels"]["run"], "once");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["containers"][0]["name"], "once");

    ok(&test, &["create", "job", "batch", "--image", image], None).await;
    let job = object(&test, "job", "batch").await;
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["name"],
        "batch"
    );
    for (field, value) in [("completions", 1), ("parallelism", 1), ("backoffLimit", 6)] {
        assert_eq!(job["spec"][field], value, "{field}");
    }

    ok(&test, &["create", "serviceaccount", "robot"], None).await;
    assert_eq!(
        object(&test, "serviceaccount", "robot").await["metadata"]["name"],
        "robot"
    );
    ok(
        &test,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        None,
    )
    .await;
    assert_eq!(
        object(&test, "role", "reader").await["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    );

    let said = ok(&test, &["scale", "deployment", "web", "--replicas=3"], None).await;
    assert!(said.contains("deployment.apps/web scaled"), "{said}");
    let newer = "registry.k8s.io/pause:3.10";
    let image_change = format!("pause={newer}");
    let said = ok(
        &test,
        &["set", "image", "deployment/web", &image_change],
        None,
    )
    .await;
    assert!(said.contains("deployment.apps/web image updated"), "{said}");
    let deployment = object(&test, "deployment", "web").await;
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        newer
    );

    ok(
        &test,
        &["label", "configmap", "settings", "tier=cache"],
        None,
    )
    .await;
    ok(
        &test,
        &["annotate", "configmap", "settings", "note=hi"],
        None,
    )
    .await;
    let settings = object(&test, "configmap", "settings").await;
    assert_eq!(settings["metadata"]["labels"], json!({"tier": "cache"}));
    assert_eq!(settings["metadata"]["annotations"], json!({"note": "hi"}));

    for (kind, name) in [
        ("configmap", "settings"),
        ("secret", "creds"),
        ("role", "reader"),
        ("serviceaccount", "robot"),
    ] {
        let said = ok(&test, &["delete", kind, name], None).await;
        assert!(said.contains(&format!("\"{name}\" deleted")), "{said}");
        let missing = kubectl(&test, &["get", kind, name], None).await;
        assert!(text(&missing).contains("NotFound"), "{}", text(&missing));
    }
    ok(&test, &["delete", "namespace", &made, "--wait=false"], None).await;
    test.cleanup().await;
}
