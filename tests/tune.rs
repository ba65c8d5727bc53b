//! Tune against a live API server (zen-sim, or `ZEN_TEST_KUBECONFIG`'s cluster) and a real
//! Prometheus (Debian's `prometheus` package, history backfilled with `promtool`): usage from
//! metrics.k8s.io and from Prometheus with known right answers, snapshots recorded and read
//! back, HPAs/PDBs/Services found through the API, patches applied with server-side apply,
//! and API faults retried.

mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kubezen::quantity::MIB;
use kubezen::sim::{Fault, FaultAction};
use kubezen::tune::{
    self, Confidence, Inventory, Options, Report, SeriesKey, TuneError, Usage, WorkloadKind, live,
    prometheus, snapshot,
};
use serde_json::{Value, json};
use support::{TestCluster, cluster, eventually, object, unused_addresses};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

fn deployment(test: &TestCluster, name: &str, replicas: u32, usage: (&str, &str)) -> Deployment {
    object(json!({
        "metadata": {"name": name, "namespace": test.namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"zen-sim.kubezen.io/cpu": usage.0, "zen-sim.kubezen.io/memory": usage.1}},
                "spec": {"containers": [{
                    "name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
                }]}
            }
        }
    }))
}

async fn running_pods(test: &TestCluster, app: &str, count: usize) {
    let pods = test.api::<Pod>();
    eventually(Duration::from_secs(60), "pods running", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running >= count).then_some(())
        }
    })
    .await;
    if test.sim.is_some() {
        return;
    }
    // metrics-server serves a pod's usage two scrapes (10 s apart) after it runs.
    let metrics: Api<DynamicObject> = Api::namespaced_with(
        test.client.clone(),
        &test.namespace,
        &ApiResource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "metrics.k8s.io/v1beta1".into(),
            kind: "PodMetrics".into(),
            plural: "pods".into(),
        },
    );
    eventually(Duration::from_secs(60), "the pods' metrics", || {
        let metrics = metrics.clone();
        async move {
            match metrics
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
            {
                Ok(list) => (list.items.len() >= count).then_some(()),
                // A cluster without metrics-server: `sample` says so.
                Err(kube::Error::Api(status)) if status.code == 404 => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;
}

/// How long to sample for `seconds` of zen-sim's readings (a new one every second): on a real
/// cluster, metrics-server reads each pod every 10 s, so it takes 21 s to see two.
fn sampling_seconds(test: &TestCluster, seconds: u64) -> u64 {
    if test.sim.is_some() { seconds } else { 21 }
}

fn scope(test: &TestCluster) -> live::Scope {
    live::Scope {
        namespace: Some(test.namespace.clone()),
        selector: None,
    }
}

fn sampling(seconds: u64) -> live::UsageSource {
    live::UsageSource::Metrics(live::Sampling {
        duration: Duration::from_secs(seconds),
        every: Duration::from_millis(250),
    })
}

fn quick() -> Options {
    Options {
        min_samples: 2,
        ..Options::default()
    }
}

/// Samples `test`'s namespace; `None` (with a note) on a real cluster without metrics-server.
async fn sample(
    test: &TestCluster,
    inventory: &Inventory,
    sink: &mut dyn live::Sink,
    seconds: u64,
) -> Option<String> {
    let measured = live::measure(
        &test.cluster,
        inventory,
        &scope(test),
        &sampling(sampling_seconds(test, seconds)),
        &CancellationToken::new(),
        sink,
        &mut |_| {},
    )
    .await;
    match measured {
        Ok(source) => Some(source),
        Err(TuneError::Api(message)) if test.sim.is_none() && message.contains("not served") => {
            support::skip("the cluster serves no metrics.k8s.io");
            None
        }
        Err(error) => panic!("sampling failed: {error}"),
    }
}

#[tokio::test]
async fn live_usage_from_the_metrics_api_becomes_recommendations() {
    let test = cluster().await;
    test.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(&test, "web", 2, ("200m", "100Mi")),
        )
        .await
        .unwrap();
    running_pods(&test, "web", 2).await;
    let inventory = live::inventory(&test.cluster, &scope(&test)).await.unwrap();
    assert_eq!(
        inventory.workloads().len(),
        1,
        "the ReplicaSet is the Deployment's, not a workload"
    );
    let mut usage = Usage::new();
    let Some(source) = sample(&test, &inventory, &mut usage, 3).await else {
        return test.cleanup().await;
    };
    let seconds = sampling_seconds(&test, 3);
    assert!(
        source.starts_with(&format!("metrics.k8s.io ({seconds}s every 250ms, ")),
        "{source}"
    );
    let report = tune::analyse(&inventory, Some(&usage), &quick(), &source);
    let rec = &report.recommendations[0];
    assert_eq!(rec.workload.name, "web");
    let summary = rec.usage.expect("usage was sampled");
    assert_eq!(summary.pods, 2);
    // A pod's metrics are new once a second on zen-sim (once a scrape on metrics-server):
    // repeated readings are not counted twice.
    assert!((4..=10).contains(&summary.cpu_samples), "{summary:?}");
    assert_eq!(usage.unmatched, 0);
    if test.sim.is_some() {
        // zen-sim's usage: the annotation's level, +-20 % (CPU) and +-5 % (memory).
        let cpu = rec.recommended.cpu_request.unwrap();
        assert!((160.0..=241.0).contains(&cpu), "{cpu}");
        let memory = rec.recommended.memory_request.unwrap() / MIB;
        assert!((109.0..=122.0).contains(&memory), "{memory}");
        assert_eq!(rec.confidence, Some(Confidence::Low));
        assert!(rec.changes);
        assert!(report.totals.cpu_after < report.totals.cpu_before);
    }
    test.cleanup().await;
}

/// Samples into both sketches and a snapshot at once.
struct Both<'a>(&'a mut Usage, &'a mut snapshot::Writer);

impl live::Sink for Both<'_> {
    fn sample(
        &mut self,
        key: &SeriesKey,
        timestamp: i64,
        cpu: Option<f64>,
        memory: Option<f64>,
    ) -> Result<(), TuneError> {
        self.0.sample(key, timestamp, cpu, memory)?;
        self.1.sample(key, timestamp, cpu, memory)
    }
}

#[tokio::test]
async fn a_snapshot_reads_back_to_the_same_report() {
    let test = cluster().await;
    test.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(&test, "api", 2, ("300m", "200Mi")),
        )
        .await
        .unwrap();
    running_pods(&test, "api", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut objects = Vec::new();
    live::list_objects(&test.cluster, &scope(&test), |o| objects.push(o))
        .await
        .unwrap();
    let meta = snapshot::Meta::now(
        "metrics.k8s.io",
        test.cluster.server(),
        Duration::from_millis(250),
    );
    let mut writer = snapshot::Writer::create(dir.path(), &meta).unwrap();
    for o in &objects {
        writer.object(o).unwrap();
    }
    let inventory = Inventory::from_objects(objects, &test.namespace);
    let mut usage = Usage::new();
    if sample(&test, &inventory, &mut Both(&mut usage, &mut writer), 2)
        .await
        .is_none()
    {
        return test.cleanup().await;
    }
    let written = writer.finish().unwrap();
    let read = snapshot::read(dir.path(), &|| false).unwrap();
    assert_eq!(read.samples, written);
    assert_eq!(read.meta.source, "metrics.k8s.io");
    let live = tune::analyse(&inventory, Some(&usage), &quick(), "live");
    let offline = tune::analyse(&read.inventory, Some(&read.usage), &quick(), "snapshot");
    assert_eq!(live.recommendations, offline.recommendations);
    assert_eq!(live.findings, offline.findings);
    assert!(live.recommendations[0].recommended.cpu_request.is_some());
    test.cleanup().await;
}

#[tokio::test]
async fn autoscalers_budgets_and_services_are_found_through_the_api() {
    let test = cluster().await;
    let ns = test.namespace.clone();
    test.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(&test, "web", 3, ("100m", "64Mi")),
        )
        .await
        .unwrap();
    let pp = PostParams::default();
    test.api::<HorizontalPodAutoscaler>()
        .create(&pp, &object(json!({"metadata": {"name": "web", "namespace": ns},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 6,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]}})))
        .await
        .unwrap();
    test.api::<PodDisruptionBudget>()
        .create(
            &pp,
            &object(json!({"metadata": {"name": "web", "namespace": ns},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}})),
        )
        .await
        .unwrap();
    test.api::<Service>()
        .create(
            &pp,
            &object(json!({"metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})),
        )
        .await
        .unwrap();
    test.api::<StatefulSet>()
        .create(&pp, &object(json!({"metadata": {"name": "db", "namespace": ns},
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "registry.k8s.io/pause:3.10",
                                      "env": [{"name": "GOMEMLIMIT", "value": "3GiB"}],
                                      "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}}]}}}})))
        .await
        .unwrap();
    let inventory = live::inventory(&test.cluster, &scope(&test)).await.unwrap();
    let web = inventory
        .workloads()
        .iter()
        .find(|w| w.id.name == "web")
        .unwrap();
    assert_eq!(
        web.autoscaler
            .as_ref()
            .map(|a| (a.min_replicas, a.max_replicas, a.cpu_utilization)),
        Some((2, 6, Some(60)))
    );
    assert_eq!(web.budgets.len(), 1);
    assert_eq!(web.services, ["web"]);
    let report = tune::analyse(&inventory, None, &Options::default(), "live");
    let checks: Vec<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.workload.name.as_str(), f.check.as_str()))
        .collect();
    for expected in [
        ("web", "pdb-blocks-eviction"),
        ("db", "heap-above-limit"),
        ("web", "missing-readiness-probe"),
    ] {
        assert!(checks.contains(&expected), "{expected:?} in {checks:?}");
    }
    let mut narrowed = inventory.clone();
    narrowed.select(&["sts/db".to_owned()]).unwrap();
    assert_eq!(narrowed.workloads().len(), 1);
    assert!(narrowed.clone().select(&["deploy/db".to_owned()]).is_err());
    test.cleanup().await;
}

#[tokio::test]
async fn controllers_are_sized_from_object_counts_listed_page_by_page() {
    let test = cluster().await;
    let configmaps = test.api::<k8s_openapi::api::core::v1::ConfigMap>();
    for i in 0..7 {
        configmaps
            .create(
                &PostParams::default(),
                &object(
                    json!({"metadata": {"name": format!("c{i}")}, "data": {"k": "v".repeat(100)}}),
                ),
            )
            .await
            .unwrap();
    }
    let kinds = vec!["configmaps".to_owned()];
    let load = live::count_objects(&test.cluster, Some(&test.namespace), &kinds, 4)
        .await
        .unwrap();
    // Seven of ours, and the namespace's kube-root-ca.crt where a control plane publishes it.
    assert!((7..=8).contains(&load.objects), "{load:?}");
    assert_eq!(load.largest_namespace, load.objects);
    assert!(load.mean_object_bytes > 100, "{load:?}");
    let advice = tune::presets::controller(load);
    assert_eq!(advice.settings[0].value, "50");
    let error = live::count_objects(&test.cluster, None, &["gadgets".to_owned()], 4)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot count \"gadgets\": use plural names among pods, services"),
        "{error}"
    );
    test.cleanup().await;
}

#[tokio::test]
async fn patches_apply_only_resources_with_the_kubectl_zen_field_manager() {
    let test = cluster().await;
    let api = test.api::<Deployment>();
    api.create(
        &PostParams::default(),
        &deployment(&test, "web", 2, ("50m", "64Mi")),
    )
    .await
    .unwrap();
    running_pods(&test, "web", 2).await;
    let inventory = live::inventory(&test.cluster, &scope(&test)).await.unwrap();
    let mut usage = Usage::new();
    if sample(&test, &inventory, &mut usage, 2).await.is_none() {
        return test.cleanup().await;
    }
    let report = tune::analyse(&inventory, Some(&usage), &quick(), "live");
    let patches = report.patches();
    assert_eq!(patches.len(), 1);
    // A dry run shows the change and writes nothing.
    let preview = tune::apply::apply(&test.cluster, &patches, true, true).await;
    assert!(preview[0].error.is_none(), "{preview:?}");
    assert!(
        preview[0].diff.contains("-            cpu: 500m"),
        "{}",
        preview[0].diff
    );
    let live = api.get("web").await.unwrap();
    assert_eq!(resources(&live)["requests"]["cpu"], "500m");
    // For real: the resources change, nothing else does, and kubectl-zen owns them.
    let applied = tune::apply::apply(&test.cluster, &patches, false, true).await;
    assert!(applied[0].error.is_none(), "{applied:?}");
    let after = api.get("web").await.unwrap();
    let cpu = resources(&after)["requests"]["cpu"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(cpu, "500m");
    assert_eq!(after.spec.replicas, Some(2));
    assert_eq!(
        after.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("registry.k8s.io/pause:3.10")
    );
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"kubectl-zen".to_owned()), "{managers:?}");
    // Applying again changes nothing.
    let again = tune::apply::apply(&test.cluster, &patches, true, true).await;
    assert_eq!(again[0].diff, "", "{}", again[0].diff);
    test.cleanup().await;
}

fn resources(deployment: &Deployment) -> Value {
    serde_json::to_value(&deployment.spec.template.spec.as_ref().unwrap().containers[0].resources)
        .unwrap()
}

#[tokio::test]
async fn api_faults_while_listing_and_sampling_are_retried() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("injecting 429 and 503") else {
        return test.cleanup().await;
    };
    test.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(&test, "web", 1, ("100m", "64Mi")),
        )
        .await
        .unwrap();
    running_pods(&test, "web", 1).await;
    let status = |code, retry_after_seconds| FaultAction::Status {
        code,
        retry_after_seconds,
    };
    sim.faults()
        .inject(Fault::on("deployments", "list", status(429, Some(1))).times(1));
    sim.faults()
        .inject(Fault::on("pods", "list", status(503, None)).times(2));
    let before = test.cluster.stats();
    let inventory = live::inventory(&test.cluster, &scope(&test)).await.unwrap();
    let mut usage = Usage::new();
    sample(&test, &inventory, &mut usage, 2).await.unwrap();
    let after = test.cluster.stats();
    assert!(after.retries >= before.retries + 3, "{after:?}");
    let report = tune::analyse(&inventory, Some(&usage), &quick(), "live");
    assert!(report.recommendations[0].recommended.cpu_request.is_some());
    // A fault that does not pass fails with the server's message, not a panic.
    sim.faults()
        .inject(Fault::on("deployments", "list", status(403, None)).times(1));
    let error = live::inventory(&test.cluster, &scope(&test))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot list deployments: 403"),
        "{error}"
    );
    test.cleanup().await;
}

/// A Prometheus server on loopback over backfilled history, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Backfills `openmetrics` with promtool and serves it. Debian's `prometheus` package
    /// provides both (`.ci/run` installs it).
    async fn start(openmetrics: &str) -> Self {
        for tool in ["prometheus", "promtool"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            assert!(
                found.is_ok_and(|s| s.success()),
                "{tool} is not installed: apt-get install prometheus (.ci/run does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("history.om");
        std::fs::write(&input, openmetrics).unwrap();
        let data = dir.path().join("data");
        let backfill = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            backfill.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&backfill.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global: {scrape_interval: 1m}\nscrape_configs: []\n",
        )
        .unwrap();
        let [address] = unused_addresses();
        let port = address.port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=30d")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(60), "prometheus ready", || {
            let ready = ready.clone();
            async move {
                let mut stream = tokio::net::TcpStream::connect(&ready).await.ok()?;
                stream
                    .write_all(b"GET /-/ready HTTP/1.0\r\n\r\n")
                    .await
                    .ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.ok()?;
                answer.starts_with("HTTP/1.0 200").then_some(())
            }
        })
        .await;
        server
    }
}

/// Two days of history at one sample a minute, ending an hour ago: `api` (two pods long gone)
/// with a known CPU distribution and one memory spike, `db-0` flat, a `ghost` pod of no
/// workload, and the pause container `POD`, which the queries leave out.
#[allow(clippy::cast_precision_loss)] // hours of a two-day history
fn history(namespace: &str, end: i64) -> String {
    let minutes = 2 * 24 * 60;
    let start = end - minutes * 60;
    // Hour k of pod a runs at 100m + 2m * ((k * 7) mod 48): every level from 100m to 194m once.
    let rate = |pod: usize, minute: i64| -> f64 {
        let hour = minute / 60;
        match pod {
            0 => 0.100 + 0.002 * ((hour * 7) % 48) as f64,
            1 => 0.050 + 0.001 * ((hour * 7) % 48) as f64,
            2 => 0.250,
            _ => 1.0,
        }
    };
    let pods = [
        ("api-5d8f7c9b6-x2x9k", "app"),
        ("api-5d8f7c9b6-q7wzt", "app"),
        ("db-0", "postgres"),
        ("ghost-7c9b6", "app"),
        ("api-5d8f7c9b6-x2x9k", "POD"),
    ];
    let mut out = String::from(
        "# HELP container_cpu_usage_seconds Cumulative cpu time consumed.\n# TYPE container_cpu_usage_seconds counter\n",
    );
    for (index, (pod, container)) in pods.iter().enumerate() {
        let mut total = 0.0;
        for minute in 0..=minutes {
            if minute > 0 {
                total += rate(index, minute - 1) * 60.0;
            }
            writeln!(out, "container_cpu_usage_seconds_total{{namespace=\"{namespace}\",pod=\"{pod}\",container=\"{container}\"}} {total:.6} {}", start + minute * 60).unwrap();
        }
    }
    out.push_str("# HELP container_memory_working_set_bytes Current working set.\n# TYPE container_memory_working_set_bytes gauge\n");
    for (index, (pod, container)) in pods.iter().enumerate() {
        for minute in 0..=minutes {
            let mib = match index {
                0 if minute == 1234 => 300.0,
                0 => 200.0,
                1 => 150.0,
                2 => 1024.0,
                _ => 5000.0,
            };
            writeln!(out, "container_memory_working_set_bytes{{namespace=\"{namespace}\",pod=\"{pod}\",container=\"{container}\"}} {} {}", mib * MIB, start + minute * 60).unwrap();
        }
    }
    out.push_str("# EOF\n");
    out
}

#[tokio::test]
async fn prometheus_history_gives_krr_simple_strategy_numbers() {
    let test = cluster().await;
    let ns = test.namespace.clone();
    test.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(&test, "api", 1, ("10m", "10Mi")),
        )
        .await
        .unwrap();
    test.api::<StatefulSet>()
        .create(&PostParams::default(), &object(json!({"metadata": {"name": "db", "namespace": ns},
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "postgres", "image": "registry.k8s.io/pause:3.10",
                                      "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}}]}}}})))
        .await
        .unwrap();
    let end = (chrono::Utc::now().timestamp() / 60 - 60) * 60;
    let server = Prometheus::start(&history(&ns, end)).await;
    let inventory = live::inventory(&test.cluster, &scope(&test)).await.unwrap();
    let source = prometheus::Source {
        url: server.url.clone(),
        history: Duration::from_secs(2 * 86_400),
        step: Duration::from_secs(300),
        end: Some(end),
    };
    let mut usage = Usage::new();
    let mut progress = Vec::new();
    let samples = prometheus::history(
        &source,
        &inventory,
        &CancellationToken::new(),
        &mut usage,
        &mut |p| progress.push(p),
    )
    .await
    .unwrap();
    assert_eq!(
        progress.last().map(|p| (p.queries, p.total)),
        Some((4, 4)),
        "2 days: a CPU and a memory query a day"
    );
    assert!(samples > 3 * 576, "{samples}");
    assert!(
        usage.unmatched > 0,
        "the ghost pod's samples are counted apart"
    );
    let report = tune::analyse(&inventory, Some(&usage), &Options::default(), "prometheus");
    let rec = |kind, container: &str| {
        report
            .recommendations
            .iter()
            .find(|r| r.workload.kind == kind && r.container == container)
            .unwrap()
            .clone()
    };
    let api = rec(WorkloadKind::Deployment, "app");
    // KRR: the highest per-pod p95 of rate() at the step. Pod a's hourly levels run 100m to
    // 194m; its p95 is the 190m level (rate windows that straddle two levels move it a little).
    let cpu = api.recommended.cpu_request.unwrap();
    assert!((186.0..=196.0).contains(&cpu), "{cpu}");
    assert_eq!(api.recommended.cpu_limit, None);
    // The one-minute spike to 300Mi between two steps still counts: 300Mi x 1.15.
    assert_eq!(api.recommended.memory_request, Some(345.0 * MIB));
    assert_eq!(api.recommended.memory_limit, Some(345.0 * MIB));
    assert_eq!(api.usage.unwrap().pods, 2);
    assert_eq!(api.confidence, Some(Confidence::Medium));
    let db = rec(WorkloadKind::StatefulSet, "postgres");
    assert_eq!(db.recommended.cpu_request, Some(250.0));
    assert_eq!(db.recommended.memory_request, Some(1178.0 * MIB));
    assert!(report.recommendations.iter().all(|r| r.container != "POD"));
    // A query Prometheus refuses reports its message.
    let bad = prometheus::Source {
        url: format!("{}/nothing-here", server.url),
        ..source.clone()
    };
    let error = prometheus::history(
        &bad,
        &inventory,
        &CancellationToken::new(),
        &mut Usage::new(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(error.to_string().starts_with("prometheus: 404"), "{error}");
    drop(server);
    let gone = prometheus::history(
        &source,
        &inventory,
        &CancellationToken::new(),
        &mut Usage::new(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(gone.to_string().contains("cannot reach"), "{gone}");
    test.cleanup().await;
}

#[test]
fn a_snapshot_with_errors_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let mut file = std::fs::File::create(dir.path().join(name)).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    };
    let read = |dir: &Path| {
        snapshot::read(dir, &|| false)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(read(&dir.path().join("missing")).ends_with("missing: no such directory"));
    write(
        "snapshot.json",
        r#"{"format": "kubezen.tune.snapshot/v1", "recorded": "2026-11-23T00:00:00Z", "source": "test"}"#,
    );
    write(
        "objects.jsonl",
        "{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\": {\"name\": \"web\", \"namespace\": \"a\"}, \"spec\": {\"template\": {\"spec\": {\"containers\": [{\"name\": \"app\"}]}}}}\n",
    );
    write(
        "series.csv",
        "series,namespace,kind,workload,container,pod\n0,a,Deployment,web,app,web-1-x\n",
    );
    write(
        "samples.csv",
        "series,timestamp,cpu_millicores,memory_bytes\n0,100,5,1000\n0,160,oops,1000\n",
    );
    let error = read(dir.path());
    assert!(
        error.ends_with(
            "samples.csv:3: \"0,160,oops,1000\" is not series,timestamp,cpu_millicores,memory_bytes"
        ),
        "{error}"
    );
    write(
        "samples.csv",
        "series,timestamp,cpu_millicores,memory_bytes\n7,100,5,1000\n",
    );
    assert!(read(dir.path()).ends_with("samples.csv:2: series 7 is not in series.csv"));
    write(
        "series.csv",
        "series,namespace,kind,workload,container,pod\n0,a,Gadget,web,app,web-1-x\n",
    );
    assert!(read(dir.path()).ends_with("series.csv:2: unknown workload kind \"Gadget\""));
    write("objects.jsonl", "{not json\n");
    assert!(read(dir.path()).contains("objects.jsonl:1: "));
    write(
        "snapshot.json",
        r#"{"format": "something/v9", "recorded": "", "source": ""}"#,
    );
    assert!(
        read(dir.path()).contains("format \"something/v9\" is not \"kubezen.tune.snapshot/v1\"")
    );
    // Interrupted reading stops with an error, not a partial report.
    write(
        "snapshot.json",
        r#"{"format": "kubezen.tune.snapshot/v1", "recorded": "", "source": "test"}"#,
    );
    write("objects.jsonl", "");
    write(
        "series.csv",
        "series,namespace,kind,workload,container,pod\n0,a,Deployment,web,app,web-1-x\n",
    );
    let mut samples = String::from("series,timestamp,cpu_millicores,memory_bytes\n");
    for i in 0..1_100_000 {
        writeln!(samples, "0,{i},1,1").unwrap();
    }
    write("samples.csv", &samples);
    let stopped = snapshot::read(dir.path(), &|| true)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(stopped, TuneError::Interrupted));
    let whole = snapshot::read(dir.path(), &|| false).unwrap();
    assert_eq!(whole.samples, 1_100_000);
    assert_eq!(whole.inventory.workloads().len(), 0);
    assert_eq!(whole.usage.len(), 1);
    let report: Report = tune::analyse(
        &whole.inventory,
        Some(&whole.usage),
        &Options::default(),
        "test",
    );
    assert!(report.recommendations.is_empty());
}

#[tokio::test]
async fn a_selector_keeps_bare_pods_it_does_not_match_out_of_inventories_and_snapshots() {
    let test = cluster().await;
    let mut web = serde_json::to_value(deployment(&test, "web", 1, ("100m", "64Mi"))).unwrap();
    web["metadata"]["labels"] = json!({"team": "a"});
    test.api::<Deployment>()
        .create(&PostParams::default(), &object(web))
        .await
        .unwrap();
    for (name, team) in [("lone-a", "a"), ("lone-b", "b")] {
        let pod: Pod = object(json!({
            "metadata": {"name": name, "labels": {"team": team}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
        }));
        test.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }
    running_pods(&test, "web", 1).await;
    let scope = live::Scope {
        namespace: Some(test.namespace.clone()),
        selector: Some("team=a".into()),
    };
    let names = |inventory: &Inventory| {
        let mut names: Vec<String> = inventory
            .workloads()
            .iter()
            .map(|w| w.id.name.clone())
            .collect();
        names.sort();
        names
    };
    let inventory = live::inventory(&test.cluster, &scope).await.unwrap();
    assert_eq!(names(&inventory), ["lone-a", "web"]);
    // A snapshot holds the same workloads: the other bare pod is not written at all.
    let dir = tempfile::tempdir().unwrap();
    let stopped = CancellationToken::new();
    stopped.cancel();
    let recorded = live::record(
        &test.cluster,
        &scope,
        &sampling(1),
        dir.path(),
        &stopped,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(recorded.workloads, 2);
    let read = snapshot::read(dir.path(), &|| false).unwrap();
    assert_eq!(names(&read.inventory), ["lone-a", "web"]);
    test.cleanup().await;
}
