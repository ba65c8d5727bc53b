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
    for child in children(&node.expr) {
        collect_references(child, bound, found);
    }
}

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
