//! What an expression reads and how costly it is, from its syntax tree alone.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue};
use serde::Serialize;

/// The direct sub-expressions of `expr`.
pub(crate) fn children(expr: &Expr) -> Vec<&IdedExpr> {
    match expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entry_children(&map.entries),
        Expr::Struct(s) => entry_children(&s.entries),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// The keys and values of map literal entries, the values of struct literal fields.
fn entry_children(entries: &[IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })
        .collect()
}

/// The depth of the tree, found without recursion: the tree may be far deeper than the stack
/// allows to walk recursively, which is what this is asked to find out.
pub(crate) fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1_usize)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        pending.extend(
            children(&node.expr)
                .into_iter()
                .map(|child| (child, depth + 1)),
        );
    }
    deepest
}

/// A variable and the field path an expression reads from it: `schema.spec.name` is the
/// variable `schema` with the path `["spec", "name"]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Reference {
    /// The variable.
    pub variable: String,
    /// The fields selected from it, outermost first; literal string indexes (`a["b"]`) count.
    pub path: Vec<String>,
}

impl Reference {
    /// The reference as written in CEL: `schema.spec.name`.
    #[must_use]
    pub fn dotted(&self) -> String {
        std::iter::once(self.variable.as_str())
            .chain(self.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The variables and field paths `root` reads, longest path per occurrence, without the
/// variables that comprehensions bind (`x` in `items.map(x, x.name)`), sorted and unique.
pub(crate) fn references(root: &IdedExpr) -> Vec<Reference> {
    let mut found = BTreeSet::new();
    collect_references(root, &mut Vec::new(), &mut found);
    found.into_iter().collect()
}

fn collect_references<'a>(
    node: &'a IdedExpr,
    bound: &mut Vec<&'a str>,
    found: &mut BTreeSet<Reference>,
) {
    if let Some((variable, path, rest)) = field_chain(node) {
        if !bound.contains(&variable) && !variable.starts_with('@') {
            found.insert(Reference {
                variable: variable.to_owned(),
                path,
            });
        }
        for index in rest {
            collect_references(index, bound, found);
        }
        return;
    }
    if let Expr::Comprehension(c) = &node.expr {
        collect_references(&c.iter_range, bound, found);
        collect_references(&c.accu_init, bound, found);
        let before = bound.len();
        bound.push(&c.iter_var);
        if let Some(second) = &c.iter_var2 {
            bound.push(second);
        }
        bound.push(&c.accu_var);
        for inner in [&c.loop_cond, &c.loop_step, &c.result] {
            collect_references(inner, bound, found);
        }
        bound.truncate(before);
        return;
    }
    if let Expr::Call(call) = &node.expr
        && let Some(Expr::Ident(namespace)) = call.target.as_deref().map(|t| &t.expr)
        && FUNCTION_NAMESPACES.contains(&namespace.as_str())
        && !bound.contains(&namespace.as_str())
    {
        // `lists.range(3)` calls a function; `lists` is no variable.
        for arg in &call.args {
            collect_references(arg, bound, found);
        }
        return;
    }
    for child in children(&node.expr) {
        collect_references(child, bound, found);
    }
}

/// The namespaces of the library's qualified functions (`lists.range`, `base64.encode`):
/// called on these, the name is the function's, not a variable's.
pub const FUNCTION_NAMESPACES: [&str; 8] = [
    "base64", "hash", "json", "lists", "math", "optional", "random", "strings",
];

/// `a.b["c"].?d` as the variable `a`, the path `[b, c, d]`, and the index expressions that
/// are not string literals (to walk on their own). `None` when `node` is not rooted in a
/// variable.
fn field_chain(node: &IdedExpr) -> Option<(&str, Vec<String>, Vec<&IdedExpr>)> {
    let mut path = Vec::new();
    let mut others = Vec::new();
    let mut current = node;
    loop {
        match &current.expr {
            Expr::Ident(name) => {
                path.reverse();
                return Some((name, path, others));
            }
            Expr::Select(select) => {
                path.push(select.field.clone());
                current = &select.operand;
            }
            Expr::Call(call)
                if call.target.is_none()
                    && call.args.len() == 2
                    && matches!(call.func_name.as_str(), "_[_]" | "_[?_]" | "_?._") =>
            {
                if let Expr::Literal(LiteralValue::String(field)) = &call.args[1].expr {
                    path.push(field.inner().to_owned());
                } else {
                    // A computed index ends the known path here.
                    path.clear();
                    others.push(&call.args[1]);
                }
                current = &call.args[0];
            }
            _ => return None,
        }
    }
}

/// How costly an expression is to evaluate, judged from its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Complexity {
    /// Nodes of the syntax tree, after macros are expanded.
    pub nodes: usize,
    /// The depth of the syntax tree.
    pub depth: usize,
    /// Calls of functions (operators such as `+` and `[]` do not count).
    pub calls: usize,
    /// Comprehensions: `all`, `exists`, `exists_one`, `map`, `filter` and the like.
    pub comprehensions: usize,
    /// The deepest nesting of comprehensions inside each other.
    pub comprehension_nesting: usize,
    /// `nodes + 2 × calls + 10 × comprehensions × comprehension_nesting`.
    pub score: usize,
    /// The class of the score; see [`CostClass`].
    pub class: CostClass,
}

/// A coarse cost class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CostClass {
    /// Score up to 20 and no comprehension: a field read, a comparison, a little arithmetic.
    Simple,
    /// Score up to 80 and comprehensions nested at most one deep.
    Moderate,
    /// Anything more: nested comprehensions, long chains of calls.
    Complex,
}

impl CostClass {
    /// The class as a word: `simple`, `moderate`, `complex`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CostClass::Simple => "simple",
            CostClass::Moderate => "moderate",
            CostClass::Complex => "complex",
        }
    }
}

/// The most score a [`CostClass::Simple`] expression has.
pub const SIMPLE_MAX_SCORE: usize = 20;
/// The most score a [`CostClass::Moderate`] expression has.
pub const MODERATE_MAX_SCORE: usize = 80;

pub(crate) fn complexity(root: &IdedExpr, depth: usize) -> Complexity {
    let mut nodes = 0;
    let mut calls = 0;
    let mut comprehensions = 0;
    let mut nesting = 0;
    let mut pending = vec![(root, 0_usize)];
    while let Some((node, level)) = pending.pop() {
        nodes += 1;
        let level = match &node.expr {
            Expr::Call(call) if !is_operator(&call.func_name) => {
                calls += 1;
                level
            }
            Expr::Comprehension(c) => {
                comprehensions += 1;
                nesting = nesting.max(level + 1);
                // The range and the initial value are outside the loop; the rest is inside.
                pending.push((&c.iter_range, level));
                pending.push((&c.accu_init, level));
                for inner in [&c.loop_cond, &c.loop_step, &c.result] {
                    pending.push((inner, level + 1));
                }
                continue;
            }
            _ => level,
        };
        pending.extend(children(&node.expr).into_iter().map(|child| (child, level)));
    }
    let score = nodes + 2 * calls + 10 * comprehensions * nesting;
    let class = if score <= SIMPLE_MAX_SCORE && comprehensions == 0 {
        CostClass::Simple
    } else if score <= MODERATE_MAX_SCORE && nesting <= 1 {
        CostClass::Moderate
    } else {
        CostClass::Complex
    };
    Complexity {
        nodes,
        depth,
        calls,
        comprehensions,
        comprehension_nesting: nesting,
        score,
        class,
    }
}

/// Operators are spelled with `_` around their symbol (`_+_`, `!_`) or start with `@`.
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.ends_with('_') || name.starts_with('@')
}

/// What an expression's result is, as far as its outermost node tells without types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Shape {
    /// A comparison, a logical operator, `!`, `in`, `has()` or a literal `true`/`false`.
    Bool,
    /// An integer literal.
    Int,
    /// An unsigned integer literal.
    Uint,
    /// A floating-point literal.
    Double,
    /// A string literal.
    String,
    /// A bytes literal.
    Bytes,
    /// `null`.
    Null,
    /// A list literal.
    List,
    /// A map literal.
    Map,
    /// A plain field path such as `schema.spec.name`: the type is the field's.
    Path,
    /// Anything else: a function call, arithmetic, a conditional, a comprehension.
    Unknown,
}

impl Shape {
    /// The CEL type name, or `None` for [`Shape::Path`] and [`Shape::Unknown`].
    #[must_use]
    pub fn type_name(self) -> Option<&'static str> {
        Some(match self {
            Shape::Bool => "bool",
            Shape::Int => "int",
            Shape::Uint => "uint",
            Shape::Double => "double",
            Shape::String => "string",
            Shape::Bytes => "bytes",
            Shape::Null => "null_type",
            Shape::List => "list",
            Shape::Map => "map",
            Shape::Path | Shape::Unknown => return None,
        })
    }
}

pub(crate) fn shape(root: &IdedExpr) -> Shape {
    match &root.expr {
        Expr::Literal(literal) => match literal {
            LiteralValue::Boolean(_) => Shape::Bool,
            LiteralValue::Int(_) => Shape::Int,
            LiteralValue::UInt(_) => Shape::Uint,
            LiteralValue::Double(_) => Shape::Double,
            LiteralValue::String(_) => Shape::String,
            LiteralValue::Bytes(_) => Shape::Bytes,
            LiteralValue::Null => Shape::Null,
        },
        Expr::List(_) => Shape::List,
        Expr::Map(_) => Shape::Map,
        Expr::Select(select) if select.test => Shape::Bool,
        Expr::Ident(_) | Expr::Select(_) | Expr::Call(_)
            if field_chain(root).is_some_and(|(_, _, rest)| rest.is_empty()) =>
        {
            Shape::Path
        }
        Expr::Call(call) => match call.func_name.as_str() {
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "_&&_" | "_||_" | "!_" | "@in"
            | "startsWith" | "endsWith" | "contains" | "matches" | "exists" | "all" => Shape::Bool,
            _ => Shape::Unknown,
        },
        Expr::Comprehension(c) => match &c.accu_init.expr {
            // all/exists/exists_one fold into a boolean accumulator (exists_one counts, then compares).
            Expr::Literal(LiteralValue::Boolean(_)) => Shape::Bool,
            _ => Shape::Unknown,
        },
        _ => Shape::Unknown,
    }
}

/// CEL's reserved words: never identifiers.
pub const RESERVED_WORDS: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The reference a plain field path (`schema.spec.name`) makes, recognised without the
/// parser; `None` for anything else (which the parser must see).
pub(crate) fn plain_path(source: &str) -> Option<Reference> {
    let text = source.trim_matches([' ', '\t', '\n', '\r']);
    let mut parts = text.split('.');
    let variable = parts.next()?;
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
            && !RESERVED_WORDS.contains(&part)
    };
    if !identifier(variable) || variable.starts_with('@') {
        return None;
    }
    let mut path = Vec::new();
    for part in parts {
        if !identifier(part) {
            return None;
        }
        path.push(part.to_owned());
    }
    Some(Reference {
        variable: variable.to_owned(),
        path,
    })
}

/// The complexity the parser would find for a plain path of `segments` identifiers.
pub(crate) fn path_complexity(segments: usize) -> Complexity {
    Complexity {
        nodes: segments,
        depth: segments,
        calls: 0,
        comprehensions: 0,
        comprehension_nesting: 0,
        score: segments,
        class: if segments <= SIMPLE_MAX_SCORE {
            CostClass::Simple
        } else {
            CostClass::Moderate
        },
    }
}
