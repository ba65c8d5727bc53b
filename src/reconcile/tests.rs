//! Unit tests of rendering, admission and the ownership helpers.

use serde_json::json;

use super::{Plan, ReconcileError, contained, hash_json, label_value};
use crate::graph::{self, Catalog};

fn plan(yaml: &str) -> Plan {
    let graphs = graph::parse_str(yaml, "t.yaml", &Catalog::builtin()).unwrap();
    Plan::new(&graphs[0]).unwrap()
}

const COLLECTION: &str = r#"
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {name: pool}
spec:
  schema:
    apiVersion: v1alpha1
    kind: Pool
    spec:
      regions: "[]string | required=true"
      metrics: boolean | default=false
    status:
      first: ${workers[0].metadata.name}
      ready: ${workers[0].status.readyReplicas}
  resources:
    - id: secret
      externalRef:
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
    - id: workers
      forEach:
        - region: ${schema.spec.regions}
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "w-${region}"}
        data: {secret: "${secret.metadata.name}", version: "${secret.metadata.resourceVersion}"}
    - id: exporter
      includeWhen: ["${schema.spec.metrics}"]
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: exporter}
    - id: dashboard
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${exporter.metadata.name}-dash"}
"#;

fn pool(spec: &serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "kro.run/v1alpha1", "kind": "Pool", "metadata": {"name": "p"}, "spec": spec})
}

#[test]
fn collections_expand_exclusion_propagates_and_unknowns_are_kept_as_written() {
    let plan = plan(COLLECTION);
    let instance = plan
        .admit(pool(&json!({"regions": ["eu", "us"]})), "ns")
        .unwrap();
    let rendering = plan.render_offline(&instance).unwrap();
    let workers = rendering
        .resources
        .iter()
        .find(|r| r.id == "workers")
        .unwrap();
    let names: Vec<&str> = workers
        .objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w-eu", "w-us"]);
    assert_eq!(workers.objects[0]["data"]["secret"], "creds");
    assert_eq!(
        workers.objects[0]["data"]["version"],
        "${secret.metadata.resourceVersion}"
    );
    assert_eq!(workers.unknown, ["data.version", "data.version"]);
    assert_eq!(workers.objects[0]["metadata"]["namespace"], "ns");
    let excluded: Vec<&str> = rendering
        .resources
        .iter()
        .filter(|r| !r.included)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        excluded,
        ["exporter", "dashboard"],
        "a dependent of an excluded resource is excluded"
    );
    let secret = rendering
        .resources
        .iter()
        .find(|r| r.id == "secret")
        .unwrap();
    assert!(secret.external);
    assert!(
        secret.objects[0]["metadata"]["labels"].is_null(),
        "external references are not labelled"
    );
    assert_eq!(
        rendering.status,
        json!({"first": "w-eu"}),
        "unknowable status fields are left out"
    );
}

#[test]
fn admission_reports_every_problem_with_its_path() {
    let plan = plan(COLLECTION);
    let Err(ReconcileError::Invalid(problems)) = plan.admit(
        json!({"apiVersion": "kro.run/v1", "kind": "Pool", "metadata": {"name": "Bad_Name"}, "spec": {"metrics": "yes", "x": 1}}),
        "ns",
    ) else {
        panic!("invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for path in [
        "apiVersion",
        "metadata.name",
        "spec.metrics",
        "spec.regions",
        "spec.x",
    ] {
        assert!(paths.contains(&path), "{path} in {problems:?}");
    }
    let defaults = plan.admit(pool(&json!({"regions": []})), "ns").unwrap();
    assert_eq!(defaults.object["spec"]["metrics"], false);
    assert_eq!(defaults.namespace.as_deref(), Some("ns"));
    assert!(plan.admit(json!(["not", "an", "object"]), "ns").is_err());
}

#[test]
fn runtime_errors_name_the_resource_and_field() {
    let yaml = COLLECTION.replace(
        "metadata: {name: exporter}",
        "metadata: {name: \"${string(1 / 0)}\"}",
    );
    let plan = plan(&yaml);
    let instance = plan
        .admit(pool(&json!({"regions": [], "metrics": true})), "ns")
        .unwrap();
    let error = plan.render_offline(&instance).unwrap_err().to_string();
    assert!(
        error.starts_with("resource exporter: metadata.name: "),
        "{error}"
    );
}

#[test]
fn graphs_with_errors_are_refused() {
    let yaml = COLLECTION.replace(
        "${exporter.metadata.name}-dash",
        "${dashboard.metadata.name}",
    );
    let graphs = graph::parse_str(&yaml, "t.yaml", &Catalog::builtin()).unwrap();
    assert!(matches!(
        Plan::new(&graphs[0]),
        Err(ReconcileError::Graph(_))
    ));
}

#[test]
fn labels_containment_and_hashes() {
    assert_eq!(label_value("web-app"), "web-app");
    let long = "x".repeat(64);
    let hashed = label_value(&long);
    assert!(hashed.starts_with("h-") && hashed.len() <= 63 && hashed == label_value(&long));
    assert!(label_value("-bad").starts_with("h-"));
    let desired = json!({"spec": {"ports": [{"port": 80}], "replicas": 2}});
    let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "replicas": 2.0, "extra": true}});
    assert!(
        contained(&desired, &live),
        "server defaults and extra fields do not count"
    );
    assert!(!contained(
        &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
        &live
    ));
    assert!(!contained(&json!({"spec": {"replicas": 3}}), &live));
    assert_eq!(hash_json(&desired), hash_json(&desired.clone()));
    assert_ne!(hash_json(&desired), hash_json(&live));
}

#[test]
fn diffs_never_show_secret_data_but_show_that_it_changed() {
    let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "uid": "u"},
                      "data": {"password": "c2VjcmV0"}});
    let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "data": {"password": "bmV3"}});
    let diff = crate::cluster::yaml_diff(Some(&live), Some(&desired));
    assert!(
        !diff.contains("c2VjcmV0") && !diff.contains("bmV3"),
        "{diff}"
    );
    assert!(
        diff.contains("-  password: (redacted, sha256 ") && diff.contains("+  password: (redacted"),
        "{diff}"
    );
    assert!(
        !diff.contains("uid"),
        "server-managed fields are left out: {diff}"
    );
}

#[test]
fn deeply_nested_instances_are_refused_not_crashed_on() {
    let plan = plan(
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: deep}\nspec:\n  schema:\n    apiVersion: v1alpha1\n    kind: Deep\n    spec: {config: object}\n  resources:\n    - id: c\n      template: {apiVersion: v1, kind: ConfigMap, metadata: {name: \"${schema.metadata.name}\"}}\n",
    );
    let mut config = json!("leaf");
    for _ in 0..200 {
        config = json!({"n": config});
    }
    let Err(ReconcileError::Invalid(problems)) = plan.admit(
        json!({"apiVersion": "kro.run/v1alpha1", "kind": "Deep", "metadata": {"name": "d"}, "spec": {"config": config}}),
        "ns",
    ) else {
        panic!("too deep");
    };
    assert!(problems[0].message.contains("deeper than"), "{problems:?}");
    assert!(problems[0].path.starts_with("spec.config"), "{problems:?}");
}

#[test]
fn apply_sets_of_different_instances_never_share_a_parent() {
    let graph = |name: &str| {
        COLLECTION.replace(
            "metadata: {name: pool}",
            &format!("metadata: {{name: {name}}}"),
        )
    };
    let (web, web_app) = (plan(&graph("web")), plan(&graph("web-app")));
    let named = |plan: &Plan, name: &str| {
        plan.admit(
            json!({"apiVersion": "kro.run/v1alpha1", "kind": "Pool", "metadata": {"name": name}, "spec": {"regions": []}}),
            "ns",
        )
        .unwrap()
    };
    let a = super::parent_name(&web, &named(&web, "app-prod"));
    let b = super::parent_name(&web_app, &named(&web_app, "prod"));
    assert!(a.starts_with("zen-web-app-prod-") && b.starts_with("zen-web-app-prod-"));
    assert_ne!(a, b);
    let long = "x".repeat(250);
    let hashed = super::parent_name(&web, &named(&web, &long));
    assert!(
        hashed.len() <= 253 && hashed.starts_with("zen-"),
        "{hashed}"
    );
}
