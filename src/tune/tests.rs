#![allow(clippy::float_cmp)] // recommendations are exact by design: rounded to whole units

use serde_json::{Value as Json, json};

use super::*;
use crate::quantity::MIB;
use crate::table::Tabular as _;

fn deployment(name: &str, replicas: u32, resources: &Json) -> Json {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "x", "resources": resources,
                                                       "readinessProbe": {"httpGet": {"port": 80}},
                                                       "livenessProbe": {"httpGet": {"port": 80}}}]}}}
    })
}

fn web() -> WorkloadRef {
    WorkloadRef {
        namespace: "shop".into(),
        kind: WorkloadKind::Deployment,
        name: "web".into(),
    }
}

/// Three pods: pod i uses cpu (i+1) * 10..=(i+1) * 10 + 99 millicores evenly, memory up to
/// 200 MiB (pod 2 peaks at 300 MiB once).
fn usage_of_three_pods(samples_per_pod: i64) -> Usage {
    let mut usage = Usage::new();
    for pod in 0..3_i64 {
        let id = usage.series(SeriesKey {
            workload: web(),
            container: "app".into(),
            pod: format!("web-abc-{pod}"),
        });
        for i in 0..samples_per_pod {
            #[allow(clippy::cast_precision_loss)]
            let cpu = ((pod + 1) * 10 + i % 100) as f64;
            usage.record_cpu(id, 1_700_000_000 + i * 300, cpu);
            let memory = if pod == 2 && i == 7 {
                300.0 * MIB
            } else {
                200.0 * MIB
            };
            usage.record_memory(id, 1_700_000_000 + i * 300, memory);
        }
    }
    usage
}

fn resources(cpu: &str, memory: &str) -> Json {
    json!({"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}})
}

#[test]
fn recommendations_follow_krr_simple_strategy() {
    let inventory =
        Inventory::from_objects([deployment("web", 3, &resources("500m", "1Gi"))], "default");
    let usage = usage_of_three_pods(4032);
    let report = analyse(&inventory, Some(&usage), &Options::default(), "test");
    let rec = &report.recommendations[0];
    // Pod 2 runs 30..=129: its p95 (nearest rank) is 124, the highest of the three pods.
    let cpu = rec.recommended.cpu_request.unwrap();
    assert!((cpu - 124.0).abs() <= 2.0, "{cpu}");
    assert_eq!(rec.recommended.cpu_limit, None);
    assert_eq!(rec.recommended.memory_request, Some(345.0 * MIB));
    assert_eq!(rec.recommended.memory_limit, Some(345.0 * MIB));
    assert_eq!(rec.confidence, Some(Confidence::High));
    assert_eq!(rec.usage.unwrap().pods, 3);
    assert!(rec.impact < 0.0);
    assert_eq!(report.totals.cpu_before, 1500.0);
    assert!((report.totals.cpu_after - cpu * 3.0).abs() < 1e-9);
    assert!(
        report.summary().contains("1 of 1 containers changed"),
        "{}",
        report.summary()
    );
}

#[test]
fn minimums_rounding_and_cpu_limit_ratio() {
    let inventory =
        Inventory::from_objects([deployment("web", 1, &resources("1", "1Gi"))], "default");
    let mut usage = Usage::new();
    let id = usage.series(SeriesKey {
        workload: web(),
        container: "app".into(),
        pod: "web-abc-1".into(),
    });
    for i in 0..200 {
        usage.record_cpu(id, i * 60, 2.2);
        usage.record_memory(id, i * 60, 10.0 * MIB);
    }
    let options = Options {
        cpu_limit: "ratio=3".parse().unwrap(),
        ..Options::default()
    };
    let rec = &analyse(&inventory, Some(&usage), &options, "test").recommendations[0];
    assert_eq!(rec.recommended.cpu_request, Some(10.0));
    assert_eq!(rec.recommended.cpu_limit, Some(30.0));
    assert_eq!(rec.recommended.memory_request, Some(100.0 * MIB));
    assert_eq!(rec.confidence, Some(Confidence::Low));
    assert!(
        rec.notes.iter().any(|n| n.contains("3h of history")),
        "{:?}",
        rec.notes
    );
}

#[test]
fn too_few_samples_give_no_number_and_say_why_or_take_the_preset() {
    let inventory =
        Inventory::from_objects([deployment("web", 3, &resources("500m", "1Gi"))], "default");
    let usage = usage_of_three_pods(20);
    let report = analyse(&inventory, Some(&usage), &Options::default(), "test");
    let rec = &report.recommendations[0];
    assert_eq!(rec.recommended.cpu_request, None);
    assert!(
        rec.cpu_reason
            .as_deref()
            .unwrap()
            .contains("only 60 samples (needs 100"),
        "{:?}",
        rec.cpu_reason
    );
    assert!(!rec.changes);
    assert_eq!(report.totals.without_number, 1);
    let preset = Options {
        profile: Some(Profile::WebApi),
        ..Options::default()
    };
    let rec = &analyse(&inventory, Some(&usage), &preset, "test").recommendations[0];
    assert_eq!(rec.basis, "preset:web-api");
    assert_eq!(rec.recommended.cpu_request, Some(100.0));
    assert_eq!(rec.recommended.cpu_limit, None);
    assert_eq!(rec.recommended.memory_limit, Some(512.0 * MIB));
    assert_eq!(rec.confidence, Some(Confidence::Preset));
    let enough = Options {
        min_samples: 20,
        ..Options::default()
    };
    assert!(
        analyse(&inventory, Some(&usage), &enough, "test").recommendations[0]
            .recommended
            .cpu_request
            .is_some()
    );
}

#[test]
fn oom_kills_raise_memory_to_the_killed_limit() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-abc-0", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "abc"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": true, "apiVersion": "apps/v1", "uid": "u"}]},
        "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "512Mi"}}}]},
        "status": {"containerStatuses": [{"name": "app", "restartCount": 3, "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
    });
    let inventory = Inventory::from_objects(
        [deployment("web", 3, &resources("500m", "512Mi")), pod],
        "default",
    );
    assert_eq!(
        inventory
            .workload_of_pod("shop", "web-abc-0")
            .map(|w| w.id.name.as_str()),
        Some("web")
    );
    let report = analyse(
        &inventory,
        Some(&usage_of_three_pods(200)),
        &Options::default(),
        "test",
    );
    let rec = &report.recommendations[0];
    assert_eq!(rec.recommended.memory_request, Some(640.0 * MIB));
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("OOMKilled at a 512Mi limit")),
        "{:?}",
        rec.notes
    );
    assert!(report.findings.iter().any(|f| f.check == "oom-killed"));
}

#[test]
fn heaps_are_never_cut_off_and_are_linted() {
    let mut object = deployment("web", 1, &resources("500m", "256Mi"));
    object["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"}]);
    let inventory = Inventory::from_objects([object], "default");
    let report = analyse(
        &inventory,
        Some(&usage_of_three_pods(100)),
        &Options::default(),
        "test",
    );
    let rec = &report.recommendations[0];
    assert_eq!(rec.recommended.memory_request, Some(1178.0 * MIB));
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("configured heap (-Xmx1g)")),
        "{:?}",
        rec.notes
    );
    let finding = report
        .findings
        .iter()
        .find(|f| f.check == "heap-above-limit")
        .unwrap();
    assert_eq!(finding.severity, Severity::Error);
    assert!(
        finding.message.contains("JVM heap 1Gi"),
        "{}",
        finding.message
    );
}

#[test]
fn hpas_get_replica_advice_instead_of_a_number() {
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 2, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    });
    let inventory = Inventory::from_objects(
        [deployment("web", 3, &resources("100m", "1Gi")), hpa],
        "default",
    );
    let report = analyse(
        &inventory,
        Some(&usage_of_three_pods(4032)),
        &Options::default(),
        "test",
    );
    let rec = &report.recommendations[0];
    assert_eq!(rec.recommended.cpu_request, None);
    assert!(
        rec.cpu_reason
            .as_deref()
            .unwrap()
            .contains("HPA web scales on cpu at 50 %")
    );
    assert!(
        rec.recommended.memory_request.is_some(),
        "memory is still advised"
    );
    let advice = rec.hpa.as_ref().unwrap();
    // Mean usage ~74.5m a pod x 3 replicas over 50m a pod = 5 replicas; p95 124m -> 8.
    assert_eq!((advice.replicas_for_mean, advice.replicas_for_peak), (5, 8));
    assert!(
        advice.message.contains("raise maxReplicas to at least 8"),
        "{}",
        advice.message
    );
}

#[test]
fn every_lint_check_fires_where_it_should() {
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bare", "namespace": "shop"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "bare"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}});
    let mut skewed = deployment(
        "skewed",
        3,
        &json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
    );
    skewed["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(["-XX:MaxRAMPercentage=95"]);
    let half = deployment("half", 2, &json!({"requests": {"cpu": "100m"}}));
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bare", "namespace": "shop"}, "spec": {"selector": {"app": "bare"}}});
    let blocking = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "all", "namespace": "shop"},
        "spec": {"minAvailable": "100%", "selector": {"matchLabels": {"app": "skewed"}}}});
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "half", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "half"}, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
    let inventory =
        Inventory::from_objects([bare, skewed, half, service, blocking, hpa], "default");
    let report = analyse(&inventory, None, &Options::default(), "manifests");
    let found = |workload: &str, check: &str| {
        report
            .findings
            .iter()
            .any(|f| f.workload.name == workload && f.check == check)
    };
    for (workload, check) in [
        ("bare", "best-effort"),
        ("bare", "missing-readiness-probe"),
        ("bare", "missing-liveness-probe"),
        ("bare", "single-replica-behind-service"),
        ("skewed", "memory-limit-below-request"),
        ("skewed", "limit-request-ratio"),
        ("skewed", "pdb-blocks-eviction"),
        ("skewed", "heap-share"),
        ("half", "missing-requests"),
        ("half", "missing-memory-limit"),
        ("half", "no-pdb"),
        ("half", "hpa-without-request"),
    ] {
        assert!(
            found(workload, check),
            "{workload}: {check} not found in {:#?}",
            report.findings
        );
    }
    assert!(!found("skewed", "no-pdb"));
    assert!(!found("skewed", "missing-readiness-probe"));
    assert_eq!(report.worst(), Some(Severity::Error));
    assert_eq!(
        report.findings[0].severity,
        Severity::Error,
        "most severe first"
    );
    for (check, _) in CHECKS {
        let documented = include_str!("../../docs/tune.md");
        assert!(
            documented.contains(&format!("`{check}`")),
            "{check} is not in docs/tune.md"
        );
    }
}

#[test]
fn budgets_block_evictions_as_the_eviction_api_counts() {
    let budget = |min: Option<&str>, max: Option<&str>| Budget {
        name: "b".into(),
        min_available: min.map(Into::into),
        max_unavailable: max.map(Into::into),
    };
    assert!(budget(None, Some("0")).blocks_every_eviction(3));
    assert!(budget(None, Some("0%")).blocks_every_eviction(3));
    assert!(
        !budget(None, Some("10%")).blocks_every_eviction(3),
        "rounded up: 1 of 3"
    );
    assert!(!budget(None, Some("1")).blocks_every_eviction(3));
    assert!(budget(Some("3"), None).blocks_every_eviction(3));
    assert!(budget(Some("100%"), None).blocks_every_eviction(3));
    assert!(!budget(Some("2"), None).blocks_every_eviction(3));
    assert!(!budget(Some("50%"), None).blocks_every_eviction(3));
}

#[test]
fn patches_carry_only_the_advised_fields() {
    let mut cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "x"}]}}}}}});
    cron["metadata"]["annotations"] = json!({"tune.kubezen.io/profile": "background-job"});
    let inventory = Inventory::from_objects(
        [deployment("web", 3, &resources("500m", "1Gi")), cron],
        "default",
    );
    let report = analyse(
        &inventory,
        Some(&usage_of_three_pods(200)),
        &Options::default(),
        "test",
    );
    let patches = report.patches();
    assert_eq!(patches.len(), 2);
    let cron = patches
        .iter()
        .find(|p| p.workload.kind == WorkloadKind::CronJob)
        .unwrap();
    assert_eq!(cron.file, "shop.cronjob.nightly.yaml");
    assert_eq!(
        cron.object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0],
        json!({"name": "job", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}})
    );
    let web = patches
        .iter()
        .find(|p| p.workload.kind == WorkloadKind::Deployment)
        .unwrap();
    assert_eq!(
        web.object["metadata"],
        json!({"name": "web", "namespace": "shop"})
    );
    assert!(web.object["spec"].get("replicas").is_none());
    let dir = tempfile::tempdir().unwrap();
    let written = report.write_patches(dir.path()).unwrap();
    assert_eq!(written.len(), 3);
    let kustomization = std::fs::read_to_string(dir.path().join("kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("path: patches/shop.cronjob.nightly.yaml"),
        "{kustomization}"
    );
    assert!(
        dir.path()
            .join("patches/shop.deployment.web.yaml")
            .is_file()
    );
    let mut csv = Vec::new();
    report.write_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("shop,Deployment,web,app,main,3,500,"),
        "{csv}"
    );
}

#[test]
fn objects_that_do_not_read_are_reported_and_skipped() {
    let broken = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "broken"},
        "spec": {"template": {"spec": {"containers": "not a list"}}}});
    let nameless =
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {}, "spec": {}});
    let inventory = Inventory::from_objects(
        [broken, nameless, deployment("web", 1, &json!({}))],
        "default",
    );
    assert_eq!(inventory.workloads().len(), 1);
    assert_eq!(inventory.problems.len(), 2);
    assert!(
        inventory.problems[0].to_string().starts_with(
            "default/deployment/broken: the pod template's spec does not read as a PodSpec"
        ),
        "{}",
        inventory.problems[0]
    );
    assert!(
        inventory.problems[1]
            .message
            .contains("metadata.name is missing")
    );
}

#[test]
fn pods_long_gone_are_matched_to_workloads_by_name() {
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "x"}]}}}});
    let agent = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "web-agent", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "x"}]}}}});
    let db_proxy = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web-db", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "x"}]}}}});
    let nightly = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "x"}]}}}}}});
    let inventory = Inventory::from_objects(
        [
            deployment("web", 1, &json!({})),
            sts,
            agent,
            db_proxy,
            nightly,
        ],
        "default",
    );
    let owner = |pod: &str| {
        inventory
            .workload_of_pod("shop", pod)
            .map(|w| w.id.to_string())
    };
    assert_eq!(
        owner("web-7d9f8b6c5-x2x9k").as_deref(),
        Some("shop/deployment/web")
    );
    assert_eq!(owner("db-0").as_deref(), Some("shop/statefulset/db"));
    assert_eq!(owner("db-x").as_deref(), None);
    // Shapes decide between a Deployment and the workloads whose names extend it.
    assert_eq!(
        owner("web-agent-x7k2p").as_deref(),
        Some("shop/daemonset/web-agent")
    );
    assert_eq!(
        owner("web-db-2").as_deref(),
        Some("shop/statefulset/web-db")
    );
    assert_eq!(
        owner("nightly-29113920-q7wzt").as_deref(),
        Some("shop/cronjob/nightly")
    );
    assert_eq!(
        owner("web-db-x7k2p"),
        None,
        "not a statefulset pod, and no web-db-<hash>"
    );
    assert_eq!(owner("other-7d9f8b6c5-x2x9k"), None);
}

#[test]
fn hpas_without_enough_samples_or_with_a_zero_request_get_no_replica_advice() {
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    });
    let few = Inventory::from_objects(
        [deployment("web", 3, &resources("100m", "1Gi")), hpa.clone()],
        "default",
    );
    let report = analyse(
        &few,
        Some(&usage_of_three_pods(10)),
        &Options::default(),
        "test",
    );
    let rec = &report.recommendations[0];
    let reason = rec.cpu_reason.as_deref().unwrap();
    assert!(
        reason.starts_with(
            "HPA web scales on cpu at 50 % of the request; only 30 samples (needs 100"
        ),
        "{reason}"
    );
    assert!(rec.hpa.is_none());
    let zero = Inventory::from_objects(
        [deployment("web", 3, &resources("0", "1Gi")), hpa],
        "default",
    );
    let report = analyse(
        &zero,
        Some(&usage_of_three_pods(4032)),
        &Options::default(),
        "test",
    );
    let rec = &report.recommendations[0];
    assert!(rec.hpa.is_none());
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("there is no cpu request: set it (")),
        "{:?}",
        rec.notes
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "hpa-without-request")
    );
}

#[test]
fn cpu_limits_left_in_place_are_raised_to_the_request_or_flagged_for_removal() {
    let limited = |limit: &str| {
        let object = deployment(
            "web",
            3,
            &json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": limit, "memory": "1Gi"}}),
        );
        let inventory = Inventory::from_objects([object], "default");
        analyse(
            &inventory,
            Some(&usage_of_three_pods(4032)),
            &Options::default(),
            "test",
        )
    };
    // p95 ~124m: above a 110m limit, which must rise to the request or the API refuses it.
    let low = limited("110m");
    let rec = &low.recommendations[0];
    assert_eq!(rec.recommended.cpu_limit, rec.recommended.cpu_request);
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("CPU limit raised from 110m")),
        "{:?}",
        rec.notes
    );
    assert_eq!(
        low.patches()[0].object["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            ["cpu"],
        json!(crate::quantity::format_cpu(
            rec.recommended.cpu_request.unwrap()
        ))
    );
    // Below a 1-core limit: left alone by the patch, flagged for removal by hand.
    let high = limited("1");
    let rec = &high.recommendations[0];
    assert_eq!(rec.recommended.cpu_limit, None);
    assert!(
        rec.notes
            .iter()
            .any(|n| n.contains("remove the 1 CPU limit by hand")),
        "{:?}",
        rec.notes
    );
    let table = high.to_table();
    assert!(table.rows()[0].iter().any(|c| c.text == "1 (remove)"));
}

#[test]
fn every_name_asked_for_must_match() {
    let mut inventory = Inventory::from_objects([deployment("web", 1, &json!({}))], "default");
    let error = inventory
        .select(&["web".to_owned(), "deploy/typo".to_owned()])
        .unwrap_err();
    assert_eq!(error.to_string(), "no workload named deploy/typo");
    assert_eq!(
        inventory.workloads().len(),
        1,
        "nothing is dropped on an error"
    );
    assert!(inventory.select(&["gadget/web".to_owned()]).is_err());
    inventory.select(&["deploy/web".to_owned()]).unwrap();
}
