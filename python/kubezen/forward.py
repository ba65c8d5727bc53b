"""The forward configuration and its local-port plan: what ``kubectl zen forward plan`` shows.

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
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kubezen import _core
from kubezen._core import ForwardConfigError

__all__ = ["Assignment", "ForwardConfigError", "Plan", "plan"]

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
    layers: list[tuple[str, str | None]] = []
    for index, config in enumerate(configs, start=1):
        if isinstance(config, Mapping):
            layers.append((f"<mapping {index}>", json.dumps(config)))
        elif isinstance(config, (str, os.PathLike)):
            layers.append((os.fspath(config), None))
        else:
            raise TypeError(f"a configuration is a path or a mapping, not {type(config).__name__}")
    report = json.loads(
        _core.forward_plan(layers, user_config=user_config, check_ports=check_ports)
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
