//! Unit tests of the bench module.

use std::time::Duration;

use super::api::{self, DEFAULT_MIX, Verb};
use super::graph::growth_exponent;
use super::{Latency, Recorder, Report, Stop, Verdict, compare, time_per_op};

#[test]
fn ops_and_mix_make_the_workers_weights() {
    let (mix, watch) = api::operations(None, None).unwrap();
    assert_eq!((mix, watch), (DEFAULT_MIX.to_vec(), true));
    let ops = api::parse_ops("get,update,watch").unwrap();
    let (mix, watch) = api::operations(Some(&ops), None).unwrap();
    assert_eq!(mix, [(Verb::Get, 50), (Verb::Update, 15)]);
    assert!(watch);
    // The issue's own example, with --ops left at its default: the mix decides.
    let given = api::parse_mix("get=60,list=10,update=20,create=10").unwrap();
    let (mix, watch) = api::operations(None, Some(&given)).unwrap();
    assert_eq!(mix, given);
    assert!(watch);
    // A read-only mix leaves the default watcher out; asked for, it is an error.
    let reads = api::parse_mix("get=1").unwrap();
    assert!(!api::operations(None, Some(&reads)).unwrap().1);
    let watch_ops = api::parse_ops("get,watch").unwrap();
    let error = api::operations(Some(&watch_ops), Some(&reads)).unwrap_err();
    assert!(error.to_string().contains("watch needs writes"), "{error}");
    let only_get = api::parse_ops("get").unwrap();
    let error = api::operations(Some(&only_get), Some(&given)).unwrap_err();
    assert!(error.to_string().contains("--ops leaves it out"), "{error}");
    // Zero weights drop a verb; all zero is refused when parsed.
    let (mix, _) = api::operations(None, Some(&api::parse_mix("get=0,update=1").unwrap())).unwrap();
    assert_eq!(mix, [(Verb::Update, 1)]);
    for bad in [
        "get=0",
        "get",
        "get=1,get=2",
        "stream=1",
        "get=-1",
        "watch=1",
    ] {
        let parsed = api::parse_mix(bad);
        let refused = parsed.is_err() || api::operations(None, Some(&parsed.unwrap())).is_err();
        assert!(refused, "{bad}");
    }
    assert!(api::parse_ops("").is_err());
    assert!(api::parse_ops("get,get").is_err());
}

#[test]
fn options_are_checked() {
    let fine = api::ApiOptions::default();
    assert!(fine.validate().is_ok());
    for broken in [
        api::ApiOptions {
            workers: 0,
            ..fine.clone()
        },
        api::ApiOptions {
            resources: 1_000_000,
            ..fine.clone()
        },
        api::ApiOptions {
            stop: Stop::Count(0),
            ..fine.clone()
        },
        api::ApiOptions {
            stop: Stop::Duration(Duration::ZERO),
            ..fine.clone()
        },
        api::ApiOptions {
            object_size: 2 << 20,
            ..fine.clone()
        },
        api::ApiOptions {
            mix: vec![(Verb::Get, 0)],
            ..fine.clone()
        },
        api::ApiOptions {
            mix: vec![(Verb::Watch, 1)],
            ..fine.clone()
        },
    ] {
        assert!(broken.validate().is_err(), "{broken:?}");
    }
}

#[test]
fn http_options_are_checked_without_echoing_credentials() {
    use super::http::HttpOptions;
    let fine = HttpOptions {
        url: "http://gateway:8080/o2ims/v1/".into(),
        ..HttpOptions::default()
    };
    assert!(fine.validate().is_ok());
    // A rate so low its second request is due in 10^20 s is refused, not a panic later.
    for rate in [1e-20, 0.0, -1.0, f64::NAN, 2e6] {
        let slow = HttpOptions {
            rate: Some(rate),
            ..fine.clone()
        };
        let error = slow.validate().unwrap_err().to_string();
        assert!(error.contains("--rate"), "{error}");
    }
    let slowest = HttpOptions {
        rate: Some(0.001),
        ..fine.clone()
    };
    assert!(slowest.validate().is_ok());
    // Errors about a URL never show its user information or query.
    for url in [
        "ftp://admin:hunter2@gateway/",
        "http://admin:hunter2@gate way/",
        "gateway/?token=hunter2",
    ] {
        let bad = HttpOptions {
            url: url.into(),
            ..fine.clone()
        };
        let error = bad.validate().unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("URL"), "{error}");
    }
}

#[test]
fn stops_say_when_and_how_far() {
    let count = Stop::Count(10);
    assert!(count.allows(9, Duration::from_secs(100)));
    assert!(!count.allows(10, Duration::ZERO));
    assert!((count.fraction(5, Duration::ZERO) - 0.5).abs() < 1e-9);
    let time = Stop::Duration(Duration::from_secs(4));
    assert!(time.allows(1_000_000, Duration::from_secs(3)));
    assert!(!time.allows(0, Duration::from_secs(4)));
    assert!((time.fraction(0, Duration::from_secs(1)) - 0.25).abs() < 1e-9);
    assert!((time.fraction(0, Duration::from_secs(9)) - 1.0).abs() < 1e-9);
}

#[test]
fn the_recorder_keeps_microseconds_and_merges() {
    let mut a = Recorder::new();
    for micros in 1..=1000 {
        a.record_us(micros);
    }
    let summary = a.summary();
    assert_eq!(summary.count, 1000);
    assert!((summary.min_ms - 0.001).abs() < 1e-9);
    assert!((summary.p50_ms - 0.5).abs() <= 0.0005, "{summary:?}");
    assert!((summary.p99_ms - 0.99).abs() <= 0.001, "{summary:?}");
    assert!((summary.max_ms - 1.0).abs() <= 0.001, "{summary:?}");
    assert!((summary.mean_ms - 0.5005).abs() < 0.001, "{summary:?}");
    let mut b = Recorder::new();
    b.record(Duration::from_secs(10));
    b.record(Duration::from_secs(100 * 3600)); // beyond an hour: recorded as an hour
    a.merge(&b);
    let merged = a.summary();
    assert_eq!(merged.count, 1002);
    assert!(
        (merged.max_ms - 3_600_000.0).abs() / 3_600_000.0 < 0.001,
        "{merged:?}"
    );
    assert_eq!(Recorder::new().summary(), Latency::default());
}

#[test]
fn verdicts_read_as_sentences() {
    let pass = Verdict::at_most("get p99", 12.3, 1000.0, "ms", "SLO");
    assert!(pass.passed);
    assert_eq!(pass.sentence(), "PASS get p99 12.3ms <= 1.00s (SLO)");
    let fail = Verdict::at_least("success ratio", 98.5, 99.0, "%", "--min-success");
    assert!(!fail.passed);
    assert_eq!(
        fail.sentence(),
        "FAIL success ratio 98.50% >= 99.00% (--min-success)"
    );
}

#[test]
fn baselines_flag_slower_latency_and_lower_rates() {
    let latency = |p50_ms, p99_ms| Latency {
        count: 10,
        p50_ms,
        p99_ms,
        ..Latency::default()
    };
    let before = vec![
        ("get".to_owned(), latency(1.0, 2.0), 100.0),
        ("list".to_owned(), latency(1.0, 2.0), 100.0),
    ];
    let now = vec![
        ("get".to_owned(), latency(1.05, 2.5), 100.0),
        ("list".to_owned(), latency(1.0, 2.0), 85.0),
        ("create".to_owned(), latency(1.0, 2.0), 1.0),
    ];
    let changes = compare(&before, &now, 10.0);
    assert_eq!(changes.len(), 6, "rows in both only: {changes:?}");
    let regressions: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.regression)
        .map(|c| (c.subject.as_str(), c.metric.as_str()))
        .collect();
    assert_eq!(regressions, [("get", "p99_ms"), ("list", "per_second")]);
    let p50 = &changes[0];
    assert!((p50.change_percent - 5.0).abs() < 1e-9);
}

#[test]
fn reports_load_back_and_others_are_refused() {
    let report = super::graph::run(&super::graph::GraphOptions {
        sizes: vec![5, 20],
        budget: Duration::from_millis(2),
    })
    .unwrap();
    let text = serde_json::to_string(&Report::Graph(report.clone())).unwrap();
    let loaded = Report::from_json(&text).unwrap();
    assert_eq!(loaded, Report::Graph(report));
    assert_eq!(loaded.kind(), "graph");
    for (bad, says) in [
        ("not json", "not a JSON document"),
        ("{}", "no \"format\""),
        (
            r#"{"format": "kubezen.bench/v9"}"#,
            "of format kubezen.bench/v9",
        ),
        (
            r#"{"format": "kubezen.bench/v1", "kind": "nope"}"#,
            "not a bench report",
        ),
    ] {
        let error = Report::from_json(bad).unwrap_err().to_string();
        assert!(error.contains(says), "{bad}: {error}");
    }
    let mut graph = loaded.clone();
    let error = graph.compare_with(&loaded, 10.0).unwrap_err();
    assert!(error.to_string().contains("only api and http"), "{error}");
}

#[test]
fn the_growth_exponent_is_the_log_log_slope() {
    let linear: Vec<(f64, f64)> = [10.0, 100.0, 1000.0]
        .iter()
        .map(|&n| (n, 3.0 * n))
        .collect();
    assert!((growth_exponent(&linear).unwrap() - 1.0).abs() < 1e-9);
    let quadratic: Vec<(f64, f64)> = [10.0, 30.0, 100.0].iter().map(|&n| (n, n * n)).collect();
    assert!((growth_exponent(&quadratic).unwrap() - 2.0).abs() < 1e-9);
    assert_eq!(growth_exponent(&[(10.0, 1.0)]), None);
    assert_eq!(growth_exponent(&[(10.0, 1.0), (10.0, 2.0)]), None);
}

#[test]
fn batched_timing_measures_something() {
    let mut x = 0_u64;
    let timing = time_per_op(Duration::from_millis(5), || {
        x = std::hint::black_box(x.wrapping_add(1));
    });
    assert!(timing.iterations >= 5);
    assert!(timing.mean_us > 0.0 && timing.mean_us < 10.0, "{timing:?}");
    assert!(timing.p50_us <= timing.p99_us);
}
