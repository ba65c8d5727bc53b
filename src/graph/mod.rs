//! KRO resource graphs: parse, validate, order and measure ResourceGraphDefinitions offline.
//!
//! A ResourceGraphDefinition (RGD, `kro.run/v1alpha1`) declares an instance API in
//! SimpleSchema and a list of resources whose templates reference the instance (`schema`) and
//! each other through `${...}` CEL expressions. The references form a dependency graph that
//! KRO applies in topological order. [`ResourceGraph`] does everything KRO's graph builder
//! does before it touches a cluster, with KRO's rules and error wording, and reports *every*
//! problem at once, each with its file, resource id and field path.
//!
//! ```
//! use kubezen::graph;
//!
//! let yaml = r#"
//! apiVersion: kro.run/v1alpha1
//! kind: ResourceGraphDefinition
//! metadata: {name: web}
//! spec:
//!   schema:
//!     apiVersion: v1alpha1
//!     kind: WebApp
//!     spec: {name: string | required=true}
//!   resources:
//!     - id: service
//!       template:
//!         apiVersion: v1
//!         kind: Service
//!         metadata: {name: "${deployment.metadata.name}-svc"}
//!     - id: deployment
//!       template:
//!         apiVersion: apps/v1
//!         kind: Deployment
//!         metadata: {name: "${schema.spec.name}"}
//! "#;
//! let graphs = graph::parse_str(yaml, "web.yaml", &graph::Catalog::builtin())?;
//! let web = &graphs[0];
//! assert!(!web.has_errors());
//! assert_eq!(web.order().unwrap(), ["deployment", "service"]);
//! # Ok::<(), graph::LoadError>(())
//! ```

mod catalog;
mod dag;
mod render;
mod schema;
mod source;
mod synthetic;
pub(crate) mod template;
#[cfg(test)]
mod tests;

use std::{borrow::Cow, collections::BTreeSet, fmt, fmt::Write as _};

use foldhash::{HashMap, HashMapExt};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::cel::{CostClass, Engine, Inspection, Reference, Shape};
pub use catalog::Catalog;
use dag::Dag;
use schema::FieldSchema;
pub use source::{
    LoadError, MAX_INPUT_BYTES, fetch, load_path, load_reader, parse_documents, parse_str,
    read_documents, read_manifests, read_text,
};
pub use synthetic::synthetic_rgd;
pub use template::{FieldExpressions, FieldForm, NESTED_EXPRESSION};

/// The size at which the KRO guide calls a graph large: 30 resources.
pub const LARGE_GRAPH_RESOURCES: usize = 30;

/// The most forEach dimensions a resource may have (KRO's default).
pub const MAX_FOREACH_DIMENSIONS: usize = 10;

/// Words KRO reserves for its own variables, besides CEL's (see [`is_reserved`]).
pub const KRO_RESERVED_WORDS: [&str; 33] = [
    "apiVersion",
    "context",
    "dependency",
    "dependencies",
    "each",
    "externalRef",
    "externalReference",
    "externalRefs",
    "externalReferences",
    "graph",
    "instance",
    "item",
    "items",
    "kind",
    "kro",
    "metadata",
    "namespace",
    "object",
    "resource",
    "resourcegraphdefinition",
    "resourceGraphDefinition",
    "resources",
    "root",
    "runtime",
    "schema",
    "self",
    "serviceAccountName",
    "spec",
    "status",
    "this",
    "variables",
    "vars",
    "version",
];

/// Whether `word` is reserved: never a resource id or forEach iterator. KRO reserves its
/// own words and CEL's.
#[must_use]
pub fn is_reserved(word: &str) -> bool {
    KRO_RESERVED_WORDS.contains(&word) || crate::cel::RESERVED_WORDS.contains(&word)
}

/// Kinds the API server keeps outside namespaces (the built-in ones).
const CLUSTER_SCOPED_KINDS: [&str; 20] = [
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// Label and annotation prefixes KRO keeps for itself.
const RESERVED_PREFIXES: [&str; 2] = ["kro.run/", "internal.kro.run/"];

/// Where a graph came from: a file (or `-` for standard input) and the document in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file, `-` for standard input.
    pub file: String,
    /// The document's position in the file, from 1.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document > 1 {
            write!(f, "{} (document {})", self.file, self.document)
        } else {
            f.write_str(&self.file)
        }
    }
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// KRO would reject the graph.
    Error,
    /// KRO accepts it, but it is likely a mistake or will be slow.
    Warning,
}

/// One problem found in a graph, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, worded as KRO words it where KRO reports it.
    pub message: String,
    /// The file and document.
    pub origin: Origin,
    /// The resource's id, when the problem belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The field, from the RGD's root: `spec.resources[1].template.spec.replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What a resource entry declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    /// A `template` KRO creates and owns.
    Template,
    /// A `template` with `forEach`: one object per element of the iterators' product.
    Collection,
    /// An `externalRef` KRO reads and never writes.
    External,
}

/// One `forEach` dimension: an iterator name and the expression giving its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iterator {
    /// The iterator's name, used in the template as `${name}`.
    pub name: String,
    /// The list expression, without `${}`.
    pub expression: String,
}

/// A resource of the graph.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The id other resources reference it by.
    pub id: String,
    /// Template, collection or external reference.
    pub kind: ResourceKind,
    /// The object's `apiVersion`, when it is a plain string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The object's `kind`, when it is a plain string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<String>,
    /// The template or external reference as written.
    pub object: Json,
    /// The fields holding expressions.
    pub fields: Vec<FieldExpressions>,
    /// `readyWhen` expressions, without `${}`.
    pub ready_when: Vec<String>,
    /// `includeWhen` expressions, without `${}`.
    pub include_when: Vec<String>,
    /// `forEach` dimensions.
    pub for_each: Vec<Iterator>,
    /// The ids this resource depends on, in declaration order.
    pub dependencies: Vec<String>,
}

/// The instance API a graph defines.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSchema {
    /// `v1alpha1`, say.
    pub api_version: String,
    /// The instance kind, in upper camel case (`WebApp`).
    pub kind: String,
    /// The API group, `kro.run` unless set.
    pub group: String,
    /// `Namespaced` or `Cluster`.
    pub scope: String,
    /// The OpenAPI v3 schema of the instance's `spec`.
    pub spec: Json,
    /// The OpenAPI v3 schema of the instance's `status`, inferred from its expressions.
    pub status: Json,
}

/// Size and shape figures of a graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Resources.
    pub nodes: usize,
    /// Distinct dependencies.
    pub edges: usize,
    /// Earliest-start levels (0 when there is a cycle).
    pub depth: usize,
    /// The most resources in one level.
    pub widest_level: usize,
    /// The most dependencies of one resource, and which.
    pub max_fan_in: usize,
    /// The resource with the most dependencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fan_in_resource: Option<String>,
    /// The most dependents of one resource.
    pub max_fan_out: usize,
    /// The resource with the most dependents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fan_out_resource: Option<String>,
    /// Expressions in templates, forEach, includeWhen, readyWhen and status.
    pub expressions: usize,
    /// Expressions by cost class.
    pub simple_expressions: usize,
    /// See [`CostClass::Moderate`].
    pub moderate_expressions: usize,
    /// See [`CostClass::Complex`].
    pub complex_expressions: usize,
    /// The sum of the expressions' complexity scores.
    pub complexity_score: usize,
}

/// A parsed and analysed ResourceGraphDefinition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGraph {
    /// `metadata.name`.
    pub name: String,
    /// Where it was read from.
    pub origin: Origin,
    /// The instance API.
    pub schema: InstanceSchema,
    /// The resources, in declaration order.
    pub resources: Vec<Resource>,
    /// Every problem found, errors first, then in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// Size and shape.
    pub metrics: Metrics,
    /// The instance's `status` as written: expressions the reconciler evaluates.
    #[serde(skip)]
    pub(crate) status_template: Json,
    #[serde(skip)]
    dag: Dag,
}

/// An expression in a resource: where it sits, its field path, its text, and the template
/// field it belongs to.
struct Site<'r> {
    role: Role,
    path: Cow<'r, str>,
    expression: &'r str,
    field: Option<usize>,
}

/// Where an expression sits, which decides what it may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Template,
    ForEach,
    IncludeWhen,
    ReadyWhen,
}

impl ResourceGraph {
    /// Analyses one RGD document, checking templates of the kinds `catalog` knows against
    /// their schemas. Never fails: every problem becomes a [`Diagnostic`].
    #[must_use]
    pub fn from_json(document: Json, origin: Origin, catalog: &Catalog) -> Self {
        Analysis::new(origin, catalog).run(document)
    }

    /// A bare dependency graph: ids in declaration order, each with the ids it depends on.
    /// For modelling and benchmarks, where no RGD exists; the ordering, cycles, metrics and
    /// exports are the same as for an RGD. Unknown ids, duplicates and self references are
    /// diagnostics.
    #[must_use]
    pub fn from_dependencies(name: &str, dependencies: &[(String, Vec<String>)]) -> Self {
        let catalog = Catalog::builtin();
        let mut analysis = Analysis::new(
            Origin {
                file: "<dependencies>".into(),
                document: 1,
            },
            &catalog,
        );
        let mut resources = Vec::with_capacity(dependencies.len());
        for (position, (id, _)) in dependencies.iter().enumerate() {
            if analysis.index.contains_key(id) {
                let path = format!("[{position}]");
                analysis.error(
                    &At {
                        resource: Some(id),
                        path: &path,
                    },
                    format!("found duplicate resource IDs {id}"),
                    "",
                );
            } else {
                analysis.index.insert(id.clone(), position);
            }
            resources.push(Resource {
                id: id.clone(),
                kind: ResourceKind::Template,
                api_version: None,
                object_kind: None,
                object: Json::Null,
                fields: Vec::new(),
                ready_when: Vec::new(),
                include_when: Vec::new(),
                for_each: Vec::new(),
                dependencies: Vec::new(),
            });
        }
        let mut dag = Dag::with_nodes(resources.len());
        for (node, (id, needs)) in dependencies.iter().enumerate() {
            let path = format!("[{node}]");
            let mut found = BTreeSet::new();
            for need in needs {
                match analysis.index.get(need) {
                    Some(&target) if target == node => analysis.error(
                        &At {
                            resource: Some(id),
                            path: &path,
                        },
                        "self references are not allowed".into(),
                        "",
                    ),
                    Some(&target) => {
                        found.insert(target);
                    }
                    None => analysis.error(
                        &At {
                            resource: Some(id),
                            path: &path,
                        },
                        format!("references unknown identifiers: [{need}]"),
                        "",
                    ),
                }
            }
            for target in &found {
                dag.depend(node, *target);
            }
            resources[node].dependencies =
                found.iter().map(|t| dependencies[*t].0.clone()).collect();
        }
        let mut graph = ResourceGraph {
            name: name.to_owned(),
            origin: analysis.origin.clone(),
            schema: InstanceSchema {
                api_version: String::new(),
                kind: String::new(),
                group: String::new(),
                scope: String::new(),
                spec: json!({"type": "object", "properties": {}}),
                status: json!({"type": "object", "properties": {}}),
            },
            resources,
            diagnostics: Vec::new(),
            metrics: Metrics::default(),
            status_template: Json::Null,
            dag,
        };
        analysis.order(&mut graph);
        analysis.diagnostics.sort_by_key(|d| d.severity);
        graph.diagnostics = analysis.diagnostics;
        graph.metrics = analysis.metrics;
        graph
    }

    /// Whether any diagnostic is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    fn ids(&self, nodes: &[usize]) -> Vec<&str> {
        nodes
            .iter()
            .map(|n| self.resources[*n].id.as_str())
            .collect()
    }

    /// KRO's topological order: each resource after its dependencies, and among the ready
    /// ones the first declared. `None` when the graph has a cycle.
    #[must_use]
    pub fn order(&self) -> Option<Vec<&str>> {
        self.order_positions().map(|order| self.ids(&order))
    }

    /// [`ResourceGraph::order`] as positions in [`ResourceGraph::resources`].
    #[must_use]
    pub fn order_positions(&self) -> Option<Vec<usize>> {
        self.dag.order()
    }

    /// KRO's apply waves (its `apply-order` annotation, here from wave 0): layers peeled from
    /// the resources nothing depends on, so each resource is applied as late as its
    /// dependents allow. Deletion runs them last wave first. `None` when there is a cycle.
    #[must_use]
    pub fn waves(&self) -> Option<Vec<Vec<&str>>> {
        self.dag
            .waves()
            .map(|waves| waves.iter().map(|w| self.ids(w)).collect())
    }

    /// Earliest-start levels: level 0 depends on nothing; each resource one level after its
    /// latest dependency. `None` when there is a cycle.
    #[must_use]
    pub fn levels(&self) -> Option<Vec<Vec<&str>>> {
        self.dag
            .levels()
            .map(|levels| levels.iter().map(|l| self.ids(l)).collect())
    }

    /// Every cycle (one per strongly connected set of resources), as a path that follows
    /// dependencies and ends where it starts: `["a", "b", "a"]` means a depends on b and b on a.
    #[must_use]
    pub fn cycles(&self) -> Vec<Vec<&str>> {
        self.dag.cycles().iter().map(|c| self.ids(c)).collect()
    }

    /// The longest chain of dependencies, first dependency first. `None` when there is a cycle.
    #[must_use]
    pub fn critical_path(&self) -> Option<Vec<&str>> {
        self.dag.critical_path().map(|p| self.ids(&p))
    }

    /// Each resource's apply wave (from 0; see [`ResourceGraph::waves`]), by position in
    /// [`ResourceGraph::resources`]. `None` when there is a cycle.
    #[must_use]
    pub fn wave_positions(&self) -> Option<Vec<usize>> {
        self.dag
            .waves()
            .map(|w| layer_numbers(&w, self.resources.len()))
    }

    /// Each resource's start level (see [`ResourceGraph::levels`]), by position in
    /// [`ResourceGraph::resources`]. `None` when there is a cycle.
    #[must_use]
    pub fn level_positions(&self) -> Option<Vec<usize>> {
        self.dag
            .levels()
            .map(|l| layer_numbers(&l, self.resources.len()))
    }

    /// The ids that depend on `id`, in declaration order.
    #[must_use]
    pub fn dependents(&self, id: &str) -> Vec<&str> {
        self.resources
            .iter()
            .position(|r| r.id == id)
            .map(|n| self.ids(&self.dag.dependents(n)))
            .unwrap_or_default()
    }

    /// The `CustomResourceDefinition` KRO would create for the instance API.
    #[must_use]
    pub fn instance_crd(&self) -> Json {
        let schema = &self.schema;
        let singular = schema.kind.to_lowercase();
        let plural = schema::plural(&singular);
        let mut status = schema.status.clone();
        if let Some(properties) = status.get_mut("properties").and_then(Json::as_object_mut) {
            properties
                .entry("state")
                .or_insert_with(|| json!({"type": "string"}));
            properties.insert(
                "conditions".into(),
                json!({"type": "array", "items": {"type": "object", "properties": {
                    "type": {"type": "string"}, "status": {"type": "string"},
                    "reason": {"type": "string"}, "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string"},
                    "observedGeneration": {"type": "integer"}}}}),
            );
        }
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{}", schema.group)},
            "spec": {
                "group": schema.group,
                "names": {"kind": schema.kind, "listKind": format!("{}List", schema.kind), "plural": plural, "singular": singular},
                "scope": schema.scope,
                "versions": [{
                    "name": schema.api_version,
                    "served": true,
                    "storage": true,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "State", "type": "string", "jsonPath": ".status.state"},
                        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": schema.spec,
                        "status": status,
                    }}},
                }],
            },
        })
    }
}

/// What a walk over one template against its schema needs at every field.
struct TypeWalk<'w> {
    resources: &'w [Resource],
    node: usize,
    spec: &'w Json,
    base: String,
}

/// The state of one analysis.
struct Analysis<'c> {
    origin: Origin,
    catalog: &'c Catalog,
    diagnostics: Vec<Diagnostic>,
    metrics: Metrics,
    /// Resource ids by index.
    index: HashMap<String, usize>,
    /// Schema field paths read by some expression (`spec.name`).
    schema_reads: BTreeSet<String>,
    /// Schema fields that failed to build (`spec.name`): already reported, so references to
    /// them are not reported again.
    broken_fields: BTreeSet<String>,
    /// Ids that are reserved words, already reported.
    reserved_ids: BTreeSet<String>,
}

/// A diagnostic under construction.
struct At<'a> {
    resource: Option<&'a str>,
    path: &'a str,
}

impl<'c> Analysis<'c> {
    fn new(origin: Origin, catalog: &'c Catalog) -> Self {
        Self {
            origin,
            catalog,
            diagnostics: Vec::new(),
            metrics: Metrics::default(),
            index: HashMap::new(),
            schema_reads: BTreeSet::new(),
            broken_fields: BTreeSet::new(),
            reserved_ids: BTreeSet::new(),
        }
    }

    fn report(&mut self, severity: Severity, at: &At<'_>, message: String, hint: Option<&str>) {
        self.diagnostics.push(Diagnostic {
            severity,
            message,
            origin: self.origin.clone(),
            resource: at.resource.map(str::to_owned),
            path: (!at.path.is_empty()).then(|| at.path.to_owned()),
            hint: hint.map(str::to_owned),
        });
    }

    fn error(&mut self, at: &At<'_>, message: String, hint: &str) {
        self.report(
            Severity::Error,
            at,
            message,
            (!hint.is_empty()).then_some(hint),
        );
    }

    fn run(mut self, mut document: Json) -> ResourceGraph {
        let name = document
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            self.error(
                &At {
                    resource: None,
                    path: "metadata.name",
                },
                "metadata.name is required".into(),
                "name the RGD: metadata: {name: my-graph}",
            );
        }
        // The templates move out of the document: large graphs are held once, not twice.
        let resources_doc = document
            .pointer_mut("/spec/resources")
            .map(Json::take)
            .unwrap_or_default();
        let empty = Json::Null;
        let schema_doc = document.pointer("/spec/schema").unwrap_or(&empty);
        let mut schema = self.instance_schema(schema_doc);
        let resources = self.resources(resources_doc);
        let mut graph = ResourceGraph {
            name,
            origin: self.origin.clone(),
            dag: Dag::with_nodes(resources.len()),
            resources,
            schema: schema.clone(),
            diagnostics: Vec::new(),
            metrics: Metrics::default(),
            status_template: schema_doc.get("status").cloned().unwrap_or(Json::Null),
        };
        self.expressions(&mut graph, &schema.spec);
        schema.status = self.status(&graph, schema_doc.get("status"), &schema.spec);
        graph.schema = schema;
        self.unused_schema_fields(&graph.schema.spec);
        self.order(&mut graph);
        self.diagnostics.sort_by_key(|d| d.severity);
        graph.diagnostics = self.diagnostics;
        graph.metrics = self.metrics;
        graph
    }

    fn instance_schema(&mut self, schema: &Json) -> InstanceSchema {
        let text = |field: &str| schema.get(field).and_then(Json::as_str).map(str::to_owned);
        let kind = text("kind").unwrap_or_default();
        let at = At {
            resource: None,
            path: "spec.schema.kind",
        };
        if kind.is_empty() {
            self.error(
                &at,
                "spec.schema.kind is required".into(),
                "name the instance kind, e.g. kind: WebApp",
            );
        } else if !is_upper_camel(&kind) {
            self.error(
                &at,
                format!("naming convention violation: kind '{kind}' is not a valid KRO kind name: must be UpperCamelCase"),
                "start with an upper-case letter and use only letters and digits, e.g. WebApp",
            );
        }
        let api_version = text("apiVersion").unwrap_or_default();
        if !is_version(&api_version) {
            self.error(
                &At { resource: None, path: "spec.schema.apiVersion" },
                format!("spec.schema.apiVersion {api_version:?} must match ^v[0-9]+(alpha[0-9]+|beta[0-9]+)?$"),
                "the version alone, without the group: apiVersion: v1alpha1",
            );
        }
        let scope = text("scope").unwrap_or_else(|| "Namespaced".into());
        if scope != "Namespaced" && scope != "Cluster" {
            self.error(
                &At {
                    resource: None,
                    path: "spec.schema.scope",
                },
                format!("spec.schema.scope must be Namespaced or Cluster, got {scope:?}"),
                "",
            );
        }
        let types = schema.get("types").and_then(Json::as_object);
        let (spec, issues) = schema::SchemaBuilder::new(types).build_spec(schema.get("spec"));
        for issue in issues {
            if let Some(field) = issue.path.strip_prefix("spec.schema.") {
                self.broken_fields.insert(field.to_owned());
            }
            let message = if issue.path.starts_with("spec.schema.types") {
                issue.message
            } else {
                format!(
                    "failed to build OpenAPI schema for instance: {}",
                    issue.message
                )
            };
            self.error(
                &At { resource: None, path: &issue.path },
                message,
                "SimpleSchema: `type | marker=value ...` with types string, integer, boolean, float, object, []T, map[string]T or a name from spec.schema.types",
            );
        }
        InstanceSchema {
            api_version,
            kind,
            group: text("group").unwrap_or_else(|| "kro.run".into()),
            scope,
            spec,
            status: json!({"type": "object", "properties": {}}),
        }
    }

    fn resources(&mut self, list: Json) -> Vec<Resource> {
        let items = match list {
            Json::Array(items) => items,
            Json::Null => Vec::new(),
            _ => {
                self.error(
                    &At {
                        resource: None,
                        path: "spec.resources",
                    },
                    "spec.resources must be a list".into(),
                    "",
                );
                Vec::new()
            }
        };
        let mut resources = Vec::with_capacity(items.len());
        for (position, item) in items.into_iter().enumerate() {
            let path = format!("spec.resources[{position}]");
            let id = item
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned();
            self.check_id(&id, &path);
            // A duplicate keeps its place (so positions stay true) but not the index.
            self.index.entry(id.clone()).or_insert(position);
            resources.push(self.resource(id, item, &path));
        }
        resources
    }

    fn check_id(&mut self, id: &str, path: &str) {
        let at_path = format!("{path}.id");
        let at = At {
            resource: Some(id),
            path: &at_path,
        };
        let hint = "ids are lowerCamelCase: deployment, webService, db2";
        if id.is_empty() {
            self.error(&at, "resource id is required".into(), hint);
        } else if is_reserved(id) {
            self.reserved_ids.insert(id.to_owned());
            self.error(
                &at,
                format!("naming convention violation: id {id} is a reserved keyword in KRO"),
                "rename it: reserved words name KRO's own variables and CEL keywords",
            );
        } else if !is_lower_camel(id) {
            self.error(&at, format!("naming convention violation: id {id} is not a valid KRO resource id: must be lower camelCase"), hint);
        } else if self.index.contains_key(id) {
            self.error(
                &at,
                format!("naming convention violation: found duplicate resource IDs {id}"),
                "every resource needs its own id",
            );
        }
    }

    fn resource(&mut self, id: String, mut item: Json, path: &str) -> Resource {
        let mut take = |field: &str| item.get_mut(field).map(Json::take).filter(|t| !t.is_null());
        let (template, external) = (take("template"), take("externalRef"));
        let for_each_doc = item.get("forEach").filter(|t| !t.is_null());
        let at = At {
            resource: Some(&id),
            path,
        };
        match (&template, &external) {
            (None, None) => self.error(
                &at,
                format!("resource {id:?}: exactly one of template or externalRef must be provided"),
                "add a template (an object KRO creates) or an externalRef (one it reads)",
            ),
            (Some(_), Some(_)) => self.error(
                &at,
                format!("resource {id:?}: cannot use externalRef with template"),
                "keep one of them",
            ),
            (None, Some(_)) if for_each_doc.is_some() => self.error(
                &at,
                format!("resource {id:?}: cannot use externalRef with forEach"),
                "forEach creates objects; an externalRef only reads one",
            ),
            _ => {}
        }
        let is_template = template.is_some();
        let is_external = external.is_some() && !is_template;
        let (object, object_path) = match (template, external) {
            (Some(t), _) => (t, format!("{path}.template")),
            (None, Some(e)) => (e, format!("{path}.externalRef")),
            (None, None) => (Json::Null, format!("{path}.template")),
        };
        if !object.is_null() {
            self.check_object(&id, &object, &object_path, is_template);
        }
        let (fields, issues) = template::fields(&object, &object_path);
        let is_crd = object.get("apiVersion").and_then(Json::as_str)
            == Some("apiextensions.k8s.io/v1")
            && object.get("kind").and_then(Json::as_str) == Some("CustomResourceDefinition");
        if is_crd {
            let metadata = format!("{object_path}.metadata");
            for field in fields.iter().filter(|f| !f.path.starts_with(&metadata)) {
                self.error(
                    &At { resource: Some(&id), path: &field.path },
                    format!("CEL expressions in CRDs are only supported for metadata fields, found in path {:?}, resource {id}", field.path),
                    "KRO applies CRDs as written: compute names and labels, not schemas",
                );
            }
        }
        for issue in issues {
            self.error(
                &At {
                    resource: Some(&id),
                    path: &issue.path,
                },
                issue.message.to_owned(),
                "quote an inner ${ in a string literal, or split the expression",
            );
        }
        let for_each = for_each_doc
            .map(|doc| self.for_each(&id, doc, &format!("{path}.forEach")))
            .unwrap_or_default();
        let ready_when = self.conditions(
            &id,
            item.get("readyWhen"),
            &format!("{path}.readyWhen"),
            "readyWhen",
        );
        let include_when = self.conditions(
            &id,
            item.get("includeWhen"),
            &format!("{path}.includeWhen"),
            "includeWhen",
        );
        let kind = if is_external {
            ResourceKind::External
        } else if for_each.is_empty() {
            ResourceKind::Template
        } else {
            ResourceKind::Collection
        };
        Resource {
            api_version: object
                .get("apiVersion")
                .and_then(Json::as_str)
                .map(str::to_owned),
            object_kind: object.get("kind").and_then(Json::as_str).map(str::to_owned),
            id,
            kind,
            object,
            fields,
            ready_when,
            include_when,
            for_each,
            dependencies: Vec::new(),
        }
    }

    /// apiVersion, kind and metadata of a template or external reference.
    fn check_object(&mut self, id: &str, object: &Json, path: &str, is_template: bool) {
        let at = At {
            resource: Some(id),
            path,
        };
        let Json::Object(fields) = object else {
            self.error(
                &at,
                format!("resource {id} is not a valid Kubernetes object: not a map"),
                "",
            );
            return;
        };
        for (field, wanted) in [
            ("apiVersion", "a string"),
            ("kind", "a string"),
            ("metadata", "a map"),
        ] {
            let message = match fields.get(field) {
                None => format!("{field} field not found"),
                Some(Json::String(_)) if wanted == "a string" => continue,
                Some(Json::Object(_)) if wanted == "a map" => continue,
                Some(_) => format!("{field} field is not {wanted}"),
            };
            let message = format!("resource {id} is not a valid Kubernetes object: {message}");
            let field_path = format!("{path}.{field}");
            self.error(
                &At {
                    resource: Some(id),
                    path: &field_path,
                },
                message,
                "every object needs apiVersion, kind and metadata",
            );
        }
        let Some(Json::Object(metadata)) = fields.get("metadata") else {
            return;
        };
        let named = metadata
            .get("name")
            .is_some_and(|n| n.as_str().is_some_and(|s| !s.is_empty()));
        let selected = metadata.contains_key("selector");
        if is_template && !named && !metadata.contains_key("generateName") {
            let field_path = format!("{path}.metadata.name");
            self.error(
                &At {
                    resource: Some(id),
                    path: &field_path,
                },
                format!("resource {id}: metadata.name field not found"),
                "name the object, usually from the instance: name: ${schema.spec.name}-suffix",
            );
        }
        if !is_template && named == selected {
            let field_path = format!("{path}.metadata");
            self.error(&At { resource: Some(id), path: &field_path }, format!("resource {id:?}: externalRef needs exactly one of metadata.name or metadata.selector"), "");
        }
        let kind = fields
            .get("kind")
            .and_then(Json::as_str)
            .unwrap_or_default();
        if CLUSTER_SCOPED_KINDS.contains(&kind) && metadata.contains_key("namespace") {
            let field_path = format!("{path}.metadata.namespace");
            self.error(
                &At {
                    resource: Some(id),
                    path: &field_path,
                },
                format!("resource {id:?} is cluster-scoped and must not set metadata.namespace"),
                "remove metadata.namespace",
            );
        }
        for (field, word) in [("labels", "label"), ("annotations", "annotation")] {
            let Some(Json::Object(entries)) = metadata.get(field) else {
                continue;
            };
            for key in entries.keys() {
                if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| key.starts_with(**p)) {
                    let mut field_path = format!("{path}.metadata.{field}");
                    template::push_key(&mut field_path, key);
                    self.error(&At { resource: Some(id), path: &field_path }, format!("invalid {word} for resource {id:?}. {word}s with prefix {prefix:?} are reserved for internal use"), "KRO writes these itself; choose another prefix");
                }
            }
        }
    }

    fn for_each(&mut self, id: &str, doc: &Json, path: &str) -> Vec<Iterator> {
        let Json::Array(entries) = doc else {
            self.error(
                &At {
                    resource: Some(id),
                    path,
                },
                format!(
                    "resource {id:?}: forEach must be a list of {{iterator: ${{list}}}} entries"
                ),
                "forEach: [{region: ${schema.spec.regions}}]",
            );
            return Vec::new();
        };
        if entries.len() > MAX_FOREACH_DIMENSIONS {
            self.error(&At { resource: Some(id), path }, format!("resource {id:?}: forEach cannot have more than {MAX_FOREACH_DIMENSIONS} dimensions, got {}", entries.len()), "");
        }
        let mut iterators: Vec<Iterator> = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let entry_path = format!("{path}[{position}]");
            let single = entry
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.iter().next());
            let Some((name, value)) = single else {
                self.error(
                    &At {
                        resource: Some(id),
                        path: &entry_path,
                    },
                    format!("resource {id:?}: each forEach entry must hold exactly one iterator"),
                    "forEach: [{region: ${schema.spec.regions}}, {tier: ${schema.spec.tiers}}]",
                );
                continue;
            };
            let at_path = format!("{entry_path}.{name}");
            let at = At {
                resource: Some(id),
                path: &at_path,
            };
            if !is_lower_camel(name) {
                self.error(&at, format!("resource {id:?}: forEach iterator name {name:?} is not valid: must be lowerCamelCase"), "");
            } else if is_reserved(name) {
                self.error(
                    &at,
                    format!(
                        "resource {id:?}: forEach iterator name {name:?} is a reserved keyword"
                    ),
                    "",
                );
            } else if self.index.contains_key(name) {
                self.error(
                    &at,
                    format!(
                        "resource {id:?}: forEach iterator name {name:?} conflicts with resource ID"
                    ),
                    "",
                );
            } else if iterators.iter().any(|i| &i.name == name) {
                self.error(
                    &at,
                    format!("resource {id:?}: duplicate forEach iterator name {name:?}"),
                    "",
                );
            }
            match value.as_str().map(template::standalone) {
                Some(Ok(Some(expression))) => iterators.push(Iterator { name: name.clone(), expression: expression.to_owned() }),
                Some(Err(message)) => self.error(&at, message.to_owned(), ""),
                _ => self.error(&at, format!("failed to parse forEach dimensions: invalid forEach expression for dimension {name:?}: only standalone expressions are allowed"), "the value is one ${...} giving a list"),
            }
        }
        iterators
    }

    fn conditions(&mut self, id: &str, doc: Option<&Json>, path: &str, what: &str) -> Vec<String> {
        let entries = match doc {
            None | Some(Json::Null) => return Vec::new(),
            Some(Json::Array(entries)) => entries,
            Some(_) => {
                self.error(
                    &At {
                        resource: Some(id),
                        path,
                    },
                    format!("resource {id:?}: {what} must be a list of expressions"),
                    "",
                );
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let entry_path = format!("{path}[{position}]");
            match entry.as_str().map(template::standalone) {
                Some(Ok(Some(expression))) => found.push(expression.to_owned()),
                Some(Err(message)) => self.error(&At { resource: Some(id), path: &entry_path }, message.to_owned(), ""),
                _ => self.error(&At { resource: Some(id), path: &entry_path }, format!("failed to parse {what} expressions: only standalone expressions are allowed"), "each entry is one ${...} returning a bool"),
            }
        }
        found
    }

    fn inspect(&mut self, at: &At<'_>, expression: &str, context: &str) -> Option<Inspection> {
        match Engine::global().inspect(expression) {
            Ok(inspection) => {
                self.metrics.expressions += 1;
                self.metrics.complexity_score += inspection.complexity.score;
                match inspection.complexity.class {
                    CostClass::Simple => self.metrics.simple_expressions += 1,
                    CostClass::Moderate => self.metrics.moderate_expressions += 1,
                    CostClass::Complex => {
                        self.metrics.complex_expressions += 1;
                        self.report(Severity::Warning, at, format!("{context} expression {expression:?} is complex (score {}: {} nodes, {} comprehensions nested {} deep)", inspection.complexity.score, inspection.complexity.nodes, inspection.complexity.comprehensions, inspection.complexity.comprehension_nesting), Some("complex expressions cost 20-100x a field read on every reconcile: precompute into a field or simplify"));
                    }
                }
                Some(inspection)
            }
            Err(error) => {
                // A reserved word used as an id was reported once, at the id.
                if let Some(word) = error.to_string().rsplit("reserved identifier: ").next()
                    && self.reserved_ids.contains(word.trim())
                {
                    return None;
                }
                let mut hint =
                    "check the CEL syntax: `kubectl zen cel check 'EXPR'` shows where it breaks"
                        .to_owned();
                if expression.matches('\'').count() % 2 == 1 {
                    hint = "a } inside a single-quoted string ends the ${...} early (KRO tracks only double quotes): use double quotes".into();
                }
                let position = error
                    .position()
                    .map(|p| format!(" at {}:{}", p.line, p.column))
                    .unwrap_or_default();
                self.error(
                    at,
                    format!(
                        "failed to compile {context} expression {expression:?}{position}: {error}"
                    ),
                    &hint,
                );
                None
            }
        }
    }

    /// Every expression of every resource: references checked, dependencies recorded.
    fn expressions(&mut self, graph: &mut ResourceGraph, spec: &Json) {
        for node in 0..graph.resources.len() {
            let resource = &graph.resources[node];
            let id = resource.id.clone();
            let is_collection = resource.kind == ResourceKind::Collection;
            let iterators: Vec<String> = resource.for_each.iter().map(|i| i.name.clone()).collect();
            let mut sites: Vec<Site> = Vec::new();
            for (f, field) in resource.fields.iter().enumerate() {
                for expression in &field.expressions {
                    sites.push(Site {
                        role: Role::Template,
                        path: Cow::Borrowed(&field.path),
                        expression,
                        field: Some(f),
                    });
                }
            }
            let base = format!("spec.resources[{node}]");
            for (i, iterator) in resource.for_each.iter().enumerate() {
                sites.push(Site {
                    role: Role::ForEach,
                    path: Cow::Owned(format!("{base}.forEach[{i}].{}", iterator.name)),
                    expression: &iterator.expression,
                    field: None,
                });
            }
            for (i, e) in resource.include_when.iter().enumerate() {
                sites.push(Site {
                    role: Role::IncludeWhen,
                    path: Cow::Owned(format!("{base}.includeWhen[{i}]")),
                    expression: e,
                    field: None,
                });
            }
            for (i, e) in resource.ready_when.iter().enumerate() {
                sites.push(Site {
                    role: Role::ReadyWhen,
                    path: Cow::Owned(format!("{base}.readyWhen[{i}]")),
                    expression: e,
                    field: None,
                });
            }
            let mut identity_iterators = BTreeSet::new();
            let mut dependencies = BTreeSet::new();
            for site in &sites {
                self.site(
                    &graph.resources,
                    node,
                    site,
                    spec,
                    &mut dependencies,
                    &mut identity_iterators,
                );
            }
            if is_collection {
                let missing: Vec<&str> = iterators
                    .iter()
                    .filter(|i| !identity_iterators.contains(*i))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    let at_path = format!("{base}.template.metadata.name");
                    self.error(&At { resource: Some(&id), path: &at_path }, format!("node {id:?}: all forEach dimensions must be used to produce a unique resource identity, missing: [{}]", missing.join(" ")), "use every iterator in metadata.name (or metadata.namespace), e.g. name: ${schema.spec.name}-${region}");
                }
            }
            if graph.resources[node].kind != ResourceKind::External {
                self.check_types(&graph.resources, node, spec);
            }
            for dependency in &dependencies {
                graph.dag.depend(node, *dependency);
            }
            graph.resources[node].dependencies = dependencies
                .iter()
                .map(|d| graph.resources[*d].id.clone())
                .collect();
        }
    }

    /// The template against its kind's schema, when the catalog knows the kind: unknown
    /// fields, plain values of the wrong type, and expressions whose type is known and wrong.
    fn check_types(&mut self, resources: &[Resource], node: usize, spec: &Json) {
        let resource = &resources[node];
        let (Some(api_version), Some(kind)) = (&resource.api_version, &resource.object_kind) else {
            return;
        };
        let Some(schema) = self.catalog.schema(api_version, kind) else {
            return;
        };
        let walk = TypeWalk {
            resources,
            node,
            spec,
            base: format!("spec.resources[{node}].template"),
        };
        let mut path = String::new();
        let top = catalog::Cursor::object(&schema);
        if let Json::Object(fields) = &resource.object {
            for (key, value) in fields {
                self.check_child(&walk, top, key, false, value, &mut path);
            }
        }
    }

    /// The field `key` (below `parent`) holding `value`.
    fn check_child(
        &mut self,
        walk: &TypeWalk<'_>,
        parent: catalog::Cursor<'_>,
        key: &str,
        is_index: bool,
        value: &Json,
        path: &mut String,
    ) {
        let at_top = path.is_empty();
        let len = path.len();
        if is_index {
            let _ = write!(path, "[{key}]");
        } else {
            template::push_key(path, key);
        }
        match parent.child(key, at_top) {
            catalog::Field::Missing => {
                let id = walk.resources[walk.node].id.as_str();
                let kind = walk.resources[walk.node]
                    .object_kind
                    .as_deref()
                    .unwrap_or("?");
                let full = format!("{}.{path}", walk.base);
                self.error(
                    &At { resource: Some(id), path: &full },
                    format!("error getting field schema for path {path}: schema not found for field {key}"),
                    &format!("{kind} has no such field: check the spelling against `kubectl explain`"),
                );
            }
            catalog::Field::Open => {}
            catalog::Field::Known(cursor) => self.check_value(walk, cursor, value, path),
        }
        path.truncate(len);
    }

    fn check_value(
        &mut self,
        walk: &TypeWalk<'_>,
        cursor: catalog::Cursor<'_>,
        value: &Json,
        path: &mut String,
    ) {
        let expected = catalog::cel_type(cursor.schema);
        let found = match value {
            Json::Object(map) => {
                for (key, inner) in map {
                    self.check_child(walk, cursor, key, false, inner, path);
                }
                "map"
            }
            Json::Array(items) => {
                for (index, inner) in items.iter().enumerate() {
                    self.check_child(walk, cursor, &index.to_string(), true, inner, path);
                }
                "list"
            }
            Json::String(text) if text.contains("${") => match template::standalone(text) {
                Ok(Some(expression)) => {
                    self.check_expression(walk, expected, expression, path);
                    return;
                }
                // A string template makes a string.
                Ok(None) if template::scan(text).is_ok_and(|m| !m.is_empty()) => "string",
                _ => return,
            },
            // YAML 1.1, which Kubernetes reads manifests with, takes 0400 as an octal number;
            // the YAML 1.2 parser here keeps it a string.
            Json::String(text) if expected == Some("int") && is_yaml11_octal(text) => return,
            Json::String(_) => "string",
            Json::Bool(_) => "bool",
            Json::Number(n) if n.is_f64() => "double",
            Json::Number(_) => "int",
            Json::Null => return,
        };
        let Some(expected) = expected.filter(|e| !compatible(e, found)) else {
            return;
        };
        let openapi = |cel: &str| {
            match cel {
                "int" => "integer",
                "double" => "number",
                "bool" => "boolean",
                "list" => "array",
                "map" => "object",
                other => other,
            }
            .to_owned()
        };
        let id = walk.resources[walk.node].id.as_str();
        let full = format!("{}.{path}", walk.base);
        self.error(
            &At {
                resource: Some(id),
                path: &full,
            },
            format!(
                "expected {} type for path {path}, got {}",
                openapi(expected),
                openapi(found)
            ),
            &conversion_hint(expected),
        );
    }

    /// A standalone expression filling a field of type `expected`.
    fn check_expression(
        &mut self,
        walk: &TypeWalk<'_>,
        expected: Option<&'static str>,
        expression: &str,
        path: &str,
    ) {
        let Some(expected) = expected else { return };
        let Ok(inspection) = Engine::global().inspect(expression) else {
            return;
        };
        let Some(found) = self.expression_type(&inspection, walk.resources, walk.spec) else {
            return;
        };
        if !compatible(expected, found) {
            let id = walk.resources[walk.node].id.as_str();
            let full = format!("{}.{path}", walk.base);
            self.error(
                &At { resource: Some(id), path: &full },
                format!("type mismatch in resource {id:?} at path {path:?}: expression {expression:?} returns type {found:?} but expected {expected:?}"),
                &conversion_hint(expected),
            );
        }
    }

    /// The schema of a resource field that `reference` reads, when the catalog knows the
    /// resource's kind (`deployment.status.availableReplicas` is an integer).
    fn resource_openapi(&self, reference: &Reference, resources: &[Resource]) -> Option<Json> {
        let target = &resources[*self.index.get(&reference.variable)?];
        if target.kind == ResourceKind::Collection || reference.path.is_empty() {
            return None;
        }
        let schema = self.catalog.schema(
            target.api_version.as_deref()?,
            target.object_kind.as_deref()?,
        )?;
        match catalog::field(&schema, &reference.path) {
            // Scalars only: lists and objects would bring their references along.
            catalog::Field::Known(field)
                if matches!(
                    catalog::cel_type(field.schema),
                    Some("string" | "int" | "double" | "bool")
                ) =>
            {
                let mut field = field.schema.clone();
                if let Some(map) = field.as_object_mut() {
                    map.remove("description");
                }
                Some(field)
            }
            _ => None,
        }
    }

    /// The CEL type an expression returns, when its shape tells: a literal, a comparison, or
    /// a path into the instance schema or into a resource whose kind the catalog knows.
    fn expression_type(
        &self,
        inspection: &Inspection,
        resources: &[Resource],
        spec: &Json,
    ) -> Option<&'static str> {
        if inspection.shape != Shape::Path {
            return inspection.shape.type_name();
        }
        let reference = inspection.references.first()?;
        if reference.variable == "schema" {
            return schema_cel_type(reference, spec);
        }
        let target = &resources[*self.index.get(&reference.variable)?];
        if target.kind == ResourceKind::Collection || reference.path.is_empty() {
            return None;
        }
        let schema = self.catalog.schema(
            target.api_version.as_deref()?,
            target.object_kind.as_deref()?,
        )?;
        match catalog::field(&schema, &reference.path) {
            catalog::Field::Known(field) => catalog::cel_type(field.schema),
            _ => None,
        }
    }

    /// One expression of a resource: its references checked by where it sits, dependencies
    /// and identity iterators recorded.
    fn site(
        &mut self,
        resources: &[Resource],
        node: usize,
        site: &Site,
        spec: &Json,
        dependencies: &mut BTreeSet<usize>,
        identity_iterators: &mut BTreeSet<String>,
    ) {
        let Site {
            role,
            path,
            expression,
            field,
        } = site;
        let (role, field) = (*role, *field);
        let resource = &resources[node];
        let id = resource.id.as_str();
        let is_collection = resource.kind == ResourceKind::Collection;
        let iterators: Vec<String> = resource.for_each.iter().map(|i| i.name.clone()).collect();
        let at = At {
            resource: Some(id),
            path,
        };
        let context = match role {
            Role::Template => "template",
            Role::ForEach => "forEach",
            Role::IncludeWhen => "includeWhen",
            Role::ReadyWhen => "readyWhen",
        };
        let Some(inspection) = self.inspect(&at, expression, context) else {
            return;
        };
        let mut unknown = BTreeSet::new();
        let mut other_iterators = BTreeSet::new();
        for reference in &inspection.references {
            let variable = reference.variable.as_str();
            if variable == "schema" && role != Role::ReadyWhen {
                self.schema_reference(&at, reference, expression, spec);
            } else if let Some(&target) = self.index.get(variable).filter(|_| variable != "each") {
                match role {
                    Role::ReadyWhen if variable == id && !is_collection => {}
                    Role::ReadyWhen => {
                        unknown.insert(variable.to_owned());
                    }
                    _ if target == node => {
                        self.error(
                            &at,
                            "self references are not allowed".into(),
                            "a resource cannot read its own fields in its template; readyWhen may",
                        );
                    }
                    _ => {
                        dependencies.insert(target);
                    }
                }
            } else if iterators.iter().any(|i| i == variable) {
                match role {
                    Role::Template => {
                        if field.is_some_and(|f| is_identity_path(&resource.fields[f].path)) {
                            identity_iterators.insert(variable.to_owned());
                        }
                    }
                    Role::ForEach => {
                        other_iterators.insert(variable.to_owned());
                    }
                    _ => {
                        unknown.insert(variable.to_owned());
                    }
                }
            } else if variable == "each" && role == Role::ReadyWhen && is_collection {
            } else if variable == "runtime" {
                self.error(
                    &at,
                    "runtime is only available in status.conditions expressions".into(),
                    "",
                );
            } else {
                unknown.insert(variable.to_owned());
            }
        }
        if !other_iterators.is_empty() {
            self.error(&at, format!("node {id:?}: forEach iterator {:?} cannot reference other iterators [{}] - forEach iterators are independent (cartesian product)", path.rsplit('.').next().unwrap_or_default(), join(&other_iterators)), "each forEach list must come from schema or other resources");
        }
        if !unknown.is_empty() {
            self.unknown_identifiers(&at, role, resource, &unknown);
        }
        match role {
            Role::ReadyWhen | Role::IncludeWhen => {
                self.check_boolean(&at, &inspection, expression, context, resources, node, spec);
            }
            Role::Template => {
                if let Some(f) = field {
                    self.check_template_piece(
                        &at,
                        &inspection,
                        resources,
                        &resource.fields[f],
                        spec,
                    );
                }
            }
            Role::ForEach => {}
        }
    }

    fn unknown_identifiers(
        &mut self,
        at: &At<'_>,
        role: Role,
        resource: &Resource,
        unknown: &BTreeSet<String>,
    ) {
        let id = resource.id.as_str();
        let is_collection = resource.kind == ResourceKind::Collection;
        let iterators: Vec<String> = resource.for_each.iter().map(|i| i.name.clone()).collect();
        let (prefix, hint) = match role {
            Role::ReadyWhen if is_collection => (
                format!("resource {id:?} readyWhen: "),
                "a collection's readyWhen reads each item as `each`".to_owned(),
            ),
            Role::ReadyWhen => (
                format!("resource {id:?} readyWhen: "),
                format!(
                    "readyWhen may read only the resource itself ({id}); it never waits on others"
                ),
            ),
            Role::IncludeWhen => (
                format!("resource {id:?} includeWhen: "),
                "includeWhen may read schema and other resources".to_owned(),
            ),
            _ => (String::new(), known_names_hint(&self.index, &iterators)),
        };
        self.error(
            at,
            format!(
                "{prefix}references unknown identifiers: [{}]",
                join(unknown)
            ),
            &hint,
        );
    }

    /// `schema.spec.x` must exist in the instance schema; records what is read.
    fn schema_reference(
        &mut self,
        at: &At<'_>,
        reference: &Reference,
        expression: &str,
        spec: &Json,
    ) {
        let Some(first) = reference.path.first() else {
            return;
        };
        match first.as_str() {
            "spec" => {
                let fields = &reference.path[1..];
                if schema::schema_at(spec, fields) != FieldSchema::Missing {
                    self.schema_reads.insert(reference.path.join("."));
                    return;
                }
                // The first field that is missing.
                let known = (0..fields.len())
                    .rev()
                    .find(|n| schema::schema_at(spec, &fields[..*n]) != FieldSchema::Missing)
                    .unwrap_or(0);
                let missing = format!("spec.{}", fields[..=known].join("."));
                if self.broken_fields.contains(&missing) {
                    return;
                }
                if known > 0 {
                    self.schema_reads.insert(format!("spec.{}", fields[..known].join(".")));
                }
                self.error(at, format!("failed to compile expression {expression:?}: undefined field '{}' (schema.{missing} is not in the schema)", fields[known]), "add the field to spec.schema.spec, or fix the spelling");
            }
            "metadata" | "apiVersion" | "kind" => {}
            other => self.error(at, format!("failed to compile expression {expression:?}: undefined field '{other}'"), "the instance offers schema.spec, schema.metadata, schema.apiVersion and schema.kind"),
        }
    }

    /// readyWhen and includeWhen must be booleans.
    #[allow(clippy::too_many_arguments)] // the expression, where it is, and what it may read
    fn check_boolean(
        &mut self,
        at: &At<'_>,
        inspection: &Inspection,
        expression: &str,
        what: &str,
        resources: &[Resource],
        node: usize,
        spec: &Json,
    ) {
        let id = resources[node].id.as_str();
        let found = self.expression_type(inspection, resources, spec);
        if let Some(found) = found.filter(|t| *t != "bool") {
            self.error(at, format!("{what} expression {expression:?} in resource {id:?} must return bool or optional_type(bool), but returns {found:?}"), "compare it: e.g. ${deployment.status.availableReplicas > 0}");
        }
    }

    /// In a string template, every piece must be a string: KRO does not convert.
    fn check_template_piece(
        &mut self,
        at: &At<'_>,
        inspection: &Inspection,
        resources: &[Resource],
        field: &FieldExpressions,
        spec: &Json,
    ) {
        if field.form != FieldForm::Template {
            return;
        }
        let found = self.expression_type(inspection, resources, spec);
        if let Some(found) = found.filter(|t| *t != "string") {
            self.error(at, format!("failed to compile template expression {:?} at path {:?}: found no matching overload for '_+_' applied to '(string, {found})'", field.cel(), field.path), "convert it in the expression: ${string(schema.spec.port)}");
        }
    }

    /// The instance status: every leaf an expression reading resources or schema; the
    /// OpenAPI schema inferred from what the expressions return.
    fn status(&mut self, graph: &ResourceGraph, doc: Option<&Json>, spec: &Json) -> Json {
        let Some(Json::Object(fields)) = doc else {
            return json!({"type": "object", "properties": {}});
        };
        let mut plain = Vec::new();
        let mut properties = Map::new();
        for (name, value) in fields {
            if name == "conditions" {
                self.status_conditions(value);
                continue;
            }
            if let Some(schema) = self.status_field(graph, value, name, spec, &mut plain) {
                properties.insert(name.clone(), schema);
            }
        }
        if !plain.is_empty() {
            self.error(&At { resource: None, path: "spec.schema.status" }, format!("failed to build instance status schema: status fields without expressions are not supported: [{}]", plain.join(" ")), "status values are ${...} expressions over resources, e.g. ${deployment.status.availableReplicas}");
        }
        json!({"type": "object", "properties": properties})
    }

    fn status_field(
        &mut self,
        graph: &ResourceGraph,
        value: &Json,
        path: &str,
        spec: &Json,
        plain: &mut Vec<String>,
    ) -> Option<Json> {
        match value {
            Json::Object(fields) => {
                let mut properties = Map::new();
                for (name, value) in fields {
                    let mut inner = path.to_owned();
                    template::push_key(&mut inner, name);
                    if let Some(schema) = self.status_field(graph, value, &inner, spec, plain) {
                        properties.insert(name.clone(), schema);
                    }
                }
                Some(json!({"type": "object", "properties": properties}))
            }
            Json::String(text) if text.contains("${") => {
                let at_path = format!("spec.schema.status.{path}");
                let at = At {
                    resource: None,
                    path: &at_path,
                };
                let (fields, issues) = template::fields(value, "");
                if let Some(issue) = issues.first() {
                    self.error(&at, issue.message.to_owned(), "");
                    return None;
                }
                let Some(field) = fields.into_iter().next() else {
                    plain.push(path.to_owned());
                    return None;
                };
                let mut reads_graph = false;
                let mut shape = Shape::String;
                for expression in &field.expressions {
                    let inspection = self.inspect(&at, expression, "status")?;
                    let mut unknown = BTreeSet::new();
                    for reference in &inspection.references {
                        if reference.variable == "schema" {
                            reads_graph = true;
                            self.schema_reference(&at, reference, expression, spec);
                        } else if self.index.contains_key(&reference.variable)
                            && reference.variable != "each"
                        {
                            reads_graph = true;
                        } else {
                            unknown.insert(reference.variable.clone());
                        }
                    }
                    if !unknown.is_empty() {
                        self.error(&at, format!("failed to build instance status schema: status field {path:?} expression {expression:?}: references unknown identifiers: [{}]", join(&unknown)), &known_names_hint(&self.index, &[]));
                    }
                    if field.form == FieldForm::Standalone {
                        shape = inspection.shape;
                        if shape == Shape::Path {
                            return Some(
                                inspection
                                    .references
                                    .first()
                                    .and_then(|r| {
                                        schema_openapi(r, spec)
                                            .or_else(|| self.resource_openapi(r, &graph.resources))
                                    })
                                    .unwrap_or_else(
                                        || json!({"x-kubernetes-preserve-unknown-fields": true}),
                                    ),
                            );
                        }
                    }
                }
                if !reads_graph {
                    self.error(&at, format!("failed to create instance node: instance status field must refer to a resource or schema: status.{path}"), "a constant belongs in the schema's defaults, not in status");
                }
                Some(openapi_for_shape(shape))
            }
            _ => {
                plain.push(path.to_owned());
                None
            }
        }
    }

    fn status_conditions(&mut self, value: &Json) {
        let path = "spec.schema.status.conditions";
        let Json::Array(entries) = value else {
            self.error(
                &At {
                    resource: None,
                    path,
                },
                format!(
                    "status.conditions must be a list, got {}",
                    schema::json_type(value)
                ),
                "",
            );
            return;
        };
        for (i, entry) in entries.iter().enumerate() {
            let at_path = format!("{path}[{i}]");
            let at = At {
                resource: None,
                path: &at_path,
            };
            match entry.as_str().map(template::standalone) {
                Some(Ok(Some(expression))) => {
                    if let Some(inspection) = self.inspect(&at, expression, "status") {
                        let unknown: BTreeSet<String> = inspection
                            .references
                            .iter()
                            .map(|r| r.variable.clone())
                            .filter(|v| {
                                v != "schema" && v != "runtime" && !self.index.contains_key(v)
                            })
                            .collect();
                        if !unknown.is_empty() {
                            self.error(
                                &at,
                                format!(
                                    "status.conditions[{i}] references unknown identifiers: [{}]",
                                    join(&unknown)
                                ),
                                "",
                            );
                        }
                    }
                }
                _ => self.error(
                    &at,
                    format!(
                        "status.conditions[{i}] must be a CEL expression string, got {}",
                        schema::json_type(entry)
                    ),
                    "conditions are ${runtime.newCondition(...)} expressions",
                ),
            }
        }
    }

    fn unused_schema_fields(&mut self, spec: &Json) {
        let mut leaves = Vec::new();
        schema_leaves(spec, "spec", &mut leaves);
        for leaf in leaves {
            let used = self.schema_reads.iter().any(|read| {
                read == &leaf
                    || leaf.starts_with(&format!("{read}."))
                    || read.starts_with(&format!("{leaf}."))
            });
            if !used {
                let at_path = format!("spec.schema.{leaf}");
                let hint = format!("remove it, or read it in a template: ${{schema.{leaf}}}");
                self.report(
                    Severity::Warning,
                    &At {
                        resource: None,
                        path: &at_path,
                    },
                    format!("schema field {leaf} is never read by any expression"),
                    Some(&hint),
                );
            }
        }
    }

    fn order(&mut self, graph: &mut ResourceGraph) {
        let dag = &graph.dag;
        for cycle in dag.cycles() {
            let ids: Vec<&str> = cycle
                .iter()
                .map(|n| graph.resources[*n].id.as_str())
                .collect();
            let at_path = format!("spec.resources[{}]", cycle[0]);
            self.error(&At { resource: Some(ids[0]), path: &at_path }, format!("failed to build dependency graph: graph contains a cycle: {}", ids.join(" -> ")), "break the cycle: one of these resources must not read the next (a -> b means a reads b)");
        }
        let metrics = &mut self.metrics;
        metrics.nodes = dag.len();
        metrics.edges = dag.edge_count();
        if let Some(levels) = dag.levels() {
            metrics.depth = levels.len();
            metrics.widest_level = levels.iter().map(Vec::len).max().unwrap_or(0);
        }
        let (dependencies, dependents) = (dag.dependency_counts(), dag.dependent_counts());
        for node in 0..dag.len() {
            let (fan_in, fan_out) = (dependencies[node], dependents[node]);
            if fan_in > metrics.max_fan_in {
                metrics.max_fan_in = fan_in;
                metrics.max_fan_in_resource = Some(graph.resources[node].id.clone());
            }
            if fan_out > metrics.max_fan_out {
                metrics.max_fan_out = fan_out;
                metrics.max_fan_out_resource = Some(graph.resources[node].id.clone());
            }
        }
        if metrics.nodes >= LARGE_GRAPH_RESOURCES {
            let nodes = metrics.nodes;
            self.report(Severity::Warning, &At { resource: None, path: "spec.resources" }, format!("the graph has {nodes} resources ({LARGE_GRAPH_RESOURCES} or more): large graphs reconcile slowly and fail as one"), Some("split it into smaller RGDs composed through an instance of one in another"));
        }
    }
}

/// The OpenAPI type of a `schema.spec...` reference, as a CEL type name.
fn schema_cel_type(reference: &Reference, spec: &Json) -> Option<&'static str> {
    if reference.variable != "schema" || reference.path.first().map(String::as_str) != Some("spec")
    {
        return None;
    }
    let FieldSchema::Known(schema) = schema::schema_at(spec, &reference.path[1..]) else {
        return None;
    };
    catalog::cel_type(schema)
}

/// The schema of a status field that copies `reference`: known for schema fields.
fn schema_openapi(reference: &Reference, spec: &Json) -> Option<Json> {
    if reference.variable != "schema" || reference.path.first().map(String::as_str) != Some("spec")
    {
        return None;
    }
    let FieldSchema::Known(schema) = schema::schema_at(spec, &reference.path[1..]) else {
        return None;
    };
    let mut schema = schema.clone();
    if let Some(fields) = schema.as_object_mut() {
        for key in ["default", "x-kubernetes-validations"] {
            fields.remove(key);
        }
    }
    Some(schema)
}

/// KRO's mapping from CEL result types to OpenAPI, for what the shape tells.
fn openapi_for_shape(shape: Shape) -> Json {
    match shape {
        Shape::Bool => json!({"type": "boolean"}),
        Shape::Int | Shape::Uint => json!({"type": "integer"}),
        Shape::Double => json!({"type": "number"}),
        Shape::String => json!({"type": "string"}),
        Shape::Bytes => json!({"type": "string", "format": "byte"}),
        Shape::List => json!({"type": "array"}),
        Shape::Map => json!({"type": "object", "additionalProperties": true}),
        Shape::Null => {
            json!({"description": "null type - any value allowed", "x-kubernetes-preserve-unknown-fields": true})
        }
        Shape::Path | Shape::Unknown => json!({"x-kubernetes-preserve-unknown-fields": true}),
    }
}

fn schema_leaves(schema: &Json, path: &str, leaves: &mut Vec<String>) {
    match schema.get("properties").and_then(Json::as_object) {
        Some(properties) if !properties.is_empty() => {
            for (name, inner) in properties {
                schema_leaves(inner, &format!("{path}.{name}"), leaves);
            }
        }
        _ if path != "spec" => leaves.push(path.to_owned()),
        _ => {}
    }
}

/// A field that makes an object's identity: its name or namespace.
fn is_identity_path(path: &str) -> bool {
    path.ends_with(".template.metadata.name") || path.ends_with(".template.metadata.namespace")
}

fn known_names_hint(index: &HashMap<String, usize>, iterators: &[String]) -> String {
    let mut names: Vec<&str> = index
        .keys()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.truncate(12);
    let mut hint = format!(
        "expressions may read schema and the resource ids ({}",
        names.join(", ")
    );
    if index.len() > 12 {
        hint.push_str(", ...");
    }
    hint.push(')');
    if !iterators.is_empty() {
        let _ = write!(
            hint,
            ", and in templates the iterators {}",
            iterators.join(", ")
        );
    }
    hint
}

fn join(names: &BTreeSet<String>) -> String {
    names
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_lower_camel(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn is_upper_camel(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && text.len() <= 63
}

fn is_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else {
        return false;
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            tail.strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// For each of `nodes` resources, the number of the layer that holds it.
fn layer_numbers(layers: &[Vec<usize>], nodes: usize) -> Vec<usize> {
    let mut numbers = vec![0; nodes];
    for (number, layer) in layers.iter().enumerate() {
        for node in layer {
            numbers[*node] = number;
        }
    }
    numbers
}

/// Whether a value of CEL type `found` may fill a field of CEL type `expected`.
fn compatible(expected: &str, found: &str) -> bool {
    expected == found || (expected == "double" && found == "int") || found == "null_type"
}

fn conversion_hint(expected: &str) -> String {
    match expected {
        "string" => "convert it: ${string(...)}, or quote a plain value".to_owned(),
        "int" => "convert it: ${int(...)}, or write the number unquoted".to_owned(),
        "bool" => "write true or false unquoted, or compare: ${x == 'yes'}".to_owned(),
        other => format!("the field takes a {other}"),
    }
}

/// `0400` or `0o400`: an octal number to YAML 1.1.
fn is_yaml11_octal(text: &str) -> bool {
    let digits = text.strip_prefix("0o").or_else(|| text.strip_prefix('0'));
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
}
