//! `kubectl zen install` against zen-sim (or `ZEN_TEST_KUBECONFIG`'s cluster): the manifests
//! pass a server-side dry run, each controller runs as its installed service account under the
//! generated RBAC (on zen-sim, which enforces RBAC for impersonated requests, every call is
//! checked against the role, and every grant must have been used), `kubectl auth can-i` agrees,
//! uninstall leaves nothing behind, and the install as a graph reconciles to the same objects.

mod support;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kubezen::cluster::election::ElectionOptions;
use kubezen::cluster::{Cluster, ClusterOptions, Permission, Scope};
use kubezen::install::{self, Component, HeldInstances, InstallOptions};
use kubezen::lead::{self, LeadOptions};
use kubezen::reconcile::{self, ControllerOptions, Plan};
use serde_json::{Value as Json, json};
use support::{TestCluster, cluster, eventually};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// The kind of the web-app graph's instances in these tests.
const INSTANCE_KIND: &str = "ZenInstallTestWebApp";

/// Installs of the same controller share cluster-wide names (its `ClusterRole`), and a cluster
/// takes one install of each: on a real cluster the tests that install take turns.
static INSTALLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn options(test: &TestCluster) -> InstallOptions {
    InstallOptions {
        namespace: test.namespace.clone(),
        ..InstallOptions::default()
    }
}

/// The web-app example graph, whose instances are of a kind of the tests' own: on a real
/// cluster its CRD, which the controller installs, is found and removed by the test again.
fn web_app() -> Component {
    let said = std::fs::read_to_string("examples/rgd/web-app.yaml")
        .unwrap()
        .replace("kind: WebApp", &format!("kind: {INSTANCE_KIND}"));
    let graph =
        kubezen::graph::parse_str(&said, "web-app.yaml", &kubezen::graph::Catalog::builtin())
            .unwrap()
            .remove(0);
    Component::Reconcile {
        plan: Arc::new(Plan::new(&graph).unwrap()),
        rgd: said,
    }
}

/// The API of the web-app graph's instances, once the controller has made the CRD served.
async fn instance_api(test: &TestCluster) -> ApiResource {
    eventually(WAIT, "the instance API served", || async {
        kube::discovery::pinned_kind(
            &test.client,
            &kube::api::GroupVersionKind::gvk("kro.run", "v1alpha1", INSTANCE_KIND),
        )
        .await
        .ok()
        .map(|(resource, _)| resource)
    })
    .await
}

/// Uninstalls as `--uninstall` does by default: refused while instances are held.
async fn uninstall(
    test: &TestCluster,
    component: &Component,
    namespace: &str,
) -> Result<Vec<install::Change>, install::InstallError> {
    install::uninstall(
        &test.cluster,
        component,
        namespace,
        HeldInstances::Refuse,
        false,
    )
    .await
}

/// The plan of a reconcile controller's component.
fn plan_of(component: &Component) -> &Arc<Plan> {
    let Component::Reconcile { plan, .. } = component else {
        panic!("a reconcile controller's component")
    };
    plan
}

fn service_account(test: &TestCluster, component: &Component) -> String {
    format!(
        "system:serviceaccount:{}:{}",
        test.namespace,
        component.name()
    )
}

/// The test's kubeconfig acting as `user` (kubectl's `--as`, a kubeconfig's `as:`).
fn impersonating(test: &TestCluster, user: &str) -> PathBuf {
    let said = std::fs::read_to_string(test.kubeconfig()).unwrap();
    let mut config: Json = serde_norway::from_str(&said).unwrap();
    for entry in config["users"].as_array_mut().unwrap() {
        entry["user"]["as"] = json!(user);
    }
    let path = test
        .scratch()
        .join(format!("as-{}", user.replace(':', "-")));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

async fn connect_as(test: &TestCluster, user: &str) -> Cluster {
    Cluster::connect(&ClusterOptions {
        kubeconfig: Some(impersonating(test, user)),
        ..ClusterOptions::default()
    })
    .await
    .unwrap()
}

fn kubectl(test: &TestCluster, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", test.kubeconfig())
        .env("KUBECACHEDIR", test.scratch().join("kube-cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The verbs of `permissions` as (verb, group, resource), each once.
fn granted(permissions: &[Permission]) -> BTreeSet<(String, String, String)> {
    permissions
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (v.clone(), p.group.clone(), p.resource.clone()))
        })
        .collect()
}

/// On zen-sim: every call `user` made was allowed, and every verb the role grants was called,
/// but those in `timing`: calls the code makes only when the cluster is slow enough (a watch
/// while a deleted object has not gone yet).
fn check_access(
    test: &TestCluster,
    user: &str,
    permissions: &[Permission],
    timing: &[(&str, &str, &str)],
) {
    let Some(sim) = test.sim_only("checking every call against the role") else {
        return;
    };
    let access: Vec<_> = sim
        .access()
        .into_iter()
        .filter(|a| a.user == user)
        .collect();
    let denied: Vec<_> = access.iter().filter(|a| !a.allowed).collect();
    assert!(
        denied.is_empty(),
        "the code called what its role does not grant: {denied:#?}"
    );
    let called: BTreeSet<_> = access
        .iter()
        .map(|a| (a.verb.clone(), a.group.clone(), a.resource.clone()))
        .collect();
    let unused: Vec<_> = granted(permissions)
        .difference(&called)
        .filter(|(verb, group, resource)| {
            !timing.contains(&(verb.as_str(), group.as_str(), resource.as_str()))
        })
        .cloned()
        .collect();
    assert!(
        unused.is_empty(),
        "the role grants what the code never called: {unused:?}"
    );
}

/// `kubectl auth can-i` as the service account, for one permission's verbs and resource.
fn can_i(test: &TestCluster, user: &str, verb: &str, permission: &Permission) -> bool {
    let resource = if permission.group.is_empty() {
        permission.resource.clone()
    } else {
        let (plural, sub) = permission
            .resource
            .split_once('/')
            .map_or((permission.resource.as_str(), None), |(p, s)| (p, Some(s)));
        let mut said = format!("{plural}.{}", permission.group);
        if let Some(sub) = sub {
            said = format!("{said} --subresource={sub}");
        }
        said
    };
    let mut args: Vec<String> = vec!["auth".into(), "can-i".into(), verb.into()];
    args.extend(resource.split(' ').map(str::to_owned));
    if let Some(name) = permission.names.first() {
        args[3] = format!("{}/{name}", args[3]);
    }
    args.extend(["--as".into(), user.into()]);
    match permission.scope {
        Scope::Cluster => args.push("--all-namespaces".into()),
        Scope::OwnNamespace => args.extend(["-n".into(), test.namespace.clone()]),
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (yes, said) = kubectl(test, &refs, None);
    assert!(
        said.starts_with("yes") || said.starts_with("no"),
        "kubectl {args:?}: {said}"
    );
    yes
}

fn check_can_i(test: &TestCluster, component: &Component, permissions: &[Permission]) {
    let user = service_account(test, component);
    for permission in permissions {
        for verb in &permission.verbs {
            assert!(
                can_i(test, &user, verb, permission),
                "{user} cannot {verb} {permission:?}"
            );
        }
    }
    // What it must not do: read Secrets, write pods, take over the cluster, other Leases.
    let never = [
        ("get", Permission::new(Scope::Cluster, "", "secrets", &[])),
        ("create", Permission::new(Scope::Cluster, "", "pods", &[])),
        ("delete", Permission::new(Scope::Cluster, "", "pods", &[])),
        (
            "create",
            Permission::new(
                Scope::Cluster,
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                &[],
            ),
        ),
        (
            "update",
            Permission::new(Scope::OwnNamespace, "coordination.k8s.io", "leases", &[])
                .named(&["someone-elses"]),
        ),
        (
            "delete",
            Permission::new(Scope::OwnNamespace, "coordination.k8s.io", "leases", &[]),
        ),
    ];
    for (verb, permission) in &never {
        assert!(
            !can_i(test, &user, verb, permission),
            "{user} may {verb} {permission:?}"
        );
    }
}

fn dry_run(test: &TestCluster, objects: &[Json]) {
    // The namespace first: a dry run stores nothing, so namespaced objects need it to exist.
    let yaml = install::to_yaml(objects).unwrap();
    let (ok, said) = kubectl(
        test,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=kubectl-zen",
            "-f",
            "-",
        ],
        Some(&yaml),
    );
    assert!(ok, "{said}");
    assert_eq!(
        said.matches("serverside-applied (server dry run)").count(),
        objects.len(),
        "{said}"
    );
}

/// Every object of the install's kinds that carries its label, cluster-wide.
fn labelled(test: &TestCluster, name: &str) -> Vec<String> {
    let (ok, said) = kubectl(
        test,
        &[
            "get",
            "namespaces,serviceaccounts,clusterroles,clusterrolebindings,roles,rolebindings,configmaps,services,poddisruptionbudgets,deployments",
            "-A",
            "-l",
            &format!("{}={name}", install::INSTALL_LABEL),
            "-o",
            "name",
        ],
        None,
    );
    assert!(ok, "{said}");
    said.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn uninstall_leaves_nothing(test: &TestCluster, component: &Component) {
    let changes = uninstall(test, component, &test.namespace).await.unwrap();
    assert!(
        changes.iter().any(|c| c.kind == "Deployment"),
        "{changes:?}"
    );
    assert!(
        changes.iter().all(|c| c.kind != "Namespace"),
        "the test's namespace was not the install's: {changes:?}"
    );
    eventually(WAIT, "nothing labelled left", || async {
        labelled(test, &component.name()).is_empty().then_some(())
    })
    .await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = test.api();
    assert!(
        leases.get_opt(&component.lease()).await.unwrap().is_none(),
        "the Lease is gone"
    );
    let again = uninstall(test, component, &test.namespace).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
}

fn pod(name: &str) -> Pod {
    support::object(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    }))
}

async fn ready(test: &TestCluster, name: &str) {
    let pods: Api<Pod> = test.api();
    pods.create(&PostParams::default(), &pod(name))
        .await
        .unwrap();
    eventually(WAIT, &format!("pod {name} Ready"), || async {
        pods.get_opt(name)
            .await
            .unwrap()
            .is_some_and(|pod| lead::select::fitness(&pod).is_ok())
            .then_some(())
    })
    .await;
}

async fn leader_of(test: &TestCluster, service: &str) -> Option<String> {
    let services: Api<Service> = test.api();
    services
        .get_opt(service)
        .await
        .unwrap()?
        .metadata
        .annotations?
        .get(lead::LEADER_POD_NAME)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one install run, step by step, under its own RBAC
async fn zen_lead_runs_under_exactly_the_rbac_it_is_installed_with() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let component = Component::Lead;
    let options = options(&test);
    let objects = install::manifests(&component, &options).unwrap();
    dry_run(&test, &objects);
    let applied = install::apply(&test.cluster, &objects, false)
        .await
        .unwrap();
    assert_eq!(
        applied
            .iter()
            .find(|c| c.kind == "Namespace")
            .unwrap()
            .action,
        "kept"
    );
    let election = ElectionOptions::new(&test.namespace, lead::LEASE_NAME, "install-test");
    let permissions = component.permissions(Some(&election)).unwrap();
    check_can_i(&test, &component, &permissions);

    // The controller as its service account, watching every namespace as installed.
    let user = service_account(&test, &component);
    let as_sa = connect_as(&test, &user).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        let options = LeadOptions {
            election: Some(election),
            resync: Duration::from_secs(60),
            ..LeadOptions::default()
        };
        async move { lead::run(as_sa, &options, &stop).await }
    });
    // A leader Service left behind by a source deleted while no controller ran: it is checked
    // with the API server, then removed.
    let services: Api<Service> = test.api();
    let leftover: Service = support::object(json!({"metadata": {"name": "gone-leader", "labels": {
        lead::MANAGED_BY: lead::MANAGED_BY_VALUE, lead::SOURCE_SERVICE: "gone"}},
        "spec": {"ports": [{"port": 80}]}}));
    services
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();
    ready(&test, "web-a").await;
    ready(&test, "web-b").await;
    let opted_in = |name: &str| -> Service {
        support::object(
            json!({"metadata": {"name": name, "annotations": {"zen-lead.io/enabled": "true"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        )
    };
    services
        .create(&PostParams::default(), &opted_in("web"))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &opted_in("api"))
        .await
        .unwrap();
    let first = eventually(WAIT, "a leader for web", || leader_of(&test, "web-leader")).await;
    eventually(WAIT, "a leader for api", || leader_of(&test, "api-leader")).await;
    // Failover: the leader pod deleted.
    let pods: Api<Pod> = test.api();
    pods.delete(&first, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually(WAIT, "failover", || async {
        leader_of(&test, "web-leader")
            .await
            .filter(|now| *now != first)
    })
    .await;
    // Opting out removes the leader Service and its slice.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"zen-lead.io/enabled": null}}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "web-leader removed", || async {
        services
            .get_opt("web-leader")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // A leader Service whose source is gone is checked with the API server, then removed.
    services
        .delete("api", &DeleteParams::background())
        .await
        .unwrap();
    eventually(WAIT, "api-leader removed", || async {
        services
            .get_opt("api-leader")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually(WAIT, "gone-leader removed", || async {
        services
            .get_opt("gone-leader")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.errors, 0, "{summary:?}");
    // An Event is patched only when the same one repeats within minutes.
    check_access(
        &test,
        &user,
        &permissions,
        &[("patch", "events.k8s.io", "events")],
    );
    uninstall_leaves_nothing(&test, &component).await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_controller_runs_under_exactly_the_rbac_it_is_installed_with() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let component = web_app();
    let plan = plan_of(&component);
    let objects = install::manifests(&component, &options(&test)).unwrap();
    dry_run(&test, &objects);
    install::apply(&test.cluster, &objects, false)
        .await
        .unwrap();
    let election = ElectionOptions::new(&test.namespace, &component.lease(), "install-test");
    let controller = ControllerOptions {
        election: Some(election),
        resync: Duration::from_secs(60),
        ..ControllerOptions::default()
    };
    let permissions = reconcile::permissions(plan, &controller).unwrap();

    let user = service_account(&test, &component);
    let as_sa = connect_as(&test, &user).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (stop, plan) = (stop.clone(), Arc::clone(plan));
        async move { reconcile::run_controller(as_sa, plan, &controller, &stop).await }
    });
    let crd = plan.crd()["metadata"]["name"].as_str().unwrap().to_owned();
    let resource = instance_api(&test).await;
    assert!(crd.starts_with("zeninstalltestwebapps."), "{crd}");
    // Now that the controller has installed its CRD, kubectl can name the instances.
    check_can_i(&test, &component, &permissions);
    let instances: Api<DynamicObject> =
        Api::namespaced_with(test.client.clone(), &test.namespace, &resource);
    let instance = |ingress: bool| -> DynamicObject {
        support::object(
            json!({"apiVersion": "kro.run/v1alpha1", "kind": INSTANCE_KIND,
            "metadata": {"name": "shop"},
            "spec": {"name": "shop", "image": "nginx:1.27", "env": {"MODE": "test"}, "ingress": {"enabled": ingress}}}),
        )
    };
    let params = PatchParams::apply("install-test");
    instances
        .patch("shop", &params, &Patch::Apply(instance(true)))
        .await
        .unwrap();
    let ingresses: Api<DynamicObject> = Api::namespaced_with(
        test.client.clone(),
        &test.namespace,
        &ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&()),
    );
    eventually(WAIT, "the instance's Ingress", || async {
        ingresses.get_opt("shop").await.unwrap().map(|_| ())
    })
    .await;
    // Turned off, the Ingress is pruned; deleted, the instance's objects go first.
    instances
        .patch("shop", &params, &Patch::Apply(instance(false)))
        .await
        .unwrap();
    eventually(WAIT, "the Ingress pruned", || async {
        ingresses
            .get_opt("shop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    instances
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    support::gone(&instances, "shop", WAIT).await;
    stop.cancel();
    run.await.unwrap().unwrap();
    // Objects without dependents are gone at once, before a watch for their deletion starts;
    // the Service's dependent (the Ingress) can be gone before it is deleted, and then so is
    // the Service (seen once in five runs here). Only the Deployment's readyWhen always watches.
    let timing = [
        ("watch", "", "configmaps"),
        ("watch", "", "services"),
        ("watch", "networking.k8s.io", "ingresses"),
        ("watch", "autoscaling", "horizontalpodautoscalers"),
        ("watch", "policy", "poddisruptionbudgets"),
        // An Event is patched only when the same one repeats within minutes.
        ("patch", "events.k8s.io", "events"),
    ];
    check_access(&test, &user, &permissions, &timing);
    uninstall_leaves_nothing(&test, &component).await;
    support::remove(
        &Api::<CustomResourceDefinition>::all(test.client.clone()),
        &crd,
    )
    .await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_as_a_graph_reconciles_to_the_same_objects() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let graph = install::graph(&Component::Lead).unwrap();
    let said = serde_json::to_string(&graph).unwrap();
    let mut graphs =
        kubezen::graph::parse_str(&said, "zen-lead.yaml", &kubezen::graph::Catalog::builtin())
            .unwrap();
    let graph = graphs.remove(0);
    assert!(!graph.has_errors(), "{:?}", graph.diagnostics);
    let plan = Arc::new(Plan::new(&graph).unwrap());
    let reconciler = kubezen::reconcile::Reconciler::new(test.cluster.clone(), Arc::clone(&plan));
    let namespace = format!("{}-zl", test.namespace);
    let instance = reconciler
        .admit(json!({"apiVersion": "kro.run/v1alpha1", "kind": "ZenLead", "metadata": {"name": "zen-lead"},
            "spec": {"namespace": namespace, "replicas": 3}}))
        .unwrap();
    let rendering = plan.render_offline(&instance).unwrap();
    let expected = install::manifests(
        &Component::Lead,
        &InstallOptions {
            namespace: namespace.clone(),
            replicas: 3,
            ..InstallOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rendering.resources.len(), expected.len());
    for rendered in &rendering.resources {
        assert!(
            rendered.unknown.is_empty(),
            "{}: {:?}",
            rendered.id,
            rendered.unknown
        );
        let mut object = rendered.objects[0].clone();
        for key in [
            "app.kubernetes.io/managed-by",
            "applyset.kubernetes.io/part-of",
            "zen.kubezen.io/graph",
            "zen.kubezen.io/instance",
            "zen.kubezen.io/resource-id",
        ] {
            if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
                labels.remove(key);
            }
        }
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.remove("annotations");
        }
        let wanted = expected
            .iter()
            .find(|o| {
                o["kind"] == object["kind"] && o["metadata"]["name"] == object["metadata"]["name"]
            })
            .unwrap_or_else(|| panic!("{} is not in the install", rendered.id));
        assert_eq!(&object, wanted, "{}", rendered.id);
    }
    // Applied by the reconcile engine, the controller's account gets what it needs.
    let report = reconciler
        .apply(
            &instance,
            &kubezen::reconcile::Options::default(),
            &(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let (yes, said) = kubectl(
        &test,
        &[
            "auth",
            "can-i",
            "patch",
            "endpointslices.discovery.k8s.io",
            "-A",
            "--as",
            &format!("system:serviceaccount:{namespace}:zen-lead"),
        ],
        None,
    );
    assert!(yes, "{said}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(test.client.clone());
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    uninstall(&test, &Component::Lead, &namespace)
        .await
        .unwrap();
    // Gone before the next test that installs zen-lead counts what carries its label.
    support::remove(&namespaces, &namespace).await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_are_one_per_controller_and_uninstall_takes_only_its_own() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let other = format!("{}-other", test.namespace);
    let outcome = AssertUnwindSafe(two_namespaces_two_controllers(&test, &other))
        .catch_unwind()
        .await;
    // Whatever happened, nothing of the test stays (and no binding names `other` for the next).
    for component in [Component::Lead, web_app()] {
        let _ = uninstall(&test, &component, &other).await;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(test.client.clone());
    let _ = namespaces.delete(&other, &DeleteParams::default()).await;
    test.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_whose_namespace_is_gone_is_stale_and_gives_way() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(test.client.clone());
    // zen-lead installed in a Namespace that is then deleted by hand, the install left behind:
    // its ClusterRoleBinding names a ServiceAccount that no longer exists.
    let gone = format!("{}-gone", test.namespace);
    let there = InstallOptions {
        namespace: gone.clone(),
        ..InstallOptions::default()
    };
    let stale = install::manifests(&Component::Lead, &there).unwrap();
    install::apply(&test.cluster, &stale, false).await.unwrap();
    support::remove(&namespaces, &gone).await;

    let here = install::manifests(&Component::Lead, &options(&test)).unwrap();
    let dry = install::apply(&test.cluster, &here, true).await.unwrap();
    assert_eq!(
        (dry[0].kind.as_str(), dry[0].action),
        ("ClusterRoleBinding", "deleted (stale)"),
        "{dry:?}"
    );
    let applied = install::apply(&test.cluster, &here, false).await.unwrap();
    assert_eq!(
        (
            applied[0].kind.as_str(),
            applied[0].name.as_str(),
            applied[0].action
        ),
        (
            "ClusterRoleBinding",
            "kubectl-zen:zen-lead",
            "deleted (stale)"
        ),
        "{applied:?}"
    );
    assert!(
        applied[1..].iter().all(|c| c.action != "deleted (stale)"),
        "{applied:?}"
    );
    // The binding names this install's ServiceAccount now, and a second apply finds nothing stale.
    let (_, said) = kubectl(
        &test,
        &[
            "get",
            "clusterrolebinding",
            "kubectl-zen:zen-lead",
            "-o",
            "jsonpath={.subjects[0].namespace}",
        ],
        None,
    );
    assert_eq!(said.trim(), test.namespace);
    let again = install::apply(&test.cluster, &here, false).await.unwrap();
    assert!(
        again.iter().all(|c| c.action != "deleted (stale)"),
        "{again:?}"
    );
    uninstall_leaves_nothing(&test, &Component::Lead).await;
    test.cleanup().await;
}

/// An instance `shop` reconciled and held by the controller's finalizer, as it leaves them.
async fn held_instance(
    test: &TestCluster,
    reconciler: &reconcile::Reconciler,
    instances: &Api<DynamicObject>,
) {
    let instance = json!({"apiVersion": "kro.run/v1alpha1", "kind": INSTANCE_KIND,
        "metadata": {"name": "shop", "namespace": test.namespace, "finalizers": [reconcile::FINALIZER]},
        "spec": {"name": "shop", "image": "nginx:1.27", "env": {"MODE": "test"}, "ingress": {"enabled": false}}});
    let admitted = reconciler.admit(instance.clone()).unwrap();
    let report = reconciler
        .apply(
            &admitted,
            &reconcile::Options::default(),
            &(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(report.ok(), "{report:#?}");
    instances
        .patch(
            "shop",
            &PatchParams::apply("test"),
            &Patch::Apply(&instance),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_releases_the_instances_the_finalizer_holds_or_refuses() {
    let _turn = INSTALLS.lock().await;
    let test = cluster().await;
    let component = web_app();
    let plan = plan_of(&component);
    let crds: Api<DynamicObject> = Api::all_with(
        test.client.clone(),
        &ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let crd = plan.crd()["metadata"]["name"].as_str().unwrap().to_owned();
    crds.patch(&crd, &PatchParams::apply("test"), &Patch::Apply(plan.crd()))
        .await
        .unwrap();
    let instances = Api::<DynamicObject>::namespaced_with(
        test.client.clone(),
        &test.namespace,
        &instance_api(&test).await,
    );
    let reconciler = reconcile::Reconciler::new(test.cluster.clone(), Arc::clone(plan));
    let objects = install::manifests(&component, &options(&test)).unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = test.api();
    for held in [HeldInstances::Delete, HeldInstances::Orphan] {
        install::apply(&test.cluster, &objects, false)
            .await
            .unwrap();
        held_instance(&test, &reconciler, &instances).await;
        let refused = uninstall(&test, &component, &test.namespace)
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "zen-reconcile-web-app's finalizer holds 1 instances ({}/shop): without the controller nothing would release them",
                test.namespace
            )
        );
        assert_eq!(
            labelled(&test, &component.name()).len(),
            objects.len() - 1,
            "nothing deleted"
        );

        let changes = install::uninstall(&test.cluster, &component, &test.namespace, held, false)
            .await
            .unwrap();
        let action = if held == HeldInstances::Delete {
            "deleted"
        } else {
            "released"
        };
        assert!(
            changes
                .iter()
                .any(|c| c.kind == INSTANCE_KIND && c.name == "shop" && c.action == action),
            "{changes:?}"
        );
        assert!(labelled(&test, &component.name()).is_empty());
        let live = instances.get_opt("shop").await.unwrap();
        if held == HeldInstances::Delete {
            // Deleted in order, and nothing holds the instance any more.
            assert!(deployments.get_opt("shop").await.unwrap().is_none());
            support::gone(&instances, "shop", WAIT).await;
        } else {
            // Released: the instance and its objects stay, and a delete now goes through.
            let live = live.expect("the orphaned instance stays");
            assert!(live.metadata.finalizers.unwrap_or_default().is_empty());
            assert!(deployments.get_opt("shop").await.unwrap().is_some());
            support::remove(&instances, "shop").await;
        }
    }
    support::remove(
        &Api::<CustomResourceDefinition>::all(test.client.clone()),
        &crd,
    )
    .await;
    test.cleanup().await;
}

/// What uninstall deleted, but the Lease (real pods may have taken it) as (kind, name).
fn deleted(changes: &[install::Change]) -> Vec<(String, String)> {
    let mut deleted: Vec<_> = changes
        .iter()
        .filter(|c| c.action == "deleted" && c.kind != "Lease")
        .map(|c| (c.kind.clone(), c.name.clone()))
        .collect();
    deleted.sort();
    deleted
}

async fn two_namespaces_two_controllers(test: &TestCluster, other: &str) {
    let there = InstallOptions {
        namespace: other.to_owned(),
        ..InstallOptions::default()
    };
    let lead = install::manifests(&Component::Lead, &there).unwrap();
    install::apply(&test.cluster, &lead, false).await.unwrap();
    // The install made the Namespace: label it a test's, for `kubectl delete ns -l` after a crash.
    let namespaces: Api<DynamicObject> = Api::all_with(
        test.client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    let label = json!({"metadata": {"labels": {"kubezen.io/test": "true"}}});
    namespaces
        .patch(other, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let again = install::apply(&test.cluster, &lead, false).await.unwrap();
    assert!(
        again.iter().all(|c| c.action == "serverside-applied"),
        "{again:?}"
    );

    // zen-lead again, in another namespace: refused before anything is applied.
    let here = install::manifests(&Component::Lead, &options(test)).unwrap();
    let refused = install::apply(&test.cluster, &here, true)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, install::InstallError::Elsewhere { name, namespace }
            if name == "zen-lead" && namespace == other),
        "{refused}"
    );
    assert_eq!(
        refused.to_string(),
        format!(
            "zen-lead is installed in namespace {other} already: one install of a controller per cluster"
        )
    );
    // An uninstall here takes nothing of the install there: not its Namespace, not its RBAC.
    let none = uninstall(test, &Component::Lead, &test.namespace)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(labelled(test, "zen-lead").len(), lead.len());

    // A second controller in the same Namespace: uninstalling either keeps it for the other.
    let graph = web_app();
    let reconcile = install::manifests(&graph, &there).unwrap();
    let applied = install::apply(&test.cluster, &reconcile, false)
        .await
        .unwrap();
    assert_eq!(applied[0].kind, "Namespace");
    let first = uninstall(test, &Component::Lead, other).await.unwrap();
    let namespace = first.last().unwrap();
    assert_eq!(
        (namespace.kind.as_str(), namespace.action),
        ("Namespace", "kept"),
        "{first:?}"
    );
    let mut wanted: Vec<_> = lead
        .iter()
        .filter(|o| o["kind"] != "Namespace")
        .map(|o| {
            let field = |f: &str| o[f].as_str().unwrap_or_default().to_owned();
            (
                field("kind"),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    wanted.sort();
    assert_eq!(deleted(&first), wanted);
    assert_eq!(labelled(test, &graph.name()).len(), reconcile.len());

    let last = uninstall(test, &graph, other).await.unwrap();
    let namespace = last.last().unwrap();
    assert_eq!(
        (
            namespace.kind.as_str(),
            namespace.name.as_str(),
            namespace.action
        ),
        ("Namespace", other, "deleted"),
        "the last install out takes the Namespace: {last:?}"
    );
    assert_eq!(deleted(&last).len(), reconcile.len());
    // A Namespace being deleted keeps its labels until its pods are gone: count the rest.
    eventually(
        Duration::from_secs(120),
        "nothing labelled left",
        || async {
            let left: Vec<String> = [labelled(test, "zen-lead"), labelled(test, &graph.name())]
                .concat()
                .into_iter()
                .filter(|object| !object.starts_with("namespace/"))
                .collect();
            left.is_empty().then_some(())
        },
    )
    .await;
}
