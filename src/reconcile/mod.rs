//! KRO's runtime: render a resource graph instance and apply it in dependency order.
//!
//! A [`Plan`] is a [`ResourceGraph`](crate::graph::ResourceGraph) compiled once: every
//! expression parsed, the apply levels and delete waves worked out. [`Plan::admit`] checks an
//! instance against the graph's SimpleSchema and fills in its defaults;
//! [`Plan::render_offline`] renders it with no cluster at all; a [`Reconciler`] applies it to
//! a cluster level by level (server-side apply, field manager `kubectl-zen`), waits for each
//! resource's `readyWhen` with a watch before rendering what depends on it, prunes objects no
//! longer desired, deletes in reverse order, and writes the instance status.
//!
//! ```
//! use kubezen::{graph, reconcile::Plan};
//!
//! let yaml = r#"
//! apiVersion: kro.run/v1alpha1
//! kind: ResourceGraphDefinition
//! metadata: {name: web}
//! spec:
//!   schema:
//!     apiVersion: v1alpha1
//!     kind: Web
//!     spec: {name: string | required=true, replicas: integer | default=2}
//!   resources:
//!     - id: config
//!       template:
//!         apiVersion: v1
//!         kind: ConfigMap
//!         metadata: {name: "${schema.spec.name}-config"}
//!         data: {replicas: "${string(schema.spec.replicas)}"}
//! "#;
//! let graphs = graph::parse_str(yaml, "web.yaml", &graph::Catalog::builtin())?;
//! let plan = Plan::new(&graphs[0])?;
//! let instance = plan.admit(
//!     serde_json::json!({"apiVersion": "kro.run/v1alpha1", "kind": "Web",
//!                        "metadata": {"name": "demo"}, "spec": {"name": "demo"}}),
//!     "default",
//! )?;
//! let rendering = plan.render_offline(&instance)?;
//! let config = &rendering.resources[0].objects[0];
//! assert_eq!(config["metadata"]["name"], "demo-config");
//! assert_eq!(config["data"]["replicas"], "2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every object the reconciler writes carries labels naming the graph, the instance and the
//! resource id, and the label of the instance's *apply set* (the `ApplySet` convention of
//! `kubectl apply --prune`, KEP-3659): a `ConfigMap` `zen-<graph>-<instance>-<hash>` beside the
//! instance records which kinds the set holds, so a re-run finds every object it made,
//! including those of resources since removed from the graph, and prunes them.

mod controller;
mod live;
mod plan;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;
use sha2::Digest as _;

pub use controller::{
    ControllerOptions, ControllerSummary, FINALIZER, held_instances, permissions, release_instance,
    run_controller,
};
pub use live::{ObjectDiff, Reconciler};
pub use plan::{Instance, MAX_COLLECTION_ITEMS, Plan, RenderedResource, Rendering};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = crate::cluster::FIELD_MANAGER;

/// The label naming the graph an object belongs to.
pub const GRAPH_LABEL: &str = "zen.kubezen.io/graph";
/// The label naming the instance an object belongs to.
pub const INSTANCE_LABEL: &str = "zen.kubezen.io/instance";
/// The label naming the instance's namespace.
pub const INSTANCE_NAMESPACE_LABEL: &str = "zen.kubezen.io/instance-namespace";
/// The label naming the resource id in the graph.
pub const RESOURCE_LABEL: &str = "zen.kubezen.io/resource-id";
/// The `ApplySet` membership label.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// The annotation holding a hash of what was last applied, so unchanged objects are not
/// written again.
pub const HASH_ANNOTATION: &str = crate::cluster::APPLIED_HASH_ANNOTATION;

/// How to reconcile.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects applied at once within a level.
    pub workers: usize,
    /// How long the whole run may take, readiness waits included.
    pub timeout: Duration,
    /// Take over fields another field manager owns instead of failing with a conflict.
    pub force_conflicts: bool,
    /// Delete objects the instance no longer wants.
    pub prune: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 4,
            timeout: Duration::from_secs(300),
            force_conflicts: false,
            prune: true,
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Written for the first time.
    Created,
    /// Written over an existing object.
    Configured,
    /// Already as desired: not written.
    Unchanged,
    /// An external reference, read.
    Read,
    /// Left out by `includeWhen` (its own or a dependency's).
    Excluded,
    /// Deleted because the instance no longer wants it.
    Pruned,
    /// Deleted by `--delete`.
    Deleted,
    /// Nothing to delete: it was not there.
    Absent,
    /// Failed: see the message.
    Failed,
    /// Not attempted: a dependency failed.
    Blocked,
    /// Not attempted or not waited for: the run was interrupted or ran out of time.
    Interrupted,
}

impl Outcome {
    /// Whether the outcome is a failure of the run.
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Blocked | Outcome::Interrupted
        )
    }

    /// Whether the object was written (created, changed or deleted).
    #[must_use]
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Outcome::Created | Outcome::Configured | Outcome::Pruned | Outcome::Deleted
        )
    }

    /// The word shown for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Read => "read",
            Outcome::Excluded => "excluded",
            Outcome::Pruned => "pruned",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// The resource id in the graph.
    pub id: String,
    /// The level (apply) or wave (delete) it belongs to, from 0.
    pub level: usize,
    /// `apps/v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Deployment`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
    /// Whether its `readyWhen` held (apply only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Time from its start to ready (or gone), in milliseconds.
    pub millis: u64,
    /// Why it failed or was left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ObjectReport {
    /// `Deployment/web`, or the id when no object was made.
    #[must_use]
    pub fn object(&self) -> String {
        if self.name.is_empty() {
            format!("({})", self.id)
        } else {
            format!("{}/{}", self.kind, self.name)
        }
    }
}

/// One level's (or wave's) timing.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    /// From 0.
    pub level: usize,
    /// Its resource ids.
    pub ids: Vec<String>,
    /// Wall time, in milliseconds.
    pub millis: u64,
}

/// Apply or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Render, apply, wait, prune.
    Apply,
    /// Delete in reverse order.
    Delete,
}

/// The result of a live reconcile or delete.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Apply or delete.
    pub action: Action,
    /// The graph's name.
    pub graph: String,
    /// `Kind/name` of the instance.
    pub instance: String,
    /// The instance's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Every object, in the order handled.
    pub objects: Vec<ObjectReport>,
    /// Per level (apply) or wave (delete).
    pub levels: Vec<LevelReport>,
    /// The instance status (apply).
    pub status: Json,
    /// Status fields that could not be evaluated, and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status_missing: BTreeMap<String, String>,
    /// Whether the status was written to the instance (its CRD exists).
    pub status_written: bool,
    /// Wall time, in milliseconds.
    pub millis: u64,
    /// API requests made.
    pub api_calls: u64,
    /// Of which writes (apply, delete, status).
    pub writes: u64,
    /// Whether Ctrl-C (or the timeout) stopped the run before the end.
    pub interrupted: bool,
}

impl Report {
    fn new(action: Action, plan: &Plan, instance: &Instance) -> Self {
        Self {
            action,
            graph: plan.graph.clone(),
            instance: format!("{}/{}", plan.kind, instance.name),
            namespace: instance.namespace.clone(),
            objects: Vec::new(),
            levels: Vec::new(),
            status: Json::Object(serde_json::Map::new()),
            status_missing: BTreeMap::new(),
            status_written: false,
            millis: 0,
            api_calls: 0,
            writes: 0,
            interrupted: false,
        }
    }

    /// True when nothing failed, was blocked or was interrupted.
    #[must_use]
    pub fn ok(&self) -> bool {
        !self.interrupted && !self.objects.iter().any(|o| o.outcome.is_failure())
    }

    /// How many objects ended with `outcome`.
    #[must_use]
    pub fn count(&self, outcome: Outcome) -> usize {
        self.objects.iter().filter(|o| o.outcome == outcome).count()
    }
}

/// Progress while reconciling, for a live display.
#[derive(Debug)]
pub enum Event<'a> {
    /// A level (or delete wave) starts.
    Level {
        /// From 0.
        level: usize,
        /// How many there are.
        of: usize,
        /// Its resource ids.
        ids: &'a [String],
    },
    /// An object is done.
    Object(&'a ObjectReport),
    /// A level is done.
    LevelDone(&'a LevelReport),
}

/// Receives [`Event`]s as they happen.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// No display.
impl Progress for () {
    fn event(&self, _: &Event<'_>) {}
}

/// A problem at a field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field: `spec.replicas`, `template.metadata.name`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(path: &str, message: String) -> Self {
        Self {
            path: path.to_owned(),
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a reconcile could not start or render.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The graph has errors.
    #[error("the graph has errors:{}", list(.0))]
    Graph(Vec<Problem>),
    /// The instance does not fit the graph's schema.
    #[error("the instance is invalid:{}", list(.0))]
    Invalid(Vec<Problem>),
    /// An expression failed while rendering offline.
    #[error("resource {id}: {problem}")]
    Render {
        /// The resource.
        id: String,
        /// Where and why.
        problem: Problem,
    },
    /// The cluster refused or could not be reached for what every object needs (discovery,
    /// the apply set).
    #[error("{0}")]
    Api(String),
    /// The controller's replica lost its Lease: another replica reconciles now. It stops so
    /// that Kubernetes restarts it as a standby.
    #[error("this replica lost its Lease to another replica and stopped reconciling")]
    NotLeading,
}

fn list(problems: &[Problem]) -> String {
    use fmt::Write as _;
    problems.iter().fold(String::new(), |mut out, p| {
        let _ = write!(out, "\n  {p}");
        out
    })
}

/// A label value for `text`: itself when it is one, else a stable hash of it.
fn label_value(text: &str) -> String {
    if !text.is_empty() && crate::cluster::is_label_value(text) {
        text.to_owned()
    } else {
        format!("h-{}", &hex(&sha2::Sha256::digest(text.as_bytes()))[..32])
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The `ApplySet` id of an instance: KEP-3659's `applyset-<base64url(sha256(name.namespace.kind.group))>-v1`
/// of its parent `ConfigMap`.
fn applyset_id(parent: &str, namespace: &str) -> String {
    use base64::Engine as _;
    let digest = sha2::Sha256::digest(format!("{parent}.{namespace}.ConfigMap.").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The parent `ConfigMap`'s name: `zen-<graph>-<instance>-<hash>`, the hash of the pair
/// keeping `web` + `app-prod` apart from `web-app` + `prod`; only the hash when too long.
fn parent_name(plan: &Plan, instance: &Instance) -> String {
    let digest = hex(&sha2::Sha256::digest(
        format!("{}\0{}", plan.graph, instance.name).as_bytes(),
    ));
    let name = format!("zen-{}-{}-{}", plan.graph, instance.name, &digest[..8]);
    if name.len() <= 253 && plan::is_dns_subdomain(&name) {
        name
    } else {
        format!("zen-{}", &digest[..40])
    }
}

/// Where the apply set's parent lives: the instance's namespace, or for cluster-scoped
/// instances the namespace they were admitted with.
fn parent_namespace(instance: &Instance) -> String {
    instance
        .namespace
        .clone()
        .unwrap_or_else(|| instance.home.clone())
}

/// The labels every written object carries.
pub(crate) fn ownership_labels(
    plan: &Plan,
    instance: &Instance,
    id: &str,
) -> Vec<(&'static str, String)> {
    let namespace = parent_namespace(instance);
    let mut labels = vec![
        ("app.kubernetes.io/managed-by", FIELD_MANAGER.to_owned()),
        (GRAPH_LABEL, label_value(&plan.graph)),
        (INSTANCE_LABEL, label_value(&instance.name)),
        (RESOURCE_LABEL, label_value(id)),
        (
            PART_OF_LABEL,
            applyset_id(&parent_name(plan, instance), &namespace),
        ),
    ];
    if let Some(namespace) = &instance.namespace {
        labels.push((INSTANCE_NAMESPACE_LABEL, label_value(namespace)));
    }
    labels
}

/// A stable hash of a JSON value, keys in order.
fn hash_json(value: &Json) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    hex(&sha2::Sha256::digest(text.as_bytes()))[..32].to_owned()
}

/// Whether every field of `desired` has the same value in `live`: maps may hold more keys;
/// lists must be as long, item by item.
fn contained(desired: &Json, live: &Json) -> bool {
    match (desired, live) {
        (Json::Object(want), Json::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| contained(value, h))),
        (Json::Array(want), Json::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| contained(w, h))
        }
        (Json::Number(want), Json::Number(have)) => want.as_f64() == have.as_f64(),
        (want, have) => want == have,
    }
}

impl crate::Tabular for Report {
    fn to_table(&self) -> crate::Table {
        use crate::{Cell, Column, Tone};
        let mut table = crate::Table::new(vec![
            Column::new("LEVEL").right(),
            Column::new("RESOURCE"),
            Column::new("OBJECT"),
            Column::wide("NAMESPACE"),
            Column::new("OUTCOME"),
            Column::new("READY"),
            Column::new("TIME").right(),
            Column::new("MESSAGE"),
        ]);
        for object in &self.objects {
            let tone = if object.outcome.is_failure() {
                Tone::Bad
            } else if object.outcome.is_write() {
                Tone::Good
            } else {
                Tone::Muted
            };
            table.push_row(vec![
                Cell::from((object.level + 1).to_string()),
                Cell::from(object.id.as_str()),
                Cell::from(object.object()),
                Cell::from(object.namespace.as_deref().unwrap_or("-")),
                Cell::toned(object.outcome.as_str(), tone),
                Cell::from(match object.ready {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }),
                Cell::from(format!("{} ms", object.millis)),
                Cell::toned(object.message.as_deref().unwrap_or(""), Tone::Muted),
            ]);
        }
        table
    }
}

#[cfg(test)]
mod tests;
