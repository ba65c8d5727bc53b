//! `kubectl zen forward` as a user runs it: help, bad configuration files, `config validate`,
//! `config show` read back, `plan` with a conflict, and the supervisor run against zen-sim until
//! Ctrl-C, bytes forwarded on the way.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubezen::sim::BACKENDS_ANNOTATION;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

/// The plugin with a home of its own (no user configuration unless the test writes one).
fn zen_in(home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("KUBECONFIG")
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const TEAM: &str = "portForwards:\n  web: {target: svc/web, targetPort: http, localPort: 18080, type: web}\n  web-too: {target: deploy/web, targetPort: 8080, localPort: 18080}\n  old: {target: pod/legacy, targetPort: 9090, disabled: true}\n";

#[test]
fn help_teaches_the_file_format_the_order_and_the_states() {
    let home = tempfile::tempdir().unwrap();
    let out = zen_in(home.path(), &["forward", "--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "~/.config/kubectl-zen/forward.yaml",
        "svc/NAME, pod/NAME or deploy/NAME",
        "localPorts: 50000-59999",
        "first every entry that asks for",
        "Reconnecting",
        "kubectl zen forward config validate",
        "-o json",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn bad_configuration_files_name_the_file_the_entry_and_the_field() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        (
            "portForwards:\n  api: {target: svc/api, targetPort: 99999}\n",
            "portForwards.api.targetPort",
            "not a port number",
        ),
        (
            "portForwards:\n  api: {target: svc/api}\n",
            "portForwards.api.targetPort",
            "missing",
        ),
        ("portForwards: {api: [\n", "bad.yaml", "not YAML"),
        (
            "portForwards:\n  api: {target: cronjob/x, targetPort: 80}\n",
            "portForwards.api.target",
            "svc/NAME",
        ),
    ];
    for (file, where_, what) in cases {
        std::fs::write(home.path().join("bad.yaml"), file).unwrap();
        let out = zen_in(
            home.path(),
            &["forward", "config", "validate", "-f", "bad.yaml"],
            None,
        );
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("bad.yaml") && stderr.contains(where_) && stderr.contains(what),
            "{file}: {stderr}"
        );
    }
    let missing = zen_in(
        home.path(),
        &["forward", "config", "validate", "-f", "nowhere.yaml"],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("nowhere.yaml"));
    // The user's file is read, and its errors say so.
    let user = home.path().join(".config/kubectl-zen");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("forward.yaml"), "portCheckTTL: soon\n").unwrap();
    let out = zen_in(home.path(), &["forward", "config", "validate"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(".config/kubectl-zen/forward.yaml: portCheckTTL"));
    let skipped = zen_in(
        home.path(),
        &["forward", "config", "validate", "--no-user-config"],
        None,
    );
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
}

#[test]
fn the_merged_configuration_is_shown_as_a_file_that_reads_back() {
    let home = tempfile::tempdir().unwrap();
    let user = home.path().join(".config/kubectl-zen");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("forward.yaml"), TEAM).unwrap();
    std::fs::write(
        home.path().join("mine.yaml"),
        "portForwards:\n  web-too: {disabled: true}\n",
    )
    .unwrap();
    let table = zen_in(
        home.path(),
        &["forward", "config", "show", "-f", "mine.yaml", "-o", "wide"],
        None,
    );
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(
        table.contains("web-too") && table.contains("forward.yaml, mine.yaml"),
        "{table}"
    );
    let yaml = zen_in(
        home.path(),
        &["forward", "config", "show", "-f", "mine.yaml", "-o", "yaml"],
        None,
    );
    let yaml = text(&yaml.stdout);
    assert!(yaml.contains("web-too:\n    disabled: true"), "{yaml}");
    let again = zen_in(
        home.path(),
        &[
            "forward",
            "config",
            "show",
            "--no-user-config",
            "-f",
            "-",
            "-o",
            "yaml",
        ],
        Some(&yaml),
    );
    assert_eq!(text(&again.stdout), yaml, "{}", text(&again.stderr));
}

#[test]
fn plan_resolves_a_conflict_in_name_order_and_says_why() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("team.yaml"), TEAM).unwrap();
    // Free 18080 and 18081 may be taken on a busy machine; the order is what is checked.
    let out = zen_in(
        home.path(),
        &["forward", "plan", "-f", "team.yaml", "-o", "json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = plan["assignments"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the disabled entry gets no port");
    assert_eq!(rows[0]["name"], "web");
    assert_eq!(rows[1]["name"], "web-too");
    assert_ne!(rows[0]["port"], rows[1]["port"]);
    if rows[0]["reason"]["kind"] == "requested" {
        assert_eq!(
            rows[1]["reason"],
            serde_json::json!({"kind": "conflict", "with": "web"})
        );
    }
    let table = zen_in(home.path(), &["forward", "plan", "-f", "team.yaml"], None);
    assert!(text(&table.stdout).contains("REQUESTED"));
}

/// An echo server standing in for the pod's port.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = socket.try_clone().unwrap();
                let mut writer = socket;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    address
}

/// Whether a connection to `port` echoes what it is sent, within a second.
fn echoes(port: u16) -> bool {
    let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let mut back = [0u8; 5];
    socket.write_all(b"again").is_ok() && socket.read_exact(&mut back).is_ok() && &back == b"again"
}

#[test]
fn the_supervisor_forwards_bytes_reports_json_lines_rides_out_a_restart_and_stops_on_ctrl_c() {
    let cluster = support::cluster_alone();
    let backend = echo_server();
    if !cluster.serve_pod_port(8080, backend) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig().to_owned();
    let namespace = cluster.namespace();
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{{BACKENDS_ANNOTATION}: \"8080={backend}\"}}\n    spec: {{containers: [{{name: app, image: pause, ports: [{{name: http, containerPort: 8080}}]}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{selector: {{app: web}}, ports: [{{name: http, port: 80, targetPort: http}}]}}\n"
    );
    cluster.apply(&manifest);
    // Automatic ports only: nothing on a busy machine can be in the way for long.
    let config = "portForwards:\n  web: {target: svc/web, targetPort: http}\n  web-too: {target: deploy/web, targetPort: 8080}\n";
    std::fs::write(home.path().join("team.yaml"), config).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            namespace,
            "forward",
            "-f",
            "team.yaml",
            "-o",
            "json",
        ])
        .env("HOME", home.path())
        .current_dir(home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut running = std::collections::BTreeMap::new();
    while running.len() < 2 {
        assert!(Instant::now() < deadline, "never Running: {running:?}");
        let line = lines.next().expect("a status line").unwrap();
        let status: serde_json::Value = serde_json::from_str(&line).unwrap();
        if status["state"] == "Running" {
            running.insert(
                status["name"].as_str().unwrap().to_owned(),
                status["localPort"].as_u64().unwrap(),
            );
        }
    }
    for port in running.values() {
        let port = u16::try_from(*port).unwrap();
        let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket.write_all(b"through the pod").unwrap();
        let mut back = [0u8; 15];
        socket.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"through the pod");
    }
    // An API server restart cuts every port-forward stream: each forward carries on.
    assert!(cluster.restart_api_server(Duration::from_secs(2)));
    for port in running.values() {
        let port = u16::try_from(*port).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !echoes(port) {
            assert!(Instant::now() < deadline, "port {port} never came back");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped 2 forwards: "), "{stderr}");
    let watch_errors = support::number_after(&stderr, "lost pods or connections and ");
    assert!(
        watch_errors >= Some(1),
        "the restart cut the pod watch: {stderr}"
    );
    for port in running.values() {
        let port = u16::try_from(*port).unwrap();
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{port} still open"
        );
    }
    let nothing = zen_in(
        home.path(),
        &["--kubeconfig", &kubeconfig, "forward", "--no-user-config"],
        None,
    );
    assert_eq!(nothing.status.code(), Some(2));
    assert!(text(&nothing.stderr).contains("no enabled entries"));
}
