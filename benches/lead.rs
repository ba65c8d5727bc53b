//! The zen-lead controller's hot paths and its figures at scale.
//!
//! ```text
//! cargo bench --bench lead                 # criterion: choosing a leader, building the objects
//! cargo bench --bench lead -- scale [SERVICES [PODS_PER_SERVICE]]   # (1,000 x 10)
//! ```
//!
//! `scale` starts zen-sim in this process with SERVICES opted-in Services over SERVICES x
//! `PODS_PER_SERVICE` Ready pods in a hundred namespaces, then runs the release plugin
//! (`target/release/kubectl-zen lead`, built first by `make release`) as a child process:
//! once with the guide's defaults (--qps 50 --burst 100) until every leader Service routes
//! (convergence), once more as a restarted controller (`--resync 5s`, nothing to write): the
//! steady-state reconcile p95 from its `zen_lead_reconciliation_duration_seconds` histogram
//! between 8 s and 20 s (after the restart's first pass), the failover latency
//! of 20 leaders made `NotReady` one after another (time until the `EndpointSlice` routes to
//! another pod, read by polling the API), then of 10 whose Services ask for a
//! `failover-min-delay` of 1 s, and the child's peak memory (`VmHWM`).

#![allow(clippy::cast_precision_loss, clippy::missing_panics_doc)]
#![allow(clippy::print_stdout)] // a benchmark prints its figures

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kubezen::cluster::{Cluster, ClusterOptions};
use kubezen::lead::select::{self, LeadConfig};
use kubezen::sim::{BackgroundSim, SimOptions};
use serde_json::json;

const NAMESPACES: usize = 100;

fn pod(name: &str, app: &str, ready_at: i64) -> Pod {
    let at = Timestamp::from_second(ready_at).unwrap().to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "bench", "uid": format!("{name}-uid"),
                     "creationTimestamp": at, "labels": {"app": app}},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}]},
    }))
    .unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "bench", "uid": "u", "annotations": {"zen-lead.io/enabled": "true"}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap()
}

fn criterion_benches(c: &mut Criterion) {
    let now = Timestamp::from_second(2_000_000).unwrap();
    for size in [10, 1000] {
        let pods: Vec<Pod> = (0..size)
            .map(|i| pod(&format!("p{i}"), "web", 1_000_000 + i64::from(i % 97)))
            .collect();
        c.bench_function(&format!("lead/choose/{size}-pods"), |b| {
            b.iter(|| {
                black_box(select::choose(
                    black_box(&pods),
                    now,
                    Duration::from_secs(30),
                ))
            });
        });
    }
    let parent = service("web");
    let leader = pod("p0", "web", 1_000_000);
    let config = LeadConfig::of(&parent);
    c.bench_function("lead/objects/leader-service+slice", |b| {
        b.iter(|| {
            let ports = select::resolve_ports(&parent, Some(&leader)).unwrap();
            let made =
                select::leader_service(&parent, &config, ports.clone(), Some(&leader), None, now);
            black_box(select::endpoint_slice(
                &parent,
                &made,
                &ports,
                Some(&leader),
                None,
            ))
        });
    });
    let ports = select::resolve_ports(&parent, Some(&leader)).unwrap();
    let made = select::leader_service(&parent, &config, ports.clone(), Some(&leader), None, now);
    let slice = serde_json::to_value(select::endpoint_slice(
        &parent,
        &made,
        &ports,
        Some(&leader),
        None,
    ))
    .unwrap();
    c.bench_function("lead/objects/covers (the no-write check)", |b| {
        b.iter(|| black_box(select::covers(black_box(&slice), black_box(&slice))));
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("scale") {
        let number = |at: usize, default: usize| {
            args.get(at).and_then(|a| a.parse().ok()).unwrap_or(default)
        };
        scale(number(1, 1000), number(2, 10));
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
}

fn scale(services: usize, per_service: usize) {
    let plugin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/kubectl-zen");
    assert!(
        std::path::Path::new(plugin).exists(),
        "build it first: make release"
    );
    let sim = BackgroundSim::start(SimOptions::default()).expect("zen-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.sim().write_kubeconfig(&kubeconfig).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = runtime
        .block_on(Cluster::connect(&ClusterOptions {
            kubeconfig: Some(kubeconfig.clone()),
            qps: 0.0,
            ..ClusterOptions::default()
        }))
        .unwrap();
    let started = Instant::now();
    runtime.block_on(populate(&cluster, services, per_service));
    println!(
        "populated: {services} opted-in Services over {} Ready pods in {NAMESPACES} namespaces ({:.1} s)",
        services * per_service,
        started.elapsed().as_secs_f64()
    );
    let kubeconfig = kubeconfig.display().to_string();
    let run = |extra: &[&str]| -> Child {
        Command::new(plugin)
            .args([
                "--kubeconfig",
                &kubeconfig,
                "lead",
                "-A",
                "--leader-elect=false",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Convergence at the guide's client rate.
    let started = Instant::now();
    let child = run(&["--metrics-addr", "127.0.0.1:0"]);
    let routed = runtime.block_on(wait_routed(&cluster, services, Duration::from_secs(600)));
    let converged = started.elapsed();
    let (summary, peak) = stop(child);
    println!(
        "converge (--qps 50 --burst 100): {routed}/{services} leader Services routing after {:.1} s; peak RSS {peak}",
        converged.as_secs_f64()
    );
    println!("  {summary}");
    // A restarted controller: everything is right already; reconciles find nothing to write.
    // Steady state: the reconciles between 8 s and 20 s (resyncs every 5 s), from the child's
    // histogram (zen-lead's buckets, so the p95 is an upper bound).
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let address_text = address.to_string();
    let child = run(&["--resync", "5s", "--metrics-addr", &address_text]);
    std::thread::sleep(Duration::from_secs(8));
    let before = buckets(address);
    std::thread::sleep(Duration::from_secs(12));
    let after = buckets(address);
    let steady: Vec<(f64, f64)> = after
        .iter()
        .zip(&before)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    let total = steady.last().map_or(0.0, |(_, count)| *count);
    let p95 = steady
        .iter()
        .find(|(_, count)| *count >= total * 0.95)
        .map_or(f64::INFINITY, |(le, _)| *le);
    println!(
        "steady state: {total} reconciles in 12 s, p95 <= {} ms (histogram bucket)",
        p95 * 1000.0
    );
    // Failover: 20 leaders made NotReady one after another, then 10 more whose Services ask
    // for a failover-min-delay of 1 s.
    let mut latencies = runtime.block_on(failovers(&cluster, sim.sim(), 0..20));
    runtime.block_on(delay_failovers(&cluster, 20..30, "1s"));
    std::thread::sleep(Duration::from_secs(2));
    let mut delayed = runtime.block_on(failovers(&cluster, sim.sim(), 20..30));
    let (summary, peak) = stop(child);
    println!("steady state (restart, --resync 5s, 20 s + failovers): peak RSS {peak}");
    println!("  {summary}");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (latencies, delay) in [(&mut latencies, "0"), (&mut delayed, "1s")] {
        latencies.sort();
        println!(
            "failover after NotReady ({} leaders, failover-min-delay {delay}): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            latencies.len(),
            ms(latencies[latencies.len() / 2]),
            ms(latencies[latencies.len() * 95 / 100]),
            ms(*latencies.last().unwrap())
        );
    }
}

/// Gives the Services numbered `services` a `zen-lead.io/failover-min-delay` of `delay`.
async fn delay_failovers(cluster: &Cluster, services: std::ops::Range<usize>, delay: &str) {
    for s in services {
        let api: Api<Service> =
            Api::namespaced(cluster.client(), &format!("lead-{}", s % NAMESPACES));
        let patch = json!({"metadata": {"annotations": {"zen-lead.io/failover-min-delay": delay}}});
        api.patch(
            &format!("svc-{s}"),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .unwrap();
    }
}

async fn populate(cluster: &Cluster, services: usize, per_service: usize) {
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..NAMESPACES {
        let object =
            serde_json::from_value(json!({"metadata": {"name": format!("lead-{n}")}})).unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let work = (0..services).flat_map(|s| {
        let namespace = format!("lead-{}", s % NAMESPACES);
        let name = format!("svc-{s}");
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"zen-lead.io/enabled": "true"}},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .unwrap();
        let pods: Vec<Pod> = (0..per_service)
            .map(|p| {
                serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-{p}"), "labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "pause", "ports": [{"name": "http", "containerPort": 8080}]}]},
                }))
                .unwrap()
            })
            .collect();
        let client = client.clone();
        std::iter::once({
            let (client, namespace) = (client.clone(), namespace.clone());
            futures::future::Either::Left(async move {
                let api: Api<Service> = Api::namespaced(client, &namespace);
                api.create(&PostParams::default(), &service).await.map(|_| ()).unwrap();
            })
        })
        .chain(pods.into_iter().map(move |pod| {
            let (client, namespace) = (client.clone(), namespace.clone());
            futures::future::Either::Right(async move {
                let api: Api<Pod> = Api::namespaced(client, &namespace);
                api.create(&PostParams::default(), &pod).await.map(|_| ()).unwrap();
            })
        }))
    });
    futures::stream::iter(work)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let pods: Api<Pod> = Api::all(client);
    let want = services * per_service;
    loop {
        let ready = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|pod| select::fitness(pod).is_ok())
            .count();
        if ready >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_routed(cluster: &Cluster, services: usize, limit: Duration) -> usize {
    let slices: Api<EndpointSlice> = Api::all(cluster.client());
    let deadline = Instant::now() + limit;
    loop {
        let routed = slices
            .list(&ListParams::default().labels("endpointslice.kubernetes.io/managed-by=zen-lead"))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|slice| slice.endpoints.as_ref().is_some_and(|e| e.len() == 1))
            .count();
        if routed >= services || Instant::now() > deadline {
            return routed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn failovers(
    cluster: &Cluster,
    sim: &kubezen::sim::Sim,
    services: std::ops::Range<usize>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for s in services {
        let namespace = format!("lead-{}", s % NAMESPACES);
        let name = format!("svc-{s}-leader");
        let slices: Api<EndpointSlice> = Api::namespaced(cluster.client(), &namespace);
        let target = |slice: &EndpointSlice| {
            slice
                .endpoints
                .as_ref()?
                .first()?
                .target_ref
                .as_ref()?
                .name
                .clone()
        };
        let leader = target(&slices.get(&name).await.unwrap()).unwrap();
        let started = Instant::now();
        sim.set_pod_ready(&namespace, &leader, false).unwrap();
        loop {
            let now = target(&slices.get(&name).await.unwrap());
            if now.is_some_and(|pod| pod != leader) {
                latencies.push(started.elapsed());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no failover for {name}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    latencies
}

/// The reconcile-duration histogram's cumulative counts by bucket, summed over every Service.
fn buckets(address: std::net::SocketAddr) -> Vec<(f64, f64)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let mut sums: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("zen_lead_reconciliation_duration_seconds_bucket"))
    {
        let Some(le) = line
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *sums.entry(le.to_owned()).or_default() += count;
    }
    let mut out: Vec<(f64, f64)> = sums
        .into_iter()
        .map(|(le, count)| {
            (
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                count,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// SIGINT, then the child's closing line and its peak memory.
fn stop(mut child: Child) -> (String, String) {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .map_or_else(
            || "unknown".to_owned(),
            |line| line["VmHWM:".len()..].trim().to_owned(),
        );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    child.wait().unwrap();
    let summary = stderr
        .lines()
        .find(|line| line.contains("zen-lead stopped"))
        .unwrap_or(&stderr)
        .to_owned();
    (summary, peak)
}
