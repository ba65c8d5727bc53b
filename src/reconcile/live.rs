//! Reconciling against a cluster: discovery, the apply set, server-side apply level by level,
//! readiness by watch, pruning, ordered deletion, status, and diffs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt as _, future::join_all};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PropagationPolicy,
};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::Serialize;
use serde_json::{Value as Json, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::plan::{Instance, Plan, Rendered};
use super::{
    Action, Event, FIELD_MANAGER, HASH_ANNOTATION, LevelReport, ObjectReport, Options, Outcome,
    PART_OF_LABEL, Progress, RESOURCE_LABEL, ReconcileError, Report, applyset_id, contained,
    hash_json, label_value, parent_name, parent_namespace,
};
use crate::cel::{Value, Variables};
use crate::cluster::{Cluster, api_message, is_not_found, yaml_diff};

const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
const KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
const NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
const ID_LABEL: &str = "applyset.kubernetes.io/id";

/// A kind the cluster serves.
#[derive(Debug, Clone)]
pub(super) struct Kind {
    pub(super) resource: ApiResource,
    pub(super) namespaced: bool,
}

impl Kind {
    /// `Deployment.apps`, `ConfigMap`: the `ApplySet` spelling.
    fn group_kind(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.kind.clone()
        } else {
            format!("{}.{}", self.resource.kind, self.resource.group)
        }
    }
}

/// The instance's apply set: its parent `ConfigMap` and what it records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ApplySet {
    name: String,
    namespace: String,
    id: String,
    kinds: BTreeSet<String>,
    namespaces: BTreeSet<String>,
    exists: bool,
}

/// Applies, diffs and deletes instances of one graph against one cluster.
pub struct Reconciler {
    cluster: Cluster,
    plan: Arc<Plan>,
    kinds: Mutex<HashMap<String, Kind>>,
    /// Whether a run applies the instance itself (one-off runs) or only its status.
    writes_instance: bool,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("graph", &self.plan.graph)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// What one object's apply gave: the report and the live object.
struct Done {
    report: ObjectReport,
    object: Option<Json>,
}

/// What a run has learned so far, level by level.
struct Walk {
    /// `schema` and every resource done.
    variables: Variables,
    /// Per resource: `None` pending, `Some(true)` done, `Some(false)` failed or blocked.
    state: Vec<Option<bool>>,
    /// Per resource: left out by `includeWhen`.
    excluded: Vec<bool>,
    /// Every object wanted, by kind, namespace and name.
    desired: BTreeSet<(String, String, String)>,
    /// The kinds of what is wanted.
    kinds: BTreeMap<String, Kind>,
    /// The namespaces of what is wanted (and the parent's).
    namespaces: BTreeSet<String>,
}

/// How an object's desired state compares with the cluster's, for `--diff`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    /// The resource id.
    pub id: String,
    /// `Kind/name`.
    pub object: String,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `create`, `update`, `unchanged`, `prune`, `excluded` or `failed`.
    pub change: &'static str,
    /// A unified diff of the live and desired YAML (server-managed fields left out), or why
    /// it failed.
    pub diff: String,
}

/// Apply for real, or ask the server what applying would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    Diff,
}

/// Shared by the objects of a run.
struct Run<'a> {
    options: &'a Options,
    mode: Mode,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    deadline: Instant,
    writes: AtomicU64,
    workers: Semaphore,
    diffs: Mutex<Vec<ObjectDiff>>,
}

impl Run<'_> {
    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || Instant::now() >= self.deadline
    }

    /// Reports a level (or delete wave) done, with its wall time.
    fn level_done(&self, report: &mut Report, level: usize, ids: Vec<String>, started: Instant) {
        let timing = LevelReport {
            level,
            ids,
            millis: millis(started),
        };
        self.progress.event(&Event::LevelDone(&timing));
        report.levels.push(timing);
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn record_diff(&self, report: &ObjectReport, change: &'static str, diff: String) {
        self.diffs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ObjectDiff {
                id: report.id.clone(),
                object: report.object(),
                namespace: report.namespace.clone(),
                change,
                diff,
            });
    }
}

impl Reconciler {
    /// A reconciler for `plan` over `cluster`.
    #[must_use]
    pub fn new(cluster: Cluster, plan: Arc<Plan>) -> Self {
        Self {
            cluster,
            plan,
            kinds: Mutex::new(HashMap::new()),
            writes_instance: true,
        }
    }

    /// The same, for a controller: the instances are the cluster's, so a run writes their
    /// status only. (A one-off run also applies the instance as its file gives it; a controller
    /// doing so would undo a change made while it reconciled.)
    pub(crate) fn for_controller(mut self) -> Self {
        self.writes_instance = false;
        self
    }

    /// The compiled graph.
    #[must_use]
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The cluster.
    #[must_use]
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Admits an instance, defaulting its namespace to the cluster's.
    ///
    /// # Errors
    /// As [`Plan::admit`].
    pub fn admit(&self, object: Json) -> Result<Instance, ReconcileError> {
        self.plan.admit(object, self.cluster.namespace())
    }

    /// Renders, applies and waits for `instance`, level by level; prunes what it no longer
    /// wants; evaluates (and, when the instance's CRD is installed, writes) its status.
    /// Failures of single objects are in the report, not errors: independent branches go on.
    ///
    /// # Errors
    /// [`ReconcileError::Api`] when the apply set cannot be read or written.
    pub async fn apply(
        &self,
        instance: &Instance,
        options: &Options,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Report, ReconcileError> {
        let run = Self::run(options, Mode::Apply, progress, cancel);
        self.reconcile(instance, &run).await
    }

    /// What [`Reconciler::apply`] would change, asked of the server (server-side dry run): a
    /// diff per object, and the objects it would prune. Nothing is written.
    ///
    /// # Errors
    /// As [`Reconciler::apply`].
    pub async fn diff(
        &self,
        instance: &Instance,
        options: &Options,
    ) -> Result<Vec<ObjectDiff>, ReconcileError> {
        let cancel = CancellationToken::new();
        let run = Self::run(options, Mode::Diff, &(), &cancel);
        self.reconcile(instance, &run).await?;
        Ok(std::mem::take(
            &mut *run
                .diffs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }

    fn run<'a>(
        options: &'a Options,
        mode: Mode,
        progress: &'a dyn Progress,
        cancel: &'a CancellationToken,
    ) -> Run<'a> {
        Run {
            options,
            mode,
            progress,
            cancel,
            // A timeout too large for the clock is as good as none.
            deadline: Instant::now()
                .checked_add(options.timeout)
                .unwrap_or_else(|| {
                    Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400)
                }),
            writes: AtomicU64::new(0),
            workers: Semaphore::new(options.workers.max(1)),
            diffs: Mutex::new(Vec::new()),
        }
    }

    async fn reconcile(
        &self,
        instance: &Instance,
        run: &Run<'_>,
    ) -> Result<Report, ReconcileError> {
        let started = Instant::now();
        let calls = self.cluster.stats().requests;
        let plan = &*self.plan;
        let mut set = self.load_set(instance).await?;
        let mut walk = Walk {
            variables: Plan::variables(instance),
            state: vec![None; plan.steps.len()],
            excluded: vec![false; plan.steps.len()],
            desired: BTreeSet::new(),
            kinds: self.static_kinds().await,
            namespaces: BTreeSet::from([set.namespace.clone()]),
        };
        // Every kind the set ever held, to find what to prune.
        let (mut known_kinds, unserved) = self.recorded_kinds(&set).await;
        known_kinds.extend(walk.kinds.clone());
        // The parent records every kind before any member is written, so an interrupted run
        // leaves nothing it cannot find again.
        self.record(&mut set, known_kinds.keys(), &walk.namespaces, run)
            .await?;
        let mut namespaces = set.namespaces.clone();
        namespaces.insert(set.namespace.clone());
        let mut live = self.members(&set, &known_kinds, &namespaces).await?;

        let mut report = Report::new(Action::Apply, plan, instance);
        for (number, level) in plan.levels.iter().enumerate() {
            let ids: Vec<String> = level.iter().map(|&s| plan.steps[s].id.clone()).collect();
            if run.stopped() {
                report.interrupted = true;
                self.skip_level(&mut walk, level, number, run, &mut report);
                continue;
            }
            run.progress.event(&Event::Level {
                level: number,
                of: plan.levels.len(),
                ids: &ids,
            });
            let level_started = Instant::now();
            let jobs = self
                .render_level(instance, &mut walk, level, number, run, &mut report)
                .await;
            // New kinds (from expressions in apiVersion/kind) and namespaces join the set
            // before their objects.
            self.record(&mut set, walk.kinds.keys(), &walk.namespaces, run)
                .await?;
            let results = join_all(jobs.into_iter().map(|(s, objects)| {
                let live = &live;
                async move {
                    let results = join_all(objects.into_iter().map(|(kind, object)| {
                        let current = live.get(&key_of(&kind, &object)).cloned();
                        self.apply_one(s, number, kind, object, current, run)
                    }))
                    .await;
                    (s, results)
                }
            }))
            .await;
            for (s, results) in results {
                let ok = results.iter().all(|d| !d.report.outcome.is_failure());
                walk.state[s] = Some(ok);
                if ok {
                    let objects: Vec<Json> =
                        results.iter().filter_map(|d| d.object.clone()).collect();
                    plan.bind(s, &mut walk.variables, &objects);
                }
                report.objects.extend(results.into_iter().map(|d| d.report));
            }
            run.level_done(&mut report, number, ids, level_started);
        }
        report.interrupted |= run.cancel.is_cancelled();
        if run.options.prune && !report.interrupted {
            self.prune(&walk, &mut live, &known_kinds, run, &mut report)
                .await;
            if run.mode == Mode::Apply && report.ok() {
                // What the set holds now: the kinds and namespaces of what was applied, and
                // kinds not served now, whose objects could not be looked at.
                let mut kinds: BTreeSet<String> = walk.kinds.keys().cloned().collect();
                kinds.extend(unserved);
                self.save_set(&mut set, kinds, walk.namespaces.clone(), run)
                    .await?;
            }
        }
        let (status, missing) = plan.status(&walk.variables);
        report.status = status;
        report.status_missing = missing;
        if run.mode == Mode::Apply {
            self.finish_status(instance, &mut report, run).await;
        }
        report.millis = millis(started);
        report.api_calls = self.cluster.stats().requests - calls;
        report.writes = run.writes.load(Ordering::Relaxed);
        Ok(report)
    }

    /// A level the run will not start (Ctrl-C or the timeout): blocked where a dependency
    /// failed, interrupted otherwise.
    fn skip_level(
        &self,
        walk: &mut Walk,
        level: &[usize],
        number: usize,
        run: &Run<'_>,
        report: &mut Report,
    ) {
        let plan = &*self.plan;
        for &s in level {
            let step = &plan.steps[s];
            let failed = step.dependencies.iter().find(|&&d| {
                walk.state[d] == Some(false)
                    && !report
                        .objects
                        .iter()
                        .any(|o| o.id == plan.steps[d].id && o.outcome == Outcome::Interrupted)
            });
            walk.state[s] = Some(false);
            report.objects.push(match failed {
                Some(&d) => blank(
                    &step.id,
                    number,
                    Outcome::Blocked,
                    &format!("dependency {} failed", plan.steps[d].id),
                ),
                None => blank(
                    &step.id,
                    number,
                    Outcome::Interrupted,
                    if run.cancel.is_cancelled() {
                        "not started: interrupted"
                    } else {
                        "not started: the timeout passed"
                    },
                ),
            });
        }
    }

    /// Renders a level's resources (blocked, excluded or failed ones go straight to the
    /// report) and returns the objects to apply, each with its kind.
    async fn render_level(
        &self,
        instance: &Instance,
        walk: &mut Walk,
        level: &[usize],
        number: usize,
        run: &Run<'_>,
        report: &mut Report,
    ) -> Vec<(usize, Vec<(Kind, Json)>)> {
        let plan = &*self.plan;
        let mut jobs = Vec::new();
        for &s in level {
            let step = &plan.steps[s];
            let early = |outcome, message: &str| blank(&step.id, number, outcome, message);
            let done = if let Some(&d) = step
                .dependencies
                .iter()
                .find(|&&d| walk.state[d] == Some(false))
            {
                walk.state[s] = Some(false);
                early(
                    Outcome::Blocked,
                    &format!("dependency {} failed", plan.steps[d].id),
                )
            } else if let Some(&d) = step.dependencies.iter().find(|&&d| walk.excluded[d]) {
                walk.excluded[s] = true;
                early(
                    Outcome::Excluded,
                    &format!("dependency {} is excluded", plan.steps[d].id),
                )
            } else {
                match plan.render(s, &mut walk.variables, false, &mut Vec::new()) {
                    Err(problem) => {
                        walk.state[s] = Some(false);
                        early(Outcome::Failed, &problem.to_string())
                    }
                    Ok(Rendered::Excluded) => {
                        walk.excluded[s] = true;
                        early(Outcome::Excluded, "includeWhen is false")
                    }
                    Ok(Rendered::Objects(objects)) => {
                        match self.resolve(s, objects, instance, walk).await {
                            Ok(prepared) => {
                                jobs.push((s, prepared));
                                continue;
                            }
                            Err(message) => {
                                walk.state[s] = Some(false);
                                early(Outcome::Failed, &message)
                            }
                        }
                    }
                }
            };
            run.progress.event(&Event::Object(&done));
            report.objects.push(done);
        }
        jobs
    }

    /// Each rendered object with its kind (discovery), namespace and ownership labels; the
    /// written ones join what the instance wants.
    async fn resolve(
        &self,
        step: usize,
        objects: Vec<Json>,
        instance: &Instance,
        walk: &mut Walk,
    ) -> Result<Vec<(Kind, Json)>, String> {
        let mut prepared = Vec::with_capacity(objects.len());
        for mut object in objects {
            let kind = self.kind_of(&object).await?;
            self.plan
                .prepare(step, &mut object, instance, Some(kind.namespaced));
            if !self.plan.steps[step].external {
                let key = key_of(&kind, &object);
                if kind.namespaced {
                    walk.namespaces.insert(key.1.clone());
                }
                walk.kinds
                    .entry(kind.group_kind())
                    .or_insert_with(|| kind.clone());
                walk.desired.insert(key);
            }
            prepared.push((kind, object));
        }
        Ok(prepared)
    }

    /// Deletes the set's members the run did not want, last delete wave first; nothing of a
    /// resource that failed (what it wants is not known).
    async fn prune(
        &self,
        walk: &Walk,
        live: &mut HashMap<(String, String, String), Json>,
        known_kinds: &BTreeMap<String, Kind>,
        run: &Run<'_>,
        report: &mut Report,
    ) {
        // Objects carry the resource id as a label value (hashed when it is not one).
        let undecided: BTreeSet<String> = self
            .plan
            .steps
            .iter()
            .enumerate()
            .filter(|(s, _)| walk.state[*s] != Some(true) && !walk.excluded[*s])
            .map(|(_, step)| label_value(&step.id))
            .collect();
        let wave_of = self.wave_index();
        // By delete wave, last first; objects of resources no longer in the graph before all.
        let mut waves: BTreeMap<std::cmp::Reverse<usize>, Vec<(String, Json)>> = BTreeMap::new();
        for (key, object) in live.drain() {
            let id = resource_id(&object).unwrap_or_default();
            if walk.desired.contains(&key) || undecided.contains(id) {
                continue;
            }
            let wave = wave_of.get(id).copied().unwrap_or(usize::MAX);
            waves
                .entry(std::cmp::Reverse(wave))
                .or_default()
                .push((key.0, object));
        }
        for unwanted in waves.into_values() {
            let pruned = join_all(unwanted.iter().map(|(gk, object)| {
                let kind = known_kinds.get(gk).or_else(|| walk.kinds.get(gk)).cloned();
                self.remove(kind, object, Outcome::Pruned, true, run)
            }))
            .await;
            for done in pruned {
                run.progress.event(&Event::Object(&done));
                report.objects.push(done);
            }
        }
    }

    /// Adds kinds and namespaces to what the set records (applies only; written when new).
    async fn record(
        &self,
        set: &mut ApplySet,
        kinds: impl Iterator<Item = &String>,
        namespaces: &BTreeSet<String>,
        run: &Run<'_>,
    ) -> Result<(), ReconcileError> {
        if run.mode != Mode::Apply {
            return Ok(());
        }
        let mut all_kinds = set.kinds.clone();
        all_kinds.extend(kinds.cloned());
        let mut all_namespaces = set.namespaces.clone();
        all_namespaces.extend(namespaces.iter().cloned());
        self.save_set(set, all_kinds, all_namespaces, run).await
    }

    /// Deletes what `instance` made, in reverse order: KRO's waves last first, each wave's
    /// objects deleted together (foreground) and waited for until gone; then the apply set's
    /// parent. External references are never deleted.
    ///
    /// # Errors
    /// [`ReconcileError::Api`] when the apply set cannot be read.
    #[allow(clippy::too_many_lines)] // the waves in order, each deleted and waited for
    pub async fn delete(
        &self,
        instance: &Instance,
        options: &Options,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Report, ReconcileError> {
        let started = Instant::now();
        let calls = self.cluster.stats().requests;
        let run = Self::run(options, Mode::Apply, progress, cancel);
        let plan = &*self.plan;
        let set = self.load_set(instance).await?;
        let templates = self.static_kinds().await;
        let (mut kinds, unserved) = self.recorded_kinds(&set).await;
        kinds.extend(templates);
        let mut namespaces = set.namespaces.clone();
        namespaces.insert(set.namespace.clone());
        let live = self.members(&set, &kinds, &namespaces).await?;
        let mut by_id: BTreeMap<String, Vec<(Kind, Json)>> = BTreeMap::new();
        for ((gk, _, _), object) in live {
            if let Some(kind) = kinds.get(&gk) {
                by_id
                    .entry(resource_id(&object).unwrap_or_default().to_owned())
                    .or_default()
                    .push((kind.clone(), object));
            }
        }
        let mut report = Report::new(Action::Delete, plan, instance);
        // Members of a kind the cluster no longer serves cannot be listed: the set stays, so
        // they can be found once it is served again.
        for gk in unserved {
            report.objects.push(blank(
                "",
                0,
                Outcome::Failed,
                &format!("the apply set holds {gk}, which the cluster no longer serves: its objects cannot be listed"),
            ));
        }
        // Objects of resources no longer in the graph go first: nothing in it depends on them.
        let known: BTreeSet<String> = plan.ids().map(label_value).collect();
        let strays: Vec<String> = by_id
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .cloned()
            .collect();
        let mut waves: Vec<Vec<String>> = Vec::new();
        if !strays.is_empty() {
            waves.push(strays);
        }
        for wave in plan.waves.iter().rev() {
            waves.push(
                wave.iter()
                    .filter(|&&s| !plan.steps[s].external)
                    .map(|&s| plan.steps[s].id.clone())
                    .collect(),
            );
        }
        let count = waves.len();
        for (number, ids) in waves.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            if run.stopped() {
                report.interrupted = true;
                break;
            }
            run.progress.event(&Event::Level {
                level: number,
                of: count,
                ids: &ids,
            });
            let wave_started = Instant::now();
            let mut work = Vec::new();
            for id in &ids {
                if let Some(objects) = by_id.remove(&label_value(id)) {
                    work.extend(objects.into_iter().map(|o| (id.clone(), o)));
                } else {
                    let done = blank(id, number, Outcome::Absent, "nothing to delete");
                    run.progress.event(&Event::Object(&done));
                    report.objects.push(done);
                }
            }
            let results = join_all(work.iter().map(|(_, (kind, object))| {
                self.remove(Some(kind.clone()), object, Outcome::Deleted, true, &run)
            }))
            .await;
            for mut done in results {
                done.level = number;
                run.progress.event(&Event::Object(&done));
                report.objects.push(done);
            }
            run.level_done(&mut report, number, ids, wave_started);
            if report.objects.iter().any(|o| o.outcome.is_failure()) {
                // What depends on a survivor must not lose what it needs: stop here.
                break;
            }
        }
        report.interrupted |= cancel.is_cancelled();
        if report.ok() && set.exists {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.cluster.client(), &set.namespace, &config_map());
            match api.delete(&set.name, &DeleteParams::default()).await {
                Ok(_) => run.wrote(),
                Err(error) if is_not_found(&error) => {}
                Err(error) => {
                    return Err(ReconcileError::Api(format!(
                        "cannot delete the apply set ConfigMap {}: {}",
                        set.name,
                        api_message(&error)
                    )));
                }
            }
        }
        if report.ok() {
            self.delete_instance(instance, &run, &mut report).await;
        }
        report.millis = millis(started);
        report.api_calls = self.cluster.stats().requests - calls;
        report.writes = run.writes.load(Ordering::Relaxed);
        Ok(report)
    }

    /// Deletes the instance object itself, when its CRD is installed and it is there (and
    /// not already going, as under the controller's finalizer).
    async fn delete_instance(&self, instance: &Instance, run: &Run<'_>, report: &mut Report) {
        let Ok(kind) = self.kind(&self.plan.api_version, &self.plan.kind).await else {
            return;
        };
        let api = self.api(&kind, instance.namespace.as_deref());
        let Ok(Some(live)) = api.get_opt(&instance.name).await else {
            return;
        };
        if live.metadata.deletion_timestamp.is_some() {
            return;
        }
        let mut done = describe("(instance)", 0, &kind, &to_json(&live));
        match api.delete(&instance.name, &DeleteParams::default()).await {
            Ok(_) => {
                run.wrote();
                done.outcome = Outcome::Deleted;
            }
            Err(error) if is_not_found(&error) => done.outcome = Outcome::Absent,
            Err(error) => {
                done.outcome = Outcome::Failed;
                done.message = Some(api_message(&error));
            }
        }
        run.progress.event(&Event::Object(&done));
        report.objects.push(done);
    }

    /// Applies (or dry-runs) one object and waits for its `readyWhen`.
    #[allow(clippy::too_many_lines)] // read or compare, apply, then wait: one object's whole life
    async fn apply_one(
        &self,
        step: usize,
        level: usize,
        kind: Kind,
        mut object: Json,
        live: Option<Json>,
        run: &Run<'_>,
    ) -> Done {
        let started = Instant::now();
        let plan = &*self.plan;
        let id = plan.steps[step].id.clone();
        let mut report = describe(&id, level, &kind, &object);
        let finish = |mut report: ObjectReport,
                      outcome: Outcome,
                      message: Option<String>,
                      object: Option<Json>| {
            report.outcome = outcome;
            report.message = message;
            report.millis = millis(started);
            if run.mode == Mode::Apply {
                run.progress.event(&Event::Object(&report));
            }
            Done { report, object }
        };
        if report.name.is_empty() {
            return finish(
                report,
                Outcome::Failed,
                Some("metadata.name is empty".into()),
                None,
            );
        }
        let api = self.api(&kind, report.namespace.as_deref());
        let current = if plan.steps[step].external {
            match api.get(&report.name).await {
                Ok(found) => to_json(&found),
                Err(error) => {
                    let message = if is_not_found(&error) {
                        format!("external reference {} not found", report.object())
                    } else {
                        api_message(&error)
                    };
                    return finish(report, Outcome::Failed, Some(message), None);
                }
            }
        } else {
            let hash = hash_json(&object);
            if let Some(annotations) = object
                .pointer_mut("/metadata")
                .and_then(Json::as_object_mut)
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})))
                .and_then(Json::as_object_mut)
            {
                annotations.insert(HASH_ANNOTATION.into(), Json::String(hash));
            }
            if let Some(live) = live
                .as_ref()
                .filter(|live| contained(&as_stored(&object), live))
            {
                if run.mode == Mode::Diff {
                    run.record_diff(&report, "unchanged", String::new());
                }
                report.outcome = Outcome::Unchanged;
                live.clone()
            } else {
                let mut params = PatchParams::apply(FIELD_MANAGER);
                if run.options.force_conflicts {
                    params = params.force();
                }
                if run.mode == Mode::Diff {
                    params = params.dry_run();
                }
                let permit = run.workers.acquire().await;
                let applied = api
                    .patch(&report.name, &params, &Patch::Apply(&object))
                    .await;
                drop(permit);
                match applied {
                    Ok(applied) => {
                        let applied = to_json(&applied);
                        if run.mode == Mode::Diff {
                            let change = if live.is_some() { "update" } else { "create" };
                            run.record_diff(
                                &report,
                                change,
                                yaml_diff(live.as_ref(), Some(&applied)),
                            );
                            return finish(report, Outcome::Unchanged, None, Some(applied));
                        }
                        run.wrote();
                        report.outcome = if live.is_some() {
                            Outcome::Configured
                        } else {
                            Outcome::Created
                        };
                        applied
                    }
                    Err(error) => {
                        let mut message = api_message(&error);
                        if crate::cluster::is_conflict(&error) {
                            message.push_str(" (another field manager owns these fields: pass --force-conflicts to take them over)");
                        }
                        if run.mode == Mode::Diff {
                            run.record_diff(&report, "failed", message.clone());
                        }
                        return finish(report, Outcome::Failed, Some(message), None);
                    }
                }
            }
        };
        let outcome = report.outcome;
        let outcome = if plan.steps[step].external {
            Outcome::Read
        } else {
            outcome
        };
        if run.mode == Mode::Diff {
            return finish(report, outcome, None, Some(current));
        }
        match self
            .wait_ready(step, &api, &report.name, current, run)
            .await
        {
            Ok(object) => {
                report.ready = Some(true);
                finish(report, outcome, None, Some(object))
            }
            Err((object, message)) => {
                report.ready = Some(false);
                let outcome = if run.cancel.is_cancelled() {
                    Outcome::Interrupted
                } else {
                    Outcome::Failed
                };
                finish(report, outcome, Some(message), object)
            }
        }
    }

    /// Waits until every `readyWhen` of the step holds for the object, watching it; an
    /// object without `readyWhen` is ready once it exists.
    async fn wait_ready(
        &self,
        step: usize,
        api: &Api<DynamicObject>,
        name: &str,
        object: Json,
        run: &Run<'_>,
    ) -> Result<Json, (Option<Json>, String)> {
        let step = &self.plan.steps[step];
        if step.ready_when.is_empty() {
            return Ok(object);
        }
        let variable = if step.collection() {
            "each"
        } else {
            step.id.as_str()
        };
        let check = |object: &Json| -> Result<bool, String> {
            let mut variables = Variables::new();
            let value = Value::from_json(object).map_err(|e| e.to_string())?;
            variables.insert(variable, &value);
            for condition in &step.ready_when {
                if condition.condition(&variables, false)? != Some(true) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        match check(&object) {
            Ok(true) => return Ok(object),
            Ok(false) => {}
            Err(message) => return Err((Some(object), message)),
        }
        let waiting = step
            .ready_when
            .iter()
            .map(super::plan::Expr::source)
            .collect::<Vec<_>>()
            .join(" && ");
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut events = watcher(api.clone(), config).default_backoff().boxed();
        let mut last = object;
        let deadline = tokio::time::Instant::from_std(run.deadline);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = run.cancel.cancelled() => return Err((Some(last), format!("interrupted while waiting for {waiting}"))),
                () = tokio::time::sleep_until(deadline) => return Err((Some(last), format!("not ready before the timeout: {waiting} is not true"))),
            };
            match event {
                Some(Ok(watcher::Event::Apply(found) | watcher::Event::InitApply(found))) => {
                    last = to_json(&found);
                    match check(&last) {
                        Ok(true) => return Ok(last),
                        Ok(false) => {}
                        Err(message) => return Err((Some(last), message)),
                    }
                }
                Some(Ok(watcher::Event::Delete(_))) => {
                    return Err((None, format!("deleted while waiting for {waiting}")));
                }
                // Restarts and errors: the watcher re-lists with backoff.
                Some(Ok(_) | Err(_)) => {}
                None => return Err((Some(last), "the watch ended".into())),
            }
        }
    }

    /// Deletes one object (foreground) and, when `wait`, watches until it is gone.
    async fn remove(
        &self,
        kind: Option<Kind>,
        object: &Json,
        outcome: Outcome,
        wait: bool,
        run: &Run<'_>,
    ) -> ObjectReport {
        let started = Instant::now();
        let id = resource_id(object).unwrap_or_default().to_owned();
        let Some(kind) = kind else {
            return blank(&id, 0, Outcome::Failed, "its kind is no longer served");
        };
        let mut report = describe(&id, 0, &kind, object);
        let api = self.api(&kind, report.namespace.as_deref());
        if run.mode == Mode::Diff {
            run.record_diff(&report, "prune", yaml_diff(Some(object), None));
            report.outcome = outcome;
            return report;
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        let _permit = run.workers.acquire().await;
        match api.delete(&report.name, &params).await {
            Ok(_) => {
                run.wrote();
                report.outcome = outcome;
            }
            Err(error) if is_not_found(&error) => report.outcome = Outcome::Absent,
            Err(error) => {
                report.outcome = Outcome::Failed;
                report.message = Some(api_message(&error));
            }
        }
        if wait && report.outcome == outcome {
            let uid = object
                .pointer("/metadata/uid")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned();
            let gone = kube::runtime::wait::await_condition(
                api,
                &report.name,
                kube::runtime::wait::conditions::is_deleted(&uid),
            );
            let deadline = tokio::time::Instant::from_std(run.deadline);
            tokio::select! {
                result = gone => if let Err(error) = result {
                    report.outcome = Outcome::Failed;
                    report.message = Some(format!("waiting for it to go: {error}"));
                },
                () = run.cancel.cancelled() => {
                    report.outcome = Outcome::Interrupted;
                    report.message = Some("interrupted while waiting for it to go".into());
                }
                () = tokio::time::sleep_until(deadline) => {
                    report.outcome = Outcome::Failed;
                    report.message = Some("still there at the timeout (a finalizer?)".into());
                }
            }
        }
        report.millis = millis(started);
        report
    }

    /// Writes the status to the instance when its CRD is installed: the instance itself
    /// (server-side apply) and its status subresource, each only when it changed.
    #[allow(clippy::too_many_lines)] // the instance, its conditions, then its status, each written only when changed
    async fn finish_status(&self, instance: &Instance, report: &mut Report, run: &Run<'_>) {
        let plan = &*self.plan;
        let failed = report.objects.iter().find(|o| o.outcome.is_failure());
        let (state, ready, reason, message) = match failed {
            None => (
                "ACTIVE",
                "True",
                "AllResourcesReady",
                "every resource is applied and ready".to_owned(),
            ),
            Some(_) if report.interrupted => (
                "IN_PROGRESS",
                "False",
                "Interrupted",
                "the run was interrupted".to_owned(),
            ),
            Some(object) => (
                "FAILED",
                "False",
                "ResourceFailed",
                format!(
                    "{}: {}",
                    object.id,
                    object.message.clone().unwrap_or_default()
                ),
            ),
        };
        if let Some(status) = report.status.as_object_mut() {
            status.insert("state".into(), json!(state));
        }
        let Ok(kind) = self.kind_of(&instance.object).await else {
            return;
        };
        let api = self.api(&kind, instance.namespace.as_deref());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let live = match api.get_opt(&instance.name).await {
            Ok(live) => live.map(|l| to_json(&l)),
            Err(_) => return,
        };
        // The instance as its author wrote it: what the server manages left out.
        let metadata = &instance.object["metadata"];
        let mut desired = json!({
            "apiVersion": plan.api_version, "kind": plan.kind,
            "metadata": {"name": instance.name},
            "spec": instance.object["spec"],
        });
        if let Some(namespace) = &instance.namespace {
            desired["metadata"]["namespace"] = json!(namespace);
        }
        for key in ["labels", "annotations"] {
            if metadata.get(key).is_some_and(|v| !v.is_null()) {
                desired["metadata"][key] = metadata[key].clone();
            }
        }
        if self.writes_instance && !live.as_ref().is_some_and(|l| contained(&desired, l)) {
            match api
                .patch(&instance.name, &params, &Patch::Apply(&desired))
                .await
            {
                Ok(_) => run.wrote(),
                Err(error) => {
                    report
                        .status_missing
                        .insert("(instance)".into(), api_message(&error));
                    return;
                }
            }
        }
        let previous = live
            .as_ref()
            .and_then(|l| l.pointer("/status/conditions/0"))
            .cloned();
        let since = previous
            .filter(|c| c["status"] == ready && c["reason"] == reason)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| {
                json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            });
        let generation = live
            .as_ref()
            .and_then(|l| l.pointer("/metadata/generation"))
            .cloned()
            .unwrap_or(json!(1));
        if let Some(status) = report.status.as_object_mut() {
            status.insert(
                "conditions".into(),
                json!([{"type": "Ready", "status": ready, "reason": reason, "message": message,
                        "lastTransitionTime": since, "observedGeneration": generation}]),
            );
        }
        // Equal, not contained: a field no longer known must go from the written status.
        if live.as_ref().and_then(|l| l.get("status")) == Some(&report.status) {
            report.status_written = true;
            return;
        }
        let body = json!({
            "apiVersion": plan.api_version, "kind": plan.kind,
            "metadata": {"name": instance.name},
            "status": report.status,
        });
        match api
            .patch_status(&instance.name, &params, &Patch::Apply(&body))
            .await
        {
            Ok(_) => {
                run.wrote();
                report.status_written = true;
            }
            Err(error) => {
                report
                    .status_missing
                    .insert("(status)".into(), api_message(&error));
            }
        }
    }

    /// The kinds the templates name plainly, resolved by discovery; kinds the cluster does
    /// not serve are left out here and fail on their objects.
    async fn static_kinds(&self) -> BTreeMap<String, Kind> {
        let mut kinds = BTreeMap::new();
        for step in self.plan.steps.iter().filter(|s| !s.external) {
            if let Some((api_version, kind)) = &step.type_meta
                && let Ok(found) = self.kind(api_version, kind).await
            {
                kinds.insert(found.group_kind(), found);
            }
        }
        kinds
    }

    /// The kinds the apply set records, resolved to their preferred versions, and those the
    /// cluster no longer serves.
    async fn recorded_kinds(&self, set: &ApplySet) -> (BTreeMap<String, Kind>, Vec<String>) {
        let mut kinds = BTreeMap::new();
        let mut unserved = Vec::new();
        for gk in &set.kinds {
            // Kinds the templates name were found already: no second discovery.
            let known = self
                .kinds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .find(|k| &k.group_kind() == gk)
                .cloned();
            if let Some(known) = known {
                kinds.insert(gk.clone(), known);
                continue;
            }
            let (kind, group) = gk.split_once('.').unwrap_or((gk.as_str(), ""));
            let found = match kube::discovery::group(&self.cluster.client(), group).await {
                Ok(found) => found.recommended_kind(kind),
                Err(_) => None,
            };
            match found {
                Some((resource, caps)) => {
                    let namespaced = caps.scope == kube::discovery::Scope::Namespaced;
                    kinds.insert(
                        gk.clone(),
                        Kind {
                            resource,
                            namespaced,
                        },
                    );
                }
                None => unserved.push(gk.clone()),
            }
        }
        (kinds, unserved)
    }

    /// Every live member of the apply set, by kind, namespace and name.
    async fn members(
        &self,
        set: &ApplySet,
        kinds: &BTreeMap<String, Kind>,
        namespaces: &BTreeSet<String>,
    ) -> Result<HashMap<(String, String, String), Json>, ReconcileError> {
        let params = ListParams::default().labels(&format!("{PART_OF_LABEL}={}", set.id));
        let mut found = HashMap::new();
        for (gk, kind) in kinds {
            let apis: Vec<Api<DynamicObject>> = if kind.namespaced {
                namespaces
                    .iter()
                    .map(|ns| self.api(kind, Some(ns)))
                    .collect()
            } else {
                vec![self.api(kind, None)]
            };
            for api in apis {
                let list = api.list(&params).await.map_err(|error| {
                    ReconcileError::Api(format!(
                        "cannot list {gk} of the instance: {}",
                        api_message(&error)
                    ))
                })?;
                for item in list.items {
                    let mut object = to_json(&item);
                    // A real API server leaves the type off list items.
                    if let Some(map) = object.as_object_mut() {
                        map.insert("apiVersion".into(), json!(kind.resource.api_version));
                        map.insert("kind".into(), json!(kind.resource.kind));
                    }
                    found.insert(key_of(kind, &object), object);
                }
            }
        }
        Ok(found)
    }

    async fn load_set(&self, instance: &Instance) -> Result<ApplySet, ReconcileError> {
        let name = parent_name(&self.plan, instance);
        let namespace = parent_namespace(instance);
        let id = applyset_id(&name, &namespace);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client(), &namespace, &config_map());
        let found = api.get_opt(&name).await.map_err(|error| {
            ReconcileError::Api(format!(
                "cannot read the apply set ConfigMap {namespace}/{name}: {}",
                api_message(&error)
            ))
        })?;
        let mut set = ApplySet {
            name,
            namespace,
            id,
            ..ApplySet::default()
        };
        if let Some(found) = found {
            let annotation = |key: &str| -> BTreeSet<String> {
                found
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(key))
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            set.kinds = annotation(KINDS_ANNOTATION);
            set.namespaces = annotation(NAMESPACES_ANNOTATION);
            set.exists = true;
        }
        Ok(set)
    }

    /// Writes the parent when what it records changes.
    async fn save_set(
        &self,
        set: &mut ApplySet,
        kinds: BTreeSet<String>,
        mut namespaces: BTreeSet<String>,
        run: &Run<'_>,
    ) -> Result<(), ReconcileError> {
        namespaces.remove(&set.namespace);
        if set.exists && set.kinds == kinds && set.namespaces == namespaces {
            return Ok(());
        }
        let join = |items: &BTreeSet<String>| items.iter().cloned().collect::<Vec<_>>().join(",");
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": set.name, "namespace": set.namespace,
                "labels": {ID_LABEL: set.id, "app.kubernetes.io/managed-by": FIELD_MANAGER,
                           super::GRAPH_LABEL: super::label_value(&self.plan.graph)},
                "annotations": {TOOLING_ANNOTATION: format!("kubectl-zen/v{}", env!("CARGO_PKG_VERSION")),
                                KINDS_ANNOTATION: join(&kinds), NAMESPACES_ANNOTATION: join(&namespaces)},
            },
        });
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client(), &set.namespace, &config_map());
        api.patch(
            &set.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|error| {
            ReconcileError::Api(format!(
                "cannot write the apply set ConfigMap {}/{}: {}",
                set.namespace,
                set.name,
                api_message(&error)
            ))
        })?;
        run.wrote();
        set.kinds = kinds;
        set.namespaces = namespaces;
        set.exists = true;
        Ok(())
    }

    /// Each resource id's delete wave.
    /// Each resource's delete wave, by the label value of its id.
    fn wave_index(&self) -> HashMap<String, usize> {
        self.plan
            .waves
            .iter()
            .enumerate()
            .flat_map(|(w, wave)| wave.iter().map(move |&s| (s, w)))
            .map(|(s, w)| (label_value(&self.plan.steps[s].id), w))
            .collect()
    }

    async fn kind_of(&self, object: &Json) -> Result<Kind, String> {
        let text = |key: &str| object.get(key).and_then(Json::as_str).unwrap_or_default();
        if text("apiVersion").is_empty() || text("kind").is_empty() {
            return Err("the rendered object has no apiVersion or kind".into());
        }
        self.kind(text("apiVersion"), text("kind")).await
    }

    /// A kind discovery already found.
    pub(super) fn cached_kind(&self, api_version: &str, kind: &str) -> Option<Kind> {
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&format!("{api_version}/{kind}"))
            .cloned()
    }

    /// Discovery of one kind, remembered.
    pub(super) async fn kind(&self, api_version: &str, kind: &str) -> Result<Kind, String> {
        let key = format!("{api_version}/{kind}");
        if let Some(found) = self
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(found.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.cluster.client(), &gvk)
            .await
            .map_err(|error| match &error {
                kube::Error::Api(status) if status.code == 404 => {
                    format!(
                        "the server does not serve {kind} in {api_version} (is its CRD installed?)"
                    )
                }
                _ => format!("discovery of {api_version} {kind}: {}", api_message(&error)),
            })?;
        let found = Kind {
            resource,
            namespaced: caps.scope == kube::discovery::Scope::Namespaced,
        };
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, found.clone());
        Ok(found)
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) if kind.namespaced => {
                Api::namespaced_with(self.cluster.client(), namespace, &kind.resource)
            }
            _ => Api::all_with(self.cluster.client(), &kind.resource),
        }
    }
}

fn config_map() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
}

fn key_of(kind: &Kind, object: &Json) -> (String, String, String) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        kind.group_kind(),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}

fn resource_id(object: &Json) -> Option<&str> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(RESOURCE_LABEL))
        .and_then(Json::as_str)
}

fn describe(id: &str, level: usize, kind: &Kind, object: &Json) -> ObjectReport {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ObjectReport {
        id: id.to_owned(),
        level,
        api_version: kind.resource.api_version.clone(),
        kind: kind.resource.kind.clone(),
        namespace: Some(text("/metadata/namespace")).filter(|n| kind.namespaced && !n.is_empty()),
        name: text("/metadata/name"),
        outcome: Outcome::Unchanged,
        ready: None,
        millis: 0,
        message: None,
    }
}

fn blank(id: &str, level: usize, outcome: Outcome, message: &str) -> ObjectReport {
    ObjectReport {
        id: id.to_owned(),
        level,
        api_version: String::new(),
        kind: String::new(),
        namespace: None,
        name: String::new(),
        outcome,
        ready: None,
        millis: 0,
        message: Some(message.to_owned()),
    }
}

fn to_json(object: &DynamicObject) -> Json {
    serde_json::to_value(object).unwrap_or(Json::Null)
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A desired object as the server stores it, for comparing with the live one: a Secret's
/// `stringData` is written into `data`, base64-encoded.
fn as_stored(object: &Json) -> std::borrow::Cow<'_, Json> {
    use base64::Engine as _;
    let Some(strings) = object
        .get("stringData")
        .and_then(Json::as_object)
        .filter(|_| object.get("kind").and_then(Json::as_str) == Some("Secret"))
    else {
        return std::borrow::Cow::Borrowed(object);
    };
    let mut stored = object.clone();
    let mut data = stored
        .get("data")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        data.insert(
            key.clone(),
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
    if let Some(map) = stored.as_object_mut() {
        map.remove("stringData");
        map.insert("data".into(), Json::Object(data));
    }
    std::borrow::Cow::Owned(stored)
}
