//! A graph as a report (JSON/YAML), as Graphviz DOT and as a Mermaid flowchart.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Diagnostic, Metrics, ResourceGraph, ResourceKind};

/// Everything known about a graph, in one serialisable value: what `graph inspect -o json`
/// prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphReport<'g> {
    /// `metadata.name`.
    pub name: &'g str,
    /// The file, with `#document` when not the first.
    pub origin: String,
    /// `group/version, Kind` of the instance API.
    pub instance: String,
    /// Whether any diagnostic is an error.
    pub valid: bool,
    /// Resources with their kind and dependencies, in declaration order.
    pub resources: Vec<ResourceSummary<'g>>,
    /// KRO's topological order; absent when there is a cycle.
    pub order: Option<Vec<&'g str>>,
    /// KRO's apply waves; absent when there is a cycle.
    pub waves: Option<Vec<Vec<&'g str>>>,
    /// Earliest-start levels; absent when there is a cycle.
    pub levels: Option<Vec<Vec<&'g str>>>,
    /// Every cycle, as paths.
    pub cycles: Vec<Vec<&'g str>>,
    /// The longest dependency chain; absent when there is a cycle.
    pub critical_path: Option<Vec<&'g str>>,
    /// Size and shape.
    pub metrics: &'g Metrics,
    /// Errors and warnings.
    pub diagnostics: &'g [Diagnostic],
}

/// One resource in a [`GraphReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary<'g> {
    /// Its id.
    pub id: &'g str,
    /// `apps/v1, Deployment`, when the object says.
    pub object: String,
    /// Template, collection or external.
    pub kind: ResourceKind,
    /// Ids it depends on.
    pub dependencies: &'g [String],
    /// Expressions in its template.
    pub expressions: usize,
    /// Whether it has includeWhen conditions.
    pub conditional: bool,
}

impl ResourceGraph {
    /// The graph as one serialisable report.
    #[must_use]
    pub fn report(&self) -> GraphReport<'_> {
        GraphReport {
            name: &self.name,
            origin: self.origin.to_string(),
            instance: format!(
                "{}/{}, {}",
                self.schema.group, self.schema.api_version, self.schema.kind
            ),
            valid: !self.has_errors(),
            resources: self
                .resources
                .iter()
                .map(|r| ResourceSummary {
                    id: &r.id,
                    object: r.object_label(),
                    kind: r.kind,
                    dependencies: &r.dependencies,
                    expressions: r.fields.iter().map(|f| f.expressions.len()).sum(),
                    conditional: !r.include_when.is_empty(),
                })
                .collect(),
            order: self.order(),
            waves: self.waves(),
            levels: self.levels(),
            cycles: self.cycles(),
            critical_path: self.critical_path(),
            metrics: &self.metrics,
            diagnostics: &self.diagnostics,
        }
    }

    /// Graphviz DOT: one box per resource (dashed for external references, stacked for
    /// collections, dotted outline when conditional), arrows from each dependency to what
    /// depends on it, cycle edges in red.
    #[must_use]
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", dot_id(&self.name));
        out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
        let cyclic = self.cycle_edges();
        for resource in &self.resources {
            let mut style = vec!["rounded"];
            if resource.kind == ResourceKind::External {
                style.push("dashed");
            } else if !resource.include_when.is_empty() {
                style.push("dotted");
            }
            let shape = if resource.kind == ResourceKind::Collection {
                ", peripheries=2"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} [label={}, style=\"{}\"{shape}];",
                dot_id(&resource.id),
                dot_id(&format!(
                    "{}\n{}",
                    resource.id,
                    resource.object_kind.as_deref().unwrap_or("?")
                )),
                style.join(",")
            );
        }
        for resource in &self.resources {
            for dependency in &resource.dependencies {
                let colour = if cyclic.contains(&(resource.id.as_str(), dependency.as_str())) {
                    " [color=red]"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {} -> {}{colour};",
                    dot_id(dependency),
                    dot_id(&resource.id)
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart, left to right, arrows from dependency to dependent.
    #[must_use]
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        // Mermaid ids must be plain; resources are numbered and labelled.
        for (n, resource) in self.resources.iter().enumerate() {
            let label = mermaid_text(&format!(
                "{}<br/>{}",
                resource.id,
                resource.object_kind.as_deref().unwrap_or("?")
            ));
            let (open, close) = match resource.kind {
                ResourceKind::External => ("[/", "/]"),
                ResourceKind::Collection => ("[[", "]]"),
                ResourceKind::Template => ("[", "]"),
            };
            let _ = writeln!(out, "  r{n}{open}\"{label}\"{close}");
        }
        let position = |id: &str| self.resources.iter().position(|r| r.id == id);
        for (n, resource) in self.resources.iter().enumerate() {
            for dependency in &resource.dependencies {
                if let Some(d) = position(dependency) {
                    let arrow = if resource.include_when.is_empty() {
                        "-->"
                    } else {
                        "-.->"
                    };
                    let _ = writeln!(out, "  r{d} {arrow} r{n}");
                }
            }
        }
        out
    }

    fn cycle_edges(&self) -> Vec<(&str, &str)> {
        self.cycles()
            .into_iter()
            .flat_map(|cycle| cycle.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>())
            .collect()
    }
}

impl super::Resource {
    /// `apps/v1 Deployment`, or what is known of it.
    fn object_label(&self) -> String {
        match (&self.api_version, &self.object_kind) {
            (Some(version), Some(kind)) => format!("{version} {kind}"),
            (None, Some(kind)) => kind.clone(),
            _ => "?".to_owned(),
        }
    }
}

/// A DOT quoted id.
fn dot_id(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a Mermaid quoted label.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect()
}
