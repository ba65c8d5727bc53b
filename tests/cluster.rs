//! The cluster layer against a live API server: retries (429 with Retry-After, 5xx, timeouts,
//! conflicts), the client-side rate limiter, the watch-backed cache, and connection errors.
//! Fault injection needs zen-sim; those tests say so and skip on a real cluster.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use kubezen::cluster::{
    CacheOptions, Cluster, ClusterError, ClusterOptions, ObjectCache, RetryPolicy, is_conflict,
};
use kubezen::sim::{Fault, FaultAction, Sim, SimOptions};
use serde_json::json;
use support::{cluster, cluster_with, eventually, object};

const WAIT: Duration = Duration::from_secs(30);

fn config_map(name: &str) -> ConfigMap {
    object(json!({"metadata": {"name": name}, "data": {"count": "0"}}))
}

fn status(code: u16, retry_after_seconds: Option<u64>) -> FaultAction {
    FaultAction::Status {
        code,
        retry_after_seconds,
    }
}

#[tokio::test]
async fn a_429_is_retried_after_the_servers_retry_after() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("injecting 429") else {
        return test.cleanup().await;
    };
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("throttled"))
        .await
        .unwrap();
    sim.faults()
        .inject(Fault::on("configmaps", "get", status(429, Some(1))).times(1));
    let before = test.cluster.stats();
    let start = Instant::now();
    maps.get("throttled").await.expect("the retry succeeds");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({:?})",
        start.elapsed()
    );
    let after = test.cluster.stats();
    assert_eq!(after.throttled_by_server - before.throttled_by_server, 1);
    assert_eq!(after.retries - before.retries, 1);
    assert_eq!(
        after.succeeded_after_retry - before.succeeded_after_retry,
        1
    );
    // A throttled create is safe to repeat: the server did nothing.
    sim.faults()
        .inject(Fault::on("configmaps", "create", status(429, Some(0))).times(1));
    maps.create(&PostParams::default(), &config_map("created-after-429"))
        .await
        .expect("retried create");
    test.cleanup().await;
}

#[tokio::test]
async fn server_errors_are_retried_three_times_in_all_then_reported() {
    let test = cluster_with(ClusterOptions {
        retry: RetryPolicy {
            initial: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..ClusterOptions::default()
    })
    .await;
    let Some(sim) = test.sim_only("injecting 503") else {
        return test.cleanup().await;
    };
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("flaky"))
        .await
        .unwrap();
    sim.faults()
        .inject(Fault::on("configmaps", "get", status(503, None)).times(2));
    maps.get("flaky").await.expect("the third attempt succeeds");
    sim.faults()
        .inject(Fault::on("configmaps", "get", status(503, None)));
    let before = test.cluster.stats();
    let error = maps.get("flaky").await.unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 503),
        "{error:?}"
    );
    let after = test.cluster.stats();
    assert_eq!(after.retries - before.retries, 2, "3 attempts in all");
    assert_eq!(after.gave_up - before.gave_up, 1);
    sim.faults().clear();
    test.cleanup().await;
}

#[tokio::test]
async fn a_create_that_may_have_happened_is_not_repeated() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("injecting 500") else {
        return test.cleanup().await;
    };
    let maps: Api<ConfigMap> = test.api();
    sim.faults()
        .inject(Fault::on("configmaps", "create", status(500, None)).times(1));
    let before = test.cluster.stats();
    let error = maps
        .create(&PostParams::default(), &config_map("once"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 500),
        "{error:?}"
    );
    assert_eq!(
        test.cluster.stats().retries,
        before.retries,
        "POST after a 500 is not retried"
    );
    test.cleanup().await;
}

#[tokio::test]
async fn a_request_without_a_response_in_time_times_out_and_is_retried() {
    let options = ClusterOptions {
        request_timeout: Some(Duration::from_millis(300)),
        ..ClusterOptions::default()
    };
    let test = cluster_with(options).await;
    let Some(sim) = test.sim_only("injecting latency") else {
        return test.cleanup().await;
    };
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("slow"))
        .await
        .unwrap();
    sim.faults()
        .inject(Fault::on("configmaps", "get", FaultAction::Delay { millis: 2000 }).times(1));
    let start = Instant::now();
    maps.get("slow").await.expect("the second attempt is fast");
    assert!(
        start.elapsed() < Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(test.cluster.stats().timeouts, 1);
    test.cleanup().await;
}

#[tokio::test]
async fn the_rate_limiter_holds_requests_to_qps_after_the_burst() {
    let test = cluster_with(ClusterOptions {
        qps: 20.0,
        burst: 2,
        ..ClusterOptions::default()
    })
    .await;
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("paced"))
        .await
        .unwrap();
    let before = test.cluster.stats();
    let start = Instant::now();
    for _ in 0..12 {
        maps.get("paced").await.unwrap();
    }
    let elapsed = start.elapsed();
    // 12 requests at 20/s with at most 2 saved up: at least 10 waits of 50 ms.
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(test.cluster.stats().rate_limited - before.rate_limited >= 9);
    test.cleanup().await;
}

#[tokio::test]
async fn conflicts_are_retried_by_rereading() {
    let test = cluster().await;
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("counter"))
        .await
        .unwrap();
    let interfered = std::sync::atomic::AtomicBool::new(false);
    let result = test
        .cluster
        .retry_on_conflict(|| async {
            let mut current = maps.get("counter").await?;
            if !interfered.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Someone else writes between our read and our write.
                maps.patch(
                    "counter",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"other": "x"}})),
                )
                .await?;
            }
            let count: u32 = current
                .data
                .as_ref()
                .and_then(|data| data["count"].parse().ok())
                .unwrap_or(0);
            current
                .data
                .get_or_insert_default()
                .insert("count".into(), (count + 1).to_string());
            maps.replace("counter", &PostParams::default(), &current)
                .await
        })
        .await
        .unwrap();
    assert_eq!(result.data.as_ref().unwrap()["count"], "1");
    assert_eq!(
        result.data.as_ref().unwrap()["other"],
        "x",
        "the other write survived"
    );
    assert_eq!(test.cluster.stats().conflict_retries, 1);

    // A conflict with no re-read gives up after the policy's attempts.
    let stale = maps.get("counter").await.unwrap();
    maps.patch(
        "counter",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    let error = test
        .cluster
        .retry_on_conflict(|| async {
            maps.replace("counter", &PostParams::default(), &stale)
                .await
        })
        .await
        .unwrap_err();
    assert!(is_conflict(&error));
    test.cleanup().await;
}

#[tokio::test]
async fn the_cache_reads_through_counts_and_follows_the_watch() {
    let test = cluster().await;
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("cached"))
        .await
        .unwrap();
    let cache = Arc::new(ObjectCache::<ConfigMap>::new(
        test.client.clone(),
        &CacheOptions::default(),
    ));
    assert!(
        cache
            .get(&test.namespace, "cached")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cache
            .get(&test.namespace, "cached")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cache
            .get(&test.namespace, "missing")
            .await
            .unwrap()
            .is_none()
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.size), (1, 2, 1));

    let namespace = test.namespace.clone();
    let follower = Arc::clone(&cache);
    let watch = tokio::spawn(async move { follower.watch(Some(&namespace), false).await });
    // Give the watch time to start, then change the object behind the cache's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    maps.patch(
        "cached",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"count": "5"}})),
    )
    .await
    .unwrap();
    eventually(WAIT, "the cache to see the change", || async {
        let object = cache.peek(&test.namespace, "cached")?;
        (object.data.as_ref()?.get("count")? == "5").then_some(())
    })
    .await;
    maps.delete("cached", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the cache to drop the deleted object", || async {
        cache
            .peek(&test.namespace, "cached")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(cache.stats().invalidations >= 2);
    watch.abort();
    test.cleanup().await;
}

#[tokio::test]
async fn the_cache_evicts_least_recently_used_and_expires_by_ttl() {
    let test = cluster().await;
    let maps: Api<ConfigMap> = test.api();
    for index in 0..5 {
        maps.create(&PostParams::default(), &config_map(&format!("lru-{index}")))
            .await
            .unwrap();
    }
    let options = CacheOptions {
        per_namespace_capacity: 2,
        default_ttl: Duration::from_millis(400),
        ttl_by_kind: std::collections::BTreeMap::default(),
    };
    let cache = ObjectCache::<ConfigMap>::new(test.client.clone(), &options);
    for index in 0..5 {
        cache
            .get(&test.namespace, &format!("lru-{index}"))
            .await
            .unwrap();
    }
    let stats = cache.stats();
    assert!(stats.size <= 2, "{stats:?}");
    assert!(stats.evictions >= 3, "{stats:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        cache.peek(&test.namespace, "lru-4").is_none(),
        "expired after its TTL"
    );
    // Renewed (as a live watch confirms what it holds), an object outlives its first TTL.
    cache.get(&test.namespace, "lru-0").await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.renew_all(), 1);
    }
    assert!(
        cache.peek(&test.namespace, "lru-0").is_some(),
        "750 ms old, renewed"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(cache.peek(&test.namespace, "lru-0").is_none());
    assert_eq!(cache.renew_all(), 0);
    test.cleanup().await;
}

#[tokio::test]
async fn the_cache_watch_survives_dropped_connections() {
    let test = cluster().await;
    let Some(sim) = test.sim_only("dropping watches") else {
        return test.cleanup().await;
    };
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("dropped"))
        .await
        .unwrap();
    sim.faults().inject(
        Fault::on(
            "configmaps",
            "watch",
            FaultAction::DropWatch { after_events: 0 },
        )
        .times(2),
    );
    let cache = Arc::new(ObjectCache::<ConfigMap>::new(
        test.client.clone(),
        &CacheOptions::default(),
    ));
    let namespace = test.namespace.clone();
    let follower = Arc::clone(&cache);
    let watch = tokio::spawn(async move { follower.watch(Some(&namespace), true).await });
    eventually(WAIT, "the warm-up list to fill the cache", || async {
        cache.peek(&test.namespace, "dropped")
    })
    .await;
    maps.patch(
        "dropped",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"count": "9"}})),
    )
    .await
    .unwrap();
    eventually(WAIT, "the change after reconnecting", || async {
        (cache
            .peek(&test.namespace, "dropped")?
            .data
            .as_ref()?
            .get("count")?
            == "9")
            .then_some(())
    })
    .await;
    watch.abort();
    test.cleanup().await;
}

#[tokio::test]
async fn kubeconfig_problems_are_explained() {
    let missing = ClusterOptions {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..ClusterOptions::default()
    };
    let error = Cluster::connect(&missing).await.unwrap_err();
    assert!(matches!(error, ClusterError::Kubeconfig { .. }));
    assert!(
        error.to_string().contains("/nonexistent/kubeconfig"),
        "{error}"
    );

    let sim = Sim::start(SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).unwrap();
    let wrong_context = ClusterOptions {
        kubeconfig: Some(path.clone()),
        context: Some("nope".into()),
        ..ClusterOptions::default()
    };
    let error = Cluster::connect(&wrong_context).await.unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
    let right = ClusterOptions {
        kubeconfig: Some(path),
        namespace: Some("kube-system".into()),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::connect(&right).await.unwrap();
    assert_eq!(cluster.namespace(), "kube-system");
    assert_eq!(cluster.server().trim_end_matches('/'), sim.url());
}

#[tokio::test]
async fn tls_and_bearer_tokens_work_and_a_wrong_token_is_refused() {
    let sim = Sim::start(SimOptions {
        tls: true,
        token: Some("s3cret".into()),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    assert!(sim.url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let cluster = Cluster::connect(&ClusterOptions {
        kubeconfig: Some(path.clone()),
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    maps.create(&PostParams::default(), &config_map("over-tls"))
        .await
        .unwrap();
    assert_eq!(maps.get("over-tls").await.unwrap().name_any(), "over-tls");

    let wrong = std::fs::read_to_string(&path)
        .unwrap()
        .replace("s3cret", "wrong");
    std::fs::write(&path, wrong).unwrap();
    let cluster = Cluster::connect(&ClusterOptions {
        kubeconfig: Some(path),
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let error = maps.get("over-tls").await.unwrap_err();
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 401),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_relist_drops_cached_objects_deleted_while_unwatched() {
    let test = cluster().await;
    let maps: Api<ConfigMap> = test.api();
    maps.create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();
    let cache = Arc::new(ObjectCache::<ConfigMap>::new(
        test.client.clone(),
        &CacheOptions::default(),
    ));
    cache.get(&test.namespace, "kept").await.unwrap();
    // An object the cache holds but the server no longer has (deleted while nobody watched).
    let mut ghost = config_map("ghost");
    ghost.metadata.namespace = Some(test.namespace.clone());
    cache.insert(ghost);
    assert!(cache.peek(&test.namespace, "ghost").is_some());
    let namespace = test.namespace.clone();
    let follower = Arc::clone(&cache);
    let watch = tokio::spawn(async move { follower.watch(Some(&namespace), false).await });
    eventually(WAIT, "the list to drop the ghost", || async {
        cache.peek(&test.namespace, "ghost").is_none().then_some(())
    })
    .await;
    assert!(
        cache.peek(&test.namespace, "kept").is_some(),
        "listed objects stay"
    );
    watch.abort();
    test.cleanup().await;
}
