//! Graph analysis against KRO's own orderings and error texts.

use std::fmt::Write as _;

use serde_json::json;

use super::{Catalog, ResourceKind, Severity, parse_str};
use crate::graph::ResourceGraph;

/// An RGD with the given schema spec (YAML) and resources (YAML list items).
fn rgd(spec: &str, resources: &str) -> String {
    format!(
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {{name: test}}\nspec:\n  schema:\n    apiVersion: v1alpha1\n    kind: Test\n    spec:\n{}\n  resources:\n{}\n",
        indent(spec, 6),
        indent(resources, 4)
    )
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(by)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `ConfigMap` resource `id` whose data reads `reads`.
fn config_map(id: &str, reads: &[&str]) -> String {
    let mut out = format!(
        "- id: {id}\n  template:\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {{name: \"${{schema.spec.name}}-{id}\"}}\n    data:\n"
    );
    for read in reads {
        let _ = writeln!(out, "      {read}: \"${{{read}.metadata.name}}\"");
    }
    if reads.is_empty() {
        out.push_str("      none: x\n");
    }
    out
}

fn graph(spec: &str, resources: &str) -> ResourceGraph {
    let text = rgd(spec, resources);
    let mut graphs = parse_str(&text, "test.yaml", &Catalog::builtin())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(graphs.len(), 1);
    graphs.remove(0)
}

fn chain(edges: &[(&str, &[&str])]) -> ResourceGraph {
    let resources: String = edges
        .iter()
        .map(|(id, reads)| config_map(id, reads))
        .collect();
    graph("name: string", &resources)
}

fn errors(graph: &ResourceGraph) -> Vec<String> {
    graph
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect()
}

fn assert_error(graph: &ResourceGraph, expected: &str) {
    let errors = errors(graph);
    assert!(
        errors.iter().any(|e| e == expected),
        "missing {expected:?} in {errors:#?}"
    );
}

#[test]
fn kro_orders_the_earliest_declared_ready_resource_first() {
    // KRO's dag test: A..F, A needs B and C, B and C need D, E needs F and A.
    let graph = chain(&[
        ("a", &["b", "c"]),
        ("b", &["d"]),
        ("c", &["d"]),
        ("d", &[]),
        ("e", &["f", "a"]),
        ("f", &[]),
    ]);
    assert!(errors(&graph).is_empty(), "{:#?}", graph.diagnostics);
    assert_eq!(graph.order().unwrap(), ["d", "b", "c", "a", "f", "e"]);
    // B (declared before D) goes first once both are ready.
    let graph = chain(&[("a", &[]), ("b", &["a", "c"]), ("c", &[]), ("d", &["c"])]);
    assert_eq!(graph.order().unwrap(), ["a", "c", "b", "d"]);
}

#[test]
fn kro_waves_count_from_the_leaves() {
    // KRO's ReverseTopologicalLayers test: B, C need A; D needs B; E alone.
    let graph = chain(&[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b"]),
        ("e", &[]),
    ]);
    assert_eq!(
        graph.waves().unwrap(),
        vec![vec!["a"], vec!["b"], vec!["c", "d", "e"]]
    );
    assert_eq!(
        graph.levels().unwrap(),
        vec![vec!["a", "e"], vec!["b", "c"], vec!["d"]]
    );
    assert_eq!(graph.critical_path().unwrap(), ["a", "b", "d"]);
    assert_eq!(graph.dependents("a"), ["b", "c"]);
}

#[test]
fn the_complex_eks_example_orders_as_kro() {
    let graph = chain(&[
        ("vpc", &[]),
        ("clusterpolicy", &[]),
        ("clusterrole", &["clusterpolicy"]),
        ("subnet1", &["vpc"]),
        ("subnet2", &["vpc"]),
        ("cluster", &["clusterrole", "subnet1", "subnet2"]),
    ]);
    assert_eq!(
        graph.order().unwrap(),
        [
            "vpc",
            "clusterpolicy",
            "clusterrole",
            "subnet1",
            "subnet2",
            "cluster"
        ]
    );
    assert_eq!(
        graph.waves().unwrap(),
        vec![
            vec!["vpc", "clusterpolicy"],
            vec!["clusterrole", "subnet1", "subnet2"],
            vec!["cluster"]
        ]
    );
    let metrics = &graph.metrics;
    assert_eq!(
        (
            metrics.nodes,
            metrics.edges,
            metrics.depth,
            metrics.widest_level
        ),
        (6, 6, 3, 3)
    );
    assert_eq!(
        (metrics.max_fan_in, metrics.max_fan_in_resource.as_deref()),
        (3, Some("cluster"))
    );
    assert_eq!(
        (metrics.max_fan_out, metrics.max_fan_out_resource.as_deref()),
        (2, Some("vpc"))
    );
    assert_eq!(
        graph.resources[5].dependencies,
        ["clusterrole", "subnet1", "subnet2"]
    );
}

#[test]
fn cycles_are_reported_with_their_path() {
    let graph = chain(&[
        ("role1", &["role2"]),
        ("role2", &["role1"]),
        ("x", &["y"]),
        ("y", &["z"]),
        ("z", &["x"]),
    ]);
    assert_eq!(graph.order(), None);
    assert_eq!(
        graph.cycles(),
        vec![vec!["role1", "role2", "role1"], vec!["x", "y", "z", "x"]]
    );
    assert_error(
        &graph,
        "failed to build dependency graph: graph contains a cycle: role1 -> role2 -> role1",
    );
    assert_error(
        &graph,
        "failed to build dependency graph: graph contains a cycle: x -> y -> z -> x",
    );
    assert!(
        graph
            .to_dot()
            .contains("\"role2\" -> \"role1\" [color=red];")
    );
}

#[test]
fn ids_follow_kro_naming_rules() {
    let graph = chain(&[("vpc-1", &[]), ("schema", &[]), ("ok", &[]), ("ok", &[])]);
    assert_error(
        &graph,
        "naming convention violation: id vpc-1 is not a valid KRO resource id: must be lower camelCase",
    );
    assert_error(
        &graph,
        "naming convention violation: id schema is a reserved keyword in KRO",
    );
    assert_error(
        &graph,
        "naming convention violation: found duplicate resource IDs ok",
    );
    let located = graph
        .diagnostics
        .iter()
        .find(|d| d.message.contains("vpc-1"))
        .unwrap();
    assert_eq!(located.path.as_deref(), Some("spec.resources[0].id"));
    assert_eq!(located.resource.as_deref(), Some("vpc-1"));
    assert_eq!(located.origin.file, "test.yaml");
}

#[test]
fn unknown_references_self_references_and_undefined_schema_fields() {
    let graph = graph(
        "name: string\nreplicas: integer | default=1",
        "- id: app\n  template:\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: \"${schema.spec.nmae}\"}\n    spec:\n      replicas: ${schema.spec.replicas}\n      selector: ${databse.spec.selector}\n      paused: ${app.spec.paused}\n",
    );
    assert_error(&graph, "references unknown identifiers: [databse]");
    assert_error(&graph, "self references are not allowed");
    assert_error(
        &graph,
        "failed to compile expression \"schema.spec.nmae\": undefined field 'nmae' (schema.spec.nmae is not in the schema)",
    );
    let unknown = graph
        .diagnostics
        .iter()
        .find(|d| d.message.contains("databse"))
        .unwrap();
    assert_eq!(
        unknown.path.as_deref(),
        Some("spec.resources[0].template.spec.selector")
    );
    assert!(
        unknown.hint.as_deref().unwrap().contains("app"),
        "the hint names the known ids"
    );
    // `name` is never read (the typo), so it is unused; replicas is read.
    let warnings: Vec<&str> = graph
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        warnings,
        ["schema field spec.name is never read by any expression"]
    );
}

#[test]
fn ready_when_may_read_only_its_own_resource_and_must_be_boolean() {
    let graph = graph(
        "name: string\nenabled: boolean\nlabel: string",
        "- id: db\n  template: {apiVersion: v1, kind: Service, metadata: {name: \"${schema.spec.name}\"}}\n  readyWhen:\n    - ${db.spec.clusterIP != \"\"}\n    - ${schema.spec.enabled}\n    - ${web.metadata.name == \"x\"}\n    - ${db.spec.ports.size()}\n- id: web\n  includeWhen: [\"${schema.spec.enabled}\", \"${schema.spec.label}\", \"${db.spec.clusterIP != ''}\"]\n  template: {apiVersion: v1, kind: Service, metadata: {name: web}}\n",
    );
    assert_error(
        &graph,
        "resource \"db\" readyWhen: references unknown identifiers: [schema]",
    );
    assert_error(
        &graph,
        "resource \"db\" readyWhen: references unknown identifiers: [web]",
    );
    assert_error(
        &graph,
        "includeWhen expression \"schema.spec.label\" in resource \"web\" must return bool or optional_type(bool), but returns \"string\"",
    );
    // readyWhen makes no edge, includeWhen does.
    assert_eq!(graph.resources[0].dependencies, Vec::<String>::new());
    assert_eq!(graph.resources[1].dependencies, ["db"]);
    assert_eq!(errors(&graph).len(), 3, "{:#?}", errors(&graph));
}

#[test]
fn conditions_must_be_standalone_expressions() {
    let graph = graph(
        "name: string",
        "- id: a\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n  readyWhen: [\"invalid ! syntax\", \"${a.data.x}-${a.data.y}\"]\n",
    );
    let standalone =
        "failed to parse readyWhen expressions: only standalone expressions are allowed";
    assert_eq!(
        errors(&graph).iter().filter(|e| *e == standalone).count(),
        2
    );
}

#[test]
fn template_and_external_ref_rules() {
    let graph = graph(
        "name: string",
        "- id: none\n- id: both\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n  externalRef: {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- id: shapeless\n  template: {kind: 3, metadata: {labels: {kro.run/owned: x}}}\n- id: cluster\n  template: {apiVersion: v1, kind: Namespace, metadata: {name: x, namespace: y}}\n- id: ext\n  externalRef: {apiVersion: v1, kind: ConfigMap, metadata: {namespace: x}}\n",
    );
    assert_error(
        &graph,
        "resource \"none\": exactly one of template or externalRef must be provided",
    );
    assert_error(
        &graph,
        "resource \"both\": cannot use externalRef with template",
    );
    assert_error(
        &graph,
        "resource shapeless is not a valid Kubernetes object: apiVersion field not found",
    );
    assert_error(
        &graph,
        "resource shapeless is not a valid Kubernetes object: kind field is not a string",
    );
    assert_error(&graph, "resource shapeless: metadata.name field not found");
    assert_error(
        &graph,
        "invalid label for resource \"shapeless\". labels with prefix \"kro.run/\" are reserved for internal use",
    );
    assert_error(
        &graph,
        "resource \"cluster\" is cluster-scoped and must not set metadata.namespace",
    );
    assert_error(
        &graph,
        "resource \"ext\": externalRef needs exactly one of metadata.name or metadata.selector",
    );
    assert_eq!(graph.resources[4].kind, ResourceKind::External);
}

#[test]
fn for_each_rules() {
    let graph = graph(
        "name: string\nregions: \"[]string\"\ntiers: \"[]string\"",
        "- id: pods\n  forEach:\n    - region: ${schema.spec.regions}\n    - tier: ${schema.spec.tiers}\n  template: {apiVersion: v1, kind: Pod, metadata: {name: \"${region}-pod\"}}\n- id: badPod\n  forEach:\n    - element: ${schema.spec.regions}\n    - derived: ${element}\n    - Bad: ${schema.spec.tiers}\n    - pods: ${schema.spec.tiers}\n  template: {apiVersion: v1, kind: Pod, metadata: {name: \"${element}-${derived}-${Bad}-${pods}\"}}\n  readyWhen: [\"${each.status.phase == 'Running'}\", \"${badPod.all(p, true)}\"]\n",
    );
    assert_error(
        &graph,
        "node \"pods\": all forEach dimensions must be used to produce a unique resource identity, missing: [tier]",
    );
    assert_error(
        &graph,
        "node \"badPod\": forEach iterator \"derived\" cannot reference other iterators [element] - forEach iterators are independent (cartesian product)",
    );
    assert_error(
        &graph,
        "resource \"badPod\": forEach iterator name \"Bad\" is not valid: must be lowerCamelCase",
    );
    assert_error(
        &graph,
        "resource \"badPod\": forEach iterator name \"pods\" conflicts with resource ID",
    );
    assert_error(
        &graph,
        "resource \"badPod\" readyWhen: references unknown identifiers: [badPod]",
    );
    assert_eq!(graph.resources[0].kind, ResourceKind::Collection);
    assert_eq!(
        graph.resources[0].for_each[1].expression,
        "schema.spec.tiers"
    );
}

#[test]
fn status_fields_must_be_expressions_over_the_graph() {
    let text = rgd("name: string", &config_map("cm", &[]))
        .replace(
            "    spec:\n      name: string",
            "    spec:\n      name: string\n    status:\n      name: ${cm.metadata.name}\n      copy: ${schema.spec.name}\n      ready: ${true}\n      plain: string\n      nested: {count: \"${size(cm.data)}\", url: \"http://${cm.metadata.name}\"}\n      conditions: [\"${runtime.newCondition('Ok', true)}\"]",
        );
    let graph = parse_str(&text, "s.yaml", &Catalog::builtin())
        .unwrap()
        .remove(0);
    assert_error(
        &graph,
        "failed to create instance node: instance status field must refer to a resource or schema: status.ready",
    );
    assert_error(
        &graph,
        "failed to build instance status schema: status fields without expressions are not supported: [plain]",
    );
    assert_eq!(errors(&graph).len(), 2, "{:#?}", errors(&graph));
    let status = &graph.schema.status["properties"];
    assert_eq!(status["copy"], json!({"type": "string"}));
    assert_eq!(
        status["nested"]["properties"]["url"],
        json!({"type": "string"})
    );
    assert_eq!(status["ready"], json!({"type": "boolean"}));
    // ConfigMap's metadata.name is a string, from the built-in schema.
    assert_eq!(status["name"], json!({"type": "string"}));
    // Status never makes edges.
    assert!(graph.resources[0].dependencies.is_empty());
    let crd = graph.instance_crd();
    assert_eq!(crd["metadata"]["name"], "tests.kro.run");
    let properties = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"];
    assert_eq!(properties["state"], json!({"type": "string"}));
    assert_eq!(properties["conditions"]["type"], "array");
}

#[test]
fn string_templates_need_strings() {
    let graph = graph(
        "name: string\nport: integer",
        "- id: svc\n  template: {apiVersion: v1, kind: Service, metadata: {name: \"${schema.spec.name}-${schema.spec.port}\"}}\n",
    );
    assert_error(
        &graph,
        "failed to compile template expression \"(schema.spec.name) + \\\"-\\\" + (schema.spec.port)\" at path \"spec.resources[0].template.metadata.name\": found no matching overload for '_+_' applied to '(string, int)'",
    );
}

#[test]
fn schema_errors_kind_and_version() {
    let text = rgd("name: strin", &config_map("a", &[]))
        .replace("kind: Test", "kind: test")
        .replace("apiVersion: v1alpha1", "apiVersion: kro.run/v1alpha1");
    let graph = parse_str(&text, "x.yaml", &Catalog::builtin())
        .unwrap()
        .remove(0);
    assert_error(
        &graph,
        "naming convention violation: kind 'test' is not a valid KRO kind name: must be UpperCamelCase",
    );
    assert_error(
        &graph,
        "spec.schema.apiVersion \"kro.run/v1alpha1\" must match ^v[0-9]+(alpha[0-9]+|beta[0-9]+)?$",
    );
    assert_error(
        &graph,
        "failed to build OpenAPI schema for instance: unknown type: strin",
    );
}

#[test]
fn syntax_errors_name_the_expression_and_hint_at_single_quotes() {
    let graph = graph(
        "name: string",
        "- id: a\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {x: \"${schema.spec.name + }\", y: \"${'}'}\"}}\n",
    );
    let errors = errors(&graph);
    assert!(
        errors.iter().any(|e| e
            .starts_with("failed to compile template expression \"schema.spec.name + \" at 1:")),
        "{errors:#?}"
    );
    let quote = graph
        .diagnostics
        .iter()
        .find(|d| d.message.contains("\"'\""))
        .unwrap();
    assert!(quote.hint.as_deref().unwrap().contains("single-quoted"));
}

#[test]
fn qualified_functions_and_comprehensions_are_not_resources() {
    let graph = graph(
        "name: string\nitems: \"[]string\"",
        "- id: a\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: \"${schema.spec.name}\"}, data: {x: \"${json.marshal(schema.spec.items.map(i, i + 'x'))}\", r: \"${random.seededString(8, schema.spec.name)}\"}}\n",
    );
    assert!(errors(&graph).is_empty(), "{:#?}", errors(&graph));
}

#[test]
fn warnings_for_large_graphs_and_complex_expressions() {
    let mut resources: String = (0..30).map(|n| config_map(&format!("r{n}"), &[])).collect();
    resources.push_str("- id: heavy\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: heavy}, data: {x: \"${string(r0.data.all(a, r1.data.all(b, r2.data.exists(c, a == b && b == c))))}\"}}\n");
    let graph = graph("name: string", &resources);
    let warnings: Vec<&str> = graph
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("the graph has 31 resources (30 or more)")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("is complex (score")),
        "{warnings:#?}"
    );
    assert_eq!(graph.metrics.complex_expressions, 1);
    assert_eq!(graph.metrics.expressions, 31);
}

#[test]
fn exports_name_every_resource_and_edge() {
    let graph = chain(&[("a", &[]), ("b", &["a"])]);
    let dot = graph.to_dot();
    assert!(dot.starts_with("digraph \"test\" {"));
    assert!(dot.contains("\"a\" -> \"b\";"));
    let mermaid = graph.to_mermaid();
    assert!(mermaid.contains("r0[\"a<br/>ConfigMap\"]"));
    assert!(mermaid.contains("r0 --> r1"));
    let report = serde_json::to_value(graph.report()).unwrap();
    assert_eq!(report["order"], json!(["a", "b"]));
    assert_eq!(report["valid"], json!(true));
    assert_eq!(report["instance"], json!("kro.run/v1alpha1, Test"));
}

#[test]
fn documents_of_other_kinds_are_skipped_and_bad_yaml_is_an_error() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{}",
        rgd("name: string", &config_map("a", &[]))
    );
    let graphs = parse_str(&text, "multi.yaml", &Catalog::builtin()).unwrap();
    assert_eq!(graphs.len(), 1);
    assert_eq!(graphs[0].origin.document, 2);
    assert_eq!(graphs[0].origin.to_string(), "multi.yaml (document 2)");
    let error = parse_str("a: [1, 2\nb: }", "bad.yaml", &Catalog::builtin()).unwrap_err();
    assert!(
        error.to_string().starts_with("bad.yaml: invalid YAML:"),
        "{error}"
    );
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_str(&deep, "deep.yaml", &Catalog::builtin()).is_err());
}

#[test]
fn the_picture_places_resources_by_level_and_escapes_text() {
    let graph = chain(&[("a", &[]), ("b", &["a"]), ("c", &["a"])]);
    let svg = graph.to_svg();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<g><title>").count(), 3);
    assert_eq!(svg.matches("marker-end=\"url(#arrow)\"").count(), 2);
    // a in the first column, b and c in the second, one above the other.
    assert!(svg.contains("<rect x=\"12\" y=\"12\""));
    assert!(svg.contains("<rect x=\"262\" y=\"12\""));
    assert!(svg.contains("<rect x=\"262\" y=\"66\""));
    let cyclic = chain(&[("x", &["y"]), ("y", &["x"])]);
    assert_eq!(cyclic.to_svg().matches("url(#arrow-red)").count(), 2);
}

#[test]
fn bare_dependency_graphs_order_like_rgds() {
    let deps = |pairs: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(id, d)| {
                (
                    (*id).to_owned(),
                    d.iter().map(|s| (*s).to_owned()).collect(),
                )
            })
            .collect()
    };
    let graph = ResourceGraph::from_dependencies(
        "model",
        &deps(&[
            ("a", &["b", "c"]),
            ("b", &["d"]),
            ("c", &["d"]),
            ("d", &[]),
            ("e", &["f", "a"]),
            ("f", &[]),
        ]),
    );
    assert_eq!(graph.order().unwrap(), ["d", "b", "c", "a", "f", "e"]);
    assert_eq!(graph.metrics.edges, 6);
    let broken = ResourceGraph::from_dependencies("bad", &deps(&[("a", &["a", "zz"]), ("a", &[])]));
    let messages = errors(&broken);
    assert!(messages.contains(&"self references are not allowed".to_owned()));
    assert!(messages.contains(&"references unknown identifiers: [zz]".to_owned()));
    assert!(messages.contains(&"found duplicate resource IDs a".to_owned()));
}

#[test]
fn templates_are_checked_against_their_kinds_schema() {
    let graph = graph(
        "name: string\nreplicas: integer\nenabled: boolean",
        r#"- id: app
  template:
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: "${schema.spec.name}", labels: {tier: web}}
    spec:
      replicas: ${schema.spec.name}
      replcias: 3
      paused: "yes"
      minReadySeconds: 1.5
      selector: {matchLabels: {app: x}}
      template:
        metadata: {labels: {app: x}}
        spec:
          containers:
            - name: app
              image: "${schema.spec.name}:${schema.spec.replicas}"
              ports: [{containerPort: "${schema.spec.replicas}"}]
          volumes: [{name: v, secret: {secretName: s, defaultMode: 0400}}]
          nodeSelector: {gpu: "${schema.spec.enabled}"}
- id: svc
  template:
    apiVersion: v1
    kind: Service
    metadata: {name: "${app.metadata.name}"}
    spec:
      ports: [{port: "${app.spec.replicas}", targetPort: "${app.metadata.name}", name: "${app.spec.replicas}"}]
"#,
    );
    for expected in [
        "type mismatch in resource \"app\" at path \"spec.replicas\": expression \"schema.spec.name\" returns type \"string\" but expected \"int\"",
        "error getting field schema for path spec.replcias: schema not found for field replcias",
        "expected boolean type for path spec.paused, got string",
        "expected integer type for path spec.minReadySeconds, got number",
        "type mismatch in resource \"app\" at path \"spec.template.spec.nodeSelector.gpu\": expression \"schema.spec.enabled\" returns type \"bool\" but expected \"string\"",
        "type mismatch in resource \"svc\" at path \"spec.ports[0].name\": expression \"app.spec.replicas\" returns type \"int\" but expected \"string\"",
    ] {
        assert_error(&graph, expected);
    }
    // The string template mixes a string and an int: KRO's concatenation error.
    assert!(
        errors(&graph)
            .iter()
            .any(|e| e.contains("found no matching overload for '_+_' applied to '(string, int)'"))
    );
    // int-or-string takes both; an int into an int field is fine; 0400 is YAML 1.1 octal.
    assert_eq!(errors(&graph).len(), 7, "{:#?}", errors(&graph));
}

#[test]
fn custom_kinds_are_checked_once_their_crd_is_known() {
    let text = rgd(
        "name: string",
        "- id: w\n  template: {apiVersion: example.com/v1, kind: Widget, metadata: {name: x}, spec: {size: big, colour: red}}\n",
    );
    let unknown = parse_str(&text, "w.yaml", &Catalog::builtin())
        .unwrap()
        .remove(0);
    assert!(errors(&unknown).is_empty(), "unknown kinds are not judged");
    let mut catalog = Catalog::builtin();
    catalog
        .add_crd(&json!({"kind": "CustomResourceDefinition", "spec": {"group": "example.com", "names": {"kind": "Widget"},
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}))
        .unwrap();
    let checked = parse_str(&text, "w.yaml", &catalog).unwrap().remove(0);
    assert_error(
        &checked,
        "expected integer type for path spec.size, got string",
    );
    assert_error(
        &checked,
        "error getting field schema for path spec.colour: schema not found for field colour",
    );
}

#[test]
fn crd_templates_take_expressions_in_metadata_only() {
    let graph = graph(
        "name: string",
        "- id: crd\n  template: {apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: \"${schema.spec.name}.example.com\"}, spec: {group: \"${schema.spec.name}\"}}\n",
    );
    let errors = errors(&graph);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("CEL expressions in CRDs are only supported for metadata fields, found in path \"spec.resources[0].template.spec.group\""));
}

#[test]
fn conditions_and_templates_know_the_types_of_resource_fields() {
    let graph = graph(
        "name: string",
        "- id: db\n  template: {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: db}, spec: {selector: {matchLabels: {a: b}}, serviceName: db, template: {metadata: {labels: {a: b}}}}}\n  readyWhen: [\"${db.status.readyReplicas}\", \"${db.status.readyReplicas > 0}\"]\n- id: app\n  template: {apiVersion: v1, kind: ConfigMap, metadata: {name: \"app-${db.spec.replicas}\"}}\n",
    );
    assert_error(
        &graph,
        "readyWhen expression \"db.status.readyReplicas\" in resource \"db\" must return bool or optional_type(bool), but returns \"int\"",
    );
    assert!(
        errors(&graph)
            .iter()
            .any(|e| e.ends_with("applied to '(string, int)'")),
        "{:#?}",
        errors(&graph)
    );
    assert_eq!(errors(&graph).len(), 2, "{:#?}", errors(&graph));
}

#[test]
fn status_types_come_from_resource_schemas_too() {
    let text = rgd(
        "name: string",
        "- id: app\n  template: {apiVersion: apps/v1, kind: Deployment, metadata: {name: app}, spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}}}}\n",
    )
    .replace(
        "    spec:\n      name: string",
        "    spec:\n      name: string\n    status:\n      available: ${app.status.availableReplicas}\n      selector: ${app.spec.selector}",
    );
    let graph = parse_str(&text, "s.yaml", &Catalog::builtin())
        .unwrap()
        .remove(0);
    let status = &graph.schema.status["properties"];
    assert_eq!(
        status["available"],
        json!({"type": "integer", "format": "int32"})
    );
    assert_eq!(
        status["selector"],
        json!({"x-kubernetes-preserve-unknown-fields": true})
    );
}
