//! Forward's hot paths: the local-port allocation of 1,000 entries (target < 1 ms), a cached
//! availability check (target < 100 ns), merging a 1,000-entry file, and against zen-sim on
//! loopback: 100 forwards from start to Running (target < 2 s) and one connection's round trip
//! through a forward.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kubezen::cluster::{Cluster, ClusterOptions};
use kubezen::forward::{
    self, AssumeFree, CachedPorts, Claimed, Config, Layer, PortCheck, SuperviseOptions, Supervisor,
    SystemPorts,
};
use kubezen::sim::{BACKENDS_ANNOTATION, Sim, SimOptions, echo_backend};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// 1,000 entries: every third asks for a port, every ninth for one already asked for.
fn thousand() -> String {
    let mut text = String::from("portForwards:\n");
    for i in 0..1000u32 {
        let local = match i % 9 {
            0 => format!(", localPort: {}", 20000 + i / 9),
            3 | 6 => format!(", localPort: {}", 21000 + i),
            _ => String::new(),
        };
        writeln!(
            text,
            "  svc-{i:04}: {{target: svc/app-{i}, namespace: team-{}, targetPort: http{local}}}",
            i % 10
        )
        .unwrap();
    }
    text
}

fn config(text: &str) -> Config {
    forward::merge(&[Layer::defaults(), Layer::text("bench.yaml", text)]).unwrap()
}

fn allocation(c: &mut Criterion) {
    let text = thousand();
    let config = config(&text);
    c.bench_function("forward/merge_1000_entries", |b| {
        b.iter(|| {
            black_box(forward::merge(&[
                Layer::defaults(),
                Layer::text("bench.yaml", black_box(&text)),
            ]))
        });
    });
    c.bench_function("forward/allocate_1000_entries", |b| {
        b.iter(|| {
            black_box(forward::allocate_with(
                black_box(&config),
                &mut AssumeFree,
                &mut Claimed::default(),
            ))
        });
    });
    // As `kubectl zen forward` allocates: this machine's ports, checked through the cache
    // (warmed by a first allocation; within the TTL a check is a table lookup).
    let mut cached = CachedPorts::new(SystemPorts, Duration::from_secs(3600));
    forward::allocate_with(&config, &mut cached, &mut Claimed::default());
    c.bench_function("forward/allocate_1000_entries_cached_checks", |b| {
        b.iter(|| {
            black_box(forward::allocate_with(
                black_box(&config),
                &mut cached,
                &mut Claimed::default(),
            ))
        });
    });
    c.bench_function("forward/cached_availability_check", |b| {
        b.iter(|| black_box(cached.is_free(black_box(50_123))));
    });
    c.bench_function("forward/uncached_availability_check", |b| {
        b.iter(|| black_box(SystemPorts.is_free(black_box(50_123))));
    });
}

fn against_zen_sim(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sim, cluster, config) = runtime.block_on(async {
        let sim = Sim::start(SimOptions::default()).await.unwrap();
        let cluster =
            Cluster::from_config(sim.kube_config().await.unwrap(), &ClusterOptions::default())
                .unwrap();
        let backend = echo_backend().await.unwrap();
        let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
        let mut entries = String::from("portForwards:\n");
        for i in 0..100 {
            let pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("web-{i}"), "annotations": {BACKENDS_ANNOTATION: format!("8080={backend}")}},
                "spec": {"containers": [{"name": "app", "image": "pause"}]}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
            writeln!(entries, "  e{i:03}: {{target: pod/web-{i}, namespace: default, targetPort: 8080}}").unwrap();
        }
        while pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running"))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (sim, cluster, config(&entries))
    });
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    group.bench_function("100_forwards_start_to_running", |b| {
        b.iter_custom(|rounds| {
            runtime.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..rounds {
                    let started = Instant::now();
                    let supervisor =
                        Supervisor::start(&cluster, &config, &SuperviseOptions::default()).unwrap();
                    assert!(supervisor.wait_running(Duration::from_secs(30)).await);
                    spent += started.elapsed();
                    supervisor.shutdown().await;
                }
                spent
            })
        });
    });
    group.finish();
    let (supervisor, port) = runtime.block_on(async {
        let supervisor =
            Supervisor::start(&cluster, &config, &SuperviseOptions::default()).unwrap();
        assert!(supervisor.wait_running(Duration::from_secs(30)).await);
        let port = supervisor.statuses()[0].local_port.unwrap();
        (supervisor, port)
    });
    let payload = vec![42u8; 1024];
    c.bench_function("forward/connect_and_echo_1k_through_a_forward", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                socket.write_all(&payload).await.unwrap();
                let mut back = vec![0u8; payload.len()];
                socket.read_exact(&mut back).await.unwrap();
                black_box(back);
            });
        });
    });
    runtime.block_on(supervisor.shutdown());
    drop(sim);
}

criterion_group!(benches, allocation, against_zen_sim);
criterion_main!(benches);
