//! A KRO-compatible CEL engine: compile once, cache the program, evaluate it fast.
//!
//! KRO drives its resource graphs with CEL (`${schema.spec.replicas}`,
//! `${deployment.status.availableReplicas > 0}`). Compiling is expensive next to evaluating,
//! so an [`Engine`] keeps compiled [`Program`]s in a bounded cache keyed by the expression
//! text. The engine's environment is KRO's: the CEL standard library, cel-go's extensions and
//! Kubernetes' libraries that KRO enables, and KRO's own functions; `docs/cel-functions.md`
//! lists each function with its status and test.
//!
//! ```
//! use kubezen::cel::{Engine, Value, Variables};
//!
//! let engine = Engine::global();
//! let vars = Variables::from_json(&serde_json::json!({"schema": {"spec": {"replicas": 3}}}))?;
//! assert_eq!(engine.evaluate("schema.spec.replicas > 2", &vars)?, Value::Bool(true));
//!
//! let program = engine.compile("schema.spec.name + '-svc'")?;
//! assert_eq!(program.references()[0].dotted(), "schema.spec.name");
//! # Ok::<(), kubezen::cel::CelError>(())
//! ```
//!
//! Hostile expressions fail with a [`CelError`], never a crash: text longer than
//! [`MAX_EXPRESSION_CHARS`], trees deeper than [`MAX_EXPRESSION_DEPTH`], and every runtime
//! error (a missing key, division by zero, overflow, a wrong type) with the position of the
//! expression that raised it.

mod analysis;
mod functions;
mod value;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
};

use cel::{
    Context, Env, ExecutionError,
    common::{
        ast::{Expr, IdedExpr},
        value::{CowVal, Val},
    },
    context::VariableResolver,
};
use serde::Serialize;

pub use analysis::{
    Complexity, CostClass, FUNCTION_NAMESPACES, MODERATE_MAX_SCORE, RESERVED_WORDS, Reference,
    SIMPLE_MAX_SCORE, Shape,
};
pub use value::{
    Key, MAX_VALUE_DEPTH, Value, ValueError, format_duration, format_timestamp, parse_duration,
    parse_timestamp,
};

/// The longest expression compiled, in characters: cel-go's default limit.
pub const MAX_EXPRESSION_CHARS: usize = 100_000;

/// The deepest syntax tree compiled (after macros are expanded). cel-go's parser stops at a
/// recursion depth of 250; deeper trees would exhaust the stack of whatever walks them.
pub const MAX_EXPRESSION_DEPTH: usize = 250;

/// The compiled programs an engine keeps by default.
pub const DEFAULT_CACHE_CAPACITY: u64 = 1_024;

/// The most stack a compilation is given (reserved address space, committed only as used).
const MAX_COMPILE_STACK: usize = 1 << 30;

/// Stack reserved per level of syntax tree while parsing or evaluating; debug builds need
/// about 20 KiB a level, release builds about 2 KiB.
const STACK_PER_LEVEL: usize = 32 * 1024;

/// Where in the expression something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Characters before it, from 0.
    pub offset: usize,
    /// Its line, from 1.
    pub line: usize,
    /// Its column in characters, from 1.
    pub column: usize,
}

impl Position {
    /// The position of the `offset`-th character of `source`.
    #[must_use]
    pub fn at(source: &str, offset: usize) -> Self {
        let mut line = 1;
        let mut column = 1;
        for c in source.chars().take(offset) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Self {
            offset,
            line,
            column,
        }
    }

    /// The line of `source` holding the position, and a caret under it:
    ///
    /// ```text
    /// schema.spec.replicas >
    ///                       ^
    /// ```
    #[must_use]
    pub fn caret(&self, source: &str) -> String {
        let line = source.lines().nth(self.line - 1).unwrap_or("");
        // Long lines are cut to a window around the position.
        let chars: Vec<char> = line.chars().collect();
        let start = (self.column - 1).saturating_sub(60);
        let end = (self.column + 60).min(chars.len());
        let shown: String = chars[start.min(end)..end].iter().collect();
        let pad = " ".repeat(self.column - 1 - start);
        format!("{shown}\n{pad}^")
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of runtime error an evaluation raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EvaluationErrorKind {
    /// A map has no such key, or an object no such field.
    NoSuchKey,
    /// A variable or function that is not declared.
    UndeclaredReference,
    /// An operator or function applied to values of types it does not take.
    Type,
    /// Division or remainder by zero.
    DivisionByZero,
    /// Integer arithmetic left the range of its type.
    Overflow,
    /// A list index outside the list.
    IndexOutOfBounds,
    /// A function failed on its input (a bad regex, a bad quantity, ...).
    Function,
    /// A result with no JSON or Python form, or anything else.
    Other,
}

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CelError {
    /// The text is not CEL.
    #[error("syntax error at {position}: {message}")]
    Syntax {
        /// What the parser found wrong.
        message: String,
        /// Where.
        position: Position,
    },
    /// The text is longer than [`MAX_EXPRESSION_CHARS`].
    #[error("the expression has {chars} characters, more than the limit of {limit}")]
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        limit: usize,
    },
    /// The syntax tree is deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error("the expression nests {depth} levels deep, more than the limit of {limit}")]
    TooDeep {
        /// Its depth.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// Evaluation failed.
    #[error("{message}")]
    Evaluation {
        /// The kind of failure.
        kind: EvaluationErrorKind,
        /// What went wrong.
        message: String,
        /// The expression that raised it, where it can be told: the first node in the
        /// expression that could have (the `/` for a division by zero, the call of the
        /// function that failed, the select of the missing field).
        position: Option<Position>,
    },
    /// The variables are not values CEL can take.
    #[error("invalid variables: {0}")]
    Variables(#[from] ValueError),
}

impl CelError {
    /// Where in the expression the error is, when known.
    #[must_use]
    pub fn position(&self) -> Option<Position> {
        match self {
            CelError::Syntax { position, .. } => Some(*position),
            CelError::Evaluation { position, .. } => *position,
            CelError::TooLong { .. } | CelError::TooDeep { .. } | CelError::Variables(_) => None,
        }
    }
}

/// Variables to evaluate against, converted once to the engine's own form so each evaluation
/// reads them in place.
pub struct Variables {
    values: BTreeMap<String, Box<dyn Val>>,
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Variables {
    /// No variables.
    #[must_use]
    pub fn new() -> Self {
        Self {
            values: BTreeMap::new(),
        }
    }

    /// Binds `name` to `value`, replacing an earlier binding.
    pub fn insert(&mut self, name: impl Into<String>, value: &Value) {
        // Every `Value` has a CEL form: the conversion cannot fail.
        let converted = Box::<dyn Val>::try_from(value::to_cel(value))
            .unwrap_or_else(|_| Box::new(cel::common::types::CelNull));
        self.values.insert(name.into(), converted);
    }

    /// Variables from a JSON object of names to values.
    ///
    /// # Errors
    /// A top level that is not an object, or input nested deeper than [`MAX_VALUE_DEPTH`].
    pub fn from_json(json: &serde_json::Value) -> Result<Self, ValueError> {
        match Value::from_json(json)? {
            Value::Map(map) => Ok(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            Value::Null => Ok(Self::new()),
            other => Err(ValueError {
                message: format!(
                    "variables are an object of names to values, not a {}",
                    other.type_name()
                ),
                path: "$".to_owned(),
            }),
        }
    }

    /// Variables from JSON or YAML text; see [`Value::variables_from_yaml`].
    ///
    /// # Errors
    /// As [`Value::variables_from_yaml`].
    pub fn from_yaml(text: &str) -> Result<Self, ValueError> {
        Ok(Value::variables_from_yaml(text)?.into_iter().collect())
    }

    /// The names bound.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

impl Default for Variables {
    fn default() -> Self {
        Self::new()
    }
}

impl FromIterator<(String, Value)> for Variables {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut vars = Self::new();
        for (name, value) in iter {
            vars.insert(name, &value);
        }
        vars
    }
}

impl VariableResolver for Variables {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.values
            .get(variable)
            .map(|v| CowVal::Borrowed(v.as_ref()))
    }
}

/// What an expression reads, how costly it is and what its result looks like: what
/// [`Engine::inspect`] finds without keeping a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// As [`Program::references`].
    pub references: Vec<Reference>,
    /// As [`Program::complexity`].
    pub complexity: Complexity,
    /// As [`Program::shape`].
    pub shape: Shape,
}

/// A compiled expression: parsed, macros expanded, limits checked, references and complexity
/// known. Evaluate it as often as needed, from any thread.
pub struct Program {
    source: String,
    compiled: cel::Program,
    env: Arc<Env>,
    references: Vec<Reference>,
    complexity: Complexity,
    shape: Shape,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("source", &self.source)
            .field("complexity", &self.complexity)
            .finish_non_exhaustive()
    }
}

/// What [`Program::check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The expression's text.
    pub expression: String,
    /// The variables and field paths it reads, dotted.
    pub references: Vec<String>,
    /// How costly it is.
    pub complexity: Complexity,
    /// What would go wrong against the variables; empty when nothing does.
    pub problems: Vec<String>,
}

impl Program {
    /// The expression's text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables and field paths the expression reads, sorted and unique.
    #[must_use]
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// How costly the expression is.
    #[must_use]
    pub fn complexity(&self) -> &Complexity {
        &self.complexity
    }

    /// What the result is, as far as the outermost node tells.
    #[must_use]
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// What `kubectl zen cel check` reports: the references and complexity and, given
    /// `variables`, the problems a run would meet (references to variables not given, else the
    /// evaluation's error). No problems means the expression ran.
    #[must_use]
    pub fn check(&self, variables: Option<&Variables>) -> Check {
        let mut problems = Vec::new();
        if let Some(variables) = variables {
            for reference in &self.references {
                if !variables.names().any(|name| name == reference.variable) {
                    problems.push(format!(
                        "reads {} but no variable {:?} is given",
                        reference.dotted(),
                        reference.variable
                    ));
                }
            }
            if problems.is_empty()
                && let Err(error) = self.evaluate(variables)
            {
                let at = error
                    .position()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default();
                problems.push(format!("{error}{at}"));
            }
        }
        Check {
            expression: self.source.clone(),
            references: self.references.iter().map(Reference::dotted).collect(),
            complexity: self.complexity.clone(),
            problems,
        }
    }

    /// Evaluates the program against `variables`.
    ///
    /// # Errors
    /// [`CelError::Evaluation`] for every runtime error, with its position where it can be told.
    pub fn evaluate(&self, variables: &Variables) -> Result<Value, CelError> {
        let run = || {
            let mut context = Context::with_env(Arc::clone(&self.env));
            context.set_variable_resolver(variables);
            self.compiled.execute(&context)
        };
        let red_zone = STACK_PER_LEVEL * (self.complexity.depth + 4);
        let result = stacker::maybe_grow(red_zone, red_zone * 2, run);
        match result {
            Ok(value) => {
                value::from_cel(&unwrap_optional(value)).map_err(|message| CelError::Evaluation {
                    kind: EvaluationErrorKind::Other,
                    message,
                    position: None,
                })
            }
            Err(error) => Err(self.evaluation_error(&error)),
        }
    }

    fn evaluation_error(&self, error: &ExecutionError) -> CelError {
        let (kind, anchor) = classify(error);
        let root = self.compiled.expression();
        let position = anchor
            .and_then(|anchor| find_node(root, &anchor))
            .and_then(|id| self.compiled.source_info().offset_for(id))
            .map(|(start, _)| Position::at(&self.source, start as usize));
        CelError::Evaluation {
            kind,
            message: error.to_string(),
            position,
        }
    }
}

fn unwrap_optional(value: cel::Value) -> cel::Value {
    if let cel::Value::Opaque(opaque) = &value
        && let Some(optional) = opaque.downcast_ref::<cel::objects::OptionalValue>()
    {
        return optional
            .value()
            .cloned()
            .map_or(cel::Value::Null, unwrap_optional);
    }
    value
}

/// What to look for in the tree to place a runtime error.
enum Anchor {
    Ident(String),
    Field(String),
    Call(String),
}

fn classify(error: &ExecutionError) -> (EvaluationErrorKind, Option<Anchor>) {
    use EvaluationErrorKind as K;
    match error {
        ExecutionError::NoSuchKey(key) => (K::NoSuchKey, Some(Anchor::Field(key.to_string()))),
        ExecutionError::UndeclaredReference(name) => (
            K::UndeclaredReference,
            Some(Anchor::Ident(name.to_string())),
        ),
        ExecutionError::NoSuchOverload(overload) => {
            (K::Type, Some(Anchor::Call(overload.function().to_owned())))
        }
        ExecutionError::UnexpectedType { .. }
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedKeyType(_)
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnsupportedIndex(..) => (K::Type, None),
        ExecutionError::UnsupportedBinaryOperator(op, ..) => {
            (K::Type, operator_function(op).map(Anchor::Call))
        }
        ExecutionError::DivisionByZero(_) => (K::DivisionByZero, Some(Anchor::Call("_/_".into()))),
        ExecutionError::RemainderByZero(_) => (K::DivisionByZero, Some(Anchor::Call("_%_".into()))),
        ExecutionError::Overflow(op, ..) => (K::Overflow, operator_function(op).map(Anchor::Call)),
        ExecutionError::IndexOutOfBounds(_) => {
            (K::IndexOutOfBounds, Some(Anchor::Call("_[_]".into())))
        }
        ExecutionError::FunctionError { function, .. } => {
            (K::Function, Some(Anchor::Call(function.clone())))
        }
        _ => (K::Other, None),
    }
}

/// The function of the operator the `cel` crate names in an error: `add` is `_+_`.
fn operator_function(name: &str) -> Option<String> {
    let operator = match name {
        "add" => "_+_",
        "sub" => "_-_",
        "mul" => "_*_",
        "div" => "_/_",
        "rem" | "mod" => "_%_",
        "neg" => "-_",
        "+" | "-" | "*" | "/" | "%" | "<" | "<=" | ">" | ">=" | "==" | "!=" => {
            return Some(format!("_{name}_"));
        }
        _ => return None,
    };
    Some(operator.to_owned())
}

/// The id of the first node, in source order, that matches `anchor`.
fn find_node(root: &IdedExpr, anchor: &Anchor) -> Option<u64> {
    let matches = |node: &IdedExpr| match (&node.expr, anchor) {
        (Expr::Ident(name), Anchor::Ident(wanted)) => name == wanted,
        (Expr::Select(select), Anchor::Field(wanted)) => &select.field == wanted,
        (Expr::Call(call), Anchor::Field(wanted)) => {
            call.func_name == "_[_]"
                && matches!(&call.args.get(1).map(|a| &a.expr),
                    Some(Expr::Literal(cel::common::ast::LiteralValue::String(s))) if s.inner() == wanted)
        }
        (Expr::Call(call), Anchor::Call(wanted)) => &call.func_name == wanted,
        _ => false,
    };
    // Nodes are numbered in the order the parser met them; the smallest matching id is
    // the leftmost occurrence.
    let mut best: Option<u64> = None;
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        if matches(node) {
            best = Some(best.map_or(node.id, |b| b.min(node.id)));
        }
        pending.extend(analysis::children(&node.expr));
    }
    best
}

/// Counters of an engine's program cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// Compilations answered from the cache.
    pub hits: u64,
    /// Compilations that had to compile.
    pub misses: u64,
    /// Programs dropped to keep within the capacity.
    pub evictions: u64,
    /// Programs in the cache now.
    pub entries: u64,
    /// The most programs the cache keeps.
    pub capacity: u64,
}

impl CacheStats {
    /// Hits over lookups, or 0 before the first lookup.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)] // a ratio for people to read
            {
                self.hits as f64 / lookups as f64
            }
        }
    }
}

impl crate::Tabular for CacheStats {
    fn to_table(&self) -> crate::Table {
        use crate::{Cell, Column, Table};
        let mut table = Table::new(
            ["HITS", "MISSES", "EVICTIONS", "ENTRIES", "CAPACITY"]
                .into_iter()
                .map(|header| Column::new(header).right())
                .collect(),
        );
        table.push_row(
            [
                self.hits,
                self.misses,
                self.evictions,
                self.entries,
                self.capacity,
            ]
            .iter()
            .map(|n| Cell::from(n.to_string()))
            .collect(),
        );
        table
    }
}

/// Slots of the per-thread memo of recently used programs in front of the shared cache.
const RECENT_SLOTS: usize = 8;

/// A recently used program: the engine it belongs to, that engine's cache generation when it
/// was remembered, and the program.
type Recent = Option<(u64, u64, Arc<Program>)>;

thread_local! {
    /// Each thread remembers the programs it used last, so a hit costs a hash, a string
    /// comparison and a reference count instead of a trip through the shared cache (whose
    /// lookups read the clock and record the access). It holds at most [`RECENT_SLOTS`]
    /// programs per thread beyond the cache's capacity.
    static RECENT: std::cell::RefCell<[Recent; RECENT_SLOTS]> = const {
        std::cell::RefCell::new([const { None }; RECENT_SLOTS])
    };
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(0);

/// The CEL environment KRO evaluates in, with a bounded cache of compiled programs.
pub struct Engine {
    id: u64,
    /// Bumped by [`Engine::clear_cache`], which forgets every thread's recent programs.
    generation: AtomicU64,
    hasher: foldhash::fast::RandomState,
    env: Arc<Env>,
    cache: moka::sync::Cache<String, Arc<Program>, foldhash::fast::RandomState>,
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("cache", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

static GLOBAL: LazyLock<Engine> = LazyLock::new(|| Engine::new(DEFAULT_CACHE_CAPACITY));

impl Engine {
    /// An engine whose cache keeps up to `capacity` compiled programs, least recently used
    /// dropped first.
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&evictions);
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .eviction_listener(move |_key, _value, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            // A lookup hashes the whole expression: a fast hasher keeps hits cheap; the keys
            // are expressions the program's own user wrote, so flooding is not a concern.
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            hasher: foldhash::fast::RandomState::default(),
            env: Arc::new(functions::environment()),
            cache,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    /// The engine both faces share, with a cache of [`DEFAULT_CACHE_CAPACITY`] programs.
    #[must_use]
    pub fn global() -> &'static Engine {
        &GLOBAL
    }

    /// The compiled program for `source`, from the cache or compiled and cached.
    ///
    /// # Errors
    /// As [`Engine::compile_uncached`]; failures are not cached.
    pub fn compile(&self, source: &str) -> Result<Arc<Program>, CelError> {
        let generation = self.generation.load(Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation)] // any bits of the hash pick a slot
        let slot = (std::hash::BuildHasher::hash_one(&self.hasher, source) as usize) % RECENT_SLOTS;
        let recent = RECENT.with_borrow(|recent| match &recent[slot] {
            Some((id, seen, program))
                if *id == self.id && *seen == generation && program.source() == source =>
            {
                Some(Arc::clone(program))
            }
            _ => None,
        });
        if let Some(program) = recent {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(program);
        }
        let program = if let Some(program) = self.cache.get(source) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            program
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            let program = Arc::new(self.compile_uncached(source)?);
            self.cache.insert(source.to_owned(), Arc::clone(&program));
            program
        };
        RECENT.with_borrow_mut(|recent| {
            recent[slot] = Some((self.id, generation, Arc::clone(&program)));
        });
        Ok(program)
    }

    /// Compiles `source` without the cache: parse, expand macros, check the limits, find the
    /// references and the complexity.
    ///
    /// # Errors
    /// [`CelError::TooLong`], [`CelError::Syntax`] or [`CelError::TooDeep`].
    pub fn compile_uncached(&self, source: &str) -> Result<Program, CelError> {
        let chars = source.chars().count();
        if chars > MAX_EXPRESSION_CHARS {
            return Err(CelError::TooLong {
                chars,
                limit: MAX_EXPRESSION_CHARS,
            });
        }
        // The parser recurses once per operator of a chain such as `a + b + c`, and deeper
        // still while it recovers from errors in garbage text (up to ~20 KiB a character in
        // debug builds, found by the property tests); so do the walks of its tree, dropping
        // it included. Text gets a stack to match, and a tree too deep to evaluate safely is
        // dropped on that stack too.
        let red_zone = ((256 << 10) + chars * (32 << 10)).min(MAX_COMPILE_STACK);
        stacker::maybe_grow(red_zone, red_zone + (1 << 20), || self.parse(source))
    }

    fn parse(&self, source: &str) -> Result<Program, CelError> {
        let program = self.env.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let message = first.map_or_else(|| errors.to_string(), |e| clean_parse_message(&e.msg));
            let (line, column) = first.map_or((1, 0), |e| e.pos);
            let position = position_from_line_column(source, line, column);
            CelError::Syntax { message, position }
        })?;
        let root = program.expression();
        let depth = analysis::depth(root);
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(CelError::TooDeep {
                depth,
                limit: MAX_EXPRESSION_DEPTH,
            });
        }
        let references = analysis::references(root);
        let complexity = analysis::complexity(root, depth);
        let shape = analysis::shape(root);
        Ok(Program {
            source: source.to_owned(),
            compiled: program,
            env: Arc::clone(&self.env),
            references,
            complexity,
            shape,
        })
    }

    /// What `source` reads, its complexity and its shape, without keeping a program to run.
    /// A plain field path (`schema.spec.name`, the most common expression in resource graphs)
    /// is recognised without the parser, ~100x faster; anything else is compiled through the
    /// cache.
    ///
    /// # Errors
    /// As [`Engine::compile`].
    pub fn inspect(&self, source: &str) -> Result<Inspection, CelError> {
        if let Some(reference) = analysis::plain_path(source) {
            let segments = reference.path.len() + 1;
            return Ok(Inspection {
                references: vec![reference],
                complexity: analysis::path_complexity(segments),
                shape: Shape::Path,
            });
        }
        let program = self.compile(source)?;
        Ok(Inspection {
            references: program.references.clone(),
            complexity: program.complexity.clone(),
            shape: program.shape,
        })
    }

    /// Compiles (through the cache) and evaluates `source` against `variables`.
    ///
    /// # Errors
    /// As [`Engine::compile`] and [`Program::evaluate`].
    pub fn evaluate(&self, source: &str, variables: &Variables) -> Result<Value, CelError> {
        self.compile(source)?.evaluate(variables)
    }

    /// The cache's counters.
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            capacity: self.capacity,
        }
    }

    /// Drops every cached program; the counters keep counting.
    pub fn clear_cache(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }
}

/// The parser reports `line:column` with the column from 0 and, for some errors, -1.
fn position_from_line_column(source: &str, line: isize, column: isize) -> Position {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let column = usize::try_from(column).unwrap_or(0);
    let offset = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(|l| l.chars().count())
        .sum::<usize>()
        + column;
    Position::at(source, offset.min(source.chars().count()))
}

/// The parser wraps some messages in Rust debug output and prefixes others with
/// "Syntax error: "; keep the words.
fn clean_parse_message(message: &str) -> String {
    if let Some(start) = message.find("msg: \"") {
        let rest = &message[start + 6..];
        if let Some(end) = rest.find('"') {
            return rest[..end].to_owned();
        }
    }
    message
        .strip_prefix("Syntax error: ")
        .unwrap_or(message)
        .to_owned()
}

#[cfg(test)]
mod tests;
