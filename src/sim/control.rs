//! A small simulated control plane: defaults and validation of built-ins, Deployment ->
//! `ReplicaSet` -> Pods, `StatefulSets`, `DaemonSets`, Jobs, pods scheduled and made Ready after a
//! delay, Endpoints and `EndpointSlices` for Services, garbage collection by ownerReferences,
//! namespace deletion, and the usage model behind metrics.k8s.io.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::SimState;
use super::error::ApiError;
use super::registry::ResourceType;
use super::select::LabelSelector;
use super::store::{
    Change, DeleteOptions, Deleted, Event, Inner, Part, Writer, now, random_suffix,
};
use crate::quantity::{bytes, millicores};

static CLUSTER_IPS: AtomicU32 = AtomicU32::new(10);
/// The most pods a controller creates in one pass.
const BATCH: usize = 500;
static POD_IPS: AtomicU32 = AtomicU32::new(10);

/// Server-side defaults of a new object, as the built-in registries set them.
pub(crate) fn default_new(resource: &ResourceType, object: &mut Value, _inner: &Inner) {
    if resource.custom {
        return;
    }
    default_template(resource, object);
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => {
            let name = object["metadata"]["name"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"] = json!({"phase": "Active"});
        }
        ("", "Service") => {
            let spec = &mut object["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
                let n = CLUSTER_IPS.fetch_add(1, Ordering::Relaxed);
                let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            if spec["sessionAffinity"].is_null() {
                spec["sessionAffinity"] = json!("None");
            }
            if let Some(ports) = spec["ports"].as_array_mut() {
                for port in ports.iter_mut().filter(|port| port.is_object()) {
                    if port["protocol"].is_null() {
                        port["protocol"] = json!("TCP");
                    }
                    if port["targetPort"].is_null() {
                        port["targetPort"] = port["port"].clone();
                    }
                }
            }
            object["status"] = json!({"loadBalancer": {}});
        }
        ("", "Secret") if object["type"].as_str().is_none_or(str::is_empty) => {
            object["type"] = json!("Opaque");
        }
        ("", "Pod") => {
            let spec = &mut object["spec"];
            default_pod_spec(spec);
            if spec["serviceAccountName"].is_null() {
                spec["serviceAccountName"] = json!("default");
            }
            let qos = qos_class(&object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("apps", "Deployment") => {
            default_replicas(object);
            let spec = &mut object["spec"];
            let strategy = &mut spec["strategy"];
            if strategy["type"].is_null() {
                strategy["type"] = json!("RollingUpdate");
            }
            if strategy["type"] == "RollingUpdate" {
                for field in ["maxUnavailable", "maxSurge"] {
                    if strategy["rollingUpdate"][field].is_null() {
                        strategy["rollingUpdate"][field] = json!("25%");
                    }
                }
            }
            for (field, value) in [
                ("revisionHistoryLimit", 10),
                ("progressDeadlineSeconds", 600),
            ] {
                if spec[field].is_null() {
                    spec[field] = json!(value);
                }
            }
        }
        ("apps", "ReplicaSet" | "StatefulSet") => default_replicas(object),
        ("batch", "Job") => {
            let spec = &mut object["spec"];
            for (field, value) in [("completions", 1), ("parallelism", 1), ("backoffLimit", 6)] {
                if spec[field].is_null() {
                    spec[field] = json!(value);
                }
            }
        }
        _ => {}
    }
}

/// A workload's pod template gets a pod spec's defaults, as the API server sets them.
fn default_template(resource: &ResourceType, object: &mut Value) {
    let template = match (resource.group.as_str(), resource.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => "/spec/template/spec",
        ("", "PodTemplate") => "/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => "",
    };
    if let Some(spec) = object
        .pointer_mut(template)
        .filter(|_| !template.is_empty())
    {
        default_pod_spec(spec);
    }
}

/// A pod spec's defaults, in a Pod and in a workload's template alike.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for container in containers
            .iter_mut()
            .filter(|container| container.is_object())
        {
            let latest = container["image"].as_str().is_some_and(|image| {
                !image.rsplit('/').next().unwrap_or(image).contains(':')
                    || image.ends_with(":latest")
            });
            for (field, value) in [
                (
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                ),
                ("terminationMessagePath", json!("/dev/termination-log")),
                ("terminationMessagePolicy", json!("File")),
            ] {
                if container[field].is_null() {
                    container[field] = value;
                }
            }
            if let Some(ports) = container["ports"].as_array_mut() {
                for port in ports.iter_mut().filter(|port| port.is_object()) {
                    if port["protocol"].is_null() {
                        port["protocol"] = json!("TCP");
                    }
                }
            }
        }
    }
}

fn default_replicas(object: &mut Value) {
    if object["spec"]["replicas"].is_null() {
        object["spec"]["replicas"] = json!(1);
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for container in &containers {
        let resources = &container["resources"];
        for resource in ["cpu", "memory"] {
            let request = &resources["requests"][resource];
            let limit = &resources["limits"][resource];
            any |= !request.is_null() || !limit.is_null();
            guaranteed &= !limit.is_null() && (request.is_null() || request == limit);
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Marks a new CRD established, its names accepted.
pub(crate) fn crd_established(object: &mut Value) {
    let stamp = now();
    let stored: Vec<Value> = object["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|version| version["storage"] == Value::Bool(true))
        .map(|version| version["name"].clone())
        .collect();
    object["status"] = json!({
        "acceptedNames": object["spec"]["names"].clone(),
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": stamp},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": stamp},
        ],
    });
}

/// The built-in validation zen-sim does: the rules a client is most likely to trip over.
pub(crate) fn validate(
    resource: &ResourceType,
    name: &str,
    object: &Value,
) -> Result<(), ApiError> {
    if resource.custom {
        return Ok(());
    }
    let mut causes: Vec<(String, String, &'static str)> = Vec::new();
    let mut required = |field: &str| {
        causes.push((
            field.to_owned(),
            format!("{field}: Required value"),
            "FieldValueRequired",
        ));
    };
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => check_pod_spec(&object["spec"], "spec", &mut required),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if object["spec"]["selector"].is_null() {
                required("spec.selector");
            }
            if let Some(problem) = workload_shape(&object["spec"]) {
                return Err(ApiError::invalid(
                    &resource.kind,
                    &resource.group,
                    name,
                    &[problem],
                ));
            }
            check_pod_spec(
                &object["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut required,
            );
            let selector = selector_of(&object["spec"]["selector"]);
            if let Some(selector) = selector
                && !object["spec"]["selector"].is_null()
                && !selector.matches(&object["spec"]["template"]["metadata"]["labels"])
            {
                causes.push((
                        "spec.template.metadata.labels".into(),
                        "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into(),
                        "FieldValueInvalid",
                    ));
            }
        }
        ("batch", "Job") if workload_shape(&object["spec"]).is_some() => {
            let problem = workload_shape(&object["spec"]).unwrap_or_default();
            return Err(ApiError::invalid(
                &resource.kind,
                &resource.group,
                name,
                &[problem],
            ));
        }
        ("batch", "Job") => check_pod_spec(
            &object["spec"]["template"]["spec"],
            "spec.template.spec",
            &mut required,
        ),
        ("", "ConfigMap") => {
            for (key, value) in object["data"].as_object().into_iter().flatten() {
                if !value.is_string() {
                    return Err(ApiError::bad_request(format!(
                        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal {} into Go struct field ConfigMap.data of type string (key {key})",
                        if value.is_number() {
                            "number"
                        } else {
                            "non-string value"
                        }
                    )));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &resource.kind,
            &resource.group,
            name,
            &causes,
        ))
    }
}

/// The first structural problem of a workload's selector, replicas or pod template: what the
/// API server's decoding and validation refuse before the controllers could trip on it.
fn workload_shape(spec: &Value) -> Option<(String, String, &'static str)> {
    let invalid = |field: &str, why: &str| {
        Some((
            field.to_owned(),
            format!("{field}: Invalid value: {why}"),
            "FieldValueInvalid",
        ))
    };
    let strings = |value: &Value| {
        value.is_null()
            || value
                .as_object()
                .is_some_and(|map| map.values().all(Value::is_string))
    };
    let selector = &spec["selector"];
    if !selector.is_null() {
        if !selector.is_object() || !strings(&selector["matchLabels"]) {
            return invalid("spec.selector", "must be a label selector");
        }
        let labels = selector["matchLabels"]
            .as_object()
            .is_some_and(|map| !map.is_empty());
        let expressions = selector["matchExpressions"]
            .as_array()
            .is_some_and(|list| !list.is_empty());
        if !labels && !expressions {
            return invalid("spec.selector", "empty selector is invalid for a workload");
        }
    }
    let replicas = &spec["replicas"];
    if !replicas.is_null()
        && !replicas
            .as_i64()
            .is_some_and(|count| (0..=i64::from(i32::MAX)).contains(&count))
    {
        return invalid("spec.replicas", "must be an integer from 0 to 2147483647");
    }
    let template = &spec["template"];
    if !template.is_null()
        && (!template.is_object()
            || !(template["metadata"].is_null() || template["metadata"].is_object())
            || !strings(&template["metadata"]["labels"])
            || !(template["spec"].is_null() || template["spec"].is_object()))
    {
        return invalid(
            "spec.template",
            "must be a pod template with metadata.labels a map of strings",
        );
    }
    None
}

fn check_pod_spec(spec: &Value, at: &str, required: &mut impl FnMut(&str)) {
    match spec["containers"].as_array() {
        Some(containers) if !containers.is_empty() => {
            for (index, container) in containers.iter().enumerate() {
                if container["name"].as_str().is_none_or(str::is_empty) {
                    required(&format!("{at}.containers[{index}].name"));
                }
                if container["image"].as_str().is_none_or(str::is_empty) {
                    required(&format!("{at}.containers[{index}].image"));
                }
            }
        }
        _ => required(&format!("{at}.containers")),
    }
}

/// A `LabelSelector` object (`matchLabels`, `matchExpressions`) as a parsed selector.
pub(crate) fn selector_of(selector: &Value) -> Option<LabelSelector> {
    let mut terms = Vec::new();
    for (key, value) in selector["matchLabels"].as_object().into_iter().flatten() {
        terms.push(format!("{key}={}", value.as_str().unwrap_or_default()));
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match expression["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_owned(),
        });
    }
    LabelSelector::parse(&terms.join(",")).ok()
}

/// A map selector (`Service.spec.selector`).
fn map_selector(selector: &Value) -> Option<LabelSelector> {
    let map = selector.as_object().filter(|map| !map.is_empty())?;
    let terms: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    LabelSelector::parse(&terms.join(",")).ok()
}

/// The objects of a type (in a namespace), parsed.
fn current(state: &SimState, resource: &ResourceType, namespace: Option<&str>) -> Vec<Arc<Value>> {
    let (stored, _, _) = state.store.watch_current(resource, namespace);
    stored
        .iter()
        .map(|object| Arc::new(object.value()))
        .collect()
}

/// The controllers: they follow the store's `events` for as long as the simulator runs. The
/// caller subscribes before it seeds the store, so that no first namespace goes unseen.
pub(crate) async fn run(state: Arc<SimState>, mut events: broadcast::Receiver<Arc<Event>>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                // A bug of the simulator's own must not stop its control plane.
                let reacted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    react(&state, &event);
                }));
                if reacted.is_err() {
                    resync(&state);
                }
            }
            Err(RecvError::Lagged(_)) => resync(&state),
            Err(RecvError::Closed) => return,
        }
    }
}

fn controller() -> Writer {
    Writer {
        manager: "kube-controller-manager".into(),
        dry_run: false,
    }
}

pub(crate) fn kind(
    state: &SimState,
    group: &str,
    version: &str,
    plural: &str,
) -> Option<Arc<ResourceType>> {
    state.store.resource(group, version, plural)
}

fn react(state: &Arc<SimState>, event: &Event) {
    let object = &event.object.value();
    let namespace = event.namespace.as_str();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let deleting = !object["metadata"]["deletionTimestamp"].is_null();
    match event.resource.as_str() {
        "deployments.apps" if event.change != Change::Deleted => {
            reconcile_deployment(state, namespace, name);
        }
        "replicasets.apps" => {
            if event.change != Change::Deleted {
                reconcile_replicaset(state, namespace, name);
            }
            reconcile_owner(state, object, namespace);
        }
        "statefulsets.apps" if event.change != Change::Deleted => {
            reconcile_statefulset(state, namespace, name);
        }
        "daemonsets.apps" if event.change != Change::Deleted => {
            reconcile_daemonset(state, namespace, name);
        }
        "jobs.batch" if event.change != Change::Deleted => reconcile_job(state, namespace, name),
        "pods" => {
            if event.change == Change::Added {
                schedule_pod(state, namespace, name);
            }
            reconcile_owner(state, object, namespace);
            reconcile_services(state, namespace);
        }
        "services" => {
            if event.change == Change::Deleted {
                cleanup_service(state, namespace, name);
            } else {
                reconcile_service(state, namespace, name);
            }
        }
        "namespaces" if deleting && event.change != Change::Deleted => {
            terminate_namespace(state, name);
        }
        "namespaces" if event.change == Change::Added => {
            ensure_default_service_account(state, name);
        }
        _ => {}
    }
    if event.change == Change::Deleted {
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            collect_garbage(state, uid);
        }
        // The last object of a terminating namespace takes the namespace with it.
        let terminating = !namespace.is_empty()
            && kind(state, "", "v1", "namespaces")
                .and_then(|namespaces| state.store.get_stored(&namespaces, "", namespace).ok())
                .is_some_and(|stored| stored.deleting());
        if terminating {
            state.store.finish_namespace(namespace);
        }
        // An owner in foreground deletion may have been waiting for this dependent.
        for owner in object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some((resource, owner)) = owner["uid"]
                .as_str()
                .and_then(|uid| state.store.by_uid(uid))
            else {
                continue;
            };
            if !owner["metadata"]["deletionTimestamp"].is_null() {
                finish_propagation(state, &resource, &owner);
            }
        }
    } else if deleting {
        let resource = state
            .store
            .read()
            .registry
            .all()
            .find(|resource| resource.group_resource() == event.resource && !resource.read_only)
            .cloned();
        if let Some(resource) = resource {
            finish_propagation(state, &resource, object);
        }
    }
}

/// After missed events: every workload, service, unscheduled pod and terminating namespace
/// is looked at again.
fn resync(state: &Arc<SimState>) {
    let named = |group: &str, plural: &str| -> Vec<(String, String)> {
        kind(state, group, "v1", plural).map_or_else(Vec::new, |resource| {
            current(state, &resource, None)
                .iter()
                .map(|object| {
                    let field = |key: &str| {
                        object["metadata"][key]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (field("namespace"), field("name"))
                })
                .collect()
        })
    };
    for (namespace, name) in named("apps", "deployments") {
        reconcile_deployment(state, &namespace, &name);
    }
    for (namespace, name) in named("apps", "replicasets") {
        reconcile_replicaset(state, &namespace, &name);
    }
    for (namespace, name) in named("apps", "statefulsets") {
        reconcile_statefulset(state, &namespace, &name);
    }
    for (namespace, name) in named("apps", "daemonsets") {
        reconcile_daemonset(state, &namespace, &name);
    }
    for (namespace, name) in named("batch", "jobs") {
        reconcile_job(state, &namespace, &name);
    }
    for (namespace, name) in named("", "services") {
        reconcile_service(state, &namespace, &name);
    }
    for (namespace, name) in named("", "pods") {
        schedule_pod(state, &namespace, &name);
    }
    for (_, name) in named("", "namespaces") {
        let deleting = kind(state, "", "v1", "namespaces")
            .and_then(|namespaces| state.store.get_stored(&namespaces, "", &name).ok())
            .is_some_and(|namespace| namespace.deleting());
        if deleting {
            terminate_namespace(state, &name);
        } else {
            ensure_default_service_account(state, &name);
        }
    }
}

/// A workload's type and the workload itself, unless it is gone or being deleted.
fn live(
    state: &SimState,
    group: &str,
    plural: &str,
    namespace: &str,
    name: &str,
) -> Option<(Arc<ResourceType>, Arc<Value>)> {
    let resource = kind(state, group, "v1", plural)?;
    let object = state.store.get(&resource, namespace, name).ok()?;
    object["metadata"]["deletionTimestamp"]
        .is_null()
        .then_some((resource, object))
}

/// Leaves out the counters that are zero, as the controllers' statuses do.
fn drop_zeros(status: &mut Value, fields: &[&str]) {
    if let Some(map) = status.as_object_mut() {
        for field in fields {
            if map.get(*field).is_some_and(|value| value == 0) {
                map.remove(*field);
            }
        }
    }
}

fn ensure_default_service_account(state: &SimState, namespace: &str) {
    if let Some(accounts) = kind(state, "", "v1", "serviceaccounts") {
        let _ = state.store.create(
            &accounts,
            namespace,
            json!({"metadata": {"name": "default"}}),
            &controller(),
        );
    }
}

fn owner_reference(owner: &Value, block: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block,
    })
}

fn controller_uid(object: &Value) -> Option<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|owner| owner["controller"] == Value::Bool(true))
        .and_then(|owner| owner["uid"].as_str())
}

/// Objects of a type in a namespace whose controller is `uid`, not being deleted.
fn owned(state: &SimState, resource: &ResourceType, namespace: &str, uid: &str) -> Vec<Arc<Value>> {
    let objects = current(state, resource, Some(namespace));
    objects
        .into_iter()
        .filter(|object| {
            controller_uid(object) == Some(uid) && object["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
}

fn replicas(object: &Value) -> usize {
    usize::try_from(object["spec"]["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0)
}

fn write_status(state: &SimState, resource: &ResourceType, object: &Value, status: Value) {
    if object["status"] == status {
        return;
    }
    let mut updated = object.clone();
    updated["status"] = status;
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let _ = state.store.update(
        resource,
        namespace,
        name,
        updated,
        Part::Status,
        &controller(),
    );
}

fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let text = template.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|index| {
            ALPHABET[usize::try_from((hash >> (index * 6)) % ALPHABET.len() as u64).unwrap_or(0)]
                as char
        })
        .collect()
}

#[allow(clippy::too_many_lines)] // the ReplicaSets, then the status with its conditions
fn reconcile_deployment(state: &SimState, namespace: &str, name: &str) {
    let Some((deployments, deployment)) = live(state, "apps", "deployments", namespace, name)
    else {
        return;
    };
    let Some(sets) = kind(state, "apps", "v1", "replicasets") else {
        return;
    };
    let uid = deployment["metadata"]["uid"].as_str().unwrap_or_default();
    let template = &deployment["spec"]["template"];
    let hash = template_hash(template);
    let current_name = format!("{name}-{hash}");
    let wanted = replicas(&deployment);
    let mut sets_now = owned(state, &sets, namespace, uid);
    if !sets_now
        .iter()
        .any(|set| set["metadata"]["name"] == current_name.as_str())
    {
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut pod_template = template.clone();
        pod_template["metadata"]["labels"] = labels.clone();
        let set = json!({
            "metadata": {"name": current_name, "labels": labels, "ownerReferences": [owner_reference(&deployment, true)],
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": wanted, "selector": selector, "template": pod_template},
        });
        if let Ok(created) = state.store.create(&sets, namespace, set, &controller()) {
            sets_now.push(created);
        }
    }
    for set in &sets_now {
        let is_current = set["metadata"]["name"] == current_name.as_str();
        let target = if is_current { wanted } else { 0 };
        if replicas(set) != target {
            let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
            let patch = json!({"spec": {"replicas": target}});
            let _ = state.store.patch(
                &sets,
                namespace,
                set_name,
                super::store::PatchKind::Merge,
                &patch,
                Part::Main,
                &controller(),
            );
        }
    }
    let count = |field: &str| -> i64 {
        sets_now
            .iter()
            .map(|set| set["status"][field].as_i64().unwrap_or(0))
            .sum()
    };
    let current = sets_now
        .iter()
        .find(|set| set["metadata"]["name"] == current_name.as_str());
    let updated = current.map_or(0, |set| set["status"]["replicas"].as_i64().unwrap_or(0));
    let ready = count("readyReplicas");
    let available = i64::try_from(wanted).unwrap_or(0) <= ready;
    let stamp = now();
    let previous = |kind: &str| -> Option<Value> {
        deployment["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|condition| condition["type"] == kind)
            .cloned()
    };
    let condition = |kind: &str, status: bool, reason: &str, message: String| -> Value {
        let status = if status { "True" } else { "False" };
        let since = previous(kind)
            .filter(|old| old["status"] == status)
            .map_or_else(|| json!(stamp), |old| old["lastTransitionTime"].clone());
        json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since, "lastUpdateTime": since})
    };
    let mut status = json!({
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": count("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            condition("Available", available, if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                      if available { "Deployment has minimum availability.".into() } else { "Deployment does not have minimum availability.".into() }),
            condition("Progressing", true, if available { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                      format!("ReplicaSet \"{current_name}\" is progressing.")),
        ],
    });
    if ready < i64::try_from(wanted).unwrap_or(0) {
        status["unavailableReplicas"] = json!(i64::try_from(wanted).unwrap_or(0) - ready);
    }
    drop_zeros(
        &mut status,
        &[
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "replicas",
        ],
    );
    write_status(state, &deployments, &deployment, status);
}

fn pod_from_template(owner: &Value, template: &Value, name: &str) -> Value {
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(name);
    metadata["ownerReferences"] = json!([owner_reference(owner, true)]);
    json!({"metadata": metadata, "spec": template["spec"].clone()})
}

fn reconcile_replicaset(state: &SimState, namespace: &str, name: &str) {
    let Some((sets, set)) = live(state, "apps", "replicasets", namespace, name) else {
        return;
    };
    let Some(pods) = kind(state, "", "v1", "pods") else {
        return;
    };
    let uid = set["metadata"]["uid"].as_str().unwrap_or_default();
    let mut members = owned(state, &pods, namespace, uid);
    let wanted = replicas(&set);
    // At most a batch per pass: each new pod's event brings the next pass.
    let mut created = 0;
    while members.len() < wanted && created < BATCH {
        created += 1;
        let pod = pod_from_template(
            &set,
            &set["spec"]["template"],
            &format!("{name}-{}", random_suffix()),
        );
        match state.store.create(&pods, namespace, pod, &controller()) {
            Ok(created) => members.push(created),
            Err(_) => break,
        }
    }
    while members.len() > wanted {
        // Not-ready pods go first, then the youngest, as the ReplicaSet controller ranks them.
        members.sort_by_key(|pod| {
            (
                is_ready(pod),
                std::cmp::Reverse(
                    pod["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
            )
        });
        let victim = members.remove(0);
        let _ = state.store.delete(
            &pods,
            namespace,
            victim["metadata"]["name"].as_str().unwrap_or_default(),
            &DeleteOptions::default(),
        );
    }
    let ready = members.iter().filter(|pod| is_ready(pod)).count();
    let mut status = json!({"replicas": members.len(), "fullyLabeledReplicas": members.len(), "readyReplicas": ready,
                            "availableReplicas": ready, "observedGeneration": set["metadata"]["generation"]});
    drop_zeros(
        &mut status,
        &["readyReplicas", "availableReplicas", "fullyLabeledReplicas"],
    );
    write_status(state, &sets, &set, status);
}

fn reconcile_statefulset(state: &SimState, namespace: &str, name: &str) {
    let Some((sets, set)) = live(state, "apps", "statefulsets", namespace, name) else {
        return;
    };
    let Some(pods) = kind(state, "", "v1", "pods") else {
        return;
    };
    let uid = set["metadata"]["uid"].as_str().unwrap_or_default();
    let wanted = replicas(&set);
    let members = owned(state, &pods, namespace, uid);
    let existing: std::collections::HashSet<&str> = members
        .iter()
        .filter_map(|pod| pod["metadata"]["name"].as_str())
        .collect();
    let missing = (0..wanted)
        .map(|ordinal| (ordinal, format!("{name}-{ordinal}")))
        .filter(|(_, pod_name)| !existing.contains(pod_name.as_str()));
    // At most a batch per pass: each new pod's event brings the next pass.
    for (ordinal, pod_name) in missing.take(BATCH) {
        {
            let mut pod = pod_from_template(&set, &set["spec"]["template"], &pod_name);
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
            pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
            let _ = state.store.create(&pods, namespace, pod, &controller());
        }
    }
    for pod in &members {
        let ordinal = pod["metadata"]["name"]
            .as_str()
            .and_then(|pod_name| pod_name.rsplit('-').next())
            .and_then(|n| n.parse::<usize>().ok());
        if ordinal.is_none_or(|ordinal| ordinal >= wanted) {
            let _ = state.store.delete(
                &pods,
                namespace,
                pod["metadata"]["name"].as_str().unwrap_or_default(),
                &DeleteOptions::default(),
            );
        }
    }
    let members = owned(state, &pods, namespace, uid);
    let ready = members.iter().filter(|pod| is_ready(pod)).count();
    let status = json!({"replicas": members.len(), "readyReplicas": ready, "currentReplicas": members.len(), "updatedReplicas": members.len(),
                        "availableReplicas": ready, "observedGeneration": set["metadata"]["generation"]});
    write_status(state, &sets, &set, status);
}

fn reconcile_daemonset(state: &SimState, namespace: &str, name: &str) {
    let Some((sets, set)) = live(state, "apps", "daemonsets", namespace, name) else {
        return;
    };
    let (Some(pods), Some(nodes)) = (
        kind(state, "", "v1", "pods"),
        kind(state, "", "v1", "nodes"),
    ) else {
        return;
    };
    let uid = set["metadata"]["uid"].as_str().unwrap_or_default();
    // The nodes the pods' nodeSelector admits, as the DaemonSet controller counts them.
    let node_list: Vec<Arc<Value>> = current(state, &nodes, None)
        .into_iter()
        .filter(|node| selects(&set["spec"]["template"]["spec"]["nodeSelector"], node))
        .collect();
    let members = owned(state, &pods, namespace, uid);
    for node in &node_list {
        let node_name = node["metadata"]["name"].as_str().unwrap_or_default();
        if !members
            .iter()
            .any(|pod| pod["spec"]["nodeName"] == node_name)
        {
            let mut pod = pod_from_template(
                &set,
                &set["spec"]["template"],
                &format!("{name}-{}", random_suffix()),
            );
            pod["spec"]["nodeName"] = json!(node_name);
            let _ = state.store.create(&pods, namespace, pod, &controller());
        }
    }
    let members = owned(state, &pods, namespace, uid);
    let ready = members.iter().filter(|pod| is_ready(pod)).count();
    let status = json!({"desiredNumberScheduled": node_list.len(), "currentNumberScheduled": members.len(), "numberReady": ready,
                        "numberAvailable": ready, "updatedNumberScheduled": members.len(), "numberMisscheduled": 0,
                        "observedGeneration": set["metadata"]["generation"]});
    write_status(state, &sets, &set, status);
}

fn reconcile_job(state: &SimState, namespace: &str, name: &str) {
    let Some((jobs, job)) = live(state, "batch", "jobs", namespace, name) else {
        return;
    };
    let Some(pods) = kind(state, "", "v1", "pods") else {
        return;
    };
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
    let completions =
        usize::try_from(job["spec"]["completions"].as_i64().unwrap_or(1)).unwrap_or(1);
    let parallelism =
        usize::try_from(job["spec"]["parallelism"].as_i64().unwrap_or(1)).unwrap_or(1);
    let members = owned(state, &pods, namespace, uid);
    let succeeded = members
        .iter()
        .filter(|pod| pod["status"]["phase"] == "Succeeded")
        .count();
    let active = members
        .iter()
        .filter(|pod| {
            !matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            )
        })
        .count();
    if succeeded < completions {
        for _ in active..parallelism.min(completions - succeeded).min(active + BATCH) {
            let mut pod = pod_from_template(
                &job,
                &job["spec"]["template"],
                &format!("{name}-{}", random_suffix()),
            );
            pod["metadata"]["labels"]["job-name"] = json!(name);
            pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] = json!(name);
            let _ = state.store.create(&pods, namespace, pod, &controller());
        }
    }
    let mut status = json!({"active": active, "succeeded": succeeded, "ready": 0});
    if job["status"]["startTime"].is_null() {
        status["startTime"] = json!(now());
    } else {
        status["startTime"] = job["status"]["startTime"].clone();
    }
    if succeeded >= completions {
        status["completionTime"] = job["status"]["completionTime"]
            .as_str()
            .map_or_else(|| json!(now()), |time| json!(time));
        status["conditions"] = json!([{"type": "Complete", "status": "True", "lastTransitionTime": status["completionTime"], "lastProbeTime": status["completionTime"]}]);
        if let Some(map) = status.as_object_mut() {
            map.remove("active");
        }
    }
    write_status(state, &jobs, &job, status);
}

/// Updates the status of whatever controls `object` (a pod or a `ReplicaSet`).
fn reconcile_owner(state: &SimState, object: &Value, namespace: &str) {
    let Some(owner) = object["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|owners| {
            owners
                .iter()
                .find(|owner| owner["controller"] == Value::Bool(true))
        })
    else {
        return;
    };
    let name = owner["name"].as_str().unwrap_or_default();
    match owner["kind"].as_str() {
        Some("ReplicaSet") => reconcile_replicaset(state, namespace, name),
        Some("Deployment") => reconcile_deployment(state, namespace, name),
        Some("StatefulSet") => reconcile_statefulset(state, namespace, name),
        Some("DaemonSet") => reconcile_daemonset(state, namespace, name),
        Some("Job") => reconcile_job(state, namespace, name),
        _ => {}
    }
}

/// Whether a pod's `nodeSelector` admits `node`: every label it names, with the same value.
fn selects(node_selector: &Value, node: &Value) -> bool {
    node_selector.as_object().is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(key, value)| node["metadata"]["labels"][key] == *value)
    })
}

/// A pod no node admits stays Pending, saying why as the scheduler does.
fn unschedulable(state: &SimState, pods: &ResourceType, pod: &Value, nodes: usize) {
    if pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|condition| condition["reason"] == "Unschedulable")
    {
        return;
    }
    let message = format!(
        "0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node affinity/selector."
    );
    let status = json!({
        "phase": "Pending", "qosClass": pod["status"]["qosClass"],
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastTransitionTime": now()}],
    });
    write_kubelet_status(state, pods, pod, status);
}

fn schedule_pod(state: &Arc<SimState>, namespace: &str, name: &str) {
    let (Some(pods), Some(nodes)) = (
        kind(state, "", "v1", "pods"),
        kind(state, "", "v1", "nodes"),
    ) else {
        return;
    };
    let Ok(pod) = state.store.get(&pods, namespace, name) else {
        return;
    };
    if pod["status"]["phase"] != "Pending" || !pod["status"]["podIP"].is_null() {
        return;
    }
    let node_list = current(state, &nodes, None);
    let node_name = match pod["spec"]["nodeName"].as_str() {
        Some(node) => node.to_owned(),
        None if node_list.is_empty() => return,
        None => {
            // The scheduler's first filter: the nodes the pod's nodeSelector admits.
            let fitting: Vec<&Arc<Value>> = node_list
                .iter()
                .filter(|node| selects(&pod["spec"]["nodeSelector"], node))
                .collect();
            if fitting.is_empty() {
                unschedulable(state, &pods, &pod, node_list.len());
                return;
            }
            let index =
                usize::try_from(POD_IPS.load(Ordering::Relaxed)).unwrap_or(0) % fitting.len();
            fitting[index]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let n = POD_IPS.fetch_add(1, Ordering::Relaxed);
    let ip = format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff);
    let host_ip = node_list
        .iter()
        .find(|node| node["metadata"]["name"] == node_name.as_str())
        .and_then(|node| node["status"]["addresses"][0]["address"].as_str())
        .unwrap_or("172.18.0.2")
        .to_owned();
    let mut scheduled = (*pod).clone();
    scheduled["spec"]["nodeName"] = json!(node_name);
    if state
        .store
        .update(
            &pods,
            namespace,
            name,
            scheduled,
            Part::Main,
            &Writer {
                manager: "kube-scheduler".into(),
                dry_run: false,
            },
        )
        .is_err()
    {
        return;
    }
    let stamp = now();
    let mut status = json!({
        "phase": "Pending", "qosClass": pod["status"]["qosClass"], "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip,
        "startTime": stamp,
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}],
    });
    if let Ok(current) = state.store.get(&pods, namespace, name) {
        status["qosClass"] = current["status"]["qosClass"].clone();
        write_kubelet_status(state, &pods, &current, status);
    }
    let delay = state.options.ready_delay;
    let finishes = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|owner| owner["kind"] == "Job");
    let state = Arc::clone(state);
    let namespace = namespace.to_owned();
    let name = name.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        start_pod(&state, &pods, &namespace, &name, finishes);
    });
}

fn write_kubelet_status(state: &SimState, pods: &ResourceType, pod: &Value, status: Value) {
    let mut updated = pod.clone();
    updated["status"] = status;
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let _ = state.store.update(
        pods,
        namespace,
        name,
        updated,
        Part::Status,
        &Writer {
            manager: "kubelet".into(),
            dry_run: false,
        },
    );
}

fn start_pod(state: &SimState, pods: &ResourceType, namespace: &str, name: &str, finishes: bool) {
    let Ok(pod) = state.store.get(pods, namespace, name) else {
        return;
    };
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let stamp = now();
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| {
            let state = if finishes {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}})
            } else {
                json!({"running": {"startedAt": stamp}})
            };
            json!({"name": container["name"], "image": container["image"], "imageID": "", "ready": !finishes,
                   "started": !finishes, "restartCount": 0, "state": state})
        })
        .collect();
    let ready = if finishes { "False" } else { "True" };
    let mut status = pod["status"].clone();
    status["phase"] = json!(if finishes { "Succeeded" } else { "Running" });
    status["containerStatuses"] = json!(containers);
    status["conditions"] = json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": pod["status"]["startTime"]},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
        {"type": "Ready", "status": ready, "lastTransitionTime": stamp},
    ]);
    write_kubelet_status(state, pods, &pod, status);
}

/// Marks a pod `NotReady` (tests use it to simulate a failing readiness probe) or Ready again.
pub(crate) fn set_pod_ready(
    state: &SimState,
    namespace: &str,
    name: &str,
    ready: bool,
) -> Result<(), ApiError> {
    let pods = kind(state, "", "v1", "pods").ok_or_else(|| ApiError::not_found("pods", name))?;
    let pod = state.store.get(&pods, namespace, name)?;
    let flag = if ready { "True" } else { "False" };
    let mut status = pod["status"].clone();
    let stamp = now();
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for condition in conditions {
            if matches!(
                condition["type"].as_str(),
                Some("Ready" | "ContainersReady")
            ) && condition["status"] != flag
            {
                condition["status"] = json!(flag);
                condition["lastTransitionTime"] = json!(stamp);
            }
        }
    }
    if let Some(containers) = status["containerStatuses"].as_array_mut() {
        for container in containers {
            container["ready"] = json!(ready);
        }
    }
    write_kubelet_status(state, &pods, &pod, status);
    Ok(())
}

fn reconcile_services(state: &SimState, namespace: &str) {
    let Some(services) = kind(state, "", "v1", "services") else {
        return;
    };
    let list = current(state, &services, Some(namespace));
    for service in list {
        reconcile_service(
            state,
            namespace,
            service["metadata"]["name"].as_str().unwrap_or_default(),
        );
    }
}

fn resolve_port(target: &Value, pod: &Value) -> Option<i64> {
    if let Some(number) = target.as_i64() {
        return Some(number);
    }
    let wanted = target.as_str()?;
    if let Ok(number) = wanted.parse() {
        return Some(number);
    }
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|container| container["ports"].as_array().into_iter().flatten())
        .find(|port| port["name"] == wanted)
        .and_then(|port| port["containerPort"].as_i64())
}

fn reconcile_service(state: &SimState, namespace: &str, name: &str) {
    let (Some(services), Some(pods), Some(endpoints), Some(slices)) = (
        kind(state, "", "v1", "services"),
        kind(state, "", "v1", "pods"),
        kind(state, "", "v1", "endpoints"),
        kind(state, "discovery.k8s.io", "v1", "endpointslices"),
    ) else {
        return;
    };
    let Ok(service) = state.store.get(&services, namespace, name) else {
        return;
    };
    let Some(selector) = map_selector(&service["spec"]["selector"]) else {
        return;
    };
    let pod_list = current(state, &pods, Some(namespace));
    let members: Vec<&Arc<Value>> = pod_list
        .iter()
        .filter(|pod| {
            selector.matches(&pod["metadata"]["labels"])
                && pod["status"]["podIP"].is_string()
                && pod["metadata"]["deletionTimestamp"].is_null()
        })
        .collect();
    let service_ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let target = |pod: &Value| json!({"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]});
    let address = |pod: &Value| json!({"ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"], "targetRef": target(pod)});
    let first = members.first().map_or(Value::Null, |pod| (***pod).clone());
    let ports: Vec<Value> = service_ports
        .iter()
        .map(|port| {
            let mut entry = json!({"port": resolve_port(&port["targetPort"], &first).or_else(|| port["port"].as_i64()), "protocol": port["protocol"]});
            if let Some(port_name) = port["name"].as_str() {
                entry["name"] = json!(port_name);
            }
            entry
        })
        .collect();
    let ready: Vec<Value> = members
        .iter()
        .filter(|pod| is_ready(pod))
        .map(|pod| address(pod))
        .collect();
    let not_ready: Vec<Value> = members
        .iter()
        .filter(|pod| !is_ready(pod))
        .map(|pod| address(pod))
        .collect();
    let mut subset = json!({"ports": ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if members.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name, "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    let endpoints_object = json!({"metadata": {"name": name, "labels": service["metadata"]["labels"].clone()}, "subsets": subsets});
    upsert(state, &endpoints, namespace, name, endpoints_object);
    let slice_endpoints: Vec<Value> = members
        .iter()
        .map(|pod| {
            let ready = is_ready(pod);
            json!({"addresses": [pod["status"]["podIP"]], "conditions": {"ready": ready, "serving": ready, "terminating": false},
                   "nodeName": pod["spec"]["nodeName"], "targetRef": target(pod)})
        })
        .collect();
    let slice_name = format!("{name}-{}", &template_hash(&json!(name))[..5]);
    let slice = json!({
        "metadata": {"name": slice_name, "ownerReferences": owner, "labels": {
            "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4", "endpoints": slice_endpoints, "ports": ports,
    });
    upsert(state, &slices, namespace, &slice_name, slice);
}

fn cleanup_service(state: &SimState, namespace: &str, name: &str) {
    if let Some(endpoints) = kind(state, "", "v1", "endpoints") {
        let _ = state
            .store
            .delete(&endpoints, namespace, name, &DeleteOptions::default());
    }
}

/// Creates or replaces an object the control plane owns (a no-op when nothing changed).
fn upsert(state: &SimState, resource: &ResourceType, namespace: &str, name: &str, object: Value) {
    match state.store.get(resource, namespace, name) {
        Ok(existing) => {
            let mut updated = (*existing).clone();
            if let (Some(target), Some(source)) = (updated.as_object_mut(), object.as_object()) {
                for (key, value) in source {
                    if key == "metadata" {
                        for (field, value) in value.as_object().into_iter().flatten() {
                            target["metadata"][field] = value.clone();
                        }
                    } else {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
            let _ = state.store.update(
                resource,
                namespace,
                name,
                updated,
                Part::Main,
                &controller(),
            );
        }
        Err(_) => {
            let _ = state
                .store
                .create(resource, namespace, object, &controller());
        }
    }
}

/// Deletes dependents of a deleted owner (background propagation).
fn collect_garbage(state: &SimState, uid: &str) {
    for (resource, dependent) in state.store.dependents(uid) {
        let owners = dependent["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let others_alive = owners
            .iter()
            .filter(|owner| owner["uid"].as_str() != Some(uid))
            .any(|owner| {
                owner["uid"]
                    .as_str()
                    .is_some_and(|other| state.store.uid_exists(other))
            });
        let namespace = dependent["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = dependent["metadata"]["name"].as_str().unwrap_or_default();
        if others_alive {
            let remaining: Vec<Value> = owners
                .into_iter()
                .filter(|owner| owner["uid"].as_str() != Some(uid))
                .collect();
            let patch = json!({"metadata": {"ownerReferences": remaining}});
            let _ = state.store.patch(
                &resource,
                namespace,
                name,
                super::store::PatchKind::Merge,
                &patch,
                Part::Main,
                &gc(),
            );
        } else {
            let _ = state.store.delete(
                &resource,
                namespace,
                name,
                &DeleteOptions {
                    propagation: Some("Background".into()),
                    ..DeleteOptions::default()
                },
            );
        }
    }
}

fn gc() -> Writer {
    Writer {
        manager: "garbage-collector".into(),
        dry_run: false,
    }
}

/// Orphan and foreground deletion: the garbage collector's finalizers.
fn finish_propagation(state: &SimState, resource: &ResourceType, object: &Value) {
    let finalizers: Vec<&str> = object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let drop_finalizer = |finalizer: &str| {
        let remaining: Vec<&str> = finalizers
            .iter()
            .copied()
            .filter(|other| *other != finalizer)
            .collect();
        let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": object["metadata"]["resourceVersion"]}});
        let _ = state.store.patch(
            resource,
            namespace,
            name,
            super::store::PatchKind::Merge,
            &patch,
            Part::Main,
            &gc(),
        );
    };
    if finalizers.contains(&"orphan") {
        for (dependent_type, dependent) in state.store.dependents(uid) {
            let remaining: Vec<Value> = dependent["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|owner| owner["uid"].as_str() != Some(uid))
                .cloned()
                .collect();
            let patch = json!({"metadata": {"ownerReferences": remaining}});
            let _ = state.store.patch(
                &dependent_type,
                dependent["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default(),
                dependent["metadata"]["name"].as_str().unwrap_or_default(),
                super::store::PatchKind::Merge,
                &patch,
                Part::Main,
                &gc(),
            );
        }
        drop_finalizer("orphan");
    } else if finalizers.contains(&"foregroundDeletion") {
        let dependents = state.store.dependents(uid);
        if dependents.is_empty() {
            drop_finalizer("foregroundDeletion");
        } else {
            for (dependent_type, dependent) in dependents {
                if dependent["metadata"]["deletionTimestamp"].is_null() {
                    let _ = state.store.delete(
                        &dependent_type,
                        dependent["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default(),
                        dependent["metadata"]["name"].as_str().unwrap_or_default(),
                        &DeleteOptions {
                            propagation: Some("Foreground".into()),
                            ..DeleteOptions::default()
                        },
                    );
                }
            }
        }
    }
}

/// Deletes everything in a terminating namespace, then the namespace.
fn terminate_namespace(state: &Arc<SimState>, name: &str) {
    for (resource, object_name) in state.store.contents(name) {
        // An object held by a finalizer nobody removes holds its namespace, as in a cluster.
        let _: Result<Deleted, ApiError> =
            state
                .store
                .delete(&resource, name, &object_name, &DeleteOptions::default());
    }
    // When objects held by finalizers go later, their DELETED events try again.
    state.store.finish_namespace(name);
}

/// The nodes a fresh simulator has.
/// Node `index`'s region and zone: nodes alternate between two regions, each node in a zone
/// of its own (eu-west-1a, us-east-1a, eu-west-1b, ...), as the tests' real control plane
/// labels its nodes (tests/control-plane/cluster.sh).
fn topology(index: usize) -> (&'static str, String) {
    let region = if index.is_multiple_of(2) {
        "eu-west"
    } else {
        "us-east"
    };
    let zone = char::from(b'a' + u8::try_from(index / 2 % 26).unwrap_or(0));
    (region, format!("{region}-1{zone}"))
}

pub(crate) fn seed(state: &SimState) {
    let namespaces = kind(state, "", "v1", "namespaces");
    let nodes = kind(state, "", "v1", "nodes");
    let (Some(namespaces), Some(nodes)) = (namespaces, nodes) else {
        return;
    };
    let system = Writer {
        manager: "kube-apiserver".into(),
        dry_run: false,
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = state.store.create(
            &namespaces,
            "",
            json!({"metadata": {"name": name}}),
            &system,
        );
    }
    for index in 0..state.options.nodes {
        let name = format!("zen-sim-node-{index}");
        let (region, zone) = topology(index);
        let node = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                                   "node.kubernetes.io/instance-type": "zen-sim.standard",
                                                   "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone}},
            "spec": {"podCIDR": format!("10.244.{index}.0/24")},
            "status": {
                "capacity": {"cpu": state.options.node_cpu, "memory": state.options.node_memory, "pods": "110"},
                "allocatable": {"cpu": state.options.node_cpu, "memory": state.options.node_memory, "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 2)}, {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "nodeInfo": {"kubeletVersion": super::KUBERNETES_VERSION, "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "zen-sim://1"},
            },
        });
        if let Ok(created) = state.store.create(&nodes, "", node.clone(), &system) {
            let mut with_status = (*created).clone();
            with_status["status"] = node["status"].clone();
            let _ = state.store.update(
                &nodes,
                "",
                &name,
                with_status,
                Part::Status,
                &Writer {
                    manager: "kubelet".into(),
                    dry_run: false,
                },
            );
        }
    }
}

/// Seconds since the epoch, for the usage model's clock.
fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The usage of one container at `seconds` (since the epoch), from the model: an annotation
/// `zen-sim.kubezen.io/cpu` / `zen-sim.kubezen.io/memory` on the pod wins; else a fraction of the
/// container's request (or a small default), varying smoothly over time by +-`noise`.
pub(crate) fn container_usage(
    model: &super::UsageModel,
    pod: &Value,
    container: &Value,
    seconds: f64,
) -> (f64, f64) {
    let annotation = |key: &str| {
        pod["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    };
    let requests = &container["resources"]["requests"];
    let cpu = annotation("zen-sim.kubezen.io/cpu")
        .and_then(|text| millicores(&text))
        .or_else(|| {
            requests["cpu"]
                .as_str()
                .and_then(millicores)
                .map(|request| request * model.cpu_fraction)
        })
        .unwrap_or(model.default_cpu_millicores);
    let memory = annotation("zen-sim.kubezen.io/memory")
        .and_then(|text| bytes(&text))
        .or_else(|| {
            requests["memory"]
                .as_str()
                .and_then(bytes)
                .map(|request| request * model.memory_fraction)
        })
        .unwrap_or(model.default_memory_bytes);
    let seed = template_hash(&json!([pod["metadata"]["uid"], container["name"]]));
    let phase = f64::from(
        seed.bytes().fold(0_u32, |sum, byte| {
            sum.wrapping_mul(31).wrapping_add(u32::from(byte))
        }) % 1000,
    ) / 1000.0
        * std::f64::consts::TAU;
    let wave =
        (seconds * std::f64::consts::TAU / model.period.as_secs_f64().max(1.0) + phase).sin();
    (
        cpu * (1.0 + model.noise * wave),
        memory * (1.0 + model.noise * 0.25 * wave),
    )
}

/// `PodMetrics` of every running pod in `namespace` (or all), from the usage model.
pub(crate) fn pod_metrics(state: &SimState, namespace: Option<&str>) -> Vec<Value> {
    let Some(pods) = kind(state, "", "v1", "pods") else {
        return Vec::new();
    };
    let list = current(state, &pods, namespace);
    let seconds = epoch_seconds();
    let stamp = now();
    list.iter()
        .filter(|pod| pod["status"]["phase"] == "Running")
        .map(|pod| {
            let containers: Vec<Value> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|container| {
                    let (cpu, memory) = container_usage(&state.options.usage, pod, container, seconds);
                    json!({"name": container["name"], "usage": {"cpu": format!("{:.0}n", cpu * 1e6), "memory": format!("{:.0}Ki", memory / 1024.0)}})
                })
                .collect();
            json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"], "labels": pod["metadata"]["labels"], "creationTimestamp": stamp},
                   "timestamp": stamp, "window": "30s", "containers": containers})
        })
        .collect()
}

/// `NodeMetrics`: the node's pods plus a fixed system overhead.
pub(crate) fn node_metrics(state: &SimState) -> Vec<Value> {
    let Some(nodes) = kind(state, "", "v1", "nodes") else {
        return Vec::new();
    };
    let list = current(state, &nodes, None);
    let pods = pod_metrics_by_node(state);
    let stamp = now();
    list.iter()
        .map(|node| {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            let (cpu, memory) = pods.get(name).copied().unwrap_or((0.0, 0.0));
            json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": name, "labels": node["metadata"]["labels"], "creationTimestamp": stamp},
                   "timestamp": stamp, "window": "30s",
                   "usage": {"cpu": format!("{:.0}n", (cpu + 100.0) * 1e6), "memory": format!("{:.0}Ki", (memory + 512.0 * 1_048_576.0) / 1024.0)}})
        })
        .collect()
}

fn pod_metrics_by_node(state: &SimState) -> BTreeMap<String, (f64, f64)> {
    let Some(pods) = kind(state, "", "v1", "pods") else {
        return BTreeMap::new();
    };
    let list = current(state, &pods, None);
    let seconds = epoch_seconds();
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for pod in list
        .iter()
        .filter(|pod| pod["status"]["phase"] == "Running")
    {
        let node = pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let (cpu, memory) = container_usage(&state.options.usage, pod, container, seconds);
            let total = totals.entry(node.clone()).or_default();
            total.0 += cpu;
            total.1 += memory;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        let equal = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"requests": equal, "limits": equal}}]})
            ),
            "Guaranteed"
        );
    }

    #[test]
    fn usage_follows_requests_annotations_and_stays_within_the_noise() {
        let model = crate::sim::UsageModel::default();
        let container =
            json!({"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}});
        let pod = json!({"metadata": {"uid": "u1"}});
        for second in 0..100 {
            let (cpu, memory) = container_usage(&model, &pod, &container, f64::from(second) * 37.0);
            let expected = 1000.0 * model.cpu_fraction;
            assert!(
                (cpu - expected).abs() <= expected * model.noise + 1e-9,
                "{cpu}"
            );
            assert!(memory > 0.0);
        }
        let pinned =
            json!({"metadata": {"uid": "u1", "annotations": {"zen-sim.kubezen.io/cpu": "300m"}}});
        let (cpu, _) = container_usage(
            &crate::sim::UsageModel {
                noise: 0.0,
                ..model
            },
            &pinned,
            &container,
            0.0,
        );
        assert!((cpu - 300.0).abs() < 1e-9);
    }
}
