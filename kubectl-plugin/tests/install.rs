//! `kubectl zen install` as a user runs it: help, usage errors, the printed manifests read back
//! by `tune` and `graph`, and install/uninstall against zen-sim and the real control plane.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value as Json;

mod support;
use support::{BIN, text};
/// The repository, where the plugin runs (so paths in `deploy/`'s headers are relative).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const WEB_APP: &str = "examples/rgd/web-app.yaml";

fn zen(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs the plugin, asserts it succeeded and returns its standard output.
fn ok(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = zen(args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out.stdout
}

#[test]
fn help_teaches_what_is_installed_and_how_to_remove_it() {
    let help = text(&ok(&["install", "--help"], None));
    for needle in [
        "lead",
        "reconcile-controller",
        "--rgd",
        "--replicas",
        "--image",
        "--apply",
        "--uninstall",
        "--dry-run",
        "--as-graph",
        "--instances",
        "orphan",
        "stale",
        "install.kubezen.io/controller",
        "seccomp RuntimeDefault",
        "deploy/",
        "Examples:",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn usage_errors_say_what_to_write() {
    for (args, code, needle) in [
        (&["install", "reconcile-controller"][..], 2, "--rgd FILE"),
        (
            &["install", "lead", "--dry-run"],
            2,
            "--apply or --uninstall",
        ),
        (&["install", "lead", "--rgd", WEB_APP], 2, "--rgd is for"),
        (&["install", "lead", "--replicas", "0"], 2, "--replicas"),
        (
            &["install", "lead", "-n", "Not_A_Label"],
            2,
            "not a DNS label",
        ),
        (
            &["install", "lead", "--apply", "--uninstall"],
            2,
            "cannot be used",
        ),
        (
            &["install", "lead", "--instances", "delete"],
            2,
            "--uninstall",
        ),
        (
            &["install", "lead", "--uninstall", "--instances", "keep"],
            2,
            "[possible values: refuse, delete, orphan]",
        ),
        (
            &[
                "install",
                "reconcile-controller",
                "--rgd",
                "/no/such/rgd.yaml",
            ],
            1,
            "cannot read /no/such/rgd.yaml",
        ),
    ] {
        let out = zen(args, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn a_graph_that_does_not_compile_is_refused_with_its_error() {
    let rgd = b"apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: x}\nspec: {schema: {apiVersion: v1alpha1, kind: X}, resources: [{id: a, template: {apiVersion: v1, kind: ConfigMap, metadata: {name: \"${1 +}\"}}}]}\n";
    let out = zen(
        &["install", "reconcile-controller", "--rgd", "-"],
        Some(rgd),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("resource a"), "{stderr}");
    assert!(stderr.contains("graph validate"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed on error");

    let two = [&rgd[..], b"---\n", &rgd[..]].concat();
    let out = zen(
        &["install", "reconcile-controller", "--rgd", "-"],
        Some(&two),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("holds 2 ResourceGraphDefinitions"));
}

#[test]
fn json_is_a_list_of_the_same_objects_as_the_yaml() {
    let list: Json = serde_json::from_slice(&ok(
        &[
            "install",
            "lead",
            "-n",
            "ops",
            "--replicas",
            "3",
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    let kinds: Vec<_> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "PodDisruptionBudget",
            "Deployment"
        ]
    );
    let deployment = &items[8];
    assert_eq!(deployment["metadata"]["namespace"], "ops");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let yaml = text(&ok(
        &["install", "lead", "-n", "ops", "--replicas", "3"],
        None,
    ));
    let documents: Vec<Json> = yaml
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect();
    assert_eq!(&documents, items);
}

#[test]
fn our_own_tune_lint_finds_nothing_in_either_install() {
    for args in [
        &["install", "lead"][..],
        &["install", "reconcile-controller", "--rgd", WEB_APP],
    ] {
        let manifests = ok(args, None);
        let report: Json =
            serde_json::from_slice(&ok(&["tune", "-f", "-", "-o", "json"], Some(&manifests)))
                .unwrap();
        assert_eq!(report["findings"], Json::Array(vec![]), "{args:?}");
        assert_eq!(report["problems"], Json::Array(vec![]), "{args:?}");
        assert_eq!(
            report["totals"]["workloads"], 1,
            "{args:?}: the Deployment was read"
        );
    }
}

#[test]
fn the_install_as_a_graph_validates_and_orders() {
    let rgd = ok(&["install", "lead", "--as-graph"], None);
    let out = text(&ok(&["graph", "validate", "-", "--strict"], Some(&rgd)));
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    let order = text(&ok(&["graph", "order", "-"], Some(&rgd)));
    let (namespace, deployment) = (
        order
            .find("installNamespace")
            .expect("the Namespace is in the order"),
        order
            .find("deployment")
            .expect("the Deployment is in the order"),
    );
    assert!(namespace < deployment, "{order}");
    let out = zen(
        &[
            "install",
            "reconcile-controller",
            "--rgd",
            WEB_APP,
            "--as-graph",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "--as-graph is for lead only");
    assert!(text(&out.stderr).contains("lead"), "{}", text(&out.stderr));
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
#[allow(clippy::too_many_lines)] // one user's session, in order
fn apply_then_uninstall_leaves_nothing() {
    let cluster = support::cluster_alone();
    // A namespace of the install's own, which it creates and deletes.
    let namespace = format!("{}-install", cluster.namespace());
    let with = |args: &[&'static str]| {
        let mut all = vec![
            "--kubeconfig".to_owned(),
            cluster.kubeconfig().to_owned(),
            "-n".to_owned(),
            namespace.clone(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };

    let dry: Json = serde_json::from_slice(&ok(
        &refs(&with(&[
            "install",
            "lead",
            "--apply",
            "--dry-run",
            "-o",
            "json",
        ])),
        None,
    ))
    .unwrap();
    assert_eq!(dry["dryRun"], true);
    let actions = |changes: &Json| -> Vec<String> {
        changes["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["kind"].as_str().unwrap(),
                    c["action"].as_str().unwrap()
                )
            })
            .collect()
    };
    // The Namespace does not exist: the server can check the cluster-scoped objects only.
    assert_eq!(
        actions(&dry),
        [
            "Namespace serverside-applied",
            "ServiceAccount unchecked",
            "ClusterRole serverside-applied",
            "ClusterRoleBinding serverside-applied",
            "Role unchecked",
            "RoleBinding unchecked",
            "Service unchecked",
            "PodDisruptionBudget unchecked",
            "Deployment unchecked"
        ]
    );
    let listed = text(&ok(
        &refs(&with(&["install", "lead", "--uninstall", "--dry-run"])),
        None,
    ));
    assert!(
        listed.contains("nothing to do"),
        "dry run stored nothing: {listed}"
    );

    let applied = text(&ok(&refs(&with(&["install", "lead", "--apply"])), None));
    assert!(applied.contains("deployment/zen-lead"), "{applied}");
    assert!(applied.contains(&namespace), "{applied}");
    assert!(!applied.contains("unchecked"), "{applied}");
    // Installed, everything can be checked; and applying again changes nothing.
    let dry: Json = serde_json::from_slice(&ok(
        &refs(&with(&[
            "install",
            "lead",
            "--apply",
            "--dry-run",
            "-o",
            "json",
        ])),
        None,
    ))
    .unwrap();
    assert!(
        actions(&dry)
            .iter()
            .all(|a| a.ends_with(" serverside-applied")),
        "{dry}"
    );
    let again = text(&ok(&refs(&with(&["install", "lead", "--apply"])), None));
    assert_eq!(again, applied);

    let removed: Json = serde_json::from_slice(&ok(
        &refs(&with(&["install", "lead", "--uninstall", "-o", "json"])),
        None,
    ))
    .unwrap();
    let removed = actions(&removed);
    assert_eq!(removed.len(), 9, "{removed:?}");
    assert!(
        removed.iter().all(|a| a.ends_with(" deleted")),
        "{removed:?}"
    );
    // A real cluster's namespace controller takes a moment to finish the Namespace.
    support::eventually(
        std::time::Duration::from_secs(60),
        "the install's namespace gone",
        || {
            !cluster
                .kubectl(&["get", "namespace", &namespace])
                .status
                .success()
        },
    );
    let after = text(&ok(&refs(&with(&["install", "lead", "--uninstall"])), None));
    assert!(after.contains("nothing to do"), "{after}");
}

/// `deploy/`: each kustomize base and the graph, as `kubectl zen install` prints them today.
/// `make deploy` (this test with `ZEN_UPDATE_DEPLOY=1`) writes them.
const DEPLOY: [(&str, &[&str]); 3] = [
    ("lead/install.yaml", &["install", "lead"]),
    (
        "reconcile-controller/install.yaml",
        &["install", "reconcile-controller", "--rgd", WEB_APP],
    ),
    ("graphs/zen-lead.yaml", &["install", "lead", "--as-graph"]),
];

fn generated(args: &[&str]) -> String {
    format!(
        "# Generated by `make deploy` from `kubectl zen {}`: do not edit.\n{}",
        args.join(" "),
        text(&ok(args, None))
    )
}

#[test]
fn deploy_holds_what_install_prints() {
    let deploy = std::path::Path::new(ROOT).join("deploy");
    let update = std::env::var_os("ZEN_UPDATE_DEPLOY").is_some();
    for (file, args) in DEPLOY {
        let path = deploy.join(file);
        let expected = generated(args);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "deploy/{file} differs from `kubectl zen {}`: run `make deploy` and commit",
            args.join(" ")
        );
    }
}

/// The objects of a YAML stream, sorted, for comparing what kustomize reorders.
fn objects(yaml: &str) -> Vec<Json> {
    let mut objects: Vec<Json> = yaml
        .split("\n---")
        .map(|d| d.trim_start_matches("---"))
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect();
    objects.sort_by_key(|o| {
        format!(
            "{}/{}/{}",
            o["kind"],
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"]
        )
    });
    objects
}

#[test]
fn kustomize_builds_the_same_objects_as_install() {
    let deploy = std::path::Path::new(ROOT).join("deploy");
    for (base, args) in &DEPLOY[..2] {
        let directory = deploy.join(base).parent().unwrap().to_path_buf();
        let built = Command::new("kubectl")
            .arg("kustomize")
            .arg(&directory)
            .output()
            .expect("kubectl is on PATH");
        assert!(built.status.success(), "{}", text(&built.stderr));
        assert_eq!(
            objects(&text(&built.stdout)),
            objects(&text(&ok(args, None))),
            "kubectl kustomize {}",
            directory.display()
        );
    }
}
