//! `bench api`'s latencies against an independent measurement: zen-sim's own server-side
//! timing plus the loopback's share, measured with a raw socket sending the same request under
//! the same server-side delay. Alone in its binary, so that no other test shares the cores
//! while it measures.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kubezen::bench::{
    Stop,
    api::{self, ApiOptions, Verb},
};
use kubezen::cluster::{ClusterOptions, RetryPolicy};
use kubezen::sim::{Fault, FaultAction};
use serde_json::json;
use support::cluster_with;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the figures, for the record
async fn latencies_agree_with_the_servers_own_timing() {
    let test = cluster_with(ClusterOptions {
        qps: 0.0,
        retry: RetryPolicy::none(),
        ..ClusterOptions::default()
    })
    .await;
    let Some(sim) = test.sim_only("server-side timing") else {
        return test.cleanup().await;
    };
    let gets = ApiOptions {
        workers: 2,
        mix: vec![(Verb::Get, 1)],
        watch: false,
        resources: 40,
        ..ApiOptions::default()
    };
    // The raw socket's request: an object of the benchmark's size (the benchmark's own are
    // deleted with its namespace).
    let probe: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "data": {"payload": "x".repeat(gets.object_size), "seq": "0"},
    }))
    .unwrap();
    test.api::<ConfigMap>()
        .create(&PostParams::default(), &probe)
        .await
        .unwrap();
    let path = format!("/api/v1/namespaces/{}/configmaps/probe", test.namespace);
    let cancel = CancellationToken::new();
    // As zen-sim answers (microseconds: only printed, a client's own few tens of
    // microseconds dominate), and as a busy API server answers (50 ms), checked. The
    // figures of a release build at 1 and 3 ms are `cargo bench --bench bench -- api`'s;
    // this debug build adds a few hundred microseconds of its own.
    for (delay_ms, count, rounds) in [(0, 1000, 2000), (50, 200, 100)] {
        let gets = ApiOptions {
            stop: Stop::Count(count),
            ..gets.clone()
        };
        if delay_ms > 0 {
            sim.faults().inject(Fault::on(
                "configmaps",
                "get",
                FaultAction::Delay { millis: delay_ms },
            ));
        }
        sim.reset_timings();
        let report = api::run(&test.cluster, &gets, &(), &cancel).await.unwrap();
        let client = report.row(Verb::Get).unwrap().latency.p50_ms;
        let server = sim.timings()["get"].p50_ms;
        let loopback = tokio::task::block_in_place(|| sim.loopback_round_trip(&path, rounds))
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let independent = server + loopback;
        let gap = (client - independent) / independent * 100.0;
        eprintln!(
            "delay {delay_ms}ms: client p50 {client:.3}ms; server p50 {server:.3}ms + loopback {loopback:.3}ms = {independent:.3}ms; gap {gap:+.1}%"
        );
        if delay_ms > 0 {
            assert!(
                gap.abs() <= 5.0,
                "client {client}ms against server + loopback {independent}ms"
            );
        }
    }
    test.cleanup().await;
}
