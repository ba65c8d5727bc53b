//! KRO's CEL environment: the standard library, the extensions KRO enables, and the functions
//! the `cel` crate lacks, written to cel-go's, Kubernetes' and KRO's semantics.
//!
//! Functions here are written against [`cel::Value`] and registered through [`overload!`],
//! which converts the arguments and the result. Each library is a module with a `register`
//! function; `docs/cel-functions.md` lists every function with its status and its test.

mod comprehensions;
mod kro;
mod kubernetes;

use cel::{
    Env, ExecutionError, Value,
    common::value::{CowVal, Val},
    extensions,
};

/// The environment every [`super::Engine`] compiles and evaluates in.
pub(crate) fn environment() -> Env {
    let mut env = Env::stdlib();
    // KRO keeps the last entry of a map literal that repeats a key, as cel-go does.
    env.set_error_on_duplicate_map_keys(false);
    let registered = env
        .add_extension(extensions::strings)
        .and_then(|()| env.add_extension(extensions::lists))
        .and_then(|()| env.add_extension(extensions::encoders))
        .and_then(|()| env.add_extension(extensions::math))
        .and_then(|()| env.add_extension(optional_list_ends))
        .and_then(|()| env.add_extension(comprehensions::register))
        .and_then(|()| env.add_extension(kubernetes::register))
        .and_then(|()| env.add_extension(kro::register));
    // Every library registers distinct names: a conflict is a bug that any test catches.
    registered.expect("the CEL libraries register without conflicts");
    env
}

/// cel-go's `OptionalTypes` version 2 adds `list.first()` and `list.last()`, which the `cel`
/// crate's optional library lacks: an optional of the first or last element, none when empty.
fn optional_list_ends(env: &mut Env) -> Result<(), cel::DeclarationError> {
    use cel::{common::types::LIST_TYPE, objects::OptionalValue};
    fn end(args: &[Value], last: bool) -> Outcome {
        let items = list(args, 0)?;
        let item = if last { items.last() } else { items.first() };
        let optional = item.map_or_else(OptionalValue::none, |v| OptionalValue::of(v.clone()));
        Ok(Value::Opaque(std::sync::Arc::new(optional)))
    }
    overload!(env, "first", "list_first", member LIST_TYPE, [], |a| end(a, false))?;
    overload!(env, "last", "list_last", member LIST_TYPE, [], |a| end(a, true))
}

/// The result of a function written against [`cel::Value`]: a message becomes a function
/// error naming the function.
pub(crate) type Outcome = Result<Value, String>;

/// Calls `f` with the arguments as [`cel::Value`]s and boxes its result.
pub(crate) fn call<'b, 'v>(
    name: &str,
    args: &[CowVal<'b, 'v>],
    f: fn(&[Value]) -> Outcome,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let values = args
        .iter()
        .map(|arg| Value::try_from(arg.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let result = f(&values).map_err(|message| ExecutionError::function_error(name, message))?;
    let boxed: Box<dyn Val> = Box::<dyn Val>::try_from(result)?;
    Ok(CowVal::Owned(boxed))
}

/// Registers `$f: fn(&[cel::Value]) -> Outcome` as an overload of `$name`: global, or a member
/// of values of type `$target`, taking arguments of the listed types.
macro_rules! overload {
    ($env:expr, $name:expr, $id:expr, [$($arg:expr),* $(,)?], $f:expr) => {{
        fn wrapper<'b, 'v>(
            args: Vec<cel::common::value::CowVal<'b, 'v>>,
        ) -> Result<cel::common::value::CowVal<'b, 'v>, cel::ExecutionError> {
            $crate::cel::functions::call($name, &args, $f)
        }
        $env.add_overload($name, $id, vec![$($arg),*], wrapper)
    }};
    ($env:expr, $name:expr, $id:expr, member $target:expr, [$($arg:expr),* $(,)?], $f:expr) => {{
        fn wrapper<'b, 'v>(
            args: Vec<cel::common::value::CowVal<'b, 'v>>,
        ) -> Result<cel::common::value::CowVal<'b, 'v>, cel::ExecutionError> {
            $crate::cel::functions::call($name, &args, $f)
        }
        $env.add_member_overload($name, $id, $target, vec![$($arg),*], wrapper)
    }};
}
pub(crate) use overload;

/// The string argument at `index`, for functions whose overloads declare it a string.
pub(crate) fn string(args: &[Value], index: usize) -> Result<&str, String> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

/// The int argument at `index`.
pub(crate) fn int(args: &[Value], index: usize) -> Result<i64, String> {
    match args.get(index) {
        Some(Value::Int(i)) => Ok(*i),
        other => Err(format!("expected an int, got {other:?}")),
    }
}

/// The list argument at `index`.
pub(crate) fn list(args: &[Value], index: usize) -> Result<&[Value], String> {
    match args.get(index) {
        Some(Value::List(items)) => Ok(items),
        other => Err(format!("expected a list, got {other:?}")),
    }
}

/// The string form of one of this module's opaque values (an IP, a CIDR, a quantity, a
/// semver or a URL), for results shown outside CEL.
pub(crate) fn opaque_to_string(opaque: &dyn cel::objects::Opaque) -> Option<String> {
    kubernetes::opaque_to_string(opaque)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Evaluation helpers for the libraries' tests.

    use crate::cel::{Engine, Value, Variables};

    /// Evaluates `source` with no variables, panicking with the error.
    pub(crate) fn eval(source: &str) -> Value {
        Engine::global()
            .evaluate(source, &Variables::new())
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    /// Asserts that each expression evaluates to `true`.
    pub(crate) fn assert_true(sources: &[&str]) {
        for source in sources {
            assert_eq!(eval(source), Value::Bool(true), "{source}");
        }
    }

    /// Asserts that each expression fails, and its message contains `needle`.
    pub(crate) fn assert_error(source: &str, needle: &str) {
        match Engine::global().evaluate(source, &Variables::new()) {
            Err(error) => assert!(error.to_string().contains(needle), "{source}: {error}"),
            Ok(value) => panic!("{source}: expected an error, got {value:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The standard library and the `cel` crate's extensions, as KRO's expressions use them.

    use super::testing::{assert_error, assert_true, eval};
    use crate::cel::Value;

    #[test]
    fn standard_operators() {
        assert_true(&[
            "1 + 2 * 3 - 4 / 2 % 3 == 5",
            "1u + 2u == 3u",
            "1.5 * 2.0 == 3.0",
            "-(3) == -3",
            "'a' + 'b' == 'ab'",
            "b'a' + b'b' == b'ab'",
            "[1] + [2] == [1, 2]",
            "1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && 1 != 2",
            "'a' < 'b'",
            "true || false",
            "!false",
            "(1 > 2 ? 'x' : 'y') == 'y'",
            "2 in [1, 2]",
            "'k' in {'k': 1}",
            "[1, 2][1] == 2",
            "{'a': {'b': 1}}.a.b == 1",
            "{'a': 1}['a'] == 1",
            "1 == 1.0 && 1u == 1",
        ]);
        assert_error("1 / 0", "Division by zero");
        assert_error("9223372036854775807 + 1", "Overflow");
        assert_error("{'a': 1}.b", "No such key");
    }

    #[test]
    fn standard_functions_and_conversions() {
        assert_true(&[
            "size('héllo') == 5",
            "size(b'ab') == 2",
            "size([1, 2]) == 2",
            "size({'a': 1}) == 1",
            "'hello'.size() == 5",
            "'hello'.startsWith('he')",
            "'hello'.endsWith('lo')",
            "'hello'.contains('ell')",
            "'hello'.matches('^h.*o$')",
            "int('42') == 42",
            "int(3.9) == 3",
            "uint(42) == 42u",
            "double('1.5') == 1.5",
            "string(42) == '42'",
            "string(b'hi') == 'hi'",
            "bytes('hi') == b'hi'",
            "bool('true')",
            "type(1) == int",
            "type('a') == string",
            "dyn(1) == 1",
        ]);
        assert_error("int('x')", "");
        assert_error("uint(-1)", "");
    }

    #[test]
    fn standard_macros() {
        assert_true(&[
            "has({'a': 1}.a)",
            "!has({'a': 1}.b)",
            "[1, 2, 3].all(x, x > 0)",
            "[1, 2, 3].exists(x, x == 2)",
            "[1, 2, 3].exists_one(x, x == 2)",
            "[1, 2, 3].map(x, x * 2) == [2, 4, 6]",
            "[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]",
            "[1, 2, 3].filter(x, x > 1) == [2, 3]",
            "{'a': 1, 'b': 2}.all(k, k.size() == 1)",
        ]);
    }

    #[test]
    fn timestamps_and_durations() {
        assert_true(&[
            "timestamp('2024-03-01T12:30:45Z').getFullYear() == 2024",
            "timestamp('2024-03-01T12:30:45Z').getMonth() == 2",
            "timestamp('2024-03-01T12:30:45Z').getDayOfMonth() == 0",
            "timestamp('2024-03-01T12:30:45Z').getDate() == 1",
            "timestamp('2024-03-01T12:30:45Z').getDayOfWeek() == 5",
            "timestamp('2024-03-01T12:30:45Z').getDayOfYear() == 60",
            "timestamp('2024-03-01T12:30:45Z').getHours() == 12",
            "timestamp('2024-03-01T12:30:45Z').getMinutes() == 30",
            "timestamp('2024-03-01T12:30:45Z').getSeconds() == 45",
            "timestamp('2024-03-01T12:30:45.123Z').getMilliseconds() == 123",
            "timestamp('2024-03-01T12:30:45Z').getHours('America/New_York') == 7",
            "timestamp('2024-01-01T00:00:00Z') + duration('1h') == timestamp('2024-01-01T01:00:00Z')",
            "timestamp('2024-01-02T00:00:00Z') - timestamp('2024-01-01T00:00:00Z') == duration('24h')",
            "duration('1h30m').getMinutes() == 90",
            "duration('90s').getSeconds() == 90",
            "duration('1.5s').getMilliseconds() == 1500",
            "duration('1h') > duration('59m')",
        ]);
        assert_error("timestamp('yesterday')", "");
    }

    #[test]
    fn strings_extension() {
        assert_true(&[
            "'hello'.charAt(1) == 'e'",
            "'hello'.indexOf('l') == 2",
            "'hello'.lastIndexOf('l') == 3",
            "'hello'.indexOf('l', 3) == 3",
            "'TacoCat'.lowerAscii() == 'tacocat'",
            "'TacoCat'.upperAscii() == 'TACOCAT'",
            "'a-b-c'.replace('-', '+') == 'a+b+c'",
            "'a-b-c'.replace('-', '+', 1) == 'a+b-c'",
            "'a,b,c'.split(',') == ['a', 'b', 'c']",
            "'a,b,c'.split(',', 2) == ['a', 'b,c']",
            "'hello'.substring(1) == 'ello'",
            "'hello'.substring(1, 3) == 'el'",
            "'  hi  '.trim() == 'hi'",
            "['a', 'b'].join() == 'ab'",
            "['a', 'b'].join('-') == 'a-b'",
            "strings.quote('a\"b') == '\"a\\\\\"b\"'",
            "'abc'.reverse() == 'cba'",
            "'%s has %d items costing %.2f'.format(['cart', 3, 1.5]) == 'cart has 3 items costing 1.50'",
            "'%x %X %o %b'.format([255, 255, 8, 5]) == 'ff FF 10 101'",
        ]);
    }

    #[test]
    fn lists_extension() {
        assert_true(&[
            "lists.range(3) == [0, 1, 2]",
            "[1, 2, 2, 3].distinct() == [1, 2, 3]",
            "[[1], [2, [3]]].flatten() == [1, 2, [3]]",
            "[[1], [2, [3]]].flatten(2) == [1, 2, 3]",
            "[1, 2, 3].reverse() == [3, 2, 1]",
            "[1, 2, 3, 4].slice(1, 3) == [2, 3]",
            "[3, 1, 2].sort() == [1, 2, 3]",
            "['bb', 'a', 'ccc'].sortBy(s, s.size()) == ['a', 'bb', 'ccc']",
        ]);
    }

    #[test]
    fn encoders_extension() {
        assert_true(&[
            "base64.encode(b'hello') == 'aGVsbG8='",
            "base64.decode('aGVsbG8=') == b'hello'",
            "base64.decode('aGVsbG8') == b'hello'",
        ]);
    }

    #[test]
    fn math_extension() {
        assert_true(&[
            "math.greatest(1, 5, 3) == 5",
            "math.least([4, 2, 8]) == 2",
            "math.abs(-3) == 3",
            "math.ceil(1.2) == 2.0",
            "math.floor(1.8) == 1.0",
            "math.round(1.5) == 2.0",
            "math.sign(-2) == -1",
            "math.isNaN(0.0 / 0.0)",
            "math.bitAnd(6, 3) == 2",
        ]);
    }

    #[test]
    fn optional_types() {
        assert_true(&[
            "optional.of(1).hasValue()",
            "!optional.none().hasValue()",
            "optional.of(1).value() == 1",
            "optional.none().orValue(5) == 5",
            "optional.none().or(optional.of(2)).value() == 2",
            "optional.ofNonZeroValue(0).hasValue() == false",
            "{'a': 1}.?a.orValue(0) == 1",
            "{'a': 1}.?b.orValue(0) == 0",
            "[1, 2][?5].orValue(9) == 9",
            "{'a': {'b': 2}}.?a.?b.value() == 2",
            "[1, 2, 3].first().value() == 1",
            "[1, 2, 3].last().value() == 3",
            "[].first().orValue('test') == 'test'",
            "!([].last().hasValue())",
            "optional.of(2).optMap(x, x * 2).value() == 4",
            "optional.of(2).optFlatMap(x, optional.of(x + 1)).value() == 3",
            "[?optional.of(1), ?optional.none()] == [1]",
            "{?'a': optional.of(1), ?'b': optional.none()} == {'a': 1}",
        ]);
        assert_eq!(eval("optional.none()"), Value::Null);
        assert_eq!(eval("optional.of(3)"), Value::Int(3));
    }
}

#[cfg(test)]
mod documentation {
    //! `docs/cel-functions.md` names a test for every supported function: the test must exist.

    const TABLE: &str = include_str!("../../../docs/cel-functions.md");
    const SOURCES: [(&str, &str); 4] = [
        ("cel::functions::tests::", include_str!("mod.rs")),
        (
            "cel::functions::comprehensions::tests::",
            include_str!("comprehensions.rs"),
        ),
        (
            "cel::functions::kubernetes::tests::",
            include_str!("kubernetes.rs"),
        ),
        ("cel::functions::kro::tests::", include_str!("kro.rs")),
    ];

    #[test]
    fn every_supported_row_names_a_test_that_exists() {
        let mut rows = 0;
        for line in TABLE.lines().filter(|l| l.contains("| supported |")) {
            rows += 1;
            let test = line
                .rsplit('`')
                .nth(1)
                .unwrap_or_else(|| panic!("no test named in: {line}"));
            let (module, name) = SOURCES
                .iter()
                .find_map(|(prefix, source)| test.strip_prefix(prefix).map(|name| (source, name)))
                .unwrap_or_else(|| panic!("{test} is in no known test module: {line}"));
            assert!(
                module.contains(&format!("fn {name}()")),
                "{test} does not exist: {line}"
            );
        }
        assert!(rows > 100, "only {rows} supported rows");
    }
}
