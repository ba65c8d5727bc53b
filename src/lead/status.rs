//! `lead status`: every opted-in Service, its leader, since when, and what is wrong, read from
//! the cluster as it is (the controller need not run).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{self, Timestamp};
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};

use super::select::{self, LeadConfig};
use super::{
    LAST_SWITCH_TIME, LEADER_POD_NAME, LEADER_POD_UID, LeadError, SLICE_MANAGED_BY, SOURCE_SERVICE,
    scoped,
};
use crate::cluster::Cluster;

/// One opted-in Service as `lead status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// The Service's namespace.
    pub namespace: String,
    /// The opted-in Service.
    pub service: String,
    /// Its leader Service.
    pub leader_service: String,
    /// The leader pod, when there is one.
    pub leader: Option<String>,
    /// When the leader last changed (RFC 3339), from the leader Service.
    pub since: Option<String>,
    /// Pods the Service selects.
    pub pods: usize,
    /// Of those, the pods that may lead (Running, Ready, with an IP, not terminating).
    pub ready_pods: usize,
    /// Addresses in the leader's `EndpointSlice` (1 when routing works).
    pub endpoints: usize,
    /// What is wrong; empty when all is well.
    pub problems: Vec<String>,
    /// The controller's last error on this Service, when its latest Event is a Warning
    /// (`when: message`): what it could not do, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Every Service opted in to zen-lead (in `namespace`, or everywhere), sorted by namespace and
/// name, with its leader and problems.
///
/// # Errors
/// The API server's.
pub async fn status(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Vec<LeaderStatus>, LeadError> {
    let client = cluster.client();
    let services: Api<Service> = scoped(client.clone(), namespace);
    let all = services
        .list(&ListParams::default())
        .await
        .map_err(|error| LeadError::api("list Services", &error))?
        .items;
    let by_name: BTreeMap<(String, String), &Service> = all
        .iter()
        .map(|service| {
            (
                (service.namespace().unwrap_or_default(), service.name_any()),
                service,
            )
        })
        .collect();
    let parents: Vec<&Service> = all
        .iter()
        .filter(|service| select::enabled(service))
        .collect();
    let namespaces: BTreeSet<String> = parents
        .iter()
        .map(|service| service.namespace().unwrap_or_default())
        .collect();
    let slices: Api<EndpointSlice> = scoped(client.clone(), namespace);
    let slices = slices
        .list(&ListParams::default().labels(&format!("{SLICE_MANAGED_BY}=zen-lead")))
        .await
        .map_err(|error| LeadError::api("list EndpointSlices", &error))?
        .items;
    let errors = last_errors(&client, namespace).await;
    let mut rows = Vec::with_capacity(parents.len());
    for space in namespaces {
        let pods = list_pods(&client, &space).await?;
        for parent in parents
            .iter()
            .filter(|service| service.namespace().as_deref() == Some(&space))
        {
            let leader_service = LeadConfig::of(parent).leader_service;
            let made = by_name
                .get(&(space.clone(), leader_service.clone()))
                .copied();
            let slice = slices.iter().find(|slice| {
                slice.namespace().as_deref() == Some(&space) && slice.name_any() == leader_service
            });
            let mut row = row(parent, made, slice, &pods);
            if let Some(error) = errors.get(&(space.clone(), row.service.clone())) {
                row.problems
                    .push(format!("the controller's last error ({error})"));
                row.last_error = Some(error.clone());
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Per Service, the controller's latest Event when it is a Warning (`time: note`), read from
/// the Events it records. Events are best-effort: when they cannot be read, none is shown.
async fn last_errors(
    client: &kube::Client,
    namespace: Option<&str>,
) -> BTreeMap<(String, String), String> {
    let api: Api<Event> = scoped(client.clone(), namespace);
    let Ok(events) = api
        .list(&ListParams::default().fields("regarding.kind=Service"))
        .await
    else {
        return BTreeMap::new();
    };
    let controller = format!("kubectl-zen/{}", super::MANAGED_BY_VALUE);
    let mut latest: BTreeMap<(String, String), (Timestamp, &Event)> = BTreeMap::new();
    for event in &events.items {
        if event.reporting_controller.as_deref() != Some(controller.as_str()) {
            continue;
        }
        let Some(regarding) = &event.regarding else {
            continue;
        };
        let Some(when) = event
            .series
            .as_ref()
            .map(|series| series.last_observed_time.0)
            .or_else(|| event.event_time.as_ref().map(|time| time.0))
        else {
            continue;
        };
        let key = (
            regarding.namespace.clone().unwrap_or_default(),
            regarding.name.clone().unwrap_or_default(),
        );
        if latest.get(&key).is_none_or(|(seen, _)| *seen < when) {
            latest.insert(key, (when, event));
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, event))| event.type_.as_deref() == Some("Warning"))
        .map(|(key, (when, event))| {
            let note = event.note.as_deref().unwrap_or_default();
            let reason = event.reason.as_deref().unwrap_or_default();
            let when = when.round(jiff::Unit::Second).unwrap_or(when);
            (key, format!("{when}, {reason}: {note}"))
        })
        .collect()
}

/// The namespace's pods, page by page (500 at a time).
async fn list_pods(client: &kube::Client, namespace: &str) -> Result<Vec<Pod>, LeadError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut pods = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|error| LeadError::api(format!("list pods in {namespace}"), &error))?;
        pods.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(pods),
        }
    }
}

#[allow(clippy::too_many_lines)] // every problem a Service can have, checked in one place
fn row(
    parent: &Service,
    made: Option<&Service>,
    slice: Option<&EndpointSlice>,
    pods: &[Pod],
) -> LeaderStatus {
    let config = LeadConfig::of(parent);
    let name = parent.name_any();
    let mut problems = config.problems.clone();
    let selector = parent
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    let selected: Vec<&Pod> = pods
        .iter()
        .filter(|pod| select::selects(&selector, pod.labels()))
        .collect();
    let ready_pods = selected
        .iter()
        .filter(|pod| select::fitness(pod).is_ok())
        .count();
    if selector.is_empty() {
        problems.push("the Service has no selector: zen-lead finds pods by it".into());
    } else if selected.is_empty() {
        problems.push("no pod matches the Service's selector".into());
    } else if ready_pods == 0 {
        problems.push("no pod is Ready: the leader Service has no endpoint".into());
    }
    let endpoints = slice.map_or(0, |slice| {
        slice
            .endpoints
            .iter()
            .flatten()
            .filter(|endpoint| endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .map(|endpoint| endpoint.addresses.len())
            .sum()
    });
    let mut leader = None;
    let mut since = None;
    match made {
        None => problems.push(format!(
            "leader Service {} does not exist (is `kubectl zen lead` running?)",
            config.leader_service
        )),
        Some(found) if found.labels().get(SOURCE_SERVICE) != Some(&name) => problems.push(format!(
            "Service {} exists but was not made by zen-lead for {name}: it is left alone",
            config.leader_service
        )),
        Some(found) => {
            let annotations = found.annotations();
            leader = annotations.get(LEADER_POD_NAME).cloned();
            since = annotations.get(LAST_SWITCH_TIME).cloned();
            if let Some(pod_name) = &leader {
                leader_pod_problems(
                    parent,
                    pod_name,
                    annotations.get(LEADER_POD_UID),
                    pods,
                    &mut problems,
                );
            }
            match slice {
                None => problems.push(format!(
                    "EndpointSlice {} does not exist",
                    config.leader_service
                )),
                Some(slice) => {
                    let target = slice
                        .endpoints
                        .iter()
                        .flatten()
                        .next()
                        .and_then(|endpoint| endpoint.target_ref.as_ref())
                        .and_then(|target| target.name.clone());
                    if leader.is_some() && target != leader {
                        problems.push(format!(
                            "the EndpointSlice routes to {} but the leader is {}",
                            target.as_deref().unwrap_or("nothing"),
                            leader.as_deref().unwrap_or_default()
                        ));
                    }
                }
            }
            if ready_pods > 0 && endpoints == 0 && leader.is_some() {
                problems.push("the leader Service has no ready endpoint".into());
            }
            if ready_pods > 0 && leader.is_none() {
                problems.push(format!(
                    "no leader yet though {ready_pods} of the pods can lead (min-ready-duration, or \
                     is the controller running?)"
                ));
            }
        }
    }
    LeaderStatus {
        namespace: parent.namespace().unwrap_or_default(),
        service: name,
        leader_service: config.leader_service,
        leader,
        since,
        pods: selected.len(),
        ready_pods,
        endpoints,
        problems,
        last_error: None,
    }
}

/// What is wrong with the leader pod the leader Service names.
fn leader_pod_problems(
    parent: &Service,
    pod_name: &str,
    uid: Option<&String>,
    pods: &[Pod],
    problems: &mut Vec<String>,
) {
    match pods.iter().find(|pod| pod.name_any() == pod_name) {
        None => problems.push(format!("leader pod {pod_name} no longer exists")),
        Some(pod) if pod.uid().as_ref() != uid => {
            problems.push(format!("leader pod {pod_name} was recreated (another uid)"));
        }
        Some(pod) => {
            if let Err(unfit) = select::fitness(pod) {
                problems.push(format!(
                    "leader pod {pod_name} cannot lead: {}",
                    unfit.reason()
                ));
            }
            if let Err(problem) = select::resolve_ports(parent, Some(pod)) {
                problems.push(problem.0);
            }
        }
    }
}
