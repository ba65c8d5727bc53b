//! The cluster layer's hot paths: the rate limiter's reservation, the retry decision, a cache
//! hit, and one GET through the governed kube client to zen-sim on loopback.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kubezen::cluster::{
    CacheOptions, Cluster, ClusterOptions, ObjectCache, Outcome, RateLimiter, RetryPolicy,
};
use kubezen::sim::{Sim, SimOptions};

fn limiter(c: &mut Criterion) {
    let unlimited = RateLimiter::new(0.0, 1);
    let now = Instant::now();
    c.bench_function("cluster/limiter_reserve_unlimited", |b| {
        b.iter(|| black_box(unlimited.reserve(black_box(now))));
    });
    let limited = RateLimiter::new(1e12, 1_000_000);
    c.bench_function("cluster/limiter_reserve", |b| {
        b.iter(|| black_box(limited.reserve(Instant::now())));
    });
    let policy = RetryPolicy::default();
    let throttled = Outcome::of_response(StatusCode::TOO_MANY_REQUESTS, None);
    c.bench_function("cluster/retry_decision", |b| {
        b.iter(|| {
            black_box(policy.next(
                black_box(1),
                &throttled,
                kubezen::cluster::idempotent_request(&Method::GET, None),
                0.5,
            ))
        });
    });
}

fn cache_and_requests(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sim, cluster) = runtime.block_on(async {
        let sim = Sim::start(SimOptions {
            nodes: 1,
            ..SimOptions::default()
        })
        .await
        .unwrap();
        let config = sim.kube_config().await.unwrap();
        let options = ClusterOptions {
            qps: 0.0,
            ..ClusterOptions::default()
        };
        let cluster = Cluster::from_config(config, &options).unwrap();
        let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
        let object = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "hot"}, "data": {"k": "v"}}),
        )
        .unwrap();
        maps.create(&PostParams::default(), &object).await.unwrap();
        (sim, cluster)
    });
    let cache = {
        let _guard = runtime.enter();
        ObjectCache::<ConfigMap>::new(cluster.client(), &CacheOptions::default())
    };
    runtime.block_on(cache.get("default", "hot")).unwrap();
    c.bench_function("cluster/cache_hit", |b| {
        b.iter(|| black_box(cache.peek(black_box("default"), black_box("hot"))));
    });
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let mut group = c.benchmark_group("cluster");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("get_through_kube_to_zen_sim", |b| {
        b.iter(|| runtime.block_on(maps.get("hot")).unwrap());
    });
    group.finish();
    drop(sim);
}

criterion_group!(benches, limiter, cache_and_requests);
criterion_main!(benches);
