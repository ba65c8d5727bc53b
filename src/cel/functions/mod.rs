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
        .and_then(|()| env.add_extension(comprehensions::register))
        .and_then(|()| env.add_extension(kubernetes::register))
        .and_then(|()| env.add_extension(kro::register));
    // Every library registers distinct names: a conflict is a bug that any test catches.
    registered.expect("the CEL libraries register without conflicts");
    env
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
