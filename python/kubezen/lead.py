"""zen-lead's leader Services from Python: what ``kubectl zen lead status`` shows.

Every Service annotated ``zen-lead.io/enabled: "true"`` gets a selector-less ``<svc>-leader``
Service whose EndpointSlice holds exactly one Ready pod; ``kubectl zen lead`` runs the
controller that maintains them, and :func:`start` runs it from Python. :func:`status` reads
their state from the cluster:

>>> import kubezen
>>> report = kubezen.lead.status(kubeconfig="kubeconfig", all_namespaces=True)  # doctest: +SKIP
>>> report.rows[0].leader, report.healthy  # doctest: +SKIP
('web-7d4b9-x2k8p', True)
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from kubezen._args import Seconds, path, seconds
from kubezen import _core
from kubezen._core import LeadError
from kubezen._task import Controller

__all__ = ["Controller", "LeadError", "LeaderStatus", "StatusReport", "start", "status"]


@dataclass(frozen=True)
class LeaderStatus:
    """One opted-in Service: its leader Service, leader pod, since when, and problems."""

    namespace: str
    service: str
    leader_service: str
    leader: str | None
    since: str | None
    pods: int
    ready_pods: int
    endpoints: int
    problems: list[str] = field(default_factory=list)
    #: The controller's last error on the Service (``"when, reason: message"``), when its
    #: latest Event there is a Warning.
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


@dataclass(frozen=True)
class StatusReport:
    """Every opted-in Service in scope."""

    rows: list[LeaderStatus]

    @property
    def healthy(self) -> bool:
        """True when no Service has a problem (``kubectl zen lead status`` exits 0)."""
        return all(row.healthy for row in self.rows)

    def to_pandas(self) -> Any:
        """A DataFrame, one row per Service. Needs pandas."""
        pd: Any = importlib.import_module("pandas")
        return pd.DataFrame([asdict(row) for row in self.rows])

    def __len__(self) -> int:
        return len(self.rows)

    def _repr_html_(self) -> str:
        import html

        cells = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (
                    row.namespace,
                    row.service,
                    row.leader or "<none>",
                    row.since or "-",
                    f"{row.ready_pods}/{row.pods}",
                    "; ".join(row.problems) or "-",
                )
            )
            + "</tr>"
            for row in self.rows
        )
        head = "".join(
            f"<th>{name}</th>"
            for name in ("namespace", "service", "leader", "since", "ready", "problems")
        )
        return f"<table><tr>{head}</tr>{cells}</table>"


def status(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> StatusReport:
    """Every Service opted in to zen-lead in ``namespace`` (default: the context's), or in
    every namespace with ``all_namespaces``: its leader, since when, and what is wrong.

    Raises :class:`LeadError` when the cluster cannot be reached or refuses the reads.
    """
    text = _core.lead_status(
        kubeconfig=path(kubeconfig),
        context=context,
        namespace=namespace,
        all_namespaces=all_namespaces,
    )
    return StatusReport(
        [
            LeaderStatus(
                namespace=row["namespace"],
                service=row["service"],
                leader_service=row["leaderService"],
                leader=row.get("leader"),
                since=row.get("since"),
                pods=row["pods"],
                ready_pods=row["readyPods"],
                endpoints=row["endpoints"],
                problems=list(row["problems"]),
                last_error=row.get("lastError"),
            )
            for row in json.loads(text)
        ]
    )


def start(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 10,
    resync: Seconds = 600.0,
    metrics_addr: str | None = None,
    qps: float = 50.0,
    burst: int = 100,
    leader_election: bool = False,
    lease_namespace: str | None = None,
    lease_name: str = "zen-lead-controller-leader-election",
    identity: str | None = None,
) -> Controller:
    """Starts the zen-lead controller (``kubectl zen lead``) in the background and returns it
    running; :meth:`Controller.stop` returns its run summary (``reconciles``, ``errors``,
    ``writes``, ``failovers``, ``latency``, ``terms``, ``watchRestarts``, ``client``).

    It watches opted-in Services in ``namespace`` (None: every namespace, as zen-lead does)
    with ``workers`` reconciling at once, re-lists every ``resync`` seconds and serves
    Prometheus metrics and health on ``metrics_addr`` (``"127.0.0.1:0"`` style; None: not
    served). With ``leader_election`` several replicas share the work through the Lease
    ``lease_namespace/lease_name``, ``identity`` naming this one.

    >>> with kubezen.sim.start() as sim:  # doctest: +SKIP
    ...     with kubezen.lead.start(kubeconfig=sim.kubeconfig, namespace="default") as lead:
    ...         report = kubezen.lead.status(kubeconfig=sim.kubeconfig)

    Raises :class:`LeadError` when the cluster cannot be reached, ``ValueError`` for options
    out of range.
    """
    task = _core.lead_start(
        kubeconfig=path(kubeconfig),
        context=context,
        namespace=namespace,
        workers=workers,
        resync=seconds("resync", resync),
        metrics_addr=metrics_addr,
        qps=qps,
        burst=burst,
        leader_election=leader_election,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        identity=identity,
    )
    return Controller("lead", task)
