//! The benchmark harness's own hot paths, and its faithfulness.
//!
//! - `bench/recorder`: recording a latency into an HDR histogram (every operation does), and
//!   summarising and merging (every report does).
//! - `bench/api/get`: one measured GET through `bench api`'s client path against zen-sim on
//!   loopback (the cost the client adds to every figure).
//! - `cargo bench --bench bench -- faithfulness` first prints, for server-side delays of 0, 1
//!   and 3 ms, `bench api`'s get p50 beside zen-sim's own timing plus the loopback's share (a
//!   raw socket sending the same request under the same delay, `Sim::loopback_round_trip`),
//!   and the gap between them.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kubezen::bench::{
    Recorder, Stop,
    api::{self, ApiOptions, Verb},
};
use kubezen::cluster::{Cluster, ClusterOptions, RetryPolicy};
use kubezen::sim::{Fault, FaultAction, Sim, SimOptions};
use tokio_util::sync::CancellationToken;

fn recorder(c: &mut Criterion) {
    let mut group = c.benchmark_group("bench/recorder");
    let mut recorder = Recorder::new();
    let mut value = 1_u64;
    group.bench_function("record", |b| {
        b.iter(|| {
            value = value
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            recorder.record_us(black_box(value % 100_000));
        });
    });
    let full = recorder.clone();
    group.bench_function("summary", |b| b.iter(|| black_box(full.summary())));
    group.bench_function("merge", |b| {
        b.iter(|| {
            let mut total = Recorder::new();
            total.merge(&full);
            black_box(total.count())
        });
    });
    group.finish();
}

/// The object the raw socket reads.
const PROBE: &str = "/api/v1/namespaces/probe/configmaps/probe";

#[allow(clippy::print_stdout)] // a benchmark prints its figures
fn api_get(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sim, cluster) =
        runtime.block_on(async {
            let sim = Sim::start(SimOptions::default()).await.unwrap();
            let options = ClusterOptions {
                qps: 0.0,
                retry: RetryPolicy::none(),
                ..ClusterOptions::default()
            };
            let cluster = Cluster::from_config(sim.kube_config().await.unwrap(), &options).unwrap();
            // The raw socket's request: an object of the benchmark's size in a namespace of its
            // own (the benchmark's objects go with its namespace).
            let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(cluster.client());
            let probes: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(cluster.client(), "probe");
            let params = kube::api::PostParams::default();
            namespaces
                .create(
                    &params,
                    &serde_json::from_value(serde_json::json!({"metadata": {"name": "probe"}}))
                        .unwrap(),
                )
                .await
                .unwrap();
            probes
            .create(&params, &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "probe"},
                "data": {"payload": "x".repeat(ApiOptions::default().object_size), "seq": "0"},
            })).unwrap())
            .await
            .unwrap();
            (sim, cluster)
        });
    let gets = ApiOptions {
        workers: 2,
        resources: 40,
        mix: vec![(Verb::Get, 1)],
        watch: false,
        stop: Stop::Count(2000),
        ..ApiOptions::default()
    };
    let cancel = CancellationToken::new();
    for delay in [0, 1, 3] {
        sim.faults().clear();
        if delay > 0 {
            sim.faults().inject(Fault::on(
                "configmaps",
                "get",
                FaultAction::Delay { millis: delay },
            ));
        }
        sim.reset_timings();
        let report = runtime
            .block_on(api::run(&cluster, &gets, &(), &cancel))
            .unwrap();
        let client = report.row(Verb::Get).unwrap().latency.p50_ms;
        let server = sim.timings()["get"].p50_ms;
        // From this thread, not the runtime's: the round trip blocks.
        let loopback = sim
            .loopback_round_trip(PROBE, if delay > 0 { 300 } else { 2000 })
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let independent = server + loopback;
        println!(
            "faithfulness, delay {delay} ms: bench api get p50 {client:.3} ms; zen-sim {server:.3} ms + loopback {loopback:.3} ms = {independent:.3} ms; gap {:+.1}% ({:+.0} µs); {:.0} ops/s",
            (client - independent) / independent * 100.0,
            (client - independent) * 1000.0,
            report.per_second,
        );
    }
    sim.faults().clear();
    let one = ApiOptions {
        workers: 1,
        stop: Stop::Count(200),
        ..gets
    };
    let mut group = c.benchmark_group("bench/api");
    group.sample_size(10);
    group.bench_function("get/200", |b| {
        b.iter(|| {
            runtime
                .block_on(api::run(&cluster, &one, &(), &cancel))
                .unwrap()
        });
    });
    group.finish();
    drop(sim);
}

criterion_group!(benches, recorder, api_get);
criterion_main!(benches);
