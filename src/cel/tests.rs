//! The engine's behaviour: evaluation, types, references, complexity, errors, limits, cache.

use serde_json::json;

use super::*;

fn vars(json: &serde_json::Value) -> Variables {
    Variables::from_json(json).unwrap()
}

fn eval(source: &str) -> Result<Value, CelError> {
    Engine::global().evaluate(source, &Variables::new())
}

#[test]
fn evaluates_kro_style_expressions() {
    let v = vars(&json!({
        "schema": {"spec": {"replicas": 3, "name": "web"}},
        "deployment": {"status": {"availableReplicas": 0}}
    }));
    let engine = Engine::global();
    assert_eq!(
        engine.evaluate("schema.spec.replicas > 2", &v),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        engine.evaluate("schema.spec.name + '-svc'", &v),
        Ok(Value::String("web-svc".into()))
    );
    assert_eq!(
        engine.evaluate("deployment.status.availableReplicas > 0", &v),
        Ok(Value::Bool(false))
    );
}

#[test]
fn types_map_faithfully_both_ways() {
    let v = Variables::from_yaml(
        "i: 1\nu: !uint 18446744073709551615\nd: 1.5\ns: x\nb: !bytes aGk=\nn: null\n\
         t: !timestamp 2024-01-02T03:04:05Z\ndur: !duration 1m30s\nl: [1, two]\nm: {k: true}\n",
    )
    .unwrap();
    let engine = Engine::global();
    for (expr, expected) in [
        ("type(i) == int", true),
        ("type(u) == uint", true),
        ("type(d) == double", true),
        ("type(s) == string", true),
        ("type(b) == bytes", true),
        ("n == null", true),
        ("type(t) == google.protobuf.Timestamp", true),
        ("dur == duration('90s')", true),
        ("l[1] == 'two'", true),
        ("m.k", true),
    ] {
        assert_eq!(
            engine.evaluate(expr, &v),
            Ok(Value::Bool(expected)),
            "{expr}"
        );
    }
    assert_eq!(eval("1u + 2u"), Ok(Value::Uint(3)));
    assert_eq!(eval("b'\\x00\\xff'"), Ok(Value::Bytes(vec![0, 255])));
    assert_eq!(eval("2.0 / 4.0"), Ok(Value::Double(0.5)));
    let t = eval("timestamp('2024-01-02T03:04:05.5Z')").unwrap();
    assert_eq!(t.to_json(), json!("2024-01-02T03:04:05.500Z"));
    assert_eq!(eval("duration('1.5s')").unwrap().to_json(), json!("1.5s"));
    assert_eq!(eval("b'hi'").unwrap().to_json(), json!("aGk="));
    assert_eq!(
        eval("{'a': [1, 2u, 3.5]}").unwrap().to_json(),
        json!({"a": [1, 2, 3.5]})
    );
    assert_eq!(eval("1.0 / 0.0").unwrap().to_json(), json!("Infinity"));
    let yaml =
        serde_norway::to_string(&eval("[2u, b'hi', duration('2s')]").unwrap().to_yaml()).unwrap();
    assert_eq!(yaml, "- !uint 2\n- !bytes aGk=\n- !duration 2s\n");
}

#[test]
fn json_numbers_become_int_uint_or_double() {
    let v = vars(&json!({"a": 1, "b": 18_446_744_073_709_551_615_u64, "c": 1.0}));
    let engine = Engine::global();
    assert_eq!(engine.evaluate("type(a) == int", &v), Ok(Value::Bool(true)));
    assert_eq!(
        engine.evaluate("type(b) == uint", &v),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        engine.evaluate("type(c) == double", &v),
        Ok(Value::Bool(true))
    );
}

#[test]
fn references_are_variables_and_paths_without_bound_names() {
    let program = Engine::global()
        .compile(
            "schema.spec.name + database.status['endpoint'] + items.map(x, x.name)[0] + has(a.b.c)",
        )
        .unwrap();
    let dotted: Vec<_> = program.references().iter().map(Reference::dotted).collect();
    assert_eq!(
        dotted,
        [
            "a.b.c",
            "database.status.endpoint",
            "items",
            "schema.spec.name"
        ]
    );
}

#[test]
fn qualified_functions_are_not_variables() {
    let program = Engine::global()
        .compile("lists.range(n).size() + size(base64.encode(b\"x\")) + math.greatest(a.x, 1)")
        .unwrap();
    let dotted: Vec<_> = program.references().iter().map(Reference::dotted).collect();
    assert_eq!(dotted, ["a.x", "n"]);
    // A bound name that shadows a namespace is still the bound name.
    let program = Engine::global()
        .compile("[1].map(lists, lists + m)")
        .unwrap();
    let dotted: Vec<_> = program.references().iter().map(Reference::dotted).collect();
    assert_eq!(dotted, ["m"]);
}

#[test]
fn complexity_grows_with_calls_and_comprehensions() {
    let engine = Engine::global();
    let simple = engine.compile("schema.spec.replicas > 2").unwrap();
    let moderate = engine
        .compile("items.filter(i, i.ready).map(i, i.name).size() > 0")
        .unwrap();
    let complex = engine
        .compile("items.all(i, i.containers.all(c, c.ports.exists(p, p.port == 80)))")
        .unwrap();
    assert_eq!(simple.complexity().class, CostClass::Simple);
    assert_eq!(moderate.complexity().class, CostClass::Moderate);
    assert_eq!(complex.complexity().class, CostClass::Complex);
    assert_eq!(complex.complexity().comprehension_nesting, 3);
    assert!(simple.complexity().score < moderate.complexity().score);
    assert!(moderate.complexity().score < complex.complexity().score);
}

#[test]
fn syntax_errors_carry_their_position() {
    let error = Engine::global()
        .compile("schema.spec.replicas >")
        .unwrap_err();
    let CelError::Syntax { position, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!((position.line, position.column), (1, 23), "{error}");
    assert_eq!(
        position.caret("schema.spec.replicas >"),
        "schema.spec.replicas >\n                      ^"
    );
}

#[test]
fn runtime_errors_are_typed_and_placed() {
    let v = vars(&json!({"m": {"a": 1}, "big": i64::MAX}));
    let engine = Engine::global();
    let cases = [
        ("m.a + m.missing", EvaluationErrorKind::NoSuchKey, 7),
        ("1 + 10 / 0", EvaluationErrorKind::DivisionByZero, 7),
        ("1 + 10 % 0", EvaluationErrorKind::DivisionByZero, 7),
        ("big + 1", EvaluationErrorKind::Overflow, 4),
        ("1 + 'a'", EvaluationErrorKind::Type, 2),
        ("nope + 1", EvaluationErrorKind::UndeclaredReference, 0),
        ("[1][5]", EvaluationErrorKind::IndexOutOfBounds, 3),
    ];
    for (source, expected_kind, offset) in cases {
        match engine.evaluate(source, &v) {
            Err(CelError::Evaluation { kind, position, .. }) => {
                assert_eq!(kind, expected_kind, "{source}");
                assert_eq!(position.map(|p| p.offset), Some(offset), "{source}");
            }
            other => panic!("{source}: {other:?}"),
        }
    }
}

#[test]
fn hostile_expressions_fail_cleanly() {
    let engine = Engine::new(8);
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(
        engine.compile(&parens),
        Err(CelError::Syntax { .. })
    ));

    let long = format!("'{}'", "a".repeat(1_000_000));
    assert!(matches!(
        engine.compile(&long),
        Err(CelError::TooLong {
            chars: 1_000_002,
            ..
        })
    ));

    let chain = format!("1{}", " + 1".repeat(20_000));
    assert!(matches!(
        engine.compile(&chain),
        Err(CelError::TooDeep { .. })
    ));

    // Found by the property tests: garbage that sends the parser's error recovery deep.
    let garbage = "-}size(has(.all(x, a*.exists(k, v, !.exists(k, v, truehas(.exists(k, v, cel.bind(v, 1, ?||.?c==1u=={+}size([cel.bind(v, 1, quantity('1Gi')1u1.5%+.?c.exists(k, v, ,ip('::1')]]{";
    assert!(matches!(
        engine.compile(garbage),
        Err(CelError::Syntax { .. })
    ));

    let deep_but_allowed = format!("1{}", " + 1".repeat(200));
    assert_eq!(
        engine.evaluate(&deep_but_allowed, &Variables::new()),
        Ok(Value::Int(201))
    );
}

#[test]
fn hostile_variables_fail_cleanly() {
    let mut nested = json!(1);
    for _ in 0..200 {
        nested = json!([nested]);
    }
    let error = Variables::from_json(&json!({ "x": nested })).unwrap_err();
    assert!(error.message.contains("nested deeper"), "{error}");
    assert!(Variables::from_yaml("x: !nope 1").is_err());
    assert!(Variables::from_yaml("- 1").is_err());
    assert!(Variables::from_yaml("x: [").is_err());
}

#[test]
fn the_cache_counts_hits_misses_and_evictions() {
    let engine = Engine::new(2);
    engine.compile("1 + 1").unwrap();
    engine.compile("1 + 1").unwrap();
    let stats = engine.cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));
    for i in 0..20 {
        engine.compile(&format!("{i} + 2")).unwrap();
    }
    let stats = engine.cache_stats();
    assert!(stats.entries <= 2, "{stats:?}");
    assert!(stats.evictions >= 18, "{stats:?}");
    assert_eq!(stats.capacity, 2);
    assert!(engine.compile("1 +").is_err());
    assert_eq!(
        engine.cache_stats().misses,
        22,
        "failures are compiled every time"
    );
}

#[test]
fn clearing_the_cache_forgets_recent_programs_on_every_thread() {
    let engine = Engine::new(16);
    let first = engine.compile("2 * 21").unwrap();
    assert!(Arc::ptr_eq(&first, &engine.compile("2 * 21").unwrap()));
    engine.clear_cache();
    let again = engine.compile("2 * 21").unwrap();
    assert!(!Arc::ptr_eq(&first, &again), "recompiled after clear_cache");
    let stats = engine.cache_stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));

    // Another engine never sees this one's programs, even on the same thread.
    let other = Engine::new(16);
    other.compile("2 * 21").unwrap();
    assert_eq!(other.cache_stats().misses, 1);

    // Other threads share the cache.
    std::thread::scope(|s| {
        s.spawn(|| assert!(Arc::ptr_eq(&again, &engine.compile("2 * 21").unwrap())));
    });
}

#[test]
fn durations_parse_like_cel() {
    assert_eq!(parse_duration("1h30m"), Ok(chrono::TimeDelta::minutes(90)));
    assert_eq!(
        parse_duration("-1.5s"),
        Ok(chrono::TimeDelta::milliseconds(-1500))
    );
    assert_eq!(parse_duration("0"), Ok(chrono::TimeDelta::zero()));
    assert_eq!(
        parse_duration("1us"),
        Ok(chrono::TimeDelta::microseconds(1))
    );
    for bad in ["", "1", "1x", "h", ".s", "1.2.3s", "99999999999999999999h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(
        format_duration(chrono::TimeDelta::microseconds(-1)),
        "-0.000001s"
    );
}

#[test]
fn inspecting_a_plain_path_matches_the_parser() {
    let engine = Engine::new(16);
    for source in [
        "schema",
        "schema.spec.name",
        " deployment.status.readyReplicas ",
        "a._b.c9",
    ] {
        let fast = engine.inspect(source).unwrap();
        let parsed = engine.compile_uncached(source).unwrap();
        assert_eq!(fast.references, parsed.references(), "{source}");
        assert_eq!(&fast.complexity, parsed.complexity(), "{source}");
        assert_eq!(fast.shape, parsed.shape(), "{source}");
    }
    // Not plain paths: these go through the parser.
    for source in ["a.in", "a[0]", "a.b()", "1a", "a.", "", "has(a.b)", "a.é"] {
        assert!(super::analysis::plain_path(source).is_none(), "{source}");
    }
    let stats = engine.cache_stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 0),
        "plain paths never reach the cache"
    );
}

#[test]
fn shapes_tell_booleans_literals_and_paths() {
    let engine = Engine::global();
    for (source, shape) in [
        ("a.b > 1", Shape::Bool),
        ("a.all(x, x > 0)", Shape::Bool),
        ("a.exists(x, x > 0)", Shape::Bool),
        ("has(a.b)", Shape::Bool),
        ("!a", Shape::Bool),
        ("'x'", Shape::String),
        ("1", Shape::Int),
        ("1u", Shape::Uint),
        ("1.5", Shape::Double),
        ("[1]", Shape::List),
        ("{'a': 1}", Shape::Map),
        ("null", Shape::Null),
        ("a.b.c", Shape::Path),
        ("a['b']", Shape::Path),
        ("a.b + 1", Shape::Unknown),
        ("a.map(x, x)", Shape::Unknown),
        ("a ? 1 : 2", Shape::Unknown),
    ] {
        assert_eq!(engine.compile(source).unwrap().shape(), shape, "{source}");
    }
}
