//! Property tests of the CEL engine: it never panics on any input, integer arithmetic agrees
//! with a reference evaluator (errors included), and values survive the trip through CEL.

use kubezen::cel::{CelError, Engine, EvaluationErrorKind, Value, Variables};
use proptest::prelude::*;

/// An integer expression and the value a direct evaluation with checked arithmetic gives
/// (`None` where CEL must report an error: overflow, or division by zero).
#[derive(Debug, Clone)]
enum Arith {
    Int(i64),
    Op(Box<Arith>, char, Box<Arith>),
    Neg(Box<Arith>),
}

impl Arith {
    fn source(&self) -> String {
        match self {
            Arith::Int(i) if *i < 0 => format!("({i})"),
            Arith::Int(i) => i.to_string(),
            Arith::Op(a, op, b) => format!("({} {op} {})", a.source(), b.source()),
            Arith::Neg(a) => format!("-({})", a.source()),
        }
    }

    fn reference(&self) -> Option<i64> {
        match self {
            Arith::Int(i) => Some(*i),
            Arith::Neg(a) => a.reference()?.checked_neg(),
            Arith::Op(a, op, b) => {
                let (a, b) = (a.reference()?, b.reference()?);
                match op {
                    '+' => a.checked_add(b),
                    '-' => a.checked_sub(b),
                    '*' => a.checked_mul(b),
                    '/' => a.checked_div(b),
                    '%' => a.checked_rem(b),
                    _ => unreachable!(),
                }
            }
        }
    }
}

fn arith() -> impl Strategy<Value = Arith> {
    let leaf = prop_oneof![
        (-1000_i64..1000).prop_map(Arith::Int),
        prop_oneof![Just(i64::MAX), Just(i64::MIN + 1), Just(0), Just(-1)].prop_map(Arith::Int),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!['+', '-', '*', '/', '%']),
                inner.clone()
            )
                .prop_map(|(a, op, b)| Arith::Op(Box::new(a), op, Box::new(b))),
            inner.prop_map(|a| Arith::Neg(Box::new(a))),
        ]
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<u64>().prop_map(|u| serde_json::json!(u)),
        (-1e12_f64..1e12).prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn any_text_compiles_or_fails_cleanly(source in "[ -~]{0,120}") {
        let engine = Engine::global();
        if let Ok(program) = engine.compile(&source) {
            let _ = program.evaluate(&Variables::new());
        }
    }

    #[test]
    fn cel_like_text_compiles_or_fails_cleanly(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "a", ".b", "[0]", "(", ")", "[", "]", "{", "}", ":", ",", "+", "-", "*", "/", "%",
                "?", "!", "&&", "||", "==", "<", " in ", "1", "1u", "1.5", "'s'", "b'x'", "true",
                "null", ".map(x, x)", ".all(x, ", "size(", "has(", "cel.bind(v, 1, ", ".?c",
                "quantity('1Gi')", "ip('::1')", ".exists(k, v, ", "x", "v",
            ]),
            0..40,
        )
    ) {
        let source: String = parts.concat();
        let vars = Variables::from_json(&serde_json::json!({"a": {"b": [1, 2], "c": null}})).unwrap();
        if let Ok(program) = Engine::global().compile(&source) {
            let _ = program.evaluate(&vars);
        }
    }

    #[test]
    fn integer_arithmetic_matches_a_checked_reference(expr in arith()) {
        let result = Engine::global().evaluate(&expr.source(), &Variables::new());
        match (expr.reference(), result) {
            (Some(expected), Ok(value)) => prop_assert_eq!(value, Value::Int(expected)),
            (None, Err(CelError::Evaluation { kind, .. })) => prop_assert!(
                matches!(kind, EvaluationErrorKind::Overflow | EvaluationErrorKind::DivisionByZero),
                "{:?}", kind
            ),
            (expected, got) => prop_assert!(false, "{}: expected {:?}, got {:?}", expr.source(), expected, got),
        }
    }

    #[test]
    fn json_values_survive_the_trip_through_cel(value in json_value()) {
        let vars = Variables::from_json(&serde_json::json!({ "x": value })).unwrap();
        let back = Engine::global().evaluate("x", &vars).unwrap().to_json();
        // JSON numbers come back as the CEL type they went in as.
        prop_assert_eq!(back, value);
    }
}
