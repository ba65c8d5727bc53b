//! The zen-lead controller against zen-sim (or `ZEN_TEST_KUBECONFIG`'s cluster): leader Service
//! and `EndpointSlice`, failover, stickiness, min-ready-duration, failover-min-delay, cleanup, two
//! replicas, API faults, status.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubezen::cluster::election::ElectionOptions;
use kubezen::lead::{self, LeadOptions};
use kubezen::sim::{Fault, FaultAction};
use serde_json::json;
use support::{TestCluster, cluster, unused_addresses};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                 "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .unwrap()
}

fn service(name: &str, annotations: &BTreeMap<&str, &str>) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations, "labels": {"team": "a", "argocd.argoproj.io/instance": "x"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

fn enabled() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([(lead::ENABLED, "true")])
}

/// Creates pods one after another, each Ready before the next is made, so the first is Ready
/// the longest.
async fn ready_pods(test: &TestCluster, names: &[&str]) {
    let pods: Api<Pod> = test.api();
    for name in names {
        pods.create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
        wait_for(&format!("pod {name} Ready"), || async {
            pods.get_opt(name)
                .await
                .unwrap()
                .is_some_and(|pod| lead::select::fitness(&pod).is_ok())
        })
        .await;
        // Ready transitions have one-second resolution: the next pod must be Ready later.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pod the `EndpointSlice` routes to, and whether that endpoint is ready.
async fn routed(test: &TestCluster, slice: &str) -> Option<(String, bool)> {
    let slices: Api<EndpointSlice> = test.api();
    let slice = slices.get_opt(slice).await.unwrap()?;
    let endpoint = slice.endpoints?.into_iter().next()?;
    Some((
        endpoint.target_ref?.name?,
        endpoint.conditions?.ready.unwrap_or(false),
    ))
}

/// Creates the Service `web` with `annotations`; returns the Services API.
async fn opt_in(test: &TestCluster, annotations: &BTreeMap<&str, &str>) -> Api<Service> {
    let services: Api<Service> = test.api();
    services
        .create(&PostParams::default(), &service("web", annotations))
        .await
        .unwrap();
    services
}

/// Waits until `slice` routes to `pod`, its endpoint `ready` or not.
async fn wait_routed_to(test: &TestCluster, slice: &str, pod: &str, ready: bool) {
    wait_for(
        &format!("{slice} to route to {pod} (ready: {ready})"),
        || async { routed(test, slice).await == Some((pod.to_owned(), ready)) },
    )
    .await;
}

fn options(test: &TestCluster) -> LeadOptions {
    LeadOptions {
        namespace: Some(test.namespace.clone()),
        resync: Duration::from_secs(60),
        ..LeadOptions::default()
    }
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<lead::RunSummary, lead::LeadError>>,
}

impl Running {
    fn start(test: &TestCluster, options: LeadOptions) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (cluster, stop) = (test.cluster.clone(), stop.clone());
            async move { lead::run(cluster, &options, &stop).await }
        });
        Self { stop, task }
    }

    async fn stop(self) -> lead::RunSummary {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the controller stops when cancelled")
            .unwrap()
            .unwrap()
    }
}

async fn metric(address: std::net::SocketAddr, name: &str) -> f64 {
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each change of the pod `web-leader` routes to is an Event on the Service `web`: elected
/// `web-a`, then `web-b` replacing it, then (when a pod could be made `NotReady`) `web-c` replacing
/// `web-b`, each its own Event (sent from a queue: waited for).
async fn check_leader_events(test: &TestCluster, flipped: bool) {
    let events: Api<k8s_openapi::api::core::v1::Event> = test.api();
    let mut said = Vec::new();
    for _ in 0..100 {
        said = events
            .list(&kube::api::ListParams::default().fields("involvedObject.name=web"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|event| Some((event.reason?, event.message.unwrap_or_default())))
            .collect();
        let changes = said
            .iter()
            .filter(|(reason, _)| reason == "LeaderChanged")
            .count();
        if changes >= if flipped { 2 } else { 1 } {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elected = said.iter().find(|(reason, _)| reason == "LeaderElected");
    assert!(
        elected.is_some_and(|(_, note)| note.starts_with("pod web-a leads")),
        "{said:?}"
    );
    // Each new leader its own Event, with its own note (not a series of the first).
    let changed = |from: &str, to: &str| {
        said.iter().any(|(reason, note)| {
            reason == "LeaderChanged"
                && note.starts_with(&format!("pod {to} leads, replacing {from}"))
        })
    };
    assert!(changed("web-a", "web-b"), "{said:?}");
    assert!(!flipped || changed("web-b", "web-c"), "{said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_service_routes_to_the_pod_ready_longest_and_fails_over() {
    let test = cluster().await;
    ready_pods(&test, &["web-a", "web-b", "web-c"]).await;
    let services = opt_in(&test, &enabled()).await;
    let parent = services.get("web").await.unwrap();
    let running = Running::start(&test, options(&test));
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    let leader = services.get("web-leader").await.unwrap();
    let spec = leader.spec.clone().unwrap();
    assert_eq!(spec.selector, None, "selector-less");
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.port, port.name.as_deref()), (80, Some("http")));
    let annotations = leader.annotations();
    assert_eq!(annotations[lead::LEADER_POD_NAME], "web-a");
    let pods: Api<Pod> = test.api();
    let web_a = pods.get("web-a").await.unwrap();
    assert_eq!(annotations[lead::LEADER_POD_UID], web_a.uid().unwrap());
    assert!(annotations[lead::LAST_SWITCH_TIME].ends_with('Z'));
    assert_eq!(leader.labels()[lead::MANAGED_BY], "zen-lead");
    assert_eq!(leader.labels()[lead::SOURCE_SERVICE], "web");
    assert_eq!(leader.labels()["team"], "a", "the parent's labels are kept");
    assert!(
        !leader.labels().contains_key("argocd.argoproj.io/instance"),
        "GitOps labels are not"
    );
    let owner = &leader.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (parent.uid().unwrap().as_str(), Some(true))
    );
    let slices: Api<EndpointSlice> = test.api();
    let slice = slices.get("web-leader").await.unwrap();
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.labels()["kubernetes.io/service-name"], "web-leader");
    assert_eq!(slice.labels()[lead::SLICE_MANAGED_BY], "zen-lead");
    assert_eq!(slice.owner_references()[0].uid, leader.uid().unwrap());
    let endpoints = slice.endpoints.clone().unwrap();
    assert_eq!(endpoints.len(), 1, "exactly one pod");
    assert_eq!(
        endpoints[0].addresses,
        vec![web_a.status.unwrap().pod_ip.unwrap()]
    );
    let ports = slice.ports.unwrap();
    assert_eq!(ports[0].port, Some(8080), "the named targetPort resolved");

    // Deleted: the next pod Ready longest takes over.
    let started = Instant::now();
    pods.delete("web-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("failover to web-b", || async {
        routed(&test, "web-leader")
            .await
            .is_some_and(|(pod, _)| pod == "web-b")
    })
    .await;
    let failover = started.elapsed();
    // NotReady: web-c takes over.
    let started = Instant::now();
    let flipped = test.set_pod_ready("web-b", false).await;
    if flipped {
        wait_for("failover to web-c", || async {
            routed(&test, "web-leader").await == Some(("web-c".into(), true))
        })
        .await;
        let not_ready = started.elapsed();
        assert!(
            not_ready < Duration::from_secs(1),
            "failover after NotReady took {not_ready:?}"
        );
        // web-b Ready again: web-c stays (sticky).
        test.set_pod_ready("web-b", true).await;
    }
    assert!(
        failover < Duration::from_secs(5),
        "failover after delete took {failover:?}"
    );
    let summary = running.stop().await;
    assert!(summary.failovers >= 1, "{summary:?}");
    assert_eq!(summary.errors, 0, "{summary:?}");
    check_leader_events(&test, flipped).await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_leader_stays_while_other_pods_come_and_go() {
    let test = cluster().await;
    ready_pods(&test, &["web-a", "web-b"]).await;
    let services = opt_in(&test, &enabled()).await;
    let running = Running::start(&test, options(&test));
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    let slices: Api<EndpointSlice> = test.api();
    let before = slices.get("web-leader").await.unwrap().resource_version();
    let leader_before = services.get("web-leader").await.unwrap().resource_version();
    let pods: Api<Pod> = test.api();
    for round in 0..3 {
        let name = format!("web-extra-{round}");
        pods.create(&PostParams::default(), &pod(&name))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    pods.delete("web-b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        routed(&test, "web-leader").await,
        Some(("web-a".into(), true))
    );
    assert_eq!(
        slices.get("web-leader").await.unwrap().resource_version(),
        before,
        "no write"
    );
    assert_eq!(
        services.get("web-leader").await.unwrap().resource_version(),
        leader_before
    );
    let summary = running.stop().await;
    assert_eq!(summary.failovers, 0, "{summary:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_duration_holds_new_pods_back_and_removing_the_annotation_cleans_up() {
    let test = cluster().await;
    let mut annotations = enabled();
    annotations.insert(lead::MIN_READY_DURATION, "2s");
    annotations.insert(lead::LEADER_SERVICE_NAME, "web-primary");
    let services = opt_in(&test, &annotations).await;
    let running = Running::start(&test, options(&test));
    wait_for("the leader Service, with no endpoint", || async {
        services.get_opt("web-primary").await.unwrap().is_some()
    })
    .await;
    let pods: Api<Pod> = test.api();
    pods.create(&PostParams::default(), &pod("web-a"))
        .await
        .unwrap();
    wait_for("web-a Ready", || async {
        lead::select::fitness(&pods.get("web-a").await.unwrap()).is_ok()
    })
    .await;
    let ready_at = Instant::now();
    wait_for("web-a to lead", || async {
        routed(&test, "web-primary")
            .await
            .is_some_and(|(pod, _)| pod == "web-a")
    })
    .await;
    let waited = ready_at.elapsed();
    // Ready times have one-second resolution: at least 1 s of the 2 s is certain.
    assert!(waited >= Duration::from_secs(1), "led after {waited:?}");
    assert!(waited < Duration::from_secs(4), "led after {waited:?}");
    let rows = lead::status(&test.cluster, Some(&test.namespace))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].leader.as_deref(), Some("web-a"));
    assert_eq!(rows[0].leader_service, "web-primary");
    assert_eq!(
        (rows[0].pods, rows[0].ready_pods, rows[0].endpoints),
        (1, 1, 1)
    );
    assert!(rows[0].problems.is_empty(), "{:?}", rows[0].problems);

    // Opting out removes what was made.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {lead::ENABLED: null}}})),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = test.api();
    wait_for("the leader Service and slice to go", || async {
        services.get_opt("web-primary").await.unwrap().is_none()
            && slices.get_opt("web-primary").await.unwrap().is_none()
    })
    .await;
    assert!(
        lead::status(&test.cluster, Some(&test.namespace))
            .await
            .unwrap()
            .is_empty()
    );
    running.stop().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_deleted_comes_back_and_a_renamed_leader_service_replaces_the_old_one() {
    let test = cluster().await;
    ready_pods(&test, &["web-a"]).await;
    let services = opt_in(&test, &enabled()).await;
    let running = Running::start(&test, options(&test));
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    let slices: Api<EndpointSlice> = test.api();
    // Deleted right after it was written (the controller still trusts its own copy) and again
    // once settled: made again each time, from the deletion's event rather than the resync.
    for round in 0..2 {
        let started = Instant::now();
        slices
            .delete("web-leader", &DeleteParams::default())
            .await
            .unwrap();
        wait_routed_to(&test, "web-leader", "web-a", true).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "slice recreated after {:?} (round {round})",
            started.elapsed()
        );
    }
    let old_uid = services.get("web-leader").await.unwrap().uid();
    services
        .delete("web-leader", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the leader Service made again", || async {
        services
            .get_opt("web-leader")
            .await
            .unwrap()
            .is_some_and(|found| found.uid() != old_uid)
    })
    .await;
    wait_routed_to(&test, "web-leader", "web-a", true).await;

    // Renamed: the new leader Service routes, the old one goes.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {lead::LEADER_SERVICE_NAME: "web-primary"}}}),
            ),
        )
        .await
        .unwrap();
    wait_routed_to(&test, "web-primary", "web-a", true).await;
    wait_for("the old leader Service and slice to go", || async {
        services.get_opt("web-leader").await.unwrap().is_none()
            && slices.get_opt("web-leader").await.unwrap().is_none()
    })
    .await;

    // The selector removed: no pod can be found, so none leads (not the last one for ever).
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "remove", "path": "/spec/selector"}]))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    wait_for("the slice to lose its endpoint", || async {
        slices
            .get_opt("web-primary")
            .await
            .unwrap()
            .is_some_and(|slice| slice.endpoints.unwrap_or_default().is_empty())
    })
    .await;
    let rows = lead::status(&test.cluster, Some(&test.namespace))
        .await
        .unwrap();
    assert!(
        rows[0].problems.iter().any(|p| p.contains("selector")),
        "{:?}",
        rows[0].problems
    );
    let summary = running.stop().await;
    assert_eq!(summary.errors, 0, "{summary:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_beyond_the_per_namespace_cache_still_fail_over_on_pod_events() {
    let test = cluster().await;
    ready_pods(&test, &["web-a", "web-b"]).await;
    let services = opt_in(&test, &enabled()).await;
    services
        .create(&PostParams::default(), &service("web2", &enabled()))
        .await
        .unwrap();
    let [address] = unused_addresses();
    let running = Running::start(
        &test,
        LeadOptions {
            max_cache_size_per_namespace: 1,
            metrics_addr: Some(address),
            ..options(&test)
        },
    );
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    wait_routed_to(&test, "web2-leader", "web-a", true).await;
    let pods: Api<Pod> = test.api();
    pods.delete("web-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    // Both fail over from the pod's event (the resync is a minute away), though only one of
    // the two fits in the cache.
    let started = Instant::now();
    wait_routed_to(&test, "web-leader", "web-b", true).await;
    wait_routed_to(&test, "web2-leader", "web-b", true).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(metric(address, "zen_lead_cache_size").await <= 1.0);
    running.stop().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_renew_its_lease_stops_writing() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("fault injection") else {
        return test.cleanup().await;
    };
    ready_pods(&test, &["web-a"]).await;
    let [address] = unused_addresses();
    let running = Running::start(
        &test,
        LeadOptions {
            election: Some(ElectionOptions {
                lease_duration: Duration::from_secs(2),
                renew_deadline: Duration::from_millis(1500),
                retry_period: Duration::from_millis(200),
                ..ElectionOptions::new(&test.namespace, "zen-lead-renew", "replica-a")
            }),
            metrics_addr: Some(address),
            ..options(&test)
        },
    );
    opt_in(&test, &enabled()).await;
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    sim.faults().inject(Fault::on(
        "leases",
        "update",
        FaultAction::Status {
            code: 500,
            retry_after_seconds: None,
        },
    ));
    let failing = Instant::now();
    wait_for("the replica to step down", || async {
        metric(address, "zen_lead_is_leader").await < 0.5
    })
    .await;
    // Within the renew deadline (1.5 s) and a retry period, well before the Lease (2 s) could
    // be taken by another replica.
    assert!(
        failing.elapsed() < Duration::from_secs(2),
        "{:?}",
        failing.elapsed()
    );
    let slices: Api<EndpointSlice> = test.api();
    slices
        .delete("web-leader", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        slices.get_opt("web-leader").await.unwrap().is_none(),
        "a replica without the Lease repaired the slice"
    );
    sim.faults().clear();
    wait_for(
        "the slice repaired once the Lease is held again",
        || async { routed(&test, "web-leader").await.is_some() },
    )
    .await;
    let summary = running.stop().await;
    assert_eq!(summary.terms, 2, "{summary:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_min_delay_keeps_a_not_ready_leader_that_long() {
    let test = cluster().await;
    ready_pods(&test, &["web-a", "web-b"]).await;
    let mut annotations = enabled();
    annotations.insert(lead::FAILOVER_MIN_DELAY, "1500ms");
    opt_in(&test, &annotations).await;
    let running = Running::start(&test, options(&test));
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    let started = Instant::now();
    if !test.set_pod_ready("web-a", false).await {
        running.stop().await;
        return test.cleanup().await;
    }
    wait_routed_to(&test, "web-leader", "web-a", false).await;
    wait_routed_to(&test, "web-leader", "web-b", true).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    running.stop().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_lease_holder_writes() {
    let test = cluster().await;
    ready_pods(&test, &["web-a"]).await;
    let election = |identity: &str| ElectionOptions {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..ElectionOptions::new(&test.namespace, "zen-lead-test", identity)
    };
    let [metrics_a, metrics_b] = unused_addresses();
    let replica = |identity: &str, address| LeadOptions {
        election: Some(election(identity)),
        metrics_addr: Some(address),
        ..options(&test)
    };
    let a = Running::start(&test, replica("replica-a", metrics_a));
    let leases: Api<Lease> = test.api();
    wait_for("replica-a to hold the Lease", || async {
        leases
            .get_opt("zen-lead-test")
            .await
            .unwrap()
            .and_then(|lease| lease.spec?.holder_identity)
            == Some("replica-a".into())
    })
    .await;
    let b = Running::start(&test, replica("replica-b", metrics_b));
    wait_for("replica-b's metrics", || async {
        tokio::net::TcpStream::connect(metrics_b).await.is_ok()
    })
    .await;
    opt_in(&test, &enabled()).await;
    // Both watched for 2 s: never both leading; a made the leader Service.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let (leader_a, leader_b) = (
            metric(metrics_a, "zen_lead_is_leader").await,
            metric(metrics_b, "zen_lead_is_leader").await,
        );
        assert!(leader_a + leader_b <= 1.0, "both replicas lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(routed(&test, "web-leader").await.is_some());
    // The standby, stopped while a leads, never led and wrote nothing; started again, it waits.
    let standby = b.stop().await;
    assert_eq!((standby.terms, standby.writes), (0, 0), "{standby:?}");
    let b = Running::start(&test, replica("replica-b", metrics_b));
    wait_for("replica-b's metrics", || async {
        tokio::net::TcpStream::connect(metrics_b).await.is_ok()
    })
    .await;
    let summary_a = a.stop().await;
    assert!(summary_a.writes >= 2, "{summary_a:?}");
    // a released the Lease: b takes over and repairs what a made.
    wait_for("replica-b to lead", || async {
        metric(metrics_b, "zen_lead_is_leader").await > 0.5
    })
    .await;
    let slices: Api<EndpointSlice> = test.api();
    slices
        .delete("web-leader", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("replica-b to recreate the slice", || async {
        routed(&test, "web-leader").await.is_some()
    })
    .await;
    let summary_b = b.stop().await;
    assert_eq!(summary_b.terms, 1, "{summary_b:?}");
    assert!(summary_b.writes >= 1, "{summary_b:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_are_retried_with_the_fast_profile() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("fault injection") else {
        return test.cleanup().await;
    };
    ready_pods(&test, &["web-a"]).await;
    sim.faults().inject(
        Fault::on(
            "endpointslices",
            "patch",
            FaultAction::Status {
                code: 500,
                retry_after_seconds: None,
            },
        )
        .times(1),
    );
    sim.faults().inject(
        Fault::on(
            "pods",
            "list",
            FaultAction::Status {
                code: 429,
                retry_after_seconds: Some(0),
            },
        )
        .times(1),
    );
    let [address] = unused_addresses();
    let running = Running::start(
        &test,
        LeadOptions {
            metrics_addr: Some(address),
            ..options(&test)
        },
    );
    opt_in(&test, &enabled()).await;
    wait_for("the leader despite the faults", || async {
        routed(&test, "web-leader").await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(metric(address, "zen_lead_retry_attempts_total").await >= 2.0);
    assert!(metric(address, "zen_lead_retry_success_after_retry_total").await >= 2.0);
    assert!(metric(address, "zen_lead_reconciliation_duration_seconds_count").await >= 1.0);
    assert!(metric(address, "zen_lead_leader_service_without_endpoints").await < 0.5);
    let summary = running.stop().await;
    assert_eq!(
        summary.errors, 0,
        "retried within the reconcile: {summary:?}"
    );
    test.cleanup().await;
}

/// zen-lead across an API server restart (kube-apiserver killed and started again on the real
/// control plane, zen-sim's restart fault on zen-sim): its watches come back, a leader deleted
/// afterwards is failed over from, and a Service opted in afterwards gets its leader. With
/// election, the restart (3 s) is shorter than the renew deadline, so the replica keeps the
/// Lease; without, it only reconciles.
async fn rides_out_an_api_server_restart(election: bool) {
    let test = support::cluster_alone().await;
    ready_pods(&test, &["web-a", "web-b"]).await;
    let election = election.then(|| ElectionOptions::new(&test.namespace, "zen-lead-restart", "a"));
    let running = Running::start(
        &test,
        LeadOptions {
            election,
            ..options(&test)
        },
    );
    let services = opt_in(&test, &enabled()).await;
    wait_routed_to(&test, "web-leader", "web-a", true).await;
    if !test.restart_api_server(Duration::from_secs(3)).await {
        running.stop().await;
        return test.cleanup().await;
    }
    // Within a minute of the restart: kube's watch backoff grows to tens of seconds.
    let after = Duration::from_secs(60);
    let pods: Api<Pod> = test.api();
    support::eventually(after, "the leader pod deleted", || async {
        pods.delete("web-a", &DeleteParams::default().grace_period(0))
            .await
            .ok()
    })
    .await;
    support::eventually(after, "failover to web-b", || async {
        (routed(&test, "web-leader").await == Some(("web-b".to_owned(), true))).then_some(())
    })
    .await;
    let mut api = service("api", &enabled());
    api.metadata.labels = None;
    services.create(&PostParams::default(), &api).await.unwrap();
    support::eventually(after, "a leader for a Service opted in after", || async {
        routed(&test, "api-leader")
            .await
            .filter(|(_, ready)| *ready)
    })
    .await;
    let summary = running.stop().await;
    assert!(summary.failovers >= 1, "{summary:?}");
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_is_ridden_out() {
    rides_out_an_api_server_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_is_ridden_out_under_leader_election() {
    rides_out_an_api_server_restart(true).await;
}
