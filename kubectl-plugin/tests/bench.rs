//! `kubectl zen bench` as a user runs it: the KRO guide's flags as written, reports in every
//! format, baselines and their exit codes, usage errors, Ctrl-C mid-run (nothing left behind),
//! a run killed outright (its namespace left, then found and removed by `bench cleanup`), and
//! the offline benchmarks.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kubezen::sim::{BackgroundSim, SimOptions};
use serde_json::Value;

mod support;
use support::{BIN, TestCluster, signal, text};

fn zen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the plugin runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// The benchmark namespaces kubectl sees.
fn bench_namespaces(cluster: &TestCluster) -> Vec<String> {
    let out = cluster.kubectl(&[
        "get",
        "namespaces",
        "-l",
        "zen.kubezen.io/bench-run",
        "-o",
        "name",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// Starts a long run and returns once it is measuring, with its stderr lines so far.
fn measuring(cluster: &TestCluster, duration: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = cluster
        .zen_command(&["bench", "api", "--duration", duration, "--resources", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the run starts measuring");
        // A log line once standard error is not a terminal: `<time> INFO <target>: measuring`.
        if line.trim_end().ends_with(": measuring") || line == "measuring" {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    (child, lines)
}

#[test]
fn the_guides_flags_work_as_written() {
    let cluster = support::cluster_alone();
    let out = cluster.zen(&[
        "bench",
        "api",
        "--duration=2s",
        "--workers=4",
        "--resources=50",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for verb in [
        "create", "get", "list", "update", "patch", "delete", "watch",
    ] {
        assert!(
            stdout.lines().any(|line| line.starts_with(verb)),
            "{verb}: {stdout}"
        );
    }
    assert!(stdout.contains("PASS      get p99"), "{stdout}");
    assert!(stdout.contains("deleted"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("creating 50 configmaps"), "{stderr}");
    assert!(bench_namespaces(&cluster).is_empty(), "nothing left behind");
}

#[test]
#[allow(clippy::too_many_lines)] // one user's session, in order
fn json_reports_are_baselines_that_later_runs_are_judged_against() {
    let cluster = support::cluster_alone();
    let dir = cluster.scratch();
    let out = cluster.zen(&[
        "bench",
        "api",
        "--count",
        "300",
        "--resources",
        "20",
        "--ops",
        "get,update,watch",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(report["kind"], "api");
    assert_eq!(report["operations"], 300);
    assert!(report["environment"]["serverVersion"].is_string());
    assert_eq!(report["environment"]["options"]["workers"], 4);
    let verbs: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verb"].as_str().unwrap())
        .collect();
    assert_eq!(verbs, ["get", "update", "watch"]);
    let baseline = dir.join("baseline.json");
    std::fs::write(&baseline, &out.stdout).unwrap();
    let base = baseline.display().to_string();
    let same = cluster.zen(&[
        "bench",
        "api",
        "--count",
        "300",
        "--resources",
        "20",
        "--ops",
        "get,update,watch",
        "--baseline",
        &base,
        "--threshold",
        "100000",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    assert!(
        text(&same.stdout).contains("BASELINE"),
        "{}",
        text(&same.stdout)
    );
    // A baseline far faster than anything real: every figure regressed, exit 1.
    let mut fast = report.clone();
    for row in fast["rows"].as_array_mut().unwrap() {
        row["latency"]["p50_ms"] = 0.0001.into();
        row["latency"]["p99_ms"] = 0.0001.into();
        row["perSecond"] = 1e9.into();
    }
    std::fs::write(&baseline, serde_json::to_vec(&fast).unwrap()).unwrap();
    let worse = cluster.zen(&[
        "bench",
        "api",
        "--count",
        "200",
        "--resources",
        "20",
        "--ops",
        "get,update",
        "--baseline",
        &base,
    ]);
    assert_eq!(worse.status.code(), Some(1), "{}", text(&worse.stderr));
    assert!(
        text(&worse.stdout).contains("regression"),
        "{}",
        text(&worse.stdout)
    );
    // A report of another benchmark is refused before anything runs.
    let other = zen(&["bench", "http", "http://127.0.0.1:1/", "--baseline", &base]);
    assert_eq!(other.status.code(), Some(2), "{}", text(&other.stderr));
    assert!(
        text(&other.stderr).contains("compares with its own kind"),
        "{}",
        text(&other.stderr)
    );
    // Not a report.
    std::fs::write(&baseline, "{}").unwrap();
    let bad = cluster.zen(&["bench", "api", "--count", "10", "--baseline", &base]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("not a baseline"),
        "{}",
        text(&bad.stderr)
    );
    assert!(bench_namespaces(&cluster).is_empty(), "nothing left behind");
}

#[test]
fn usage_errors_exit_two_and_say_what_to_fix() {
    for (args, expected) in [
        (
            &["bench", "api", "--mix", "watch=5"][..],
            "watch takes no weight",
        ),
        (
            &["bench", "api", "--ops", "get", "--mix", "create=1"],
            "--ops leaves it out",
        ),
        (&["bench", "api", "--mix", "get=sixty"], "whole number"),
        (
            &["bench", "api", "--ops", "get,stream"],
            "unknown operation",
        ),
        (&["bench", "api", "--ops", "watch"], "watch needs writes"),
        (
            &["bench", "api", "--duration", "1s", "--count", "5"],
            "cannot be used with",
        ),
        (
            &["bench", "api", "--workers", "0"],
            "--workers must be 1 to 1024",
        ),
        (&["bench", "http", "ftp://example.com/"], "expected http://"),
        (
            &["bench", "http", "http://127.0.0.1:1/", "--rate", "0"],
            "--rate must be at least 0.001",
        ),
        (
            &["bench", "http", "http://127.0.0.1:1/", "--rate", "1e-20"],
            "--rate must be at least 0.001",
        ),
        (&["bench", "cleanup", "--run", "not a run"], "not a run id"),
        (&["bench", "graph", "--sizes", "10,0"], "is not a size"),
        (&["bench", "cel", "-o", "csv"], "not a bench format"),
        (
            &[
                "bench",
                "http",
                "https://127.0.0.1:1/",
                "-k",
                "--cacert",
                "ca.pem",
            ],
            "cannot be used with",
        ),
        (
            &["bench", "http", "http://127.0.0.1:1/", "--timeout", "0"],
            "--timeout must be above 0",
        ),
        (
            &[
                "bench",
                "http",
                "http://127.0.0.1:1/",
                "--min-success",
                "150",
            ],
            "0 to 100",
        ),
        (
            &["bench", "api", "--threshold=-5", "--baseline", "x.json"],
            "--threshold must be",
        ),
    ] {
        let out = zen(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn ctrl_c_stops_the_run_reports_it_and_leaves_nothing_behind() {
    let cluster = support::cluster_alone();
    let (child, lines) = measuring(&cluster, "60s");
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr: Vec<String> = lines.try_iter().collect();
    assert_eq!(out.status.code(), Some(1), "interrupted: {stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("interrupted: stopping")),
        "{stderr:?}"
    );
    assert!(
        // A log line (`<time> INFO <target>: deleting namespace ...`).
        stderr.iter().any(|l| l.contains("deleting namespace")),
        "{stderr:?}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert!(bench_namespaces(&cluster).is_empty(), "nothing left behind");
}

#[test]
fn a_killed_run_leaves_its_namespace_for_cleanup_to_find() {
    let cluster = support::cluster_alone();
    let (child, _lines) = measuring(&cluster, "60s");
    signal(&child, "-KILL");
    let _ = child.wait_with_output().unwrap();
    let left = bench_namespaces(&cluster);
    assert_eq!(left.len(), 1, "{left:?}");
    let dry = cluster.zen(&["bench", "cleanup", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    assert!(text(&dry.stdout).contains("kept"), "{}", text(&dry.stdout));
    assert_eq!(bench_namespaces(&cluster), left);
    let out = cluster.zen(&["bench", "cleanup", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cleaned = json(&out);
    assert_eq!(cleaned[0]["outcome"], "deleted");
    assert_eq!(
        format!("namespace/{}", cleaned[0]["namespace"].as_str().unwrap()),
        left[0]
    );
    assert!(bench_namespaces(&cluster).is_empty());
    let again = cluster.zen(&["bench", "cleanup"]);
    assert!(text(&again.stderr).contains("nothing to clean up"));
}

#[test]
fn http_reports_as_vegeta_does_and_missed_targets_exit_one() {
    // zen-sim as a plain HTTP server: no cluster in this test.
    let sim = BackgroundSim::start(SimOptions::default()).expect("zen-sim starts");
    // Credentials and query tokens in the URL stay out of the report.
    let secret = sim
        .sim()
        .url()
        .replacen("http://", "http://user:hunter2@", 1);
    let report = zen(&[
        "bench",
        "http",
        &format!("{secret}/version?token=s3cr3t"),
        "--count",
        "5",
        "-o",
        "json",
    ]);
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    let written = text(&report.stdout);
    assert!(
        !written.contains("hunter2") && !written.contains("s3cr3t"),
        "{written}"
    );
    let url = format!("{}/version", sim.sim().url());
    let out = zen(&[
        "bench",
        "http",
        &url,
        "--rate",
        "100",
        "--duration",
        "1s",
        "--target-p99",
        "1s",
        "--min-success",
        "99",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Requests      [total, rate, throughput]         100, "),
        "{stdout}"
    );
    assert!(
        stdout.contains("Status Codes  [code:count]                      200:100"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS      p99"), "{stdout}");
    let missed = zen(&[
        "bench",
        "http",
        &url,
        "-c",
        "2",
        "--count",
        "50",
        "--target-p95",
        "0.001ms",
        "-o",
        "json",
    ]);
    assert_eq!(missed.status.code(), Some(1));
    let report = json(&missed);
    assert_eq!(report["requests"], 50);
    assert_eq!(report["verdicts"][0]["passed"], false);
    sim.stop();
}

#[test]
fn offline_benchmarks_print_tables_and_verdicts() {
    // The verdicts here are timings of a debug build, which a loaded machine can miss (CI once
    // measured a growth exponent above 1.3 from 10 to 40 resources): whichever way they go, the
    // exit code must say it.
    let graph = zen(&["bench", "graph", "--sizes", "10,40", "--budget", "20ms"]);
    let stdout = text(&graph.stdout);
    assert!(
        stdout.contains("RESOURCES") && stdout.contains("growth exponent"),
        "{stdout}\n{}",
        text(&graph.stderr)
    );
    assert!(
        stdout.contains("PASS ") || stdout.contains("FAIL "),
        "{stdout}"
    );
    let failed = i32::from(stdout.contains("FAIL "));
    assert_eq!(graph.status.code(), Some(failed), "{stdout}");
    let cel = zen(&[
        "bench", "cel", "--budget", "5ms", "--filter", "field", "-o", "json",
    ]);
    let report = json(&cel);
    assert_eq!(report["kind"], "cel");
    assert!(report["rows"].as_array().unwrap().len() >= 2);
    let failed = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|verdict| verdict["passed"] == false);
    assert_eq!(
        cel.status.code(),
        Some(i32::from(failed)),
        "{}",
        text(&cel.stderr)
    );
}

#[test]
fn an_api_server_restart_mid_run_is_ridden_out_and_reported() {
    let cluster = support::cluster_alone();
    let (child, _lines) = measuring(&cluster, "15s");
    if !cluster.restart_api_server(Duration::from_secs(2)) {
        signal(&child, "-INT");
        let _ = child.wait_with_output();
        return;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // The summary counts what the restart cost: requests refused, watches restarted.
    let count_before = |marker: &str| -> u64 {
        let head = stdout.split(marker).next().unwrap_or_default();
        head.rsplit([' ', ','])
            .find(|word| !word.is_empty())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count_before(" errors;") >= 1, "{stdout}");
    assert!(count_before(" restarts,") >= 1, "{stdout}");
    assert!(stdout.contains(" deleted"), "{stdout}");
    assert!(bench_namespaces(&cluster).is_empty(), "nothing left behind");
}
