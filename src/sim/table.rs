//! Server-side printing: `meta.k8s.io/v1` Tables, with the columns `kubectl get` shows for each
//! kind, and `PartialObjectMetadata` for clients that want metadata only.

use serde_json::{Value, json};

use super::registry::ResourceType;

/// What a client asked to get back, from its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Object,
    Table,
    Metadata,
}

/// Whether one entry of `Accept` (parameters and all) takes JSON.
pub(crate) fn is_json(media: &str) -> bool {
    let kind = media.split(';').next().unwrap_or_default().trim();
    matches!(kind, "application/json" | "*/*" | "application/*" | "")
}

/// The first representation in the `Accept` header zen-sim can give.
pub(crate) fn view(accept: Option<&str>) -> View {
    for media in accept.unwrap_or_default().split(',') {
        if !is_json(media) {
            continue;
        }
        let rendering = media
            .split(';')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("as="));
        return match rendering {
            Some("Table") => View::Table,
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") => View::Metadata,
            _ => View::Object,
        };
    }
    View::Object
}

/// The object's metadata, as `PartialObjectMetadata`.
pub(crate) fn metadata_of(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

/// A `PartialObjectMetadataList`.
pub(crate) fn metadata_list(items: &[std::sync::Arc<Value>], list_metadata: &Value) -> Value {
    let items: Vec<Value> = items.iter().map(|item| metadata_of(item)).collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "items": items})
}

type Column = (&'static str, &'static str, u8);

fn columns(resource: &ResourceType) -> Vec<(String, String, u8)> {
    if resource.custom {
        let mut columns = vec![("Name".to_owned(), "string".to_owned(), 0)];
        columns.extend(
            resource
                .printer_columns
                .iter()
                .map(|(name, kind, _, priority)| (name.clone(), kind.clone(), *priority)),
        );
        if !resource
            .printer_columns
            .iter()
            .any(|(name, ..)| name.eq_ignore_ascii_case("age"))
        {
            columns.push(("Age".to_owned(), "date".to_owned(), 0));
        }
        return columns;
    }
    let mut columns: Vec<Column> = vec![("Name", "string", 0)];
    columns.extend(match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => vec![
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        ("apps", "Deployment") => vec![
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        ("apps", "ReplicaSet") => vec![
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        ("apps", "StatefulSet") => vec![("Ready", "string", 0), ("Age", "string", 0)],
        ("apps", "DaemonSet") => vec![
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "Service") => vec![
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        ("", "Namespace") => vec![("Status", "string", 0), ("Age", "string", 0)],
        ("", "Node") => vec![
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        ("", "ConfigMap") => vec![("Data", "integer", 0), ("Age", "string", 0)],
        ("", "Secret") => vec![
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "Endpoints") => vec![("Endpoints", "string", 0), ("Age", "string", 0)],
        ("batch", "Job") => vec![
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Age", "string", 0),
        ],
        ("coordination.k8s.io", "Lease") => vec![("Holder", "string", 0), ("Age", "string", 0)],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => vec![("Created At", "date", 0)],
        _ => vec![("Age", "string", 0)],
    });
    columns
        .into_iter()
        .map(|(name, kind, priority)| (name.to_owned(), kind.to_owned(), priority))
        .collect()
}

fn count(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

#[allow(clippy::too_many_lines)] // one arm per kind, as kubectl's printers
fn cells(
    resource: &ResourceType,
    object: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let age = age(&object["metadata"]["creationTimestamp"], now);
    let name = object["metadata"]["name"].clone();
    let status = &object["status"];
    let spec = &object["spec"];
    let mut cells = vec![name];
    if resource.custom {
        cells.extend(resource.printer_columns.iter().map(|(_, kind, path, _)| {
            let cell = printer_cell(object, path);
            // Dates print as ages, as the API server's CRD printer does.
            if kind == "date" && cell.is_string() {
                json!(self::age(&cell, now))
            } else {
                cell
            }
        }));
        if !resource
            .printer_columns
            .iter()
            .any(|(name, ..)| name.eq_ignore_ascii_case("age"))
        {
            cells.push(json!(age));
        }
        return cells;
    }
    cells.extend(match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => {
            let containers = spec["containers"].as_array().map_or(0, Vec::len);
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|container| container["ready"] == true)
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|container| count(&container["restartCount"]))
                .sum();
            let phase = if object["metadata"]["deletionTimestamp"].is_null() {
                status["phase"].clone()
            } else {
                json!("Terminating")
            };
            let ip = status["podIP"].as_str().unwrap_or("<none>").to_owned();
            let node = spec["nodeName"].as_str().unwrap_or("<none>").to_owned();
            vec![
                json!(format!("{ready}/{containers}")),
                phase,
                json!(restarts.to_string()),
                json!(age),
                json!(ip),
                json!(node),
            ]
        }
        ("apps", "Deployment") => vec![
            json!(format!(
                "{}/{}",
                count(&status["readyReplicas"]),
                spec["replicas"].as_i64().unwrap_or(1)
            )),
            json!(count(&status["updatedReplicas"])),
            json!(count(&status["availableReplicas"])),
            json!(age),
        ],
        ("apps", "ReplicaSet") => vec![
            json!(count(&spec["replicas"])),
            json!(count(&status["replicas"])),
            json!(count(&status["readyReplicas"])),
            json!(age),
        ],
        ("apps", "StatefulSet") => vec![
            json!(format!(
                "{}/{}",
                count(&status["readyReplicas"]),
                count(&spec["replicas"])
            )),
            json!(age),
        ],
        ("apps", "DaemonSet") => vec![
            json!(count(&status["desiredNumberScheduled"])),
            json!(count(&status["currentNumberScheduled"])),
            json!(count(&status["numberReady"])),
            json!(count(&status["updatedNumberScheduled"])),
            json!(count(&status["numberAvailable"])),
            json!(age),
        ],
        ("", "Service") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| {
                    format!(
                        "{}/{}",
                        count(&port["port"]),
                        port["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let ports = if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(",")
            };
            vec![
                spec["type"].clone(),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(ports),
                json!(age),
            ]
        }
        ("", "Namespace") => vec![status["phase"].clone(), json!(age)],
        ("", "Node") => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            vec![
                json!(if ready { "Ready" } else { "NotReady" }),
                json!("<none>"),
                json!(age),
                status["nodeInfo"]["kubeletVersion"].clone(),
            ]
        }
        ("", "ConfigMap") => {
            let data = object["data"].as_object().map_or(0, serde_json::Map::len)
                + object["binaryData"]
                    .as_object()
                    .map_or(0, serde_json::Map::len);
            vec![json!(data), json!(age)]
        }
        ("", "Secret") => vec![
            json!(object["type"].as_str().unwrap_or("Opaque")),
            json!(object["data"].as_object().map_or(0, serde_json::Map::len)),
            json!(age),
        ],
        ("", "Endpoints") => {
            let mut endpoints = Vec::new();
            for subset in object["subsets"].as_array().into_iter().flatten() {
                for address in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        endpoints.push(format!(
                            "{}:{}",
                            address["ip"].as_str().unwrap_or_default(),
                            count(&port["port"])
                        ));
                    }
                }
            }
            vec![
                json!(if endpoints.is_empty() {
                    "<none>".to_owned()
                } else {
                    endpoints.join(",")
                }),
                json!(age),
            ]
        }
        ("batch", "Job") => {
            let complete = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Complete" && c["status"] == "True");
            let completions = spec["completions"].as_i64().unwrap_or(1);
            vec![
                json!(if complete { "Complete" } else { "Running" }),
                json!(format!("{}/{completions}", count(&status["succeeded"]))),
                json!(age),
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![
            json!(spec["holderIdentity"].as_str().unwrap_or("")),
            json!(age),
        ],
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = object["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| count(&port["port"]).to_string())
                .collect();
            let addresses: Vec<&str> = object["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|endpoint| {
                    endpoint["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                })
                .collect();
            let none = |list: String| {
                if list.is_empty() {
                    "<unset>".to_owned()
                } else {
                    list
                }
            };
            vec![
                object["addressType"].clone(),
                json!(none(ports.join(","))),
                json!(none(addresses.join(","))),
                json!(age),
            ]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![object["metadata"]["creationTimestamp"].clone()]
        }
        _ => vec![json!(age)],
    });
    cells
}

/// A printer column's value at a simple JSON path (`.spec.replicas`, `.status.items[0].name`);
/// paths with filters print empty.
fn printer_cell(object: &Value, path: &str) -> Value {
    let mut node = object;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|part| !part.is_empty())
    {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, Some(rest.trim_end_matches(']'))),
            None => (part, None),
        };
        node = &node[key];
        if let Some(index) = index {
            match index.parse::<usize>() {
                Ok(index) => node = &node[index],
                Err(_) => return json!(""),
            }
        }
    }
    match node {
        Value::Null => json!(""),
        other => other.clone(),
    }
}

/// kubectl's short age of an RFC 3339 creation time.
fn age(created: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(created) = created
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
    else {
        return "<unknown>".into();
    };
    crate::table::short_age((now - created.with_timezone(&chrono::Utc)).num_seconds())
}

/// A Table of `items`.
pub(crate) fn table(
    resource: &ResourceType,
    items: &[std::sync::Arc<Value>],
    list_metadata: &Value,
) -> Value {
    let now = chrono::Utc::now();
    let definitions: Vec<Value> = columns(resource)
        .into_iter()
        .map(|(name, kind, priority)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| json!({"cells": cells(resource, item, now), "object": metadata_of(item)}))
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;

    #[test]
    fn accept_headers_choose_the_representation() {
        assert_eq!(view(None), View::Object);
        assert_eq!(
            view(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            View::Table
        );
        assert_eq!(
            view(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            )),
            View::Metadata
        );
        assert_eq!(
            view(Some(
                "application/vnd.kubernetes.protobuf;as=Table, application/json"
            )),
            View::Object
        );
    }

    #[test]
    fn ages_read_like_kubectls() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let at = |seconds: i64| json!((now - chrono::Duration::seconds(seconds)).to_rfc3339());
        let cases = [
            (5, "5s"),
            (130, "2m10s"),
            (180, "3m"),
            (2700, "45m"),
            (11_520, "3h12m"),
            (82_800, "23h"),
            (190_800, "2d5h"),
            (3_888_000, "45d"),
            (63_072_000 * 2, "4y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(age(&at(seconds), now), expected, "{seconds}");
        }
        assert_eq!(age(&Value::Null, now), "<unknown>");
    }

    fn column_names(table: &Value) -> Vec<&str> {
        table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn custom_resources_print_their_printer_columns() {
        let mut registry = Registry::builtin();
        registry
            .add_crd(&json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "First", "type": "string", "jsonPath": ".status.items[0].name"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1}]}]}}))
            .unwrap();
        let widgets = registry.get("example.com", "v1", "widgets").unwrap();
        let widget = std::sync::Arc::new(
            json!({"metadata": {"name": "w", "creationTimestamp": chrono::Utc::now().to_rfc3339()},
            "spec": {"size": 3}, "status": {"items": [{"name": "a"}]}}),
        );
        let table = table(&widgets, &[widget], &json!({}));
        let names = column_names(&table);
        assert_eq!(names, ["Name", "Size", "First", "Ready", "Age"]);
        let cells = &table["rows"][0]["cells"];
        assert_eq!(
            (&cells[1], &cells[2], &cells[3]),
            (&json!(3), &json!("a"), &json!(""))
        );
    }

    #[test]
    fn pods_print_ready_status_and_restarts() {
        let pods = Registry::builtin().get("", "v1", "pods").unwrap();
        let pod = std::sync::Arc::new(
            json!({"metadata": {"name": "p", "creationTimestamp": chrono::Utc::now().to_rfc3339()},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}}),
        );
        let table = table(&pods, &[pod], &json!({}));
        let names = column_names(&table);
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
        );
        let cells = &table["rows"][0]["cells"];
        assert_eq!(
            (cells[1].as_str(), cells[2].as_str(), cells[3].as_str()),
            (Some("1/2"), Some("Running"), Some("3"))
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
