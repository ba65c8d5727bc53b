//! zen-sim's storage: objects by resource, namespace and name, one resourceVersion counter, a
//! bounded event history for watches, and the write semantics of the API server.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::fields;
use super::registry::{Registry, ResourceType};
use super::select::{FieldSelector, LabelSelector};
use crate::structural as schema;

/// What kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) revision: u64,
    pub(crate) resource: String,
    pub(crate) namespace: String,
    pub(crate) change: Change,
    pub(crate) object: Arc<Stored>,
    /// The version before a modification: watches with selectors turn a modification into
    /// ADDED or DELETED when the object starts or stops matching.
    pub(crate) previous: Option<Arc<Stored>>,
}

type Key = (String, String, String);

/// An object as stored: its JSON text, which GET, LIST and WATCH send as it is, and the few facts
/// reads filter and index on. Text, because a `serde_json::Value` of a small `ConfigMap` costs
/// ~10 KB (a B-tree node per map) where its text costs ~400 bytes.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) json: bytes::Bytes,
    labels: Box<[(Box<str>, Box<str>)]>,
    uid: Box<str>,
    owners: Box<[Box<str>]>,
    deleting: bool,
}

impl Stored {
    pub(crate) fn new(object: &Value) -> Arc<Self> {
        let metadata = &object["metadata"];
        let labels = metadata["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((key.as_str().into(), value.as_str()?.into())))
            .collect();
        let owners = metadata["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|owner| owner["uid"].as_str().map(Into::into))
            .collect();
        Arc::new(Self {
            json: serde_json::to_vec(object).unwrap_or_default().into(),
            labels,
            uid: metadata["uid"].as_str().unwrap_or_default().into(),
            owners,
            deleting: !metadata["deletionTimestamp"].is_null(),
        })
    }

    /// The object, parsed.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object's uid.
    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    /// Whether the object is being deleted (it has a deletionTimestamp).
    pub(crate) fn deleting(&self) -> bool {
        self.deleting
    }

    /// The value of a label.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(name, _)| &**name == key)
            .map(|(_, value)| &**value)
    }
}

/// Events since a revision, and the receiver of those to come.
type Backlog = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The state behind the lock.
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    objects: BTreeMap<Key, Arc<Stored>>,
    /// Keys by uid, and the keys of each owner's dependents: garbage collection without scans.
    uids: HashMap<Box<str>, Key>,
    dependents: HashMap<Box<str>, BTreeSet<Key>>,
    revision: u64,
    history: VecDeque<Arc<Event>>,
    /// The oldest revision a watch or continue token may still start from.
    compacted: u64,
}

impl Inner {
    /// Stores an object, keeping the indexes.
    fn put(&mut self, key: &Key, stored: &Arc<Stored>) {
        if let Some(old) = self.objects.insert(key.clone(), Arc::clone(stored)) {
            self.unindex(key, &old);
        }
        self.uids.insert(stored.uid.clone(), key.clone());
        for owner in &stored.owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    /// Removes an object, keeping the indexes.
    fn take(&mut self, key: &Key) -> Option<Arc<Stored>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    fn unindex(&mut self, key: &Key, stored: &Stored) {
        if self.uids.get(&stored.uid) == Some(key) {
            self.uids.remove(&stored.uid);
        }
        for owner in &stored.owners {
            if let Some(keys) = self.dependents.get_mut(owner) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
    }
}

/// The store.
pub(crate) struct Store {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    history_capacity: usize,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
}

/// How a patch body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply { force: bool },
}

/// Who writes, and whether for real.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    pub(crate) manager: String,
    pub(crate) dry_run: bool,
}

/// A page of a list.
pub(crate) struct Page {
    pub(crate) items: Vec<Arc<Stored>>,
    pub(crate) revision: u64,
    pub(crate) next: Option<String>,
    pub(crate) remaining: Option<u64>,
}

/// What a delete did.
pub(crate) enum Deleted {
    /// Gone; the object as it was.
    Gone(Arc<Value>),
    /// Marked for deletion, waiting for finalizers.
    Pending(Arc<Value>),
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) propagation: Option<String>,
    pub(crate) dry_run: bool,
}

/// The storage key of an object.
fn key_of(resource: &ResourceType, namespace: &str, name: &str) -> Key {
    let namespace = if resource.namespaced {
        namespace.to_owned()
    } else {
        String::new()
    };
    (resource.group_resource(), namespace, name.to_owned())
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn new_uid() -> String {
    let bits = fastrand::u128(..);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-4{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Five characters of the API server's `generateName` alphabet.
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

impl Store {
    pub(crate) fn new(history_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(16_384);
        Self {
            inner: RwLock::new(Inner {
                registry: Registry::builtin(),
                objects: BTreeMap::new(),
                uids: HashMap::new(),
                dependents: HashMap::new(),
                revision: 1,
                history: VecDeque::new(),
                compacted: 1,
            }),
            events,
            history_capacity: history_capacity.max(16),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to every future event.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// The current revision.
    pub(crate) fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Forgets the history before the current revision, as an etcd compaction does: watches and
    /// continue tokens from older revisions get 410 Gone.
    pub(crate) fn compact(&self) {
        let mut inner = self.write();
        inner.history.clear();
        inner.compacted = inner.revision;
    }

    /// The resource type at a path.
    pub(crate) fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.read().registry.get(group, version, plural)
    }

    /// How many objects are stored.
    pub(crate) fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub(crate) fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.get_stored(resource, namespace, name)
            .map(|stored| Arc::new(stored.value()))
    }

    /// The stored form of an object.
    pub(crate) fn get_stored(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Stored>, ApiError> {
        self.read()
            .objects
            .get(&key_of(resource, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource.group_resource(), name))
    }

    /// A page of objects of `resource` in `namespace` (or all), matching the selectors.
    pub(crate) fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let group_resource = resource.group_resource();
        let inner = self.read();
        let (start, revision) = match continue_token {
            Some(token) => {
                let token: ContinueToken = base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
                if token.rv < inner.compacted {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (token.start, token.rv)
            }
            None => (String::new(), inner.revision),
        };
        let (first_namespace, first_name) = start.split_once('\u{0}').unwrap_or(("", ""));
        let from: Key = (
            group_resource.clone(),
            namespace.map_or_else(|| first_namespace.to_owned(), str::to_owned),
            first_name.to_owned(),
        );
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0_u64;
        for ((resource_key, object_namespace, name), object) in inner.objects.range(from..) {
            if *resource_key != group_resource
                || namespace.is_some_and(|wanted| wanted != object_namespace)
            {
                break;
            }
            if !labels.matches_with(|key| object.label(key))
                || (!fields.is_empty() && !fields.matches(&object.value()))
            {
                continue;
            }
            if limit.is_some_and(|limit| items.len() >= limit) {
                if next.is_none() {
                    let token = ContinueToken {
                        rv: revision,
                        start: format!("{object_namespace}\u{0}{name}"),
                    };
                    next = Some(
                        base64::engine::general_purpose::STANDARD
                            .encode(serde_json::to_vec(&token).unwrap_or_default()),
                    );
                }
                remaining += 1;
                continue;
            }
            items.push(Arc::clone(object));
        }
        let remaining = next.is_some().then_some(remaining);
        Ok(Page {
            items,
            // Every page of one list reports the first page's version, as etcd's snapshot does.
            revision,
            next,
            remaining,
        })
    }

    /// Events after `revision` for `resource` (in `namespace`), and a receiver of the ones to
    /// come; 410 Gone when the history no longer reaches back that far.
    pub(crate) fn watch_from(
        &self,
        resource: &ResourceType,
        revision: u64,
    ) -> Result<Backlog, ApiError> {
        let inner = self.read();
        if revision < inner.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {revision} ({})",
                inner.compacted
            )));
        }
        let group_resource = resource.group_resource();
        let backlog = inner
            .history
            .iter()
            .filter(|event| event.revision > revision && event.resource == group_resource)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// The current objects as ADDED events and a receiver of what follows, atomically.
    pub(crate) fn watch_current(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Stored>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.read();
        let group_resource = resource.group_resource();
        let from: Key = (
            group_resource.clone(),
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        let objects = inner
            .objects
            .range(from..)
            .take_while(|((key, object_namespace, _), _)| {
                *key == group_resource && namespace.is_none_or(|wanted| wanted == object_namespace)
            })
            .map(|(_, object)| Arc::clone(object))
            .collect();
        (objects, inner.revision, self.events.subscribe())
    }

    fn record(
        &self,
        inner: &mut Inner,
        resource: &ResourceType,
        change: Change,
        object: &Value,
        previous: Option<Arc<Stored>>,
    ) -> Arc<Stored> {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let object = Stored::new(object);
        let stored = Arc::clone(&object);
        let event = Arc::new(Event {
            revision: inner.revision,
            resource: resource.group_resource(),
            namespace,
            change,
            object,
            previous,
        });
        if inner.history.len() >= self.history_capacity
            && let Some(dropped) = inner.history.pop_front()
        {
            inner.compacted = dropped.revision;
        }
        inner.history.push_back(Arc::clone(&event));
        // Nobody listening is fine.
        let _ = self.events.send(event);
        stored
    }

    /// Creates an object.
    pub(crate) fn create(
        &self,
        resource: &ResourceType,
        namespace: &str,
        object: Value,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        self.insert_new(resource, namespace, object, writer, true)
    }

    /// Creates an object; `track` records the writer's fields as an Update (an apply that
    /// creates has recorded its own Apply entry already).
    #[allow(clippy::too_many_lines)] // every rule of a create, in the order the API server applies them
    fn insert_new(
        &self,
        resource: &ResourceType,
        namespace: &str,
        mut object: Value,
        writer: &Writer,
        track: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let group_resource = resource.group_resource();
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            ));
        }
        if object["metadata"].is_null() {
            object["metadata"] = json!({});
        }
        let metadata = &object["metadata"];
        let name = match (metadata["name"].as_str(), metadata["generateName"].as_str()) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    "",
                    &[(
                        "metadata.name".into(),
                        "metadata.name: Required value: name or generateName is required".into(),
                        "FieldValueRequired",
                    )],
                ));
            }
        };
        if resource.group == "rbac.authorization.k8s.io" {
            // RBAC names are path segments, as the API server validates them:
            // `system:controller:...` is a valid ClusterRole name.
            if matches!(name.as_str(), "." | "..") || name.contains(['/', '%']) {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    &name,
                    &[(
                        "metadata.name".into(),
                        format!(
                            "metadata.name: Invalid value: \"{name}\": may not be '.' or '..' and may not contain '/' or '%'"
                        ),
                        "FieldValueInvalid",
                    )],
                ));
            }
        } else if !valid_name(&name) {
            let message = format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            );
            return Err(ApiError::invalid(
                &resource.kind,
                &resource.group,
                &name,
                &[("metadata.name".into(), message, "FieldValueInvalid")],
            ));
        }
        if resource.namespaced {
            match metadata["namespace"].as_str() {
                Some(given) if !given.is_empty() && given != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let mut inner = self.write();
        if resource.namespaced {
            let namespace_key: Key = ("namespaces".into(), String::new(), namespace.to_owned());
            match inner.objects.get(&namespace_key) {
                None => return Err(ApiError::not_found("namespaces", namespace)),
                Some(existing) if existing.deleting => {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "{group_resource} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let key: Key = (
            group_resource.clone(),
            if resource.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name.clone(),
        );
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&group_resource, &name));
        }
        let now = now();
        {
            let metadata = object["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            metadata.insert("name".into(), json!(name));
            if resource.namespaced {
                metadata.insert("namespace".into(), json!(namespace));
            } else {
                metadata.remove("namespace");
            }
            metadata.insert("uid".into(), json!(new_uid()));
            metadata.insert("creationTimestamp".into(), json!(now));
            metadata.remove("deletionTimestamp");
            if track {
                metadata.remove("managedFields");
            }
            if resource.tracks_generation() {
                metadata.insert("generation".into(), json!(1));
            } else {
                metadata.remove("generation");
            }
        }
        if resource.has_status()
            && resource.custom
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        check_shape(resource, &object)?;
        check_size(&object)?;
        super::control::default_new(resource, &mut object, &inner);
        admit(resource, &name, &mut object)?;
        if resource.group == "apiextensions.k8s.io" && !writer.dry_run {
            inner.registry.add_crd(&object).map_err(|message| {
                ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    &name,
                    &[(String::new(), message, "FieldValueInvalid")],
                )
            })?;
            super::control::crd_established(&mut object);
        }
        if track {
            fields::track_update(
                &json!({}),
                &mut object,
                resource,
                &writer.manager,
                false,
                &now,
            );
        }
        if writer.dry_run {
            return Ok(Arc::new(object));
        }
        self.store_change(&mut inner, resource, &key, Change::Added, &mut object);
        Ok(Arc::new(object))
    }

    /// Replaces an object (PUT), or its status.
    pub(crate) fn update(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        part: Part,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.write();
        let key = key_of(resource, namespace, name);
        let Some(old) = inner
            .objects
            .get(&key)
            .map(|stored| Arc::new(stored.value()))
        else {
            return Err(ApiError::not_found(&resource.group_resource(), name));
        };
        check_version(resource, name, &object, &old)?;
        check_name(name, &object)?;
        self.commit(&mut inner, resource, &old, object, part, writer, true)
    }

    /// Patches an object; an apply patch creates it when missing.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)] // one arm per patch kind
    fn patch_try(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        part: Part,
        writer: &Writer,
        attempts_left: u32,
    ) -> Result<Arc<Value>, ApiError> {
        let existing = {
            let inner = self.read();
            inner
                .objects
                .get(&key_of(resource, namespace, name))
                .cloned()
        };
        if matches!(kind, PatchKind::Apply { .. }) {
            check_shape(resource, body)?;
        }
        let Some(stored) = existing else {
            return match kind {
                PatchKind::Apply { force } if part == Part::Main => {
                    let created = fields::apply(
                        &json!({}),
                        body,
                        &fields::ApplyRequest {
                            resource,
                            manager: &writer.manager,
                            force,
                            status: false,
                            now: &now(),
                        },
                    )
                    .map_err(|conflicts| conflict_error(resource, name, &conflicts))?;
                    let mut created = created;
                    created["metadata"]["name"] = json!(name);
                    self.insert_new(resource, namespace, created, writer, false)
                }
                _ => Err(ApiError::not_found(&resource.group_resource(), name)),
            };
        };
        let old = Arc::new(stored.value());
        let patched = match kind {
            PatchKind::Json => json_patch_bounded(&old, body)?,
            PatchKind::Merge => {
                let mut patched = (*old).clone();
                json_patch::merge(&mut patched, body);
                patched
            }
            PatchKind::Strategic => {
                if resource.custom {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                let mut patched = (*old).clone();
                fields::strategic_merge(&mut patched, body, resource);
                patched
            }
            PatchKind::Apply { force } => {
                check_name(name, body)?;
                fields::apply(
                    &old,
                    body,
                    &fields::ApplyRequest {
                        resource,
                        manager: &writer.manager,
                        force,
                        status: part == Part::Status,
                        now: &now(),
                    },
                )
                .map_err(|conflicts| conflict_error(resource, name, &conflicts))?
            }
        };
        let mut inner = self.write();
        let current = inner
            .objects
            .get(&key_of(resource, namespace, name))
            .cloned();
        match current {
            // Patches apply to the latest version: if it moved meanwhile, patch again.
            Some(current) if !Arc::ptr_eq(&current, &stored) => {
                drop(inner);
                if attempts_left == 0 {
                    return Err(ApiError::conflict(
                        &resource.group_resource(),
                        name,
                        "the object changed under every attempt to patch it; try again",
                    ));
                }
                self.patch_try(
                    resource,
                    namespace,
                    name,
                    kind,
                    body,
                    part,
                    writer,
                    attempts_left - 1,
                )
            }
            Some(_) => {
                let current = old;
                check_version(resource, name, &patched, &current)?;
                let tracked = !matches!(kind, PatchKind::Apply { .. });
                self.commit(
                    &mut inner, resource, &current, patched, part, writer, tracked,
                )
            }
            None => Err(ApiError::not_found(&resource.group_resource(), name)),
        }
    }

    /// Patches an object; an apply patch creates it when missing. A patch applies to the latest
    /// version: when the object changes between reading and writing, it is patched again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        part: Part,
        writer: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        self.patch_try(resource, namespace, name, kind, body, part, writer, 50)
    }

    /// Writes `new` over `old`: server-owned metadata kept, spec/status separation, generation,
    /// schema admission, field ownership, no-op detection, finalization.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)] // every rule of a write, in order
    fn commit(
        &self,
        inner: &mut Inner,
        resource: &ResourceType,
        old: &Arc<Value>,
        mut new: Value,
        part: Part,
        writer: &Writer,
        track: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let name = old["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        check_shape(resource, &new)?;
        check_size(&new)?;
        if resource.has_status() {
            match part {
                Part::Main => set_field(&mut new, "status", old.get("status").cloned()),
                Part::Status => {
                    let status = new.get("status").cloned();
                    let managed = new["metadata"]["managedFields"].clone();
                    new = (**old).clone();
                    set_field(&mut new, "status", status);
                    new["metadata"]["managedFields"] = managed;
                }
            }
        }
        new["apiVersion"] = json!(resource.api_version());
        new["kind"] = json!(resource.kind);
        if new["metadata"].is_null() {
            new["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            let value = old["metadata"].get(field).cloned();
            if let Some(metadata) = new["metadata"].as_object_mut() {
                match value {
                    Some(value) => metadata.insert(field.to_owned(), value),
                    None => metadata.remove(field),
                };
            }
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let old_finalizers = old["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let added = new["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| !old_finalizers.contains(f));
            if added {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                        resource.kind
                    ),
                ));
            }
        }
        admit(resource, &name, &mut new)?;
        if resource.tracks_generation() && spec_changed(old, &new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if track {
            fields::track_update(
                old,
                &mut new,
                resource,
                &writer.manager,
                part == Part::Status,
                &now(),
            );
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if same_ignoring_times(old, &new) {
            return Ok(Arc::clone(old));
        }
        if writer.dry_run {
            return Ok(Arc::new(new));
        }
        if resource.group == "apiextensions.k8s.io" {
            inner.registry.add_crd(&new).map_err(|message| {
                ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    &name,
                    &[(String::new(), message, "FieldValueInvalid")],
                )
            })?;
        }
        let key = key_of(
            resource,
            old["metadata"]["namespace"].as_str().unwrap_or_default(),
            &name,
        );
        let finalized = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        let change = if finalized {
            Change::Deleted
        } else {
            Change::Modified
        };
        self.store_change(inner, resource, &key, change, &mut new);
        if finalized {
            self.after_removal(inner, resource, &new);
        }
        Ok(Arc::new(new))
    }

    /// Deletes an object: at once, or marked when finalizers hold it.
    pub(crate) fn delete(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut inner = self.write();
        let key = key_of(resource, namespace, name);
        let Some(old) = inner
            .objects
            .get(&key)
            .map(|stored| Arc::new(stored.value()))
        else {
            return Err(ApiError::not_found(&resource.group_resource(), name));
        };
        if options
            .uid
            .as_deref()
            .is_some_and(|uid| Some(uid) != old["metadata"]["uid"].as_str())
        {
            return Err(ApiError::conflict(
                &resource.group_resource(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    options.uid.as_deref().unwrap_or_default(),
                    old["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if options
            .resource_version
            .as_deref()
            .is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str())
        {
            return Err(ApiError::conflict(
                &resource.group_resource(),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Ok(Deleted::Pending(old));
        }
        let mut finalizers: Vec<Value> = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match options.propagation.as_deref() {
            Some("Orphan") => finalizers.push(json!("orphan")),
            Some("Foreground") => finalizers.push(json!("foregroundDeletion")),
            _ => {}
        }
        let is_namespace = resource.group.is_empty() && resource.plural == "namespaces";
        if options.dry_run {
            return Ok(if finalizers.is_empty() && !is_namespace {
                Deleted::Gone(old)
            } else {
                Deleted::Pending(old)
            });
        }
        let mut marked = (*old).clone();
        if finalizers.is_empty() && !is_namespace {
            self.store_change(&mut inner, resource, &key, Change::Deleted, &mut marked);
            self.after_removal(&mut inner, resource, &marked);
            return Ok(Deleted::Gone(Arc::new(marked)));
        }
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if !finalizers.is_empty() {
            marked["metadata"]["finalizers"] = Value::Array(finalizers);
        }
        if is_namespace {
            marked["status"]["phase"] = json!("Terminating");
        }
        self.store_change(&mut inner, resource, &key, Change::Modified, &mut marked);
        Ok(Deleted::Pending(Arc::new(marked)))
    }

    /// Stores a change: a new resourceVersion on the object, the event watchers see, the object
    /// map and its indexes. Every write goes through here.
    fn store_change(
        &self,
        inner: &mut Inner,
        resource: &ResourceType,
        key: &Key,
        change: Change,
        object: &mut Value,
    ) {
        inner.revision += 1;
        object["metadata"]["resourceVersion"] = json!(inner.revision.to_string());
        let previous = match change {
            Change::Modified => inner.objects.get(key).cloned(),
            Change::Deleted => inner.take(key),
            Change::Added => None,
        };
        let stored = self.record(
            inner,
            resource,
            change,
            object,
            previous.filter(|_| change == Change::Modified),
        );
        if change != Change::Deleted {
            inner.put(key, &stored);
        }
    }

    /// Stops serving a deleted CRD's kinds and deletes their objects, telling watchers.
    fn after_removal(&self, inner: &mut Inner, resource: &ResourceType, object: &Value) {
        if resource.group != "apiextensions.k8s.io" {
            return;
        }
        let group = object["spec"]["group"].as_str().unwrap_or_default();
        let plural = object["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default();
        let served: Vec<Arc<ResourceType>> = inner
            .registry
            .all()
            .filter(|served| served.custom && served.group == group && served.plural == plural)
            .cloned()
            .collect();
        inner.registry.remove_crd(object);
        let Some(served) = served.first() else { return };
        let group_resource = served.group_resource();
        let doomed: Vec<Key> = inner
            .objects
            .keys()
            .filter(|(key, _, _)| *key == group_resource)
            .cloned()
            .collect();
        for key in doomed {
            if let Some(mut gone) = inner.objects.get(&key).map(|stored| stored.value()) {
                self.store_change(inner, served, &key, Change::Deleted, &mut gone);
            }
        }
    }

    /// Removes a namespace whose contents are gone (the namespace controller's last step).
    pub(crate) fn finish_namespace(&self, name: &str) -> bool {
        let mut inner = self.write();
        let has_content = inner
            .objects
            .keys()
            .any(|(_, namespace, _)| namespace == name);
        if has_content {
            return false;
        }
        let key: Key = ("namespaces".into(), String::new(), name.to_owned());
        let Some(old) = inner.objects.get(&key).map(|stored| stored.value()) else {
            return true;
        };
        let blocked = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|list| !list.is_empty());
        if blocked {
            return false;
        }
        let mut gone = old;
        if let Some(namespaces) = inner.registry.get("", "v1", "namespaces") {
            self.store_change(&mut inner, &namespaces, &key, Change::Deleted, &mut gone);
        }
        true
    }

    /// Every object in a namespace, with its type: for the namespace controller.
    pub(crate) fn contents(&self, namespace: &str) -> Vec<(Arc<ResourceType>, String)> {
        let inner = self.read();
        let types: BTreeMap<String, Arc<ResourceType>> = inner
            .registry
            .all()
            .filter(|resource| !resource.read_only)
            .map(|resource| (resource.group_resource(), Arc::clone(resource)))
            .collect();
        inner
            .objects
            .keys()
            .filter(|(_, object_namespace, _)| object_namespace == namespace)
            .filter_map(|(resource, _, name)| {
                types
                    .get(resource)
                    .map(|resource| (Arc::clone(resource), name.clone()))
            })
            .collect()
    }

    /// Every stored object that names `uid` among its owners, with its type.
    pub(crate) fn dependents(&self, uid: &str) -> Vec<(Arc<ResourceType>, Arc<Value>)> {
        let inner = self.read();
        let Some(keys) = inner.dependents.get(uid) else {
            return Vec::new();
        };
        let types: BTreeMap<String, Arc<ResourceType>> = inner
            .registry
            .all()
            .filter(|resource| !resource.read_only)
            .map(|resource| (resource.group_resource(), Arc::clone(resource)))
            .collect();
        keys.iter()
            .filter_map(|key| {
                let resource = types.get(&key.0)?;
                let object = inner.objects.get(key)?;
                Some((Arc::clone(resource), Arc::new(object.value())))
            })
            .collect()
    }

    /// The object with this uid, and its type.
    pub(crate) fn by_uid(&self, uid: &str) -> Option<(Arc<ResourceType>, Value)> {
        let inner = self.read();
        let key = inner.uids.get(uid)?;
        let object = inner.objects.get(key)?.value();
        let resource = inner
            .registry
            .all()
            .find(|resource| resource.group_resource() == key.0 && !resource.read_only)
            .cloned()?;
        Some((resource, object))
    }

    /// Whether an object with this uid exists.
    pub(crate) fn uid_exists(&self, uid: &str) -> bool {
        self.read().uids.contains_key(uid)
    }
}

/// The deepest nesting a stored object may have (the JSON parser's own limit is 128).
pub(crate) const MAX_DEPTH: usize = 100;
/// The most values a stored object may hold.
const MAX_NODES: usize = 1_000_000;
/// The most operations of one JSON patch, as the API server's limit.
const MAX_PATCH_OPERATIONS: usize = 10_000;

/// Optimistic concurrency: a write naming a resourceVersion must name the current one.
fn check_version(
    resource: &ResourceType,
    name: &str,
    written: &Value,
    current: &Value,
) -> Result<(), ApiError> {
    let given = written["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if given.is_empty() || Some(given) == current["metadata"]["resourceVersion"].as_str() {
        Ok(())
    } else {
        Err(ApiError::stale(&resource.group_resource(), name))
    }
}

/// A body naming an object must name the one on the URL.
fn check_name(name: &str, body: &Value) -> Result<(), ApiError> {
    if body["metadata"]["name"]
        .as_str()
        .is_some_and(|given| given != name)
    {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    Ok(())
}

/// The depth and the number of values of a JSON value, without recursion.
pub(crate) fn measure(value: &Value) -> (usize, usize) {
    let mut deepest = 0;
    let mut nodes = 0;
    let mut stack = vec![(value, 1_usize)];
    while let Some((node, depth)) = stack.pop() {
        nodes += 1;
        deepest = deepest.max(depth);
        match node {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    (deepest, nodes)
}

/// Refuses objects whose standard fields have the wrong shape: `metadata` and (for built-in
/// kinds) `spec` and `status` must be objects, labels and annotations maps of strings.
fn check_shape(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let wrong = |field: &str, wanted: &str| {
        let kind = &resource.kind;
        Err(ApiError::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {field} must be {wanted}",
            resource.version
        )))
    };
    if !object.is_object() {
        return wrong("the body", "an object");
    }
    let metadata = &object["metadata"];
    if !metadata.is_object() && !metadata.is_null() {
        return wrong("metadata", "an object");
    }
    for field in ["labels", "annotations"] {
        let map = &metadata[field];
        if !map.is_null()
            && !map
                .as_object()
                .is_some_and(|map| map.values().all(Value::is_string))
        {
            return wrong(&format!("metadata.{field}"), "a map of strings");
        }
    }
    let finalizers = &metadata["finalizers"];
    if !finalizers.is_null()
        && !finalizers
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string))
    {
        return wrong("metadata.finalizers", "a list of strings");
    }
    let owners = &metadata["ownerReferences"];
    if !owners.is_null()
        && !owners
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_object))
    {
        return wrong("metadata.ownerReferences", "a list of objects");
    }
    if !resource.custom {
        for field in ["spec", "status"] {
            if !object[field].is_null() && !object[field].is_object() {
                return wrong(field, "an object");
            }
        }
    }
    Ok(())
}

/// Refuses objects nested too deep or too big to store and parse back.
pub(crate) fn check_size(value: &Value) -> Result<(), ApiError> {
    let (depth, nodes) = measure(value);
    if depth > MAX_DEPTH {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("the object nests {depth} levels deep; at most {MAX_DEPTH} are accepted"),
        ));
    }
    if nodes > MAX_NODES {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the object holds {nodes} values; at most {MAX_NODES} are accepted"),
        ));
    }
    Ok(())
}

/// Applies a JSON patch one operation at a time, checking after each that the result stays
/// within the size limits (a `copy` of a subtree into itself doubles it every time).
fn json_patch_bounded(old: &Value, body: &Value) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_value(body.clone()).map_err(|error| {
        ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {error}"
        ))
    })?;
    if patch.0.len() > MAX_PATCH_OPERATIONS {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "the JSON patch has {} operations; at most {MAX_PATCH_OPERATIONS} are accepted",
                patch.0.len()
            ),
        ));
    }
    let mut patched = old.clone();
    for operation in patch.0 {
        let grows = matches!(
            operation,
            json_patch::PatchOperation::Copy(_) | json_patch::PatchOperation::Add(_)
        );
        json_patch::patch(&mut patched, &[operation])
            .map_err(|error| ApiError::new(422, "Invalid", error.to_string()))?;
        if grows {
            check_size(&patched)?;
        }
    }
    Ok(patched)
}

fn set_field(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) => map.insert(key.to_owned(), value),
            None => map.remove(key),
        };
    }
}

/// Whether anything but metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |object: &Value| -> Map<String, Value> {
        object
            .as_object()
            .map(|map| {
                map.iter()
                    .filter(|(key, _)| {
                        !matches!(key.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

/// Whether two versions differ only in the times of their managedFields entries.
fn same_ignoring_times(old: &Value, new: &Value) -> bool {
    let strip = |object: &Value| {
        let mut copy = object.clone();
        if let Some(entries) = copy["metadata"]["managedFields"].as_array_mut() {
            for entry in entries {
                if let Some(entry) = entry.as_object_mut() {
                    entry.remove("time");
                }
            }
        }
        copy
    };
    strip(old) == strip(new)
}

fn admit(resource: &ResourceType, name: &str, object: &mut Value) -> Result<(), ApiError> {
    if let Some(schema) = &resource.schema {
        schema::admit(object, schema).map_err(|invalid| {
            let causes: Vec<(String, String, &'static str)> = invalid
                .into_iter()
                .map(|invalid| (invalid.field, invalid.message, invalid.reason))
                .collect();
            ApiError::invalid(&resource.kind, &resource.group, name, &causes)
        })?;
    }
    super::control::validate(resource, name, object)?;
    if resource.group.is_empty() && resource.kind == "Secret" {
        string_data(object);
    }
    Ok(())
}

/// A Secret's `stringData` written into `data`, base64-encoded, as the API server stores it
/// (`stringData` wins over `data` for the same key, and is never stored).
fn string_data(object: &mut Value) {
    use base64::Engine as _;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in strings {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            data.insert(
                key,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn conflict_error(resource: &ResourceType, name: &str, conflicts: &[fields::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|conflict| {
            format!(
                "conflict with \"{}\" using {}: {}",
                conflict.manager, conflict.api_version, conflict.path
            )
        })
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .zip(&lines)
        .map(|(conflict, line)| json!({"reason": "FieldManagerConflict", "message": line, "field": conflict.path}))
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({
        "name": name, "group": resource.group, "kind": resource.plural, "causes": causes,
    }))
}
