"""Port-forwards that stay up: the plan ``kubectl zen forward plan`` shows, and the supervisor
``kubectl zen forward`` runs, started in the background with :func:`start`.

A configuration is the embedded defaults with files (or mappings) merged over them field by
field; :func:`plan` merges them and gives every enabled entry its local port, in the
documented stable order (by name; requested free ports first; then the first free port above
a taken one, or of ``localPorts``), never one port to two entries:

>>> import kubezen
>>> team = {"portForwards": {
...     "web": {"target": "svc/web", "targetPort": "http", "localPort": 18080},
...     "web-too": {"target": "deploy/web", "targetPort": 8080, "localPort": 18080},
... }}
>>> p = kubezen.forward.plan(team, check_ports=False)
>>> p.port("web"), p.port("web-too")
(18080, 18081)
>>> p.assignments[1].reason, p.assignments[1].conflict_with
('conflict', 'web')

:func:`start` forwards every enabled entry until stopped, re-choosing pods and reconnecting as
they come and go; :meth:`Forwards.statuses` is the status table:

>>> with kubezen.forward.start(team, kubeconfig="kc.yaml") as forwards:  # doctest: +SKIP
...     forwards.wait_running(timeout=10)
...     [(s["name"], s["state"], s["localPort"]) for s in forwards.statuses()]
True
[('web', 'Running', 18080), ('web-too', 'Running', 18081)]
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kubezen._args import Seconds, path, seconds
from kubezen import _core
from kubezen._core import ForwardConfigError, ForwardError, NativeTask
from kubezen._task import Background

__all__ = ["Assignment", "ForwardConfigError", "ForwardError", "Forwards", "Plan", "plan", "start"]

@dataclass(frozen=True)
class Assignment:
    """One enabled entry's local port, and why it is that one."""

    name: str
    requested: int | None
    """The ``localPort`` the entry asked for."""
    port: int | None
    """The port it gets; ``None`` when every port was taken."""
    reason: Literal["requested", "automatic", "conflict", "inUse", "exhausted"]
    """``requested``, ``automatic``, ``conflict`` (an entry sorting first holds it), ``inUse``
    (another program holds it) or ``exhausted``."""
    conflict_with: str | None = None
    """For a conflict: the entry that holds the port asked for."""


@dataclass(frozen=True)
class Plan:
    """The local ports of a configuration's enabled entries, ordered by name, and the merged
    configuration they come from (as ``kubectl zen forward config show -o json`` prints it)."""

    assignments: list[Assignment]
    config: dict[str, Any]

    def port(self, name: str) -> int | None:
        """The local port of entry ``name`` (``None`` for a disabled or unknown entry)."""
        for assignment in self.assignments:
            if assignment.name == name:
                return assignment.port
        return None

    def to_pandas(self) -> Any:
        """A DataFrame, one row per enabled entry. Needs pandas."""
        pd: Any = importlib.import_module("pandas")
        return pd.DataFrame([asdict(row) for row in self.assignments])

    def __len__(self) -> int:
        return len(self.assignments)

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (
                    a.name,
                    "-" if a.requested is None else a.requested,
                    "-" if a.port is None else a.port,
                    a.reason if a.conflict_with is None else f"conflict with {a.conflict_with}",
                )
            )
            + "</tr>"
            for a in self.assignments
        )
        head = "".join(f"<th>{name}</th>" for name in ("name", "requested", "port", "why"))
        return f"<table><tr>{head}</tr>{rows}</table>"


def plan(
    *configs: str | os.PathLike[str] | Mapping[str, Any],
    user_config: bool = False,
    check_ports: bool = True,
) -> Plan:
    """Merges the embedded defaults, the user's ``~/.config/kubectl-zen/forward.yaml`` (with
    ``user_config``) and ``configs`` in order (each a YAML file's path, or a mapping of the same
    shape), then allocates local ports. With ``check_ports`` (the default) a port another
    program listens on is skipped, as ``kubectl zen forward`` would; without, every port is
    taken as free, so the plan depends on the configuration alone.

    Raises :class:`ForwardConfigError` naming the file, entry and field of the first problem.
    """
    report = json.loads(
        _core.forward_plan(_layers(configs), user_config=user_config, check_ports=check_ports)
    )
    return Plan(
        assignments=[
            Assignment(
                name=row["name"],
                requested=row.get("requested"),
                port=row.get("port"),
                reason=row["reason"]["kind"],
                conflict_with=row["reason"].get("with"),
            )
            for row in report["assignments"]
        ],
        config=report["config"],
    )


def _layers(configs: tuple[str | os.PathLike[str] | Mapping[str, Any], ...]) -> list[tuple[str, str | None]]:
    layers: list[tuple[str, str | None]] = []
    for index, config in enumerate(configs, start=1):
        if isinstance(config, Mapping):
            layers.append((f"<mapping {index}>", json.dumps(config)))
        elif isinstance(config, (str, os.PathLike)):
            layers.append((os.fspath(config), None))
        else:
            raise TypeError(f"a configuration is a path or a mapping, not {type(config).__name__}")
    return layers


class Forwards(Background):
    """The port-forward supervisor running on a thread of its own (from :func:`start`).

    Each status is a dict as ``kubectl zen forward status -o json`` prints it: ``name``,
    ``target``, ``namespace``, ``localPort``, ``state`` (``Starting``, ``Running``,
    ``Degraded``, ``Failed``, ``Suspended`` or ``Reconnecting``), ``since``, ``restarts``,
    ``pod``, ``podPort``, ``connections``, ``bytes`` and ``message``."""

    def __init__(self, task: NativeTask) -> None:
        self._task = task

    @property
    def running(self) -> bool:
        """Whether the supervisor still runs."""
        return self._task.running

    def statuses(self) -> list[dict[str, Any]]:
        """Every entry's latest status, ordered by name."""
        result: list[dict[str, Any]] = json.loads(self._task.state()) or []
        return result

    def wait_running(self, timeout: Seconds = 30.0) -> bool:
        """Waits until every entry is ``Running``, at most ``timeout`` seconds; True when they
        are. The GIL is free meanwhile."""
        deadline = time.monotonic() + seconds("timeout", timeout)
        while True:
            statuses = self.statuses()
            if statuses and all(s["state"] == "Running" for s in statuses):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self.running:
                return False
            self._task.wait(min(0.05, left))

    def stop(self) -> list[dict[str, Any]]:
        """Closes the local ports, gives open connections the ``grace`` period, and returns
        the last statuses; raises :class:`ForwardError` if the supervisor failed. Safe to call
        again."""
        result: list[dict[str, Any]] = json.loads(self._task.stop())
        return result

    def to_pandas(self) -> Any:
        """The statuses as a DataFrame, one row per entry. Needs pandas."""
        pd: Any = importlib.import_module("pandas")
        return pd.DataFrame(self.statuses())

    def __repr__(self) -> str:
        states = ", ".join(f"{s['name']}={s['state']}" for s in self.statuses())
        return f"<Forwards {'running' if self.running else 'stopped'}: {states}>"

    def _repr_html_(self) -> str:
        import html

        columns = ("name", "target", "localPort", "state", "pod", "restarts", "connections", "message")
        head = "".join(f"<th>{name}</th>" for name in columns)
        rows = "".join(
            "<tr>" + "".join(
                f"<td>{html.escape('-' if s.get(c) is None else str(s.get(c)))}</td>" for c in columns
            ) + "</tr>"
            for s in self.statuses()
        )
        return f"<table><tr>{head}</tr>{rows}</table>"


def start(
    *configs: str | os.PathLike[str] | Mapping[str, Any],
    user_config: bool = False,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    grace: Seconds = 2.0,
) -> Forwards:
    """Starts forwarding every enabled entry of the merged configuration (merged as
    :func:`plan` merges it) on the ports the plan gives, until :meth:`Forwards.stop`; entries
    without a namespace use ``namespace`` or the context's. Raises :class:`ForwardConfigError`
    for a bad configuration and :class:`ForwardError` when nothing is enabled or the cluster
    cannot be reached; returns once the ports are being opened."""
    return Forwards(
        _core.forward_start(
            _layers(configs), user_config=user_config,
            kubeconfig=path(kubeconfig),
            context=context, namespace=namespace, grace=seconds("grace", grace),
        )
    )
