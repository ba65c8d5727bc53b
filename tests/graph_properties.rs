//! Property tests of resource graphs: hostile text never panics, and on random graphs the
//! order, waves, levels, critical path and cycles keep their definitions.

use std::collections::BTreeSet;

use kubezen::graph::{Catalog, ResourceGraph, parse_str};
use proptest::prelude::*;

/// Graphs of up to 40 resources; `back` allows edges to later resources (cycles).
fn graph(back: bool) -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    (1_usize..40).prop_flat_map(move |n| {
        proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n).prop_map(move |needs| {
            needs
                .into_iter()
                .enumerate()
                .map(|(i, targets)| {
                    let deps: BTreeSet<String> = targets
                        .into_iter()
                        .filter(|t| if back { *t != i } else { *t < i })
                        .map(|t| format!("r{t}"))
                        .collect();
                    (format!("r{i}"), deps.into_iter().collect())
                })
                .collect()
        })
    })
}

fn position(graph: &ResourceGraph, id: &str) -> usize {
    graph.resources.iter().position(|r| r.id == id).unwrap()
}

/// The reference order: repeatedly take the first-declared resource whose dependencies are
/// all placed.
fn reference_order(deps: &[(String, Vec<String>)]) -> Option<Vec<String>> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < deps.len() {
        let next = deps.iter().find(|(id, needs)| {
            !placed.contains(id.as_str()) && needs.iter().all(|n| placed.contains(n.as_str()))
        })?;
        placed.insert(&next.0);
        order.push(next.0.clone());
    }
    Some(order)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_an_error_or_a_result(text in "\\PC{0,400}") {
        let _ = parse_str(&text, "fuzz", &Catalog::builtin());
    }

    #[test]
    fn any_field_text_and_schema_text_is_analysed_without_panic(
        field in "[a-z.${}\"'\\\\ +()\\[\\]0-9]{0,60}",
        schema in "[a-z\\[\\]|=\"{} ]{0,40}",
    ) {
        let rgd = serde_json::json!({
            "apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition",
            "metadata": {"name": "p"},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "P", "spec": {"f": schema}},
                     "resources": [
                        {"id": "a", "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": field}}},
                        {"id": "b", "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${a.metadata.name}"}}}]}
        });
        let text = serde_json::to_string(&rgd).unwrap();
        let graph = parse_str(&text, "p.json", &Catalog::builtin()).unwrap().remove(0);
        prop_assert_eq!(&graph.resources[1].dependencies, &vec!["a".to_owned()]);
    }

    #[test]
    fn orders_waves_and_levels_keep_their_definitions(deps in graph(false)) {
        let graph = ResourceGraph::from_dependencies("p", &deps);
        prop_assert!(!graph.has_errors());
        let order: Vec<String> = graph.order().unwrap().into_iter().map(str::to_owned).collect();
        prop_assert_eq!(Some(order), reference_order(&deps));

        let waves = graph.waves().unwrap();
        let levels = graph.levels().unwrap();
        let mut wave = vec![0; deps.len()];
        let mut level = vec![0; deps.len()];
        for (w, ids) in waves.iter().enumerate() {
            for id in ids { wave[position(&graph, id)] = w; }
        }
        for (l, ids) in levels.iter().enumerate() {
            for id in ids { level[position(&graph, id)] = l; }
        }
        for (i, (_, needs)) in deps.iter().enumerate() {
            // Earliest start: one after the latest dependency.
            let latest = needs.iter().map(|n| level[position(&graph, n)] + 1).max().unwrap_or(0);
            prop_assert_eq!(level[i], latest);
            for need in needs {
                prop_assert!(wave[position(&graph, need)] < wave[i]);
            }
            // As late as possible: right before the earliest dependent, or last.
            let dependents = graph.dependents(&deps[i].0);
            let expected = dependents.iter().map(|d| wave[position(&graph, d)] - 1).min().unwrap_or(waves.len() - 1);
            prop_assert_eq!(wave[i], expected);
        }
        let path = graph.critical_path().unwrap();
        prop_assert_eq!(path.len(), levels.len());
        for pair in path.windows(2) {
            prop_assert!(graph.resources[position(&graph, pair[1])].dependencies.contains(&pair[0].to_owned()));
        }
        prop_assert!(graph.cycles().is_empty());
    }

    #[test]
    fn cycles_are_found_exactly_when_there_is_no_order(deps in graph(true)) {
        let graph = ResourceGraph::from_dependencies("p", &deps);
        let cyclic = reference_order(&deps).is_none();
        prop_assert_eq!(graph.order().is_none(), cyclic);
        prop_assert_eq!(!graph.cycles().is_empty(), cyclic);
        for cycle in graph.cycles() {
            prop_assert_eq!(cycle.first(), cycle.last());
            for pair in cycle.windows(2) {
                let from = &deps[position(&graph, pair[0])].1;
                prop_assert!(from.contains(&pair[1].to_owned()), "{} does not depend on {}", pair[0], pair[1]);
            }
        }
    }
}
