//! zen-sim's Kubernetes protobuf: a Deployment as kubectl's typed commands send it (and the
//! `ConfigMap` of `cargo bench --bench sim`), decoded
//! into the JSON zen-sim stores and encoded back for a client that asks for protobuf, beside
//! `serde_json` reading and writing the same object (the JSON path's cost).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kubezen::sim::protobuf;
use serde_json::{Value, json};

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "frontend"},
                     "annotations": {"owner": "team-web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"containers": [{
                    "name": "web", "image": "registry.k8s.io/nginx:1.27",
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "fast"}, {"name": "LOG", "value": "info"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                }]},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        },
    })
}

/// The `ConfigMap` of `cargo bench --bench sim`'s creates.
fn config_map() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-42", "labels": {"app": "bench", "shard": "s10", "tier": "web"},
                     "annotations": {"owner": "team-0"}},
        "data": {"mode": "fast", "replicas": "3", "url": "http://svc-42.bench.svc:8080/path"},
    })
}

/// That `ConfigMap` as zen-sim answers a create with it: server fields and `managedFields`.
fn stored_config_map() -> Value {
    let mut object = config_map();
    object["metadata"]["uid"] = json!("3cec53b8-9745-4399-dca8-bd9dd48747de");
    object["metadata"]["resourceVersion"] = json!("107");
    object["metadata"]["namespace"] = json!("bench");
    object["metadata"]["creationTimestamp"] = json!("2026-12-07T23:46:01Z");
    object["metadata"]["managedFields"] = json!([{
        "manager": "bench", "operation": "Update", "apiVersion": "v1", "time": "2026-12-07T23:46:01Z",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:mode": {}, "f:replicas": {}, "f:url": {}},
            "f:metadata": {"f:annotations": {".": {}, "f:owner": {}}, "f:labels": {".": {}, "f:app": {}, "f:shard": {}, "f:tier": {}}}},
    }]);
    object
}

fn codec(c: &mut Criterion) {
    for (name, object) in [
        ("deployment", deployment()),
        ("configmap", config_map()),
        ("stored-configmap", stored_config_map()),
    ] {
        group(c, name, &object);
    }
}

fn group(c: &mut Criterion, name: &str, object: &Value) {
    let body = protobuf::encode(object).expect("the object encodes");
    let text = serde_json::to_vec(object).expect("JSON");
    let mut group = c.benchmark_group(format!("protobuf/{name}"));
    group.bench_function("decode protobuf", |b| {
        b.iter(|| protobuf::decode(black_box(&body)).expect("decodes"));
    });
    group.bench_function("parse JSON", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&text)).expect("parses"));
    });
    group.bench_function("encode protobuf", |b| {
        b.iter(|| protobuf::encode(black_box(object)).expect("encodes"));
    });
    group.bench_function("write JSON", |b| {
        b.iter(|| serde_json::to_vec(black_box(object)).expect("writes"));
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
