//! Field paths, list semantics, strategic merge patch and server-side apply's field ownership
//! (`managedFields`, `FieldsV1`).

#![allow(clippy::similar_names)] // `patch` and `path` are the words of the trade

use std::fmt::Write as _;

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::registry::ResourceType;

/// One step of a field path, as `FieldsV1` spells them: `f:name`, `k:{"name":"c"}`, `v:"x"`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Elem {
    Field(String),
    Key(String),
    Value(String),
    Itself,
}

pub(crate) type Path = Vec<Elem>;
pub(crate) type FieldSet = BTreeSet<Path>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced whole.
    Atomic,
    /// Items are identified by these keys and merged one by one.
    Map(Vec<String>),
    /// Items are scalars, merged as a set.
    Set,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The list semantics of the list at `path` in an object of `resource`.
pub(crate) fn list_type(resource: &ResourceType, path: &[Elem]) -> ListType {
    if resource.custom {
        return custom_list_type(resource, path);
    }
    let Some(Elem::Field(field)) = path.last() else {
        return ListType::Atomic;
    };
    let in_container = path
        .iter()
        .any(|elem| matches!(elem, Elem::Field(name) if CONTAINER_LISTS.contains(&name.as_str())));
    let keys: &[&str] = match field.as_str() {
        "ownerReferences" if path.len() == 2 => &["uid"],
        "finalizers" => return ListType::Set,
        name if CONTAINER_LISTS.contains(&name) => &["name"],
        "volumes" | "env" | "imagePullSecrets" | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "ports" if in_container => &["containerPort", "protocol"],
        "ports" if resource.kind == "Service" => &["port", "protocol"],
        "conditions" => &["type"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        _ => return ListType::Atomic,
    };
    ListType::Map(keys.iter().map(|key| (*key).to_owned()).collect())
}

fn custom_list_type(resource: &ResourceType, path: &[Elem]) -> ListType {
    let Some(mut schema) = resource.schema.as_deref() else {
        return ListType::Atomic;
    };
    for elem in path {
        schema = match elem {
            Elem::Field(name) => match schema
                .get("properties")
                .and_then(|properties| properties.get(name))
            {
                Some(child) => child,
                None if path.len() == 2
                    && matches!(&path[0], Elem::Field(m) if m == "metadata") =>
                {
                    return if name == "finalizers" {
                        ListType::Set
                    } else {
                        ListType::Atomic
                    };
                }
                None => return ListType::Atomic,
            },
            Elem::Key(_) | Elem::Value(_) => match schema.get("items") {
                Some(items) => items,
                None => return ListType::Atomic,
            },
            Elem::Itself => schema,
        };
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => ListType::Map(
            schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|key| key.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Lists longer than this merge and own as a whole: item-by-item merging and ownership cost
/// the square of the length.
const MAX_MERGED_ITEMS: usize = 1000;

/// [`list_type`], but atomic for lists too long to merge item by item.
fn list_type_sized(resource: &ResourceType, path: &[Elem], length: usize) -> ListType {
    if length > MAX_MERGED_ITEMS {
        ListType::Atomic
    } else {
        list_type(resource, path)
    }
}

/// The key of a list-map item: the JSON of its key fields (those it has), sorted by name.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let object = item.as_object()?;
    let mut fields = Map::new();
    for key in keys {
        if let Some(value) = object.get(key) {
            fields.insert(key.clone(), value.clone());
        }
    }
    if fields.is_empty() {
        None
    } else {
        Some(Value::Object(fields).to_string())
    }
}

/// Metadata fields the server owns, never tracked or applied.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The leaf fields an object sets, for its `status` (a status write) or everything but it.
pub(crate) fn field_set(object: &Value, resource: &ResourceType, status: bool) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(root) = object.as_object() else {
        return set;
    };
    for (key, value) in root {
        if matches!(key.as_str(), "apiVersion" | "kind") || (key == "status") != status {
            continue;
        }
        let mut path = vec![Elem::Field(key.clone())];
        if key == "metadata" {
            if let Some(metadata) = value.as_object() {
                for (field, child) in metadata {
                    if SERVER_METADATA.contains(&field.as_str()) {
                        continue;
                    }
                    path.push(Elem::Field(field.clone()));
                    collect(child, &mut path, resource, &mut set);
                    path.pop();
                }
            }
            continue;
        }
        collect(value, &mut path, resource, &mut set);
    }
    set
}

fn collect(value: &Value, path: &mut Path, resource: &ResourceType, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(Elem::Field(key.clone()));
                collect(child, path, resource, set);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            match list_type_sized(resource, path, items.len()) {
                ListType::Atomic => {
                    set.insert(path.clone());
                }
                ListType::Set => {
                    for item in items {
                        let mut leaf = path.clone();
                        leaf.push(Elem::Value(item.to_string()));
                        set.insert(leaf);
                    }
                }
                ListType::Map(keys) => {
                    for item in items {
                        let Some(key) = item_key(item, &keys) else {
                            set.insert(path.clone());
                            continue;
                        };
                        path.push(Elem::Key(key));
                        path.push(Elem::Itself);
                        set.insert(path.clone());
                        path.pop();
                        collect(item, path, resource, set);
                        path.pop();
                    }
                }
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

/// The value at a path, if the object has one.
pub(crate) fn get_at<'a>(object: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut node = object;
    for elem in path {
        node = match elem {
            Elem::Field(name) => node.get(name)?,
            Elem::Itself => node,
            Elem::Key(key) => {
                let wanted: Value = serde_json::from_str(key).ok()?;
                node.as_array()?
                    .iter()
                    .find(|item| key_matches(item, &wanted))?
            }
            Elem::Value(value) => {
                let wanted: Value = serde_json::from_str(value).ok()?;
                node.as_array()?.iter().find(|item| **item == wanted)?
            }
        };
    }
    Some(node)
}

fn key_matches(item: &Value, wanted: &Value) -> bool {
    wanted.as_object().is_some_and(|fields| {
        fields
            .iter()
            .all(|(key, value)| item.get(key) == Some(value))
    })
}

/// Removes the field (or list item) at a path; does nothing when it is not there.
fn remove_at(object: &mut Value, path: &[Elem]) {
    let path = match path.last() {
        Some(Elem::Itself) => &path[..path.len() - 1],
        _ => path,
    };
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for elem in parents {
        let next = match elem {
            Elem::Field(name) => node.get_mut(name),
            Elem::Itself => Some(node),
            Elem::Key(key) => {
                let Ok(wanted) = serde_json::from_str::<Value>(key) else {
                    return;
                };
                node.as_array_mut()
                    .and_then(|items| items.iter_mut().find(|item| key_matches(item, &wanted)))
            }
            Elem::Value(_) => return,
        };
        let Some(next) = next else { return };
        node = next;
    }
    match last {
        Elem::Field(name) => {
            if let Some(map) = node.as_object_mut() {
                map.remove(name);
            }
        }
        Elem::Key(key) => {
            if let (Ok(wanted), Some(items)) =
                (serde_json::from_str::<Value>(key), node.as_array_mut())
            {
                items.retain(|item| !key_matches(item, &wanted));
            }
        }
        Elem::Value(value) => {
            if let (Ok(wanted), Some(items)) =
                (serde_json::from_str::<Value>(value), node.as_array_mut())
            {
                items.retain(|item| *item != wanted);
            }
        }
        Elem::Itself => {}
    }
}

/// Merges `applied` into `live` as server-side apply does: maps field by field, list-maps item by
/// item, sets as unions, everything else replaced.
fn merge_applied(live: &mut Value, applied: &Value, path: &mut Path, resource: &ResourceType) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            for (key, value) in applied_map {
                path.push(Elem::Field(key.clone()));
                match live_map.get_mut(key) {
                    Some(existing) => merge_applied(existing, value, path, resource),
                    None => {
                        live_map.insert(key.clone(), value.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(live_items), Value::Array(applied_items)) => {
            match list_type_sized(resource, path, live_items.len().max(applied_items.len())) {
                ListType::Atomic => live_items.clone_from(applied_items),
                ListType::Set => {
                    for item in applied_items {
                        if !live_items.contains(item) {
                            live_items.push(item.clone());
                        }
                    }
                }
                ListType::Map(keys) => {
                    for item in applied_items {
                        let Some(key) = item_key(item, &keys) else {
                            live_items.push(item.clone());
                            continue;
                        };
                        let wanted: Value = serde_json::from_str(&key).unwrap_or(Value::Null);
                        match live_items
                            .iter_mut()
                            .find(|existing| key_matches(existing, &wanted))
                        {
                            Some(existing) => {
                                path.push(Elem::Key(key));
                                merge_applied(existing, item, path, resource);
                                path.pop();
                            }
                            None => live_items.push(item.clone()),
                        }
                    }
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: String,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// The entries of an object's `metadata.managedFields`.
pub(crate) fn entries(object: &Value) -> Vec<Entry> {
    let Some(items) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| Entry {
            manager: item["manager"].as_str().unwrap_or_default().to_owned(),
            operation: item["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: item["apiVersion"].as_str().unwrap_or_default().to_owned(),
            time: item["time"].as_str().unwrap_or_default().to_owned(),
            subresource: item["subresource"].as_str().map(str::to_owned),
            fields: from_fields_v1(&item["fieldsV1"]),
        })
        .collect()
}

/// Writes entries back to `metadata.managedFields` (entries that own nothing are dropped).
fn store_entries(object: &mut Value, entries: Vec<Entry>) {
    let items: Vec<Value> = entries
        .into_iter()
        .filter(|entry| !entry.fields.is_empty())
        .map(|entry| {
            let mut item = json!({
                "manager": entry.manager,
                "operation": entry.operation,
                "apiVersion": entry.api_version,
                "time": entry.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&entry.fields),
            });
            if let Some(subresource) = entry.subresource {
                item["subresource"] = Value::String(subresource);
            }
            item
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if items.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(items));
        }
    }
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for elem in path {
            let key = match elem {
                Elem::Field(name) => format!("f:{name}"),
                Elem::Key(key) => format!("k:{key}"),
                Elem::Value(value) => format!("v:{value}"),
                Elem::Itself => ".".to_owned(),
            };
            let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(child) = child else { break };
            node = child;
        }
    }
    Value::Object(root)
}

fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(node: &Map<String, Value>, path: &mut Path, set: &mut FieldSet) {
        for (key, child) in node {
            let elem = if key == "." {
                Elem::Itself
            } else if let Some(name) = key.strip_prefix("f:") {
                Elem::Field(name.to_owned())
            } else if let Some(item) = key.strip_prefix("k:") {
                Elem::Key(item.to_owned())
            } else if let Some(item) = key.strip_prefix("v:") {
                Elem::Value(item.to_owned())
            } else {
                continue;
            };
            path.push(elem);
            match child.as_object() {
                Some(map) if !map.is_empty() => walk(map, path, set),
                _ => {
                    set.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    if let Some(map) = value.as_object() {
        walk(map, &mut Vec::new(), &mut set);
    }
    set
}

/// Renders a path as the API server does in conflict messages: `.spec.replicas`,
/// `.spec.containers[name="app"].image`.
pub(crate) fn render_path(path: &[Elem]) -> String {
    let mut text = String::new();
    for elem in path {
        match elem {
            Elem::Field(name) => {
                text.push('.');
                text.push_str(name);
            }
            Elem::Key(key) => {
                let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = write!(text, "[{}]", inner.join(","));
            }
            Elem::Value(value) => {
                let _ = write!(text, "[={value}]");
            }
            Elem::Itself => {}
        }
    }
    text
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) manager: String,
    pub(crate) api_version: String,
    pub(crate) path: String,
}

/// What an apply is asked to do.
pub(crate) struct ApplyRequest<'a> {
    pub(crate) resource: &'a ResourceType,
    pub(crate) manager: &'a str,
    pub(crate) force: bool,
    pub(crate) status: bool,
    pub(crate) now: &'a str,
}

/// Server-side apply of `applied` onto `live` (an empty object when creating); returns the new
/// object with its `managedFields`, or the conflicts that stop it.
pub(crate) fn apply(
    live: &Value,
    applied: &Value,
    request: &ApplyRequest<'_>,
) -> Result<Value, Vec<Conflict>> {
    let subresource = request.status.then_some("status");
    let applied_set = field_set(applied, request.resource, request.status);
    let mut entries = entries(live);
    let mut conflicts = Vec::new();
    for entry in &mut entries {
        if entry.is(request.manager, "Apply", subresource)
            || entry.subresource.as_deref() != subresource
        {
            continue;
        }
        let clashing: Vec<Path> = entry
            .fields
            .intersection(&applied_set)
            .filter(|path| {
                path.last() != Some(&Elem::Itself) && get_at(live, path) != get_at(applied, path)
            })
            .cloned()
            .collect();
        for path in clashing {
            if request.force {
                entry.fields.remove(&path);
            } else {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    path: render_path(&path),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous = entries
        .iter()
        .position(|entry| entry.is(request.manager, "Apply", subresource))
        .map(|index| entries.remove(index).fields)
        .unwrap_or_default();
    let mut object = live.clone();
    for path in previous.difference(&applied_set) {
        let prefix = match path.last() {
            Some(Elem::Itself) => &path[..path.len() - 1],
            _ => &path[..],
        };
        let owned_elsewhere = entries
            .iter()
            .any(|entry| entry.fields.iter().any(|owned| owned.starts_with(prefix)));
        if !owned_elsewhere {
            remove_at(&mut object, path);
        }
    }
    let mut body = applied.clone();
    if let Some(map) = body.as_object_mut() {
        if request.status {
            map.retain(|key, _| key == "status");
        } else {
            map.remove("status");
        }
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.retain(|key, _| {
                !SERVER_METADATA.contains(&key.as_str()) || key == "name" || key == "namespace"
            });
        }
    }
    merge_applied(&mut object, &body, &mut Vec::new(), request.resource);
    entries.push(Entry {
        manager: request.manager.to_owned(),
        operation: "Apply".into(),
        api_version: request.resource.api_version(),
        time: request.now.to_owned(),
        subresource: subresource.map(str::to_owned),
        fields: applied_set,
    });
    store_entries(&mut object, entries);
    Ok(object)
}

/// Records a non-apply write by `manager`: the fields it changed become its own and no longer
/// anyone else's.
pub(crate) fn track_update(
    old: &Value,
    new: &mut Value,
    resource: &ResourceType,
    manager: &str,
    status: bool,
    now: &str,
) {
    let subresource = status.then_some("status");
    let old_set = field_set(old, resource, status);
    let new_set = field_set(new, resource, status);
    let changed: FieldSet = new_set
        .iter()
        .filter(|path| get_at(old, path) != get_at(new, path))
        .chain(old_set.difference(&new_set))
        .cloned()
        .collect();
    let mut entries = entries(old);
    if changed.is_empty() {
        store_entries(new, entries);
        return;
    }
    for entry in &mut entries {
        if entry.subresource.as_deref() == subresource && !entry.is(manager, "Update", subresource)
        {
            entry.fields.retain(|path| !changed.contains(path));
        }
    }
    let index = entries
        .iter()
        .position(|entry| entry.is(manager, "Update", subresource))
        .unwrap_or_else(|| {
            entries.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version: resource.api_version(),
                time: now.to_owned(),
                subresource: subresource.map(str::to_owned),
                fields: FieldSet::new(),
            });
            entries.len() - 1
        });
    let entry = &mut entries[index];
    now.clone_into(&mut entry.time);
    entry.fields.extend(changed);
    entry.fields.retain(|path| new_set.contains(path));
    store_entries(new, entries);
}

/// Applies a strategic merge patch (built-in kinds): like a JSON merge patch, but list-maps merge
/// by their key, sets merge as unions, and `$patch: delete|replace`,
/// `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` directives are honoured.
pub(crate) fn strategic_merge(live: &mut Value, patch: &Value, resource: &ResourceType) {
    strategic(live, patch, &mut Vec::new(), resource);
}

fn strategic(live: &mut Value, patch: &Value, path: &mut Path, resource: &ResourceType) {
    let Some(patch_map) = patch.as_object() else {
        *live = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        strip_directives(&mut replacement);
        *live = replacement;
        return;
    }
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(items), Some(remove)) = (
                live.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let Some(live_map) = live.as_object_mut() else {
            return;
        };
        if value.is_null() || value.get("$patch").and_then(Value::as_str) == Some("delete") {
            live_map.remove(key);
            continue;
        }
        path.push(Elem::Field(key.clone()));
        match (live_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                strategic(existing, value, path, resource);
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                merge_list(existing, items, path, resource);
            }
            (_, value) => {
                let mut value = value.clone();
                strip_directives(&mut value);
                live_map.insert(key.clone(), value);
            }
        }
        path.pop();
    }
}

fn merge_list(
    existing: &mut Vec<Value>,
    items: &[Value],
    path: &mut Path,
    resource: &ResourceType,
) {
    if items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *existing = items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    match list_type_sized(resource, path, existing.len().max(items.len())) {
        ListType::Atomic => {
            let mut replacement = Value::Array(items.to_vec());
            strip_directives(&mut replacement);
            if let Value::Array(items) = replacement {
                *existing = items;
            }
        }
        ListType::Set => {
            for item in items {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
        }
        ListType::Map(keys) => {
            // The strategic merge key is the first key; the rest only matter to apply.
            let merge_key = &keys[..1];
            for item in items {
                let Some(key) = item_key(item, merge_key) else {
                    continue;
                };
                let wanted: Value = serde_json::from_str(&key).unwrap_or(Value::Null);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                if delete {
                    existing.retain(|candidate| !key_matches(candidate, &wanted));
                } else if let Some(found) = existing
                    .iter_mut()
                    .find(|candidate| key_matches(candidate, &wanted))
                {
                    path.push(Elem::Key(key));
                    strategic(found, item, path, resource);
                    path.pop();
                } else {
                    let mut item = item.clone();
                    strip_directives(&mut item);
                    existing.push(item);
                }
            }
        }
    }
}

fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !key.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;

    fn deployments() -> std::sync::Arc<ResourceType> {
        Registry::builtin()
            .get("apps", "v1", "deployments")
            .unwrap()
    }

    fn request<'a>(resource: &'a ResourceType, manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            resource,
            manager,
            force,
            status: false,
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let resource = deployments();
        let set = field_set(&deployment(2, "nginx"), &resource, false);
        let encoded = to_fields_v1(&set);
        assert_eq!(encoded["f:spec"]["f:replicas"], json!({}));
        let item =
            &encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(item["."], json!({}));
        assert_eq!(item["f:image"], json!({}));
        assert!(encoded["f:metadata"].get("f:name").is_none());
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn apply_creates_owns_and_detects_conflicts_with_other_managers() {
        let resource = deployments();
        let created = apply(
            &json!({}),
            &deployment(2, "nginx"),
            &request(&resource, "alice", false),
        )
        .unwrap();
        assert_eq!(created["spec"]["replicas"], 2);
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "alice");
        // The same values from another manager: shared ownership, no conflict.
        let shared = apply(
            &created,
            &deployment(2, "nginx"),
            &request(&resource, "bob", false),
        )
        .unwrap();
        assert_eq!(entries(&shared).len(), 2);
        // A different value: a conflict naming the owner and the field.
        let conflicts = apply(
            &shared,
            &deployment(5, "nginx"),
            &request(&resource, "carol", false),
        )
        .unwrap_err();
        let paths: Vec<&str> = conflicts
            .iter()
            .map(|conflict| conflict.path.as_str())
            .collect();
        assert_eq!(paths, [".spec.replicas", ".spec.replicas"]);
        assert_eq!(conflicts[0].manager, "alice");
        // Forced, carol takes the field from both.
        let forced = apply(
            &shared,
            &deployment(5, "nginx"),
            &request(&resource, "carol", true),
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        for entry in entries(&forced) {
            let owns = entry.fields.contains(&vec![
                Elem::Field("spec".into()),
                Elem::Field("replicas".into()),
            ]);
            assert_eq!(owns, entry.manager == "carol", "{}", entry.manager);
        }
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed_unless_someone_else_owns_them() {
        let resource = deployments();
        let mut first = deployment(2, "nginx");
        first["metadata"]["labels"]["tier"] = json!("front");
        let live = apply(&json!({}), &first, &request(&resource, "alice", false)).unwrap();
        let live = apply(
            &live,
            &deployment(2, "nginx"),
            &request(&resource, "alice", false),
        )
        .unwrap();
        assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
        // A label set by another writer survives alice's applies.
        let mut edited = live.clone();
        edited["metadata"]["labels"]["owner"] = json!("ops");
        track_update(&live, &mut edited, &resource, "kubectl-label", false, "now");
        let live = apply(
            &edited,
            &deployment(2, "nginx"),
            &request(&resource, "alice", false),
        )
        .unwrap();
        assert_eq!(live["metadata"]["labels"]["owner"], "ops");
    }

    #[test]
    fn an_update_takes_the_fields_it_changed() {
        let resource = deployments();
        let live = apply(
            &json!({}),
            &deployment(2, "nginx"),
            &request(&resource, "alice", false),
        )
        .unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(7);
        track_update(&live, &mut scaled, &resource, "kubectl-scale", false, "now");
        // alice no longer owns replicas, so her next apply of 2 conflicts with the scaler.
        let conflicts = apply(
            &scaled,
            &deployment(2, "nginx"),
            &request(&resource, "alice", false),
        )
        .unwrap_err();
        assert_eq!(conflicts[0].manager, "kubectl-scale");
        assert_eq!(conflicts[0].path, ".spec.replicas");
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let resource = deployments();
        let mut live = json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "s1"}]}}}});
        let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "v2", "env": [{"name": "B", "value": "2"}]},
            {"name": "sidecar", "$patch": "delete"},
            {"name": "new", "image": "n1"}]}}}});
        strategic_merge(&mut live, &patch, &resource);
        let containers = &live["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[0]["image"], "v2");
        assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(containers[1]["name"], "new");
        assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
        strategic_merge(
            &mut live,
            &json!({"$deleteFromPrimitiveList/metadata": [], "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": null}}),
            &resource,
        );
        assert_eq!(live["metadata"]["finalizers"], json!(["b"]));
        strategic_merge(
            &mut live,
            &json!({"spec": {"template": {"$patch": "replace", "spec": {}}}}),
            &resource,
        );
        assert_eq!(live["spec"]["template"], json!({"spec": {}}));
    }

    #[test]
    fn very_long_lists_merge_and_own_as_a_whole() {
        let resource = deployments();
        let many: Vec<Value> = (0..5000)
            .map(|index| json!({"name": format!("c{index}"), "image": "x"}))
            .collect();
        let object = json!({"spec": {"template": {"spec": {"containers": many}}}});
        let start = std::time::Instant::now();
        let set = field_set(&object, &resource, false);
        assert_eq!(set.len(), 1, "one leaf for the whole list");
        let mut live = object.clone();
        strategic_merge(
            &mut live,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}}),
            &resource,
        );
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn conflict_paths_read_as_the_api_server_writes_them() {
        let path = vec![
            Elem::Field("spec".into()),
            Elem::Field("containers".into()),
            Elem::Key("{\"name\":\"app\"}".into()),
            Elem::Field("image".into()),
        ];
        assert_eq!(render_path(&path), ".spec.containers[name=\"app\"].image");
    }
}
