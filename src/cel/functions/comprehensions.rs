//! cel-go's `Bindings` (`cel.bind`) and `TwoVarComprehensions` (`all`, `exists`, `existsOne`,
//! `transformList`, `transformMap`, `transformMapEntry` with two variables).
//!
//! The `cel` crate's interpreter iterates with one variable, so a two-variable comprehension
//! iterates over `@kubezen.entries(range)`, the `[key, value]` pairs of a map or the
//! `[index, element]` pairs of a list, and binds the two variables from each pair with
//! `cel.bind` before evaluating the body.

use std::{collections::HashMap, sync::Arc};

use cel::{
    DeclarationError, Env, Value,
    common::{
        ast::{
            CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue, MapExpr, operators,
        },
        types::{DYN_TYPE, LIST_TYPE, MAP_TYPE},
    },
    objects::Key,
    parser::{Macro, MacroExprHelper, ParseError},
};

use super::{Outcome, overload};

const ENTRIES: &str = "@kubezen.entries";
const INSERT: &str = "@kubezen.insert";
const INSERT_ENTRY: &str = "@kubezen.insertEntry";
const ITEM: &str = "@kubezen.item";
const RESULT: &str = "@result";

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_macro(Macro::receiver("bind", 3, bind_macro))?;
    for (name, arity, kind) in [
        ("all", 3, Kind::All),
        ("exists", 3, Kind::Exists),
        ("existsOne", 3, Kind::ExistsOne),
        ("exists_one", 3, Kind::ExistsOne),
        ("transformList", 3, Kind::TransformList),
        ("transformList", 4, Kind::TransformList),
        ("transformMap", 3, Kind::TransformMap),
        ("transformMap", 4, Kind::TransformMap),
        ("transformMapEntry", 3, Kind::TransformMapEntry),
        ("transformMapEntry", 4, Kind::TransformMapEntry),
    ] {
        env.add_macro(Macro::receiver(name, arity, move |helper, target, args| {
            two_variables(helper, target, args, kind).map(Some)
        }))?;
    }
    overload!(env, ENTRIES, "kubezen_entries_list", [LIST_TYPE], entries)?;
    overload!(env, ENTRIES, "kubezen_entries_map", [MAP_TYPE], entries)?;
    overload!(
        env,
        INSERT,
        "kubezen_insert",
        [MAP_TYPE, DYN_TYPE, DYN_TYPE],
        insert
    )?;
    overload!(
        env,
        INSERT_ENTRY,
        "kubezen_insert_entry",
        [MAP_TYPE, MAP_TYPE],
        insert_entry
    )?;
    Ok(())
}

/// `cel.bind(name, init, expr)`: `expr` with `name` bound to `init`, evaluated once.
fn bind_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(ns)) if ns == "cel") {
        return Ok(None);
    }
    let body = args.pop().expect("three arguments");
    let init = args.pop().expect("three arguments");
    let name = args.pop().expect("three arguments");
    let Expr::Ident(name) = name.expr else {
        return Err(helper.new_error(
            name.id,
            "cel.bind() variable name must be a simple identifier",
        ));
    };
    Ok(Some(bind(helper, name, init, body)))
}

/// A comprehension over nothing whose accumulator is `name`: `body` with `name` bound.
fn bind(
    helper: &mut MacroExprHelper<'_>,
    name: String,
    init: IdedExpr,
    body: IdedExpr,
) -> IdedExpr {
    let range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let step = helper.next_expr(Expr::Ident(name.clone()));
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: "#unused".to_owned(),
        iter_var2: None,
        accu_var: name,
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result: body,
    })))
}

#[derive(Clone, Copy)]
enum Kind {
    All,
    Exists,
    ExistsOne,
    TransformList,
    TransformMap,
    TransformMapEntry,
}

fn call(helper: &mut MacroExprHelper<'_>, function: &str, args: Vec<IdedExpr>) -> IdedExpr {
    helper.next_expr(Expr::Call(CallExpr {
        func_name: function.to_owned(),
        target: None,
        args,
    }))
}

fn ident(helper: &mut MacroExprHelper<'_>, name: &str) -> IdedExpr {
    helper.next_expr(Expr::Ident(name.to_owned()))
}

fn literal(helper: &mut MacroExprHelper<'_>, value: LiteralValue) -> IdedExpr {
    helper.next_expr(Expr::Literal(value))
}

#[allow(clippy::too_many_lines)] // one expansion per kind, side by side, reads best
fn two_variables(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
    kind: Kind,
) -> Result<IdedExpr, ParseError> {
    let mut names = Vec::with_capacity(2);
    for arg in args.drain(..2) {
        match arg.expr {
            Expr::Ident(name) => names.push(name),
            _ => {
                return Err(
                    helper.new_error(arg.id, "the iteration variables must be simple identifiers")
                );
            }
        }
    }
    if names[0] == names[1] {
        return Err(helper.new_error(helper_id(args), "the two iteration variables must differ"));
    }
    let (value_name, key_name) = (names.pop().expect("two"), names.pop().expect("two"));
    // Each use of the body gets the pair's two halves bound around it.
    let bound = |helper: &mut MacroExprHelper<'_>, body: IdedExpr| {
        let item = ident(helper, ITEM);
        let zero = literal(helper, LiteralValue::Int(0.into()));
        let key = call(helper, operators::INDEX, vec![item, zero]);
        let item = ident(helper, ITEM);
        let one = literal(helper, LiteralValue::Int(1.into()));
        let value = call(helper, operators::INDEX, vec![item, one]);
        let inner = bind(helper, value_name.clone(), value, body);
        bind(helper, key_name.clone(), key, inner)
    };
    let range_target = target.take().expect("a receiver macro has a target");
    let range = call(helper, ENTRIES, vec![range_target]);
    let result = || Expr::Ident(RESULT.to_owned());

    let (init, cond, step, out) = match kind {
        Kind::All | Kind::Exists => {
            let predicate = args.pop().expect("three arguments");
            let predicate = bound(helper, predicate);
            let is_all = matches!(kind, Kind::All);
            let init = literal(helper, LiteralValue::Boolean(is_all.into()));
            let accu = helper.next_expr(result());
            let cond_arg = if is_all {
                accu
            } else {
                call(helper, operators::LOGICAL_NOT, vec![accu])
            };
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, vec![cond_arg]);
            let accu = helper.next_expr(result());
            let op = if is_all {
                operators::LOGICAL_AND
            } else {
                operators::LOGICAL_OR
            };
            let step = call(helper, op, vec![accu, predicate]);
            let out = helper.next_expr(result());
            (init, cond, step, out)
        }
        Kind::ExistsOne => {
            let predicate = args.pop().expect("three arguments");
            let predicate = bound(helper, predicate);
            let init = literal(helper, LiteralValue::Int(0.into()));
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let accu = helper.next_expr(result());
            let one = literal(helper, LiteralValue::Int(1.into()));
            let plus_one = call(helper, operators::ADD, vec![accu, one]);
            let accu = helper.next_expr(result());
            let step = call(
                helper,
                operators::CONDITIONAL,
                vec![predicate, plus_one, accu],
            );
            let accu = helper.next_expr(result());
            let one = literal(helper, LiteralValue::Int(1.into()));
            let out = call(helper, operators::EQUALS, vec![accu, one]);
            (init, cond, step, out)
        }
        Kind::TransformList | Kind::TransformMap | Kind::TransformMapEntry => {
            let transform = args.pop().expect("a transform");
            let filter = args.pop();
            let transform = bound(helper, transform);
            let accu = helper.next_expr(result());
            let (init, appended) = match kind {
                Kind::TransformList => {
                    let init = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
                    let element = helper.next_expr(Expr::List(ListExpr::new(vec![transform])));
                    (init, call(helper, operators::ADD, vec![accu, element]))
                }
                Kind::TransformMap => {
                    let init = helper.next_expr(Expr::Map(MapExpr::default()));
                    let key = ident(helper, &key_name);
                    let key = bound(helper, key);
                    (init, call(helper, INSERT, vec![accu, key, transform]))
                }
                _ => {
                    let init = helper.next_expr(Expr::Map(MapExpr::default()));
                    (init, call(helper, INSERT_ENTRY, vec![accu, transform]))
                }
            };
            let step = match filter {
                Some(filter) => {
                    let filter = bound(helper, filter);
                    let accu = helper.next_expr(result());
                    call(helper, operators::CONDITIONAL, vec![filter, appended, accu])
                }
                None => appended,
            };
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let out = helper.next_expr(result());
            (init, cond, step, out)
        }
    };
    Ok(
        helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range: range,
            iter_var: ITEM.to_owned(),
            iter_var2: None,
            accu_var: RESULT.to_owned(),
            accu_init: init,
            loop_cond: cond,
            loop_step: step,
            result: out,
        }))),
    )
}

fn helper_id(args: &[IdedExpr]) -> u64 {
    args.first().map_or(0, |a| a.id)
}

/// `[index, element]` pairs of a list, `[key, value]` pairs of a map (in key order, so the
/// result does not depend on hashing).
fn entries(args: &[Value]) -> Outcome {
    let pairs = match &args[0] {
        Value::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let index = i64::try_from(i).map_err(|_| "list too long".to_owned())?;
                Ok(Value::List(Arc::new(vec![Value::Int(index), v.clone()])))
            })
            .collect::<Result<Vec<_>, String>>()?,
        Value::Map(map) => {
            let mut keys: Vec<&Key> = map.map.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| Value::List(Arc::new(vec![key_value(k), map.map[k].clone()])))
                .collect()
        }
        other => return Err(format!("cannot iterate over {other:?}")),
    };
    Ok(Value::List(Arc::new(pairs)))
}

fn key_value(key: &Key) -> Value {
    match key {
        Key::Int(i) => Value::Int(*i),
        Key::Uint(u) => Value::UInt(*u),
        Key::Bool(b) => Value::Bool(*b),
        Key::String(s) => Value::String(Arc::clone(s)),
    }
}

pub(super) fn map_key(value: &Value) -> Result<Key, String> {
    Ok(match value {
        Value::Int(i) => Key::Int(*i),
        Value::UInt(u) => Key::Uint(*u),
        Value::Bool(b) => Key::Bool(*b),
        Value::String(s) => Key::String(Arc::clone(s)),
        other => return Err(format!("{other:?} cannot be a map key")),
    })
}

fn map_of(value: &Value) -> Result<HashMap<Key, Value>, String> {
    match value {
        Value::Map(map) => Ok((*map.map).clone()),
        other => Err(format!("expected a map, got {other:?}")),
    }
}

/// The map with `key: value` added; a key seen twice is an error, as in cel-go.
fn insert(args: &[Value]) -> Outcome {
    let mut map = map_of(&args[0])?;
    let key = map_key(&args[1])?;
    if map.contains_key(&key) {
        return Err(format!("insert failed: key {:?} already exists", args[1]));
    }
    map.insert(key, args[2].clone());
    Ok(Value::Map(map.into()))
}

/// The map with the entries of a one-entry map added (`transformMapEntry`).
fn insert_entry(args: &[Value]) -> Outcome {
    let mut map = map_of(&args[0])?;
    let entry = map_of(&args[1])?;
    if entry.len() != 1 {
        return Err(format!(
            "transformMapEntry needs a map of one entry, got {}",
            entry.len()
        ));
    }
    for (key, value) in entry {
        if map.contains_key(&key) {
            return Err(format!("insert failed: key {key:?} already exists"));
        }
        map.insert(key, value);
    }
    Ok(Value::Map(map.into()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, assert_true, eval};
    use crate::cel::Value;

    #[test]
    fn bind() {
        assert_true(&[
            "cel.bind(a, 'hello', a + a) == 'hellohello'",
            "cel.bind(x, [1, 2], x.map(y, y * 2)) == [2, 4]",
            "cel.bind(a, 1, cel.bind(b, a + 1, a + b)) == 3",
        ]);
    }

    #[test]
    fn two_variable_all_exists_exists_one() {
        assert_true(&[
            "[1, 2, 3].all(i, v, v > i)",
            "!['a', 'b'].all(i, v, i == 0)",
            "{'a': 1, 'b': 2}.all(k, v, k.size() == 1 && v > 0)",
            "{'a': 1, 'b': 2}.exists(k, v, k == 'b' && v == 2)",
            "![1, 2].exists(i, v, i == v)",
            "[0, 5, 1].existsOne(i, v, i == v)",
            "![0, 1].existsOne(i, v, i == v)",
            "{'a': 'a', 'b': 'c'}.exists_one(k, v, k == v)",
        ]);
    }

    #[test]
    fn transforms() {
        assert_true(&[
            "[1, 2, 3].transformList(i, v, i * v) == [0, 2, 6]",
            "[1, 2, 3].transformList(i, v, v > 1, v) == [2, 3]",
            "{'a': 1, 'b': 2}.transformList(k, v, k) == ['a', 'b']",
            "{'a': 1, 'b': 2}.transformMap(k, v, v * 10) == {'a': 10, 'b': 20}",
            "{'a': 1, 'b': 2}.transformMap(k, v, v > 1, v * 10) == {'b': 20}",
            "[10, 20].transformMap(i, v, v + i) == {0: 10, 1: 21}",
            "{'a': 1}.transformMapEntry(k, v, {k + k: v}) == {'aa': 1}",
            "{'a': 1, 'b': 2}.transformMapEntry(k, v, v == 2, {v: k}) == {2: 'b'}",
        ]);
        assert_error(
            "{'a': 1, 'b': 2}.transformMapEntry(k, v, {'x': v})",
            "already exists",
        );
        assert_eq!(eval("[].transformList(i, v, v)"), Value::List(vec![]));
    }

    #[test]
    fn bad_iteration_variables_are_syntax_errors() {
        let engine = crate::cel::Engine::global();
        assert!(engine.compile("[1].all(i, i, true)").is_err());
        assert!(engine.compile("[1].all(i.j, v, true)").is_err());
        assert!(engine.compile("cel.bind(a.b, 1, 2)").is_err());
    }
}
