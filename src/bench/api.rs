//! `bench api`: an API server under a mix of verbs from N workers, with watch-event delivery
//! latency, judged against the Kubernetes API SLOs.
//!
//! A run creates a fresh namespace `zen-bench-<id>` labelled [`RUN_LABEL`]`=<id>`, fills it
//! with `resources` objects of the chosen kind (set-up, not measured), then lets `workers`
//! tasks pick verbs by weight until the duration or count is reached. Each worker owns a
//! share of the objects, so updates never race each other and every write is known: a get,
//! update, patch or delete finds one of the worker's objects present (or creates one first,
//! counted as a create), a create fills an absent one. Every attempted operation is counted
//! exactly once, as a success or as an error by HTTP status (`429`, `500`...) or by cause
//! (`timeout`, `connection`).
//!
//! With `watch`, one watcher follows the namespace from the end of set-up; the delivery
//! latency of a write is the time from its acknowledgement (the response) to the event's
//! arrival (0 when the event arrives first). Writes whose events never arrive are `missed`;
//! dropped watches resume from the last event seen and are counted.
//!
//! The namespace is deleted at the end whatever happened (success, failure, cancellation);
//! [`cleanup`] deletes what runs that could not finish left behind.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GetParams, ListParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    BenchError, Change, Environment, FORMAT, Latency, Progress, RUN_LABEL, Recorder, Stop, Verdict,
    Watcher, latency::format_ms,
};
use crate::cluster::{ClientStats, Cluster};
use crate::table::{Cell, Column, Table, Tabular, Tone};

/// The prefix of every benchmark namespace.
pub const NAMESPACE_PREFIX: &str = "zen-bench-";

/// An API verb the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// POST a new object.
    Create,
    /// GET one object.
    Get,
    /// LIST the namespace.
    List,
    /// PUT a changed object.
    Update,
    /// PATCH one field (JSON merge patch).
    Patch,
    /// DELETE one object.
    Delete,
    /// WATCH the namespace: the delivery latency of every write's event.
    Watch,
}

impl Verb {
    /// Every verb, in report order.
    pub const ALL: [Self; 7] = [
        Self::Create,
        Self::Get,
        Self::List,
        Self::Update,
        Self::Patch,
        Self::Delete,
        Self::Watch,
    ];

    /// The verb's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Get => "get",
            Self::List => "list",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::Watch => "watch",
        }
    }

    /// Whether it writes.
    #[must_use]
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Patch | Self::Delete
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|verb| verb.as_str() == text.trim())
            .ok_or_else(|| {
                format!(
                    "unknown operation {text:?}: expected one of create, get, list, update, patch, delete, watch"
                )
            })
    }
}

/// The weights workers pick verbs by when no mix is given: a read-heavy controller's
/// traffic, creates and deletes balanced so the object count stays level.
pub const DEFAULT_MIX: [(Verb, u32); 6] = [
    (Verb::Get, 50),
    (Verb::List, 5),
    (Verb::Update, 15),
    (Verb::Patch, 10),
    (Verb::Create, 10),
    (Verb::Delete, 10),
];

/// Parses `create,get,list`.
///
/// # Errors
/// An unknown or repeated verb, or an empty list.
pub fn parse_ops(text: &str) -> Result<Vec<Verb>, String> {
    let mut verbs = Vec::new();
    for part in text.split(',').filter(|part| !part.trim().is_empty()) {
        let verb: Verb = part.parse()?;
        if verbs.contains(&verb) {
            return Err(format!("{verb} is listed twice"));
        }
        verbs.push(verb);
    }
    if verbs.is_empty() {
        return Err("no operations given".into());
    }
    Ok(verbs)
}

/// Parses `get=60,list=10,update=20,create=10`.
///
/// # Errors
/// An unknown or repeated verb, a weight that is not a whole number, or all weights 0.
pub fn parse_mix(text: &str) -> Result<Vec<(Verb, u32)>, String> {
    let mut mix: Vec<(Verb, u32)> = Vec::new();
    for part in text.split(',').filter(|part| !part.trim().is_empty()) {
        let (verb, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not VERB=WEIGHT, e.g. get=60"))?;
        let verb: Verb = verb.parse()?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("the weight of {verb} must be a whole number, not {weight:?}"))?;
        if mix.iter().any(|(v, _)| *v == verb) {
            return Err(format!("{verb} is given twice"));
        }
        mix.push((verb, weight));
    }
    if mix.iter().all(|(_, weight)| *weight == 0) {
        return Err("the mix has no weight: give at least one verb a weight above 0".into());
    }
    Ok(mix)
}

/// The workers' weighted verbs and whether a watcher runs, from `--ops` and `--mix` (either
/// may be left out). Without a mix, the [`DEFAULT_MIX`] weights of the listed verbs; with
/// one, its verbs (each must be in `--ops` when that is given too). `watch` is never picked
/// by a worker: listing it runs the watcher (by default when the mix writes).
///
/// # Errors
/// A mix that names `watch`, or a verb `--ops` leaves out; nothing left to do; a watch with
/// no writes to watch.
pub fn operations(
    ops: Option<&[Verb]>,
    mix: Option<&[(Verb, u32)]>,
) -> Result<(Vec<(Verb, u32)>, bool), BenchError> {
    let watch = ops.is_none_or(|ops| ops.contains(&Verb::Watch));
    let weighted: Vec<(Verb, u32)> = if let Some(mix) = mix {
        if mix.iter().any(|(verb, _)| *verb == Verb::Watch) {
            return Err(BenchError::Options(
                "watch takes no weight in --mix: it is not an operation a worker picks; list it in --ops to run the watcher".into(),
            ));
        }
        if let Some(ops) = ops
            && let Some((verb, _)) = mix.iter().find(|(verb, _)| !ops.contains(verb))
        {
            return Err(BenchError::Options(format!(
                "--mix gives {verb} a weight but --ops leaves it out"
            )));
        }
        mix.iter()
            .copied()
            .filter(|(_, weight)| *weight > 0)
            .collect()
    } else {
        DEFAULT_MIX
            .into_iter()
            .filter(|(verb, _)| ops.is_none_or(|ops| ops.contains(verb)))
            .collect()
    };
    let writes = weighted.iter().any(|(verb, _)| verb.is_mutating());
    if watch && !writes && ops.is_none() {
        // The default watch has nothing to see in a read-only mix: left out.
        return Ok((weighted, false));
    }
    if watch && !writes {
        return Err(BenchError::Options(
            "watch needs writes to watch: add create, update, patch or delete, or leave watch out"
                .into(),
        ));
    }
    if weighted.is_empty() {
        return Err(BenchError::Options(
            "nothing for the workers to do: list at least one of create, get, list, update, patch, delete".into(),
        ));
    }
    Ok((weighted, watch))
}

/// How to run `bench api`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiOptions {
    /// Concurrent workers, each with its own share of the objects.
    pub workers: usize,
    /// When the measured phase ends.
    pub stop: Stop,
    /// Objects created before the measured phase.
    pub resources: usize,
    /// Verbs the workers pick, by weight.
    pub mix: Vec<(Verb, u32)>,
    /// Run a watcher and measure event delivery.
    pub watch: bool,
    /// `configmap`, `secret`, or a custom resource as `plural.group` (namespaced).
    pub kind: String,
    /// Bytes of payload in every object.
    pub object_size: usize,
    /// How long to wait for the namespace to be gone at the end.
    #[serde(with = "super::seconds")]
    pub cleanup_timeout: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            stop: Stop::Duration(Duration::from_secs(30)),
            resources: 100,
            mix: DEFAULT_MIX.to_vec(),
            watch: true,
            kind: "configmap".into(),
            object_size: 1024,
            cleanup_timeout: CLEANUP_TIMEOUT,
        }
    }
}

/// The largest payload: below the API server's 1 MiB object limit, with room for metadata.
pub const MAX_OBJECT_SIZE: usize = 900 * 1024;

impl ApiOptions {
    /// Checks the options make a benchmark.
    ///
    /// # Errors
    /// No workers or more than 1024, more than 100,000 objects, an empty mix, a zero
    /// duration or count, a payload above [`MAX_OBJECT_SIZE`].
    pub fn validate(&self) -> Result<(), BenchError> {
        let fail = |message: String| Err(BenchError::Options(message));
        if !(1..=1024).contains(&self.workers) {
            return fail(format!("--workers must be 1 to 1024, not {}", self.workers));
        }
        if self.resources > 100_000 {
            return fail(format!(
                "--resources must be at most 100000, not {}",
                self.resources
            ));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => return fail("--duration must be above 0".into()),
            Stop::Count(0) => return fail("--count must be above 0".into()),
            _ => {}
        }
        if self.object_size > MAX_OBJECT_SIZE {
            return fail(format!(
                "--object-size must be at most {MAX_OBJECT_SIZE} bytes (the API server refuses objects over 1 MiB), not {}",
                self.object_size
            ));
        }
        if self.mix.iter().all(|(_, weight)| *weight == 0)
            || self.mix.iter().any(|(verb, _)| *verb == Verb::Watch)
        {
            return fail("the mix needs a weight above 0 on create, get, list, update, patch or delete, and none on watch".into());
        }
        Ok(())
    }
}

/// One verb's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerbRow {
    /// The verb.
    pub verb: Verb,
    /// Operations attempted (for watch: acknowledged writes the watcher was to see).
    pub count: u64,
    /// Of which succeeded (for watch: events delivered).
    pub succeeded: u64,
    /// Of which failed (for watch: events missed).
    pub errors: u64,
    /// Succeeded / count, 0 to 1.
    pub success_ratio: f64,
    /// Operations finished per second of the measured phase.
    pub per_second: f64,
    /// Latency of every attempt, failed ones included (for watch: acknowledgement to event).
    pub latency: Latency,
    /// Failures by HTTP status (`429`, `500`) or cause (`timeout`, `connection`, `missed`).
    pub errors_by_status: BTreeMap<String, u64>,
}

/// What the watcher saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchStats {
    /// Events matched to an acknowledged write.
    pub delivered: u64,
    /// Acknowledged writes whose event never arrived.
    pub missed: u64,
    /// Times the watch ended (dropped, or closed by the server) and was resumed.
    pub restarts: u64,
    /// Times the server said the resume point was too old (410 Gone).
    pub expired: u64,
}

/// The report of `bench api`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// The run's id, the value of [`RUN_LABEL`].
    pub run_id: String,
    /// The namespace the objects lived in.
    pub namespace: String,
    /// Whether the run was interrupted before its end.
    pub interrupted: bool,
    /// Seconds creating the objects (not measured).
    pub setup_seconds: f64,
    /// Seconds of the measured phase.
    pub duration_seconds: f64,
    /// Seconds deleting the namespace.
    pub cleanup_seconds: f64,
    /// Whether the namespace was seen gone.
    pub cleaned_up: bool,
    /// Operations attempted in all (watch events not included).
    pub operations: u64,
    /// Of which failed.
    pub errors: u64,
    /// Operations finished per second.
    pub per_second: f64,
    /// One row per verb.
    pub rows: Vec<VerbRow>,
    /// The watcher's counts, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchStats>,
    /// What the client's transport did (retries, throttling).
    pub client: ClientStats,
    /// Judgements against the Kubernetes API SLOs.
    pub verdicts: Vec<Verdict>,
    /// Changes against a baseline, when one was given.
    #[serde(default)]
    pub changes: Vec<Change>,
}

impl ApiReport {
    /// Compares with an earlier run: p50, p99 and rate per verb (see [`super::compare`]).
    pub fn compare_with(&mut self, baseline: &Self, threshold_percent: f64) {
        let figures = |report: &Self| -> Vec<super::report::Figures> {
            report
                .rows
                .iter()
                .map(|row| (row.verb.to_string(), row.latency, row.per_second))
                .collect()
        };
        self.changes = super::compare(&figures(baseline), &figures(self), threshold_percent);
    }

    /// The row of `verb`, if it ran.
    #[must_use]
    pub fn row(&self, verb: Verb) -> Option<&VerbRow> {
        self.rows.iter().find(|row| row.verb == verb)
    }
}

impl Tabular for ApiReport {
    fn to_table(&self) -> Table {
        latency_table(
            "VERB",
            self.rows.iter().map(|row| {
                (
                    row.verb.to_string(),
                    row.count,
                    row.per_second,
                    row.success_ratio,
                    &row.latency,
                    &row.errors_by_status,
                )
            }),
        )
    }
}

/// The table of a latency report: one row per verb (or target), count, rate, success,
/// percentiles, errors.
pub(crate) fn latency_table<'a>(
    first: &str,
    rows: impl Iterator<
        Item = (
            String,
            u64,
            f64,
            f64,
            &'a Latency,
            &'a BTreeMap<String, u64>,
        ),
    >,
) -> Table {
    let mut table = Table::new(vec![
        Column::new(first),
        Column::new("COUNT").right(),
        Column::new("RATE/S").right(),
        Column::new("SUCCESS").right(),
        Column::wide("MIN").right(),
        Column::wide("MEAN").right(),
        Column::new("P50").right(),
        Column::wide("P90").right(),
        Column::new("P95").right(),
        Column::new("P99").right(),
        Column::wide("P99.9").right(),
        Column::new("MAX").right(),
        Column::new("ERRORS"),
    ]);
    for (name, count, rate, success, l, errors) in rows {
        let errors = errors
            .iter()
            .map(|(status, n)| format!("{status}:{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        table.push_row(vec![
            name.into(),
            count.to_string().into(),
            format!("{rate:.1}").into(),
            Cell::toned(
                format!("{:.2}%", success * 100.0),
                if success >= 1.0 {
                    Tone::Good
                } else {
                    Tone::Warning
                },
            ),
            format_ms(l.min_ms).into(),
            format_ms(l.mean_ms).into(),
            format_ms(l.p50_ms).into(),
            format_ms(l.p90_ms).into(),
            format_ms(l.p95_ms).into(),
            format_ms(l.p99_ms).into(),
            format_ms(l.p999_ms).into(),
            format_ms(l.max_ms).into(),
            if errors.is_empty() {
                Cell::toned("-", Tone::Muted)
            } else {
                Cell::toned(errors, Tone::Bad)
            },
        ]);
    }
    table
}

/// The Kubernetes API call latency SLOs (sig-scalability): p99 over the run.
fn slo(verb: Verb) -> Option<(f64, &'static str)> {
    match verb {
        Verb::Create | Verb::Update | Verb::Patch | Verb::Delete => {
            Some((1000.0, "Kubernetes API SLO: mutating calls, p99 <= 1s"))
        }
        Verb::Get => Some((
            1000.0,
            "Kubernetes API SLO: read-only calls, resource scope, p99 <= 1s",
        )),
        Verb::List => Some((
            5000.0,
            "Kubernetes API SLO: read-only calls, namespace scope, p99 <= 5s",
        )),
        Verb::Watch => None,
    }
}

/// The verdicts of a report's rows.
fn verdicts(rows: &[VerbRow], watch: Option<WatchStats>) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = rows
        .iter()
        .filter(|row| row.latency.count > 0)
        .filter_map(|row| {
            let (limit, source) = slo(row.verb)?;
            Some(Verdict::at_most(
                &format!("{} p99", row.verb),
                row.latency.p99_ms,
                limit,
                "ms",
                source,
            ))
        })
        .collect();
    if let Some(watch) = watch {
        #[allow(clippy::cast_precision_loss)] // a count
        verdicts.push(Verdict::at_most(
            "watch events missed",
            watch.missed as f64,
            0.0,
            "",
            "every acknowledged write reaches a watcher",
        ));
    }
    verdicts
}

/// How a kind is written: its API resource and the body of an object.
#[derive(Debug, Clone)]
struct Kind {
    resource: ApiResource,
    namespace: String,
    path: String,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    ConfigMap,
    Secret,
    Custom,
}

impl Kind {
    async fn resolve(cluster: &Cluster, kind: &str, namespace: &str) -> Result<Self, BenchError> {
        let lower = kind.trim().to_ascii_lowercase();
        let (resource, shape) = match lower.as_str() {
            "configmap" | "configmaps" | "cm" => (
                ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
                Shape::ConfigMap,
            ),
            "secret" | "secrets" => (
                ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
                Shape::Secret,
            ),
            _ => {
                let (plural, group) = lower.split_once('.').ok_or_else(|| {
                    BenchError::Options(format!(
                        "--kind {kind}: expected configmap, secret, or a custom resource as PLURAL.GROUP (widgets.example.com)"
                    ))
                })?;
                let found = kube::discovery::group(&cluster.client(), group)
                    .await
                    .map_err(|e| BenchError::api(format!("discovery of API group {group}"), &e))?;
                let (resource, caps) = found
                    .recommended_resources()
                    .into_iter()
                    .find(|(resource, _)| resource.plural == plural)
                    .ok_or_else(|| {
                        BenchError::Options(format!(
                            "--kind {kind}: the server's group {group} has no resource {plural}"
                        ))
                    })?;
                if caps.scope != kube::discovery::Scope::Namespaced {
                    return Err(BenchError::Options(format!(
                        "--kind {kind}: a cluster-scoped kind; bench api needs a namespaced one, so that everything it creates is in its namespace"
                    )));
                }
                (resource, Shape::Custom)
            }
        };
        let path = if resource.group.is_empty() {
            format!(
                "/api/{}/namespaces/{namespace}/{}",
                resource.version, resource.plural
            )
        } else {
            format!(
                "/apis/{}/{}/namespaces/{namespace}/{}",
                resource.group, resource.version, resource.plural
            )
        };
        Ok(Self {
            resource,
            namespace: namespace.to_owned(),
            path,
            shape,
        })
    }

    fn body(&self, name: &str, run: &str, payload: &str, seq: u64, rv: Option<&str>) -> Vec<u8> {
        let mut metadata = json!({"name": name, "labels": {RUN_LABEL: run}});
        if let Some(rv) = rv {
            metadata["resourceVersion"] = rv.into();
        }
        let object = match self.shape {
            Shape::ConfigMap => json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                "data": {"payload": payload, "seq": seq.to_string()},
            }),
            Shape::Secret => json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
                "data": {"payload": base64(payload), "seq": base64(&seq.to_string())},
            }),
            Shape::Custom => json!({
                "apiVersion": self.resource.api_version, "kind": self.resource.kind,
                "metadata": metadata, "spec": {"payload": payload, "seq": seq},
            }),
        };
        serde_json::to_vec(&object).unwrap_or_default()
    }

    fn patch(&self, seq: u64) -> serde_json::Value {
        match self.shape {
            Shape::ConfigMap => json!({"data": {"seq": seq.to_string()}}),
            Shape::Secret => json!({"data": {"seq": base64(&seq.to_string())}}),
            Shape::Custom => json!({"spec": {"seq": seq}}),
        }
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A payload of `size` bytes of letters and digits.
fn payload(size: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = fastrand::Rng::with_seed(7);
    (0..size)
        .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
        .collect()
}

/// The resourceVersion of a response, the only field the benchmark reads.
fn resource_version(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Object {
        metadata: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    serde_json::from_str::<Object>(text)
        .ok()?
        .metadata?
        .resource_version
}

/// The uid of what a DELETE removed: the `Status` answer's `details.uid`, or the object's
/// own (servers answer with the object while finalizers hold it). Deleted objects are
/// matched to their events by uid, since a name comes back when the object is created again.
fn deleted_uid(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        metadata: Option<Uid>,
        details: Option<Uid>,
    }
    #[derive(Deserialize)]
    struct Uid {
        uid: Option<String>,
    }
    let answer: Answer = serde_json::from_str(text).ok()?;
    answer
        .details
        .and_then(|d| d.uid)
        .or_else(|| answer.metadata.and_then(|m| m.uid))
}

/// What a request cut short by Ctrl-C counts as.
const INTERRUPTED: &str = "interrupted";

/// A failed operation's name in the report: its HTTP status, or its cause.
fn error_key(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code > 0 => status.code.to_string(),
        kube::Error::Service(cause) if cause.to_string() == INTERRUPTED => INTERRUPTED.into(),
        other => {
            let text = other.to_string();
            if text.contains("no response from the API server within") {
                "timeout".into()
            } else {
                "connection".into()
            }
        }
    }
}

pub(crate) fn is_code(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Runs a set-up or cleanup request until it answers, riding out throttling and server
/// errors (5 attempts, 200 ms doubling): set-up and cleanup are not measured, and must not
/// fail on what the measured phase is there to count.
pub(crate) async fn patiently<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut wait = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if attempt < 5 && transient(&error) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// The objects one worker owns.
struct Slots {
    worker: usize,
    names: Vec<String>,
    versions: Vec<Option<String>>,
    present: Vec<usize>,
    absent: Vec<usize>,
    extra: usize,
}

impl Slots {
    fn present_one(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        (!self.present.is_empty()).then(|| self.present[rng.usize(..self.present.len())])
    }

    fn mark_present(&mut self, slot: usize, version: Option<String>) {
        self.absent.retain(|&s| s != slot);
        if !self.present.contains(&slot) {
            self.present.push(slot);
        }
        self.versions[slot] = version;
    }

    fn mark_absent(&mut self, slot: usize) {
        self.present.retain(|&s| s != slot);
        if !self.absent.contains(&slot) {
            self.absent.push(slot);
        }
        self.versions[slot] = None;
    }

    fn take_absent(&mut self) -> usize {
        if let Some(slot) = self.absent.pop() {
            return slot;
        }
        self.extra += 1;
        self.names
            .push(format!("obj-w{}-{}", self.worker, self.extra));
        self.versions.push(None);
        self.names.len() - 1
    }
}

/// One verb's tally in one worker.
#[derive(Default, Clone)]
struct Tally {
    latency: Recorder,
    succeeded: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        self.succeeded += other.succeeded;
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
    }

    fn attempts(&self) -> u64 {
        self.succeeded + self.errors.values().sum::<u64>()
    }
}

/// A write waiting for its event, or an event waiting for its write's acknowledgement.
enum Mark {
    Acked(Instant),
    Seen,
}

#[derive(Default)]
struct Delivery {
    pending: HashMap<String, Mark>,
    latency: Recorder,
    delivered: u64,
}

impl Delivery {
    /// Acknowledged writes whose events have not arrived.
    fn waiting(&self) -> u64 {
        self.pending
            .values()
            .filter(|mark| matches!(mark, Mark::Acked(_)))
            .count() as u64
    }
}

/// What workers and the watcher share.
struct Shared {
    client: kube::Client,
    kind: Kind,
    run: String,
    payload: String,
    stop: Stop,
    started: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    watch: bool,
    delivery: Mutex<Delivery>,
    cancel: CancellationToken,
    begun: Instant,
}

impl Shared {
    fn delivery(&self) -> std::sync::MutexGuard<'_, Delivery> {
        self.delivery.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write was acknowledged: its event is expected under `key`.
    fn acked(&self, key: String) {
        if !self.watch {
            return;
        }
        let mut delivery = self.delivery();
        if let Some(Mark::Seen) = delivery.pending.get(&key) {
            delivery.pending.remove(&key);
            delivery.latency.record_us(0);
            delivery.delivered += 1;
        } else {
            delivery.pending.insert(key, Mark::Acked(Instant::now()));
        }
    }

    /// An event arrived under `key`.
    fn seen(&self, key: String) {
        let arrived = Instant::now();
        let mut delivery = self.delivery();
        match delivery.pending.remove(&key) {
            Some(Mark::Acked(at)) => {
                delivery
                    .latency
                    .record(arrived.saturating_duration_since(at));
                delivery.delivered += 1;
            }
            _ => {
                delivery.pending.insert(key, Mark::Seen);
            }
        }
    }

    fn waiting(&self) -> u64 {
        self.delivery().waiting()
    }

    fn request(&self) -> kube::core::Request {
        kube::core::Request::new(self.kind.path.clone())
    }

    /// Sends a measured request; Ctrl-C ends the wait, and the request counts as an error
    /// (`interrupted`), so that every attempt is still reported once.
    async fn send(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<String, kube::Error> {
        tokio::select! {
            answer = send(&self.client, request) => answer,
            () = self.cancel.cancelled() => Err(kube::Error::Service(INTERRUPTED.into())),
        }
    }

    /// After a write of `slot`: its new resourceVersion is expected on the watch (unless the
    /// write changed nothing); a conflict forgets the version held, a 404 the object.
    fn written(&self, slots: &mut Slots, slot: usize, result: &Result<String, kube::Error>) {
        match result {
            Ok(text) => {
                let version = resource_version(text);
                if let Some(v) = &version
                    && slots.versions[slot].as_ref() != Some(v)
                {
                    self.acked(v.clone());
                }
                slots.versions[slot] = version;
            }
            Err(error) if is_code(error, 409) => slots.versions[slot] = None,
            Err(error) if is_code(error, 404) => slots.mark_absent(slot),
            Err(_) => {}
        }
    }
}

async fn send(
    client: &kube::Client,
    request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<String, kube::Error> {
    let request = request.map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await
}

/// One worker: picks verbs by weight and runs them on its own objects until the run ends.
#[allow(clippy::too_many_lines)] // one arm per verb, side by side
async fn work(shared: Arc<Shared>, mut slots: Slots, mix: Vec<(Verb, u32)>) -> [Tally; 7] {
    let mut tallies: [Tally; 7] = Default::default();
    let total: u32 = mix.iter().map(|(_, weight)| weight).sum();
    let mut rng = fastrand::Rng::new();
    let mut seq: u64 = 0;
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        let number = shared.started.fetch_add(1, Ordering::Relaxed);
        if !shared.stop.allows(number, shared.begun.elapsed()) {
            break;
        }
        let mut pick = rng.u32(..total.max(1));
        let mut verb = mix[0].0;
        for (candidate, weight) in &mix {
            if pick < *weight {
                verb = *candidate;
                break;
            }
            pick -= weight;
        }
        seq += 1;
        let target = if verb == Verb::Create || verb == Verb::List {
            None
        } else {
            slots.present_one(&mut rng)
        };
        if target.is_none() && verb != Verb::List {
            // Nothing of ours to read or change: make one, counted as the create it is.
            verb = Verb::Create;
        }
        let sent = Instant::now();
        let result = match verb {
            Verb::Create => {
                let slot = slots.take_absent();
                let body =
                    shared
                        .kind
                        .body(&slots.names[slot], &shared.run, &shared.payload, seq, None);
                let result = shared
                    .send(shared.request().create(&PostParams::default(), body))
                    .await;
                match &result {
                    Ok(text) => {
                        let version = resource_version(text);
                        if let Some(v) = &version {
                            shared.acked(v.clone());
                        }
                        slots.mark_present(slot, version);
                    }
                    // It is there after all (an earlier create answered late).
                    Err(error) if is_code(error, 409) => slots.mark_present(slot, None),
                    Err(_) => slots.mark_absent(slot),
                }
                result.map(drop)
            }
            Verb::List => shared
                .send(shared.request().list(&ListParams::default()))
                .await
                .map(drop),
            Verb::Get => {
                let slot = target.unwrap_or_default();
                let result = shared
                    .send(
                        shared
                            .request()
                            .get(&slots.names[slot], &GetParams::default()),
                    )
                    .await;
                if result.as_ref().is_err_and(|e| is_code(e, 404)) {
                    slots.mark_absent(slot);
                }
                result.map(drop)
            }
            Verb::Update => {
                let slot = target.unwrap_or_default();
                let body = shared.kind.body(
                    &slots.names[slot],
                    &shared.run,
                    &shared.payload,
                    seq,
                    slots.versions[slot].as_deref(),
                );
                let result = shared
                    .send(shared.request().replace(
                        &slots.names[slot],
                        &PostParams::default(),
                        body,
                    ))
                    .await;
                shared.written(&mut slots, slot, &result);
                result.map(drop)
            }
            Verb::Patch => {
                let slot = target.unwrap_or_default();
                let patch = Patch::Merge(shared.kind.patch(seq));
                let result = shared
                    .send(shared.request().patch(
                        &slots.names[slot],
                        &PatchParams::default(),
                        &patch,
                    ))
                    .await;
                shared.written(&mut slots, slot, &result);
                result.map(drop)
            }
            Verb::Delete | Verb::Watch => {
                let slot = target.unwrap_or_default();
                let name = slots.names[slot].clone();
                let result = shared
                    .send(shared.request().delete(&name, &DeleteParams::default()))
                    .await;
                match &result {
                    Ok(text) => {
                        if let Some(uid) = deleted_uid(text) {
                            shared.acked(format!("deleted/{uid}"));
                        }
                        slots.mark_absent(slot);
                    }
                    Err(error) if is_code(error, 404) => slots.mark_absent(slot),
                    Err(_) => {}
                }
                result.map(drop)
            }
        };
        let tally = &mut tallies[verb.index()];
        tally.latency.record(sent.elapsed());
        match result {
            Ok(()) => tally.succeeded += 1,
            Err(error) => {
                *tally.errors.entry(error_key(&error)).or_default() += 1;
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    tallies
}

/// The watcher: follows the namespace from `version`, matching events to writes, resuming
/// after drops, until `stop`.
async fn watch(
    shared: Arc<Shared>,
    mut version: String,
    stop: CancellationToken,
    stats: Arc<Mutex<WatchStats>>,
) {
    let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(
        shared.client.clone(),
        &shared.kind.namespace,
        &shared.kind.resource,
    );
    let bump =
        |f: fn(&mut WatchStats)| f(&mut stats.lock().unwrap_or_else(PoisonError::into_inner));
    let params = WatchParams::default().timeout(290);
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            stream = api.watch(&params, &version) => stream,
        };
        let stream = match stream {
            Ok(stream) => Ok(stream),
            Err(kube::Error::Api(gone)) if gone.code == 410 => {
                bump(|s| s.expired += 1);
                version = resume_from_now(&api).await.unwrap_or(version);
                continue;
            }
            Err(error) => Err(error),
        };
        let Ok(stream) = stream else {
            bump(|s| s.restarts += 1);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        };
        let mut stream = std::pin::pin!(stream.into_stream());
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object))) => {
                    if let Some(v) = object.metadata.resource_version {
                        shared.seen(v.clone());
                        version = v;
                    }
                }
                Some(Ok(WatchEvent::Deleted(object))) => {
                    shared.seen(format!(
                        "deleted/{}",
                        object.metadata.uid.unwrap_or_default()
                    ));
                    if let Some(v) = object.metadata.resource_version {
                        version = v;
                    }
                }
                Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                    version = bookmark.metadata.resource_version;
                }
                Some(Ok(WatchEvent::Error(gone))) if gone.code == 410 => {
                    bump(|s| s.expired += 1);
                    version = resume_from_now(&api).await.unwrap_or(version);
                    break;
                }
                Some(Ok(WatchEvent::Error(_)) | Err(_)) | None => {
                    bump(|s| s.restarts += 1);
                    break;
                }
            }
        }
    }
}

/// The version to resume a watch from after a 410: now. What happened in between is
/// missed, and counted so.
async fn resume_from_now(api: &kube::Api<DynamicObject>) -> Option<String> {
    let now = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .ok()?;
    Some(now.metadata.resource_version.unwrap_or_default())
}

/// Runs `bench api` against `cluster`: set-up, the measured phase, cleanup. Measured
/// operations go through the cluster's client as it is configured (its rate limit and retry
/// policy: use [`crate::cluster::RetryPolicy::none`] to see every failure); set-up and
/// cleanup ride out throttling on their own. Cancelling `cancel` ends the measured phase
/// early (the report says `interrupted`); cleanup still runs.
///
/// # Errors
/// Bad options, a kind the server does not serve, or a namespace or set-up that fails; the
/// namespace is deleted before the error returns.
pub async fn run(
    cluster: &Cluster,
    options: &ApiOptions,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<ApiReport, BenchError> {
    options.validate()?;
    let mut environment = Environment::start(options);
    environment.server(cluster).await;
    let run = super::run_id();
    let kind = Kind::resolve(cluster, &options.kind, &namespace_name(&run)).await?;
    let done = in_namespace(cluster, &run, options.cleanup_timeout, watcher, |_| {
        measure(cluster, options, &kind, &run, watcher, cancel)
    })
    .await?;
    environment.end();
    let mut report = done.value;
    report.environment = environment;
    report.run_id = run;
    report.verdicts.push(cleanup_verdict(done.cleaned_up));
    report.namespace = done.namespace;
    report.cleanup_seconds = done.cleanup_seconds;
    report.cleaned_up = done.cleaned_up;
    Ok(report)
}

/// How long a benchmark waits for its namespace to go (`--cleanup-timeout`'s default).
pub(crate) const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a benchmark did in a namespace of its own, and whether the namespace went afterwards.
pub(crate) struct InNamespace<T> {
    pub value: T,
    pub namespace: String,
    pub cleaned_up: bool,
    pub cleanup_seconds: f64,
}

/// Runs `work` in a fresh namespace labelled with `run`, then deletes the namespace and waits
/// up to `timeout` for it to go, whatever `work` returned (cancelled work included). An error
/// of `work` says when the namespace could not be deleted, so nothing is left unknown.
pub(crate) async fn in_namespace<T, F, Fut>(
    cluster: &Cluster,
    run: &str,
    timeout: Duration,
    watcher: &dyn Watcher,
    work: F,
) -> Result<InNamespace<T>, BenchError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<T, BenchError>>,
{
    watcher.phase(&format!("creating namespace {}", namespace_name(run)));
    let namespace = create_namespace(cluster, run).await?;
    let measured = work(namespace.clone()).await;
    watcher.phase(&format!("deleting namespace {namespace}"));
    let started = Instant::now();
    let cleaned_up = delete_namespace(cluster, &namespace, timeout).await;
    let cleanup_seconds = started.elapsed().as_secs_f64();
    match measured {
        Ok(value) => Ok(InNamespace {
            value,
            namespace,
            cleaned_up,
            cleanup_seconds,
        }),
        Err(error) if cleaned_up => Err(error),
        Err(error) => Err(error.left_behind(&namespace)),
    }
}

/// The verdict every benchmark that made objects in a cluster ends with: nothing left behind.
pub(crate) fn cleanup_verdict(cleaned_up: bool) -> Verdict {
    Verdict::at_most(
        "namespaces left behind",
        if cleaned_up { 0.0 } else { 1.0 },
        0.0,
        "",
        "everything a benchmark creates is deleted (`kubectl zen bench cleanup` finds leftovers)",
    )
}

/// Set-up and the measured phase.
#[allow(clippy::too_many_lines)] // the phases in order
async fn measure(
    cluster: &Cluster,
    options: &ApiOptions,
    kind: &Kind,
    run: &str,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<ApiReport, BenchError> {
    let client = cluster.client();
    let payload = payload(options.object_size);
    let workers = options.workers;
    let mut slots: Vec<Slots> = (0..workers)
        .map(|worker| Slots {
            worker,
            names: Vec::new(),
            versions: Vec::new(),
            present: Vec::new(),
            absent: Vec::new(),
            extra: 0,
        })
        .collect();
    watcher.phase(&format!(
        "creating {} {} of {} bytes",
        options.resources, kind.resource.plural, options.object_size
    ));
    let setup_started = Instant::now();
    let request = kube::core::Request::new(kind.path.clone());
    // The first failure ends set-up (after the retries of `patiently`); a 409 means an
    // earlier attempt of this create was made after all (the names are the run's own).
    let created: Vec<(usize, Option<String>)> = futures::stream::iter(0..options.resources)
        .map(|index| {
            let (client, request, payload) = (&client, &request, &payload);
            async move {
                if cancel.is_cancelled() {
                    return Ok((index, None));
                }
                let name = format!("obj-{index}");
                match patiently(|| {
                    let body = kind.body(&name, run, payload, 0, None);
                    send(client, request.create(&PostParams::default(), body))
                })
                .await
                {
                    Ok(text) => Ok((index, resource_version(&text))),
                    Err(error) if is_code(&error, 409) => Ok((index, None)),
                    Err(error) => Err(error),
                }
            }
        })
        .buffer_unordered(workers.clamp(1, 32))
        .try_collect()
        .await
        .map_err(|e| {
            BenchError::api(
                format!("cannot create the benchmark's {}", kind.resource.plural),
                &e,
            )
        })?;
    for (index, version) in created {
        let owner = &mut slots[index % workers];
        owner.names.push(format!("obj-{index}"));
        owner.versions.push(version);
        owner.present.push(owner.names.len() - 1);
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let watch_stats = Arc::new(Mutex::new(WatchStats::default()));
    let stop_watch = CancellationToken::new();
    let before = cluster.stats();
    let begun = Instant::now();
    let shared = Arc::new(Shared {
        client: client.clone(),
        kind: kind.clone(),
        run: run.to_owned(),
        payload,
        stop: options.stop,
        started: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        watch: options.watch,
        delivery: Mutex::new(Delivery::default()),
        cancel: cancel.child_token(),
        begun,
    });
    let watcher_task = if options.watch && !cancel.is_cancelled() {
        let api: kube::Api<DynamicObject> =
            kube::Api::namespaced_with(client.clone(), &kind.namespace, &kind.resource);
        let one = ListParams::default().limit(1);
        let list = patiently(|| api.list_metadata(&one))
            .await
            .map_err(|e| BenchError::api("cannot start the watch", &e))?;
        let version = list.metadata.resource_version.unwrap_or_default();
        Some(tokio::spawn(watch(
            Arc::clone(&shared),
            version,
            stop_watch.clone(),
            Arc::clone(&watch_stats),
        )))
    } else {
        None
    };
    watcher.phase("measuring");
    let mut tasks = tokio::task::JoinSet::new();
    for worker_slots in slots {
        tasks.spawn(work(Arc::clone(&shared), worker_slots, options.mix.clone()));
    }
    let mut tallies: [Tally; 7] = Default::default();
    let report_progress = || {
        let (done, elapsed) = (shared.done.load(Ordering::Relaxed), begun.elapsed());
        watcher.progress(&Progress {
            elapsed,
            done,
            errors: shared.errors.load(Ordering::Relaxed),
            fraction: options.stop.fraction(done, elapsed),
        });
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(worker)) => {
                    for (total, part) in tallies.iter_mut().zip(&worker) {
                        total.merge(part);
                    }
                }
                Some(Err(error)) => {
                    // Its counts are lost: say so rather than report a run that adds up wrong.
                    tasks.abort_all();
                    return Err(BenchError::Target(format!("a worker stopped: {error}")));
                }
                None => break,
            },
            _ = ticker.tick() => report_progress(),
        }
    }
    report_progress();
    let duration = begun.elapsed();
    // The measured phase's requests (the watcher's included), not set-up's.
    let client_stats = cluster.stats().since(&before);
    let interrupted = cancel.is_cancelled();
    if let Some(task) = watcher_task {
        // Events of the last writes are still on their way: give them a moment.
        watcher.phase("waiting for the last watch events");
        let grace = Instant::now();
        while shared.waiting() > 0
            && grace.elapsed() < Duration::from_secs(5)
            && !cancel.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_watch.cancel();
        let _ = task.await;
    }
    let seconds = duration.as_secs_f64().max(1e-9);
    let mut rows: Vec<VerbRow> = Verb::ALL
        .into_iter()
        .filter(|verb| *verb != Verb::Watch)
        .filter(|verb| {
            options.mix.iter().any(|(v, _)| v == verb) || tallies[verb.index()].attempts() > 0
        })
        .map(|verb| {
            let tally = &tallies[verb.index()];
            let count = tally.attempts();
            let errors = count - tally.succeeded;
            #[allow(clippy::cast_precision_loss)] // counts
            VerbRow {
                verb,
                count,
                succeeded: tally.succeeded,
                errors,
                success_ratio: if count == 0 {
                    1.0
                } else {
                    tally.succeeded as f64 / count as f64
                },
                per_second: count as f64 / seconds,
                latency: tally.latency.summary(),
                errors_by_status: tally.errors.clone(),
            }
        })
        .collect();
    let watch = options.watch.then(|| {
        let delivery = shared.delivery();
        let mut stats = *watch_stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.delivered = delivery.delivered;
        stats.missed = delivery.waiting();
        let count = stats.delivered + stats.missed;
        #[allow(clippy::cast_precision_loss)] // counts
        rows.push(VerbRow {
            verb: Verb::Watch,
            count,
            succeeded: stats.delivered,
            errors: stats.missed,
            success_ratio: if count == 0 {
                1.0
            } else {
                stats.delivered as f64 / count as f64
            },
            per_second: stats.delivered as f64 / seconds,
            latency: delivery.latency.summary(),
            errors_by_status: if stats.missed > 0 {
                BTreeMap::from([("missed".to_owned(), stats.missed)])
            } else {
                BTreeMap::new()
            },
        });
        stats
    });
    let operations: u64 = rows
        .iter()
        .filter(|r| r.verb != Verb::Watch)
        .map(|r| r.count)
        .sum();
    let errors: u64 = rows
        .iter()
        .filter(|r| r.verb != Verb::Watch)
        .map(|r| r.errors)
        .sum();
    let verdicts = verdicts(&rows, watch.filter(|_| !interrupted));
    #[allow(clippy::cast_precision_loss)] // counts
    Ok(ApiReport {
        format: FORMAT.into(),
        environment: Environment::default(),
        run_id: String::new(),
        namespace: String::new(),
        interrupted,
        setup_seconds,
        duration_seconds: duration.as_secs_f64(),
        cleanup_seconds: 0.0,
        cleaned_up: false,
        operations,
        errors,
        per_second: operations as f64 / seconds,
        rows,
        watch,
        client: client_stats,
        verdicts,
        changes: Vec::new(),
    })
}

/// The namespace of run `run`.
pub(crate) fn namespace_name(run: &str) -> String {
    format!("{NAMESPACE_PREFIX}{run}")
}

/// Creates the namespace of run `run`, labelled so that [`cleanup`] finds it; returns its
/// name.
pub(crate) async fn create_namespace(cluster: &Cluster, run: &str) -> Result<String, BenchError> {
    let name = namespace_name(run);
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client());
    let object: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            RUN_LABEL: run, "app.kubernetes.io/managed-by": "kubectl-zen",
        }},
    }))
    .unwrap_or_default();
    let params = PostParams::default();
    match patiently(|| namespaces.create(&params, &object)).await {
        Ok(_) => Ok(name),
        // An earlier attempt was made after all: ours if it carries this run's label.
        Err(error) if is_code(&error, 409) => {
            let existing = namespaces.get_opt(&name).await.ok().flatten();
            let ours = existing
                .and_then(|ns| ns.metadata.labels)
                .is_some_and(|labels| labels.get(RUN_LABEL).map(String::as_str) == Some(run));
            if ours {
                Ok(name)
            } else {
                Err(BenchError::api(
                    format!("cannot create namespace {name}"),
                    &error,
                ))
            }
        }
        Err(error) => Err(BenchError::api(
            format!("cannot create namespace {name}"),
            &error,
        )),
    }
}

/// Deletes a benchmark namespace and waits, up to `timeout`, until it is gone.
pub(crate) async fn delete_namespace(cluster: &Cluster, name: &str, timeout: Duration) -> bool {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client());
    let params = DeleteParams::background();
    let deleted = patiently(|| namespaces.delete(name, &params)).await;
    match deleted {
        Ok(_) => {}
        Err(error) if is_code(&error, 404) => return true,
        Err(_) => return false,
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match namespaces.get_opt(name).await {
            Ok(None) => return true,
            Ok(Some(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    false
}

/// A namespace a benchmark left behind, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    /// The namespace.
    pub namespace: String,
    /// The run that made it.
    pub run_id: String,
    /// When it was created.
    pub created: String,
    /// `deleted`, `terminating` (deletion asked, not finished in time), `kept` (dry run),
    /// `kept: younger than --older-than`, `kept: creation time unknown` (with `--older-than`).
    pub outcome: String,
}

impl Tabular for Vec<Leftover> {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("NAMESPACE"),
            Column::new("RUN"),
            Column::new("CREATED"),
            Column::new("OUTCOME"),
        ]);
        for leftover in self {
            let tone = match leftover.outcome.as_str() {
                "deleted" => Tone::Good,
                "terminating" => Tone::Warning,
                kept if kept.starts_with("kept") => Tone::Warning,
                _ => Tone::Bad,
            };
            table.push_row(vec![
                leftover.namespace.clone().into(),
                leftover.run_id.clone().into(),
                leftover.created.clone().into(),
                Cell::toned(leftover.outcome.clone(), tone),
            ]);
        }
        table
    }
}

/// Checks that `run` can be a run id (the value of [`RUN_LABEL`]).
///
/// # Errors
/// Text that is not a label value, or is empty.
pub fn check_run_id(run: &str) -> Result<(), BenchError> {
    if !run.is_empty() && crate::cluster::is_label_value(run) {
        Ok(())
    } else {
        Err(BenchError::Options(format!(
            "{run:?} is not a run id (letters, digits, '-', '_', '.', at most 63)"
        )))
    }
}

/// Finds the namespaces earlier runs left (by [`RUN_LABEL`], of run `run` only when given)
/// and, unless `dry_run`, deletes those older than `older_than` (a run still going on a
/// shared cluster is younger), waiting up to `timeout` for each to go.
///
/// # Errors
/// A run id that is not a label value, or namespaces that cannot be listed.
pub async fn cleanup(
    cluster: &Cluster,
    run: Option<&str>,
    dry_run: bool,
    older_than: Duration,
    timeout: Duration,
) -> Result<Vec<Leftover>, BenchError> {
    let selector = match run {
        None => RUN_LABEL.to_owned(),
        Some(run) => {
            check_run_id(run)?;
            format!("{RUN_LABEL}={run}")
        }
    };
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client());
    let params = ListParams::default().labels(&selector);
    let found = patiently(|| namespaces.list(&params))
        .await
        .map_err(|e| BenchError::api("cannot list namespaces", &e))?;
    let mut leftovers = Vec::new();
    for namespace in found.items {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let run_id = namespace
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(RUN_LABEL))
            .cloned()
            .unwrap_or_default();
        let created = namespace
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let age = chrono::DateTime::parse_from_rfc3339(&created)
            .ok()
            .map(|at| {
                chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                    .signed_duration_since(at)
                    .to_std()
                    .unwrap_or_default()
            });
        let outcome = if dry_run {
            "kept".to_owned()
        } else if age.is_some_and(|age| age < older_than) {
            "kept: younger than --older-than".to_owned()
        } else if age.is_none() && !older_than.is_zero() {
            // Its age cannot be told, so it may be a run still going.
            "kept: creation time unknown".to_owned()
        } else if delete_namespace(cluster, &name, timeout).await {
            "deleted".to_owned()
        } else {
            "terminating".to_owned()
        };
        leftovers.push(Leftover {
            namespace: name,
            run_id,
            created,
            outcome,
        });
    }
    Ok(leftovers)
}
