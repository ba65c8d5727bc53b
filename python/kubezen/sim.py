"""zen-sim from Python: a Kubernetes API server for tests, demos and notebooks.

:func:`start` runs one on threads of its own and writes a kubeconfig for it; ``kubectl``, the
official Python client and kubezen itself work against it unchanged. Everything lives in
memory and is gone when it stops.

>>> from kubezen import sim
>>> with sim.start() as cluster:
...     cluster.url.startswith("http://127.0.0.1:")
...     open(cluster.kubeconfig).read().count("current-context: zen-sim")
True
1

Faults make it misbehave on purpose, per resource and verb, to test what talks to it:

>>> cluster = sim.start()
>>> cluster.inject_fault("configmaps", "get", status=429, retry_after=1, times=2)
>>> cluster.clear_faults()
>>> cluster.stop()
"""

from __future__ import annotations

import os
import tempfile
import weakref
from types import TracebackType

from kubezen._args import Seconds, seconds
from kubezen._core import NativeSim

__all__ = ["Sim", "start"]


class Sim:
    """A running zen-sim: its ``url``, the path of its ``kubeconfig``, and ``stop()``.

    Use it as a context manager to stop it (and remove the kubeconfig) on the way out.
    """

    def __init__(self, native: NativeSim, kubeconfig: str | None) -> None:
        self._native = native
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if kubeconfig is None:
            self._dir = tempfile.TemporaryDirectory(prefix="zen-sim-")
            kubeconfig = os.path.join(self._dir.name, "kubeconfig")
        fd = os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(native.kubeconfig_yaml())
        self._kubeconfig = kubeconfig
        self._finalizer = weakref.finalize(self, Sim._cleanup, native, self._dir)

    @property
    def url(self) -> str:
        """The server's URL, ``http://127.0.0.1:PORT`` (``https`` with ``tls=True``)."""
        return self._native.url

    @property
    def kubeconfig(self) -> str:
        """The path of a kubeconfig (context ``zen-sim``, namespace ``default``) for it."""
        return self._kubeconfig

    @property
    def running(self) -> bool:
        """Whether it is still serving."""
        return self._native.running

    def inject_fault(
        self,
        resource: str = "*",
        verb: str = "*",
        *,
        status: int | None = None,
        retry_after: int | None = None,
        delay_ms: int | None = None,
        drop_watch_after: int | None = None,
        expire_resource_versions: bool = False,
        times: int | None = None,
    ) -> None:
        """Makes matching requests fail, slow down or lose their watch.

        Give exactly one of ``status`` (an HTTP code such as 429 or 503, with ``retry_after``
        seconds for the ``Retry-After`` header), ``delay_ms``, ``drop_watch_after`` (events
        before a watch connection drops) or ``expire_resource_versions`` (an etcd compaction:
        older watches get 410 Gone). ``resource`` is a plural such as ``"configmaps"`` and
        ``verb`` one of get, list, watch, create, update, patch, delete, deletecollection;
        ``"*"`` matches all. ``times`` limits it to the next N matching requests.
        """
        actions: list[dict[str, object]] = []
        if status is not None:
            action: dict[str, object] = {"type": "status", "code": status}
            if retry_after is not None:
                action["retryAfterSeconds"] = retry_after
            actions.append(action)
        if delay_ms is not None:
            actions.append({"type": "delay", "millis": delay_ms})
        if drop_watch_after is not None:
            actions.append({"type": "dropWatch", "afterEvents": drop_watch_after})
        if expire_resource_versions:
            actions.append({"type": "expireResourceVersions"})
        if len(actions) != 1:
            raise ValueError(
                "give exactly one of status=, delay_ms=, drop_watch_after= or "
                "expire_resource_versions=True"
            )
        rule: dict[str, object] = {"action": actions[0]}
        if resource != "*":
            rule["resource"] = resource
        if verb != "*":
            rule["verb"] = verb
        if times is not None:
            rule["times"] = times
        self._native.inject_fault(rule)

    def clear_faults(self) -> None:
        """Removes every fault rule."""
        self._native.clear_faults()

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> None:
        """Marks a pod Ready or NotReady, as a readiness probe would."""
        self._native.set_pod_ready(namespace, name, ready)

    def restart(self, down_for: Seconds = 1.0) -> None:
        """Plays an API server restart, as kube-apiserver killed and started again does: every
        open connection (watches too) dropped at once, new ones refused for ``down_for``
        seconds, then served again on the same address with every object kept. Returns once it
        serves again; clients (controllers, forwards, benchmarks) must ride it out."""
        self._native.restart(seconds("down_for", down_for))

    def stats(self) -> dict[str, int]:
        """Objects stored, the current resourceVersion, requests served, uptime in seconds."""
        return self._native.stats()

    def stop(self) -> None:
        """Stops serving and removes the kubeconfig it wrote for itself; safe to call twice."""
        self._finalizer()

    @staticmethod
    def _cleanup(native: NativeSim, directory: tempfile.TemporaryDirectory[str] | None) -> None:
        native.stop()
        if directory is not None:
            directory.cleanup()

    def __enter__(self) -> Sim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<zen-sim {self.url} {state}, kubeconfig {self.kubeconfig}>"


def start(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    tls: bool = False,
    token: str | None = None,
    ready_delay: Seconds = 0.2,
    nodes: int = 3,
    kubeconfig: str | None = None,
    usage_cpu: float = 0.4,
    usage_memory: float = 0.6,
    usage_noise: float = 0.2,
) -> Sim:
    """Starts zen-sim and writes a kubeconfig for it.

    ``port=0`` picks a free port. ``tls=True`` serves HTTPS with a fresh CA the kubeconfig
    carries; ``token`` requires that bearer token. Pods become Ready ``ready_delay`` seconds
    after they are scheduled; ``nodes`` nodes exist from the start. The kubeconfig goes to
    ``kubeconfig`` (mode 0600) or to a temporary file removed by :meth:`Sim.stop`.

    metrics.k8s.io reports each container using ``usage_cpu`` of its CPU request and
    ``usage_memory`` of its memory request, swinging by ``usage_noise`` over five minutes; a
    pod's annotations ``zen-sim.kubezen.io/cpu`` and ``zen-sim.kubezen.io/memory`` set it outright.
    """
    native = NativeSim(
        host=host,
        port=port,
        tls=tls,
        token=token,
        ready_delay=seconds("ready_delay", ready_delay),
        nodes=nodes,
        usage_cpu=usage_cpu,
        usage_memory=usage_memory,
        usage_noise=usage_noise,
    )
    return Sim(native, kubeconfig)
