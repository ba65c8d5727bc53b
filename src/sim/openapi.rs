//! The OpenAPI documents zen-sim publishes: enough for kubectl to find, for every kind, the
//! operations and the query parameters the server supports (`fieldValidation` above all, so
//! `kubectl apply` validates on the server instead of asking for the protobuf-only v2 schema).

use serde_json::{Map, Value, json};

use super::SimState;
use super::registry::ResourceType;

/// `/openapi/v2`: a Swagger document without definitions (kubectl asks for v2 in protobuf only,
/// and gets a 406; it uses v3).
pub(crate) fn v2(state: &SimState) -> Value {
    let _ = state;
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": super::KUBERNETES_VERSION}, "paths": {}, "definitions": {}})
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub(crate) fn v3_index(state: &SimState) -> Value {
    let registry = &state.store.read().registry;
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let path = group_version_path(&group, &version);
            let hash = document_hash(&registry.in_group_version(&group, &version));
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn document_hash(types: &[std::sync::Arc<ResourceType>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for resource in types {
        for byte in resource.plural.bytes().chain(resource.kind.bytes()).chain(
            resource
                .schema
                .as_ref()
                .map(std::string::ToString::to_string)
                .unwrap_or_default()
                .bytes(),
        ) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016X}")
}

/// `/openapi/v3/<api/v1 | apis/GROUP/VERSION>`: one group-version document.
pub(crate) fn v3_document(state: &SimState, path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segments.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let types = state.store.read().registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for resource in &types {
        let gvk =
            json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
        let prefix = format!("/{}", group_version_path(group, version));
        let collection = if resource.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{prefix}/{}", resource.plural)
        };
        let parameter = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let write_parameters = json!([
            parameter("dryRun"),
            parameter("fieldManager"),
            parameter("fieldValidation")
        ]);
        let mut patch_parameters = write_parameters.clone();
        if let Some(list) = patch_parameters.as_array_mut() {
            list.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
        }
        let operation = |verb: &str, parameters: &Value| {
            json!({"operationId": format!("{verb}{}", resource.kind), "x-kubernetes-action": verb,
                   "x-kubernetes-group-version-kind": gvk, "parameters": parameters})
        };
        let item = if resource.read_only {
            json!({"get": operation("get", &json!([]))})
        } else {
            json!({"get": operation("get", &json!([])), "put": operation("put", &write_parameters),
                   "patch": operation("patch", &patch_parameters), "delete": operation("delete", &json!([parameter("dryRun")]))})
        };
        let list = if resource.read_only {
            json!({"get": operation("list", &json!([]))})
        } else {
            json!({"get": operation("list", &json!([])), "post": operation("post", &write_parameters)})
        };
        paths.insert(format!("{collection}/{{name}}"), item);
        paths.insert(collection, list);
        let mut schema = resource
            .schema
            .as_deref()
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        let qualified = if resource.group.is_empty() {
            format!("io.k8s.api.core.{}.{}", resource.version, resource.kind)
        } else {
            format!("{}.{}.{}", resource.group, resource.version, resource.kind)
        };
        schemas.insert(qualified, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
