"""Reconcile: render a resource graph instance offline, or apply and delete it on a cluster.

The engine is the one ``kubectl zen reconcile`` runs. Offline (``dry_run=True``) needs no
cluster:

>>> import kubezen
>>> rgd = kubezen.graph.loads('''
... apiVersion: kro.run/v1alpha1
... kind: ResourceGraphDefinition
... metadata: {name: web}
... spec:
...   schema: {apiVersion: v1alpha1, kind: Web, spec: {name: string | required=true}}
...   resources:
...     - id: config
...       template: {apiVersion: v1, kind: ConfigMap, metadata: {name: "${schema.spec.name}-config"}}
... ''')[0]
>>> instance = {"apiVersion": "kro.run/v1alpha1", "kind": "Web",
...             "metadata": {"name": "demo"}, "spec": {"name": "demo"}}
>>> rendering = kubezen.reconcile(rgd, instance, dry_run=True)
>>> [o["metadata"]["name"] for o in rendering.objects]
['demo-config']

Live, against the cluster of ``kubeconfig`` (zen-sim's, say), it returns a
:class:`ReconcileResult` with each object's outcome and timing. :func:`diff` asks the server
what applying would change, and :func:`reconcile_controller` keeps every instance of a graph
reconciled in the background:

>>> with kubezen.sim.start() as sim:  # doctest: +SKIP
...     [d.change for d in kubezen.reconcile_diff(rgd, instance, kubeconfig=sim.kubeconfig)]
...     with kubezen.reconcile_controller(rgd, kubeconfig=sim.kubeconfig) as controller:
...         controller.running
['create']
True
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from kubezen._args import Seconds, path, seconds
from kubezen._core import (
    Graph,
    ReconcileError,
    graph_load,
    graph_loads,
    reconcile_controller_start,
    reconcile_run,
)
from kubezen._task import Controller

__all__ = [
    "ObjectDiff",
    "ObjectOutcome",
    "ReconcileError",
    "ReconcileResult",
    "RenderedResource",
    "Rendering",
    "reconcile",
    "reconcile_controller",
    "reconcile_diff",
]


@dataclass(frozen=True)
class RenderedResource:
    """One resource of a :class:`Rendering`."""

    id: str
    level: int
    external: bool
    included: bool
    objects: list[dict[str, Any]]
    unknown: list[str]
    """Field paths only the cluster can fill, kept as written (``${...}``)."""


@dataclass(frozen=True)
class Rendering:
    """Every resource of an instance rendered offline, in apply order, and its status as far
    as it can be known without a cluster."""

    resources: list[RenderedResource]
    status: dict[str, Any]

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The rendered objects of the included resources, in apply order."""
        return [o for r in self.resources if r.included for o in r.objects]

    def to_pandas(self) -> Any:
        """One row per object: ``id``, ``level``, ``kind``, ``name``, ``namespace``,
        ``included``, ``unknown``. Needs pandas installed."""
        pd: Any = importlib.import_module("pandas")

        rows = []
        for r in self.resources:
            for o in r.objects or [{}]:
                meta = o.get("metadata", {})
                rows.append({"id": r.id, "level": r.level, "kind": o.get("kind"),
                             "name": meta.get("name"), "namespace": meta.get("namespace"),
                             "included": r.included, "unknown": len(r.unknown)})
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class ObjectOutcome:
    """What happened to one object: ``created``, ``configured``, ``unchanged``, ``read``,
    ``excluded``, ``pruned``, ``deleted``, ``absent``, ``failed``, ``blocked`` or
    ``interrupted``."""

    id: str
    level: int
    outcome: str
    millis: int
    api_version: str = ""
    kind: str = ""
    namespace: str | None = None
    name: str = ""
    ready: bool | None = None
    message: str | None = None


@dataclass(frozen=True)
class ReconcileResult:
    """The report of a live apply or delete."""

    action: str
    graph: str
    instance: str
    objects: list[ObjectOutcome]
    levels: list[dict[str, Any]]
    status: dict[str, Any]
    millis: int
    api_calls: int
    writes: int
    interrupted: bool
    status_written: bool
    namespace: str | None = None
    status_missing: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed, was blocked or interrupted."""
        bad = {"failed", "blocked", "interrupted"}
        return not self.interrupted and not any(o.outcome in bad for o in self.objects)

    def to_pandas(self) -> Any:
        """One row per object with its outcome and timing. Needs pandas installed."""
        pd: Any = importlib.import_module("pandas")

        return pd.DataFrame([o.__dict__ for o in self.objects])


@dataclass(frozen=True)
class ObjectDiff:
    """What applying would do to one object, as the server answers a dry-run apply."""

    id: str
    object: str
    """``Kind/name``."""
    change: Literal["create", "update", "unchanged", "prune", "excluded", "failed"]
    diff: str
    """A unified diff of the live and the desired YAML (server-managed fields left out), or
    why it failed."""
    namespace: str | None = None


def _graph(rgd: Graph | str | os.PathLike[str]) -> Graph:
    if isinstance(rgd, Graph):
        return rgd
    text = os.fspath(rgd)
    graphs = graph_load(text) if "\n" not in text and Path(text).exists() else graph_loads(text)
    if len(graphs) != 1:
        raise ReconcileError(f"expected one ResourceGraphDefinition, found {len(graphs)}")
    return graphs[0]


def _instance(instance: Mapping[str, Any] | str | os.PathLike[str]) -> str:
    if isinstance(instance, Mapping):
        return json.dumps(instance)
    text = os.fspath(instance)
    if "\n" not in text and Path(text).exists():
        return Path(text).read_text(encoding="utf-8")
    return text


@overload
def reconcile(rgd: Graph | str | os.PathLike[str], instance: Mapping[str, Any] | str | os.PathLike[str], *,
              dry_run: Literal[True], delete: bool = ..., kubeconfig: str | os.PathLike[str] | None = ...,
              context: str | None = ..., namespace: str | None = ..., workers: int = ...,
              timeout: Seconds = ..., force_conflicts: bool = ..., prune: bool = ...) -> Rendering: ...
@overload
def reconcile(rgd: Graph | str | os.PathLike[str], instance: Mapping[str, Any] | str | os.PathLike[str], *,
              dry_run: Literal[False] = ..., delete: bool = ..., kubeconfig: str | os.PathLike[str] | None = ...,
              context: str | None = ..., namespace: str | None = ..., workers: int = ...,
              timeout: Seconds = ..., force_conflicts: bool = ..., prune: bool = ...) -> ReconcileResult: ...
def reconcile(
    rgd: Graph | str | os.PathLike[str],
    instance: Mapping[str, Any] | str | os.PathLike[str],
    *,
    dry_run: bool = False,
    delete: bool = False,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 4,
    timeout: Seconds = 300.0,
    force_conflicts: bool = False,
    prune: bool = True,
) -> Rendering | ReconcileResult:
    """Renders (``dry_run=True``), applies, or deletes (``delete=True``) one instance of a graph.

    ``rgd`` is a :class:`kubezen.graph.Graph`, a path, or YAML text; ``instance`` a dict, a
    path, or YAML text. Live runs use ``kubeconfig`` (else ``$KUBECONFIG``, ``~/.kube/config``)
    and release the GIL while they work. Raises :class:`ReconcileError` when the graph has
    errors, the instance does not fit the schema, or the cluster cannot be used; failures of
    single objects are in the result (``result.ok`` is False)."""
    text = reconcile_run(
        _graph(rgd), _instance(instance), dry_run=dry_run, delete=delete,
        kubeconfig=path(kubeconfig),
        context=context, namespace=namespace, workers=workers, timeout=seconds("timeout", timeout),
        force_conflicts=force_conflicts, prune=prune,
    )
    data = json.loads(text)
    if dry_run:
        return Rendering(
            resources=[RenderedResource(**r) for r in data["resources"]], status=data["status"]
        )
    objects = [
        ObjectOutcome(id=o["id"], level=o["level"], outcome=o["outcome"], millis=o["millis"],
                      api_version=o.get("apiVersion", ""), kind=o.get("kind", ""),
                      namespace=o.get("namespace"), name=o.get("name", ""), ready=o.get("ready"),
                      message=o.get("message"))
        for o in data["objects"]
    ]
    return ReconcileResult(
        action=data["action"], graph=data["graph"], instance=data["instance"], objects=objects,
        levels=data["levels"], status=data["status"], millis=data["millis"],
        api_calls=data["apiCalls"], writes=data["writes"], interrupted=data["interrupted"],
        status_written=data["statusWritten"], namespace=data.get("namespace"),
        status_missing=data.get("statusMissing", {}),
    )


def reconcile_diff(
    rgd: Graph | str | os.PathLike[str],
    instance: Mapping[str, Any] | str | os.PathLike[str],
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 4,
    timeout: Seconds = 300.0,
    force_conflicts: bool = False,
    prune: bool = True,
) -> list[ObjectDiff]:
    """What applying ``instance`` would change, object by object, as ``kubectl zen reconcile
    diff`` shows it: the server dry-runs each apply, so defaults and admission are included
    and nothing is written. Arguments and errors as for :func:`reconcile`."""
    text = reconcile_run(
        _graph(rgd), _instance(instance), diff=True, kubeconfig=path(kubeconfig),
        context=context, namespace=namespace, workers=workers, timeout=seconds("timeout", timeout),
        force_conflicts=force_conflicts, prune=prune,
    )
    return [ObjectDiff(**d) for d in json.loads(text)]


def reconcile_controller(
    rgd: Graph | str | os.PathLike[str],
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 4,
    resync: Seconds = 300.0,
    timeout: Seconds = 300.0,
    force_conflicts: bool = False,
    prune: bool = True,
    metrics_addr: str | None = None,
    qps: float | None = None,
    burst: int | None = None,
) -> Controller:
    """Starts ``kubectl zen reconcile controller`` in the background: it watches every
    instance of the graph's kind (in ``namespace``, else all), reconciles each on change and
    every ``resync`` seconds, with ``workers`` instances at a time and the client limited to
    ``qps``/``burst``. ``metrics_addr`` (``"127.0.0.1:9090"``) serves ``/metrics``,
    ``/healthz`` and ``/readyz``. Raises :class:`ReconcileError` when the graph has errors or
    the cluster cannot be reached; returns once it runs. :meth:`Controller.stop` ends it and
    returns its summary: ``{"reconciles": ..., "errors": ..., "watchErrors": ...}`` (errors of
    the instances' watch it rode out, such as an API server restart)."""
    graph = _graph(rgd)
    limits: dict[str, Any] = {}
    if qps is not None:
        limits["qps"] = qps
    if burst is not None:
        limits["burst"] = burst
    task = reconcile_controller_start(
        graph, kubeconfig=path(kubeconfig), context=context, namespace=namespace,
        workers=workers, resync=seconds("resync", resync), timeout=seconds("timeout", timeout), force_conflicts=force_conflicts,
        prune=prune, metrics_addr=metrics_addr, **limits,
    )
    return Controller(f"reconcile {graph.name}", task)
