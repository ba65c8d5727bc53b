"""Tune: right-size workloads from measured usage and lint their specs.

The engine is the one ``kubectl zen tune`` runs. Manifests need no cluster:

>>> import kubezen
>>> report = kubezen.tune(manifests=["examples/tune/manifests.yaml"])
>>> sorted({f.check for f in report.findings})[:3]
['best-effort', 'heap-above-limit', 'hpa-without-request']

A snapshot (``kubectl zen tune snapshot DIR``) is analysed offline, as often as wanted;
a live cluster is sampled through metrics.k8s.io (``sample_for``, ``every``) or read from
Prometheus (``prometheus="http://..."``, ``history`` seconds). CPU and memory are in
millicores and bytes throughout.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubezen._core import TuneError, tune_run

__all__ = ["Finding", "Recommendation", "TuneError", "TuneReport", "tune"]


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
    manifests: Sequence[str | os.PathLike[str]] | None = None,
    snapshot: str | os.PathLike[str] | None = None,
    workloads: Sequence[str] = (),
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    prometheus: str | None = None,
    history: float = 14 * 86400.0,
    step: float = 300.0,
    sample_for: float = 600.0,
    every: float = 15.0,
    cpu_percentile: float = 95.0,
    cpu_limit: str = "none",
    memory_buffer: float = 15.0,
    oom_buffer: float = 25.0,
    min_samples: int = 100,
    profile: str | None = None,
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

    Raises :class:`TuneError` when the input cannot be read or the cluster or Prometheus
    refuses, and ``ValueError`` for options out of range. Releases the GIL while it works."""
    text = tune_run(
        manifests=[os.fspath(m) for m in manifests] if manifests is not None else None,
        snapshot=os.fspath(snapshot) if snapshot is not None else None,
        workloads=list(workloads),
        kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
        context=context, namespace=namespace, all_namespaces=all_namespaces, selector=selector,
        prometheus=prometheus, history=history, step=step, sample_for=sample_for, every=every,
        cpu_percentile=cpu_percentile, cpu_limit=cpu_limit, memory_buffer=memory_buffer,
        oom_buffer=oom_buffer, min_samples=min_samples, profile=profile,
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
        unmatched_samples=data["unmatched_samples"],
    )
