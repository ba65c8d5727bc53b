//! `kubectl zen sim` as a user runs it: it serves until SIGTERM, writes or prints a kubeconfig
//! kubectl can use, and explains what stops it from starting.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

fn start(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("sim")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin runs")
}

/// Sends SIGTERM and waits for a clean exit.
fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "zen-sim exits 0 on SIGTERM: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "zen-sim did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn it_serves_kubectl_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let child = start(&[
        "--write-kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--nodes",
        "2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() || std::fs::metadata(&kubeconfig).unwrap().len() == 0 {
        assert!(Instant::now() < deadline, "no kubeconfig written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "nodes", "-o", "name"])
        .output()
        .expect("kubectl must be on PATH (.ci/run installs it)");
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&nodes.stdout).lines().count(), 2);
    terminate(child);
}

#[test]
fn without_a_file_the_kubeconfig_goes_to_stdout() {
    let mut child = start(&[]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("current-context") {
            break;
        }
    }
    assert!(text.contains("server: http://127.0.0.1:"), "{text}");
    assert!(text.contains("current-context: zen-sim"), "{text}");
    terminate(child);
}

#[test]
fn a_busy_port_and_a_bad_duration_are_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let busy = Command::new(BIN)
        .args(["sim", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(1));
    let message = String::from_utf8_lossy(&busy.stderr);
    assert!(
        message.contains("cannot start zen-sim") && message.contains("--port"),
        "{message}"
    );
    let bad = Command::new(BIN)
        .args(["sim", "--ready-delay", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
    let usage = Command::new(BIN)
        .args(["sim", "--usage-noise", "2"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&usage.stderr).contains("noise"),
        "{}",
        String::from_utf8_lossy(&usage.stderr)
    );
}

#[test]
fn help_says_what_it_is_and_shows_examples() {
    let help = Command::new(BIN).args(["sim", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Kubernetes-API-compatible server")
            && text.contains("Everything lives in memory"),
        "{text}"
    );
    assert!(
        text.contains("--usage-cpu") && text.contains("Examples:"),
        "{text}"
    );
}
