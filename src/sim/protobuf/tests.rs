use serde_json::json;

use super::*;

#[test]
fn the_generated_schema_parses_and_knows_the_built_in_kinds_only() {
    for (api_version, kind) in [
        ("v1", "Namespace"),
        ("apps/v1", "Deployment"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "Status"),
    ] {
        assert!(SCHEMA.kind(api_version, kind).is_some(), "{kind}");
    }
    assert!(SCHEMA.kind("example.com/v1", "Widget").is_none());
    // Generated from the release the tests' control plane runs (v1.X.Y is k8s.io/api v0.X.Y).
    let go_mod = include_str!("../../../tests/control-plane/kubernetes/go.mod");
    let release = go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes v1."))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("go.mod requires k8s.io/kubernetes");
    assert_eq!(schema_release(), format!("v0.{release}"));
    let generator = include_str!("../../../tests/control-plane/protoschema/go.mod");
    assert!(generator.contains(&format!("k8s.io/client-go v0.{release}\n")));
    assert!(SCHEMA.kind("v1", "Widget").is_none());
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"},
                     "creationTimestamp": "2026-12-07T10:00:00Z"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                }]},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
        },
    })
}

#[test]
fn objects_read_back_as_the_api_servers_go_structs_write_them() {
    let bytes = encode(&deployment()).unwrap();
    assert!(bytes.starts_with(MAGIC));
    let decoded = decode(&bytes).unwrap();
    let mut expected = deployment();
    // Go writes what its structs hold: a struct even when empty (omitempty does not apply),
    // a field without omitempty even when zero; a zero creationTimestamp is omitzero.
    expected["status"] = json!({});
    assert_eq!(decoded, expected);
    // The pointer's zero is kept: replicas 0 is not "no replicas".
    assert_eq!(decoded["spec"]["replicas"], 0);
    assert_eq!(decode(&encode(&decoded).unwrap()).unwrap(), decoded);
}

#[test]
fn secrets_bytes_and_special_types_keep_their_json_forms() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "type": "Opaque", "data": {"token": "czNjcmV0", "empty": ""}});
    assert_eq!(decode(&encode(&secret).unwrap()).unwrap(), secret);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                       "spec": {"holderIdentity": "a", "renewTime": "2026-12-07T10:00:00.123456Z",
                                "leaseDurationSeconds": 15}});
    assert_eq!(decode(&encode(&lease).unwrap()).unwrap(), lease);
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                        "metadata": {},
                        "spec": {"user": "u", "extra": {"scopes": ["a", "b"]},
                                 "resourceAttributes": {"verb": "get", "resource": "pods"}},
                        "status": {"allowed": false}});
    assert_eq!(decode(&encode(&review).unwrap()).unwrap(), review);
    let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                        "message": "m", "reason": "NotFound", "code": 404,
                        "details": {"name": "x", "kind": "pods"}});
    assert_eq!(decode(&encode(&status).unwrap()).unwrap(), status);
}

#[test]
fn custom_resource_definitions_keep_their_schemas() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"spec": {"type": "object", "additionalProperties": false,
                         "properties": {"size": {"type": "integer", "maximum": 10.5, "default": 3},
                                        "tags": {"type": "array", "items": {"type": "string"}}}}}}}}]},
        "status": {"acceptedNames": {"plural": "", "kind": ""}, "conditions": null, "storedVersions": null},
    });
    assert_eq!(decode(&encode(&crd).unwrap()).unwrap(), crd);
}

#[test]
fn hostile_bodies_get_a_clear_error_and_never_a_panic() {
    let bytes = encode(&deployment()).unwrap();
    // Every truncation of a real body is refused or read as a shorter message, never a panic.
    for length in 0..bytes.len() {
        let _ = decode(&bytes[..length]);
    }
    for (body, says) in [
        (&b"{\"kind\": \"Namespace\"}"[..], "expected prefix"),
        (b"k8s\0\x12\xff\xff\xff\x7f", "unexpected end of data"),
        (b"k8s\0\x0a\x00", "names no kind"),
        (
            b"k8s\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            "varint",
        ),
        (b"k8s\0\x0f", "wire type 7"),
    ] {
        let error = decode(body).unwrap_err();
        assert!(error.contains(says), "{says}: {error}");
    }
    let mut widget = deployment();
    widget["apiVersion"] = json!("example.com/v1");
    widget["kind"] = json!("Widget");
    assert!(encode(&widget).unwrap_err().contains("no protobuf form"));
    // A Deployment's replicas sent as a string: the wire type is wrong.
    let mut meta = Vec::new();
    write_text(&mut meta, 1, "apps/v1");
    write_text(&mut meta, 2, "Deployment");
    let mut spec = Vec::new();
    write_text(&mut spec, 1, "three");
    let mut raw = Vec::new();
    write_bytes(&mut raw, 2, &spec);
    let mut body = MAGIC.to_vec();
    write_bytes(&mut body, 1, &meta);
    write_bytes(&mut body, 2, &raw);
    assert!(
        decode(&body)
            .unwrap_err()
            .contains("field replicas: wire type 2")
    );
}

#[test]
fn schemas_nested_too_deep_are_refused() {
    let props = SCHEMA.props.unwrap();
    let mut nested = Vec::new();
    for _ in 0..=MAX_DEPTH {
        let mut outer = Vec::new();
        write_bytes(&mut outer, 28, &nested);
        nested = outer;
    }
    let error = message_value(props, &nested, 0).unwrap_err();
    assert!(error.contains("nests more than"), "{error}");
    let mut shallow = Vec::new();
    write_bytes(&mut shallow, 28, &[]);
    assert_eq!(message_value(props, &shallow, 0).unwrap()["not"], json!({}));
}

#[test]
fn times_are_read_as_chrono_reads_them() {
    for text in [
        "2026-12-07T10:00:00Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2000-02-29T12:34:56.123456Z",
        "2024-12-31T23:59:59.5Z",
        "0001-01-01T00:00:00Z",
        "2026-12-07T10:00:00+02:00",
    ] {
        let time = chrono::DateTime::parse_from_rfc3339(text).unwrap();
        assert_eq!(
            parse_time(text),
            Some((time.timestamp(), time.timestamp_subsec_nanos())),
            "{text}"
        );
    }
    for text in [
        "",
        "yesterday",
        "2026-13-07T10:00:00Z",
        "2026-12-07T10:00:00",
    ] {
        assert_eq!(parse_time(text), None, "{text}");
    }
}

#[test]
fn a_map_sent_in_two_runs_is_one_map_and_the_last_scalar_wins() {
    let mut meta = Vec::new();
    let label = |key: &str, value: &str| {
        let mut entry = Vec::new();
        write_text(&mut entry, 1, key);
        write_text(&mut entry, 2, value);
        entry
    };
    write_bytes(&mut meta, 11, &label("a", "1"));
    write_text(&mut meta, 1, "first");
    write_bytes(&mut meta, 11, &label("b", "2"));
    write_text(&mut meta, 1, "second");
    write_text(&mut meta, 2, "");
    let mut raw = Vec::new();
    write_bytes(&mut raw, 1, &meta);
    let mut envelope = Vec::new();
    write_text(&mut envelope, 2, "ConfigMap");
    let mut body = MAGIC.to_vec();
    write_bytes(&mut body, 1, &envelope);
    write_bytes(&mut body, 2, &raw);
    // An envelope without an apiVersion is refused; one without a kind is read as the
    // endpoint's kind, as kube-apiserver does.
    assert!(decode(&body).unwrap_err().contains("no kind \"ConfigMap\""));
    let mut bare = MAGIC.to_vec();
    write_bytes(&mut bare, 2, &raw);
    let decoded = decode_as(&bare, "v1", "ConfigMap").unwrap();
    assert_eq!(
        decoded["metadata"],
        json!({"name": "second", "labels": {"a": "1", "b": "2"}})
    );
    let error = decode_as(&encode(&deployment()).unwrap(), "v1", "ConfigMap").unwrap_err();
    assert_eq!(
        error,
        "Deployment in version \"v1\" cannot be handled as a ConfigMap"
    );
    let error = decode_as(b"k8s\0\x0f", "v1", "ConfigMap").unwrap_err();
    assert!(
        error.starts_with("the object provided is unrecognized (must be of type ConfigMap): "),
        "{error}"
    );
}
