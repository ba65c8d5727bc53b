//! Port-forwards end to end against zen-sim: its `pods/portforward` subresource, the
//! supervisor's states, reconnects after a pod is killed mid-transfer, conflicting local ports
//! and shutdown. A simulated pod's port is a local TCP server named in the pod's
//! `zen-sim.kubezen.io/port-forward` annotation, so on a real cluster (`ZEN_TEST_KUBECONFIG`)
//! these tests skip: its pods would need an image serving the port.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kubezen::forward::{self, Config, Layer, State, Status, SuperviseOptions, Supervisor};
use kubezen::sim::{BACKENDS_ANNOTATION, Fault, FaultAction, echo_backend};
use serde_json::json;
use support::{TestCluster, cluster, eventually, object, unused_addresses};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

/// A TCP echo server standing in for a pod's port; its address.
async fn echo_server() -> SocketAddr {
    echo_backend().await.expect("a loopback port")
}

/// The test's cluster with port `port` of its pods answered by `backend`
/// ([`TestCluster::serve_pod_port`]); `None` (its namespace removed) on a real cluster whose
/// pods' ports the tests cannot choose.
async fn serving(port: u16, backend: SocketAddr) -> Option<TestCluster> {
    let test = cluster().await;
    if !test.serve_pod_port(port, backend).await {
        test.cleanup().await;
        return None;
    }
    Some(test)
}

/// The test's cluster when it is zen-sim, for faults only it can inject; on a real cluster,
/// `None` (its namespace removed).
async fn zen_sim() -> Option<TestCluster> {
    let test = cluster().await;
    if test
        .sim_only("injecting API faults under port-forwards")
        .is_none()
    {
        test.cleanup().await;
        return None;
    }
    Some(test)
}

/// A fault answering `code` to every `verb` of `resource`.
fn answer(resource: &str, verb: &str, code: u16) -> Fault {
    Fault::on(
        resource,
        verb,
        FaultAction::Status {
            code,
            retry_after_seconds: None,
        },
    )
}

async fn create_pod(test: &TestCluster, name: &str, backend: SocketAddr) {
    test.api::<Pod>()
        .create(&PostParams::default(), &object(pod_json(name, backend)))
        .await
        .unwrap();
}

fn pod_json(name: &str, backend: SocketAddr) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web"},
                     "annotations": {BACKENDS_ANNOTATION: format!("8080={backend}")}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                 "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

async fn web_service(test: &TestCluster) {
    let service: Service = object(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }));
    test.api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

fn config(test: &TestCluster, entries: &str) -> Config {
    let yaml = format!("portForwards:\n{entries}").replace("NS", &test.namespace);
    forward::merge(&[Layer::defaults(), Layer::text("test.yaml", &yaml)])
        .expect("a valid configuration")
}

fn status<'a>(statuses: &'a [Status], name: &str) -> &'a Status {
    statuses.iter().find(|s| s.name == name).expect("the entry")
}

async fn until_state(supervisor: &Supervisor, name: &str, state: State) -> Status {
    eventually(WAIT, &format!("{name} {state:?}"), || async {
        let statuses = supervisor.statuses();
        let status = status(&statuses, name);
        (status.state == state).then(|| status.clone())
    })
    .await
}

/// Sends `payload` through `port` and reads as much back.
async fn echo_through(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = socket.split();
    let send = async {
        write.write_all(payload).await.unwrap();
    };
    let mut back = vec![0u8; payload.len()];
    let receive = async { read.read_exact(&mut back).await.map(|_| ()) };
    let ((), received) = tokio::join!(send, receive);
    received.expect("the echo comes back");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_go_to_the_pod_and_back_through_svc_pod_and_deploy_targets() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    assert!(test.serve_pod_port(9000, backend).await);
    create_pod(&test, "web-0", backend).await;
    web_service(&test).await;
    let deployment: Deployment = object(json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}, "annotations": {BACKENDS_ANNOTATION: format!("9000={backend}")}},
                              "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                        "ports": [{"name": "grpc", "containerPort": 9000}]}]}}}
    }));
    test.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let config = config(
        &test,
        "  by-service: {target: svc/web, namespace: NS, targetPort: http, type: rest}\n  by-pod: {target: pod/web-0, namespace: NS, targetPort: 8080}\n  by-deploy: {target: deploy/api, namespace: NS, targetPort: grpc, type: rpc}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    assert!(
        supervisor.wait_running(WAIT).await,
        "{:#?}",
        supervisor.statuses()
    );
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    for name in ["by-service", "by-pod", "by-deploy"] {
        let statuses = supervisor.statuses();
        let status = status(&statuses, name);
        let port = status.local_port.unwrap();
        assert_eq!(echo_through(port, &payload).await, payload, "{name}");
        assert_eq!(status.namespace, test.namespace);
    }
    let statuses = supervisor.statuses();
    assert_eq!(
        status(&statuses, "by-service").pod.as_deref(),
        Some("web-0")
    );
    assert_eq!(status(&statuses, "by-service").pod_port, Some(8080));
    assert_eq!(status(&statuses, "by-deploy").pod_port, Some(9000));
    let deploy = eventually(WAIT, "the connection counted", || async {
        let statuses = supervisor.statuses();
        let status = status(&statuses, "by-deploy").clone();
        (status.connections == 1).then_some(status)
    })
    .await;
    assert_eq!(deploy.bytes, 8_000_000);
    let ports: Vec<u16> = statuses.iter().filter_map(|s| s.local_port).collect();
    let last = supervisor.shutdown().await;
    assert_eq!(last.len(), 3);
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "port {port} closed after shutdown"
        );
    }
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_killed_mid_transfer_ends_its_connections_and_the_forward_moves_to_the_new_pod() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    let deployment: Deployment = object(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}, "annotations": {BACKENDS_ANNOTATION: format!("8080={backend}")}},
                              "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }));
    test.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    web_service(&test).await;
    let config = config(
        &test,
        "  web: {target: svc/web, namespace: NS, targetPort: 80}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let running = until_state(&supervisor, "web", State::Running).await;
    let first_pod = running.pod.clone().unwrap();
    let port = running.local_port.unwrap();
    // A transfer in progress: bytes flowing both ways until the pod goes.
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(&vec![7u8; 64 * 1024]).await.unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    socket.read_exact(&mut buffer).await.unwrap();
    test.api::<Pod>()
        .delete(&first_pod, &DeleteParams::default())
        .await
        .unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            if socket.write_all(&[1u8; 4096]).await.is_err() {
                return;
            }
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await
            {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection to the killed pod ended");
    let moved = eventually(WAIT, "a Running forward to the replacement pod", || async {
        let statuses = supervisor.statuses();
        let status = status(&statuses, "web").clone();
        (status.state == State::Running && status.pod.as_ref().is_some_and(|p| *p != first_pod))
            .then_some(status)
    })
    .await;
    assert!(moved.restarts >= 1, "{moved:?}");
    assert_eq!(
        moved.local_port,
        Some(port),
        "the local port is kept across reconnects"
    );
    assert_eq!(
        echo_through(port, b"after the restart").await,
        b"after the restart"
    );
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nothing_listens_on_degrades_the_forward_until_it_answers() {
    // A port nothing listens on.
    let [closed] = unused_addresses();
    let Some(test) = serving(8080, closed).await else {
        return;
    };
    create_pod(&test, "lonely", closed).await;
    let config = config(
        &test,
        "  lonely: {target: pod/lonely, namespace: NS, targetPort: http}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let running = until_state(&supervisor, "lonely", State::Running).await;
    let port = running.local_port.unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(WAIT, socket.read(&mut buffer))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the refused connection is closed"
    );
    let degraded = until_state(&supervisor, "lonely", State::Degraded).await;
    let message = degraded.message.unwrap();
    assert!(
        message.contains("dial tcp") && message.contains("lonely"),
        "{message}"
    );
    // The server comes up on that port: the next connection goes through.
    let listener = TcpListener::bind(closed).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    assert_eq!(echo_through(port, b"hello").await, b"hello");
    until_state(&supervisor, "lonely", State::Running).await;
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_local_ports_go_to_distinct_entries_and_a_busy_port_is_skipped() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    create_pod(&test, "web-0", backend).await;
    // Another program holds a port two entries ask for; a third asks for a free one.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().port();
    let [free] = unused_addresses();
    let free = free.port();
    let entries = format!(
        "  b-second: {{target: pod/web-0, namespace: NS, targetPort: 8080, localPort: {free}}}\n  a-first: {{target: pod/web-0, namespace: NS, targetPort: 8080, localPort: {free}}}\n  c-busy: {{target: pod/web-0, namespace: NS, targetPort: 8080, localPort: {taken}}}\n"
    );
    let config = config(&test, &entries);
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    assert!(
        supervisor.wait_running(WAIT).await,
        "{:#?}",
        supervisor.statuses()
    );
    let statuses = supervisor.statuses();
    let ports: Vec<u16> = statuses.iter().map(|s| s.local_port.unwrap()).collect();
    assert_eq!(ports[0], free, "a-first sorts first and keeps its port");
    assert_ne!(ports[2], taken);
    let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{ports:?}");
    for port in ports {
        assert_eq!(echo_through(port, b"mine").await, b"mine");
    }
    drop(busy);
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_targets_wait_and_impossible_ports_fail_with_the_reason() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    web_service(&test).await;
    let config = config(
        &test,
        "  absent: {target: svc/nowhere, namespace: NS, targetPort: 80}\n  wrong-port: {target: svc/web, namespace: NS, targetPort: 443}\n  no-pods: {target: svc/web, namespace: NS, targetPort: 80}\n  off: {target: svc/web, namespace: NS, targetPort: 80, disabled: true}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let absent = until_state(&supervisor, "absent", State::Reconnecting).await;
    assert!(absent.message.unwrap().contains("svc/nowhere in namespace"));
    let wrong = until_state(&supervisor, "wrong-port", State::Failed).await;
    assert!(
        wrong
            .message
            .unwrap()
            .contains("has no port 443 (its ports: 80/http)")
    );
    let waiting = until_state(&supervisor, "no-pods", State::Reconnecting).await;
    assert!(waiting.message.unwrap().contains("no pods behind svc/web"));
    let statuses = supervisor.statuses();
    assert_eq!(status(&statuses, "off").state, State::Suspended);
    assert_eq!(status(&statuses, "off").local_port, None);
    // A pod appears: the waiting entry finds it.
    create_pod(&test, "web-0", backend).await;
    let running = until_state(&supervisor, "no-pods", State::Running).await;
    assert_eq!(
        echo_through(running.local_port.unwrap(), b"found").await,
        b"found"
    );
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_streams_speak_the_api_servers_protocol() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    let pods = test.api::<Pod>();
    pods.create(&PostParams::default(), &object(pod_json("web-0", backend)))
        .await
        .unwrap();
    let missing = pods.portforward("ghost", &[8080]).await.err().unwrap();
    assert!(kubezen::cluster::is_not_found(&missing), "{missing}");
    eventually(WAIT, "web-0 running", || async {
        let pod = pods.get("web-0").await.ok()?;
        (pod.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    // Two ports in one stream: one served, one with nothing behind it.
    let mut forwarder = pods.portforward("web-0", &[8080, 9999]).await.unwrap();
    let mut stream = forwarder.take_stream(8080).unwrap();
    let error = forwarder.take_error(9999).unwrap();
    // zen-sim's words, or kwok's behind the real API server.
    let error = error.await.unwrap();
    assert!(
        error.contains("nothing stands in for this port")
            || error.contains("no forward found for port 9999"),
        "{error}"
    );
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    drop(stream);
    let _ = forwarder.join().await;
    assert!(pods.list(&ListParams::default()).await.unwrap().items.len() == 1);
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn a_hundred_forwards_run_within_seconds() {
    let backend = echo_server().await;
    let Some(test) = serving(8080, backend).await else {
        return;
    };
    let mut entries = String::new();
    for i in 0..100 {
        test.api::<Pod>()
            .create(
                &PostParams::default(),
                &object(pod_json(&format!("web-{i}"), backend)),
            )
            .await
            .unwrap();
        writeln!(
            entries,
            "  e{i:03}: {{target: pod/web-{i}, namespace: NS, targetPort: 8080}}"
        )
        .unwrap();
    }
    eventually(WAIT, "100 pods running", || async {
        let pods = test.api::<Pod>().list(&ListParams::default()).await.ok()?;
        let running = pods
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 100).then_some(())
    })
    .await;
    let config = config(&test, &entries);
    let started = Instant::now();
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    assert!(supervisor.wait_running(WAIT).await);
    let elapsed = started.elapsed();
    eprintln!("100 forwards Running in {elapsed:?} (debug build)");
    let ports: std::collections::HashSet<u16> = supervisor
        .statuses()
        .iter()
        .filter_map(|s| s.local_port)
        .collect();
    assert_eq!(ports.len(), 100);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_dropped_watches_are_ridden_out_and_refusals_fail() {
    let Some(test) = zen_sim().await else {
        return;
    };
    let sim = test.sim.as_ref().expect("zen-sim");
    let backend = echo_server().await;
    create_pod(&test, "web-0", backend).await;
    web_service(&test).await;
    // Every read of the Service fails for a while; the pod watch drops three times; reading
    // the Deployment is forbidden.
    sim.faults()
        .inject(answer("services", "get", 503).times(12));
    sim.faults()
        .inject(Fault::on("pods", "watch", FaultAction::DropWatch { after_events: 0 }).times(3));
    sim.faults().inject(answer("deployments", "get", 403));
    let config = config(
        &test,
        "  web: {target: svc/web, namespace: NS, targetPort: 80}\n  denied: {target: deploy/web, namespace: NS, targetPort: 8080}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let waiting = until_state(&supervisor, "web", State::Reconnecting).await;
    assert!(
        waiting
            .message
            .unwrap()
            .contains("reading svc/web in namespace")
    );
    let denied = until_state(&supervisor, "denied", State::Failed).await;
    assert!(denied.message.unwrap().contains("reading deploy/web"));
    let running = until_state(&supervisor, "web", State::Running).await;
    assert_eq!(
        echo_through(running.local_port.unwrap(), b"despite").await,
        b"despite"
    );
    // After the dropped watches, a deleted pod is still seen.
    test.api::<Pod>()
        .delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    let gone = until_state(&supervisor, "web", State::Reconnecting).await;
    assert!(
        gone.message
            .as_deref()
            .unwrap_or_default()
            .contains("web-0 was deleted"),
        "{gone:?}"
    );
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pod_lists_and_streams_fail_until_allowed_and_a_client_reset_is_not_a_failure() {
    let Some(test) = zen_sim().await else {
        return;
    };
    let sim = test.sim.as_ref().expect("zen-sim");
    let backend = echo_server().await;
    create_pod(&test, "web-0", backend).await;
    sim.faults().inject(answer("pods", "list", 403));
    let mut config = config(
        &test,
        "  web: {target: pod/web-0, namespace: NS, targetPort: 8080}\n",
    );
    config.settings.backoff_max = Duration::from_secs(1);
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let failed = until_state(&supervisor, "web", State::Failed).await;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("watching the pods of namespace") && message.contains("403"),
        "{message}"
    );
    sim.faults().clear();
    let running = until_state(&supervisor, "web", State::Running).await;
    let port = running.local_port.unwrap();
    // Streams refused: Failed, and connections meanwhile are closed, not left hanging.
    sim.faults()
        .inject(answer("pods/portforward", "create", 403));
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let failed = until_state(&supervisor, "web", State::Failed).await;
    assert!(
        failed
            .message
            .unwrap_or_default()
            .contains("port-forward to pod web-0"),
        "{:?}",
        supervisor.statuses()
    );
    let mut buffer = [0u8; 8];
    let closed = tokio::time::timeout(WAIT, socket.read(&mut buffer)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
    let early = TcpStream::connect(("127.0.0.1", port)).await;
    if let Ok(mut early) = early {
        let closed = tokio::time::timeout(WAIT, early.read(&mut buffer)).await;
        assert!(
            matches!(closed, Ok(Ok(0) | Err(_))),
            "a Failed entry closes connections"
        );
    }
    sim.faults().clear();
    until_state(&supervisor, "web", State::Running).await;
    assert_eq!(echo_through(port, b"allowed").await, b"allowed");
    // That connection counted first (it lingers its 2 s), so that a reset that wrongly degraded
    // the entry could not be set right again by it.
    let before = eventually(WAIT, "the allowed connection counted", || async {
        let statuses = supervisor.statuses();
        let status = status(&statuses, "web").clone();
        (status.bytes >= 14).then_some(status.connections)
    })
    .await;
    // A client that resets its connection is its own business: the entry stays Running.
    let reset = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = reset.into_split();
    write.write_all(b"hello").await.unwrap();
    let mut echo = [0u8; 5];
    read.read_exact(&mut echo).await.unwrap();
    let reset = read.reunite(write).unwrap();
    reset.set_zero_linger().unwrap();
    drop(reset);
    let after = eventually(WAIT, "the reset connection counted", || async {
        let statuses = supervisor.statuses();
        let status = status(&statuses, "web").clone();
        (status.connections > before).then_some(status)
    })
    .await;
    assert_eq!(
        (after.state, &after.message),
        (State::Running, &None),
        "{after:?}"
    );
    supervisor.shutdown().await;
    test.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_does_not_wait_for_a_slow_api_server_and_closes_the_ports_first() {
    let Some(test) = zen_sim().await else {
        return;
    };
    let sim = test.sim.as_ref().expect("zen-sim");
    web_service(&test).await;
    let backend = echo_server().await;
    create_pod(&test, "web-0", backend).await;
    sim.faults().inject(Fault::on(
        "services",
        "get",
        FaultAction::Delay { millis: 20_000 },
    ));
    let config = config(
        &test,
        "  slow: {target: svc/web, namespace: NS, targetPort: 80}\n  quick: {target: pod/web-0, namespace: NS, targetPort: 8080}\n",
    );
    let supervisor =
        Supervisor::start(&test.cluster, &config, &SuperviseOptions::default()).unwrap();
    let quick = until_state(&supervisor, "quick", State::Running).await;
    let port = quick.local_port.unwrap();
    // A connection in flight when the shutdown comes: the port closes at once, and the
    // connection is counted when it ends within the grace period.
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(b"in flight").await.unwrap();
    let mut back = [0u8; 9];
    socket.read_exact(&mut back).await.unwrap();
    assert_eq!(
        status(&supervisor.statuses(), "slow").state,
        State::Starting
    );
    let started = Instant::now();
    let stopping = tokio::spawn(supervisor.shutdown());
    eventually(WAIT, "the port closed", || async {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    drop(socket);
    let last = stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The probes of the closing port may have been accepted too: they moved nothing.
    let quick = status(&last, "quick");
    assert!(quick.connections >= 1 && quick.bytes == 18, "{quick:?}");
    sim.faults().clear();
    test.cleanup().await;
}
