//! `kubezen.cel`: the CEL engine from Python.

use std::{collections::BTreeMap, sync::Arc};

use kubezen::cel::{CelError, Engine, EvaluationErrorKind, Key, Value, Variables};
use pyo3::{
    create_exception,
    prelude::*,
    types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple},
};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen.cel,
        CelError,
        crate::ZenError,
        "A CEL expression could not be compiled or evaluated; `position` is `(line, column)` or None."
    );
}
use errors::CelError as CelException;
create_exception!(
    kubezen.cel,
    CelSyntaxError,
    CelException,
    "The expression is not valid CEL."
);
create_exception!(
    kubezen.cel,
    CelLimitError,
    CelException,
    "The expression is longer or deeper than the engine accepts."
);
create_exception!(
    kubezen.cel,
    CelEvaluationError,
    CelException,
    "Evaluation failed: a missing key, division by zero, overflow, a wrong type; `kind` says which."
);
create_exception!(
    kubezen.cel,
    CelVariablesError,
    CelException,
    "The variables are not values CEL can take."
);

/// Variables nest at most this deep, as in the core.
const MAX_DEPTH: usize = kubezen::cel::MAX_VALUE_DEPTH;

/// Converts a core error into the exception for it, with `position` and `kind` attributes.
pub(crate) fn to_py_err(py: Python<'_>, error: &CelError) -> PyErr {
    let message = error.to_string();
    let err = match error {
        CelError::Syntax { .. } => CelSyntaxError::new_err(message),
        CelError::TooLong { .. } | CelError::TooDeep { .. } => CelLimitError::new_err(message),
        CelError::Evaluation { .. } => CelEvaluationError::new_err(message),
        CelError::Variables(_) => CelVariablesError::new_err(message),
    };
    let value = err.value(py);
    let position = error.position().map(|p| (p.line, p.column));
    let kind = match error {
        CelError::Evaluation { kind, .. } => Some(kind_name(*kind)),
        _ => None,
    };
    // Setting attributes on a fresh exception instance cannot fail in practice; if it did, the
    // exception would still carry its message.
    let _ = value.setattr("position", position);
    let _ = value.setattr("kind", kind);
    err
}

fn kind_name(kind: EvaluationErrorKind) -> &'static str {
    match kind {
        EvaluationErrorKind::NoSuchKey => "no_such_key",
        EvaluationErrorKind::UndeclaredReference => "undeclared_reference",
        EvaluationErrorKind::Type => "type",
        EvaluationErrorKind::DivisionByZero => "division_by_zero",
        EvaluationErrorKind::Overflow => "overflow",
        EvaluationErrorKind::IndexOutOfBounds => "index_out_of_bounds",
        EvaluationErrorKind::Function => "function",
        EvaluationErrorKind::Other => "other",
    }
}

fn variables_error(path: &str, message: impl std::fmt::Display) -> PyErr {
    let err = CelVariablesError::new_err(format!("invalid variables: {message} (at {path})"));
    Python::attach(|py| {
        let _ = err.value(py).setattr("position", None::<(usize, usize)>);
        let _ = err.value(py).setattr("kind", None::<&str>);
    });
    err
}

/// A Python object as a CEL value.
pub(crate) fn from_py(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(variables_error(
            path,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        return obj
            .extract::<u64>()
            .map(Value::Uint)
            .map_err(|_| variables_error(path, "an integer outside the range of int and uint"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Double(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Value::String(s.into_owned()))
            .map_err(|e| variables_error(path, format!("a string that is not valid UTF-8: {e}")));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        let mut items = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            items.push(from_py(&item?, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::List(items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = BTreeMap::new();
        for (k, v) in dict.iter() {
            let key = match from_py(&k, path, depth + 1)? {
                Value::String(s) => Key::String(s),
                Value::Int(i) => Key::Int(i),
                Value::Uint(u) => Key::Uint(u),
                Value::Bool(b) => Key::Bool(b),
                other => {
                    return Err(variables_error(
                        path,
                        format!(
                            "a map key must be a str, int or bool, not {}",
                            other.type_name()
                        ),
                    ));
                }
            };
            let value = from_py(&v, &format!("{path}.{key}"), depth + 1)?;
            map.insert(key, value);
        }
        return Ok(Value::Map(map));
    }
    if let Ok(t) = obj.extract::<chrono::DateTime<chrono::FixedOffset>>() {
        return Ok(Value::Timestamp(t));
    }
    if let Ok(d) = obj.extract::<chrono::TimeDelta>() {
        return Ok(Value::Duration(d));
    }
    let type_name = obj
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    Err(variables_error(
        path,
        format!(
            "a {type_name} has no CEL form (use None, bool, int, float, str, bytes, list, \
             tuple, dict, an aware datetime or a timedelta)"
        ),
    ))
}

/// A CEL value as a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Uint(u) => u.into_pyobject(py)?.into_any(),
        Value::Double(d) => PyFloat::new(py, *d).into_any(),
        Value::String(s) | Value::Type(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(to_py(py, &Value::from(k.clone()))?, to_py(py, v)?)?;
            }
            dict.into_any()
        }
        Value::Timestamp(t) => t.into_pyobject(py)?.into_any(),
        Value::Duration(d) => d.into_pyobject(py)?.into_any(),
    })
}

/// Variables converted once, to evaluate many programs or one program many times without
/// converting the dict on every call.
#[pyclass(frozen, module = "kubezen.cel", name = "Variables")]
pub struct PyVariables(Arc<Variables>);

#[pymethods]
impl PyVariables {
    #[new]
    fn new(vars: &Bound<'_, PyAny>) -> PyResult<Self> {
        dict_variables(vars).map(|v| Self(Arc::new(v)))
    }

    /// The variable names, sorted.
    fn names(&self) -> Vec<String> {
        self.0.names().map(str::to_owned).collect()
    }

    fn __repr__(&self) -> String {
        let names: Vec<String> = self.0.names().map(|n| format!("'{n}'")).collect();
        format!("Variables([{}])", names.join(", "))
    }
}

/// Variables from a `Variables` object, a dict of names to values, or None.
fn variables(vars: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<Variables>> {
    let Some(vars) = vars.filter(|v| !v.is_none()) else {
        return Ok(Arc::new(Variables::new()));
    };
    if let Ok(converted) = vars.cast::<PyVariables>() {
        return Ok(Arc::clone(&converted.get().0));
    }
    dict_variables(vars).map(Arc::new)
}

fn dict_variables(vars: &Bound<'_, PyAny>) -> PyResult<Variables> {
    let dict = vars.cast::<PyDict>().map_err(|_| {
        variables_error("$", "variables are a dict of names to values, or Variables")
    })?;
    let mut out = Variables::new();
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| variables_error("$", "variable names are str"))?;
        let value = from_py(&v, &format!("$.{name}"), 1)?;
        out.insert(name, &value);
    }
    Ok(out)
}

/// A compiled CEL expression: evaluate it as often as needed.
#[pyclass(frozen, module = "kubezen.cel", name = "Program")]
pub struct PyProgram(Arc<kubezen::cel::Program>);

#[pymethods]
impl PyProgram {
    /// The expression's text.
    #[getter]
    fn source(&self) -> &str {
        self.0.source()
    }

    /// Evaluates the program against ``vars``: a dict of variable names to values, or a
    /// :class:`Variables` converted once for many evaluations.
    ///
    /// The GIL is released while the expression runs.
    #[pyo3(signature = (vars=None))]
    fn eval<'py>(
        &self,
        py: Python<'py>,
        vars: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let vars = variables(vars)?;
        let program = Arc::clone(&self.0);
        let result = py.detach(move || program.evaluate(&vars));
        match result {
            Ok(value) => to_py(py, &value),
            Err(error) => Err(to_py_err(py, &error)),
        }
    }

    /// What would go wrong evaluating against ``vars`` (as for :meth:`eval`): references to
    /// variables not given, else the evaluation's error, as messages; empty when it runs. The
    /// same problems ``kubectl zen cel check --vars`` reports.
    #[pyo3(signature = (vars=None))]
    fn check(&self, py: Python<'_>, vars: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
        let vars = variables(vars)?;
        let program = Arc::clone(&self.0);
        Ok(py.detach(move || program.check(Some(&vars)).problems))
    }

    /// The variables and field paths the expression reads, as dotted names, sorted.
    fn references(&self) -> Vec<String> {
        self.0
            .references()
            .iter()
            .map(kubezen::cel::Reference::dotted)
            .collect()
    }

    /// How costly the expression is: ``nodes``, ``depth``, ``calls``, ``comprehensions``,
    /// ``comprehension_nesting``, ``score`` and ``cost_class``.
    fn complexity<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.0.complexity();
        let dict = PyDict::new(py);
        dict.set_item("nodes", c.nodes)?;
        dict.set_item("depth", c.depth)?;
        dict.set_item("calls", c.calls)?;
        dict.set_item("comprehensions", c.comprehensions)?;
        dict.set_item("comprehension_nesting", c.comprehension_nesting)?;
        dict.set_item("score", c.score)?;
        dict.set_item("cost_class", c.class.as_str())?;
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!("Program({:?})", self.0.source())
    }
}

/// Compiles ``expr`` through the shared cache of compiled programs.
#[pyfunction]
pub fn cel_compile(py: Python<'_>, expr: &str) -> PyResult<PyProgram> {
    py.detach(|| Engine::global().compile(expr))
        .map(PyProgram)
        .map_err(|error| to_py_err(py, &error))
}

/// Compiles (through the cache) and evaluates ``expr`` against ``vars``.
#[pyfunction]
#[pyo3(signature = (expr, vars=None))]
pub fn cel_eval<'py>(
    py: Python<'py>,
    expr: &str,
    vars: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    cel_compile(py, expr)?.eval(py, vars)
}

/// The counters of the shared cache: ``hits``, ``misses``, ``evictions``, ``entries`` and
/// ``capacity``.
#[pyfunction]
pub fn cel_cache_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let stats = Engine::global().cache_stats();
    let dict = PyDict::new(py);
    dict.set_item("hits", stats.hits)?;
    dict.set_item("misses", stats.misses)?;
    dict.set_item("evictions", stats.evictions)?;
    dict.set_item("entries", stats.entries)?;
    dict.set_item("capacity", stats.capacity)?;
    Ok(dict)
}
