//! `kubectl zen cel`: evaluation and checks from the shell.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

fn zen(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn eval_prints_one_value_as_json_or_tagged_yaml() {
    let json = zen(
        &["cel", "eval", "[1, 2, 3].map(x, x * 2)", "-o", "json"],
        "",
    );
    assert!(json.status.success(), "{}", text(&json.stderr));
    assert_eq!(text(&json.stdout), "[\n  2,\n  4,\n  6\n]\n");

    let yaml = zen(&["cel", "eval", "{'u': 5u, 'b': b'hi'}", "-o", "yaml"], "");
    assert_eq!(text(&yaml.stdout), "b: !bytes aGk=\nu: !uint 5\n");

    let several = zen(&["cel", "eval", "1", "'a'", "-o", "json"], "");
    assert_eq!(text(&several.stdout), "[\n  1,\n  \"a\"\n]\n");
}

#[test]
fn eval_reads_variables_from_stdin_or_a_file_and_reports_cache_stats() {
    let vars = "schema: {spec: {replicas: 3, name: web}}\n";
    let out = zen(
        &[
            "cel",
            "eval",
            "schema.spec.replicas > 2",
            "schema.spec.replicas > 2",
            "--vars",
            "-",
            "--cache-stats",
        ],
        vars,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(
        table.lines().nth(1).unwrap().ends_with("bool   true"),
        "{table}"
    );
    let stats = text(&out.stderr);
    assert_eq!(
        stats
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>(),
        ["1", "1"],
        "{stats}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.yaml");
    std::fs::write(&file, vars).unwrap();
    let out = zen(
        &[
            "cel",
            "eval",
            "schema.spec.name + '-svc'",
            "--vars",
            file.to_str().unwrap(),
            "-o",
            "json",
        ],
        "",
    );
    assert_eq!(text(&out.stdout), "\"web-svc\"\n");
}

#[test]
fn errors_show_the_position_with_a_caret_and_exit_1() {
    let out = zen(&["cel", "eval", "schema.spec.replicas >"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: syntax error at 1:23"), "{err}");
    assert!(
        err.contains(
            "  where: <expression>:1:23\n    schema.spec.replicas >\n                          ^\n"
        ),
        "{err}"
    );

    let out = zen(&["cel", "eval", "a.b", "--vars", "-"], "a: {c: 1}");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such key: b"));

    let out = zen(&["cel", "eval", "x", "--vars", "-"], "x: [unclosed");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: invalid variables"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"x: caf\xe9\n").unwrap();
    let out = zen(
        &["cel", "eval", "x", "--vars", latin1.to_str().unwrap()],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("valid UTF-8"),
        "{}",
        text(&out.stderr)
    );

    let out = zen(&["cel", "eval", "x", "--vars", "/no/such/file"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("where: /no/such/file"));

    let out = zen(&["cel", "eval"], "");
    assert_eq!(out.status.code(), Some(2), "an expression is required");
}

#[test]
fn check_reports_references_complexity_and_problems() {
    let out = zen(
        &[
            "cel",
            "check",
            "items.all(i, i.ready) && schema.spec.x > 1",
            "-o",
            "json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report[0]["references"],
        serde_json::json!(["items", "schema.spec.x"])
    );
    assert_eq!(report[0]["complexity"]["class"], "moderate");
    assert_eq!(report[0]["problems"], serde_json::json!([]));

    let out = zen(
        &[
            "cel",
            "check",
            "schema.spec.x + 'a'",
            "other.y",
            "--vars",
            "-",
        ],
        "schema: {spec: {x: 1}}",
    );
    assert_eq!(out.status.code(), Some(1), "problems are findings");
    let table = text(&out.stdout);
    assert!(table.contains("problem"), "{table}");
    assert!(
        table.contains("reads other.y but no variable \"other\" is given"),
        "{table}"
    );
}
