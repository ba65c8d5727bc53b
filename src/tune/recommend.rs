//! Right-sizing one container: the numbers, the confidence in them, and the explanation.
//!
//! The rules are KRR's simple strategy, so its numbers can be checked against ours: CPU
//! request = the `--cpu-percentile` (95) of each pod's usage, highest over pods, no CPU limit;
//! memory request = limit = peak x (1 + `--memory-buffer`, 15 %); both rounded up (1m,
//! 1 MiB) and at least 10m and 100 MiB; no number below `--min-samples` (100) points. Beyond
//! KRR: OOM kills raise memory to the killed limit + 25 % (KRR's `use_oomkill_data`, on here),
//! a configured runtime heap is never cut off, HPAs get replica advice instead of a blind
//! number, and workloads without usage can take a preset.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::model::{ContainerRole, ContainerSpec, Resources, Workload, WorkloadRef};
use super::presets::Profile;
use super::usage::UsageSummary;
use crate::quantity::{self, GIB, MIB, format_cpu, format_memory};

/// What to do about CPU limits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuLimit {
    /// No CPU limit: throttling costs latency and buys nothing on a node with idle CPU.
    #[default]
    None,
    /// A limit of the request times this ratio.
    Ratio(f64),
}

impl FromStr for CpuLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "none" {
            return Ok(Self::None);
        }
        let ratio = text
            .strip_prefix("ratio=")
            .and_then(|r| r.parse::<f64>().ok())
            .ok_or_else(|| format!("{text:?} is not none or ratio=R (for example ratio=2)"))?;
        if !(1.0..=100.0).contains(&ratio) {
            return Err(format!(
                "the CPU limit ratio must be from 1 to 100, not {ratio}"
            ));
        }
        Ok(Self::Ratio(ratio))
    }
}

impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Ratio(r) => write!(f, "ratio={r}"),
        }
    }
}

/// How recommendations are made. The defaults are KRR's simple strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// The CPU request is this percentile of usage (0 to 100).
    pub cpu_percentile: f64,
    /// CPU limits: none, or a ratio of the request.
    pub cpu_limit: CpuLimit,
    /// Memory request = limit = peak x (1 + this).
    pub memory_buffer: f64,
    /// After an OOM kill, memory is at least the killed limit x (1 + this).
    pub oom_buffer: f64,
    /// Fewer samples than this give no number.
    pub min_samples: u64,
    /// The smallest CPU request advised, millicores.
    pub min_cpu: f64,
    /// The smallest memory advised, bytes.
    pub min_memory: f64,
    /// The preset for workloads without enough usage (the workload's
    /// `tune.kubezen.io/profile` annotation wins).
    pub profile: Option<Profile>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cpu_percentile: 95.0,
            cpu_limit: CpuLimit::None,
            memory_buffer: 0.15,
            oom_buffer: 0.25,
            min_samples: 100,
            min_cpu: 10.0,
            min_memory: 100.0 * MIB,
            profile: None,
        }
    }
}

impl Options {
    /// Checks the options' ranges.
    ///
    /// # Errors
    /// The first option out of range, said in words.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.cpu_percentile > 0.0 && self.cpu_percentile <= 100.0) {
            return Err(format!(
                "the CPU percentile must be above 0 and at most 100, not {}",
                self.cpu_percentile
            ));
        }
        for (name, value) in [
            ("memory buffer", self.memory_buffer),
            ("OOM buffer", self.oom_buffer),
        ] {
            if !(0.0..=10.0).contains(&value) {
                return Err(format!(
                    "the {name} must be from 0 to 10 (0.15 = 15 %), not {value}"
                ));
            }
        }
        if self.min_samples == 0 {
            return Err("the minimum of samples must be at least 1".into());
        }
        Ok(())
    }
}

/// How much the history behind a number can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// A preset, not a measurement.
    Preset,
    /// Under a day of history: daily and weekly peaks are likely missed.
    Low,
    /// A day to a week.
    Medium,
    /// A week or more.
    High,
}

impl Confidence {
    /// The confidence a history of `span_seconds` earns, with a score from 0 to 1 that grows
    /// with the logarithm of its length (1 at 14 days, KRR's default history).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn of_span(span_seconds: i64) -> (Self, f64) {
        let hours = span_seconds.max(0) as f64 / 3600.0;
        let score = ((1.0 + hours).ln() / (1.0 + 336.0_f64).ln()).clamp(0.0, 1.0);
        let level = if hours < 24.0 {
            Self::Low
        } else if hours < 24.0 * 7.0 {
            Self::Medium
        } else {
            Self::High
        };
        (level, (score * 100.0).round() / 100.0)
    }

    /// The level's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preset => "preset",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// What an HPA scaling on a resource's utilisation makes of a request change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaAdvice {
    /// The HPA.
    pub name: String,
    /// cpu or memory.
    pub resource: String,
    /// The target utilisation, percent of the request.
    pub target_percent: u32,
    /// The request the HPA's arithmetic uses now (millicores or bytes).
    pub request: f64,
    /// The request usage alone would suggest.
    pub usage_request: f64,
    /// Replicas the mean load needs at the target with the current request.
    pub replicas_for_mean: u64,
    /// Replicas the high load (the percentile, or the memory peak) needs.
    pub replicas_for_peak: u64,
    /// The HPA's bounds now.
    pub min_replicas: u32,
    /// The HPA's bounds now.
    pub max_replicas: u32,
    /// The advice in words.
    pub message: String,
}

/// The recommendation for one container of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The workload.
    pub workload: WorkloadRef,
    /// The container.
    pub container: String,
    /// Main, init or sidecar.
    pub role: ContainerRole,
    /// The workload's replicas.
    pub replicas: u32,
    /// Requests and limits now.
    pub current: Resources,
    /// Requests and limits advised. A field without a value is not changed, except the CPU
    /// limit, which with `--cpu-limit none` is advised away.
    pub recommended: Resources,
    /// Why there is no CPU number (too few samples, an HPA, ...).
    pub cpu_reason: Option<String>,
    /// Why there is no memory number.
    pub memory_reason: Option<String>,
    /// What the numbers are based on: `usage`, `preset:<profile>` or `none`.
    pub basis: String,
    /// The usage measured.
    pub usage: Option<UsageSummary>,
    /// Confidence in the numbers.
    pub confidence: Option<Confidence>,
    /// The confidence as a score from 0 to 1.
    pub confidence_score: f64,
    /// Why the numbers are what they are, beyond the rule.
    pub notes: Vec<String>,
    /// What the HPA makes of it, when one scales this workload on utilisation.
    pub hpa: Option<HpaAdvice>,
    /// Change in requested capacity over all replicas, in core-equivalents (1 core = 4 GiB):
    /// negative frees capacity. Recommendations are sorted by its size.
    pub impact: f64,
    /// Whether applying the recommendation changes the container (a patch is written).
    pub changes: bool,
}

impl Recommendation {
    /// The CPU request after the change (the current one where there is no number).
    #[must_use]
    pub fn cpu_after(&self) -> Option<f64> {
        self.recommended.cpu_request.or(self.current.cpu_request)
    }

    /// The memory request after the change.
    #[must_use]
    pub fn memory_after(&self) -> Option<f64> {
        self.recommended
            .memory_request
            .or(self.current.memory_request)
    }

    /// Whether applying it would change anything.
    fn differs_from_current(&self) -> bool {
        let differs = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() > 1e-6 * a.abs().max(1.0),
            (Some(_), None) => true,
            _ => false,
        };
        let r = &self.recommended;
        let c = &self.current;
        let cpu_limit_changes = self.cpu_reason.is_none()
            && r.cpu_request.is_some()
            && (r.cpu_limit.is_some() && differs(r.cpu_limit, c.cpu_limit));
        differs(r.cpu_request, c.cpu_request)
            || differs(r.memory_request, c.memory_request)
            || differs(r.memory_limit, c.memory_limit)
            || cpu_limit_changes
    }
}

/// Recommends for `container` of `workload` from its usage (if any).
#[must_use]
pub fn recommend(
    workload: &Workload,
    container: &ContainerSpec,
    usage: Option<UsageSummary>,
    options: &Options,
) -> Recommendation {
    let mut rec = Recommendation {
        workload: workload.id.clone(),
        container: container.name.clone(),
        role: container.role,
        replicas: workload.replicas,
        current: container.resources,
        recommended: Resources::default(),
        cpu_reason: None,
        memory_reason: None,
        basis: "none".into(),
        usage,
        confidence: None,
        confidence_score: 0.0,
        notes: Vec::new(),
        hpa: None,
        impact: 0.0,
        changes: false,
    };
    let profile = workload
        .annotations
        .get(super::presets::PROFILE_ANNOTATION)
        .and_then(|p| p.parse::<Profile>().ok())
        .or(options.profile);
    let enough = |samples: u64| samples >= options.min_samples;
    let cpu_ok = usage.is_some_and(|u| enough(u.cpu_samples));
    let memory_ok = usage.is_some_and(|u| enough(u.memory_samples) && u.memory_peak > 0.0);
    if let Some(usage) = usage.filter(|_| cpu_ok || memory_ok) {
        let (level, score) = Confidence::of_span(usage.span_seconds);
        rec.basis = "usage".into();
        rec.confidence = Some(level);
        rec.confidence_score = score;
        if cpu_ok {
            let request = quantity::round_up(usage.cpu_percentile, 1.0).max(options.min_cpu);
            rec.recommended.cpu_request = Some(request);
            rec.recommended.cpu_limit = match options.cpu_limit {
                CpuLimit::None => None,
                CpuLimit::Ratio(ratio) => Some(quantity::round_up(request * ratio, 1.0)),
            };
        }
        if memory_ok {
            rec.recommended.memory_request = Some(memory_for(
                workload,
                container,
                &usage,
                options,
                &mut rec.notes,
            ));
            rec.recommended.memory_limit = rec.recommended.memory_request;
        }
        if level == Confidence::Low {
            rec.notes.push(format!(
                "{} of history: daily and weekly peaks may be missing",
                span_text(usage.span_seconds)
            ));
        }
    }
    let short = |samples: u64| {
        format!(
            "only {samples} samples (needs {}, --min-samples): sample longer (--sample-for) or read history (--prometheus)",
            options.min_samples
        )
    };
    let no_usage = || match container.role {
        ContainerRole::Init => {
            "no usage: init containers run before the app starts and are rarely sampled".to_owned()
        }
        _ => "no usage samples".to_owned(),
    };
    if !cpu_ok {
        rec.cpu_reason = Some(usage.map_or_else(no_usage, |u| short(u.cpu_samples)));
    }
    if !memory_ok {
        rec.memory_reason = Some(usage.map_or_else(no_usage, |u| short(u.memory_samples)));
    }
    if !cpu_ok
        && !memory_ok
        && let Some(profile) = profile.filter(|_| container.role != ContainerRole::Init)
    {
        apply_preset(&mut rec, profile, options);
    }
    if let Some(autoscaler) = &workload.autoscaler {
        hpa(workload, autoscaler, &mut rec, usage, options.min_samples);
    }
    settle_cpu_limit(&mut rec);
    rec.impact = impact(&rec);
    rec.changes = rec.differs_from_current();
    rec
}

/// With no CPU limit advised and one in place: a patch sets fields and cannot drop one
/// another field manager owns, so say to remove it by hand; and where the new request is
/// above it (the API refuses a request above its limit), raise it to the request.
fn settle_cpu_limit(rec: &mut Recommendation) {
    let (Some(request), None, Some(limit)) = (
        rec.recommended.cpu_request,
        rec.recommended.cpu_limit,
        rec.current.cpu_limit,
    ) else {
        return;
    };
    if request > limit {
        rec.recommended.cpu_limit = Some(request);
        rec.notes.push(format!(
            "CPU limit raised from {} to the request (a limit below its request is refused); better, remove it",
            format_cpu(limit)
        ));
    } else {
        rec.notes.push(format!(
            "remove the {} CPU limit by hand: a patch cannot drop a field another manager owns",
            format_cpu(limit)
        ));
    }
}

/// Memory for a container with usage: the peak plus buffer, raised after OOM kills and to
/// hold a configured heap, at least the minimum.
fn memory_for(
    workload: &Workload,
    container: &ContainerSpec,
    usage: &UsageSummary,
    options: &Options,
    notes: &mut Vec<String>,
) -> f64 {
    let mut memory = usage.memory_peak * (1.0 + options.memory_buffer);
    if let Some(killed) = workload.oom_kills.get(&container.name) {
        match killed.or(container.resources.memory_limit) {
            Some(limit) => {
                let raised = limit * (1.0 + options.oom_buffer);
                if raised > memory {
                    memory = raised;
                    notes.push(format!(
                        "OOMKilled at a {} limit: raised to that + {:.0} %",
                        format_memory(limit),
                        options.oom_buffer * 100.0
                    ));
                }
            }
            None => notes.push(
                "OOMKilled with no memory limit: the node ran out; the peak seen may be low".into(),
            ),
        }
    }
    if let Some(heap) = container
        .heap
        .as_ref()
        .and_then(|h| h.bytes.map(|b| (h, b)))
    {
        let (heap, bytes) = heap;
        let needed = bytes * (1.0 + options.memory_buffer);
        if needed > memory {
            memory = needed;
            notes.push(format!(
                "raised to hold the configured heap ({}) + {:.0} %",
                heap.setting,
                options.memory_buffer * 100.0
            ));
        }
    }
    quantity::round_up(memory, MIB).max(options.min_memory)
}

fn apply_preset(rec: &mut Recommendation, profile: Profile, options: &Options) {
    let preset = profile.resources();
    rec.basis = format!("preset:{profile}");
    rec.confidence = Some(Confidence::Preset);
    rec.recommended = Resources {
        cpu_request: preset.cpu_request,
        cpu_limit: match options.cpu_limit {
            CpuLimit::None => None,
            CpuLimit::Ratio(ratio) => preset.cpu_request.map(|r| r * ratio),
        },
        memory_request: preset.memory_request,
        memory_limit: preset.memory_limit,
    };
    rec.notes.push(format!(
        "the {profile} preset (Nixernetes' sizing table), for want of usage: {}",
        rec.cpu_reason.as_deref().unwrap_or("no usage")
    ));
    rec.cpu_reason = None;
    rec.memory_reason = None;
}

/// With an HPA on a resource's utilisation, a request change moves the replica count, not
/// the capacity: keep the request, and say what the HPA would do and what range of replicas
/// the load needs.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn hpa(
    workload: &Workload,
    autoscaler: &super::model::Autoscaler,
    rec: &mut Recommendation,
    usage: Option<UsageSummary>,
    min_samples: u64,
) {
    if !autoscaler.containers.is_empty() && !autoscaler.containers.contains(&rec.container) {
        return;
    }
    if rec.role == ContainerRole::Init {
        return;
    }
    let targets = [
        ("cpu", autoscaler.cpu_utilization),
        ("memory", autoscaler.memory_utilization),
    ];
    for (resource, target) in targets {
        let Some(target) = target.filter(|t| *t > 0) else {
            continue;
        };
        let (current, advised, short) = if resource == "cpu" {
            (
                rec.current.cpu_request,
                rec.recommended.cpu_request,
                rec.cpu_reason.clone(),
            )
        } else {
            (
                rec.current.memory_request,
                rec.recommended.memory_request,
                rec.memory_reason.clone(),
            )
        };
        // A request of 0 is no request: utilisation over it is undefined.
        let current = current.filter(|r| *r > 0.0);
        let hold = format!(
            "HPA {} scales on {resource} at {target} % of the request",
            autoscaler.name
        );
        if current.is_none() {
            // No request: the HPA cannot work at all; the number advised is the fix.
            let show = if resource == "cpu" {
                advised.map(format_cpu)
            } else {
                advised.map(format_memory)
            };
            rec.notes.push(match show {
                Some(value) => format!("{hold}, but there is no {resource} request: set it ({value} advised) so the HPA can compute utilisation"),
                None => format!("{hold}, but there is no {resource} request: the HPA cannot compute utilisation"),
            });
            continue;
        }
        // Keep the current request: the HPA's arithmetic is built on it. Too few samples
        // give no replica advice either, and the reason says so.
        let reason = match &short {
            Some(short) => format!("{hold}; {short}"),
            None => hold.clone(),
        };
        if resource == "cpu" {
            rec.recommended.cpu_request = None;
            rec.recommended.cpu_limit = None;
            rec.cpu_reason = Some(reason);
        } else {
            rec.recommended.memory_request = None;
            rec.recommended.memory_limit = None;
            rec.memory_reason = Some(reason);
        }
        let samples = |u: &UsageSummary| {
            if resource == "cpu" {
                u.cpu_samples
            } else {
                u.memory_samples
            }
        };
        let (Some(request), Some(usage)) = (current, usage.filter(|u| samples(u) >= min_samples))
        else {
            continue;
        };
        let advice = replica_advice(
            workload, autoscaler, resource, target, request, advised, &usage, &hold,
        );
        rec.notes.push(advice.message.clone());
        rec.hpa = Some(advice);
    }
}

/// The replicas the load measured needs at the HPA's target with the current `request`, and
/// what a usage-based request (`advised`) would do to them.
#[allow(
    clippy::too_many_arguments,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn replica_advice(
    workload: &Workload,
    autoscaler: &super::model::Autoscaler,
    resource: &str,
    target: u32,
    request: f64,
    advised: Option<f64>,
    usage: &UsageSummary,
    hold: &str,
) -> HpaAdvice {
    let (mean, high) = if resource == "cpu" {
        (usage.cpu_mean, usage.cpu_percentile)
    } else {
        (usage.memory_peak, usage.memory_peak)
    };
    let capacity = request * f64::from(target) / 100.0;
    let replicas = f64::from(workload.replicas.max(1));
    let for_mean = ((replicas * mean / capacity).ceil() as u64).max(1);
    let for_peak = ((replicas * high / capacity).ceil() as u64).max(for_mean);
    let usage_request = advised.unwrap_or(high);
    let show = |v: f64| {
        if resource == "cpu" {
            format_cpu(v)
        } else {
            format_memory(v)
        }
    };
    let mut message = format!(
        "{hold}: the load measured needs {for_mean}-{for_peak} replicas at {} (HPA allows {}-{})",
        show(request),
        autoscaler.min_replicas,
        autoscaler.max_replicas
    );
    if usage_request > 0.0 && (usage_request - request).abs() / request > 0.1 {
        let ratio = request / usage_request;
        let _ = write!(
            message,
            "; a {} request (usage alone) would read {ratio:.1}x the utilisation and the HPA would run about {ratio:.1}x the replicas, for about the same total",
            show(usage_request)
        );
    }
    if u64::from(autoscaler.max_replicas) < for_peak {
        let _ = write!(message, "; raise maxReplicas to at least {for_peak}");
    } else if u64::from(autoscaler.min_replicas) > for_mean.max(2) {
        let _ = write!(message, "; minReplicas could be {}", for_mean.max(2));
    }
    HpaAdvice {
        name: autoscaler.name.clone(),
        resource: resource.to_owned(),
        target_percent: target,
        request,
        usage_request,
        replicas_for_mean: for_mean,
        replicas_for_peak: for_peak,
        min_replicas: autoscaler.min_replicas,
        max_replicas: autoscaler.max_replicas,
        message,
    }
}

/// Core-equivalents freed (negative) or added by a recommendation over all replicas.
fn impact(rec: &Recommendation) -> f64 {
    if rec.role == ContainerRole::Init {
        return 0.0;
    }
    let delta = |after: Option<f64>, before: Option<f64>| match (after, before) {
        (Some(a), Some(b)) => a - b,
        (Some(a), None) => a,
        _ => 0.0,
    };
    let cpu = delta(rec.recommended.cpu_request, rec.current.cpu_request) / 1000.0;
    let memory = delta(rec.recommended.memory_request, rec.current.memory_request) / (4.0 * GIB);
    (cpu + memory) * f64::from(rec.replicas)
}

/// A duration in the largest whole unit: `45s`, `10m`, `3h`, `14d`.
#[must_use]
pub fn span_text(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
