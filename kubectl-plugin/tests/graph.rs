//! `kubectl zen graph`: resource graphs from the shell, on the example RGDs and hostile input.

use std::{
    fmt::Write as _,
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("examples/rgd").join(name).display().to_string()
}

fn zen(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin runs");
    let mut input = child.stdin.take().unwrap();
    // A process that stops reading early (a refused input) closes the pipe; that is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[test]
fn inspect_shows_waves_dependencies_and_the_critical_path() {
    let out = zen(&["graph", "inspect", &example("web-app.yaml")], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.starts_with("web-app  "), "{shown}");
    assert!(
        shown.contains("6 resources, 5 dependencies, 4 waves"),
        "{shown}"
    );
    assert!(
        shown.contains("Critical path (4 resources): config -> deployment -> service -> ingress"),
        "{shown}"
    );
    let row = shown.lines().find(|l| l.contains(" ingress ")).unwrap();
    assert!(
        row.contains("Ingress") && row.contains("service") && row.contains("conditional"),
        "{row}"
    );
    assert!(!shown.contains('\u{1b}'), "no colour under NO_COLOR");
}

#[test]
fn inspect_json_is_the_full_report() {
    let out = zen(
        &["graph", "inspect", &example("database.yaml"), "-o", "json"],
        b"",
    );
    assert!(out.status.success());
    let report = json(&out);
    assert_eq!(report["name"], "postgres-database");
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["order"],
        serde_json::json!(["credentials", "config", "service", "statefulSet", "backup"])
    );
    assert_eq!(report["metrics"]["nodes"], 5);
    assert_eq!(
        report["criticalPath"],
        serde_json::json!(["credentials", "statefulSet", "backup"])
    );
}

#[test]
fn validate_reports_every_problem_and_exits_1() {
    let out = zen(&["graph", "validate", &example("broken.yaml")], b"");
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    for expected in [
        "graph contains a cycle: frontend -> api -> orders -> frontend",
        "references unknown identifiers: [databse]",
        "resource \"orders\" readyWhen: references unknown identifiers: [api]",
        "undefined field 'replcias'",
        "1 graph(s): 4 error(s), 1 warning(s)",
    ] {
        assert!(shown.contains(expected), "missing {expected:?} in\n{shown}");
    }
    let out = zen(
        &["graph", "validate", &example("broken.yaml"), "-o", "json"],
        b"",
    );
    let report = json(&out);
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 4);
    let cycle = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("cycle"))
        .unwrap();
    assert_eq!(cycle["resource"], "frontend");
    assert_eq!(cycle["severity"], "error");
    assert!(
        cycle["origin"]["file"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml")
    );
    assert!(cycle["hint"].as_str().is_some());
}

#[test]
fn validate_a_directory_and_strict_warnings() {
    let dir = PathBuf::from(example("web-app.yaml"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let out = zen(&["graph", "validate", &dir, "-o", "json"], b"");
    let report = json(&out);
    assert_eq!(report["graphs"], 5);
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken.yaml is in the directory"
    );
    let platform = zen(&["graph", "validate", &example("platform.yaml")], b"");
    assert!(platform.status.success(), "warnings alone pass");
    let strict = zen(
        &["graph", "validate", "--strict", &example("platform.yaml")],
        b"",
    );
    assert_eq!(strict.status.code(), Some(1), "--strict fails on warnings");
}

#[test]
fn order_prints_waves_and_levels_and_fails_on_a_cycle() {
    let out = zen(
        &["graph", "order", &example("web-app.yaml"), "-o", "json"],
        b"",
    );
    assert!(out.status.success());
    let ordering = json(&out);
    assert_eq!(
        ordering["order"],
        serde_json::json!([
            "config",
            "deployment",
            "service",
            "ingress",
            "autoscaler",
            "disruptionBudget"
        ])
    );
    assert_eq!(
        ordering["waves"],
        serde_json::json!([
            ["config"],
            ["deployment"],
            ["service"],
            ["ingress", "autoscaler", "disruptionBudget"]
        ])
    );
    let table = zen(&["graph", "order", &example("web-app.yaml")], b"");
    let first = text(&table.stdout).lines().nth(1).unwrap().to_owned();
    assert!(
        first.contains("1   config")
            || first.split_whitespace().collect::<Vec<_>>()[..2] == ["1", "config"],
        "{first}"
    );
    let cyclic = zen(&["graph", "order", &example("broken.yaml")], b"");
    assert_eq!(cyclic.status.code(), Some(1));
    assert!(text(&cyclic.stdout).contains("cycle: frontend -> api -> orders -> frontend"));
}

#[test]
fn export_dot_mermaid_and_json_from_stdin() {
    let rgd = std::fs::read(example("conditional.yaml")).unwrap();
    let dot = zen(&["graph", "export", "-"], &rgd);
    assert!(dot.status.success(), "{}", text(&dot.stderr));
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph \"worker-pool\" {"), "{dot}");
    assert!(
        dot.contains("\"queue\" [label=\"queue\\nSecret\", style=\"rounded,dashed\"];"),
        "{dot}"
    );
    assert!(dot.contains("peripheries=2"), "collections are doubled");
    let mermaid = text(&zen(&["graph", "export", "-", "-o", "mermaid"], &rgd).stdout);
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert!(mermaid.contains("r0[/\"queue<br/>Secret\"/]"), "{mermaid}");
    let report: serde_json::Value =
        serde_json::from_slice(&zen(&["graph", "export", "-", "-o", "json"], &rgd).stdout).unwrap();
    assert_eq!(report["resources"][2]["kind"], "collection");
}

#[test]
fn other_commands_refuse_graph_formats() {
    let out = zen(&["version", "-o", "dot"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("-o dot and -o mermaid are for `graph export`"));
}

#[test]
fn hostile_input_is_a_clear_error() {
    // Not UTF-8.
    let out = zen(&["graph", "validate", "-"], b"kind: caf\xe9\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not UTF-8 text (invalid byte at offset 9)"));
    // Malformed YAML names the line.
    let out = zen(
        &["graph", "validate", "-"],
        b"apiVersion: kro.run/v1alpha1\nkind: [\n",
    );
    assert!(
        text(&out.stderr).contains("invalid YAML"),
        "{}",
        text(&out.stderr)
    );
    // Deep nesting stops at the parser's recursion limit.
    let deep = format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000));
    let out = zen(&["graph", "validate", "-"], deep.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("recursion limit exceeded"),
        "{}",
        text(&out.stderr)
    );
    // Too large: refused after reading the limit, not after loading it all.
    let big = vec![b'#'; 20 << 20];
    let out = zen(&["graph", "validate", "-"], &big);
    assert!(
        text(&out.stderr).contains("is larger than 16777216 bytes"),
        "{}",
        text(&out.stderr)
    );
    // Nothing to read.
    let out = zen(
        &[
            "graph",
            "inspect",
            "rgd/web",
            "--kubeconfig",
            "/nonexistent/kc",
        ],
        b"",
    );
    assert!(
        text(&out.stderr).contains("cannot use kubeconfig /nonexistent/kc"),
        "{}",
        text(&out.stderr)
    );
    let out = zen(&["graph", "inspect", "/nonexistent.yaml"], b"");
    assert!(text(&out.stderr).contains("cannot read /nonexistent.yaml"));
    let out = zen(
        &["graph", "inspect", "-"],
        b"apiVersion: v1\nkind: ConfigMap\n",
    );
    assert!(text(&out.stderr).contains("no ResourceGraphDefinition"));
}

#[test]
fn a_hundred_thousand_resources_validate() {
    let mut rgd = String::from(
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: big}\nspec:\n  schema: {apiVersion: v1alpha1, kind: Big, spec: {name: string}}\n  resources:\n",
    );
    for i in 0..100_000 {
        let data = if i == 0 {
            "{root: x}".to_owned()
        } else {
            format!("{{parent: \"${{r{}.metadata.name}}\"}}", (i - 1) / 4)
        };
        let _ = write!(
            rgd,
            "    - id: r{i}\n      template: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: \"${{schema.spec.name}}-{i}\"}}, data: {data}}}\n"
        );
    }
    let out = zen(&["graph", "validate", "-", "-o", "json"], rgd.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["warnings"], 1, "the 30+ resources warning");
}

#[test]
fn crds_extend_the_type_checks() {
    let dir = tempfile::tempdir().unwrap();
    let crd = dir.path().join("widget.yaml");
    std::fs::write(
        &crd,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec: {type: object, properties: {size: {type: integer}}}\n",
    )
    .unwrap();
    let rgd = b"apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: w}\nspec:\n  schema: {apiVersion: v1alpha1, kind: W, spec: {name: string}}\n  resources:\n    - id: widget\n      template: {apiVersion: example.com/v1, kind: Widget, metadata: {name: \"${schema.spec.name}\"}, spec: {size: \"${schema.spec.name}\"}}\n";
    let without = zen(&["graph", "validate", "-"], rgd);
    assert!(without.status.success(), "{}", text(&without.stdout));
    let crd_arg = crd.display().to_string();
    let with = zen(&["graph", "validate", "-", "--crd", &crd_arg], rgd);
    assert_eq!(with.status.code(), Some(1));
    assert!(
        text(&with.stdout).contains(
            "expression \"schema.spec.name\" returns type \"string\" but expected \"int\""
        ),
        "{}",
        text(&with.stdout)
    );
    let not_crd = zen(
        &["graph", "validate", "-", "--crd", &example("web-app.yaml")],
        rgd,
    );
    assert!(text(&not_crd.stderr).contains("no CustomResourceDefinition found"));
}
