"""kubezen.cel: the CEL engine from Python."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from conftest import while_counting
import kubezen
from kubezen import cel


def test_eval_kro_style_expressions() -> None:
    vars = {"schema": {"spec": {"replicas": 3, "name": "web"}}}
    assert cel.eval("schema.spec.replicas > 2", vars) is True
    assert cel.eval("schema.spec.name + '-svc'", vars) == "web-svc"
    assert cel.eval("1 + 2 * 3") == 7


def test_values_map_faithfully_both_ways() -> None:
    t = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    vars = {
        "i": 1,
        "u": 2**64 - 1,
        "d": 1.5,
        "s": "x",
        "b": b"\x00\xff",
        "n": None,
        "t": t,
        "dur": dt.timedelta(minutes=1, seconds=30),
        "l": [1, "two"],
        "tup": (1, 2),
        "m": {"k": True, 1: "one"},
    }
    for expr in [
        "type(i) == int",
        "type(u) == uint",
        "type(d) == double",
        "type(s) == string",
        "type(b) == bytes",
        "n == null",
        "t == timestamp('2024-01-02T03:04:05Z')",
        "dur == duration('90s')",
        "l[1] == 'two'",
        "tup == [1, 2]",
        "m.k && m[1] == 'one'",
    ]:
        assert cel.eval(expr, vars) is True, expr
    for name, value in vars.items():
        expected = list(value) if isinstance(value, tuple) else value
        assert cel.eval(name, vars) == expected, name
    assert cel.eval("2.0 / 4.0") == 0.5
    assert cel.eval("b'hi'") == b"hi"
    assert cel.eval("18446744073709551615u") == 2**64 - 1
    assert cel.eval("duration('1.5s')") == dt.timedelta(seconds=1.5)


def test_program_compiles_once_and_reports_references_and_complexity() -> None:
    program = cel.compile("items.filter(i, i.ready).map(i, i.name) + [schema.spec.name]")
    assert program.source.startswith("items.filter")
    assert program.references() == ["items", "schema.spec.name"]
    complexity = program.complexity()
    assert complexity["cost_class"] == "moderate"
    assert complexity["comprehensions"] == 2
    assert program.eval({"items": [{"ready": True, "name": "a"}], "schema": {"spec": {"name": "b"}}}) == ["a", "b"]


def test_cache_stats_count_hits_and_misses() -> None:
    before = cel.cache_stats()
    expr = f"{time.time_ns()} + 1"  # an expression this process has never compiled
    cel.compile(expr)
    cel.compile(expr)
    after = cel.cache_stats()
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1
    assert after["capacity"] == 1024
    assert set(after) == {"hits", "misses", "evictions", "entries", "capacity"}


@pytest.mark.parametrize(
    ("expr", "kind", "position"),
    [
        ("m.missing", "no_such_key", (1, 2)),
        ("1 / 0", "division_by_zero", (1, 3)),
        ("9223372036854775807 + 1", "overflow", (1, 21)),
        ("1 + 'a'", "type", (1, 3)),
        ("nope", "undeclared_reference", (1, 1)),
    ],
)
def test_evaluation_errors_have_kind_and_position(
    expr: str, kind: str, position: tuple[int, int]
) -> None:
    with pytest.raises(cel.CelEvaluationError) as raised:
        cel.eval(expr, {"m": {}})
    assert raised.value.kind == kind
    assert raised.value.position == position
    assert isinstance(raised.value, cel.CelError)
    assert isinstance(raised.value, kubezen.ZenError)


def test_syntax_and_limit_errors() -> None:
    with pytest.raises(cel.CelSyntaxError) as raised:
        cel.compile("schema.spec.replicas >")
    assert raised.value.position == (1, 23)
    assert raised.value.kind is None
    with pytest.raises(cel.CelSyntaxError):
        cel.compile("(" * 10_000 + "1" + ")" * 10_000)
    with pytest.raises(cel.CelLimitError):
        cel.compile("'" + "a" * 1_000_000 + "'")
    with pytest.raises(cel.CelLimitError):
        cel.compile("1" + " + 1" * 20_000)


def test_hostile_variables_are_rejected_with_a_path() -> None:
    deep: object = 1
    for _ in range(500):
        deep = [deep]
    with pytest.raises(cel.CelVariablesError, match="nested deeper"):
        cel.eval("x", {"x": deep})
    with pytest.raises(cel.CelVariablesError, match=r"\$\.x\.y"):
        cel.eval("x", {"x": {"y": object()}})
    with pytest.raises(cel.CelVariablesError, match="not valid UTF-8"):
        cel.eval("x", {"x": "\ud800"})
    with pytest.raises(cel.CelVariablesError, match="outside the range"):
        cel.eval("x", {"x": 2**64})
    with pytest.raises(cel.CelVariablesError):
        cel.eval("x", [1])  # type: ignore[arg-type]


def test_the_gil_is_released_while_evaluating() -> None:
    # A comprehension over a million elements runs for a while in Rust; a Python thread
    # must make progress meanwhile.
    program = cel.compile("lists.range(1000000).map(x, x * 2).size()")
    result, ticks, _ = while_counting(program.eval, pause=0)
    assert result == 1_000_000
    assert ticks > 10, ticks


def test_module_docstring_examples() -> None:
    import doctest

    results = doctest.testmod(cel)
    assert results.attempted > 0
    assert results.failed == 0


def test_variables_convert_once_and_evaluate_like_a_dict() -> None:
    data = {"schema": {"spec": {"replicas": 3, "name": "web"}}}
    vars = cel.Variables(data)
    assert vars.names() == ["schema"]
    assert repr(vars) == "Variables(['schema'])"
    program = cel.compile("schema.spec.name + string(schema.spec.replicas)")
    assert program.eval(vars) == program.eval(data) == "web3"
    assert cel.eval("schema.spec.replicas", vars) == 3
    with pytest.raises(cel.CelVariablesError):
        cel.Variables({"x": object()})
