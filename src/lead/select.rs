//! The pure part of the controller: what a Service asks for (its annotations), whether a pod may
//! lead, which pod leads, and the leader Service and `EndpointSlice` that route to it. Nothing here
//! talks to a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{
    ENABLED, FAILOVER_MIN_DELAY, LAST_SWITCH_TIME, LEADER_POD_NAME, LEADER_POD_UID,
    LEADER_SERVICE_NAME, LEADER_SUFFIX, MANAGED_BY, MANAGED_BY_VALUE, MIN_READY_DURATION,
    SLICE_MANAGED_BY, SOURCE_SERVICE, STICKY,
};

/// Labels of the parent a generated object must not copy: `GitOps` tools' ownership marks (a
/// copy would make Argo CD or Flux prune or fight over it) and our own managed-by.
const NOT_COPIED: &[&str] = &[
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "argocd.argoproj.io/instance",
    "fluxcd.io/part-of",
    "kustomize.toolkit.fluxcd.io/name",
    "kustomize.toolkit.fluxcd.io/namespace",
    "kustomize.toolkit.fluxcd.io/revision",
];

/// What an opted-in Service's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadConfig {
    /// The leader Service's name: `zen-lead.io/leader-service-name`, else `<svc>-leader`.
    pub leader_service: String,
    /// Keep a healthy leader even when another pod has been Ready longer
    /// (`zen-lead.io/sticky`, default true).
    pub sticky: bool,
    /// How long a pod must have been Ready before it may become leader
    /// (`zen-lead.io/min-ready-duration`, default 0).
    pub min_ready: Duration,
    /// How long a leader that went `NotReady` keeps the role before another pod takes it
    /// (`zen-lead.io/failover-min-delay`, default 0). A deleted or terminating leader is
    /// replaced at once.
    pub failover_min_delay: Duration,
    /// Annotations that could not be read (the default was used instead).
    pub problems: Vec<String>,
}

/// Whether `service` has opted in (`zen-lead.io/enabled: "true"`).
#[must_use]
pub fn enabled(service: &Service) -> bool {
    service.annotations().get(ENABLED).map(String::as_str) == Some("true")
}

/// Whether `service` is a leader Service this controller made.
#[must_use]
pub fn is_leader_service(service: &Service) -> bool {
    service.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && service.labels().contains_key(SOURCE_SERVICE)
}

impl LeadConfig {
    /// The configuration `service`'s annotations give.
    #[must_use]
    pub fn of(service: &Service) -> Self {
        let annotations = service.annotations();
        let mut problems = Vec::new();
        let mut duration = |key: &str| match annotations.get(key) {
            None => Duration::ZERO,
            Some(text) => parse_duration(text).unwrap_or_else(|why| {
                problems.push(format!("annotation {key}: {why}; using 0s"));
                Duration::ZERO
            }),
        };
        let min_ready = duration(MIN_READY_DURATION);
        let failover_min_delay = duration(FAILOVER_MIN_DELAY);
        let leader_service = match annotations.get(LEADER_SERVICE_NAME) {
            Some(name) if valid_name(name) => name.clone(),
            Some(name) => {
                problems.push(format!(
                    "annotation {LEADER_SERVICE_NAME}: {name:?} is not a valid Service name \
                     (lowercase letters, digits and '-', at most 63); using the default"
                ));
                default_leader_name(&service.name_any())
            }
            None => default_leader_name(&service.name_any()),
        };
        let sticky = match annotations.get(STICKY).map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                problems.push(format!(
                    "annotation {STICKY}: {other:?} is not \"true\" or \"false\"; using true"
                ));
                true
            }
        };
        Self {
            leader_service,
            sticky,
            min_ready,
            failover_min_delay,
            problems,
        }
    }
}

fn default_leader_name(service: &str) -> String {
    format!("{service}{LEADER_SUFFIX}")
}

/// An RFC 1035 label, as Service names must be.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A duration as Go writes them (`30s`, `1m30s`, `500ms`), as zen-lead's annotations take.
///
/// # Errors
/// Text of another form, or a negative duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let delta = crate::cel::parse_duration(text.trim())?;
    delta.to_std().map_err(|_| format!("{text:?} is negative"))
}

/// Why a pod cannot lead (zen-lead's failover reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// Being deleted.
    Terminating,
    /// Not Running with a Ready condition that is True.
    NotReady,
    /// No pod IP yet.
    NoIp,
}

impl Unfit {
    /// The reason label of the failover metrics: `terminating`, `notReady`, `noIP`.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Terminating => "terminating",
            Self::NotReady => "notReady",
            Self::NoIp => "noIP",
        }
    }
}

/// Whether `pod` may lead: `Ok(ready since)` (the Ready condition's last transition, when
/// known), or why not.
///
/// # Errors
/// The reason the pod cannot lead.
pub fn fitness(pod: &Pod) -> Result<Option<Timestamp>, Unfit> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(Unfit::Terminating);
    }
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) != Some("Running") {
        return Err(Unfit::NotReady);
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"));
    let Some(ready) = ready.filter(|c| c.status == "True") else {
        return Err(Unfit::NotReady);
    };
    if status
        .and_then(|s| s.pod_ip.as_deref())
        .is_none_or(str::is_empty)
    {
        return Err(Unfit::NoIp);
    }
    Ok(ready.last_transition_time.as_ref().map(|time| time.0))
}

/// Whether `labels` satisfy a Service's equality selector.
#[must_use]
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// The outcome of choosing a leader among candidates.
#[derive(Debug, PartialEq)]
pub struct Choice<'a> {
    /// The pod to lead, if any may.
    pub leader: Option<&'a Pod>,
    /// When no pod may lead yet but one will once it has been Ready for `min-ready-duration`:
    /// how long until then.
    pub retry_in: Option<Duration>,
}

/// The pod Ready the longest among `pods`, counting only pods Ready for at least `min_ready`
/// at `now`; ties go to the older pod, then to the lexically first name. A pod whose Ready
/// condition has no transition time counts as Ready since it was created.
#[must_use]
pub fn choose(pods: &[Pod], now: Timestamp, min_ready: Duration) -> Choice<'_> {
    let mut best: Option<(Timestamp, Timestamp, &str, &Pod)> = None;
    let mut retry_in: Option<Duration> = None;
    for pod in pods {
        let Ok(since) = fitness(pod) else { continue };
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |time| time.0);
        let since = since.unwrap_or(created);
        let ready_for = now.duration_since(since);
        let ready_for = Duration::try_from(ready_for).unwrap_or(Duration::ZERO);
        if ready_for < min_ready {
            let wait = min_ready.saturating_sub(ready_for);
            retry_in = Some(retry_in.map_or(wait, |other| other.min(wait)));
            continue;
        }
        let key = (
            since,
            created,
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod,
        );
        if best
            .as_ref()
            .is_none_or(|b| (key.0, key.1, key.2) < (b.0, b.1, b.2))
        {
            best = Some(key);
        }
    }
    let leader = best.map(|(_, _, _, pod)| pod);
    Choice {
        leader,
        retry_in: if leader.is_some() { None } else { retry_in },
    }
}

/// A port of the parent whose named `targetPort` the leader pod does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortProblem(pub String);

/// The parent's ports with every `targetPort` resolved to a number against `leader`'s container
/// ports (`None` when there is no leader: named ports stay named).
///
/// # Errors
/// A named `targetPort` the leader does not declare (zen-lead fails closed: no endpoint).
pub fn resolve_ports(
    parent: &Service,
    leader: Option<&Pod>,
) -> Result<Vec<ServicePort>, PortProblem> {
    let ports = parent
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.clone())
        .unwrap_or_default();
    ports
        .into_iter()
        .map(|port| {
            let target = match &port.target_port {
                None => IntOrString::Int(port.port),
                Some(IntOrString::Int(number)) => IntOrString::Int(*number),
                Some(IntOrString::String(name)) => match (name.parse::<i32>(), leader) {
                    (Ok(number), _) => IntOrString::Int(number),
                    (Err(_), None) => IntOrString::String(name.clone()),
                    (Err(_), Some(pod)) => IntOrString::Int(named_port(pod, name).ok_or_else(|| {
                        PortProblem(format!(
                            "named targetPort {name:?} is not a container port of leader pod {}",
                            pod.name_any()
                        ))
                    })?),
                },
            };
            Ok(ServicePort {
                name: port.name,
                port: port.port,
                protocol: Some(port.protocol.unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: port.app_protocol,
                target_port: Some(target),
                ..ServicePort::default()
            })
        })
        .collect()
}

/// The container port of `pod` named `name`.
#[must_use]
pub fn named_port(pod: &Pod, name: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|container| container.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(name) && port.container_port > 0)
        .map(|port| port.container_port)
}

fn copied_labels(parent: &Service) -> BTreeMap<String, String> {
    parent
        .labels()
        .iter()
        .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn owner(kind_of: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: kind_of.name_any(),
        uid: kind_of.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The leader Service for `parent` with `leader` (or none): selector-less, the parent's ports,
/// the leader's name, uid and last switch time in annotations (the switch time kept from
/// `previous` while the leader's uid stays), owned by the parent.
#[must_use]
pub fn leader_service(
    parent: &Service,
    config: &LeadConfig,
    ports: Vec<ServicePort>,
    leader: Option<&Pod>,
    previous: Option<&Service>,
    now: Timestamp,
) -> Service {
    let mut labels = copied_labels(parent);
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(SOURCE_SERVICE.into(), parent.name_any());
    let previous_annotations = previous.map(ResourceExt::annotations);
    let previous_uid = previous_annotations.and_then(|a| a.get(LEADER_POD_UID));
    let previous_switch = previous_annotations.and_then(|a| a.get(LAST_SWITCH_TIME));
    let mut annotations = BTreeMap::new();
    if let Some(pod) = leader {
        let uid = pod.uid().unwrap_or_default();
        annotations.insert(LEADER_POD_NAME.to_owned(), pod.name_any());
        let switched = match (previous_uid, previous_switch) {
            (Some(old), Some(at)) if *old == uid => at.clone(),
            _ => now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        };
        annotations.insert(LEADER_POD_UID.to_owned(), uid);
        annotations.insert(LAST_SWITCH_TIME.to_owned(), switched);
    } else if let Some(at) = previous_switch {
        // Kept while there is no leader: when the last one went is worth knowing.
        annotations.insert(LAST_SWITCH_TIME.to_owned(), at.clone());
    }
    let parent_spec = parent.spec.clone().unwrap_or_default();
    // A headless or ExternalName parent still gets a routable ClusterIP leader Service.
    let kind = match parent_spec.type_.as_deref() {
        Some("NodePort") if parent_spec.cluster_ip.as_deref() != Some("None") => "NodePort",
        Some("LoadBalancer") => "LoadBalancer",
        _ => "ClusterIP",
    };
    let ports = ports
        .into_iter()
        .map(|mut port| {
            // A port still named (no leader to resolve it against) routes nowhere either way;
            // the Service must still be valid, so it names the port number instead.
            if matches!(port.target_port, Some(IntOrString::String(_))) {
                port.target_port = Some(IntOrString::Int(port.port));
            }
            port
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(config.leader_service.clone()),
            namespace: parent.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner(parent)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(kind.to_owned()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The `EndpointSlice` of `leader_service` holding exactly `leader` (or no endpoint): the leader's
/// address of the parent's primary IP family (see [`leader_address`]), the resolved ports, the
/// pod as targetRef, owned by the leader Service. With no address to hold, the slice keeps
/// `existing_family` (an `addressType` cannot change once written), else the parent's family.
#[must_use]
pub fn endpoint_slice(
    parent: &Service,
    leader_service: &Service,
    ports: &[ServicePort],
    leader: Option<&Pod>,
    existing_family: Option<&str>,
) -> EndpointSlice {
    let name = leader_service.name_any();
    let mut labels = copied_labels(parent);
    labels.insert("kubernetes.io/service-name".into(), name.clone());
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(SOURCE_SERVICE.into(), parent.name_any());
    labels.insert(SLICE_MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    let address = leader.and_then(|pod| leader_address(parent, pod));
    let address_type = match &address {
        Some((_, family)) => *family,
        None => existing_family
            .and_then(|family| [IPV4, IPV6].into_iter().find(|known| *known == family))
            .or_else(|| primary_family(parent))
            .unwrap_or(IPV4),
    };
    let ip = address.map(|(ip, _)| ip);
    let endpoints = match (leader, ip) {
        (Some(pod), Some(ip)) => {
            let ready = fitness(pod).is_ok();
            vec![Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(ready),
                    terminating: Some(pod.metadata.deletion_timestamp.is_some()),
                }),
                node_name: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
                target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                    kind: Some("Pod".into()),
                    namespace: pod.namespace(),
                    name: Some(pod.name_any()),
                    uid: pod.uid(),
                    ..Default::default()
                }),
                ..Endpoint::default()
            }]
        }
        _ => Vec::new(),
    };
    let ports = if endpoints.is_empty() {
        Vec::new()
    } else {
        ports
            .iter()
            .map(|port| EndpointPort {
                name: port.name.clone(),
                port: match port.target_port {
                    Some(IntOrString::Int(number)) => Some(number),
                    _ => Some(port.port),
                },
                protocol: port.protocol.clone(),
                app_protocol: port.app_protocol.clone(),
            })
            .collect()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: parent.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner(leader_service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    }
}

const IPV4: &str = "IPv4";
const IPV6: &str = "IPv6";

/// The IP family of an address: `IPv6` when it has a colon.
fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { IPV6 } else { IPV4 }
}

/// The parent's primary IP family (`spec.ipFamilies[0]`, else its cluster IP's), when known.
fn primary_family(parent: &Service) -> Option<&'static str> {
    let spec = parent.spec.as_ref()?;
    match spec
        .ip_families
        .as_ref()
        .and_then(|families| families.first())
    {
        Some(family) if family == IPV6 => Some(IPV6),
        Some(family) if family == IPV4 => Some(IPV4),
        _ => spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .map(family_of),
    }
}

/// The leader's address and its family (the slice's `addressType`): of the pod's IPs, the
/// first of the parent's primary family, else its primary IP (single-stack clusters: the
/// family detected from the address).
#[must_use]
pub fn leader_address(parent: &Service, pod: &Pod) -> Option<(String, &'static str)> {
    let status = pod.status.as_ref()?;
    let primary = status.pod_ip.clone().filter(|ip| !ip.is_empty());
    let wanted = primary_family(parent);
    let of_family = wanted.and_then(|family| {
        status
            .pod_ips
            .iter()
            .flatten()
            .map(|pod_ip| pod_ip.ip.clone())
            .find(|ip| !ip.is_empty() && family_of(ip) == family)
    });
    let ip = of_family.or(primary)?;
    let family = family_of(&ip);
    Some((ip, family))
}

/// Whether `existing` already says everything `desired` says (fields the server added, such as
/// defaults and status, are ignored): when it does, nothing is written.
#[must_use]
pub fn covers(existing: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (existing, desired) {
        (Value::Object(have), Value::Object(want)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(found) => covers(found, value),
                None => is_empty(value),
            })
        }
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| covers(h, w))
        }
        (have, want) => have == want,
    }
}

fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}
