"""Bench: measure API servers, HTTP endpoints, CEL, graphs, the cache and reconciles, and
judge the numbers.

The engine is the one ``kubectl zen bench`` runs; every function returns a
:class:`BenchResult` that holds the same JSON report ``-o json`` writes:

>>> import kubezen
>>> result = kubezen.bench.graph(sizes=[10, 100], budget=0.01)
>>> [row["resources"] for row in result.rows]
[10, 100]
>>> result.kind
'graph'

Latencies are in milliseconds (``p50_ms``...), CEL and graph timings in microseconds.
``result.to_pandas()`` gives one row per verb, outcome, expression, size or cell, nested
figures flattened (``latency.p99_ms``). ``result.save(path)`` and :func:`load` round-trip
a report, also one written by the plugin; :meth:`BenchResult.compare` judges a run against
a baseline as ``--baseline`` does. In Jupyter a result shows its rows, a chart and its
verdicts.

:func:`sweep` runs ``bench api`` at several worker counts for a capacity curve, and
:func:`knee` finds where more workers stop buying throughput (the Kneedle method):

>>> kubezen.bench.knee([1, 2, 4, 8, 16], [100, 195, 370, 420, 430])
4
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kubezen._args import Seconds, path, seconds
from kubezen import _core
from kubezen._core import BenchError
from kubezen._display import bar_chart, line_chart

__all__ = [
    "BenchError",
    "BenchResult",
    "Sweep",
    "api",
    "cache",
    "cel",
    "cleanup",
    "graph",
    "http",
    "knee",
    "load",
    "reconcile",
    "sweep",
]


class BenchResult:
    """A benchmark's report: rows, verdicts, the environment, as plain Python data."""

    def __init__(self, report: dict[str, Any]) -> None:
        self._report = report

    @classmethod
    def _from_json(cls, text: str) -> BenchResult:
        return cls(json.loads(text))

    @property
    def kind(self) -> str:
        """``api``, ``http``, ``cel``, ``graph``, ``cache`` or ``reconcile``."""
        return str(self._report["kind"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per verb (api), outcome (http), expression (cel), size (graph),
        capacity and TTL (cache), or run and phase (reconcile)."""
        return list(self._report.get("rows", []))

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        """Each judgement: ``check``, ``measured``, ``limit``, ``unit``, ``passed``,
        ``source``."""
        return list(self._report.get("verdicts", []))

    @property
    def changes(self) -> list[dict[str, Any]]:
        """Figures against a baseline (after :meth:`compare`)."""
        return list(self._report.get("changes", []))

    @property
    def passed(self) -> bool:
        """True when every verdict passed and nothing regressed."""
        return all(v["passed"] for v in self.verdicts) and not any(
            c["regression"] for c in self.changes
        )

    @property
    def environment(self) -> dict[str, Any]:
        """Client and server versions, cores, start and end times, the options."""
        return dict(self._report["environment"])

    @property
    def report(self) -> dict[str, Any]:
        """The whole report, as ``-o json`` writes it."""
        return self._report

    def to_json(self) -> str:
        """The report as JSON text."""
        return json.dumps(self._report, indent=2)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the report as JSON, for :func:`load` or ``kubectl zen bench --baseline``."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.to_json())
            file.write("\n")

    def compare(self, baseline: BenchResult, threshold: float = 10.0) -> BenchResult:
        """This run judged against ``baseline`` (api and http): p50 and p99 up, or the rate
        down, by more than ``threshold`` percent is a regression."""
        return BenchResult._from_json(
            _core.bench_compare(json.dumps(self._report), json.dumps(baseline._report), threshold)
        )

    def to_pandas(self) -> Any:
        """A DataFrame of the rows, nested figures flattened (``latency.p99_ms``). Needs
        pandas."""
        pd: Any = importlib.import_module("pandas")
        return pd.json_normalize(self.rows)

    def __repr__(self) -> str:
        verdicts = self.verdicts
        passed = sum(1 for v in verdicts if v["passed"])
        return (
            f"<BenchResult {self.kind}: {len(self.rows)} rows, "
            f"{passed}/{len(verdicts)} verdicts passed>"
        )

    def _repr_html_(self) -> str:
        import html

        rows = self.to_pandas().to_html(index=False) if _has_pandas() else ""
        items = "".join(
            f"<li>{'PASS' if v['passed'] else '<b>FAIL</b>'} {html.escape(v['check'])}: "
            f"{v['measured']:.4g} {html.escape(v['unit'])} "
            f"({'≤' if v['atMost'] else '≥'} {v['limit']:.4g}; {html.escape(v['source'])})</li>"
            for v in self.verdicts
        )
        return (f"<p><b>bench {html.escape(self.kind)}</b></p>{rows}{self.to_svg()}"
                f"<ul>{items}</ul>")

    def to_svg(self) -> str:
        """A chart of the rows as SVG text: latency percentiles per verb or outcome (api,
        http), the cost of each step against graph size on log-log axes (graph), hit ratio
        against capacity (cache); empty for the other kinds."""
        rows = self.rows
        if self.kind in ("api", "http") and rows:
            label = "verb" if self.kind == "api" else "outcome"
            return bar_chart(
                [str(r[label]) for r in rows],
                [(p, [float(r["latency"][f"{p}_ms"]) for r in rows]) for p in ("p50", "p99")],
                y_label="latency (ms)",
            )
        if self.kind == "graph" and rows:
            sizes = [float(r["resources"]) for r in rows]
            return line_chart(
                [(step, sizes, [float(r[step]["meanUs"]) for r in rows])
                 for step in ("load", "order", "plan")],
                x_label="resources", y_label="mean time (µs)", log_x=True, log_y=True,
            )
        if self.kind == "cache" and rows:
            ttls = sorted({float(r["ttlSeconds"]) for r in rows})
            return line_chart(
                [(f"ttl {ttl:g}s", [float(r["capacity"]) for r in rows if r["ttlSeconds"] == ttl],
                  [float(r["hitRatio"]) for r in rows if r["ttlSeconds"] == ttl]) for ttl in ttls],
                x_label="capacity", y_label="hit ratio",
            )
        return ""


def _has_pandas() -> bool:
    try:
        importlib.import_module("pandas")
    except ImportError:
        return False
    return True


def api(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    workers: int = 4,
    duration: Seconds = 30.0,
    count: int | None = None,
    resources: int = 100,
    ops: Sequence[str] | None = None,
    mix: Mapping[str, int] | None = None,
    kind: str = "configmap",
    object_size: int = 1024,
    qps: float = 0.0,
    burst: int = 100,
    attempts: int = 1,
    cleanup_timeout: Seconds = 120.0,
) -> BenchResult:
    """Loads an API server as ``kubectl zen bench api`` does: ``workers`` pick verbs from
    ``mix`` (weights, e.g. ``{"get": 60, "update": 40}``) for ``duration`` seconds or
    ``count`` operations, on ``resources`` objects of ``kind`` in a fresh namespace that is
    deleted at the end (also on Ctrl-C, which raises KeyboardInterrupt). ``"watch"`` in
    ``ops`` (the default) times event delivery. ``attempts=1`` counts every failure as it
    happens. Raises :class:`BenchError` when the benchmark cannot run."""
    return BenchResult._from_json(
        _core.bench_api(
            kubeconfig=path(kubeconfig), context=context, workers=workers,
            duration=seconds("duration", duration),
            count=count, resources=resources, ops=list(ops) if ops is not None else None,
            mix=list(mix.items()) if mix is not None else None, kind=kind,
            object_size=object_size, qps=qps, burst=burst, attempts=attempts,
            cleanup_timeout=seconds("cleanup_timeout", cleanup_timeout),
        )
    )


def cleanup(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    run: str | None = None,
    dry_run: bool = False,
    older_than: Seconds = 0.0,
    timeout: Seconds = 120.0,
) -> list[dict[str, str]]:
    """Deletes the namespaces earlier runs left (labelled ``zen.kubezen.io/bench-run``; only
    run ``run``'s when given, a report's ``runId``), those at least ``older_than`` seconds old
    (runs still going are younger); returns each with its ``outcome``.

    >>> kubezen.bench.cleanup(kubeconfig="kc.yaml", older_than=3600)  # doctest: +SKIP
    [{'namespace': 'zen-bench-1a2b3c4d', 'runId': '1a2b3c4d', 'created': '...', 'outcome': 'deleted'}]
    """
    result: list[dict[str, str]] = json.loads(
        _core.bench_cleanup(
            kubeconfig=path(kubeconfig), context=context, run=run, dry_run=dry_run,
            older_than=seconds("older_than", older_than), timeout=seconds("timeout", timeout),
        )
    )
    return result


def http(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    rate: float | None = None,
    concurrency: int | None = None,
    duration: Seconds = 10.0,
    count: int | None = None,
    timeout: Seconds = 30.0,
    insecure: bool = False,
    cacert: str | os.PathLike[str] | None = None,
    target_p95: float | None = None,
    target_p99: float | None = None,
    min_success: float | None = None,
) -> BenchResult:
    """Loads ``url`` as ``kubectl zen bench http`` does: ``rate`` requests a second (open
    loop, latency from when each was due) or ``concurrency`` clients back to back. Targets
    are in seconds (``target_p95=0.1``) and percent (``min_success=99.9``)."""
    data = body.encode() if isinstance(body, str) else body
    return BenchResult._from_json(
        _core.bench_http(
            url, method=method, headers=list((headers or {}).items()), body=data, rate=rate,
            concurrency=concurrency, duration=seconds("duration", duration), count=count,
            timeout=seconds("timeout", timeout),
            insecure=insecure, cacert=path(cacert), target_p95=target_p95,
            target_p99=target_p99, min_success=min_success,
        )
    )


def cel(*, budget: Seconds = 0.1, filter: str | None = None) -> BenchResult:
    """Times the CEL engine on the documented expression set: compile, cached lookup and
    evaluation of each expression, ``budget`` seconds per measurement."""
    return BenchResult._from_json(_core.bench_cel(budget=seconds("budget", budget), filter=filter))


def graph(*, sizes: Sequence[int] = (10, 30, 100, 1000), budget: Seconds = 0.3) -> BenchResult:
    """Times graph load, order and plan at each size; ``report["growthExponent"]`` says how
    the cost grows (1 = linear)."""
    return BenchResult._from_json(_core.bench_graph(sizes=list(sizes), budget=seconds("budget", budget)))


def cache(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    objects: int = 2000,
    capacities: Sequence[int] = (100, 500, 1000, 2000),
    ttls: Sequence[Seconds] = (1.0, 30.0),
    duration: Seconds = 2.0,
    skew: float = 1.0,
) -> BenchResult:
    """Measures the object cache's hit ratio and latency for each capacity and TTL (seconds),
    ``duration`` seconds each, keys drawn with a Zipf ``skew``."""
    return BenchResult._from_json(
        _core.bench_cache(
            kubeconfig=path(kubeconfig), context=context, objects=objects,
            capacities=list(capacities), ttls=[seconds("ttls", ttl) for ttl in ttls],
            duration=seconds("duration", duration), skew=skew,
        )
    )


def reconcile(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    resources: int = 100,
    workers: int = 4,
    runs: int = 3,
) -> BenchResult:
    """Applies, re-applies and deletes a ``resources``-resource graph instance ``runs``
    times; wall time, API calls and writes of each phase."""
    return BenchResult._from_json(
        _core.bench_reconcile(
            kubeconfig=path(kubeconfig), context=context, resources=resources,
            workers=workers, runs=runs,
        )
    )


def load(path: str | os.PathLike[str]) -> BenchResult:
    """Reads a report saved by :meth:`BenchResult.save` or ``kubectl zen bench ... -o json``;
    raises :class:`BenchError` for anything else."""
    with open(path, encoding="utf-8") as file:
        return BenchResult._from_json(_core.bench_load(file.read()))


class Sweep:
    """``bench api`` at each worker count: the capacity curve of an API server."""

    def __init__(self, results: dict[int, BenchResult]) -> None:
        self.results = results
        """Each worker count's :class:`BenchResult`."""

    @property
    def workers(self) -> list[int]:
        """The worker counts, ascending."""
        return sorted(self.results)

    def throughput(self) -> list[float]:
        """Operations a second at each worker count."""
        return [float(self.results[w].report["perSecond"]) for w in self.workers]

    def latency(self, percentile: str = "p99") -> list[float]:
        """The ``percentile`` (``p50``, ``p90``, ``p95``, ``p99``, ``p999``) latency in
        milliseconds over every verb but watch, at each worker count (the worst verb's)."""
        return [
            max((float(r["latency"][f"{percentile}_ms"]) for r in self.results[w].rows
                 if r["verb"] != "watch"), default=0.0)
            for w in self.workers
        ]

    def knee(self) -> int | None:
        """The worker count past which throughput stops growing in step (see :func:`knee`)."""
        found = knee(self.workers, self.throughput())
        return None if found is None else int(found)

    def to_pandas(self) -> Any:
        """One row per worker count: ``workers``, ``ops_per_s``, ``p50_ms``, ``p99_ms``,
        ``errors``. Needs pandas."""
        pd: Any = importlib.import_module("pandas")
        return pd.DataFrame({
            "workers": self.workers, "ops_per_s": self.throughput(),
            "p50_ms": self.latency("p50"), "p99_ms": self.latency("p99"),
            "errors": [int(self.results[w].report["errors"]) for w in self.workers],
        })

    def to_svg(self) -> str:
        """Throughput and p50/p99 against workers, the knee marked, as two SVG charts."""
        workers = [float(w) for w in self.workers]
        mark = self.knee()
        return line_chart([("ops/s", workers, self.throughput())], x_label="workers",
                          y_label="operations / s", mark_x=mark) + line_chart(
            [("p50", workers, self.latency("p50")), ("p99", workers, self.latency("p99"))],
            x_label="workers", y_label="latency (ms)", mark_x=mark)

    def _repr_html_(self) -> str:
        knee_at = self.knee()
        return (f"<p><b>bench api sweep</b>: knee at {knee_at if knee_at is not None else '-'} "
                f"workers</p>{self.to_svg()}")

    def __repr__(self) -> str:
        return f"<Sweep workers={self.workers} knee={self.knee()}>"


def sweep(workers: Sequence[int] = (1, 2, 4, 8, 16), **options: Any) -> Sweep:
    """Runs :func:`api` once at each count in ``workers`` (the other keyword arguments are
    :func:`api`'s, the same for every run) and returns the curve. Ctrl-C stops the run in
    hand, cleans up and raises KeyboardInterrupt."""
    if not workers or any(w < 1 for w in workers):
        raise ValueError("workers must be one or more counts of at least 1")
    return Sweep({int(w): api(workers=int(w), **options) for w in sorted(set(workers))})


def knee(xs: Sequence[float], ys: Sequence[float], *, curve: str = "concave") -> float | None:
    """The knee of an increasing curve by the Kneedle method (Satopää et al., 2011): both
    axes scaled to [0, 1], the x whose point lies farthest above the diagonal (``concave``:
    throughput levelling off) or below it (``convex``: latency taking off). None when the
    curve has fewer than three points, or no knee (a straight line)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if curve not in ("concave", "convex"):
        raise ValueError(f"curve must be 'concave' or 'convex', not {curve!r}")
    points = sorted(zip(xs, ys))
    if len(points) < 3:
        return None
    x0, x1 = points[0][0], points[-1][0]
    y0, y1 = min(y for _, y in points), max(y for _, y in points)
    if x1 == x0 or y1 == y0:
        return None
    sign = 1.0 if curve == "concave" else -1.0
    gaps = [(sign * ((y - y0) / (y1 - y0) - (x - x0) / (x1 - x0)), x) for x, y in points]
    best, at = max(gaps)
    return at if best > 1e-9 else None
