//! Reconcile against a live API server (zen-sim, or `ZEN_TEST_KUBECONFIG`'s cluster): apply in
//! dependency order, readiness, idempotent re-runs, pruning, ordered deletion, status, diffs,
//! and failures (CEL errors, 422, 409, 403, 429, 5xx, dropped watches, Ctrl-C, timeouts).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use kubezen::graph::{self, Catalog};
use kubezen::reconcile::{Event, Options, Outcome, Plan, Progress, Reconciler, Report};
use kubezen::sim::{Fault, FaultAction};
use serde_json::{Value, json};
use support::{TestCluster, cluster, unused_addresses};
use tokio_util::sync::CancellationToken;

const WEB_APP: &str = include_str!("../examples/rgd/web-app.yaml");

fn plan(yaml: &str) -> Arc<Plan> {
    let graphs = graph::parse_str(yaml, "test.yaml", &Catalog::builtin()).expect("the RGD parses");
    Arc::new(Plan::new(&graphs[0]).expect("the graph compiles"))
}

fn web_instance(test: &TestCluster, ingress: bool) -> Value {
    json!({
        "apiVersion": "kro.run/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "shop", "namespace": test.namespace},
        "spec": {"name": "shop", "image": "registry.k8s.io/pause:3.10", "ingress": {"enabled": ingress},
                 "replicas": {"min": 1}, "env": {"MODE": "test"}},
    })
}

/// Two independent branches: `left` (`ConfigMap` -> `ConfigMap`) and `right` (Service), with a
/// `mode` switch that breaks the left branch in the ways the tests need.
const BRANCHES: &str = r#"
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {name: branches}
spec:
  schema:
    apiVersion: v1alpha1
    kind: Branches
    spec:
      name: string | required=true
      divisor: integer | default=1
      value: string | default="one"
  resources:
    - id: left
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${schema.spec.name}-left"}
        data: {value: "${schema.spec.value}", ratio: "${string(10 / schema.spec.divisor)}"}
    - id: leftChild
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${left.metadata.name}-child"}
        data: {parent: "${left.metadata.name}"}
    - id: right
      template:
        apiVersion: v1
        kind: Service
        metadata: {name: "${schema.spec.name}-right"}
        spec:
          ports: [{port: 80}]
  "#;

fn branches(test: &TestCluster, spec: &Value) -> Value {
    let mut spec = spec.clone();
    spec["name"] = json!("b");
    json!({"apiVersion": "kro.run/v1alpha1", "kind": "Branches",
           "metadata": {"name": "b", "namespace": test.namespace}, "spec": spec})
}

async fn apply(reconciler: &Reconciler, instance: &Value, options: &Options) -> Report {
    let instance = reconciler
        .admit(instance.clone())
        .expect("the instance is valid");
    reconciler
        .apply(&instance, options, &(), &CancellationToken::new())
        .await
        .expect("the reconcile runs")
}

fn outcome(report: &Report, id: &str) -> Outcome {
    report
        .objects
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("{id} is in the report: {report:#?}"))
        .outcome
}

/// Server-side applies `object` as `manager`: another writer than the reconciler.
async fn apply_as<K>(api: &Api<K>, manager: &str, object: &Value)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object["metadata"]["name"].as_str().expect("a name");
    api.patch(name, &PatchParams::apply(manager), &Patch::Apply(object))
        .await
        .expect("the object is applied");
}

fn options() -> Options {
    Options {
        timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one instance through its whole life, step by step
async fn an_instance_applies_in_order_reapplies_without_writes_prunes_and_deletes() {
    let test = cluster().await;
    let reconciler = Reconciler::new(test.cluster.clone(), plan(WEB_APP));
    let first = apply(&reconciler, &web_instance(&test, true), &options()).await;
    assert!(first.ok(), "{first:#?}");
    for id in [
        "config",
        "deployment",
        "service",
        "ingress",
        "autoscaler",
        "disruptionBudget",
    ] {
        assert_eq!(outcome(&first, id), Outcome::Created, "{id}");
    }
    // Dependencies first: the config map's level before the deployment's before the service's.
    let level = |id: &str| first.objects.iter().find(|o| o.id == id).unwrap().level;
    assert!(level("config") < level("deployment") && level("deployment") < level("service"));
    assert_eq!(
        first
            .objects
            .iter()
            .find(|o| o.id == "deployment")
            .unwrap()
            .ready,
        Some(true)
    );
    // The deployment was ready (readyWhen) before the service that reads it was rendered.
    let deployments: Api<Deployment> = test.api();
    let deployment = deployments.get("shop").await.unwrap();
    assert!(
        deployment
            .status
            .as_ref()
            .unwrap()
            .available_replicas
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(
        deployment.labels()["zen.kubezen.io/resource-id"],
        "deployment"
    );
    assert_eq!(first.status["availableReplicas"], 1, "{:#?}", first.status);
    assert_eq!(
        first.status["url"],
        format!("http://shop.{}.svc:8080", test.namespace)
    );
    assert_eq!(first.status["state"], "ACTIVE");

    let again = apply(&reconciler, &web_instance(&test, true), &options()).await;
    assert!(again.ok(), "{again:#?}");
    assert_eq!(
        again.writes, 0,
        "an unchanged re-run writes nothing: {again:#?}"
    );
    assert!(
        again
            .objects
            .iter()
            .all(|o| o.outcome == Outcome::Unchanged),
        "{again:#?}"
    );

    // includeWhen turned false: the ingress is pruned, nothing else written.
    let pruned = apply(&reconciler, &web_instance(&test, false), &options()).await;
    assert!(pruned.ok(), "{pruned:#?}");
    assert!(
        pruned
            .objects
            .iter()
            .any(|o| o.id == "ingress" && o.outcome == Outcome::Pruned),
        "{pruned:#?}"
    );
    // The prune; and where the instance's kind is served (a controller installed its CRD, as
    // on a cluster shared with other tests) the instance's changed spec, its status unchanged.
    let instance_spec = u64::from(pruned.status_written);
    assert_eq!(pruned.writes, 1 + instance_spec, "{pruned:#?}");

    // A resource removed from the graph is pruned too.
    let smaller = WEB_APP.replace(
        "    - id: disruptionBudget",
        "    - id: removed\n      includeWhen: [\"${false}\"]",
    );
    let smaller = Reconciler::new(test.cluster.clone(), plan(&smaller));
    let report = apply(&smaller, &web_instance(&test, false), &options()).await;
    assert_eq!(
        report
            .objects
            .iter()
            .filter(|o| o.outcome == Outcome::Pruned)
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        ["disruptionBudget"],
        "{report:#?}"
    );

    let instance = reconciler.admit(web_instance(&test, false)).unwrap();
    let deleted = reconciler
        .delete(&instance, &options(), &(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(deleted.ok(), "{deleted:#?}");
    let order: Vec<&str> = deleted
        .objects
        .iter()
        .filter(|o| o.outcome == Outcome::Deleted)
        .map(|o| o.id.as_str())
        .collect();
    let position = |id: &str| {
        order
            .iter()
            .position(|o| *o == id)
            .unwrap_or_else(|| panic!("{id} deleted: {order:?}"))
    };
    assert!(
        position("service") < position("deployment") && position("deployment") < position("config"),
        "{order:?}"
    );
    let maps: Api<ConfigMap> = test.api();
    let left = maps
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubectl-zen"))
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "the apply set and members are gone: {:?}",
        left.items
            .iter()
            .map(kube::ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    assert!(deployments.get_opt("shop").await.unwrap().is_none());
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_error_fails_its_branch_and_the_other_branch_converges() {
    let test = cluster().await;
    let reconciler = Reconciler::new(test.cluster.clone(), plan(BRANCHES));
    let report = apply(
        &reconciler,
        &branches(&test, &json!({"divisor": 0})),
        &options(),
    )
    .await;
    assert!(!report.ok());
    assert_eq!(outcome(&report, "left"), Outcome::Failed);
    let message = report
        .objects
        .iter()
        .find(|o| o.id == "left")
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        message.to_lowercase().contains("division by zero"),
        "{message}"
    );
    assert!(
        message.contains("data.ratio"),
        "the field path is named: {message}"
    );
    assert_eq!(outcome(&report, "leftChild"), Outcome::Blocked);
    assert_eq!(outcome(&report, "right"), Outcome::Created);
    // Fixed, a re-run converges.
    let fixed = apply(&reconciler, &branches(&test, &json!({})), &options()).await;
    assert!(fixed.ok(), "{fixed:#?}");
    assert_eq!(outcome(&fixed, "right"), Outcome::Unchanged);
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_fails_its_resource_with_the_servers_message() {
    let test = cluster().await;
    let broken = WEB_APP.replace(
        "          template:\n            metadata:\n              labels:\n                app.kubernetes.io/name: ${schema.spec.name}\n            spec:\n              containers:\n                - name: app",
        "          template:\n            metadata:\n              labels:\n                app.kubernetes.io/name: other\n            spec:\n              containers:\n                - name: app",
    );
    assert_ne!(broken, WEB_APP);
    let reconciler = Reconciler::new(test.cluster.clone(), plan(&broken));
    let report = apply(&reconciler, &web_instance(&test, false), &options()).await;
    let deployment = report
        .objects
        .iter()
        .find(|o| o.id == "deployment")
        .unwrap();
    assert_eq!(deployment.outcome, Outcome::Failed);
    assert!(
        deployment
            .message
            .as_deref()
            .unwrap()
            .starts_with("422 Invalid"),
        "{deployment:?}"
    );
    assert_eq!(outcome(&report, "service"), Outcome::Blocked);
    assert_eq!(outcome(&report, "config"), Outcome::Created);
    assert_eq!(report.status["state"], "FAILED");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_conflict_fails_until_forced() {
    let test = cluster().await;
    let maps: Api<ConfigMap> = test.api();
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b-left"}, "data": {"value": "theirs"}});
    apply_as(&maps, "someone-else", &theirs).await;
    let reconciler = Reconciler::new(test.cluster.clone(), plan(BRANCHES));
    let report = apply(&reconciler, &branches(&test, &json!({})), &options()).await;
    let left = report.objects.iter().find(|o| o.id == "left").unwrap();
    assert_eq!(left.outcome, Outcome::Failed, "{report:#?}");
    let message = left.message.as_deref().unwrap();
    assert!(
        message.starts_with("409") && message.contains("--force-conflicts"),
        "{message}"
    );
    assert_eq!(outcome(&report, "right"), Outcome::Created);
    let forced = Options {
        force_conflicts: true,
        ..options()
    };
    let report = apply(&reconciler, &branches(&test, &json!({})), &forced).await;
    assert!(report.ok(), "{report:#?}");
    assert_eq!(
        maps.get("b-left").await.unwrap().data.unwrap()["value"],
        "one"
    );
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_fail_or_retry_as_the_cluster_layer_says() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("injecting 403, 429 and 503") else {
        return test.cleanup().await;
    };
    let reconciler = Reconciler::new(test.cluster.clone(), plan(BRANCHES));
    // 403 on writes of services: the right branch fails, the left converges.
    sim.faults().inject(
        Fault::on(
            "services",
            "patch",
            FaultAction::Status {
                code: 403,
                retry_after_seconds: None,
            },
        )
        .times(1),
    );
    let report = apply(&reconciler, &branches(&test, &json!({})), &options()).await;
    assert!(!report.ok());
    let right = report.objects.iter().find(|o| o.id == "right").unwrap();
    assert!(
        right.message.as_deref().unwrap().starts_with("403"),
        "{right:?}"
    );
    assert_eq!(outcome(&report, "left"), Outcome::Created);
    assert_eq!(outcome(&report, "leftChild"), Outcome::Created);
    // A 429 with Retry-After and a 503 are retried by the cluster layer: the run converges.
    sim.faults().inject(
        Fault::on(
            "services",
            "patch",
            FaultAction::Status {
                code: 429,
                retry_after_seconds: Some(1),
            },
        )
        .times(1),
    );
    sim.faults().inject(
        Fault::on(
            "configmaps",
            "list",
            FaultAction::Status {
                code: 503,
                retry_after_seconds: None,
            },
        )
        .times(1),
    );
    let before = test.cluster.stats();
    let report = apply(&reconciler, &branches(&test, &json!({})), &options()).await;
    assert!(report.ok(), "{report:#?}");
    let after = test.cluster.stats();
    assert!(after.throttled_by_server > before.throttled_by_server);
    assert!(after.server_errors > before.server_errors);
    test.cleanup().await;
}

/// A graph whose second level waits for a gate config map to say `open: "yes"`.
const GATED: &str = r#"
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {name: gated}
spec:
  schema:
    apiVersion: v1alpha1
    kind: Gated
    spec: {name: string | required=true}
  resources:
    - id: gate
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${schema.spec.name}-gate"}
        data: {purpose: gate}
      readyWhen:
        - ${has(gate.data.open) && gate.data.open == "yes"}
    - id: after
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${gate.metadata.name}-after"}
  "#;

fn gated(test: &TestCluster) -> Value {
    json!({"apiVersion": "kro.run/v1alpha1", "kind": "Gated",
           "metadata": {"name": "g", "namespace": test.namespace}, "spec": {"name": "g"}})
}

async fn open_gate(test: &TestCluster) {
    let maps: Api<ConfigMap> = test.api();
    let open = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "g-gate"}, "data": {"open": "yes"}});
    apply_as(&maps, "gatekeeper", &open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_watched_through_dropped_watches() {
    let test = cluster().await;
    let reconciler = Arc::new(Reconciler::new(test.cluster.clone(), plan(GATED)));
    if let Some(sim) = test.sim.as_ref() {
        sim.faults().inject(
            Fault::on(
                "configmaps",
                "watch",
                FaultAction::DropWatch { after_events: 0 },
            )
            .times(2),
        );
    }
    let instance = reconciler.admit(gated(&test)).unwrap();
    let running = {
        let reconciler = Arc::clone(&reconciler);
        let instance = instance.clone();
        tokio::spawn(async move {
            reconciler
                .apply(&instance, &options(), &(), &CancellationToken::new())
                .await
                .unwrap()
        })
    };
    let maps: Api<ConfigMap> = test.api();
    support::eventually(Duration::from_secs(20), "the gate exists", || async {
        maps.get_opt("g-gate").await.ok().flatten()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        maps.get_opt("g-gate-after").await.unwrap().is_none(),
        "not before the gate is ready"
    );
    open_gate(&test).await;
    let report = running.await.unwrap();
    assert!(report.ok(), "{report:#?}");
    assert_eq!(outcome(&report, "after"), Outcome::Created);
    assert!(maps.get_opt("g-gate-after").await.unwrap().is_some());
    test.cleanup().await;
}

/// Counts level starts, to cancel at the right moment.
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Level { level, .. } => format!("level {level}"),
            Event::Object(object) => format!("{} {}", object.id, object.outcome),
            Event::LevelDone(level) => format!("level {} done", level.level),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_between_levels_and_a_rerun_converges() {
    let test = cluster().await;
    let reconciler = Arc::new(Reconciler::new(test.cluster.clone(), plan(GATED)));
    let instance = reconciler.admit(gated(&test)).unwrap();
    let cancel = CancellationToken::new();
    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    let running = {
        let (reconciler, instance, cancel, recorder) = (
            Arc::clone(&reconciler),
            instance.clone(),
            cancel.clone(),
            Arc::clone(&recorder),
        );
        tokio::spawn(async move {
            reconciler
                .apply(&instance, &options(), &*recorder, &cancel)
                .await
                .unwrap()
        })
    };
    let maps: Api<ConfigMap> = test.api();
    support::eventually(Duration::from_secs(20), "the gate exists", || async {
        maps.get_opt("g-gate").await.ok().flatten()
    })
    .await;
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("it stops promptly")
        .unwrap();
    assert!(report.interrupted && !report.ok());
    assert_eq!(outcome(&report, "gate"), Outcome::Interrupted);
    assert_eq!(outcome(&report, "after"), Outcome::Interrupted);
    assert!(maps.get_opt("g-gate-after").await.unwrap().is_none());
    assert_eq!(recorder.0.lock().unwrap()[0], "level 0");

    open_gate(&test).await;
    let report = apply(&reconciler, &gated(&test), &options()).await;
    assert!(report.ok(), "{report:#?}");
    assert_eq!(outcome(&report, "gate"), Outcome::Unchanged);
    assert_eq!(outcome(&report, "after"), Outcome::Created);
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_never_ready_fails_at_the_timeout() {
    let test = cluster().await;
    let reconciler = Reconciler::new(test.cluster.clone(), plan(GATED));
    let short = Options {
        timeout: Duration::from_millis(800),
        ..Options::default()
    };
    let report = apply(&reconciler, &gated(&test), &short).await;
    let gate = report.objects.iter().find(|o| o.id == "gate").unwrap();
    assert_eq!(gate.outcome, Outcome::Failed);
    assert!(
        gate.message
            .as_deref()
            .unwrap()
            .contains("not ready before the timeout"),
        "{gate:?}"
    );
    assert_eq!(outcome(&report, "after"), Outcome::Blocked);
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_changes_without_writing() {
    let test = cluster().await;
    let reconciler = Reconciler::new(test.cluster.clone(), plan(BRANCHES));
    let instance = reconciler.admit(branches(&test, &json!({}))).unwrap();
    let diffs = reconciler.diff(&instance, &options()).await.unwrap();
    assert!(diffs.iter().all(|d| d.change == "create"), "{diffs:#?}");
    let maps: Api<ConfigMap> = test.api();
    assert!(
        maps.get_opt("b-left").await.unwrap().is_none(),
        "a diff writes nothing"
    );
    apply(&reconciler, &branches(&test, &json!({})), &options()).await;
    let changed = reconciler
        .admit(branches(&test, &json!({"value": "two"})))
        .unwrap();
    let diffs = reconciler.diff(&changed, &options()).await.unwrap();
    let left = diffs.iter().find(|d| d.id == "left").unwrap();
    assert_eq!(left.change, "update");
    assert!(
        left.diff.contains("-  value: one") && left.diff.contains("+  value: two"),
        "{}",
        left.diff
    );
    assert_eq!(
        diffs.iter().find(|d| d.id == "right").unwrap().change,
        "unchanged"
    );
    let services: Api<Service> = test.api();
    assert!(services.get_opt("b-right").await.unwrap().is_some());
    assert_eq!(
        maps.get("b-left").await.unwrap().data.unwrap()["value"],
        "one"
    );
    test.cleanup().await;
}

async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_reconciles_instances_and_deletes_them_through_its_finalizer() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
    use kubezen::reconcile::{ControllerOptions, run_controller};
    let test = cluster().await;
    // A kind of its own, so that on a shared cluster no other test's instance is reconciled.
    let plan = plan(&WEB_APP.replace("kind: WebApp", "kind: ZenTestWebApp"));
    let [port] = unused_addresses();
    let shutdown = CancellationToken::new();
    let controller = {
        let (cluster, plan, shutdown, namespace) = (
            test.cluster.clone(),
            Arc::clone(&plan),
            shutdown.clone(),
            test.namespace.clone(),
        );
        tokio::spawn(async move {
            let options = ControllerOptions {
                metrics_addr: Some(port),
                namespace: Some(namespace),
                ..ControllerOptions::default()
            };
            run_controller(cluster, plan, &options, &shutdown).await
        })
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kro.run", "v1alpha1", "ZenTestWebApp"),
        "zentestwebapps",
    );
    let apps: Api<DynamicObject> =
        Api::namespaced_with(test.client.clone(), &test.namespace, &resource);
    let mut instance = web_instance(&test, false);
    instance["kind"] = json!("ZenTestWebApp");
    let instance: DynamicObject = serde_json::from_value(instance).unwrap();
    support::eventually(Duration::from_secs(30), "the CRD is served", || async {
        apps.create(&PostParams::default(), &instance).await.ok()
    })
    .await;
    let ready = support::eventually(
        Duration::from_secs(30),
        "the instance is ACTIVE",
        || async {
            let live = apps.get("shop").await.ok()?;
            (live.data["status"]["state"] == "ACTIVE").then_some(live)
        },
    )
    .await;
    assert_eq!(ready.data["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(ready.data["status"]["availableReplicas"], 1);
    assert!(
        ready
            .metadata
            .finalizers
            .unwrap()
            .contains(&kubezen::reconcile::FINALIZER.to_owned())
    );
    let deployments: Api<Deployment> = test.api();
    assert!(deployments.get_opt("shop").await.unwrap().is_some());
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("kubezen_reconcile_duration_seconds_count{action=\"apply\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kubezen_reconcile_applied_objects_total{outcome=\"created\"} 5"),
        "{metrics}"
    );
    assert!(http_get(port, "/readyz").await.contains("200 OK"));

    apps.delete("shop", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    support::eventually(Duration::from_secs(30), "the instance is gone", || async {
        apps.get_opt("shop")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        deployments.get_opt("shop").await.unwrap().is_none(),
        "its objects went first"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("the controller stops on shutdown")
        .unwrap()
        .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(test.client.clone());
    crds.delete(
        "zentestwebapps.kro.run",
        &kube::api::DeleteParams::default(),
    )
    .await
    .unwrap();
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_in_other_namespaces_are_found_again_and_pruned() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::PostParams;
    let test = cluster().await;
    let other = format!("{}-other", test.namespace);
    let namespaces: Api<Namespace> = Api::all(test.client.clone());
    let object = serde_json::from_value(
        json!({"metadata": {"name": other, "labels": {"kubezen.io/test": "true"}}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let yaml = BRANCHES.replace(
        "metadata: {name: \"${schema.spec.name}-right\"}",
        "metadata: {name: \"${schema.spec.name}-right\", namespace: \"${schema.spec.value}\"}",
    )
    .replace("      template:\n        apiVersion: v1\n        kind: Service", "      includeWhen: [\"${schema.spec.divisor == 1}\"]\n      template:\n        apiVersion: v1\n        kind: Service");
    let reconciler = Reconciler::new(test.cluster.clone(), plan(&yaml));
    let report = apply(
        &reconciler,
        &branches(&test, &json!({"value": other})),
        &options(),
    )
    .await;
    assert!(report.ok(), "{report:#?}");
    let services: Api<Service> = Api::namespaced(test.client.clone(), &other);
    assert!(services.get_opt("b-right").await.unwrap().is_some());
    let again = apply(
        &reconciler,
        &branches(&test, &json!({"value": other})),
        &options(),
    )
    .await;
    assert_eq!(
        again.writes, 0,
        "found again in the other namespace: {again:#?}"
    );
    let pruned = apply(
        &reconciler,
        &branches(&test, &json!({"value": other, "divisor": 2})),
        &options(),
    )
    .await;
    assert!(
        pruned
            .objects
            .iter()
            .any(|o| o.id == "right" && o.outcome == Outcome::Pruned),
        "{pruned:#?}"
    );
    assert!(services.get_opt("b-right").await.unwrap().is_none());
    let _ = namespaces
        .delete(&other, &kube::api::DeleteParams::default())
        .await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_instance_applies_reapplies_and_deletes() {
    use k8s_openapi::api::core::v1::Secret;
    let test = cluster().await;
    let secrets: Api<Secret> = test.api();
    let queue = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "queue-credentials"}, "data": {"url": "YW1xcDovL3F1ZXVl"}});
    apply_as(&secrets, "test", &queue).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for (rgd, instance) in [
        ("web-app", "web-app"),
        ("database", "database"),
        ("platform", "platform"),
        ("conditional", "worker-pool"),
    ] {
        let yaml = std::fs::read_to_string(format!("{examples}/rgd/{rgd}.yaml")).unwrap();
        let manifest =
            std::fs::read_to_string(format!("{examples}/reconcile/{instance}-instance.yaml"))
                .unwrap();
        let mut object: Value = serde_norway::from_str(&manifest).unwrap();
        object["metadata"]["namespace"] = json!(test.namespace);
        if rgd == "platform" {
            // The platform makes a namespace of its own: one per test run.
            object["spec"]["team"] = json!(test.namespace);
        }
        let reconciler = Reconciler::new(test.cluster.clone(), plan(&yaml));
        let first = apply(&reconciler, &object, &options()).await;
        assert!(first.ok(), "{rgd}: {first:#?}");
        assert_eq!(first.status["state"], "ACTIVE", "{rgd}");
        let again = apply(&reconciler, &object, &options()).await;
        assert_eq!(
            again.writes, 0,
            "{rgd}: an unchanged re-run writes nothing: {again:#?}"
        );
        let admitted = reconciler.admit(object).unwrap();
        let deleted = reconciler
            .delete(&admitted, &options(), &(), &CancellationToken::new())
            .await
            .unwrap();
        assert!(deleted.ok(), "{rgd}: {deleted:#?}");
        let written = first
            .objects
            .iter()
            .filter(|o| o.outcome == Outcome::Created)
            .count();
        // The instance itself is deleted too where the cluster serves the graph's kind (a
        // cluster with KRO, or one a test installed the CRD on): count the graph's objects.
        let graph_deleted = deleted
            .objects
            .iter()
            .filter(|o| o.outcome == Outcome::Deleted && o.id != "(instance)")
            .count();
        assert_eq!(graph_deleted, written, "{rgd}: {deleted:#?}");
    }
    assert!(
        secrets
            .get_opt("queue-credentials")
            .await
            .unwrap()
            .is_some(),
        "external references stay"
    );
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_not_label_values_are_found_again_and_deleted_in_order() {
    let test = cluster().await;
    let long = format!("left{}", "Child".repeat(14));
    assert!(long.len() > 63);
    let reconciler = Reconciler::new(
        test.cluster.clone(),
        plan(&BRANCHES.replace("leftChild", &long)),
    );
    let unbounded = Options {
        timeout: Duration::MAX,
        ..options()
    };
    let first = apply(&reconciler, &branches(&test, &json!({})), &unbounded).await;
    assert!(first.ok(), "{first:#?}");
    let again = apply(&reconciler, &branches(&test, &json!({})), &unbounded).await;
    assert_eq!(again.writes, 0, "{again:#?}");
    let instance = reconciler.admit(branches(&test, &json!({}))).unwrap();
    let deleted = reconciler
        .delete(&instance, &unbounded, &(), &CancellationToken::new())
        .await
        .unwrap();
    let order: Vec<&str> = deleted
        .objects
        .iter()
        .filter(|o| o.outcome == Outcome::Deleted)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(order.len(), 3, "{deleted:#?}");
    assert!(
        order.iter().position(|n| *n == "b-left-child") < order.iter().position(|n| *n == "b-left"),
        "the child before its parent: {order:?}"
    );
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_status_loses_fields_no_longer_known_and_delete_removes_the_instance() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let test = cluster().await;
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/rgd/conditional.yaml"
    ))
    .unwrap()
    .replace("kind: WorkerPool", "kind: ZenTestWorkerPool");
    let plan = plan(&yaml);
    let crds: Api<DynamicObject> = Api::all_with(
        test.client.clone(),
        &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()),
    );
    apply_as(&crds, "test", plan.crd()).await;
    let secrets: Api<Secret> = test.api();
    let queue =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "queue-credentials"}});
    apply_as(&secrets, "test", &queue).await;
    let reconciler = Reconciler::new(test.cluster.clone(), Arc::clone(&plan));
    let pool = |metrics: bool| {
        json!({"apiVersion": "kro.run/v1alpha1", "kind": "ZenTestWorkerPool",
               "metadata": {"name": "crawl", "namespace": test.namespace},
               "spec": {"name": "crawl", "image": "registry.k8s.io/pause:3.10", "regions": ["eu-west"],
                        "replicasPerRegion": 1, "metrics": {"enabled": metrics}}})
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kro.run", "v1alpha1", "ZenTestWorkerPool"),
        "zentestworkerpools",
    );
    let pools: Api<DynamicObject> =
        Api::namespaced_with(test.client.clone(), &test.namespace, &resource);
    let with = support::eventually(Duration::from_secs(20), "the CRD is served", || async {
        let report = apply(&reconciler, &pool(true), &options()).await;
        report.status_written.then_some(report)
    })
    .await;
    assert!(with.ok(), "{with:#?}");
    let live = pools.get("crawl").await.unwrap();
    assert_eq!(live.data["status"]["exporter"], "crawl-metrics");
    let without = apply(&reconciler, &pool(false), &options()).await;
    assert!(without.ok() && without.status_written, "{without:#?}");
    let live = pools.get("crawl").await.unwrap();
    assert!(
        live.data["status"].get("exporter").is_none(),
        "{:?}",
        live.data["status"]
    );
    assert_eq!(live.data["status"]["state"], "ACTIVE");
    let instance = reconciler.admit(pool(false)).unwrap();
    let deleted = reconciler
        .delete(&instance, &options(), &(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(deleted.ok(), "{deleted:#?}");
    assert!(
        pools.get_opt("crawl").await.unwrap().is_none(),
        "the instance goes too"
    );
    assert!(
        secrets
            .get_opt("queue-credentials")
            .await
            .unwrap()
            .is_some()
    );
    crds.delete(
        "zentestworkerpools.kro.run",
        &kube::api::DeleteParams::default(),
    )
    .await
    .unwrap();
    test.cleanup().await;
}
