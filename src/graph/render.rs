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
        for (n, resource) in self.resources.iter().enumerate() {
            let arrow = if resource.include_when.is_empty() {
                "-->"
            } else {
                "-.->"
            };
            for d in self.dag.dependencies(n) {
                let _ = writeln!(out, "  r{d} {arrow} r{n}");
            }
        }
        out
    }

    /// A picture of the graph as SVG, laid out by start level (left to right) in declaration
    /// order (top to bottom), arrows from dependency to dependent. A graph with a cycle has no
    /// levels; its resources stand in one column with the cycle's arrows in red.
    #[must_use]
    pub fn to_svg(&self) -> String {
        const WIDTH: usize = 180;
        const HEIGHT: usize = 38;
        const COLUMN: usize = WIDTH + 70;
        const ROW: usize = HEIGHT + 16;
        const MARGIN: usize = 12;
        let levels = self
            .dag
            .levels()
            .unwrap_or_else(|| vec![(0..self.resources.len()).collect()]);
        let mut place = vec![(0, 0); self.resources.len()];
        for (column, level) in levels.iter().enumerate() {
            for (row, node) in level.iter().enumerate() {
                place[*node] = (MARGIN + column * COLUMN, MARGIN + row * ROW);
            }
        }
        let tallest = levels.iter().map(Vec::len).max().unwrap_or(0);
        let (width, height) = (
            2 * MARGIN + levels.len().saturating_sub(1) * COLUMN + WIDTH,
            2 * MARGIN + tallest.saturating_sub(1) * ROW + HEIGHT,
        );
        let mut out = String::with_capacity(400 * self.resources.len() + 600);
        svg_header(&mut out, width, height);
        let cyclic = self.cycle_edges();
        for (node, resource) in self.resources.iter().enumerate() {
            for dependency in self.dag.dependencies(node) {
                let (x1, y1) = (
                    place[dependency].0 + WIDTH,
                    place[dependency].1 + HEIGHT / 2,
                );
                let (x2, y2) = (place[node].0, place[node].1 + HEIGHT / 2);
                let red = cyclic
                    .contains(&(resource.id.as_str(), self.resources[dependency].id.as_str()));
                let (colour, marker) = if red {
                    ("#c0392b", "arrow-red")
                } else {
                    ("#888", "arrow")
                };
                let middle = x1.midpoint(x2);
                let dash = if resource.include_when.is_empty() {
                    ""
                } else {
                    " stroke-dasharray=\"4 3\""
                };
                // An edge that skips levels runs behind the boxes between: fainter, so the
                // edges between neighbouring levels read first.
                let faint = if x2 > x1 + COLUMN - WIDTH && !red {
                    " stroke-opacity=\"0.3\""
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "<path d=\"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.3\"{dash}{faint} marker-end=\"url(#{marker})\"/>"
                );
            }
        }
        let errors: Vec<&str> = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == super::Severity::Error)
            .filter_map(|d| d.resource.as_deref())
            .collect();
        for (node, resource) in self.resources.iter().enumerate() {
            let (x, y) = place[node];
            let stroke = if errors.contains(&resource.id.as_str()) {
                "#c0392b"
            } else {
                "#34495e"
            };
            let dash = match resource.kind {
                ResourceKind::External => " stroke-dasharray=\"5 3\"",
                _ if !resource.include_when.is_empty() => " stroke-dasharray=\"2 2\"",
                _ => "",
            };
            if resource.kind == ResourceKind::Collection {
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"6\" fill=\"#eef2f7\" stroke=\"{stroke}\"/>",
                    x + 3,
                    y + 3
                );
            }
            let _ = writeln!(
                out,
                "<g><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"6\" fill=\"#f8fafc\" stroke=\"{stroke}\" stroke-width=\"1.4\"{dash}/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\" fill=\"#1f2d3d\">{}</text>\
                 <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#6b7b8c\">{}</text></g>",
                xml(&format!("{} ({})", resource.id, resource.object_label())),
                x + 8,
                y + 15,
                xml(&clip(&resource.id, 24)),
                x + 8,
                y + 30,
                xml(&clip(&resource.object_label(), 30)),
            );
        }
        out.push_str("</svg>\n");
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

/// A DOT quoted id: DOT takes the escapes of a CEL string literal (`\"`, `\\`, `\n`).
fn dot_id(text: &str) -> String {
    super::template::quote(text)
}

/// Text safe inside a Mermaid quoted label.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect()
}

/// The opening of an SVG picture with the arrow heads its edges use.
fn svg_header(out: &mut String, width: usize, height: usize) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\">\n\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker>\
             <marker id=\"arrow-red\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#c0392b\"/></marker></defs>\n"
    );
}

/// Text safe inside XML.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `chars` characters, with an ellipsis when cut.
fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars - 1).collect();
        cut.push('…');
        cut
    }
}
