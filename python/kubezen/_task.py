"""Controllers running in the background of a Python process or notebook."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, TypeVar

from kubezen._args import Seconds, seconds_or_none
from kubezen._core import NativeTask

__all__ = ["Background", "Controller"]

Self = TypeVar("Self", bound="Background")


class Background:
    """Work on a thread of its own that a ``with`` block stops on the way out."""

    def stop(self) -> Any:
        """Stops the work and returns its result."""
        raise NotImplementedError

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.stop()
        else:
            # An error inside the block is the one to see; the work's own is dropped.
            try:
                self.stop()
            except Exception:  # noqa: BLE001
                pass


class Controller(Background):
    """A controller (zen-lead, or a graph's reconcile controller) running on a thread of its
    own while Python goes on. Stop it with :meth:`stop`, or use it as a context manager:

    >>> import kubezen
    >>> with kubezen.sim.start() as sim:  # doctest: +SKIP
    ...     with kubezen.lead.start(kubeconfig=sim.kubeconfig) as controller:
    ...         controller.running
    True

    The connection is made before it is returned: an unreachable cluster raises at start.
    """

    def __init__(self, name: str, task: NativeTask) -> None:
        self._name = name
        self._task = task

    @property
    def name(self) -> str:
        """Which controller this is: ``"lead"`` or ``"reconcile <graph>"``."""
        return self._name

    @property
    def running(self) -> bool:
        """Whether it still runs (it ends by itself only on an error)."""
        return self._task.running

    def wait(self, timeout: Seconds | None = None) -> bool:
        """Waits for it to end, at most ``timeout`` (seconds, a timedelta or ``"30s"``; None: no limit), with the GIL
        released; True when it ended. Ctrl-C raises ``KeyboardInterrupt`` and leaves it
        running."""
        return self._task.wait(seconds_or_none("timeout", timeout))

    def stop(self) -> Any:
        """Stops it and waits for it to finish its work in hand; returns its summary (a dict,
        or None when the controller has none) or raises the error that ended it. Calling it
        again gives the same answer."""
        return json.loads(self._task.stop())

    def __repr__(self) -> str:
        return f"<Controller {self._name} {'running' if self.running else 'stopped'}>"
