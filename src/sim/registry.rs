//! The resource types zen-sim serves: the built-ins, and the kinds CRDs add.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Where a scale subresource reads and writes its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalePaths {
    pub(crate) spec_replicas: String,
    pub(crate) status_replicas: String,
    pub(crate) label_selector: Option<String>,
}

impl ScalePaths {
    fn workload() -> Self {
        Self {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.selector".into()),
        }
    }
}

/// One served resource (one group/version/plural).
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // the flags discovery and the write path read
pub(crate) struct ResourceType {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) status: bool,
    pub(crate) scale: Option<ScalePaths>,
    /// Served read-only (metrics): get, list.
    pub(crate) read_only: bool,
    /// A custom resource: validated against `schema`, no strategic merge patch.
    pub(crate) custom: bool,
    /// The CRD's `openAPIV3Schema` for this version.
    pub(crate) schema: Option<Arc<Value>>,
    /// The CRD's `additionalPrinterColumns`: name, type, JSON path, priority.
    pub(crate) printer_columns: Vec<(String, String, String, u8)>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key shared by every version of the resource: `plural.group`.
    pub(crate) fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The verbs discovery advertises.
    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        if self.read_only {
            vec!["get", "list"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    /// Whether writes to the main resource ignore `.status` and writes to `/status` ignore all
    /// but it (and `metadata.generation` counts spec changes only).
    pub(crate) fn has_status(&self) -> bool {
        self.status
    }

    /// Whether `metadata.generation` is kept: resources with a spec/status split and custom
    /// resources.
    pub(crate) fn tracks_generation(&self) -> bool {
        self.status || self.custom
    }

    /// The `APIResource` entry of discovery.
    pub(crate) fn discovery(&self) -> Vec<Value> {
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        let mut entries = vec![entry];
        if self.status {
            entries.push(json!({
                "name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale.is_some() {
            entries.push(json!({
                "name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// One built-in row: group, version, kind, plural, namespaced, short names, categories,
/// status subresource, scale subresource.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
    bool,
);

const BUILTINS: &[Row] = &[
    (
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        false,
        true,
        false,
    ),
    (
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        true,
        true,
        false,
    ),
    (
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
        false,
    ),
    ("", "v1", "Pod", "pods", true, &["po"], true, true, false),
    (
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
        false,
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Node",
        "nodes",
        false,
        &["no"],
        false,
        true,
        false,
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        true,
        false,
    ),
    ("batch", "v1", "Job", "jobs", true, &[], true, true, false),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        true,
        false,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        false,
        true,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        false,
        true,
        false,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        false,
        true,
        false,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        true,
        false,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        false,
        true,
        false,
    ),
    (
        "metrics.k8s.io",
        "v1beta1",
        "PodMetrics",
        "pods",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "metrics.k8s.io",
        "v1beta1",
        "NodeMetrics",
        "nodes",
        false,
        &[],
        false,
        false,
        false,
    ),
];

/// The preferred order of groups in discovery, as a real API server lists them.
const GROUP_ORDER: &[&str] = &[
    "apps",
    "events.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "apiextensions.k8s.io",
    "metrics.k8s.io",
];

/// Every served resource type, by group, version and plural.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
}

impl Registry {
    /// The built-in types.
    pub(crate) fn builtin() -> Self {
        let mut types = BTreeMap::new();
        for &(group, version, kind, plural, namespaced, short, all, status, scale) in BUILTINS {
            let resource = ResourceType {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_ascii_lowercase(),
                namespaced,
                short_names: short.iter().map(|name| (*name).to_owned()).collect(),
                categories: if all { vec!["all".into()] } else { Vec::new() },
                status,
                scale: scale.then(ScalePaths::workload),
                read_only: group == "metrics.k8s.io",
                custom: false,
                schema: None,
                printer_columns: Vec::new(),
            };
            types.insert(
                (group.into(), version.into(), plural.into()),
                Arc::new(resource),
            );
        }
        Self { types }
    }

    /// The type at a group, version and plural.
    pub(crate) fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// Types in discovery order: the core group first, then groups as a real server orders them,
    /// then custom groups by name.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (group, version, _) in self.types.keys() {
            let versions = groups.entry(group.clone()).or_default();
            if !versions.contains(version) {
                versions.push(version.clone());
            }
        }
        let rank = |group: &str| {
            if group.is_empty() {
                return 0;
            }
            GROUP_ORDER
                .iter()
                .position(|known| *known == group)
                .map_or(GROUP_ORDER.len() + 1, |index| index + 1)
        };
        let mut ordered: Vec<(String, Vec<String>)> = groups.into_iter().collect();
        ordered.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        ordered
    }

    /// The types of one group version.
    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|((g, v, _), _)| g == group && v == version)
            .map(|(_, resource)| Arc::clone(resource))
            .collect()
    }

    /// All types.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Serves the kinds of a CRD (every served version); replaces what it served before.
    pub(crate) fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().ok_or("spec.group: Required value")?;
        let names = &spec["names"];
        let plural = names["plural"]
            .as_str()
            .ok_or("spec.names.plural: Required value")?;
        let kind = names["kind"]
            .as_str()
            .ok_or("spec.names.kind: Required value")?;
        let namespaced = match spec["scope"].as_str() {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into()),
        };
        let builtin = BUILTINS.iter().any(|row| row.0 == group);
        if !group.contains('.') || builtin {
            return Err(format!(
                "spec.group: Invalid value: {group:?}: should be a domain with at least one dot, and not a built-in group"
            ));
        }
        let expected = format!("{plural}.{group}");
        if crd["metadata"]["name"].as_str() != Some(expected.as_str()) {
            return Err(format!(
                "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group: {expected:?}"
            ));
        }
        let versions = spec["versions"]
            .as_array()
            .ok_or("spec.versions: Required value")?;
        if versions.is_empty() {
            return Err("spec.versions: Invalid value: must have exactly one version marked as storage version".into());
        }
        self.remove_crd_group_resource(group, plural);
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for version in versions {
            let Some(name) = version["name"].as_str() else {
                continue;
            };
            if version["served"] == Value::Bool(false) {
                continue;
            }
            let subresources = &version["subresources"];
            let scale = subresources.get("scale").map(|scale| ScalePaths {
                spec_replicas: scale["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas")
                    .to_owned(),
                status_replicas: scale["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas")
                    .to_owned(),
                label_selector: scale["labelSelectorPath"].as_str().map(str::to_owned),
            });
            let schema = version["schema"].get("openAPIV3Schema");
            if schema.is_some_and(|schema| !schema.is_object()) {
                return Err(format!(
                    "spec.versions[{name}].schema.openAPIV3Schema: Invalid value: must be an object"
                ));
            }
            let resource = ResourceType {
                group: group.to_owned(),
                version: name.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: subresources.get("status").is_some(),
                scale,
                read_only: false,
                custom: true,
                schema: version["schema"]
                    .get("openAPIV3Schema")
                    .cloned()
                    .map(Arc::new),
                printer_columns: printer_columns(version),
            };
            self.types.insert(
                (group.to_owned(), name.to_owned(), plural.to_owned()),
                Arc::new(resource),
            );
        }
        Ok(())
    }

    /// Stops serving what a CRD served.
    pub(crate) fn remove_crd(&mut self, crd: &Value) {
        if let (Some(group), Some(plural)) = (
            crd["spec"]["group"].as_str(),
            crd["spec"]["names"]["plural"].as_str(),
        ) {
            self.remove_crd_group_resource(group, plural);
        }
    }

    fn remove_crd_group_resource(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|(g, _, p), resource| !(resource.custom && g == group && p == plural));
    }
}

/// A CRD version's `additionalPrinterColumns`: name, type, JSON path, priority (0 or 1).
fn printer_columns(version: &Value) -> Vec<(String, String, String, u8)> {
    version["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|column| {
            let text = |key: &str| column[key].as_str().map(str::to_owned);
            let priority = u8::from(column["priority"].as_u64().unwrap_or(0) > 0);
            Some((
                text("name")?,
                text("type").unwrap_or_else(|| "string".into()),
                text("jsonPath")?,
                priority,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_found_by_path() {
        let registry = Registry::builtin();
        let deployments = registry.get("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.kind, "Deployment");
        assert!(deployments.scale.is_some() && deployments.has_status());
        assert_eq!(
            registry.get("", "v1", "configmaps").unwrap().kind,
            "ConfigMap"
        );
        assert_eq!(
            registry
                .get("metrics.k8s.io", "v1beta1", "pods")
                .unwrap()
                .verbs(),
            ["get", "list"]
        );
        let groups: Vec<String> = registry
            .groups()
            .into_iter()
            .map(|(group, _)| group)
            .collect();
        assert_eq!(groups[0], "");
        assert_eq!(groups[1], "apps");
    }

    #[test]
    fn a_crd_serves_its_versions_and_removing_it_stops_them() {
        let mut registry = Registry::builtin();
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v0", "served": false, "storage": false}]}});
        registry.add_crd(&crd).unwrap();
        let widgets = registry.get("example.com", "v1", "widgets").unwrap();
        assert!(widgets.custom && widgets.has_status() && widgets.tracks_generation());
        assert_eq!(widgets.short_names, ["wd"]);
        assert!(registry.get("example.com", "v0", "widgets").is_none());
        registry.remove_crd(&crd);
        assert!(registry.get("example.com", "v1", "widgets").is_none());
        let bad = json!({"spec": {"group": "example.com", "scope": "Galaxy", "names": {"plural": "w", "kind": "W"}, "versions": []}});
        assert!(registry.add_crd(&bad).unwrap_err().contains("spec.scope"));
        // A CRD cannot take over a built-in group, and its name is plural.group.
        let shadow = json!({"metadata": {"name": "deployments.apps"}, "spec": {"group": "apps", "scope": "Namespaced",
            "names": {"plural": "deployments", "kind": "Deployment"}, "versions": [{"name": "v1", "served": true}]}});
        assert!(
            registry
                .add_crd(&shadow)
                .unwrap_err()
                .contains("spec.group")
        );
        let misnamed = json!({"metadata": {"name": "gadgets.example.com"}, "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true}]}});
        assert!(
            registry
                .add_crd(&misnamed)
                .unwrap_err()
                .contains("metadata.name")
        );
        assert_eq!(
            registry.get("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
    }
}
