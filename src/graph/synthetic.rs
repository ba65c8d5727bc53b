//! Synthetic resource graphs of any size, for benchmarks and scaling studies.

use std::fmt::Write as _;

/// A valid RGD of `resources` config maps, as YAML, shaped like real graphs: each resource
/// reads the name of a parent a quarter of its position back (a wide tree, depth ~log4 n),
/// every third also reads its predecessor, and every tenth has a conditional expression, so
/// there are ~2.1 expressions per resource and depth grows slowly with size.
///
/// ```
/// let yaml = kubezen::graph::synthetic_rgd(100);
/// let graph = &kubezen::graph::parse_str(&yaml, "synthetic", &kubezen::graph::Catalog::builtin())?[0];
/// assert!(!graph.has_errors());
/// assert_eq!(graph.resources.len(), 100);
/// # Ok::<(), kubezen::graph::LoadError>(())
/// ```
#[must_use]
pub fn synthetic_rgd(resources: usize) -> String {
    let mut out = String::with_capacity(300 * resources + 400);
    out.push_str(
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata:\n  name: synthetic\nspec:\n  schema:\n    apiVersion: v1alpha1\n    kind: Synthetic\n    spec:\n      name: string | required=true\n    status:\n      first: ${r0.metadata.name}\n  resources:\n",
    );
    for i in 0..resources {
        let _ = write!(
            out,
            "    - id: r{i}\n      template:\n        apiVersion: v1\n        kind: ConfigMap\n        metadata:\n          name: ${{schema.spec.name}}-r{i}\n        data:\n"
        );
        if i > 0 {
            let parent = (i - 1) / 4;
            let _ = writeln!(out, "          parent: ${{r{parent}.metadata.name}}");
            if i % 3 == 0 {
                let _ = writeln!(out, "          previous: ${{r{}.metadata.name}}", i - 1);
            }
            if i % 10 == 0 {
                let _ = writeln!(
                    out,
                    "          mode: \"${{has(r{parent}.data.mode) ? r{parent}.data.mode : 'default'}}\""
                );
            }
        } else {
            out.push_str("          root: \"true\"\n");
        }
    }
    out
}
