//! A graph compiled for rendering: every expression parsed once, templates as trees whose
//! literal parts are copied and whose expression parts are evaluated.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

use super::{Problem, ReconcileError};
use crate::cel::{CelError, Engine, Program, Value, Variables};
use crate::graph::{ResourceGraph, ResourceKind, template};
use crate::structural;

/// The most objects one `forEach` resource may expand to.
pub const MAX_COLLECTION_ITEMS: usize = 1_000;

/// A compiled expression: the program, its text, and whether it reads other resources (so
/// that, rendered offline, a failure means "unknown until applied" rather than an error).
#[derive(Debug)]
pub(crate) struct Expr {
    program: Program,
    reads_resources: bool,
}

impl Expr {
    fn compile(source: &str, locals: &[&str]) -> Result<Self, CelError> {
        let program = Engine::global().compile_uncached(source)?;
        let reads_resources = program
            .references()
            .iter()
            .any(|r| r.variable != "schema" && !locals.contains(&r.variable.as_str()));
        Ok(Self {
            program,
            reads_resources,
        })
    }

    pub(crate) fn source(&self) -> &str {
        self.program.source()
    }

    fn evaluate(&self, variables: &Variables) -> Result<Value, CelError> {
        self.program.evaluate(variables)
    }

    /// Evaluates a condition: `Ok(None)` when it cannot be known yet (offline, or a field
    /// not set yet).
    pub(crate) fn condition(
        &self,
        variables: &Variables,
        offline: bool,
    ) -> Result<Option<bool>, String> {
        match self.evaluate(variables) {
            Ok(Value::Bool(b)) => Ok(Some(b)),
            Ok(Value::Null) => Ok(None),
            Ok(other) => Err(format!(
                "{} must return bool, returned {}",
                self.source(),
                other.type_name()
            )),
            Err(_) if offline && self.reads_resources => Ok(None),
            Err(error) if is_missing(&error) => Ok(None),
            Err(error) => Err(format!("{}: {error}", self.source())),
        }
    }
}

/// Whether an evaluation failed because a field is not there (yet).
fn is_missing(error: &CelError) -> bool {
    matches!(
        error,
        CelError::Evaluation {
            kind: crate::cel::EvaluationErrorKind::NoSuchKey,
            ..
        }
    )
}

/// A template: literal JSON, an expression, or containers holding some.
#[derive(Debug)]
pub(crate) enum Node {
    Literal(Json),
    /// A string field: standalone (the field takes the value) or a string template.
    Expr {
        expr: Box<Expr>,
        text: String,
    },
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

impl Node {
    fn compile(value: &Json, locals: &[&str], path: &mut String) -> Result<Self, Problem> {
        if !has_expressions(value) {
            return Ok(Node::Literal(value.clone()));
        }
        Ok(match value {
            Json::String(text) => match template::to_cel(text) {
                Ok(Some((source, _))) => Node::Expr {
                    expr: Box::new(
                        Expr::compile(&source, locals)
                            .map_err(|e| Problem::at(path, e.to_string()))?,
                    ),
                    text: text.clone(),
                },
                Ok(None) => Node::Literal(value.clone()),
                Err(message) => return Err(Problem::at(path, message.to_owned())),
            },
            Json::Array(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{index}]");
                    nodes.push(Node::compile(item, locals, path)?);
                    path.truncate(len);
                }
                Node::Array(nodes)
            }
            Json::Object(map) => {
                let mut nodes = Vec::with_capacity(map.len());
                for (key, item) in map {
                    let len = path.len();
                    template::push_key(path, key);
                    nodes.push((key.clone(), Node::compile(item, locals, path)?));
                    path.truncate(len);
                }
                Node::Object(nodes)
            }
            _ => Node::Literal(value.clone()),
        })
    }

    /// The value of the template. Offline, expressions over resources that fail keep their
    /// `${...}` text and their paths go to `unknown`; fields whose expression reads an
    /// excluded resource are left out.
    fn render(
        &self,
        variables: &Variables,
        offline: bool,
        path: &mut String,
        unknown: &mut Vec<String>,
    ) -> Result<Option<Json>, Problem> {
        Ok(Some(match self {
            Node::Literal(value) => value.clone(),
            Node::Expr { expr, text } => match expr.evaluate(variables) {
                Ok(value) => value.to_json(),
                Err(_) if offline && expr.reads_resources => {
                    unknown.push(path.clone());
                    Json::String(text.clone())
                }
                Err(error) => {
                    return Err(Problem::at(path, format!("{}: {error}", expr.source())));
                }
            },
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{index}]");
                    if let Some(value) = item.render(variables, offline, path, unknown)? {
                        out.push(value);
                    }
                    path.truncate(len);
                }
                Json::Array(out)
            }
            Node::Object(fields) => {
                let mut out = Map::new();
                for (key, item) in fields {
                    let len = path.len();
                    template::push_key(path, key);
                    if let Some(value) = item.render(variables, offline, path, unknown)? {
                        out.insert(key.clone(), value);
                    }
                    path.truncate(len);
                }
                Json::Object(out)
            }
        }))
    }

    /// The status: each expression evaluated on its own; one that fails leaves its field
    /// out (a resource not ready or excluded), with the reason in `missing`.
    fn render_status(
        &self,
        variables: &Variables,
        path: &mut String,
        missing: &mut BTreeMap<String, String>,
    ) -> Option<Json> {
        match self {
            Node::Literal(value) => Some(value.clone()),
            Node::Expr { expr, .. } => match expr.evaluate(variables) {
                Ok(value) => Some(value.to_json()),
                Err(error) => {
                    missing.insert(path.clone(), error.to_string());
                    None
                }
            },
            Node::Array(items) => Some(Json::Array(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        let len = path.len();
                        let _ = write!(path, "[{index}]");
                        let value = item.render_status(variables, path, missing);
                        path.truncate(len);
                        value
                    })
                    .collect(),
            )),
            Node::Object(fields) => Some(Json::Object(
                fields
                    .iter()
                    .filter_map(|(key, item)| {
                        let len = path.len();
                        template::push_key(path, key);
                        let value = item.render_status(variables, path, missing);
                        path.truncate(len);
                        value.map(|v| (key.clone(), v))
                    })
                    .collect(),
            )),
        }
    }
}

fn has_expressions(value: &Json) -> bool {
    match value {
        Json::String(text) => text.contains("${"),
        Json::Array(items) => items.iter().any(has_expressions),
        Json::Object(map) => map.values().any(has_expressions),
        _ => false,
    }
}

/// One resource of the graph, compiled.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) id: String,
    pub(crate) external: bool,
    template: Node,
    include_when: Vec<Expr>,
    pub(crate) ready_when: Vec<Expr>,
    for_each: Vec<(String, Expr)>,
    /// Positions of the resources it depends on.
    pub(crate) dependencies: Vec<usize>,
    /// `apiVersion` and `kind` when the template states them plainly.
    pub(crate) type_meta: Option<(String, String)>,
}

impl Step {
    pub(crate) fn collection(&self) -> bool {
        !self.for_each.is_empty()
    }
}

/// What rendering one resource gave.
#[derive(Debug)]
pub(crate) enum Rendered {
    /// `includeWhen` is false: the resource (and what depends on it) is left out.
    Excluded,
    /// The objects: one, or one per element of a collection.
    Objects(Vec<Json>),
}

/// A graph compiled for reconciling: every expression parsed once, the apply levels and the
/// delete waves worked out. Build it once per graph; render and reconcile any number of
/// instances with it.
#[derive(Debug)]
pub struct Plan {
    pub(crate) graph: String,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    spec_schema: Json,
    pub(crate) steps: Vec<Step>,
    /// Earliest-start levels: what apply runs, one after the other.
    pub(crate) levels: Vec<Vec<usize>>,
    /// KRO's waves: deletion runs them last first.
    pub(crate) waves: Vec<Vec<usize>>,
    status: Option<Node>,
    pub(crate) crd: Json,
}

impl Plan {
    /// Compiles `graph`.
    ///
    /// # Errors
    /// [`ReconcileError::Graph`] when the graph has errors (a cycle, unknown references, bad
    /// CEL: what `kubectl zen graph validate` reports), or an expression that does not compile.
    #[allow(clippy::too_many_lines)] // every part of a resource compiled, then the layers
    pub fn new(graph: &ResourceGraph) -> Result<Self, ReconcileError> {
        if graph.has_errors() {
            return Err(ReconcileError::Graph(
                graph
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == crate::graph::Severity::Error)
                    .map(|d| Problem {
                        path: d.path.clone().unwrap_or_default(),
                        message: match &d.resource {
                            Some(id) => format!("resource {id}: {}", d.message),
                            None => d.message.clone(),
                        },
                    })
                    .collect(),
            ));
        }
        let index: BTreeMap<&str, usize> = graph
            .resources
            .iter()
            .enumerate()
            .map(|(n, r)| (r.id.as_str(), n))
            .collect();
        let mut steps = Vec::with_capacity(graph.resources.len());
        for (n, resource) in graph.resources.iter().enumerate() {
            let at = |path: &str| format!("spec.resources[{n}].{path}");
            let iterators: Vec<&str> = resource.for_each.iter().map(|i| i.name.as_str()).collect();
            let field = if resource.kind == ResourceKind::External {
                "externalRef"
            } else {
                "template"
            };
            let mut path = at(field);
            let template = Node::compile(&resource.object, &iterators, &mut path)
                .map_err(|p| ReconcileError::Graph(vec![p]))?;
            let compile = |source: &str, what: &str, locals: &[&str]| {
                Expr::compile(source, locals)
                    .map_err(|e| ReconcileError::Graph(vec![Problem::at(&at(what), e.to_string())]))
            };
            let include_when = resource
                .include_when
                .iter()
                .map(|e| compile(e, "includeWhen", &[]))
                .collect::<Result<_, _>>()?;
            let own: &[&str] = &[resource.id.as_str(), "each"];
            let ready_when = resource
                .ready_when
                .iter()
                .map(|e| compile(e, "readyWhen", own))
                .collect::<Result<_, _>>()?;
            let for_each = resource
                .for_each
                .iter()
                .map(|i| Ok((i.name.clone(), compile(&i.expression, "forEach", &[])?)))
                .collect::<Result<_, ReconcileError>>()?;
            steps.push(Step {
                id: resource.id.clone(),
                external: resource.kind == ResourceKind::External,
                template,
                include_when,
                ready_when,
                for_each,
                dependencies: resource
                    .dependencies
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect(),
                type_meta: resource
                    .api_version
                    .clone()
                    .zip(resource.object_kind.clone()),
            });
        }
        let positions = |layers: Option<Vec<Vec<&str>>>| -> Vec<Vec<usize>> {
            layers
                .unwrap_or_default()
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .filter_map(|id| index.get(id).copied())
                        .collect()
                })
                .collect()
        };
        let status = match &graph.status_template {
            Json::Object(fields) => {
                let mut kept = fields.clone();
                // Custom conditions need KRO's `runtime` library; the reconciler writes its own.
                kept.remove("conditions");
                let mut path = "status".to_owned();
                Some(
                    Node::compile(&Json::Object(kept), &[], &mut path)
                        .map_err(|p| ReconcileError::Graph(vec![p]))?,
                )
            }
            _ => None,
        };
        let schema = &graph.schema;
        Ok(Self {
            graph: graph.name.clone(),
            api_version: format!("{}/{}", schema.group, schema.api_version),
            kind: schema.kind.clone(),
            namespaced: schema.scope != "Cluster",
            spec_schema: schema.spec.clone(),
            levels: positions(graph.levels()),
            waves: positions(graph.waves()),
            steps,
            status,
            crd: graph.instance_crd(),
        })
    }

    /// The graph's name.
    #[must_use]
    pub fn graph(&self) -> &str {
        &self.graph
    }

    /// The instance API: `kro.run/v1alpha1`.
    #[must_use]
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The instance kind.
    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The CRD of the instance API, as KRO would create it.
    #[must_use]
    pub fn crd(&self) -> &Json {
        &self.crd
    }

    /// The resource ids, in declaration order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.id.as_str())
    }

    /// Checks an instance (the parsed YAML of the graph's kind) against the SimpleSchema:
    /// `apiVersion` and `kind` must be the graph's, `metadata.name` set, `spec` valid; defaults
    /// are filled in. Namespaced instances without a namespace get `default_namespace`.
    ///
    /// # Errors
    /// [`ReconcileError::Invalid`] with every problem and its field path.
    pub fn admit(
        &self,
        mut object: Json,
        default_namespace: &str,
    ) -> Result<Instance, ReconcileError> {
        let mut problems = Vec::new();
        let Some(map) = object.as_object_mut() else {
            return Err(ReconcileError::Invalid(vec![Problem::at(
                "",
                format!(
                    "an instance is an object of kind {}, not {}",
                    self.kind,
                    structural::json_type(&object)
                ),
            )]));
        };
        let text = |map: &Map<String, Json>, key: &str| {
            map.get(key).and_then(Json::as_str).map(str::to_owned)
        };
        if text(map, "apiVersion").as_deref() != Some(self.api_version.as_str()) {
            problems.push(Problem::at(
                "apiVersion",
                format!(
                    "must be {:?} (the graph's instance API), not {}",
                    self.api_version,
                    show(map.get("apiVersion"))
                ),
            ));
        }
        if text(map, "kind").as_deref() != Some(self.kind.as_str()) {
            problems.push(Problem::at(
                "kind",
                format!("must be {:?}, not {}", self.kind, show(map.get("kind"))),
            ));
        }
        let metadata = map.entry("metadata").or_insert_with(|| json!({}));
        let name = metadata
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if !is_dns_subdomain(&name) {
            problems.push(Problem::at(
                "metadata.name",
                if name.is_empty() {
                    "Required value".to_owned()
                } else {
                    format!("{name:?}: a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)")
                },
            ));
        }
        let namespace = if self.namespaced {
            let namespace = metadata
                .get("namespace")
                .and_then(Json::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(default_namespace)
                .to_owned();
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.insert("namespace".into(), Json::String(namespace.clone()));
            }
            Some(namespace)
        } else {
            None
        };
        let mut root = json!({"spec": map.remove("spec").unwrap_or_else(|| json!({}))});
        let schema = json!({"type": "object", "properties": {"spec": self.spec_schema}});
        let (pruned, invalid) = structural::admit_all(&mut root, &schema);
        problems.extend(invalid.into_iter().map(|i| {
            Problem {
                message: i
                    .message
                    .strip_prefix(&format!("{}: ", i.field))
                    .unwrap_or(&i.message)
                    .to_owned(),
                path: i.field,
            }
        }));
        problems.extend(pruned.into_iter().map(|field| {
            Problem::at(
                &field,
                "unknown field: the graph's schema does not declare it".into(),
            )
        }));
        if let Err(error) = Value::from_json(&root) {
            let path = error.path.trim_start_matches("$.").trim_start_matches('$');
            problems.push(Problem::at(path, error.message));
        }
        if !problems.is_empty() {
            return Err(ReconcileError::Invalid(problems));
        }
        map.insert("spec".into(), root["spec"].take());
        map.remove("status");
        Ok(Instance {
            home: namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned()),
            name,
            namespace,
            object,
        })
    }

    /// The variables every expression of an instance starts from: `schema`.
    pub(crate) fn variables(instance: &Instance) -> Variables {
        let mut variables = Variables::new();
        let metadata = &instance.object["metadata"];
        let mut slim = Map::new();
        for key in [
            "name",
            "namespace",
            "labels",
            "annotations",
            "uid",
            "generation",
        ] {
            if let Some(value) = metadata.get(key).filter(|v| !v.is_null()) {
                slim.insert(key.to_owned(), value.clone());
            }
        }
        let schema = json!({
            "apiVersion": instance.object["apiVersion"],
            "kind": instance.object["kind"],
            "metadata": slim,
            "spec": instance.object["spec"],
        });
        // Admitted instances are shallow enough to convert.
        if let Ok(value) = Value::from_json(&schema) {
            variables.insert("schema", &value);
        }
        variables
    }

    /// Renders one resource with the variables bound so far: `includeWhen`, then `forEach`,
    /// then the template. Offline, what cannot be known is kept as written and listed in
    /// `unknown`.
    pub(crate) fn render(
        &self,
        step: usize,
        variables: &mut Variables,
        offline: bool,
        unknown: &mut Vec<String>,
    ) -> Result<Rendered, Problem> {
        let step = &self.steps[step];
        for condition in &step.include_when {
            match condition.condition(variables, offline) {
                Ok(Some(false)) => return Ok(Rendered::Excluded),
                Ok(_) => {}
                Err(message) => return Err(Problem::at("includeWhen", message)),
            }
        }
        if step.for_each.is_empty() {
            let mut path = String::new();
            let object = step
                .template
                .render(variables, offline, &mut path, unknown)?;
            return Ok(Rendered::Objects(object.into_iter().collect()));
        }
        let mut lists = Vec::with_capacity(step.for_each.len());
        for (name, expr) in &step.for_each {
            match expr.evaluate(variables) {
                Ok(Value::List(items)) => lists.push((name, items)),
                Ok(other) => {
                    return Err(Problem::at(
                        "forEach",
                        format!(
                            "{} must return a list, returned {}",
                            expr.source(),
                            other.type_name()
                        ),
                    ));
                }
                Err(_) if offline && expr.reads_resources => {
                    unknown.push(format!("forEach {name}"));
                    return Ok(Rendered::Objects(Vec::new()));
                }
                Err(error) => {
                    return Err(Problem::at(
                        "forEach",
                        format!("{}: {error}", expr.source()),
                    ));
                }
            }
        }
        let total = lists
            .iter()
            .try_fold(1_usize, |n, (_, items)| n.checked_mul(items.len()));
        match total {
            Some(n) if n <= MAX_COLLECTION_ITEMS => {}
            _ => {
                return Err(Problem::at(
                    "forEach",
                    format!("the collection has more than {MAX_COLLECTION_ITEMS} items"),
                ));
            }
        }
        let mut objects = Vec::new();
        let mut choice = vec![0_usize; lists.len()];
        if lists.iter().any(|(_, items)| items.is_empty()) {
            return Ok(Rendered::Objects(objects));
        }
        loop {
            for ((name, items), &at) in lists.iter().zip(&choice) {
                variables.insert(name.as_str(), &items[at]);
            }
            let mut path = String::new();
            objects.extend(
                step.template
                    .render(variables, offline, &mut path, unknown)?,
            );
            // The next combination, the last iterator fastest.
            let mut dimension = lists.len();
            loop {
                if dimension == 0 {
                    return Ok(Rendered::Objects(objects));
                }
                dimension -= 1;
                choice[dimension] += 1;
                if choice[dimension] < lists[dimension].1.len() {
                    break;
                }
                choice[dimension] = 0;
            }
        }
    }

    /// Binds a resource's state for the expressions that read it: the object, or the list of
    /// a collection's objects.
    pub(crate) fn bind(&self, step: usize, variables: &mut Variables, objects: &[Json]) {
        let step = &self.steps[step];
        let value = if step.collection() {
            Json::Array(objects.to_vec())
        } else {
            objects.first().cloned().unwrap_or(Json::Null)
        };
        if let Ok(value) = Value::from_json(&value) {
            variables.insert(step.id.as_str(), &value);
        }
    }

    /// The instance status from the bound resources: fields whose expressions fail are left
    /// out, with why in the second value.
    pub(crate) fn status(&self, variables: &Variables) -> (Json, BTreeMap<String, String>) {
        let mut missing = BTreeMap::new();
        let status = self
            .status
            .as_ref()
            .and_then(|node| node.render_status(variables, &mut "status".to_owned(), &mut missing))
            .unwrap_or_else(|| json!({}));
        (status, missing)
    }

    /// Renders every resource of `instance` offline, with no cluster: the objects in apply
    /// order, each resource's dependencies seen as rendered (fields only the cluster can fill,
    /// such as `status`, are unknown and kept as written).
    ///
    /// # Errors
    /// The first expression that fails without depending on unknowable state.
    pub fn render_offline(&self, instance: &Instance) -> Result<Rendering, ReconcileError> {
        let mut variables = Self::variables(instance);
        let mut excluded = vec![false; self.steps.len()];
        let mut resources = Vec::with_capacity(self.steps.len());
        for (level_number, level) in self.levels.iter().enumerate() {
            for &n in level {
                let step = &self.steps[n];
                let mut unknown = Vec::new();
                let skipped_by = step.dependencies.iter().find(|d| excluded[**d]);
                let rendered = if skipped_by.is_some() {
                    Rendered::Excluded
                } else {
                    self.render(n, &mut variables, true, &mut unknown)
                        .map_err(|p| ReconcileError::Render {
                            id: step.id.clone(),
                            problem: p,
                        })?
                };
                let objects = match rendered {
                    Rendered::Excluded => {
                        excluded[n] = true;
                        Vec::new()
                    }
                    Rendered::Objects(mut objects) => {
                        for object in &mut objects {
                            self.prepare(n, object, instance, None);
                        }
                        self.bind(n, &mut variables, &objects);
                        objects
                    }
                };
                resources.push(RenderedResource {
                    id: step.id.clone(),
                    level: level_number,
                    external: step.external,
                    included: !excluded[n],
                    objects,
                    unknown,
                });
            }
        }
        let (status, _) = self.status(&variables);
        Ok(Rendering { resources, status })
    }

    /// Fills in what the reconciler adds to a rendered object: its namespace (the instance's,
    /// for namespaced kinds that name none) and, for objects it writes, the labels and
    /// annotations naming the instance and graph. `namespaced` is what discovery said, when
    /// asked; offline, a list of well-known cluster-scoped kinds decides.
    pub(crate) fn prepare(
        &self,
        step: usize,
        object: &mut Json,
        instance: &Instance,
        namespaced: Option<bool>,
    ) {
        let step = &self.steps[step];
        let Some(map) = object.as_object_mut() else {
            return;
        };
        let kind = map.get("kind").and_then(Json::as_str).unwrap_or_default();
        let namespaced = namespaced.unwrap_or_else(|| !is_cluster_scoped(kind));
        let metadata = map.entry("metadata").or_insert_with(|| json!({}));
        let Some(metadata) = metadata.as_object_mut() else {
            return;
        };
        if namespaced {
            if metadata
                .get("namespace")
                .and_then(Json::as_str)
                .is_none_or(str::is_empty)
            {
                let namespace = instance
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned());
                metadata.insert("namespace".into(), Json::String(namespace));
            }
        } else {
            metadata.remove("namespace");
        }
        if step.external {
            return;
        }
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            for (key, value) in super::ownership_labels(self, instance, &step.id) {
                labels.insert(key.to_owned(), Json::String(value));
            }
        }
    }
}

/// What [`Plan::render_offline`] gives: every resource with its objects, and the status as
/// far as it can be known.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rendering {
    /// The resources in apply order.
    pub resources: Vec<RenderedResource>,
    /// The instance status from the rendered objects (fields that need the cluster are absent).
    pub status: Json,
}

/// One resource of a [`Rendering`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedResource {
    /// Its id.
    pub id: String,
    /// The apply level, from 0.
    pub level: usize,
    /// An external reference: read, never written.
    pub external: bool,
    /// False when `includeWhen` (its own or a dependency's) leaves it out.
    pub included: bool,
    /// The rendered objects (one, or one per collection item).
    pub objects: Vec<Json>,
    /// Field paths whose values only the cluster can tell, kept as written.
    pub unknown: Vec<String>,
}

/// An admitted instance: validated, defaulted, with its namespace.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped instance APIs.
    pub namespace: Option<String>,
    /// The whole object, defaults filled in, without `status`.
    pub object: Json,
    /// Where its apply set lives: its namespace, or the default namespace it was admitted
    /// with when the instance API is cluster-scoped.
    pub(crate) home: String,
}

fn show(value: Option<&Json>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("{v}"))
}

/// A lowercase RFC 1123 subdomain, as object names are.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Built-in kinds that are not namespaced: offline rendering gives the others the instance's
/// namespace (against a cluster, discovery says).
fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "StorageClass"
            | "CustomResourceDefinition"
            | "PriorityClass"
            | "IngressClass"
            | "RuntimeClass"
            | "CSIDriver"
            | "CSINode"
            | "VolumeAttachment"
            | "APIService"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "CertificateSigningRequest"
            | "FlowSchema"
            | "PriorityLevelConfiguration"
            | "ResourceGraphDefinition"
    )
}
