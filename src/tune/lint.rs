//! Best-practice findings on a workload's spec: what is missing or set so that the workload
//! is evicted, throttled, OOM-killed or unavailable when it should not be.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{ContainerRole, Workload, WorkloadKind, WorkloadRef};
use super::runtime::Runtime;
use crate::quantity::format_memory;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to hurt under load or during maintenance.
    Warning,
    /// Will hurt: an outage, an OOM kill, a blocked drain.
    Error,
}

impl Severity {
    /// The severity's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: what, why it matters, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// A stable name for the check, e.g. `missing-requests`.
    pub check: String,
    /// The workload.
    pub workload: WorkloadRef,
    /// The container, when the finding is about one.
    pub container: Option<String>,
    /// What was found.
    pub message: String,
    /// Why it matters.
    pub why: String,
    /// How to fix it.
    pub fix: String,
}

/// Every check, with its severity, as documented (docs/tune.md).
pub const CHECKS: &[(&str, Severity)] = &[
    ("missing-requests", Severity::Warning),
    ("missing-memory-limit", Severity::Warning),
    ("memory-limit-below-request", Severity::Error),
    ("limit-request-ratio", Severity::Warning),
    ("best-effort", Severity::Warning),
    ("missing-readiness-probe", Severity::Warning),
    ("missing-liveness-probe", Severity::Info),
    ("no-pdb", Severity::Warning),
    ("pdb-blocks-eviction", Severity::Error),
    ("single-replica-behind-service", Severity::Warning),
    ("heap-above-limit", Severity::Error),
    ("heap-share", Severity::Warning),
    ("hpa-without-request", Severity::Error),
    ("oom-killed", Severity::Warning),
];

/// The ratio of limit to request above which a finding is made.
pub const MAX_LIMIT_RATIO: f64 = 4.0;

struct Lint<'a> {
    workload: &'a Workload,
    findings: Vec<Finding>,
}

impl Lint<'_> {
    fn add(
        &mut self,
        check: &str,
        container: Option<&str>,
        message: String,
        why: &str,
        fix: String,
    ) {
        let severity = CHECKS
            .iter()
            .find(|(name, _)| *name == check)
            .map_or(Severity::Warning, |(_, s)| *s);
        self.findings.push(Finding {
            severity,
            check: check.to_owned(),
            workload: self.workload.id.clone(),
            container: container.map(str::to_owned),
            message,
            why: why.to_owned(),
            fix,
        });
    }
}

/// The findings for one workload.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn lint(workload: &Workload) -> Vec<Finding> {
    let mut lint = Lint {
        workload,
        findings: Vec::new(),
    };
    let kind = workload.id.kind;
    let running: Vec<_> = workload
        .containers
        .iter()
        .filter(|c| c.role != ContainerRole::Init)
        .collect();
    if workload.containers.iter().all(|c| c.resources.is_empty()) {
        lint.add(
            "best-effort",
            None,
            "no container sets requests or limits: the pods are BestEffort".into(),
            "BestEffort pods are evicted first under node pressure and scheduled without regard to what they use",
            "set CPU and memory requests (kubectl zen tune --patch writes them)".into(),
        );
    }
    for container in &workload.containers {
        let name = Some(container.name.as_str());
        let r = &container.resources;
        let missing: Vec<&str> = [("cpu", r.cpu_request), ("memory", r.memory_request)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n)
            .collect();
        if !missing.is_empty() && !r.is_empty() {
            lint.add(
                "missing-requests",
                name,
                format!("no {} request", missing.join(" or ")),
                "the scheduler places pods by requests; without one the container can land on a full node and starve or be starved",
                format!("set resources.requests.{}", missing.join(" and resources.requests.")),
            );
        }
        if r.memory_limit.is_none() && !r.is_empty() {
            lint.add(
                "missing-memory-limit",
                name,
                "no memory limit".into(),
                "a leak grows until the node runs out and the kernel kills whatever it picks, not this container",
                "set resources.limits.memory equal to the memory request".into(),
            );
        }
        if let (Some(limit), Some(request)) = (r.memory_limit, r.memory_request)
            && limit < request
        {
            lint.add(
                "memory-limit-below-request",
                name,
                format!(
                    "memory limit {} is below the request {}",
                    format_memory(limit),
                    format_memory(request)
                ),
                "the API server refuses such a pod: the workload cannot create pods",
                "set the memory limit to at least the request".into(),
            );
        }
        for (resource, request, limit) in [
            ("cpu", r.cpu_request, r.cpu_limit),
            ("memory", r.memory_request, r.memory_limit),
        ] {
            if let (Some(request), Some(limit)) = (request, limit)
                && request > 0.0
                && limit / request > MAX_LIMIT_RATIO
            {
                lint.add(
                    "limit-request-ratio",
                    name,
                    format!("{resource} limit is {:.1}x the request", limit / request),
                    "the node is overcommitted by what the pods may burst to: neighbours are throttled or OOMKilled when several burst at once",
                    format!("bring the {resource} limit within {MAX_LIMIT_RATIO}x of the request, or raise the request to what it uses"),
                );
            }
        }
        if let Some(heap) = &container.heap {
            heap_findings(&mut lint, container, heap);
        }
        if workload.oom_kills.contains_key(&container.name) {
            lint.add(
                "oom-killed",
                name,
                "was OOMKilled".into(),
                "its memory limit is below what it needs at peak",
                "raise the memory limit (the recommendation does)".into(),
            );
        }
    }
    if kind.long_running() && kind != WorkloadKind::Pod {
        for container in &running {
            if container.role == ContainerRole::Main && !container.readiness_probe {
                lint.add(
                    "missing-readiness-probe",
                    Some(&container.name),
                    "no readiness probe".into(),
                    "traffic reaches the pod as soon as it starts and still reaches it while it hangs",
                    "add a readinessProbe that checks the app can serve".into(),
                );
            }
            if container.role == ContainerRole::Main && !container.liveness_probe {
                lint.add(
                    "missing-liveness-probe",
                    Some(&container.name),
                    "no liveness probe".into(),
                    "a deadlocked process is never restarted",
                    "add a livenessProbe (cheaper and more lenient than the readiness probe)"
                        .into(),
                );
            }
        }
    }
    let replicas = workload.autoscaler.as_ref().map_or(workload.replicas, |a| {
        a.min_replicas.max(workload.replicas.min(a.max_replicas))
    });
    if matches!(kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet) {
        if replicas > 1 && workload.budgets.is_empty() {
            lint.add(
                "no-pdb",
                None,
                format!("{replicas} replicas and no PodDisruptionBudget"),
                "a node drain may evict every replica at once",
                format!(
                    "add a PodDisruptionBudget with maxUnavailable: 1 selecting {}",
                    labels(workload)
                ),
            );
        }
        for budget in &workload.budgets {
            if budget.blocks_every_eviction(replicas) {
                let rule = budget.max_unavailable.as_ref().map_or_else(
                    || {
                        format!(
                            "minAvailable {}",
                            budget.min_available.as_deref().unwrap_or("?")
                        )
                    },
                    |m| format!("maxUnavailable {m}"),
                );
                lint.add(
                    "pdb-blocks-eviction",
                    None,
                    format!(
                        "PodDisruptionBudget {} ({rule}) allows no eviction of {replicas} replicas",
                        budget.name
                    ),
                    "node drains and cluster upgrades hang on these pods",
                    "use maxUnavailable: 1 (or a minAvailable below the replicas)".into(),
                );
            }
        }
    }
    if kind == WorkloadKind::Deployment && replicas == 1 && !workload.services.is_empty() {
        lint.add(
            "single-replica-behind-service",
            None,
            format!(
                "one replica behind Service {}",
                workload.services.join(", ")
            ),
            "every rollout, eviction or crash is an outage of the Service",
            "run at least 2 replicas (and a PodDisruptionBudget)".into(),
        );
    }
    if let Some(autoscaler) = &workload.autoscaler {
        for (resource, target) in [
            ("cpu", autoscaler.cpu_utilization),
            ("memory", autoscaler.memory_utilization),
        ] {
            if target.is_none() {
                continue;
            }
            for container in running.iter().filter(|c| {
                autoscaler.containers.is_empty() || autoscaler.containers.contains(&c.name)
            }) {
                let request = if resource == "cpu" {
                    container.resources.cpu_request
                } else {
                    container.resources.memory_request
                };
                if request.is_none_or(|r| r <= 0.0) {
                    lint.add(
                        "hpa-without-request",
                        Some(&container.name),
                        format!("HPA {} scales on {resource} utilisation but there is no {resource} request", autoscaler.name),
                        "utilisation is usage over request: without a request the HPA cannot scale",
                        format!("set resources.requests.{resource}"),
                    );
                }
            }
        }
    }
    lint.findings
}

fn heap_findings(
    lint: &mut Lint<'_>,
    container: &super::model::ContainerSpec,
    heap: &super::runtime::Heap,
) {
    let name = Some(container.name.as_str());
    let runtime = match heap.runtime {
        Runtime::Jvm => "JVM",
        Runtime::Go => "Go",
        Runtime::Node => "Node.js",
    };
    if let (Some(bytes), Some(limit)) = (heap.bytes, container.resources.memory_limit)
        && limit < bytes
    {
        lint.add(
            "heap-above-limit",
            name,
            format!(
                "{runtime} heap {} ({}) is above the memory limit {}",
                format_memory(bytes),
                heap.setting,
                format_memory(limit)
            ),
            "the container is OOMKilled before the runtime collects garbage in earnest",
            format!(
                "raise the memory limit above {} plus room for non-heap memory, or lower the heap",
                format_memory(bytes)
            ),
        );
    }
    if let Some(percent) = heap.percent {
        if percent > 100.0 {
            lint.add(
                "heap-above-limit",
                name,
                format!("{} lets the heap grow past the memory limit", heap.setting),
                "the container is OOMKilled before the JVM collects garbage in earnest",
                "use -XX:MaxRAMPercentage=75".into(),
            );
        } else if percent > 90.0 {
            lint.add(
                "heap-share",
                name,
                format!("{} leaves under 10 % of the limit for everything else", heap.setting),
                "metaspace, threads, buffers and the code cache live outside the heap: the container is OOMKilled with a healthy heap",
                "use -XX:MaxRAMPercentage=75".into(),
            );
        }
    }
}

fn labels(workload: &Workload) -> String {
    if workload.pod_labels.is_empty() {
        return "its pods".into();
    }
    workload
        .pod_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
