"""Tune: right-size workloads from measured usage and lint their specs.

The engine is the one ``kubectl zen tune`` runs. Manifests need no cluster:

>>> import kubezen
>>> report = kubezen.tune(manifests=["examples/tune/manifests.yaml"])
>>> sorted({f.check for f in report.findings})[:3]
['best-effort', 'heap-above-limit', 'hpa-without-request']

A snapshot (``kubectl zen tune snapshot DIR``) is analysed offline, as often as wanted;
a live cluster is sampled through metrics.k8s.io (``sample_for``, ``every``) or read from
Prometheus (``prometheus="http://..."``, ``history`` seconds). CPU and memory are in
millicores and bytes throughout. :func:`tune_snapshot` records such a snapshot;
``patch=DIR`` writes the recommendations as strategic-merge patches and ``apply=True``
server-side applies them. :func:`tune_controller` and :func:`tune_gateway` are the plugin's
``tune controller`` and ``tune gateway`` presets:

>>> kubezen.tune_gateway(5000)["load_level"]
'very heavy'
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubezen._args import Paths, Seconds, paths, seconds
from kubezen._core import TuneError, tune_controller as _tune_controller
from kubezen._core import tune_gateway as _tune_gateway
from kubezen._core import tune_run
from kubezen._core import tune_snapshot as _tune_snapshot

__all__ = [
    "Finding",
    "Recommendation",
    "TuneError",
    "TuneReport",
    "tune",
    "tune_controller",
    "tune_gateway",
    "tune_snapshot",
]


@dataclass(frozen=True)
class Recommendation:
    """The advice for one container of one workload.

    ``current`` and ``recommended`` map ``cpu_request``, ``cpu_limit`` (millicores),
    ``memory_request`` and ``memory_limit`` (bytes) to a number or None. A recommended value
    of None is left as it is, except ``cpu_limit``, which with the default ``cpu_limit="none"``
    is advised away. ``cpu_reason``/``memory_reason`` say why there is no number."""

    namespace: str
    kind: str
    workload: str
    container: str
    role: str
    replicas: int
    current: dict[str, float | None]
    recommended: dict[str, float | None]
    basis: str
    confidence: str | None
    confidence_score: float
    impact: float
    changes: bool = False
    """True when applying the recommendation changes the container (a patch is written)."""
    cpu_reason: str | None = None
    memory_reason: str | None = None
    usage: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    hpa: dict[str, Any] | None = None


@dataclass(frozen=True)
class Finding:
    """A best-practice finding: ``severity`` (info, warning, error), ``check`` (a stable name
    such as ``missing-requests``), what was found, why it matters and how to fix it."""

    severity: str
    check: str
    namespace: str
    kind: str
    workload: str
    container: str | None
    message: str
    why: str
    fix: str


@dataclass(frozen=True)
class TuneReport:
    """What tune found: recommendations (largest impact first), findings (most severe first),
    and totals of requested CPU (millicores) and memory (bytes) before and after."""

    source: str
    recommendations: list[Recommendation]
    findings: list[Finding]
    totals: dict[str, float]
    options: dict[str, Any]
    problems: list[dict[str, str]] = field(default_factory=list)
    unmatched_samples: int = 0
    written: list[str] | None = None
    """With ``patch=DIR``: the files written, relative to ``DIR``: a patch per workload that
    changes and the ``kustomization.yaml`` that lists them."""
    applied: list[dict[str, Any]] | None = None
    """With ``apply=True``: per workload, ``workload``, the ``diff`` applied (or that would
    be, with ``dry_run``) and the ``error`` if the server refused it."""

    def savings(self, by: str = "namespace") -> Any:
        """Requested CPU (millicores) and memory (bytes) before and after, summed per
        ``namespace`` (or ``workload``, ``kind``), weighted by replicas, with the saving; the
        largest CPU saving first. Needs pandas."""
        frame = self.to_pandas()
        if frame.empty:
            return frame
        if by not in ("namespace", "workload", "kind"):
            raise ValueError(f"by must be 'namespace', 'workload' or 'kind', not {by!r}")
        out = frame.assign(
            cpu_before=frame["cpu_request"].fillna(0) * frame["replicas"],
            cpu_after=frame["cpu_request_new"].fillna(frame["cpu_request"]).fillna(0) * frame["replicas"],
            memory_before=frame["memory_request"].fillna(0) * frame["replicas"],
            memory_after=frame["memory_request_new"].fillna(frame["memory_request"]).fillna(0)
            * frame["replicas"],
        ).groupby(by)[["cpu_before", "cpu_after", "memory_before", "memory_after"]].sum()
        out["cpu_saved"] = out["cpu_before"] - out["cpu_after"]
        out["memory_saved"] = out["memory_before"] - out["memory_after"]
        return out.sort_values("cpu_saved", ascending=False)

    def to_pandas(self, what: str = "recommendations") -> Any:
        """A DataFrame of the recommendations (one row a container, current and recommended
        values side by side) or, with ``what="findings"``, of the findings. Needs pandas."""
        pd: Any = importlib.import_module("pandas")

        if what == "findings":
            return pd.DataFrame([f.__dict__ for f in self.findings])
        if what != "recommendations":
            raise ValueError(f"what must be 'recommendations' or 'findings', not {what!r}")
        rows = []
        for r in self.recommendations:
            row: dict[str, Any] = {
                "namespace": r.namespace, "kind": r.kind, "workload": r.workload,
                "container": r.container, "role": r.role, "replicas": r.replicas,
            }
            for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
                row[key] = r.current.get(key)
                row[f"{key}_new"] = r.recommended.get(key)
            row.update({"basis": r.basis, "confidence": r.confidence, "impact": r.impact,
                        "cpu_reason": r.cpu_reason, "memory_reason": r.memory_reason})
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        import html

        t = self.totals
        head = (f"<p>{html.escape(self.source)}: CPU {t['cpu_before']:.0f}m &rarr; {t['cpu_after']:.0f}m, "
                f"memory {t['memory_before'] / 2**20:.0f}Mi &rarr; {t['memory_after'] / 2**20:.0f}Mi; "
                f"{len(self.findings)} findings</p>")
        rows = "".join(
            f"<tr><td>{html.escape(r.namespace)}/{html.escape(r.workload)}</td><td>{html.escape(r.container)}</td>"
            f"<td>{_cpu(r.current.get('cpu_request'))} &rarr; {_cpu(r.recommended.get('cpu_request'))}</td>"
            f"<td>{_mem(r.current.get('memory_request'))} &rarr; {_mem(r.recommended.get('memory_request'))}</td>"
            f"<td>{html.escape(r.confidence or '-')}</td>"
            f"<td>{html.escape(r.cpu_reason or r.memory_reason or '; '.join(r.notes))}</td></tr>"
            for r in self.recommendations
        )
        return (head + "<table><tr><th>workload</th><th>container</th><th>cpu request</th>"
                "<th>memory request</th><th>confidence</th><th>note</th></tr>" + rows + "</table>")


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}m"


def _mem(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}Mi"


def tune(
    *,
    manifests: Paths | None = None,
    snapshot: str | os.PathLike[str] | None = None,
    workloads: Sequence[str] = (),
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    prometheus: str | None = None,
    history: Seconds = 14 * 86400.0,
    step: Seconds = 300.0,
    sample_for: Seconds = 600.0,
    every: Seconds = 15.0,
    cpu_percentile: float = 95.0,
    cpu_limit: str = "none",
    memory_buffer: float = 15.0,
    oom_buffer: float = 25.0,
    min_samples: int = 100,
    profile: str | None = None,
    patch: str | os.PathLike[str] | None = None,
    apply: bool = False,
    dry_run: bool = False,
    force_conflicts: bool = False,
) -> TuneReport:
    """Right-sizes workloads and lints them, as ``kubectl zen tune`` does.

    The input is ``manifests`` (files or directories: findings and presets only), a
    ``snapshot`` directory, or else the cluster of ``kubeconfig`` (``$KUBECONFIG``,
    ``~/.kube/config``): usage sampled from metrics.k8s.io for ``sample_for`` seconds every
    ``every`` seconds, or read from ``prometheus`` over ``history`` seconds at ``step``.
    ``workloads`` narrows to ``NAME`` or ``KIND/NAME`` entries. The options are the
    plugin's: ``cpu_percentile`` (95), ``cpu_limit`` (``"none"`` or ``"ratio=R"``),
    ``memory_buffer`` and ``oom_buffer`` in percent, ``min_samples`` (100), ``profile``
    (``web-api``, ``heavy-compute``, ``background-job``, ``database``, ``cache``).
    ``patch`` writes a patch file per changed workload and a kustomization listing them into
    that directory; ``apply``
    server-side applies the changes to the cluster (``dry_run``: the server only answers
    what it would do; ``force_conflicts`` takes fields other managers own).

    Raises :class:`TuneError` when the input cannot be read or the cluster or Prometheus
    refuses, and ``ValueError`` for options out of range. Releases the GIL while it works."""
    text = tune_run(
        manifests=paths("manifests", manifests),
        snapshot=os.fspath(snapshot) if snapshot is not None else None,
        workloads=list(workloads),
        kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
        context=context, namespace=namespace, all_namespaces=all_namespaces, selector=selector,
        prometheus=prometheus, history=seconds("history", history), step=seconds("step", step),
        sample_for=seconds("sample_for", sample_for), every=seconds("every", every),
        cpu_percentile=cpu_percentile, cpu_limit=cpu_limit, memory_buffer=memory_buffer,
        oom_buffer=oom_buffer, min_samples=min_samples, profile=profile,
        patch=os.fspath(patch) if patch is not None else None, apply=apply, dry_run=dry_run,
        force_conflicts=force_conflicts,
    )
    data = json.loads(text)
    recommendations = [
        Recommendation(
            namespace=r["workload"]["namespace"], kind=r["workload"]["kind"],
            workload=r["workload"]["name"], container=r["container"], role=r["role"],
            replicas=r["replicas"], current=r["current"], recommended=r["recommended"],
            basis=r["basis"], confidence=r["confidence"], confidence_score=r["confidence_score"],
            impact=r["impact"], changes=r["changes"], cpu_reason=r["cpu_reason"],
            memory_reason=r["memory_reason"],
            usage=r["usage"], notes=r["notes"], hpa=r["hpa"],
        )
        for r in data["recommendations"]
    ]
    findings = [
        Finding(
            severity=f["severity"], check=f["check"], namespace=f["workload"]["namespace"],
            kind=f["workload"]["kind"], workload=f["workload"]["name"], container=f["container"],
            message=f["message"], why=f["why"], fix=f["fix"],
        )
        for f in data["findings"]
    ]
    return TuneReport(
        source=data["source"], recommendations=recommendations, findings=findings,
        totals=data["totals"], options=data["options"], problems=data["problems"],
        unmatched_samples=data["unmatched_samples"], written=data.get("written"),
        applied=data.get("applied"),
    )


def tune_snapshot(
    dir: str | os.PathLike[str],
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    prometheus: str | None = None,
    history: Seconds = 14 * 86400.0,
    step: Seconds = 300.0,
    sample_for: Seconds = 600.0,
    every: Seconds = 15.0,
) -> dict[str, Any]:
    """Records the cluster's workloads and their usage into the directory ``dir``, as
    ``kubectl zen tune snapshot DIR`` does, for :func:`tune` (``snapshot=dir``) to analyse
    offline. Usage comes from metrics.k8s.io (``sample_for``/``every`` seconds) or
    ``prometheus``. Returns ``{"workloads": n, "samples": n, "source": ...}``; raises
    :class:`TuneError` when the cluster refuses or ``dir`` cannot be written."""
    result: dict[str, Any] = json.loads(
        _tune_snapshot(
            os.fspath(dir), kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
            context=context, namespace=namespace, all_namespaces=all_namespaces,
            selector=selector, prometheus=prometheus, history=seconds("history", history),
            step=seconds("step", step), sample_for=seconds("sample_for", sample_for),
            every=seconds("every", every),
        )
    )
    return result


def tune_controller(
    *,
    kinds: Sequence[str] | None = None,
    objects: int | None = None,
    largest_namespace: int | None = None,
    object_bytes: int | None = None,
    cores: int = 2,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> dict[str, Any]:
    """Settings for a controller's client, workers and caches, as ``kubectl zen tune
    controller`` gives them: for ``objects`` watched objects (``largest_namespace`` of them in
    one namespace, ``object_bytes`` each), or counted in the cluster for ``kinds``
    (``["configmaps", "deployments.apps"]``). Returns ``objects``, ``largest_namespace``,
    ``mean_object_bytes``, ``cores`` and ``settings`` (each ``name``, ``value``, ``why``)."""
    result: dict[str, Any] = json.loads(
        _tune_controller(
            kinds=list(kinds) if kinds is not None else None, objects=objects,
            largest_namespace=largest_namespace, object_bytes=object_bytes, cores=cores,
            kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
            context=context, namespace=namespace, all_namespaces=all_namespaces,
        )
    )
    return result


def tune_gateway(rps: int, concurrency: int = 100) -> dict[str, Any]:
    """Sizing for the netweave O2 API gateway at ``rps`` requests a second and
    ``concurrency`` concurrent requests, as ``kubectl zen tune gateway`` gives it: replicas,
    resources, pool sizes, cache TTLs and targets."""
    result: dict[str, Any] = json.loads(_tune_gateway(rps, concurrency))
    return result
