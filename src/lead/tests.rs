//! Unit tests of the pure parts: annotations, fitness, choice, ports and the objects written.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::election::ElectionOptions;
use super::select::{self, LeadConfig, Unfit};
use super::{LAST_SWITCH_TIME, LEADER_POD_UID};

fn service(annotations: &serde_json::Value, spec: &serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "svc-uid", "annotations": annotations,
                     "labels": {"team": "a", "app.kubernetes.io/instance": "argo", "app.kubernetes.io/managed-by": "Helm"}},
        "spec": spec,
    }))
    .unwrap()
}

fn web() -> Service {
    service(
        &json!({"zen-lead.io/enabled": "true"}),
        &json!({"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9091, "protocol": "TCP"},
            {"name": "grpc", "port": 50051, "targetPort": "50052"}]}),
    )
}

/// A Running pod, Ready since `ready_at` (seconds after the epoch), created at `created`.
fn pod(name: &str, created: i64, ready_at: Option<i64>, ip: &str) -> Pod {
    let time = |s: i64| Timestamp::from_second(s).unwrap().to_string();
    let conditions = ready_at.map_or_else(
        || json!([{"type": "Ready", "status": "False"}]),
        |at| json!([{"type": "Ready", "status": "True", "lastTransitionTime": time(at)}]),
    );
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "prod", "uid": format!("{name}-uid"),
                     "creationTimestamp": time(created), "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": conditions},
    }))
    .unwrap()
}

const NOW: i64 = 1_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

#[test]
fn annotations_give_the_config_and_bad_ones_are_named() {
    let config = LeadConfig::of(&web());
    assert_eq!(config.leader_service, "web-leader");
    assert!(config.sticky);
    assert_eq!(
        (config.min_ready, config.failover_min_delay),
        (Duration::ZERO, Duration::ZERO)
    );
    assert!(config.problems.is_empty());
    let custom = LeadConfig::of(&service(
        &json!({"zen-lead.io/enabled": "true", "zen-lead.io/leader-service-name": "web-primary",
                "zen-lead.io/sticky": "false", "zen-lead.io/min-ready-duration": "1m30s",
                "zen-lead.io/failover-min-delay": "500ms"}),
        &json!({}),
    ));
    assert_eq!(custom.leader_service, "web-primary");
    assert!(!custom.sticky);
    assert_eq!(custom.min_ready, Duration::from_secs(90));
    assert_eq!(custom.failover_min_delay, Duration::from_millis(500));
    let bad = LeadConfig::of(&service(
        &json!({"zen-lead.io/leader-service-name": "Web_Primary", "zen-lead.io/sticky": "yes",
                "zen-lead.io/min-ready-duration": "soon", "zen-lead.io/failover-min-delay": "-5s"}),
        &json!({}),
    ));
    assert_eq!(bad.leader_service, "web-leader");
    assert_eq!(bad.problems.len(), 4, "{:?}", bad.problems);
    assert!(
        bad.problems
            .iter()
            .any(|p| p.contains("min-ready-duration") && p.contains("soon"))
    );
    assert!(select::enabled(&web()));
    assert!(!select::enabled(&service(
        &json!({"zen-lead.io/enabled": "yes"}),
        &json!({})
    )));
}

#[test]
fn only_running_ready_pods_with_an_ip_that_are_not_terminating_may_lead() {
    assert!(select::fitness(&pod("a", 1, Some(2), "10.0.0.1")).is_ok());
    assert_eq!(
        select::fitness(&pod("a", 1, None, "10.0.0.1")),
        Err(Unfit::NotReady)
    );
    assert_eq!(select::fitness(&pod("a", 1, Some(2), "")), Err(Unfit::NoIp));
    let mut terminating = pod("a", 1, Some(2), "10.0.0.1");
    terminating.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    assert_eq!(select::fitness(&terminating), Err(Unfit::Terminating));
    let mut pending = pod("a", 1, Some(2), "10.0.0.1");
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    assert_eq!(select::fitness(&pending), Err(Unfit::NotReady));
    assert_eq!(Unfit::NoIp.reason(), "noIP");
}

#[test]
fn the_pod_ready_longest_leads_ties_going_to_the_older_then_the_first_name() {
    let pods = vec![
        pod("c", 10, Some(50), "10.0.0.3"),
        pod("b", 20, Some(40), "10.0.0.2"),
        pod("a", 30, Some(40), "10.0.0.1"),
        pod("z", 5, None, "10.0.0.9"),
    ];
    let choice = select::choose(&pods, now(), Duration::ZERO);
    assert_eq!(
        choice.leader.unwrap().metadata.name.as_deref(),
        Some("b"),
        "ready at 40, created first"
    );
    let twins = vec![
        pod("y", 10, Some(40), "10.0.0.1"),
        pod("x", 10, Some(40), "10.0.0.2"),
    ];
    assert_eq!(
        select::choose(&twins, now(), Duration::ZERO)
            .leader
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        select::choose(&[], now(), Duration::ZERO),
        select::Choice {
            leader: None,
            retry_in: None
        }
    );
}

#[test]
fn min_ready_duration_holds_back_pods_and_says_when_to_look_again() {
    let pods = vec![
        pod("a", 1, Some(NOW - 10), "10.0.0.1"),
        pod("b", 1, Some(NOW - 25), "10.0.0.2"),
    ];
    let waiting = select::choose(&pods, now(), Duration::from_secs(30));
    assert!(waiting.leader.is_none());
    assert_eq!(
        waiting.retry_in,
        Some(Duration::from_secs(5)),
        "b qualifies first"
    );
    let led = select::choose(&pods, now(), Duration::from_secs(20));
    assert_eq!(led.leader.unwrap().metadata.name.as_deref(), Some("b"));
    assert_eq!(led.retry_in, None);
}

#[test]
fn named_target_ports_resolve_against_the_leader_or_fail_closed() {
    let leader = pod("a", 1, Some(2), "10.0.0.1");
    let ports = select::resolve_ports(&web(), Some(&leader)).unwrap();
    let targets: Vec<_> = ports
        .iter()
        .map(|p| p.target_port.clone().unwrap())
        .collect();
    assert_eq!(
        targets,
        vec![
            IntOrString::Int(8080),
            IntOrString::Int(9091),
            IntOrString::Int(50052)
        ]
    );
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"), "defaulted");
    let unnamed: Pod = {
        let mut pod = leader.clone();
        pod.spec.as_mut().unwrap().containers[0].ports = None;
        pod
    };
    let problem = select::resolve_ports(&web(), Some(&unnamed)).unwrap_err();
    assert!(problem.0.contains("\"http\""), "{problem:?}");
    let without = select::resolve_ports(&web(), None).unwrap();
    assert_eq!(
        without[0].target_port,
        Some(IntOrString::String("http".into()))
    );
}

#[test]
fn the_leader_service_is_selector_less_owned_and_records_the_leader() {
    let parent = web();
    let config = LeadConfig::of(&parent);
    let leader = pod("a", 1, Some(2), "10.0.0.1");
    let ports = select::resolve_ports(&parent, Some(&leader)).unwrap();
    let made = select::leader_service(&parent, &config, ports.clone(), Some(&leader), None, now());
    let spec = made.spec.clone().unwrap();
    assert_eq!(spec.selector, None);
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.unwrap().len(), 3);
    let labels = made.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "zen-lead");
    assert_eq!(labels["zen-lead.io/source-service"], "web");
    assert_eq!(labels["team"], "a");
    assert!(!labels.contains_key("app.kubernetes.io/instance"));
    let annotations = made.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["zen-lead.io/leader-pod-name"], "a");
    assert_eq!(annotations[LEADER_POD_UID], "a-uid");
    assert_eq!(annotations[LAST_SWITCH_TIME], "1970-01-12T13:46:40Z");
    let owner = &made.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        ("svc-uid", Some(true))
    );
    // The same leader later: the switch time stays; another leader: it moves.
    let later = Timestamp::from_second(NOW + 60).unwrap();
    let again = select::leader_service(
        &parent,
        &config,
        ports.clone(),
        Some(&leader),
        Some(&made),
        later,
    );
    assert_eq!(
        again.metadata.annotations.unwrap()[LAST_SWITCH_TIME],
        "1970-01-12T13:46:40Z"
    );
    let other = pod("b", 1, Some(2), "10.0.0.2");
    let switched =
        select::leader_service(&parent, &config, ports, Some(&other), Some(&made), later);
    assert_eq!(
        switched.metadata.annotations.unwrap()[LAST_SWITCH_TIME],
        "1970-01-12T13:47:40Z"
    );
    // No leader: the pod annotations go, the switch time stays; named ports still valid.
    let none = select::leader_service(
        &parent,
        &config,
        select::resolve_ports(&parent, None).unwrap(),
        None,
        Some(&made),
        later,
    );
    let annotations = none.metadata.annotations.clone().unwrap();
    assert!(!annotations.contains_key(LEADER_POD_UID));
    assert!(annotations.contains_key(LAST_SWITCH_TIME));
    assert_eq!(
        none.spec.unwrap().ports.unwrap()[0].target_port,
        Some(IntOrString::Int(80))
    );
    // A headless parent still gets a routable ClusterIP leader Service.
    let headless = service(
        &json!({}),
        &json!({"clusterIP": "None", "type": "ClusterIP", "selector": {"app": "web"}}),
    );
    let made = select::leader_service(&headless, &config, vec![], None, None, now());
    assert_eq!(made.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
}

#[test]
fn the_slice_holds_exactly_the_leader_with_its_address_family() {
    let parent = web();
    let config = LeadConfig::of(&parent);
    let v6 = pod("a", 1, Some(2), "fd00::1");
    let ports = select::resolve_ports(&parent, Some(&v6)).unwrap();
    let mut owner = select::leader_service(&parent, &config, ports.clone(), Some(&v6), None, now());
    owner.metadata.uid = Some("leader-uid".into());
    let slice = select::endpoint_slice(&parent, &owner, &ports, Some(&v6), None);
    assert_eq!(slice.address_type, "IPv6");
    let endpoints = slice.endpoints.clone().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].addresses, vec!["fd00::1".to_owned()]);
    assert_eq!(endpoints[0].conditions.as_ref().unwrap().ready, Some(true));
    assert_eq!(
        endpoints[0].target_ref.as_ref().unwrap().uid.as_deref(),
        Some("a-uid")
    );
    assert_eq!(endpoints[0].node_name.as_deref(), Some("node-1"));
    let ports: Vec<_> = slice
        .ports
        .clone()
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, vec![Some(8080), Some(9091), Some(50052)]);
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web-leader");
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "zen-lead");
    assert_eq!(
        slice.metadata.owner_references.unwrap()[0].uid,
        "leader-uid"
    );
    let empty = select::endpoint_slice(&parent, &owner, &ports_of(&parent), None, None);
    assert!(empty.endpoints.unwrap().is_empty());
    assert_eq!(empty.address_type, "IPv4");
    // No leader any more: the slice keeps its family (an addressType cannot change).
    let emptied = select::endpoint_slice(&parent, &owner, &ports_of(&parent), None, Some("IPv6"));
    assert!(emptied.endpoints.unwrap().is_empty());
    assert_eq!(emptied.address_type, "IPv6");
}

#[test]
fn the_leader_address_is_of_the_parents_primary_family() {
    let single = web();
    let mut v6_first = web();
    v6_first.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    let mut dual = pod("a", 1, Some(2), "10.0.0.7");
    dual.status.as_mut().unwrap().pod_ips = Some(
        ["10.0.0.7", "fd00::7"]
            .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.into() })
            .to_vec(),
    );
    assert_eq!(
        select::leader_address(&single, &dual),
        Some(("10.0.0.7".into(), "IPv4"))
    );
    assert_eq!(
        select::leader_address(&v6_first, &dual),
        Some(("fd00::7".into(), "IPv6"))
    );
    // A single-stack IPv4 pod behind an IPv6-first Service: its own family, detected.
    let v4 = pod("b", 1, Some(2), "10.0.0.8");
    assert_eq!(
        select::leader_address(&v6_first, &v4),
        Some(("10.0.0.8".into(), "IPv4"))
    );
    // No leader yet: an IPv6-first parent's slice is IPv6 from the start.
    let owner = select::leader_service(
        &v6_first,
        &LeadConfig::of(&v6_first),
        vec![],
        None,
        None,
        now(),
    );
    let empty = select::endpoint_slice(&v6_first, &owner, &[], None, None);
    assert_eq!(empty.address_type, "IPv6");
    let slice = select::endpoint_slice(&v6_first, &owner, &ports_of(&v6_first), Some(&dual), None);
    assert_eq!(
        slice.endpoints.unwrap()[0].addresses,
        vec!["fd00::7".to_owned()]
    );
}

fn ports_of(parent: &Service) -> Vec<k8s_openapi::api::core::v1::ServicePort> {
    select::resolve_ports(parent, None).unwrap()
}

#[test]
fn covers_ignores_what_the_server_added_but_not_what_changed() {
    let have = json!({"metadata": {"name": "x", "uid": "1", "labels": {"a": "1", "b": "2"}},
                      "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "clusterIP": "10.0.0.1"}});
    assert!(select::covers(
        &have,
        &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}})
    ));
    assert!(!select::covers(
        &have,
        &json!({"spec": {"ports": [{"port": 81}]}})
    ));
    assert!(!select::covers(
        &have,
        &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
    ));
    assert!(!select::covers(
        &have,
        &json!({"metadata": {"labels": {"c": "3"}}})
    ));
    assert!(select::covers(
        &have,
        &json!({"spec": {"selector": null, "externalIPs": []}})
    ));
}

#[test]
fn election_timings_must_leave_room_between_renewal_and_expiry() {
    let good = ElectionOptions::new("kube-system", "lease", "me");
    assert_eq!(good.clone().checked(), Ok(good.clone()));
    let mut slow = good.clone();
    slow.renew_deadline = Duration::from_secs(15);
    assert!(slow.checked().unwrap_err().contains("renew deadline"));
    let mut busy = good.clone();
    busy.retry_period = Duration::ZERO;
    assert!(busy.checked().unwrap_err().contains("retry period"));
    let nameless = ElectionOptions::new("kube-system", "lease", "");
    assert!(nameless.checked().is_err());
}
