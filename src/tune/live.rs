//! A live cluster as tune's input: workloads and what bears on them listed from the API, usage
//! sampled from metrics.k8s.io over a window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::api::{ApiResource, GroupVersionKind, ListParams};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::TuneError;
use super::model::Inventory;
use super::snapshot::Writer;
use super::usage::{SeriesKey, Usage};
use crate::cluster::{Cluster, api_message, is_not_found};
use crate::quantity;

/// Where to look: one namespace or all, and a label selector for workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The namespace; `None` for all.
    pub namespace: Option<String>,
    /// A label selector the workloads must match.
    pub selector: Option<String>,
}

/// Where samples go: into sketches for analysis, or into a snapshot's files.
pub trait Sink {
    /// One sample of one series; a value the source lacked is `None`.
    ///
    /// # Errors
    /// The sink cannot take it (a snapshot file cannot be written).
    fn sample(
        &mut self,
        key: &SeriesKey,
        timestamp: i64,
        cpu_millicores: Option<f64>,
        memory_bytes: Option<f64>,
    ) -> Result<(), TuneError>;

    /// A sample of a pod that belongs to no workload known.
    fn unmatched(&mut self) {}
}

impl Sink for Usage {
    fn sample(
        &mut self,
        key: &SeriesKey,
        timestamp: i64,
        cpu: Option<f64>,
        memory: Option<f64>,
    ) -> Result<(), TuneError> {
        let id = self.series(key.clone());
        self.record(id, timestamp, cpu, memory);
        Ok(())
    }

    fn unmatched(&mut self) {
        self.unmatched += 1;
    }
}

impl Sink for Writer {
    fn sample(
        &mut self,
        key: &SeriesKey,
        timestamp: i64,
        cpu: Option<f64>,
        memory: Option<f64>,
    ) -> Result<(), TuneError> {
        Writer::sample(self, key, timestamp, cpu, memory)
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The kinds listed: workloads (the selector applies to these), then what acts on them.
fn kinds() -> (Vec<ApiResource>, Vec<ApiResource>) {
    let workloads = vec![
        resource("apps", "v1", "Deployment", "deployments"),
        resource("apps", "v1", "StatefulSet", "statefulsets"),
        resource("apps", "v1", "DaemonSet", "daemonsets"),
        resource("apps", "v1", "ReplicaSet", "replicasets"),
        resource("batch", "v1", "Job", "jobs"),
        resource("batch", "v1", "CronJob", "cronjobs"),
    ];
    let context = vec![
        resource(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
        resource(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
        resource("", "v1", "Service", "services"),
        resource("", "v1", "Pod", "pods"),
    ];
    (workloads, context)
}

/// A pod reduced to what tune reads (owners, labels, container names and resources, and the
/// last termination of each container), so that listing every pod stays small.
fn slim_pod(pod: &Json) -> Json {
    // A pod no controller owns is a workload of its own: keep what its heap is read from.
    let bare = !pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|o| o["controller"] == true));
    let containers = |field: &str| -> Json {
        pod["spec"][field]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        let mut slim = json!({"name": c["name"], "resources": c["resources"], "restartPolicy": c["restartPolicy"]});
                        if bare {
                            for key in ["env", "command", "args", "readinessProbe", "livenessProbe"] {
                                slim[key] = c[key].clone();
                            }
                        }
                        slim
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let statuses = |field: &str| -> Json {
        pod["status"][field]
            .as_array()
            .map(|list| list.iter().map(|s| json!({"name": s["name"], "restartCount": s["restartCount"], "state": s["state"], "lastState": s["lastState"]})).collect())
            .unwrap_or_default()
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"],
            "labels": pod["metadata"]["labels"], "ownerReferences": pod["metadata"]["ownerReferences"],
        },
        "spec": {"containers": containers("containers"), "initContainers": containers("initContainers")},
        "status": {"phase": pod["status"]["phase"], "containerStatuses": statuses("containerStatuses"), "initContainerStatuses": statuses("initContainerStatuses")},
    })
}

/// Lists the workloads in `scope` and what bears on them, as objects (pods slimmed), and
/// hands each to `each`. Kinds the server does not serve are skipped. Pods are listed without
/// the selector (for their owners and OOM kills), but a bare pod is a workload of its own and
/// is handed on only when it matches it.
///
/// # Errors
/// A list the server refuses (other than a kind it does not serve), or a selector that does
/// not parse.
pub async fn list_objects(
    cluster: &Cluster,
    scope: &Scope,
    mut each: impl FnMut(Json),
) -> Result<(), TuneError> {
    let (workloads, context) = kinds();
    let selector = scope
        .selector
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(crate::sim::select::LabelSelector::parse)
        .transpose()
        .map_err(TuneError::Invalid)?;
    let bare_and_unselected = |pod: &Json| {
        let owned = pod["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|owners| owners.iter().any(|o| o["controller"] == true));
        selector.as_ref().is_some_and(|selector| {
            !owned && !selector.matches_with(|key| pod["metadata"]["labels"][key].as_str())
        })
    };
    let selected = ListParams::default().labels(scope.selector.as_deref().unwrap_or_default());
    let everything = ListParams::default();
    for (resource, params) in workloads
        .iter()
        .map(|r| (r, &selected))
        .chain(context.iter().map(|r| (r, &everything)))
    {
        let pods = resource.kind == "Pod";
        let result = cluster
            .list_each(resource, scope.namespace.as_deref(), params, |object| {
                if !pods {
                    each(object);
                } else if !bare_and_unselected(&object) {
                    each(slim_pod(&object));
                }
            })
            .await;
        match result {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => {
                return Err(TuneError::Api(format!(
                    "cannot list {}: {}",
                    resource.plural,
                    api_message(&error)
                )));
            }
        }
    }
    Ok(())
}

/// The inventory of `scope`, listed.
///
/// # Errors
/// As [`list_objects`].
pub async fn inventory(cluster: &Cluster, scope: &Scope) -> Result<Inventory, TuneError> {
    let mut builder = super::InventoryBuilder::new(cluster.namespace());
    list_objects(cluster, scope, |o| builder.add(o)).await?;
    Ok(builder.build())
}

/// How to sample metrics.k8s.io.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// How long.
    pub duration: Duration,
    /// How often.
    pub every: Duration,
}

impl Sampling {
    /// Checks that sampling can take place.
    ///
    /// # Errors
    /// `every` zero or longer than `duration`, in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.every.is_zero() || self.duration < self.every {
            return Err("the sampling interval (--every) must be above 0 and at most the sampling time (--sample-for)".into());
        }
        Ok(())
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(600),
            every: Duration::from_secs(15),
        }
    }
}

/// How sampling is going, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rounds done.
    pub rounds: u64,
    /// Samples taken (new readings only: a pod's metrics repeat until metrics-server scrapes
    /// it again).
    pub samples: u64,
    /// Time sampled so far.
    pub elapsed: Duration,
    /// Time to sample in all.
    pub duration: Duration,
}

/// Samples pod usage from metrics.k8s.io every `sampling.every` for `sampling.duration` (or
/// until `cancel`), handing each new reading of a container to `sink`. A reading is new when
/// its pod's metrics timestamp changed: polling faster than metrics-server scrapes adds
/// nothing. Returns the samples taken.
///
/// # Errors
/// metrics.k8s.io not served (no metrics-server), or refused; the sink failing.
pub async fn sample(
    cluster: &Cluster,
    inventory: &Inventory,
    scope: &Scope,
    sampling: Sampling,
    cancel: &CancellationToken,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<u64, TuneError> {
    let metrics = resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods");
    let started = Instant::now();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut samples = 0;
    let mut rounds = 0;
    let mut failure = None;
    loop {
        let round_started = Instant::now();
        let mut readings = Vec::new();
        let listed = cluster
            .list_each(
                &metrics,
                scope.namespace.as_deref(),
                &ListParams::default(),
                |o| readings.push(o),
            )
            .await;
        if let Err(error) = listed {
            if is_not_found(&error) {
                return Err(TuneError::Api(
                    "metrics.k8s.io is not served: install metrics-server, or read history with --prometheus, or lint manifests with -f".into(),
                ));
            }
            failure = Some(api_message(&error));
        }
        for reading in &readings {
            let namespace = reading["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default();
            let pod = reading["metadata"]["name"].as_str().unwrap_or_default();
            let stamp = reading["timestamp"].as_str().unwrap_or_default().to_owned();
            let key = (namespace.to_owned(), pod.to_owned());
            if seen.get(&key) == Some(&stamp) {
                continue;
            }
            let timestamp = chrono::DateTime::parse_from_rfc3339(&stamp)
                .map_or_else(|_| chrono::Utc::now().timestamp(), |t| t.timestamp());
            seen.insert(key, stamp);
            let Some(workload) = inventory.workload_of_pod(namespace, pod) else {
                sink.unmatched();
                continue;
            };
            for container in reading["containers"].as_array().into_iter().flatten() {
                let key = SeriesKey {
                    workload: workload.id.clone(),
                    container: container["name"].as_str().unwrap_or_default().to_owned(),
                    pod: pod.to_owned(),
                };
                let cpu = container["usage"]["cpu"]
                    .as_str()
                    .and_then(quantity::millicores);
                let memory = container["usage"]["memory"]
                    .as_str()
                    .and_then(quantity::bytes);
                sink.sample(&key, timestamp, cpu, memory)?;
                samples += 1;
            }
        }
        rounds += 1;
        let elapsed = started.elapsed();
        progress(Progress {
            rounds,
            samples,
            elapsed,
            duration: sampling.duration,
        });
        if elapsed + sampling.every > sampling.duration + sampling.every / 2 {
            break;
        }
        let wait = sampling.every.saturating_sub(round_started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => break,
        }
    }
    if samples == 0
        && let Some(message) = failure
    {
        return Err(TuneError::Api(format!(
            "cannot read metrics.k8s.io: {message}"
        )));
    }
    Ok(samples)
}

/// Resources `tune controller` can count, by plural name.
const COUNTABLE: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Endpoints", "endpoints"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "Namespace", "namespaces"),
    ("", "v1", "Node", "nodes"),
    ("", "v1", "Event", "events"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases"),
];

/// Counts the objects of `kinds` (plural names) in `namespace` (or all), with the largest
/// namespace and the mean size of an object as JSON, listing a page at a time. Secrets are
/// measured, never kept or shown.
///
/// # Errors
/// An unknown kind, or a list the server refuses.
#[allow(clippy::cast_possible_truncation)]
pub async fn count_objects(
    cluster: &Cluster,
    namespace: Option<&str>,
    kinds: &[String],
    cores: u32,
) -> Result<super::ControllerLoad, TuneError> {
    let mut per_namespace: HashMap<String, u64> = HashMap::new();
    let mut objects = 0_u64;
    let mut bytes = 0_u64;
    for kind in kinds {
        let kind = kind.trim().to_ascii_lowercase();
        let Some(&(group, version, name, plural)) =
            COUNTABLE.iter().find(|(_, _, _, plural)| *plural == kind)
        else {
            let known: Vec<&str> = COUNTABLE.iter().map(|c| c.3).collect();
            return Err(TuneError::Invalid(format!(
                "cannot count {kind:?}: use plural names among {}",
                known.join(", ")
            )));
        };
        let resource = resource(group, version, name, plural);
        let result = cluster
            .list_each(&resource, namespace, &ListParams::default(), |object| {
                objects += 1;
                bytes += serde_json::to_vec(&object).map_or(0, |v| v.len() as u64);
                if let Some(ns) = object["metadata"]["namespace"].as_str() {
                    *per_namespace.entry(ns.to_owned()).or_default() += 1;
                }
            })
            .await;
        match result {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => {
                return Err(TuneError::Api(format!(
                    "cannot list {plural}: {}",
                    api_message(&error)
                )));
            }
        }
    }
    Ok(super::ControllerLoad {
        objects,
        largest_namespace: per_namespace.values().copied().max().unwrap_or(objects),
        mean_object_bytes: bytes.checked_div(objects).unwrap_or(0),
        cores,
    })
}

/// Where usage comes from in a live cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageSource {
    /// metrics.k8s.io, sampled.
    Metrics(Sampling),
    /// Prometheus history.
    Prometheus(super::prometheus::Source),
}

/// Fills `sink` with the usage of `inventory`'s workloads from `source`, telling `progress`
/// how it goes in words. Returns where the usage came from, in words, for the report.
///
/// # Errors
/// As [`sample`] and [`super::prometheus::history`].
pub async fn measure(
    cluster: &Cluster,
    inventory: &Inventory,
    scope: &Scope,
    source: &UsageSource,
    cancel: &CancellationToken,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(&str),
) -> Result<String, TuneError> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    // Sub-second sampling intervals are written in milliseconds, not as `0s`.
    let duration_text = |d: Duration| {
        if d < Duration::from_secs(1) {
            format!("{}ms", d.as_millis())
        } else {
            super::span_text(secs(d))
        }
    };
    match source {
        UsageSource::Prometheus(prometheus) => {
            let samples =
                super::prometheus::history(prometheus, inventory, cancel, sink, &mut |p| {
                    progress(&format!(
                        "prometheus: {}/{} queries, {} samples",
                        p.queries, p.total, p.samples
                    ));
                })
                .await?;
            Ok(format!(
                "prometheus {} ({} of history at {}, {samples} samples)",
                prometheus.url,
                super::span_text(secs(prometheus.history)),
                super::span_text(secs(prometheus.step))
            ))
        }
        UsageSource::Metrics(sampling) => {
            sampling.validate().map_err(TuneError::Invalid)?;
            let samples = sample(cluster, inventory, scope, *sampling, cancel, sink, &mut |p| {
                progress(&format!(
                    "sampling metrics.k8s.io: {}s of {}s, {} rounds, {} samples (Ctrl-C stops and analyses)",
                    p.elapsed.as_secs(),
                    p.duration.as_secs(),
                    p.rounds,
                    p.samples
                ));
            })
            .await?;
            Ok(format!(
                "metrics.k8s.io ({} every {}, {samples} samples)",
                duration_text(sampling.duration),
                duration_text(sampling.every)
            ))
        }
    }
}

/// What [`record`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// Workloads listed into the snapshot.
    pub workloads: usize,
    /// Usage samples written.
    pub samples: u64,
    /// Where the usage came from, in words.
    pub source: String,
}

/// Records a snapshot into `dir` (`kubectl zen tune snapshot`): the objects of `scope`, each
/// written as it is listed, then their usage from `source`, written as it arrives. A cancelled
/// `cancel` stops sampling and keeps what was recorded.
///
/// # Errors
/// The directory cannot be written, or as [`list_objects`] and [`measure`].
pub async fn record(
    cluster: &Cluster,
    scope: &Scope,
    source: &UsageSource,
    dir: &std::path::Path,
    cancel: &CancellationToken,
    progress: &mut dyn FnMut(&str),
) -> Result<Recorded, TuneError> {
    let (name, interval) = match source {
        UsageSource::Prometheus(prometheus) => ("prometheus", prometheus.step),
        UsageSource::Metrics(sampling) => ("metrics.k8s.io", sampling.every),
    };
    let meta = super::snapshot::Meta::now(name, cluster.server(), interval);
    let mut writer = Writer::create(dir, &meta)?;
    let mut builder = super::InventoryBuilder::new(cluster.namespace());
    let mut written = Ok(());
    list_objects(cluster, scope, |object| {
        if written.is_ok() {
            written = writer.object(&object);
        }
        builder.add(object);
    })
    .await?;
    written?;
    let inventory = builder.build();
    let measured = measure(
        cluster,
        &inventory,
        scope,
        source,
        cancel,
        &mut writer,
        progress,
    )
    .await;
    // What was sampled is kept even when measuring failed part-way.
    let samples = writer.finish()?;
    Ok(Recorded {
        workloads: inventory.workloads().len(),
        samples,
        source: measured?,
    })
}
