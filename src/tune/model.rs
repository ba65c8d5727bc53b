//! What tune reads about a cluster: workloads with their pod templates, and what bears on
//! their sizing (HPAs, PDBs, Services, OOM-killed containers), built from Kubernetes objects
//! however they arrived: listed from a cluster, read from manifests or from a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::quantity;

/// The kinds of workload tune sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 `StatefulSet`.
    StatefulSet,
    /// apps/v1 `DaemonSet`.
    DaemonSet,
    /// apps/v1 `ReplicaSet` with no Deployment above it.
    ReplicaSet,
    /// batch/v1 Job with no `CronJob` above it.
    Job,
    /// batch/v1 `CronJob`.
    CronJob,
    /// A Pod with no controller.
    Pod,
}

impl WorkloadKind {
    /// The kind's name, as in manifests.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::Pod => "Pod",
        }
    }

    /// The kind named `text` (case-insensitive, short names as kubectl takes them).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Self::Deployment,
            "statefulset" | "statefulsets" | "sts" => Self::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => Self::DaemonSet,
            "replicaset" | "replicasets" | "rs" => Self::ReplicaSet,
            "job" | "jobs" => Self::Job,
            "cronjob" | "cronjobs" | "cj" => Self::CronJob,
            "pod" | "pods" | "po" => Self::Pod,
            _ => return None,
        })
    }

    /// The API version of the kind.
    #[must_use]
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet | Self::DaemonSet | Self::ReplicaSet => "apps/v1",
            Self::Job | Self::CronJob => "batch/v1",
            Self::Pod => "v1",
        }
    }

    /// Long-running workloads serve traffic and need probes and disruption budgets; Jobs run
    /// to completion.
    #[must_use]
    pub fn long_running(self) -> bool {
        !matches!(self, Self::Job | Self::CronJob)
    }
}

/// A workload's identity: namespace, kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    /// The namespace ("default" when a manifest names none).
    pub namespace: String,
    /// The kind.
    pub kind: WorkloadKind,
    /// The name.
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.namespace,
            self.kind.as_str().to_ascii_lowercase(),
            self.name
        )
    }
}

/// How a container runs in its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRole {
    /// An app container.
    Main,
    /// An init container: runs to completion before the app containers start.
    Init,
    /// A native sidecar (an init container with `restartPolicy: Always`): runs beside the app.
    Sidecar,
}

/// Requests and limits of one container, CPU in millicores and memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU request, millicores.
    pub cpu_request: Option<f64>,
    /// CPU limit, millicores.
    pub cpu_limit: Option<f64>,
    /// Memory request, bytes.
    pub memory_request: Option<f64>,
    /// Memory limit, bytes.
    pub memory_limit: Option<f64>,
}

impl Resources {
    /// What a container asks for. A limit without a request means request = limit, as the
    /// API server defaults it.
    #[must_use]
    pub fn of(container: &Container) -> Self {
        let get = |map: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                   key: &str,
                   parse: fn(&str) -> Option<f64>| {
            map.and_then(|m| m.get(key)).and_then(|q| parse(&q.0))
        };
        let resources = container.resources.as_ref();
        let requests = resources.and_then(|r| r.requests.as_ref());
        let limits = resources.and_then(|r| r.limits.as_ref());
        let cpu_limit = get(limits, "cpu", quantity::millicores);
        let memory_limit = get(limits, "memory", quantity::bytes);
        Self {
            cpu_request: get(requests, "cpu", quantity::millicores).or(cpu_limit),
            cpu_limit,
            memory_request: get(requests, "memory", quantity::bytes).or(memory_limit),
            memory_limit,
        }
    }

    /// Whether nothing at all is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cpu_request.is_none()
            && self.cpu_limit.is_none()
            && self.memory_request.is_none()
            && self.memory_limit.is_none()
    }
}

/// One container of a workload's pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// The container's name.
    pub name: String,
    /// Main, init or sidecar.
    pub role: ContainerRole,
    /// Its requests and limits.
    pub resources: Resources,
    /// Whether it has a readiness probe.
    pub readiness_probe: bool,
    /// Whether it has a liveness probe.
    pub liveness_probe: bool,
    /// The heap a language runtime is configured to use, if one is.
    pub heap: Option<super::runtime::Heap>,
}

/// An HPA's target and the resources it scales on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscaler {
    /// The HPA's name.
    pub name: String,
    /// minReplicas (1 when unset).
    pub min_replicas: u32,
    /// maxReplicas.
    pub max_replicas: u32,
    /// Target average utilisation of CPU requests, percent.
    pub cpu_utilization: Option<u32>,
    /// Target average utilisation of memory requests, percent.
    pub memory_utilization: Option<u32>,
    /// Containers the targets are for (`ContainerResource` metrics); empty = whole pod.
    pub containers: Vec<String>,
}

/// A `PodDisruptionBudget` covering a workload's pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The PDB's name.
    pub name: String,
    /// minAvailable as written.
    pub min_available: Option<String>,
    /// maxUnavailable as written.
    pub max_unavailable: Option<String>,
}

impl Budget {
    /// Whether the budget lets no pod of `replicas` be evicted: maxUnavailable 0 (or 0 %), or
    /// minAvailable at least the replicas (or 100 %).
    #[must_use]
    pub fn blocks_every_eviction(&self, replicas: u32) -> bool {
        let value = |text: &str| -> Option<f64> {
            text.strip_suffix('%').map_or_else(
                || text.parse::<f64>().ok(),
                |percent| {
                    percent
                        .parse::<f64>()
                        .ok()
                        .map(|p| (p / 100.0 * f64::from(replicas)).ceil())
                },
            )
        };
        // The disruption controller rounds both percentages up: 10 % of 3 replicas is 1.
        if let Some(max) = self.max_unavailable.as_deref() {
            return value(max).is_some_and(|allowed| allowed < 1.0);
        }
        self.min_available
            .as_deref()
            .and_then(value)
            .is_some_and(|min| min >= f64::from(replicas))
    }
}

/// A workload and what bears on its sizing.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Namespace, kind and name.
    pub id: WorkloadRef,
    /// Desired replicas (spec.replicas, 1 when unset); a `DaemonSet`'s scheduled pods; a Job's
    /// parallelism.
    pub replicas: u32,
    /// The pod template's labels.
    pub pod_labels: BTreeMap<String, String>,
    /// The workload's annotations (`tune.kubezen.io/profile` picks a preset).
    pub annotations: BTreeMap<String, String>,
    /// The pod template's containers, init containers and sidecars.
    pub containers: Vec<ContainerSpec>,
    /// The HPA scaling it, if one does.
    pub autoscaler: Option<Autoscaler>,
    /// PDBs selecting its pods.
    pub budgets: Vec<Budget>,
    /// Services selecting its pods.
    pub services: Vec<String>,
    /// Containers whose last termination was an OOM kill, with the memory limit they had.
    pub oom_kills: BTreeMap<String, Option<f64>>,
}

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadProblem {
    /// The object (kind/namespace/name) or document.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// Every workload of a cluster or a set of manifests, with HPAs, PDBs and Services resolved
/// onto the workloads they act on.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    workloads: Vec<Workload>,
    index: HashMap<WorkloadRef, usize>,
    /// Owners of pods seen (namespace, pod) -> workload, for usage samples.
    pods: HashMap<(String, String), WorkloadRef>,
    /// Objects that could not be read, with why; reading goes on past them.
    pub problems: Vec<ReadProblem>,
}

/// Objects that are read after the workloads, once the workloads are known.
#[derive(Default)]
struct Pending {
    hpas: Vec<HorizontalPodAutoscaler>,
    pdbs: Vec<PodDisruptionBudget>,
    services: Vec<Service>,
    pods: Vec<Json>,
}

impl Inventory {
    /// Reads objects of any kinds (workloads, HPAs, PDBs, Services, Pods, Lists of them;
    /// others are skipped). `default_namespace` is used for objects that name none, as kubectl
    /// does.
    pub fn from_objects(objects: impl IntoIterator<Item = Json>, default_namespace: &str) -> Self {
        let mut builder = InventoryBuilder::new(default_namespace);
        for object in objects {
            builder.add(object);
        }
        builder.build()
    }

    fn insert(&mut self, workload: Workload) {
        if let Some(&at) = self.index.get(&workload.id) {
            self.workloads[at] = workload;
        } else {
            self.index.insert(workload.id.clone(), self.workloads.len());
            self.workloads.push(workload);
        }
    }

    fn resolve(&mut self, pending: Pending) {
        for hpa in pending.hpas {
            self.attach_autoscaler(&hpa);
        }
        for pdb in pending.pdbs {
            let namespace = pdb.metadata.namespace.clone().unwrap_or_default();
            let Some(spec) = pdb.spec.as_ref() else {
                continue;
            };
            let budget = Budget {
                name: pdb.metadata.name.clone().unwrap_or_default(),
                min_available: spec.min_available.as_ref().map(int_or_string),
                max_unavailable: spec.max_unavailable.as_ref().map(int_or_string),
            };
            let selector = spec.selector.clone().unwrap_or_default();
            for workload in self
                .workloads
                .iter_mut()
                .filter(|w| w.id.namespace == namespace)
            {
                if selects(&selector, &workload.pod_labels) {
                    workload.budgets.push(budget.clone());
                }
            }
        }
        for service in pending.services {
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.clone()) else {
                continue;
            };
            if selector.is_empty() {
                continue;
            }
            let name = service.metadata.name.clone().unwrap_or_default();
            for workload in self
                .workloads
                .iter_mut()
                .filter(|w| w.id.namespace == namespace)
            {
                if selector
                    .iter()
                    .all(|(k, v)| workload.pod_labels.get(k) == Some(v))
                {
                    workload.services.push(name.clone());
                }
            }
        }
        for pod in pending.pods {
            self.attach_pod(&pod);
        }
    }

    fn attach_autoscaler(&mut self, hpa: &HorizontalPodAutoscaler) {
        let spec = &hpa.spec;
        let Some(kind) = WorkloadKind::parse(&spec.scale_target_ref.kind) else {
            return;
        };
        let id = WorkloadRef {
            namespace: hpa.metadata.namespace.clone().unwrap_or_default(),
            kind,
            name: spec.scale_target_ref.name.clone(),
        };
        let Some(&at) = self.index.get(&id) else {
            return;
        };
        let mut autoscaler = Autoscaler {
            name: hpa.metadata.name.clone().unwrap_or_default(),
            min_replicas: spec
                .min_replicas
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            max_replicas: u32::try_from(spec.max_replicas).unwrap_or(0),
            cpu_utilization: None,
            memory_utilization: None,
            containers: Vec::new(),
        };
        for metric in spec.metrics.iter().flatten() {
            let (name, target, container) = if let Some(resource) = &metric.resource {
                (&resource.name, &resource.target, None)
            } else if let Some(resource) = &metric.container_resource {
                (
                    &resource.name,
                    &resource.target,
                    Some(resource.container.clone()),
                )
            } else {
                continue;
            };
            let Some(percent) = target
                .average_utilization
                .and_then(|p| u32::try_from(p).ok())
            else {
                continue;
            };
            match name.as_str() {
                "cpu" => autoscaler.cpu_utilization = Some(percent),
                "memory" => autoscaler.memory_utilization = Some(percent),
                _ => continue,
            }
            autoscaler.containers.extend(container);
        }
        self.workloads[at].autoscaler = Some(autoscaler);
    }

    /// Records which workload owns a pod, and the OOM kills in its container statuses.
    fn attach_pod(&mut self, pod: &Json) {
        let namespace = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(at) = self.owner_of_pod(pod) else {
            return;
        };
        self.pods
            .insert((namespace, name), self.workloads[at].id.clone());
        let statuses = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|field| pod["status"][field].as_array().into_iter().flatten());
        for status in statuses {
            let terminated = &status["lastState"]["terminated"];
            let killed = terminated["reason"] == "OOMKilled"
                || status["state"]["terminated"]["reason"] == "OOMKilled";
            if !killed {
                continue;
            }
            let container = status["name"].as_str().unwrap_or_default().to_owned();
            let limit = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .chain(pod["spec"]["initContainers"].as_array())
                .flatten()
                .find(|c| c["name"] == container.as_str())
                .and_then(|c| c["resources"]["limits"]["memory"].as_str())
                .and_then(quantity::bytes);
            let entry = self.workloads[at]
                .oom_kills
                .entry(container)
                .or_insert(limit);
            *entry = match (*entry, limit) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// The workload a pod object belongs to: by its controller reference (a `ReplicaSet`
    /// named `<deployment>-<pod-template-hash>` belongs to that Deployment; a Job named
    /// `<cronjob>-<n>` to that `CronJob`), else by name.
    fn owner_of_pod(&self, pod: &Json) -> Option<usize> {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let owner = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["controller"] == true);
        let Some(owner) = owner else {
            return self.find(
                namespace,
                WorkloadKind::Pod,
                pod["metadata"]["name"].as_str()?,
            );
        };
        let owner_name = owner["name"].as_str()?;
        match owner["kind"].as_str()? {
            "ReplicaSet" => {
                let hash = pod["metadata"]["labels"]["pod-template-hash"].as_str();
                hash.and_then(|h| owner_name.strip_suffix(h)?.strip_suffix('-'))
                    .and_then(|d| self.find(namespace, WorkloadKind::Deployment, d))
                    .or_else(|| self.find(namespace, WorkloadKind::ReplicaSet, owner_name))
            }
            "Job" => owner_name
                .rsplit_once('-')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|(cron, _)| self.find(namespace, WorkloadKind::CronJob, cron))
                .or_else(|| self.find(namespace, WorkloadKind::Job, owner_name)),
            kind => self.find(namespace, WorkloadKind::parse(kind)?, owner_name),
        }
    }

    fn find(&self, namespace: &str, kind: WorkloadKind, name: &str) -> Option<usize> {
        self.index
            .get(&WorkloadRef {
                namespace: namespace.to_owned(),
                kind,
                name: name.to_owned(),
            })
            .copied()
    }

    /// The workload owning the pod `namespace/pod`: known pods by their owner references,
    /// others (pods long gone, as Prometheus remembers them) by the names controllers give
    /// pods, their shapes checked so that `web-agent-x7k2p` is `DaemonSet` `web-agent`'s and
    /// not Deployment `web`'s: `<deployment>-<hash>-<suffix>`, `<cronjob>-<n>-<suffix>`,
    /// `<statefulset>-<ordinal>`, `<daemonset|job|replicaset>-<suffix>`, where a hash is 6 to
    /// 10 and a suffix 5 characters of the alphabet Kubernetes draws them from.
    #[must_use]
    pub fn workload_of_pod(&self, namespace: &str, pod: &str) -> Option<&Workload> {
        if let Some(id) = self.pods.get(&(namespace.to_owned(), pod.to_owned())) {
            return self.get(id);
        }
        let find = |kind, name: &str| self.find(namespace, kind, name);
        let found = find(WorkloadKind::Pod, pod).or_else(|| {
            let (one, last) = pod.rsplit_once('-')?;
            let suffix = last.len() == 5 && generated(last);
            let by_two = one.rsplit_once('-').and_then(|(two, middle)| {
                let digits = !middle.is_empty() && middle.bytes().all(|b| b.is_ascii_digit());
                if suffix && (6..=10).contains(&middle.len()) && generated(middle) {
                    find(WorkloadKind::Deployment, two)
                } else if suffix && digits {
                    find(WorkloadKind::CronJob, two)
                } else {
                    None
                }
            });
            by_two.or_else(|| {
                if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
                    find(WorkloadKind::StatefulSet, one)
                } else if suffix {
                    [
                        WorkloadKind::DaemonSet,
                        WorkloadKind::Job,
                        WorkloadKind::ReplicaSet,
                    ]
                    .into_iter()
                    .find_map(|kind| find(kind, one))
                } else {
                    None
                }
            })
        });
        found.map(|at| &self.workloads[at])
    }

    /// The workload with this identity.
    #[must_use]
    pub fn get(&self, id: &WorkloadRef) -> Option<&Workload> {
        self.index.get(id).map(|&at| &self.workloads[at])
    }

    /// Every workload, in the order read.
    #[must_use]
    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// Reads manifests: files, directories (recursively) and `-` for standard input.
    ///
    /// # Errors
    /// A file that cannot be read or does not parse as YAML/JSON.
    pub fn from_manifests(
        paths: &[std::path::PathBuf],
        default_namespace: &str,
    ) -> Result<Self, super::TuneError> {
        let mut objects = Vec::new();
        for path in paths {
            let documents =
                crate::graph::read_manifests(path).map_err(|e| super::TuneError::Io {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            objects.extend(documents.into_iter().map(|(_, document)| document));
        }
        Ok(Self::from_objects(objects, default_namespace))
    }

    /// Keeps the workloads `names` name: `NAME` or `KIND/NAME` (`deploy/web`, `sts/db`); all
    /// when `names` is empty.
    ///
    /// # Errors
    /// An unknown kind, or names that match no workload.
    pub fn select(&mut self, names: &[String]) -> Result<(), super::TuneError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut wanted = Vec::new();
        for name in names {
            wanted.push(match name.split_once('/') {
                Some((kind, name)) => (
                    Some(WorkloadKind::parse(kind).ok_or_else(|| {
                        super::TuneError::Invalid(format!("{kind:?} is not a workload kind"))
                    })?),
                    name.to_owned(),
                ),
                None => (None, name.clone()),
            });
        }
        let matches = |(kind, name): &(Option<WorkloadKind>, String), w: &Workload| {
            *name == w.id.name && kind.is_none_or(|k| k == w.id.kind)
        };
        let missing: Vec<&str> = wanted
            .iter()
            .zip(names)
            .filter(|(want, _)| !self.workloads.iter().any(|w| matches(want, w)))
            .map(|(_, name)| name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(super::TuneError::Invalid(format!(
                "no workload named {}",
                missing.join(", ")
            )));
        }
        self.retain(|w| wanted.iter().any(|want| matches(want, w)));
        Ok(())
    }

    /// Keeps only the workloads `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&Workload) -> bool) {
        self.workloads.retain(|w| keep(w));
        self.index = self
            .workloads
            .iter()
            .enumerate()
            .map(|(at, w)| (w.id.clone(), at))
            .collect();
        let index = &self.index;
        self.pods.retain(|_, id| index.contains_key(id));
    }
}

/// Builds an [`Inventory`] an object at a time, so objects streamed from a file or a list
/// are never all held at once.
pub struct InventoryBuilder {
    inventory: Inventory,
    pending: Pending,
    namespace: String,
}

impl InventoryBuilder {
    /// An empty inventory; objects without a namespace get `default_namespace`.
    #[must_use]
    pub fn new(default_namespace: &str) -> Self {
        Self {
            inventory: Inventory::default(),
            pending: Pending::default(),
            namespace: default_namespace.to_owned(),
        }
    }

    /// Adds one object (a `List`'s items each).
    pub fn add(&mut self, mut object: Json) {
        if object["metadata"]["namespace"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            object["metadata"]["namespace"] = Json::String(self.namespace.clone());
        }
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let label = format!(
            "{}/{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            kind.to_ascii_lowercase(),
            object["metadata"]["name"].as_str().unwrap_or("(no name)")
        );
        let pending = &mut self.pending;
        let result = match kind.as_str() {
            "HorizontalPodAutoscaler" => {
                serde_json::from_value(object).map(|o| pending.hpas.push(o))
            }
            "PodDisruptionBudget" => serde_json::from_value(object).map(|o| pending.pdbs.push(o)),
            "Service" => serde_json::from_value(object).map(|o| pending.services.push(o)),
            "List" => {
                if let Json::Array(items) = object["items"].take() {
                    for item in items {
                        self.add(item);
                    }
                }
                Ok(())
            }
            "Pod" if is_controlled(&object) => {
                pending.pods.push(object);
                Ok(())
            }
            _ => {
                if let Some(workload_kind) = WorkloadKind::parse(&kind) {
                    match read_workload(workload_kind, &object) {
                        Ok(Some(workload)) => {
                            if workload_kind == WorkloadKind::Pod {
                                pending.pods.push(object);
                            }
                            self.inventory.insert(workload);
                        }
                        Ok(None) => {}
                        Err(message) => self.inventory.problems.push(ReadProblem {
                            object: label.clone(),
                            message,
                        }),
                    }
                }
                Ok(())
            }
        };
        if let Err(error) = result {
            self.inventory.problems.push(ReadProblem {
                object: label,
                message: error.to_string(),
            });
        }
    }

    /// The inventory, with HPAs, PDBs, Services and Pods resolved onto the workloads.
    #[must_use]
    pub fn build(mut self) -> Inventory {
        self.inventory.resolve(self.pending);
        self.inventory
    }
}

/// Whether `text` is drawn from the alphabet of generated names (Kubernetes' safe encoding:
/// no vowels, no 0, 1 or 3), as pod-template hashes and pod name suffixes are.
fn generated(text: &str) -> bool {
    text.bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

/// A pod that some controller owns is not a workload of its own.
fn is_controlled(pod: &Json) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|o| o["controller"] == true))
}

fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Whether a label selector selects these labels (matchLabels and matchExpressions).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let mut any = false;
    for (key, value) in selector.match_labels.iter().flatten() {
        any = true;
        if labels.get(key) != Some(value) {
            return false;
        }
    }
    for expression in selector.match_expressions.iter().flatten() {
        any = true;
        let value = labels.get(&expression.key);
        let values = expression.values.as_deref().unwrap_or_default();
        let ok = match expression.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    // An empty selector selects every pod of the namespace (policy/v1 semantics).
    any || selector.match_labels.is_none() && selector.match_expressions.is_none()
}

/// Reads a workload object. `Ok(None)` for objects that are not workloads of their own (a
/// `ReplicaSet` a Deployment owns, a Job a `CronJob` owns).
fn read_workload(kind: WorkloadKind, object: &Json) -> Result<Option<Workload>, String> {
    let owned = is_controlled(object);
    if owned && matches!(kind, WorkloadKind::ReplicaSet | WorkloadKind::Job) {
        return Ok(None);
    }
    let metadata = &object["metadata"];
    let name = metadata["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is missing")?;
    let (template, replicas) = match kind {
        WorkloadKind::Pod => (object.clone(), Some(1)),
        WorkloadKind::CronJob => (
            object["spec"]["jobTemplate"]["spec"]["template"].clone(),
            object["spec"]["jobTemplate"]["spec"]["parallelism"].as_u64(),
        ),
        WorkloadKind::DaemonSet => (
            object["spec"]["template"].clone(),
            object["status"]["desiredNumberScheduled"].as_u64(),
        ),
        WorkloadKind::Job => (
            object["spec"]["template"].clone(),
            object["spec"]["parallelism"].as_u64(),
        ),
        _ => (
            object["spec"]["template"].clone(),
            match &object["spec"]["replicas"] {
                Json::Null => Some(1),
                value => Some(
                    value
                        .as_u64()
                        .ok_or("spec.replicas is not a whole number")?,
                ),
            },
        ),
    };
    let spec: PodSpec = serde_json::from_value(template["spec"].clone()).map_err(|error| {
        let path = if kind == WorkloadKind::Pod {
            "spec"
        } else {
            "the pod template's spec"
        };
        format!("{path} does not read as a PodSpec: {error}")
    })?;
    let labels = |value: &Json| -> BTreeMap<String, String> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    };
    let mut containers: Vec<ContainerSpec> = spec
        .containers
        .iter()
        .map(|c| container_spec(c, ContainerRole::Main))
        .collect();
    for init in spec.init_containers.iter().flatten() {
        let role = if init.restart_policy.as_deref() == Some("Always") {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        containers.push(container_spec(init, role));
    }
    Ok(Some(Workload {
        id: WorkloadRef {
            namespace: metadata["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            kind,
            name: name.to_owned(),
        },
        replicas: replicas.map_or(1, |r| u32::try_from(r).unwrap_or(u32::MAX)),
        pod_labels: labels(&template["metadata"]["labels"]),
        annotations: labels(&metadata["annotations"]),
        containers,
        autoscaler: None,
        budgets: Vec::new(),
        services: Vec::new(),
        oom_kills: BTreeMap::new(),
    }))
}

fn container_spec(container: &Container, role: ContainerRole) -> ContainerSpec {
    ContainerSpec {
        name: container.name.clone(),
        role,
        resources: Resources::of(container),
        readiness_probe: container.readiness_probe.is_some(),
        liveness_probe: container.liveness_probe.is_some(),
        heap: super::runtime::Heap::of(container),
    }
}
