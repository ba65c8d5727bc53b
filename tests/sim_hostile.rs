//! zen-sim under hostile input: every bad request gets a clear error, and the server and its
//! control plane keep working afterwards.

use std::fmt::Write as _;
use std::time::Duration;

use http_body_util::BodyExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kubezen::sim::{Sim, SimOptions};
use serde_json::{Value, json};

struct Raw {
    client: kube::Client,
}

impl Raw {
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap();
        let response = self
            .client
            .send(request.map(Into::into))
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn json(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> (u16, Value) {
        self.send(
            method,
            path,
            content_type,
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }
}

async fn start() -> (Sim, Raw) {
    let sim = Sim::start(SimOptions::default()).await.unwrap();
    let client = kube::Client::try_from(sim.kube_config().await.unwrap()).unwrap();
    (sim, Raw { client })
}

const MAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn a_json_patch_that_copies_a_tree_into_itself_is_refused() {
    let (_sim, raw) = start().await;
    raw.json(
        "POST",
        MAPS,
        "application/json",
        &json!({"metadata": {"name": "c"}}),
    )
    .await;
    let mut operations = vec![json!({"op": "add", "path": "/x", "value": {"a": {}}})];
    let mut path = "/x/a".to_owned();
    for _ in 0..40 {
        operations.push(json!({"op": "copy", "from": "/x", "path": format!("{path}/a")}));
        path.push_str("/a");
    }
    let (status, body) = raw
        .json(
            "PATCH",
            &format!("{MAPS}/c"),
            "application/json-patch+json",
            &json!(operations),
        )
        .await;
    assert!(matches!(status, 413 | 422), "{status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("levels deep") || message.contains("values"),
        "{body}"
    );
    let too_many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let (status, body) = raw
        .json(
            "PATCH",
            &format!("{MAPS}/c"),
            "application/json-patch+json",
            &json!(too_many),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = raw
        .send("GET", &format!("{MAPS}/c"), "application/json", Vec::new())
        .await;
    assert_eq!(status, 200, "the object is untouched and the server alive");
}

#[tokio::test]
async fn yaml_alias_bombs_are_refused() {
    let (_sim, raw) = start().await;
    let mut yaml =
        String::from("metadata: {name: bomb}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 0..8 {
        let alias = if level == 0 {
            "*a".to_owned()
        } else {
            format!("*l{}", level - 1)
        };
        let _ = writeln!(
            yaml,
            "  l{level}: &l{level} [{}]",
            vec![alias; 10].join(", ")
        );
    }
    let (status, body) = raw
        .send("POST", MAPS, "application/yaml", yaml.into_bytes())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("aliases"),
        "{body}"
    );
    let plain = b"metadata: {name: plain}\ndata: {a: b}\n".to_vec();
    let (status, body) = raw.send("POST", MAPS, "application/yaml", plain).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // the table of bad requests
async fn malformed_objects_get_clear_errors_and_break_nothing() {
    let (sim, raw) = start().await;
    let cases: Vec<(&str, String, &str, Value)> = vec![
        (
            "POST",
            MAPS.into(),
            "application/json",
            json!({"metadata": "x"}),
        ),
        (
            "POST",
            MAPS.into(),
            "application/json",
            json!({"metadata": {"name": "l", "labels": {"a": 5}}}),
        ),
        ("POST", MAPS.into(), "application/json", json!([1, 2])),
        (
            "POST",
            "/api/v1/namespaces/default/services".into(),
            "application/json",
            json!({"metadata": {"name": "s"}, "spec": []}),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods".into(),
            "application/json",
            json!({"metadata": {"name": "p"}, "spec": "x"}),
        ),
        (
            "PATCH",
            format!("{MAPS}/new?fieldManager=m"),
            "application/apply-patch+yaml",
            json!([]),
        ),
        (
            "PATCH",
            format!("{MAPS}/new?fieldManager=m"),
            "application/apply-patch+yaml",
            json!(5),
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/status".into(),
            "application/json",
            json!({"metadata": {"name": "default"}, "status": "x"}),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments".into(),
            "application/json",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}}),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments".into(),
            "application/json",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 1_000_000_000_000_i64, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}}}}),
        ),
        (
            "POST",
            "/apis/batch/v1/namespaces/default/jobs".into(),
            "application/json",
            json!({"metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": "x"}, "spec": {"containers": [{"name": "a", "image": "i"}]}}}}),
        ),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
            "application/json",
            json!({"metadata": {"name": "deployments.apps"}, "spec": {"group": "apps", "scope": "Namespaced",
                "names": {"plural": "deployments", "kind": "Deployment"}, "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        ),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
            "application/json",
            json!({"metadata": {"name": "things.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"}, "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": true}}]}}),
        ),
    ];
    for (method, path, content_type, body) in &cases {
        let (status, answer) = raw.json(method, path, content_type, body).await;
        assert!(
            matches!(status, 400 | 404 | 422),
            "{method} {path} {body}: {status} {answer}"
        );
        assert_eq!(answer["kind"], "Status", "{answer}");
        assert!(!answer["message"].as_str().unwrap_or_default().is_empty());
    }
    // The control plane still runs: a valid Deployment gets its ready pods.
    let deployments: Api<Deployment> = Api::namespaced(raw.client.clone(), "default");
    let good = serde_json::from_value(json!({"metadata": {"name": "good"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "good"}},
        "template": {"metadata": {"labels": {"app": "good"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}}}}))
    .unwrap();
    deployments
        .create(&PostParams::default(), &good)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let ready = deployments
            .get("good")
            .await
            .unwrap()
            .status
            .and_then(|status| status.ready_replicas);
        if ready == Some(2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the control plane stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
            == 1
    );
    assert!(sim.stats().requests > cases.len() as u64);
}

#[tokio::test]
async fn huge_and_deep_bodies_are_refused() {
    let (_sim, raw) = start().await;
    let huge = format!(
        r#"{{"metadata": {{"name": "huge"}}, "data": {{"a": "{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let (status, _) = raw
        .send("POST", MAPS, "application/json", huge.into_bytes())
        .await;
    assert_eq!(status, 413);
    let deep = format!(
        r#"{{"metadata": {{"name": "deep"}}, "data": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (status, body) = raw
        .send("POST", MAPS, "application/json", deep.into_bytes())
        .await;
    assert_eq!(status, 400, "{body}");
}
