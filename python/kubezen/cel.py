"""CEL as KRO's resource graphs use it: compile once, evaluate fast.

The engine is the one ``kubectl zen cel`` runs: KRO's environment (the CEL standard library,
the cel-go and Kubernetes extensions KRO enables, and KRO's own functions), with a shared,
bounded cache of compiled programs.

>>> from kubezen import cel
>>> cel.eval("schema.spec.replicas > 2", {"schema": {"spec": {"replicas": 3}}})
True
>>> program = cel.compile("schema.spec.name + '-svc'")
>>> program.eval({"schema": {"spec": {"name": "web"}}})
'web-svc'
>>> program.references()
['schema.spec.name']
>>> program.complexity()["cost_class"]
'simple'

:func:`check` says what would go wrong, without raising:

>>> cel.check("schema.spec.replicas > 2", {"schema": {}})
['No such key: spec at 1:7']

Variables given as a dict are converted on every call; convert them once with
:class:`Variables` to evaluate many times:

>>> vars = cel.Variables({"schema": {"spec": {"replicas": 3}}})
>>> [cel.eval(f"schema.spec.replicas > {n}", vars) for n in (1, 5)]
[True, False]

Values map faithfully both ways: ``int`` (and ``uint`` above 2**63-1) to ``int``, ``double``
to ``float``, ``bytes`` to ``bytes``, ``null`` to ``None``, lists and maps to ``list`` and
``dict``, timestamps to aware ``datetime`` and durations to ``timedelta`` (to the
microsecond).

Errors are :class:`CelError` subclasses with a ``position`` of ``(line, column)`` where
known, and for evaluation errors a ``kind`` such as ``"no_such_key"`` or ``"overflow"``:

>>> try:
...     cel.eval("1 / 0")
... except cel.CelEvaluationError as error:
...     print(error.kind, error.position)
division_by_zero (1, 3)
"""

from typing import Any

from kubezen._core import (
    CelError,
    CelEvaluationError,
    CelLimitError,
    CelSyntaxError,
    CelVariablesError,
    Program,
    Variables,
)
from kubezen._core import cel_cache_stats as cache_stats
from kubezen._core import cel_compile as compile  # noqa: A004 - the API the issue names
from kubezen._core import cel_eval as eval  # noqa: A004

__all__ = [
    "CelError",
    "CelEvaluationError",
    "CelLimitError",
    "CelSyntaxError",
    "CelVariablesError",
    "Program",
    "Variables",
    "cache_stats",
    "check",
    "compile",
    "eval",
]


def check(expr: str, vars: dict[str, Any] | Variables | None = None) -> list[str]:
    """What would go wrong evaluating ``expr`` against ``vars``, as ``kubectl zen cel check``
    reports it: references to variables not given, else the evaluation's error, as messages;
    empty when it evaluates. A syntax error raises :class:`CelSyntaxError`."""
    return compile(expr).check(vars)
