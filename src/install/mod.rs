//! Everything that runs a controller inside the cluster, where Kubernetes restarts and scales
//! it: a `Namespace`, a `ServiceAccount`, the narrowest `ClusterRole` and `Role` the controller's code
//! needs ([`crate::lead::permissions`], [`crate::reconcile::permissions`]) and their bindings, a
//! Deployment (sized by the `background-job` tune preset, probed on the controller's `/healthz`
//! and `/readyz`, locked down: non-root, read-only root filesystem, no privilege escalation, no
//! capabilities, seccomp `RuntimeDefault`), a `PodDisruptionBudget`, a metrics `Service`, and for
//! more than one replica leader election on a Lease.
//!
//! [`manifests`] renders them (the plugin prints them, `deploy/` holds them as a kustomize
//! base); [`apply`] server-side applies them; [`uninstall`] finds what an install made by its
//! [`INSTALL_LABEL`] and deletes exactly that.
//!
//! ```
//! use kubezen::install::{Component, InstallOptions, manifests};
//!
//! let objects = manifests(&Component::Lead, &InstallOptions::default()).unwrap();
//! let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
//! assert_eq!(kinds, [
//!     "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
//!     "RoleBinding", "Service", "PodDisruptionBudget", "Deployment",
//! ]);
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::cluster::election::ElectionOptions;
use crate::cluster::{Cluster, FIELD_MANAGER, Permission, Scope, api_message, is_not_found};
use crate::graph::{Catalog, LoadError};
use crate::reconcile::{ControllerOptions, Plan, ReconcileError};
use crate::tune::presets::Profile;

/// The namespace controllers are installed in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "kubezen-system";

/// The image the Deployment runs unless told otherwise: this version's release image, built by
/// the repository's `Dockerfile`.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/kubectl-zen/kubectl-zen:v",
    env!("CARGO_PKG_VERSION")
);

/// The label on every object an install makes, its value the installed controller's name
/// (`zen-lead`, `zen-reconcile-GRAPH`): how [`uninstall`] finds them again.
pub const INSTALL_LABEL: &str = "install.kubezen.io/controller";

/// The tune preset the controllers' requests and limits come from.
pub const PROFILE: Profile = Profile::BackgroundJob;

/// Where the graph's `ConfigMap` is mounted in the reconcile controller's pod.
const GRAPH_DIR: &str = "/etc/kubectl-zen/graph";

/// The port of `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT: u16 = 8080;

/// The non-root user the controllers run as (distroless' `nonroot`).
const USER: i64 = 65532;

/// The most replicas an install runs: one is active, the rest stand by.
pub const MAX_REPLICAS: u16 = 100;

/// The largest graph a reconcile controller can be given: a `ConfigMap` carries at most 1 MiB.
pub const MAX_GRAPH_BYTES: u64 = 1 << 20;

/// A controller that can run in the cluster.
#[derive(Debug, Clone)]
pub enum Component {
    /// zen-lead's leader-Service controller (`kubectl zen lead`).
    Lead,
    /// The controller of one resource graph's instances (`kubectl zen reconcile controller`).
    Reconcile {
        /// The compiled graph: what its RBAC is derived from.
        plan: Arc<Plan>,
        /// The `ResourceGraphDefinition` as written, shipped to the pod in a `ConfigMap`.
        rgd: String,
    },
}

impl Component {
    /// The controller of the one `ResourceGraphDefinition` in `rgd` (YAML or JSON text, called
    /// `name` in errors), its templates checked against `catalog`.
    ///
    /// # Errors
    /// [`InstallError::TooLarge`] over [`MAX_GRAPH_BYTES`]; [`InstallError::Load`] for text that
    /// cannot be parsed or holds no graph; [`InstallError::Options`] for more than one graph;
    /// [`InstallError::Graph`] for a graph with errors.
    pub fn reconcile(rgd: String, name: &str, catalog: &Catalog) -> Result<Self, InstallError> {
        if rgd.len() as u64 > MAX_GRAPH_BYTES {
            return Err(InstallError::TooLarge {
                name: name.to_owned(),
            });
        }
        let mut graphs = crate::graph::parse_str(&rgd, name, catalog)?;
        if graphs.is_empty() {
            return Err(LoadError::NoGraphs {
                path: name.to_owned(),
            }
            .into());
        }
        if graphs.len() > 1 {
            return Err(InstallError::Options(format!(
                "{name} holds {} ResourceGraphDefinitions; a controller reconciles one",
                graphs.len()
            )));
        }
        let plan = Plan::new(&graphs.remove(0)).map_err(InstallError::Graph)?;
        Ok(Self::Reconcile {
            plan: Arc::new(plan),
            rgd,
        })
    }

    /// [`Component::reconcile`] of the file at `path` (`-`: standard input), read no further
    /// than [`MAX_GRAPH_BYTES`].
    ///
    /// # Errors
    /// As [`Component::reconcile`]; [`InstallError::Load`] when the file cannot be read or is
    /// not UTF-8.
    pub fn reconcile_file(path: &Path, catalog: &Catalog) -> Result<Self, InstallError> {
        let text = crate::graph::read_text(path, MAX_GRAPH_BYTES).map_err(|error| match error {
            LoadError::TooLarge { path, .. } => InstallError::TooLarge { name: path },
            other => InstallError::Load(other),
        })?;
        Self::reconcile(text, &path.display().to_string(), catalog)
    }

    /// The name of its objects and the value of [`INSTALL_LABEL`]: `zen-lead` or
    /// `zen-reconcile-GRAPH`.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Self::Lead => "zen-lead".to_owned(),
            Self::Reconcile { plan, .. } => format!("zen-reconcile-{}", plan.graph()),
        }
    }

    /// The Lease its replicas elect a leader on.
    #[must_use]
    pub fn lease(&self) -> String {
        lease_of(&self.name()).to_owned()
    }

    /// Every API permission its code needs when it runs with `election` (or without it).
    ///
    /// # Errors
    /// [`InstallError::Graph`] when the graph's kinds cannot be known before it renders.
    pub fn permissions(
        &self,
        election: Option<&ElectionOptions>,
    ) -> Result<Vec<Permission>, InstallError> {
        match self {
            Self::Lead => Ok(crate::lead::permissions(&crate::lead::LeadOptions {
                election: election.cloned(),
                ..crate::lead::LeadOptions::default()
            })),
            Self::Reconcile { plan, .. } => crate::reconcile::permissions(
                plan,
                &ControllerOptions {
                    election: election.cloned(),
                    ..ControllerOptions::default()
                },
            )
            .map_err(InstallError::Graph),
        }
    }

    fn args(&self, options: &InstallOptions) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Self::Lead => vec!["lead".into()],
            Self::Reconcile { .. } => vec![
                "reconcile".into(),
                "controller".into(),
                "--rgd".into(),
                format!("{GRAPH_DIR}/rgd.yaml"),
            ],
        };
        args.extend([
            "--metrics-addr".to_owned(),
            format!("0.0.0.0:{METRICS_PORT}"),
            format!("--leader-elect={}", options.replicas > 1),
        ]);
        if options.replicas > 1 {
            args.extend([
                "--leader-election-id".to_owned(),
                self.lease(),
                "--leader-election-namespace".to_owned(),
                options.namespace.clone(),
            ]);
        }
        args
    }
}

/// What [`uninstall`] does with the instances a reconcile controller's finalizer still holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeldInstances {
    /// Refuse the uninstall, naming them ([`InstallError::InstancesHeld`]); nothing is deleted.
    #[default]
    Refuse,
    /// After the install is removed, delete each instance and its objects in reverse dependency
    /// order, as the controller would have, then release it.
    Delete,
    /// After the install is removed, release them: the finalizer goes, the instances and their
    /// objects stay.
    Orphan,
}

/// Where and how a controller is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// The namespace it runs in ([`DEFAULT_NAMESPACE`]).
    pub namespace: String,
    /// Replicas, 1 to [`MAX_REPLICAS`]; more than one elect a leader (2).
    pub replicas: u16,
    /// The image ([`DEFAULT_IMAGE`]).
    pub image: String,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            replicas: 2,
            image: DEFAULT_IMAGE.to_owned(),
        }
    }
}

/// Why an install could not be rendered, applied or removed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Options that cannot work.
    #[error("{0}")]
    Options(String),
    /// The graph of a reconcile controller could not be read or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The graph of a reconcile controller is over [`MAX_GRAPH_BYTES`].
    #[error("{name} is over 1 MiB: a ConfigMap cannot carry it to the controller")]
    TooLarge {
        /// The graph's file.
        name: String,
    },
    /// The graph of a reconcile controller has errors.
    #[error(transparent)]
    Graph(ReconcileError),
    /// The controller is installed in another namespace already: two would both act on every
    /// object, and share one `ClusterRole`.
    #[error(
        "{name} is installed in namespace {namespace} already: one install of a controller per cluster"
    )]
    Elsewhere {
        /// The controller ([`Component::name`]).
        name: String,
        /// The namespace it is installed in.
        namespace: String,
    },
    /// A reconcile controller's finalizer holds instances: uninstalled, nothing would release
    /// them, and their Namespaces could never finish deleting.
    #[error(
        "{name}'s finalizer holds {count} instances ({list}): without the controller nothing would release them",
        count = instances.len(),
        list = instances.join(", ")
    )]
    InstancesHeld {
        /// The controller ([`Component::name`]).
        name: String,
        /// The instances, as `namespace/name`.
        instances: Vec<String>,
    },
    /// The API server refused a request.
    #[error("{what}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// The server's message.
        message: String,
    },
}

impl InstallOptions {
    /// The options, or what is wrong with them.
    ///
    /// # Errors
    /// [`InstallError::Options`] for a namespace that is not a DNS label, replicas out of 1 to
    /// [`MAX_REPLICAS`], or an empty image.
    pub fn checked(&self) -> Result<&Self, InstallError> {
        let namespace = &self.namespace;
        let label = !namespace.is_empty()
            && namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !label {
            return Err(InstallError::Options(format!(
                "namespace {namespace:?} is not a DNS label: lower-case letters, digits and '-', at most 63"
            )));
        }
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(InstallError::Options(format!(
                "replicas must be 1 to {MAX_REPLICAS}, not {} (to stop a controller, uninstall it)",
                self.replicas
            )));
        }
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return Err(InstallError::Options(format!(
                "image {:?} is not an image reference",
                self.image
            )));
        }
        Ok(self)
    }
}

/// Everything that runs `component` with `options`, in the order it is applied: Namespace,
/// `ServiceAccount`, `ClusterRole` and binding, `Role` and binding (the Lease, with replicas > 1),
/// the graph's `ConfigMap` (reconcile), metrics `Service`, `PodDisruptionBudget`, `Deployment`.
///
/// # Errors
/// [`InstallError::Options`] for bad options; [`InstallError::Graph`] when the graph's RBAC
/// cannot be derived.
pub fn manifests(
    component: &Component,
    options: &InstallOptions,
) -> Result<Vec<Json>, InstallError> {
    let options = options.checked()?;
    let name = component.name();
    let namespace = options.namespace.as_str();
    let election = (options.replicas > 1)
        .then(|| ElectionOptions::new(namespace, &component.lease(), "unused"));
    let permissions = Permission::merge(&component.permissions(election.as_ref())?);
    let labels = labels(&name);
    let meta = |object_name: &str, namespaced: bool| {
        let mut meta = json!({"name": object_name, "labels": labels});
        if namespaced {
            meta["namespace"] = json!(namespace);
        }
        meta
    };
    let selector =
        json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kubectl-zen"});
    let cluster_role = cluster_role_of(&name);
    let subjects = json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}]);
    let rules = |scope: Scope| -> Vec<Json> {
        permissions
            .iter()
            .filter(|p| p.scope == scope)
            .map(Permission::rule)
            .collect()
    };
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(namespace, false)}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&name, true)}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta(&cluster_role, false), "rules": rules(Scope::Cluster)}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": meta(&cluster_role, false),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": subjects}),
    ];
    let own = rules(Scope::OwnNamespace);
    if !own.is_empty() {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": meta(&name, true), "rules": own}),
        );
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": meta(&name, true),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects}),
        );
    }
    if let Component::Reconcile { rgd, .. } = component {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(&format!("{name}-graph"), true), "data": {"rgd.yaml": rgd}}));
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": meta(&format!("{name}-metrics"), true),
        "spec": {"selector": selector, "ports": [{"name": "metrics", "port": METRICS_PORT,
            "targetPort": "metrics", "protocol": "TCP"}]}}));
    // One replica may always be evicted (a drain never blocks); of several, one stays.
    let budget = if options.replicas > 1 {
        json!({"minAvailable": 1})
    } else {
        json!({"maxUnavailable": 1})
    };
    let mut pdb_spec = budget;
    pdb_spec["selector"] = json!({"matchLabels": selector});
    objects.push(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": meta(&name, true), "spec": pdb_spec}),
    );
    objects.push(deployment(
        component,
        options,
        &meta(&name, true),
        &selector,
    ));
    Ok(objects)
}

/// zen-lead's install as a ResourceGraphDefinition: the same objects as [`manifests`] with
/// `replicas` above 1, the namespace, replica count and image taken from a cluster-scoped
/// `ZenLead` instance (`spec.namespace`, `spec.replicas` of at least 2, `spec.image`, each with
/// the default [`InstallOptions`] has). `kubectl zen graph` reads it and `kubectl zen reconcile`
/// (or KRO) installs zen-lead from an instance of it.
///
/// # Errors
/// [`InstallError::Options`] for a reconcile controller: its graph's own `${...}` expressions,
/// carried in a `ConfigMap`, would be read as expressions of this graph.
pub fn graph(component: &Component) -> Result<Json, InstallError> {
    let Component::Lead = component else {
        return Err(InstallError::Options(
            "only zen-lead's install can be a graph: a reconcile controller's graph, carried in a ConfigMap, holds ${...} expressions this graph would evaluate".into(),
        ));
    };
    let defaults = InstallOptions::default();
    let mut resources = Vec::new();
    for mut object in manifests(component, &defaults)? {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let namespace = if kind == "Namespace" {
            "${schema.spec.namespace}"
        } else {
            "${installNamespace.metadata.name}"
        };
        substitute(&mut object, &defaults.namespace, namespace);
        substitute(&mut object, &defaults.image, "${schema.spec.image}");
        if kind == "Deployment" {
            object["spec"]["replicas"] = json!("${schema.spec.replicas}");
        }
        // `namespace` is a reserved word in KRO's graphs.
        let id = if kind == "Namespace" {
            "installNamespace".to_owned()
        } else {
            let mut id = kind.clone();
            id[..1].make_ascii_lowercase();
            id
        };
        resources.push(json!({"id": id, "template": object}));
    }
    Ok(json!({
        "apiVersion": "kro.run/v1alpha1",
        "kind": "ResourceGraphDefinition",
        "metadata": {"name": component.name(), "labels": {"app.kubernetes.io/part-of": "kubectl-zen"}},
        "spec": {
            "schema": {
                "apiVersion": "v1alpha1",
                "kind": "ZenLead",
                "scope": "Cluster",
                "spec": {
                    "namespace": format!("string | default={:?}", defaults.namespace),
                    "replicas": format!("integer | default={} minimum=2 maximum={MAX_REPLICAS}", defaults.replicas),
                    "image": format!("string | default={:?}", defaults.image),
                },
                "status": {"availableReplicas": "${deployment.status.availableReplicas}"},
            },
            "resources": resources,
        },
    }))
}

/// Replaces every string of `value` exactly `from` with `to`.
fn substitute(value: &mut Json, from: &str, to: &str) {
    match value {
        Json::String(text) if text == from => to.clone_into(text),
        Json::Array(items) => items.iter_mut().for_each(|item| substitute(item, from, to)),
        Json::Object(map) => map.values_mut().for_each(|item| substitute(item, from, to)),
        _ => {}
    }
}

fn labels(name: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name", name.to_owned()),
        ("app.kubernetes.io/part-of", "kubectl-zen".to_owned()),
        ("app.kubernetes.io/component", "controller".to_owned()),
        (
            "app.kubernetes.io/version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (INSTALL_LABEL, name.to_owned()),
    ])
}

fn deployment(
    component: &Component,
    options: &InstallOptions,
    meta: &Json,
    selector: &Json,
) -> Json {
    let name = component.name();
    let size = PROFILE.resources();
    let cpu = |m: Option<f64>| crate::quantity::format_cpu(m.unwrap_or_default());
    let memory = |b: Option<f64>| crate::quantity::format_memory(b.unwrap_or_default());
    let mut container = json!({
        "name": "controller",
        "image": options.image,
        "args": component.args(options),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"},
            "initialDelaySeconds": 5, "periodSeconds": 20, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": cpu(size.cpu_request), "memory": memory(size.memory_request)},
            "limits": {"cpu": cpu(size.cpu_limit), "memory": memory(size.memory_limit)},
        },
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
    });
    let mut pod = json!({
        "serviceAccountName": name,
        "securityContext": {"runAsNonRoot": true, "runAsUser": USER, "runAsGroup": USER,
            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,
        "containers": [],
    });
    if options.replicas > 1 {
        pod["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": selector}}}]}});
    }
    if let Component::Reconcile { .. } = component {
        container["volumeMounts"] =
            json!([{"name": "graph", "mountPath": GRAPH_DIR, "readOnly": true}]);
        pod["volumes"] = json!([{"name": "graph", "configMap": {"name": format!("{name}-graph")}}]);
    }
    pod["containers"] = json!([container]);
    let mut template_labels = labels(&name);
    template_labels.remove(INSTALL_LABEL);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": template_labels}, "spec": pod},
        },
    })
}

/// `objects` as a YAML stream, one document each, as `kubectl apply -f` and kustomize read it.
///
/// # Errors
/// When an object cannot be written as YAML (never for [`manifests`]' objects).
pub fn to_yaml(objects: &[Json]) -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(object)?);
    }
    Ok(out)
}

/// An object written or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its kind.
    pub kind: String,
    /// Its namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What happened: `serverside-applied`, `kept` (a Namespace that existed before and is not
    /// an install's, or that another install still uses), `unchecked` (a dry run's object in a
    /// Namespace not made yet), `deleted`, `deleted (stale)` (the `ClusterRoleBinding` of an
    /// install whose Namespace is gone, removed before installing anew), `released` (an
    /// instance the uninstalled controller's finalizer no longer holds).
    pub action: &'static str,
}

/// The kinds an install makes, in the order they are applied.
const KINDS: [&str; 10] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Service",
    "PodDisruptionBudget",
    "Deployment",
];

fn resource_of(kind: &str) -> Option<(ApiResource, bool)> {
    use k8s_openapi::api::{apps, core, policy, rbac};
    Some(match kind {
        "Namespace" => (ApiResource::erase::<core::v1::Namespace>(&()), false),
        "ServiceAccount" => (ApiResource::erase::<core::v1::ServiceAccount>(&()), true),
        "ClusterRole" => (ApiResource::erase::<rbac::v1::ClusterRole>(&()), false),
        "ClusterRoleBinding" => (
            ApiResource::erase::<rbac::v1::ClusterRoleBinding>(&()),
            false,
        ),
        "Role" => (ApiResource::erase::<rbac::v1::Role>(&()), true),
        "RoleBinding" => (ApiResource::erase::<rbac::v1::RoleBinding>(&()), true),
        "ConfigMap" => (ApiResource::erase::<core::v1::ConfigMap>(&()), true),
        "Service" => (ApiResource::erase::<core::v1::Service>(&()), true),
        "PodDisruptionBudget" => (
            ApiResource::erase::<policy::v1::PodDisruptionBudget>(&()),
            true,
        ),
        "Deployment" => (ApiResource::erase::<apps::v1::Deployment>(&()), true),
        "Lease" => (
            ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&()),
            true,
        ),
        _ => return None,
    })
}

fn api(cluster: &Cluster, kind: &str, namespace: &str) -> Result<Api<DynamicObject>, InstallError> {
    let (resource, namespaced) = resource_of(kind)
        .ok_or_else(|| InstallError::Options(format!("install does not make {kind} objects")))?;
    Ok(if namespaced {
        Api::namespaced_with(cluster.client(), namespace, &resource)
    } else {
        Api::all_with(cluster.client(), &resource)
    })
}

/// Server-side applies `objects` (from [`manifests`]) in order, as field manager `kubectl-zen`
/// taking over conflicting fields; with `dry_run`, the server checks them and stores nothing. A
/// Namespace that exists without the install's label is left as it is (and so is never deleted
/// by [`uninstall`]). A dry run cannot check objects in a Namespace that does not exist yet (the
/// API server refuses them until it does): they are reported `unchecked`. An install of the
/// controller in a Namespace that is gone or being deleted is stale: its `ClusterRoleBinding`
/// is deleted first and reported `deleted (stale)`.
///
/// # Errors
/// [`InstallError::Elsewhere`] when the controller is installed in another namespace that still
/// exists (nothing is applied); [`InstallError::Api`] naming the object the server refused (objects before it stay
/// applied).
pub async fn apply(
    cluster: &Cluster,
    objects: &[Json],
    dry_run: bool,
) -> Result<Vec<Change>, InstallError> {
    let binding = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRoleBinding")
        .and_then(|o| {
            let name = o["metadata"]["labels"][INSTALL_LABEL].as_str()?;
            Some((name, o["metadata"]["name"].as_str()?, subject_namespace(o)?))
        });
    let mut changes = Vec::with_capacity(objects.len() + 1);
    if let Some((name, binding, namespace)) = binding
        && let Some(other) = installed_in(cluster, binding).await?
        && other != namespace
    {
        if !namespace_gone(cluster, &other).await? {
            return Err(InstallError::Elsewhere {
                name: name.to_owned(),
                namespace: other,
            });
        }
        // The install there is stale: its Namespace is gone (or going), and with it the
        // ServiceAccount the binding names. Its cluster-scoped leftovers make way for this one.
        changes.extend(remove_stale_binding(cluster, binding, dry_run).await?);
    }
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    // Namespaces only a dry run "made": nothing in them can be checked.
    let mut absent = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        if absent.iter().any(|n| n == namespace) {
            changes.push(change(kind, namespace, name, "unchecked"));
            continue;
        }
        let api = api(cluster, kind, namespace)?;
        let failed = |error: &kube::Error| InstallError::Api {
            what: format!("apply {kind} {}", path(namespace, name)),
            message: api_message(error),
        };
        if kind == "Namespace" {
            let existing = api.get_opt(name).await.map_err(|e| failed(&e))?;
            let ours = |ns: &DynamicObject| {
                ns.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|labels| labels.contains_key(INSTALL_LABEL))
            };
            match existing {
                Some(ns) if !ours(&ns) => {
                    changes.push(change(kind, namespace, name, "kept"));
                    continue;
                }
                None if dry_run => absent.push(name.to_owned()),
                _ => {}
            }
        }
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| failed(&e))?;
        changes.push(change(kind, namespace, name, "serverside-applied"));
    }
    Ok(changes)
}

/// Deletes what an install of `component` made in `namespace`: every object of the install's
/// kinds labelled [`INSTALL_LABEL`]`=NAME` there (the Deployment first), its `ClusterRole` and
/// binding unless they belong to an install in another namespace, the Lease its replicas held,
/// and last the Namespace `namespace` when an install made it and no other controller's install
/// is left in it (`kept` when one is). What the controller itself made while it ran (leader
/// Services, a graph's CRD, instances and their objects) is not the install's and stays; but a
/// reconcile controller's instances that its finalizer holds would wait for it for ever, so
/// `held` says what becomes of them (reported as the instance's kind, `deleted` or `released`).
///
/// # Errors
/// [`InstallError::InstancesHeld`] when instances are held and `held` is
/// [`HeldInstances::Refuse`] (nothing is deleted); [`InstallError::Api`] when a list or delete
/// is refused, or an instance cannot be released.
pub async fn uninstall(
    cluster: &Cluster,
    component: &Component,
    namespace: &str,
    held: HeldInstances,
    dry_run: bool,
) -> Result<Vec<Change>, InstallError> {
    let name = component.name();
    let name = name.as_str();
    let instances = match component {
        Component::Reconcile { plan, .. } => crate::reconcile::held_instances(cluster, plan)
            .await
            .map_err(|error| InstallError::Api {
                what: format!("find the instances {name} holds"),
                message: error.to_string(),
            })?,
        Component::Lead => Vec::new(),
    };
    if !instances.is_empty() && held == HeldInstances::Refuse {
        return Err(InstallError::InstancesHeld {
            name: name.to_owned(),
            instances: instances.iter().map(object_path).collect(),
        });
    }
    let selector = format!("{INSTALL_LABEL}={name}");
    let mut params = DeleteParams::background();
    params.dry_run = dry_run;
    let mut changes = Vec::new();
    // The cluster-scoped RBAC is this namespace's install's only if its binding says so.
    let cluster_rbac_ours = installed_in(cluster, &cluster_role_of(name))
        .await?
        .is_none_or(|other| other == namespace);
    for kind in KINDS.iter().rev() {
        let cluster_rbac = matches!(*kind, "ClusterRole" | "ClusterRoleBinding");
        if (cluster_rbac && !cluster_rbac_ours) || *kind == "Namespace" {
            continue;
        }
        let api = api(cluster, kind, namespace)?;
        let failed = |verb: &str, error: &kube::Error| InstallError::Api {
            what: format!("{verb} {kind} labelled {selector}"),
            message: api_message(error),
        };
        let found = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| failed("list", &e))?;
        for object in found {
            let object_name = object.metadata.name.unwrap_or_default();
            let object_namespace = object.metadata.namespace.unwrap_or_default();
            match api.delete(&object_name, &params).await {
                Ok(_) => changes.push(change(kind, &object_namespace, &object_name, "deleted")),
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(failed("delete", &error)),
            }
        }
        if *kind == "Role" && !changes.is_empty() {
            // The Lease the replicas held carries no label; it goes with the install.
            let lease = lease_of(name);
            let leases = self::api(cluster, "Lease", namespace)?;
            match leases.delete(lease, &params).await {
                Ok(_) => changes.push(change("Lease", namespace, lease, "deleted")),
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(failed("delete", &error)),
            }
        }
    }
    // The controller is gone, and its rights with it: nothing acts on the instances but this.
    if let Component::Reconcile { plan, .. } = component {
        let reconciler = crate::reconcile::Reconciler::new(cluster.clone(), Arc::clone(plan));
        let delete = held == HeldInstances::Delete;
        let cancel = tokio_util::sync::CancellationToken::new();
        for instance in &instances {
            crate::reconcile::release_instance(&reconciler, instance, delete, dry_run, &cancel)
                .await
                .map_err(|error| InstallError::Api {
                    what: format!("release {} {}", plan.kind, object_path(instance)),
                    message: error.to_string(),
                })?;
            let action = if delete { "deleted" } else { "released" };
            let (instance_namespace, instance_name) = (
                instance.metadata.namespace.as_deref().unwrap_or_default(),
                instance.metadata.name.as_deref().unwrap_or_default(),
            );
            changes.push(change(
                &plan.kind,
                instance_namespace,
                instance_name,
                action,
            ));
        }
    }
    if let Some(action) = uninstall_namespace(cluster, name, namespace, &params).await? {
        changes.push(change("Namespace", "", namespace, action));
    }
    Ok(changes)
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn object_path(object: &DynamicObject) -> String {
    path(
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The install's Namespace goes with the last install in it: it is deleted when an install made
/// it (it carries [`INSTALL_LABEL`], whichever controller's) and no other install's
/// `ServiceAccount` is left in it, and `kept` when one is. `None` for a Namespace no install made.
async fn uninstall_namespace(
    cluster: &Cluster,
    name: &str,
    namespace: &str,
    params: &DeleteParams,
) -> Result<Option<&'static str>, InstallError> {
    let failed = |what: String, error: &kube::Error| InstallError::Api {
        what,
        message: api_message(error),
    };
    let namespaces = api(cluster, "Namespace", "")?;
    let made = namespaces
        .get_opt(namespace)
        .await
        .map_err(|e| failed(format!("get Namespace {namespace}"), &e))?
        .is_some_and(|ns| {
            ns.metadata
                .labels
                .is_some_and(|labels| labels.contains_key(INSTALL_LABEL))
        });
    if !made {
        return Ok(None);
    }
    let others = format!("{INSTALL_LABEL},{INSTALL_LABEL}!={name}");
    let accounts = api(cluster, "ServiceAccount", namespace)?
        .list_metadata(&ListParams::default().labels(&others).limit(1))
        .await
        .map_err(|e| failed(format!("list ServiceAccounts labelled {others}"), &e))?;
    if !accounts.items.is_empty() {
        return Ok(Some("kept"));
    }
    match namespaces.delete(namespace, params).await {
        Ok(_) => Ok(Some("deleted")),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(failed(format!("delete Namespace {namespace}"), &error)),
    }
}

/// The name of the `ClusterRole` and `ClusterRoleBinding` of the controller installed as `name`.
fn cluster_role_of(name: &str) -> String {
    format!("kubectl-zen:{name}")
}

/// The namespace of a binding's first subject: where the install it belongs to runs.
fn subject_namespace(binding: &Json) -> Option<&str> {
    binding["subjects"][0]["namespace"].as_str()
}

/// The namespace the `ClusterRoleBinding` `binding` binds a service account of, if it exists.
async fn installed_in(cluster: &Cluster, binding: &str) -> Result<Option<String>, InstallError> {
    let bindings = api(cluster, "ClusterRoleBinding", "")?;
    let existing = bindings
        .get_opt(binding)
        .await
        .map_err(|error| InstallError::Api {
            what: format!("get ClusterRoleBinding {binding}"),
            message: api_message(&error),
        })?;
    Ok(existing.and_then(|b| subject_namespace(&b.data).map(str::to_owned)))
}

/// Whether `namespace` is gone or being deleted: an install there is stale.
async fn namespace_gone(cluster: &Cluster, namespace: &str) -> Result<bool, InstallError> {
    let found = api(cluster, "Namespace", "")?
        .get_opt(namespace)
        .await
        .map_err(|error| InstallError::Api {
            what: format!("get Namespace {namespace}"),
            message: api_message(&error),
        })?;
    Ok(found.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()))
}

/// Deletes the `ClusterRoleBinding` of a stale install (its Namespace gone), reported
/// `deleted (stale)`; the `ClusterRole` is the same for every install and is applied anew.
async fn remove_stale_binding(
    cluster: &Cluster,
    binding: &str,
    dry_run: bool,
) -> Result<Option<Change>, InstallError> {
    let mut params = DeleteParams::background();
    params.dry_run = dry_run;
    match api(cluster, "ClusterRoleBinding", "")?
        .delete(binding, &params)
        .await
    {
        Ok(_) => Ok(Some(change(
            "ClusterRoleBinding",
            "",
            binding,
            "deleted (stale)",
        ))),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(InstallError::Api {
            what: format!("delete the stale ClusterRoleBinding {binding}"),
            message: api_message(&error),
        }),
    }
}

/// The Lease of the controller installed as `name`: zen-lead's own name for its Lease, else the
/// controller's name.
fn lease_of(name: &str) -> &str {
    if name == "zen-lead" {
        crate::lead::LEASE_NAME
    } else {
        name
    }
}

fn change(kind: &str, namespace: &str, name: &str, action: &'static str) -> Change {
    Change {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        action,
    }
}

fn path(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

#[cfg(test)]
mod tests;
