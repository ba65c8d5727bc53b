//! `kubezen.graph`: KRO resource graphs from Python.

// pyo3 hands arguments over as owned values (paths, lists of paths); borrowing them is its
// business, not ours.
#![allow(clippy::needless_pass_by_value)]

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use kubezen::{
    cel::Value,
    graph::{self, Catalog, Diagnostic, ResourceGraph, Severity},
};
use pyo3::{
    create_exception,
    exceptions::{PyImportError, PyKeyError, PyValueError},
    prelude::*,
    types::{PyDict, PyList, PyString},
};

create_exception!(
    kubezen.graph,
    GraphError,
    crate::ZenError,
    "Resource graphs could not be read: a missing file, invalid YAML, no RGD, several where one was asked for."
);
create_exception!(
    kubezen.graph,
    GraphCycleError,
    GraphError,
    "The graph has a cycle, so it has no order; `cycles` lists them as id paths."
);

/// Graphs drawn inline in Jupyter have at most this many resources; larger ones show the
/// summary only (draw them with ``to_dot()`` and Graphviz).
const MAX_DRAWN_RESOURCES: usize = 400;

/// The built-in kinds and the CRDs in `crds` (files or directories).
pub(crate) fn catalog(crds: Option<&[PathBuf]>) -> PyResult<Catalog> {
    let mut catalog = Catalog::builtin();
    for path in crds.unwrap_or_default() {
        catalog
            .add_crds_from_path(path)
            .map_err(|e| load_error(&e))?;
    }
    Ok(catalog)
}

pub(crate) fn load_error(error: &graph::LoadError) -> PyErr {
    let mut message = error.to_string();
    if let Some(hint) = error.hint() {
        message = format!("{message} (hint: {hint})");
    }
    GraphError::new_err(message)
}

fn pick(graphs: Vec<ResourceGraph>, name: Option<&str>, source: &str) -> PyResult<PyGraph> {
    let names: Vec<String> = graphs.iter().map(|g| g.name.clone()).collect();
    let chosen = match name {
        Some(name) => graphs.into_iter().find(|g| g.name == name).ok_or_else(|| {
            GraphError::new_err(format!(
                "{source}: no graph named {name:?} (found: {})",
                names.join(", ")
            ))
        })?,
        None if graphs.len() == 1 => graphs.into_iter().next().expect("one graph"),
        None => {
            return Err(GraphError::new_err(format!(
                "{source} holds {} graphs ({}); pass name=... or use kubezen.graph.load()",
                names.len(),
                names.join(", ")
            )));
        }
    };
    Ok(PyGraph::new(chosen))
}

/// A JSON value as Python objects (dicts, lists, str, int, float, bool, None).
fn json_to_py<'py>(py: Python<'py>, json: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let value = Value::from_json(json).map_err(|e| PyValueError::new_err(e.to_string()))?;
    crate::cel::to_py(py, &value)
}

fn cycle_error(graph: &ResourceGraph) -> PyErr {
    let cycles = graph.cycles();
    let text: Vec<String> = cycles.iter().map(|c| c.join(" -> ")).collect();
    let err = GraphCycleError::new_err(format!(
        "graph {:?} contains a cycle: {}",
        graph.name,
        text.join("; ")
    ));
    Python::attach(|py| {
        let owned: Vec<Vec<String>> = cycles
            .iter()
            .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let _ = err.value(py).setattr("cycles", owned);
    });
    err
}

/// A problem found in a graph.
#[pyclass(frozen, get_all, module = "kubezen.graph", name = "Diagnostic")]
pub struct PyDiagnostic {
    /// ``"error"`` or ``"warning"``.
    severity: &'static str,
    /// What is wrong, worded as KRO words it.
    message: String,
    /// The file the graph came from (``"-"`` for standard input).
    file: String,
    /// The YAML document in the file, from 1.
    document: usize,
    /// The resource's id, or None.
    resource: Option<String>,
    /// The field from the RGD's root, e.g. ``spec.resources[1].template.spec.replicas``.
    path: Option<String>,
    /// How to fix it, or None.
    hint: Option<String>,
}

impl From<&Diagnostic> for PyDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        Self {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            message: d.message.clone(),
            file: d.origin.file.clone(),
            document: d.origin.document,
            resource: d.resource.clone(),
            path: d.path.clone(),
            hint: d.hint.clone(),
        }
    }
}

#[pymethods]
impl PyDiagnostic {
    fn __repr__(&self) -> String {
        format!(
            "Diagnostic(severity={:?}, resource={:?}, path={:?}, message={:?})",
            self.severity, self.resource, self.path, self.message
        )
    }

    fn __str__(&self) -> String {
        let mut text = format!("{}: {}", self.severity, self.message);
        if let Some(path) = &self.path {
            let _ = write!(text, " (at {path})");
        }
        text
    }
}

/// A KRO ResourceGraphDefinition, parsed, validated and ordered.
#[pyclass(frozen, module = "kubezen.graph", name = "Graph")]
pub struct PyGraph(Arc<ResourceGraph>, OnceLock<Vec<Py<PyString>>>);

impl PyGraph {
    fn new(graph: ResourceGraph) -> Self {
        Self(Arc::new(graph), OnceLock::new())
    }

    /// The analysed graph.
    pub(crate) fn graph(&self) -> &ResourceGraph {
        &self.0
    }

    /// The ids as Python strings, made once: orderings then only gather references.
    fn py_ids(&self, py: Python<'_>) -> &[Py<PyString>] {
        self.1.get_or_init(|| {
            self.0
                .resources
                .iter()
                .map(|r| PyString::new(py, &r.id).unbind())
                .collect()
        })
    }
}

#[pymethods]
impl PyGraph {
    /// Reads the graph in ``path`` (a YAML/JSON file, or a directory); ``name`` picks one when
    /// there are several; ``crds`` (files or directories of CRDs) add the schemas of custom
    /// kinds to check templates against.
    #[staticmethod]
    #[pyo3(signature = (path, name=None, crds=None))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        name: Option<&str>,
        crds: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        let source = path.display().to_string();
        let catalog = catalog(crds.as_deref())?;
        let graphs = py
            .detach(|| graph::load_path(&path, &catalog))
            .map_err(|e| load_error(&e))?;
        pick(graphs, name, &source)
    }

    /// Reads the graph in ``text`` (YAML or JSON); ``name`` picks one when there are several.
    #[staticmethod]
    #[pyo3(signature = (text, name=None, crds=None))]
    fn from_yaml(
        py: Python<'_>,
        text: &str,
        name: Option<&str>,
        crds: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        let catalog = catalog(crds.as_deref())?;
        let graphs = py
            .detach(|| graph::parse_str(text, "<yaml>", &catalog))
            .map_err(|e| load_error(&e))?;
        if graphs.is_empty() {
            return Err(GraphError::new_err(
                "<yaml>: no ResourceGraphDefinition (kind: ResourceGraphDefinition, apiVersion: kro.run/v1alpha1) found",
            ));
        }
        pick(graphs, name, "<yaml>")
    }

    /// Reads the ResourceGraphDefinition ``name`` from the cluster of ``kubeconfig`` (what
    /// ``kubectl zen graph inspect rgd/NAME`` reads) and analyses it as a file would be.
    /// Raises :class:`GraphError` when it cannot be read (unreachable, not found, no KRO CRD).
    #[staticmethod]
    #[pyo3(signature = (name, *, kubeconfig=None, context=None, crds=None))]
    fn from_cluster(
        py: Python<'_>,
        name: String,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        crds: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        let catalog = catalog(crds.as_deref())?;
        let options = kubezen::cluster::ClusterOptions {
            kubeconfig,
            context,
            ..kubezen::cluster::ClusterOptions::default()
        };
        let graph = crate::interruptible(py, move |_| {
            crate::with_cluster(&options, GraphError::new_err, |cluster| async move {
                graph::fetch(&cluster, &name, &catalog)
                    .await
                    .map_err(|e| load_error(&e))
            })
        })?;
        Ok(Self::new(graph))
    }

    /// A bare dependency graph: ``{id: [ids it depends on], ...}`` in declaration order.
    #[staticmethod]
    #[pyo3(signature = (dependencies, name="graph"))]
    fn from_dependencies(
        py: Python<'_>,
        dependencies: &Bound<'_, PyDict>,
        name: &str,
    ) -> PyResult<Self> {
        let mut pairs = Vec::with_capacity(dependencies.len());
        for (id, needs) in dependencies.iter() {
            pairs.push((id.extract::<String>()?, needs.extract::<Vec<String>>()?));
        }
        let graph = py.detach(|| ResourceGraph::from_dependencies(name, &pairs));
        Ok(Self::new(graph))
    }

    /// ``metadata.name`` of the RGD.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// The file it was read from.
    #[getter]
    fn file(&self) -> &str {
        &self.0.origin.file
    }

    /// True when no diagnostic is an error.
    #[getter]
    fn valid(&self) -> bool {
        !self.0.has_errors()
    }

    /// The resource ids, in declaration order.
    #[getter]
    fn ids(&self) -> Vec<String> {
        self.0.resources.iter().map(|r| r.id.clone()).collect()
    }

    /// KRO's topological order. Raises :class:`GraphCycleError` on a cycle.
    fn order<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let graph = Arc::clone(&self.0);
        let order = py
            .detach(move || graph.order_positions())
            .ok_or_else(|| cycle_error(&self.0))?;
        let ids = self.py_ids(py);
        PyList::new(py, order.into_iter().map(|n| ids[n].bind(py)))
    }

    /// KRO's apply waves, first to last (deletion runs them backwards). Raises
    /// :class:`GraphCycleError` on a cycle.
    fn waves(&self) -> PyResult<Vec<Vec<String>>> {
        owned_layers(self.0.waves()).ok_or_else(|| cycle_error(&self.0))
    }

    /// Earliest-start levels: level 0 depends on nothing. Raises :class:`GraphCycleError` on a
    /// cycle.
    fn levels(&self) -> PyResult<Vec<Vec<String>>> {
        owned_layers(self.0.levels()).ok_or_else(|| cycle_error(&self.0))
    }

    /// Every cycle as a path of ids that ends where it starts; empty when there is none.
    fn cycles(&self) -> Vec<Vec<String>> {
        owned_layers(Some(self.0.cycles())).unwrap_or_default()
    }

    /// The longest chain of dependencies, first dependency first. Raises
    /// :class:`GraphCycleError` on a cycle.
    fn critical_path(&self) -> PyResult<Vec<String>> {
        self.0
            .critical_path()
            .map(|p| p.into_iter().map(str::to_owned).collect())
            .ok_or_else(|| cycle_error(&self.0))
    }

    /// The ids ``id`` depends on.
    fn dependencies(&self, id: &str) -> PyResult<Vec<String>> {
        self.0
            .resources
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.dependencies.clone())
            .ok_or_else(|| PyKeyError::new_err(id.to_owned()))
    }

    /// The ids that depend on ``id``.
    fn dependents(&self, id: &str) -> PyResult<Vec<String>> {
        if !self.0.resources.iter().any(|r| r.id == id) {
            return Err(PyKeyError::new_err(id.to_owned()));
        }
        Ok(self
            .0
            .dependents(id)
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// Every error and warning, errors first.
    fn diagnostics(&self) -> Vec<PyDiagnostic> {
        self.0.diagnostics.iter().map(PyDiagnostic::from).collect()
    }

    /// Size and shape: ``nodes``, ``edges``, ``depth``, ``widestLevel``, fan-in/out,
    /// expression counts and complexity.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(
            py,
            &serde_json::to_value(&self.0.metrics).unwrap_or_default(),
        )
    }

    /// Everything ``kubectl zen graph inspect -o json`` prints, as a dict.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(
            py,
            &serde_json::to_value(self.0.report()).unwrap_or_default(),
        )
    }

    /// The OpenAPI v3 schema of the instance's ``spec``, as KRO generates it.
    fn spec_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0.schema.spec)
    }

    /// The ``CustomResourceDefinition`` KRO would create for the instance API, as a dict.
    fn instance_crd<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0.instance_crd())
    }

    /// Graphviz DOT.
    fn to_dot(&self) -> String {
        self.0.to_dot()
    }

    /// A Mermaid flowchart.
    fn to_mermaid(&self) -> String {
        self.0.to_mermaid()
    }

    /// A picture of the graph as SVG text.
    fn to_svg(&self) -> String {
        self.0.to_svg()
    }

    /// A ``networkx.DiGraph`` with an edge from each dependency to its dependent and the
    /// node attributes ``kind``, ``api_version`` and ``resource_kind``. Needs networkx.
    fn to_networkx<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let networkx = py.import("networkx").map_err(|_| {
            PyImportError::new_err("to_networkx() needs networkx: pip install networkx")
        })?;
        let digraph = networkx.call_method0("DiGraph")?;
        for resource in &self.0.resources {
            let attributes = PyDict::new(py);
            attributes.set_item("kind", resource.object_kind.as_deref())?;
            attributes.set_item("api_version", resource.api_version.as_deref())?;
            let kind = serde_json::to_value(resource.kind).unwrap_or_default();
            attributes.set_item("resource_kind", kind.as_str())?;
            digraph.call_method("add_node", (&resource.id,), Some(&attributes))?;
        }
        let edges = PyList::empty(py);
        for resource in &self.0.resources {
            for dependency in &resource.dependencies {
                edges.append((dependency, &resource.id))?;
            }
        }
        digraph.call_method1("add_edges_from", (edges,))?;
        Ok(digraph)
    }

    /// Jupyter: a summary, the problems, and the picture.
    fn _repr_html_(&self) -> String {
        let graph = &self.0;
        let m = &graph.metrics;
        let mut html = format!(
            "<div><b>{}</b> &mdash; {} resources, {} dependencies, {} levels, {} expressions; {}</div>",
            escape(&graph.name),
            m.nodes,
            m.edges,
            m.depth,
            m.expressions,
            if graph.has_errors() {
                "<span style=\"color:#c0392b\">invalid</span>"
            } else {
                "<span style=\"color:#27ae60\">valid</span>"
            }
        );
        if !graph.diagnostics.is_empty() {
            html.push_str("<ul>");
            for d in graph.diagnostics.iter().take(20) {
                let colour = if d.severity == Severity::Error {
                    "#c0392b"
                } else {
                    "#b9770e"
                };
                let _ = write!(
                    html,
                    "<li><span style=\"color:{colour}\">{}</span> {} <code>{}</code></li>",
                    if d.severity == Severity::Error {
                        "error"
                    } else {
                        "warning"
                    },
                    escape(&d.message),
                    escape(d.path.as_deref().unwrap_or(""))
                );
            }
            html.push_str("</ul>");
        }
        if graph.resources.len() <= MAX_DRAWN_RESOURCES {
            html.push_str(&graph.to_svg());
        } else {
            let _ = write!(
                html,
                "<div>{} resources are too many to draw here: use to_dot() with Graphviz.</div>",
                graph.resources.len()
            );
        }
        html
    }

    fn __repr__(&self) -> String {
        format!(
            "Graph(name={:?}, resources={}, valid={})",
            self.0.name,
            self.0.resources.len(),
            if self.0.has_errors() { "False" } else { "True" }
        )
    }

    fn __len__(&self) -> usize {
        self.0.resources.len()
    }
}

fn owned_layers(layers: Option<Vec<Vec<&str>>>) -> Option<Vec<Vec<String>>> {
    layers.map(|layers| {
        layers
            .into_iter()
            .map(|l| l.into_iter().map(str::to_owned).collect())
            .collect()
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every graph in ``path`` (a file or a directory).
#[pyfunction]
#[pyo3(signature = (path, crds=None))]
pub fn graph_load(
    py: Python<'_>,
    path: PathBuf,
    crds: Option<Vec<PathBuf>>,
) -> PyResult<Vec<PyGraph>> {
    let catalog = catalog(crds.as_deref())?;
    let graphs = py
        .detach(|| graph::load_path(&path, &catalog))
        .map_err(|e| load_error(&e))?;
    Ok(graphs.into_iter().map(PyGraph::new).collect())
}

/// Every graph in ``text`` (YAML or JSON documents); an empty list when there is none.
#[pyfunction]
#[pyo3(signature = (text, crds=None))]
pub fn graph_loads(
    py: Python<'_>,
    text: &str,
    crds: Option<Vec<PathBuf>>,
) -> PyResult<Vec<PyGraph>> {
    let catalog = catalog(crds.as_deref())?;
    let graphs = py
        .detach(|| graph::parse_str(text, "<yaml>", &catalog))
        .map_err(|e| load_error(&e))?;
    Ok(graphs.into_iter().map(PyGraph::new).collect())
}
