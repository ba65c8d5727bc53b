//! The report: recommendations sorted by impact, findings, totals; as a table, CSV, and
//! server-side-apply patches.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value as Json, json};

use super::TuneError;
use super::lint::{Finding, Severity};
use super::model::{ContainerRole, ReadProblem, WorkloadKind, WorkloadRef};
use super::recommend::{Options, Recommendation};
use crate::quantity::{format_cpu, format_memory};
use crate::table::{Cell, Column, Table, Tabular, Tone};

/// Requested capacity over all replicas, before and after the recommendations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Workloads looked at.
    pub workloads: usize,
    /// Containers looked at.
    pub containers: usize,
    /// Containers with a change advised.
    pub changed: usize,
    /// Containers without a number (too little usage, an HPA, ...).
    pub without_number: usize,
    /// CPU requested now, millicores.
    pub cpu_before: f64,
    /// CPU requested after, millicores.
    pub cpu_after: f64,
    /// Memory requested now, bytes.
    pub memory_before: f64,
    /// Memory requested after, bytes.
    pub memory_after: f64,
}

/// What tune found: recommendations (largest impact first), findings (most severe first) and
/// totals.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the data came from: `manifests`, `metrics.k8s.io (10m every 15s)`, `prometheus`,
    /// `snapshot DIR`.
    pub source: String,
    /// The options the numbers were made with.
    pub options: Options,
    /// One per container.
    pub recommendations: Vec<Recommendation>,
    /// Lint findings.
    pub findings: Vec<Finding>,
    /// Before and after.
    pub totals: Totals,
    /// Objects that could not be read.
    pub problems: Vec<ReadProblem>,
    /// Usage samples of pods that belong to no workload read.
    pub unmatched_samples: u64,
}

impl Report {
    /// Sorts and totals.
    #[must_use]
    pub fn new(
        source: &str,
        options: Options,
        mut recommendations: Vec<Recommendation>,
        mut findings: Vec<Finding>,
        problems: Vec<ReadProblem>,
        unmatched_samples: u64,
    ) -> Self {
        recommendations.sort_by(|a, b| {
            b.impact
                .abs()
                .total_cmp(&a.impact.abs())
                .then_with(|| a.workload.cmp(&b.workload))
                .then_with(|| a.role.cmp(&b.role))
                .then_with(|| a.container.cmp(&b.container))
        });
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.workload.cmp(&b.workload))
                .then_with(|| a.container.cmp(&b.container))
                .then_with(|| a.check.cmp(&b.check))
        });
        let mut totals = Totals::default();
        let mut workloads = std::collections::HashSet::new();
        for rec in &recommendations {
            workloads.insert(&rec.workload);
            totals.containers += 1;
            if rec.changes {
                totals.changed += 1;
            }
            if rec.recommended.cpu_request.is_none() && rec.recommended.memory_request.is_none() {
                totals.without_number += 1;
            }
            if rec.role == ContainerRole::Init {
                continue;
            }
            let replicas = f64::from(rec.replicas);
            totals.cpu_before += rec.current.cpu_request.unwrap_or(0.0) * replicas;
            totals.cpu_after += rec.cpu_after().unwrap_or(0.0) * replicas;
            totals.memory_before += rec.current.memory_request.unwrap_or(0.0) * replicas;
            totals.memory_after += rec.memory_after().unwrap_or(0.0) * replicas;
        }
        totals.workloads = workloads.len();
        Self {
            source: source.to_owned(),
            options,
            recommendations,
            findings,
            totals,
            problems,
            unmatched_samples,
        }
    }

    /// The most severe finding, if any.
    #[must_use]
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The totals in one line: `CPU requests 12.5 -> 4.2 cores, memory 24Gi -> 9Gi (31 of 40
    /// containers changed, 3 without a number)`.
    #[must_use]
    pub fn summary(&self) -> String {
        let t = &self.totals;
        format!(
            "requests over {} workloads: CPU {} -> {}, memory {} -> {} ({} of {} containers changed, {} without a number)",
            t.workloads,
            format_cpu(t.cpu_before),
            format_cpu(t.cpu_after),
            format_memory(t.memory_before),
            format_memory(t.memory_after),
            t.changed,
            t.containers,
            t.without_number
        )
    }

    /// The findings as a table.
    #[must_use]
    pub fn findings_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("SEVERITY"),
            Column::new("WORKLOAD"),
            Column::new("CONTAINER"),
            Column::new("CHECK"),
            Column::new("FINDING"),
            Column::wide("WHY"),
            Column::new("FIX"),
        ]);
        for f in &self.findings {
            let tone = match f.severity {
                Severity::Error => Tone::Bad,
                Severity::Warning => Tone::Warning,
                Severity::Info => Tone::Muted,
            };
            table.push_row(vec![
                Cell::toned(f.severity.as_str(), tone),
                Cell::from(f.workload.to_string()),
                Cell::from(f.container.clone().unwrap_or_else(|| "-".into())),
                Cell::from(f.check.clone()),
                Cell::from(f.message.clone()),
                Cell::from(f.why.clone()),
                Cell::from(f.fix.clone()),
            ]);
        }
        table
    }

    /// Writes the recommendations as CSV: one row a container, CPU in millicores and memory
    /// in bytes, empty cells where there is no value.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        const HEADER: &str = "namespace,kind,workload,container,role,replicas,cpu_request,cpu_request_new,cpu_limit,cpu_limit_new,memory_request,memory_request_new,memory_limit,memory_limit_new,basis,confidence,confidence_score,cpu_samples,memory_samples,span_seconds,cpu_percentile,cpu_max,memory_peak,impact,cpu_reason,memory_reason,notes";
        writeln!(out, "{HEADER}")?;
        let number = |v: Option<f64>| {
            v.map(|v| {
                format!("{v:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
            })
            .unwrap_or_default()
        };
        for r in &self.recommendations {
            let u = r.usage;
            let role = match r.role {
                ContainerRole::Main => "main",
                ContainerRole::Init => "init",
                ContainerRole::Sidecar => "sidecar",
            };
            let fields = [
                csv_field(&r.workload.namespace),
                r.workload.kind.as_str().to_owned(),
                csv_field(&r.workload.name),
                csv_field(&r.container),
                role.to_owned(),
                r.replicas.to_string(),
                number(r.current.cpu_request),
                number(r.recommended.cpu_request),
                number(r.current.cpu_limit),
                number(r.recommended.cpu_limit),
                number(r.current.memory_request),
                number(r.recommended.memory_request),
                number(r.current.memory_limit),
                number(r.recommended.memory_limit),
                csv_field(&r.basis),
                r.confidence
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                number(Some(r.confidence_score)),
                u.map(|u| u.cpu_samples.to_string()).unwrap_or_default(),
                u.map(|u| u.memory_samples.to_string()).unwrap_or_default(),
                u.map(|u| u.span_seconds.to_string()).unwrap_or_default(),
                number(u.map(|u| u.cpu_percentile)),
                number(u.map(|u| u.cpu_max)),
                number(u.map(|u| u.memory_peak)),
                number(Some(r.impact)),
                csv_field(r.cpu_reason.as_deref().unwrap_or_default()),
                csv_field(r.memory_reason.as_deref().unwrap_or_default()),
                csv_field(&r.notes.join("; ")),
            ];
            writeln!(out, "{}", fields.join(","))?;
        }
        Ok(())
    }

    /// One server-side-apply patch per workload with a change: only the resources fields
    /// advised, so applying it (field manager `kubectl-zen`) touches nothing else. Bare Pods
    /// are left out: their resources cannot be patched.
    #[must_use]
    pub fn patches(&self) -> Vec<Patch> {
        let mut by_workload: std::collections::BTreeMap<&WorkloadRef, Vec<&Recommendation>> =
            std::collections::BTreeMap::new();
        for rec in self.recommendations.iter().filter(|r| r.changes) {
            if rec.workload.kind != WorkloadKind::Pod {
                by_workload.entry(&rec.workload).or_default().push(rec);
            }
        }
        by_workload
            .into_iter()
            .map(|(workload, recs)| Patch::new(workload, &recs))
            .collect()
    }

    /// Writes [`Report::patches`] into `dir` (created if missing): one YAML file per workload
    /// under `patches/`, and a `kustomization.yaml` listing them as patches. Returns the files
    /// written, relative to `dir`.
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn write_patches(&self, dir: &Path) -> Result<Vec<String>, TuneError> {
        let io_error = |path: &Path, error: &io::Error| TuneError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let files = dir.join("patches");
        std::fs::create_dir_all(&files).map_err(|e| io_error(&files, &e))?;
        let patches = self.patches();
        let mut written = Vec::new();
        for patch in &patches {
            let path = files.join(&patch.file);
            let text = serde_norway::to_string(&patch.object).unwrap_or_default();
            std::fs::write(
                &path,
                format!("# kubectl zen tune: {}\n{text}", patch.workload),
            )
            .map_err(|e| io_error(&path, &e))?;
            written.push(format!("patches/{}", patch.file));
        }
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "patches": patches.iter().map(|p| json!({"path": format!("patches/{}", p.file)})).collect::<Vec<_>>(),
        });
        let path = dir.join("kustomization.yaml");
        let text = format!(
            "# Resource patches from kubectl zen tune. Apply them as they are with\n#   kubectl apply --server-side --field-manager kubectl-zen -f {}\n# (each file is a partial object: only the resources fields), or add your base under\n# resources: and build this overlay with kubectl kustomize.\n{}",
            files.display(),
            serde_norway::to_string(&kustomization).unwrap_or_default()
        );
        std::fs::write(&path, text).map_err(|e| io_error(&path, &e))?;
        written.push("kustomization.yaml".into());
        Ok(written)
    }
}

/// A server-side-apply patch for one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patch {
    /// The workload.
    pub workload: WorkloadRef,
    /// The file name it is written to.
    pub file: String,
    /// The partial object: identity plus the containers' resources.
    pub object: Json,
}

impl Patch {
    fn new(workload: &WorkloadRef, recs: &[&Recommendation]) -> Self {
        let container = |rec: &Recommendation| {
            let r = &rec.recommended;
            let mut requests = serde_json::Map::new();
            let mut limits = serde_json::Map::new();
            if let Some(cpu) = r.cpu_request {
                requests.insert("cpu".into(), json!(format_cpu(cpu)));
                if let Some(limit) = r.cpu_limit {
                    limits.insert("cpu".into(), json!(format_cpu(limit)));
                }
            }
            if let Some(memory) = r.memory_request {
                requests.insert("memory".into(), json!(format_memory(memory)));
            }
            if let Some(memory) = r.memory_limit {
                limits.insert("memory".into(), json!(format_memory(memory)));
            }
            let mut resources = serde_json::Map::new();
            if !requests.is_empty() {
                resources.insert("requests".into(), Json::Object(requests));
            }
            if !limits.is_empty() {
                resources.insert("limits".into(), Json::Object(limits));
            }
            json!({"name": rec.container, "resources": resources})
        };
        let main: Vec<Json> = recs
            .iter()
            .filter(|r| r.role == ContainerRole::Main)
            .map(|r| container(r))
            .collect();
        let init: Vec<Json> = recs
            .iter()
            .filter(|r| r.role != ContainerRole::Main)
            .map(|r| container(r))
            .collect();
        let mut pod_spec = serde_json::Map::new();
        if !main.is_empty() {
            pod_spec.insert("containers".into(), Json::Array(main));
        }
        if !init.is_empty() {
            pod_spec.insert("initContainers".into(), Json::Array(init));
        }
        let template = json!({"template": {"spec": pod_spec}});
        let spec = if workload.kind == WorkloadKind::CronJob {
            json!({"jobTemplate": {"spec": template}})
        } else {
            template
        };
        let object = json!({
            "apiVersion": workload.kind.api_version(),
            "kind": workload.kind.as_str(),
            "metadata": {"name": workload.name, "namespace": workload.namespace},
            "spec": spec,
        });
        Self {
            workload: workload.clone(),
            file: format!(
                "{}.{}.{}.yaml",
                workload.namespace,
                workload.kind.as_str().to_ascii_lowercase(),
                workload.name
            ),
            object,
        }
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn change(before: Option<String>, after: Option<String>, reason: Option<&str>) -> Cell {
    let before = before.unwrap_or_else(|| "-".into());
    match (after, reason) {
        (_, Some(_)) => Cell::toned(format!("{before} (?)"), Tone::Muted),
        (Some(after), None) if after == before => Cell::from(before),
        (Some(after), None) => Cell::toned(format!("{before} -> {after}"), Tone::Good),
        (None, None) => Cell::from(before),
    }
}

impl Tabular for Report {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("WORKLOAD"),
            Column::new("CONTAINER"),
            Column::new("CPU REQUEST"),
            Column::new("CPU LIMIT"),
            Column::new("MEMORY REQUEST"),
            Column::new("MEMORY LIMIT"),
            Column::new("CONFIDENCE"),
            Column::wide("SAMPLES").right(),
            Column::wide("CPU P").right(),
            Column::wide("MEMORY PEAK").right(),
            Column::wide("IMPACT").right(),
            Column::new("NOTE"),
        ]);
        for r in &self.recommendations {
            let c = &r.current;
            let n = &r.recommended;
            let cpu_limit = match (n.cpu_request, n.cpu_limit, c.cpu_limit) {
                // Advised away, but only by hand (the note says so).
                (Some(_), None, Some(limit)) if r.cpu_reason.is_none() => {
                    Cell::toned(format!("{} (remove)", format_cpu(limit)), Tone::Warning)
                }
                (Some(_), after, before) if r.cpu_reason.is_none() => change(
                    Some(before.map_or_else(|| "none".into(), format_cpu)),
                    Some(after.map_or_else(|| "none".into(), format_cpu)),
                    None,
                ),
                _ => change(
                    Some(c.cpu_limit.map_or_else(|| "none".into(), format_cpu)),
                    None,
                    r.cpu_reason.as_deref(),
                ),
            };
            let container = match r.role {
                ContainerRole::Main => r.container.clone(),
                ContainerRole::Init => format!("{} (init)", r.container),
                ContainerRole::Sidecar => format!("{} (sidecar)", r.container),
            };
            let note = r
                .cpu_reason
                .iter()
                .chain(
                    r.memory_reason
                        .iter()
                        .filter(|m| Some(*m) != r.cpu_reason.as_ref()),
                )
                .chain(&r.notes)
                .next()
                .cloned()
                .unwrap_or_default();
            let confidence = r.confidence.map_or_else(
                || Cell::toned("-", Tone::Muted),
                |level| {
                    let tone = match level {
                        super::Confidence::High => Tone::Good,
                        super::Confidence::Medium => Tone::Plain,
                        _ => Tone::Warning,
                    };
                    Cell::toned(level.as_str(), tone)
                },
            );
            table.push_row(vec![
                Cell::from(r.workload.to_string()),
                Cell::from(container),
                change(
                    c.cpu_request.map(format_cpu),
                    n.cpu_request.map(format_cpu),
                    r.cpu_reason.as_deref(),
                ),
                cpu_limit,
                change(
                    c.memory_request.map(format_memory),
                    n.memory_request.map(format_memory),
                    r.memory_reason.as_deref(),
                ),
                change(
                    c.memory_limit.map(format_memory),
                    n.memory_limit.map(format_memory),
                    r.memory_reason.as_deref(),
                ),
                confidence,
                Cell::from(
                    r.usage
                        .map_or_else(|| "-".into(), |u| u.cpu_samples.to_string()),
                ),
                Cell::from(
                    r.usage
                        .map_or_else(|| "-".into(), |u| format_cpu(u.cpu_percentile)),
                ),
                Cell::from(
                    r.usage
                        .map_or_else(|| "-".into(), |u| format_memory(u.memory_peak)),
                ),
                Cell::from(format!("{:+.2}", r.impact)),
                Cell::from(note),
            ]);
        }
        table
    }
}
