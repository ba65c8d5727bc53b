//! The plugin binary as a user runs it: exit codes, output formats, colour rules, failures on
//! standard output, completion scripts, and kubectl's plugin discovery.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zen");

/// The plugin with a clean colour environment, so the tests see what a user's pipe would.
fn zen(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the plugin binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn version_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("-o json prints valid JSON")
}

#[test]
fn version_json_reports_the_crate_version_and_the_checkout_commit() {
    let json = version_json(&run(&mut zen(&["version", "-o", "json"])));
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["target"].as_str().unwrap().split('-').count(), 4);
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    if head.status.success() {
        assert_eq!(
            json["gitCommit"],
            String::from_utf8(head.stdout).unwrap().trim()
        );
    } else {
        // A checkout with no commit yet has nothing to report.
        assert_eq!(json["gitCommit"], "unknown");
    }
}

#[test]
fn version_table_yaml_and_wide_agree_with_json() {
    let json = version_json(&run(&mut zen(&["version", "-o", "json"])));
    let version = json["version"].as_str().unwrap();

    let table = stdout(&run(&mut zen(&["version"])));
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["VERSION", "COMMIT", "TARGET"]
    );
    assert!(lines.next().unwrap().starts_with(version));
    assert_eq!(lines.next(), None);

    let wide = stdout(&run(&mut zen(&["version", "-o", "wide"])));
    assert!(
        wide.lines().next().unwrap().ends_with("RUSTC    PROFILE"),
        "{wide}"
    );

    let yaml = stdout(&run(&mut zen(&["version", "-o", "yaml"])));
    assert!(
        yaml.starts_with(&format!("version: {version}\ngitCommit: ")),
        "{yaml}"
    );
}

#[test]
fn exit_codes_are_zero_ok_and_two_for_usage() {
    let ok = run(&mut zen(&["version"]));
    assert_eq!(ok.status.code(), Some(0));

    for usage in [
        &[][..],
        &["no-such-command"],
        &["version", "--no-such-flag"],
        &["version", "-o", "xml"],
        &["completion", "tcsh"],
    ] {
        let output = run(&mut zen(usage));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{usage:?}: {}",
            stderr(&output)
        );
        assert!(
            output.stdout.is_empty(),
            "{usage:?}: usage errors go to stderr"
        );
    }

    let help = run(&mut zen(&["--help"]));
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: kubectl zen"));
    let version = run(&mut zen(&["--version"]));
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        stdout(&version).trim(),
        format!("kubectl-zen {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_full_disk_is_a_failure_in_the_error_style() {
    let full = std::fs::File::create("/dev/full").expect("/dev/full exists on Linux");
    let output = run(zen(&["version", "-o", "json"]).stdout(full));
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "error: cannot write the output", "{text}");
    assert_eq!(lines[1], "  where: standard output", "{text}");
    assert!(
        lines[2].starts_with("  cause: No space left on device"),
        "{text}"
    );
    assert!(lines[3].starts_with("  hint: "), "{text}");
}

#[test]
fn a_reader_that_went_away_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = run(zen(&["version", "-o", "json"]).stdout(writer));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[test]
fn colour_only_when_forced_or_on_a_terminal_and_never_under_no_color() {
    let piped = stdout(&run(&mut zen(&["version"])));
    assert!(!piped.contains('\u{1b}'), "a pipe gets plain text");

    let forced = stdout(&run(zen(&["version"]).env("CLICOLOR_FORCE", "1")));
    assert!(forced.contains("\u{1b}[1mVERSION"), "{forced:?}");

    let vetoed = stdout(&run(zen(&["version"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")));
    assert!(!vetoed.contains('\u{1b}'), "{vetoed:?}");

    let json = stdout(&run(
        zen(&["version", "-o", "json"]).env("CLICOLOR_FORCE", "1")
    ));
    assert!(!json.contains('\u{1b}'), "JSON is never coloured");
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let script = run(&mut zen(&["completion", "bash"]));
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubectl-zen.bash");
    std::fs::write(&path, &script.stdout).unwrap();

    let complete = |words: &str| {
        let program = format!(
            "source {path}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             complete_fn=$(complete -p kubectl-zen | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
             \"$complete_fn\" kubectl-zen \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path = path.display()
        );
        let output = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(complete("kubectl-zen ver").trim(), "version");
    let shells = complete("kubectl-zen completion ''");
    let values: Vec<_> = shells
        .split_whitespace()
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(values, ["bash", "zsh", "fish"], "{shells}");
    assert!(complete("kubectl-zen version --name").contains("--namespace"));
}

/// The directory of the `kubectl` on PATH.
fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("kubectl").is_file())
        .expect("kubectl must be on PATH for the plugin tests (.ci/run installs it)")
}

/// A PATH holding only the plugin and kubectl, so other plugins on the machine (or another
/// kubectl-zen) cannot shadow or disturb it.
fn plugin_path(plugin_dir: &Path) -> std::ffi::OsString {
    std::env::join_paths([plugin_dir.to_path_buf(), kubectl_dir()]).unwrap()
}

#[test]
fn kubectl_lists_the_plugin_and_dispatches_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("kubectl-zen");
    std::fs::copy(BIN, &installed).unwrap();
    let path = plugin_path(dir.path());
    let kubectl = |args: &[&str]| {
        Command::new(kubectl_dir().join("kubectl"))
            .args(args)
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl runs")
    };

    let list = kubectl(&["plugin", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stdout(&list)
            .lines()
            .any(|line| Path::new(line.trim()) == installed),
        "kubectl plugin list:\n{}",
        stdout(&list)
    );

    let json = version_json(&kubectl(&["zen", "version", "-o", "json"]));
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));

    // kubectl hands every argument after the plugin name over as it is, flags included.
    let usage = kubectl(&["zen", "version", "-o", "xml"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
    assert!(stderr(&usage).contains("invalid value 'xml'"));
}

#[test]
fn arguments_that_are_not_utf8_are_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let output = run(zen(&["version", "-n"]).arg(bad));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid UTF-8"),
        "{}",
        stderr(&output)
    );
}
