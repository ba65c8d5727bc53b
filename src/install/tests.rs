use super::*;

fn web_app() -> Component {
    let text = include_str!("../../examples/rgd/web-app.yaml");
    let graph = crate::graph::parse_str(text, "web-app.yaml", &crate::graph::Catalog::builtin())
        .expect("the example graph loads")
        .remove(0);
    Component::Reconcile {
        plan: Arc::new(Plan::new(&graph).expect("the example graph compiles")),
        rgd: text.to_owned(),
    }
}

fn find<'a>(objects: &'a [Json], kind: &str) -> &'a Json {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_deployment_is_locked_down_probed_and_sized_by_the_preset() {
    let objects = manifests(&Component::Lead, &InstallOptions::default()).unwrap();
    let deployment = find(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["serviceAccountName"], "zen-lead");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let locked = &container["securityContext"];
    assert_eq!(locked["readOnlyRootFilesystem"], true);
    assert_eq!(locked["allowPrivilegeEscalation"], false);
    assert_eq!(locked["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}})
    );
    assert_eq!(container["image"], DEFAULT_IMAGE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "lead",
            "--metrics-addr",
            "0.0.0.0:8080",
            "--leader-elect=true",
            "--leader-election-id",
            "zen-lead-controller-leader-election",
            "--leader-election-namespace",
            "kubezen-system"
        ]
    );
    // Every object carries the label uninstall finds it by; the pods do not need it.
    for object in &objects {
        assert_eq!(
            object["metadata"]["labels"][INSTALL_LABEL], "zen-lead",
            "{object}"
        );
    }
    assert!(
        deployment["spec"]["template"]["metadata"]["labels"]
            .get(INSTALL_LABEL)
            .is_none()
    );
    assert_eq!(
        find(&objects, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
}

#[test]
fn rules_are_the_controllers_permissions_and_the_lease_is_named() {
    let objects = manifests(&Component::Lead, &InstallOptions::default()).unwrap();
    let election = ElectionOptions::new("kubezen-system", crate::lead::LEASE_NAME, "x");
    let permissions = Component::Lead.permissions(Some(&election)).unwrap();
    let cluster: Vec<Json> = permissions
        .iter()
        .filter(|p| p.scope == Scope::Cluster)
        .map(Permission::rule)
        .collect();
    assert_eq!(find(&objects, "ClusterRole")["rules"], json!(cluster));
    let role = &find(&objects, "Role")["rules"];
    assert_eq!(
        *role,
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"],
             "resourceNames": ["zen-lead-controller-leader-election"]},
        ])
    );
    assert_eq!(
        find(&objects, "RoleBinding")["subjects"][0]["namespace"],
        "kubezen-system"
    );
    assert!(
        !find(&objects, "ClusterRole")["rules"]
            .to_string()
            .contains('*'),
        "no wildcards"
    );
}

#[test]
fn one_replica_elects_nobody_and_can_always_be_evicted() {
    let options = InstallOptions {
        replicas: 1,
        namespace: "tools".into(),
        ..InstallOptions::default()
    };
    let objects = manifests(&Component::Lead, &options).unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "Role" && o["kind"] != "RoleBinding")
    );
    let deployment = find(&objects, "Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--leader-elect=false") && !args.contains("leader-election-id"),
        "{args}"
    );
    assert!(
        deployment["spec"]["template"]["spec"]
            .get("affinity")
            .is_none()
    );
    let pdb = &find(&objects, "PodDisruptionBudget")["spec"];
    assert_eq!(pdb["maxUnavailable"], 1);
    assert!(pdb.get("minAvailable").is_none());
    assert!(objects.iter().all(|o| o["kind"] == "Namespace"
        || o["kind"] == "ClusterRole"
        || o["kind"] == "ClusterRoleBinding"
        || o["metadata"]["namespace"] == "tools"));
}

#[test]
fn bad_options_are_refused_with_what_to_write() {
    for (options, says) in [
        (
            InstallOptions {
                namespace: "Tools".into(),
                ..InstallOptions::default()
            },
            "DNS label",
        ),
        (
            InstallOptions {
                namespace: String::new(),
                ..InstallOptions::default()
            },
            "DNS label",
        ),
        (
            InstallOptions {
                namespace: "a".repeat(64),
                ..InstallOptions::default()
            },
            "DNS label",
        ),
        (
            InstallOptions {
                replicas: 0,
                ..InstallOptions::default()
            },
            "replicas must be 1 to 100, not 0",
        ),
        (
            InstallOptions {
                replicas: 101,
                ..InstallOptions::default()
            },
            "replicas must be 1 to 100, not 101",
        ),
        (
            InstallOptions {
                image: " ".into(),
                ..InstallOptions::default()
            },
            "image",
        ),
    ] {
        let error = manifests(&Component::Lead, &options)
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{error}");
    }
}

#[test]
fn the_reconcile_controller_gets_its_graph_and_the_graphs_kinds() {
    let component = web_app();
    assert_eq!(component.name(), "zen-reconcile-web-app");
    let objects = manifests(&component, &InstallOptions::default()).unwrap();
    let config_map = find(&objects, "ConfigMap");
    assert_eq!(
        config_map["metadata"]["name"],
        "zen-reconcile-web-app-graph"
    );
    assert!(
        config_map["data"]["rgd.yaml"]
            .as_str()
            .unwrap()
            .contains("ResourceGraphDefinition")
    );
    let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        "zen-reconcile-web-app-graph"
    );
    assert_eq!(pod["containers"][0]["volumeMounts"][0]["readOnly"], true);
    let args = pod["containers"][0]["args"].to_string();
    assert!(
        args.contains("\"reconcile\",\"controller\",\"--rgd\",\"/etc/kubectl-zen/graph/rgd.yaml\""),
        "{args}"
    );
    let rules = find(&objects, "ClusterRole")["rules"].to_string();
    for wanted in [
        // An apply that creates is authorized as a create too: create and patch go together.
        r#"{"apiGroups":["apiextensions.k8s.io"],"resourceNames":["webapps.kro.run"],"resources":["customresourcedefinitions"],"verbs":["create","patch"]}"#,
        r#"{"apiGroups":["kro.run"],"resources":["webapps/status"],"verbs":["patch"]}"#,
        r#"{"apiGroups":["apps"],"resources":["deployments"],"verbs":["list","watch","create","patch","delete"]}"#,
        r#"{"apiGroups":["networking.k8s.io"],"resources":["ingresses"],"verbs":["list","watch","create","patch","delete"]}"#,
    ] {
        assert!(rules.contains(wanted), "{wanted} not in {rules}");
    }
}

#[test]
fn a_kind_written_as_an_expression_cannot_be_granted() {
    let text = r"
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {name: dynamic}
spec:
  schema: {apiVersion: v1alpha1, kind: Dynamic, spec: {kind: string}}
  resources:
  - id: thing
    template:
      apiVersion: v1
      kind: ${schema.spec.kind}
      metadata: {name: thing}
";
    let graph = crate::graph::parse_str(text, "dynamic.yaml", &crate::graph::Catalog::builtin())
        .unwrap()
        .remove(0);
    let Ok(plan) = Plan::new(&graph) else {
        return; // a graph that does not compile is refused before install
    };
    let component = Component::Reconcile {
        plan: Arc::new(plan),
        rgd: text.into(),
    };
    let error = manifests(&component, &InstallOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("resource thing") && error.contains("expression"),
        "{error}"
    );
}

#[test]
fn a_reconcile_controller_takes_exactly_one_graph_of_at_most_a_config_map() {
    let catalog = crate::graph::Catalog::builtin();
    let text = include_str!("../../examples/rgd/web-app.yaml");
    let component = Component::reconcile(text.to_owned(), "web-app.yaml", &catalog).unwrap();
    assert_eq!(component.name(), "zen-reconcile-web-app");
    let error = |text: String| {
        Component::reconcile(text, "g.yaml", &catalog)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(
        error(format!("{text}\n---\n{text}")).contains("g.yaml holds 2 ResourceGraphDefinitions")
    );
    assert!(matches!(
        Component::reconcile("kind: ConfigMap\n".into(), "g.yaml", &catalog),
        Err(InstallError::Load(LoadError::NoGraphs { .. }))
    ));
    let huge = format!("{text}#{}", " ".repeat(1 << 20));
    assert_eq!(
        error(huge),
        "g.yaml is over 1 MiB: a ConfigMap cannot carry it to the controller"
    );
    assert!(matches!(
        Component::reconcile("a: [".into(), "g.yaml", &catalog),
        Err(InstallError::Load(_))
    ));
    let missing = Component::reconcile_file(Path::new("/no/such.yaml"), &catalog);
    assert!(matches!(
        missing,
        Err(InstallError::Load(LoadError::Io { .. }))
    ));
}

#[test]
fn a_resource_several_parts_of_the_controller_need_is_one_rule() {
    let objects = manifests(&web_app(), &InstallOptions::default()).unwrap();
    let rules = find(&objects, "ClusterRole")["rules"].as_array().unwrap();
    let config_maps: Vec<&Json> = rules
        .iter()
        .filter(|r| r["resources"] == json!(["configmaps"]))
        .collect();
    assert_eq!(config_maps.len(), 1, "{rules:#?}");
    assert_eq!(
        config_maps[0]["verbs"],
        json!(["get", "list", "watch", "create", "patch", "delete"])
    );
}
