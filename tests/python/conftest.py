"""Shared facts about the checkout the tests run in, and the cluster tests run against.

The ``cluster`` fixture is zen-sim by default; with ``ZEN_TEST_KUBECONFIG`` set (``make test``
sets it in its second pass, under ``tests/control-plane/cluster.sh run``) it is that real
cluster. Tests that use it are marked ``cluster``: the second pass runs ``pytest -m cluster``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from kubezen import sim

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the machine runs 3.11; kept for older interpreters
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> Path:
    """The root of the checkout."""
    return ROOT


@pytest.fixture(scope="session")
def workspace_version() -> str:
    """The one version of the workspace, from the root Cargo.toml."""
    with (ROOT / "Cargo.toml").open("rb") as f:
        version = tomllib.load(f)["workspace"]["package"]["version"]
    assert isinstance(version, str)
    return version


@pytest.fixture(scope="session")
def plugin_bin() -> Path:
    """The kubectl-zen binary built from this checkout (the Makefile exports its path)."""
    path = Path(os.environ.get("KUBECTL_ZEN_BIN", ROOT / "target" / "debug" / "kubectl-zen"))
    assert path.is_file(), f"{path} is missing: run `make build` (or `make test`) first"
    return path


@pytest.fixture(scope="session")
def head_commit() -> str | None:
    """The commit the checkout is at, or None before the first commit."""
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


T = TypeVar("T")


def while_counting(work: Callable[[], T], pause: float) -> tuple[T, int, float]:
    """Runs `work` while another Python thread counts, pausing `pause` seconds a tick: the
    result, the ticks counted meanwhile (only if the GIL was released) and the seconds taken."""
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(pause)

    counter = threading.Thread(target=count)
    counter.start()
    started = time.perf_counter()
    try:
        result = work()
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        counter.join()
    return result, ticks, elapsed


REAL_KUBECONFIG = os.environ.get("ZEN_TEST_KUBECONFIG") or None
# The label naming the test namespace a cluster-scoped object was made for.
TEST_NAMESPACE = "kubezen.io/test-namespace"


def skip_on_real_cluster(why: str) -> NoReturn:
    """Skips the rest of a test on a real cluster, saying why; with ``ZEN_TEST_SKIP_LOG`` set,
    also adds a line to that file, which ``cluster.sh skips`` counts at the end of the run."""
    log = os.environ.get("ZEN_TEST_SKIP_LOG")
    if log:
        test = os.environ.get("PYTEST_CURRENT_TEST", "a test").split(" ")[0]
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{test}: {why}\n")
    pytest.skip(why)


class TestCluster:
    """A cluster for one test, with a namespace of the test's own."""

    __test__ = False  # not a test class, for all its name

    def __init__(self, kubeconfig: str, namespace: str, zen_sim: sim.Sim | None,
                 scratch: Path) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self._sim = zen_sim
        self._cache = scratch / "kubectl-cache"

    @property
    def is_real(self) -> bool:
        """Whether this is a real cluster rather than zen-sim."""
        return self._sim is None

    def sim_only(self, what: str) -> sim.Sim:
        """The simulator; on a real cluster the test skips (and says why): ``what`` needs it."""
        if self._sim is None:
            skip_on_real_cluster(f"on a real cluster, {what} needs zen-sim")
        assert self._sim is not None
        return self._sim

    def restart_api_server(self, down_for: float) -> None:
        """Restarts the API server: zen-sim's restart fault, or kube-apiserver of
        ``tests/control-plane/cluster.sh run`` (``ZEN_TEST_CONTROL_PLANE``) killed and started
        again after ``down_for`` seconds, then the cluster given time to settle (a Deployment
        made Available again). Returns once it serves again."""
        if self._sim is not None:
            self._sim.restart(down_for)
            return
        control_plane = os.environ.get("ZEN_TEST_CONTROL_PLANE", "")
        if not control_plane:
            skip_on_real_cluster("restarting the API server needs zen-sim or cluster.sh")
        script = str(ROOT / "tests" / "control-plane" / "cluster.sh")
        subprocess.run(["bash", script, "restart-apiserver", control_plane, str(down_for)],
                       check=True)
        subprocess.run(["bash", script, "settle", control_plane], check=True)

    def serve_pod_port(self, port: int, backend: str) -> None:
        """Makes ``port`` of every pod in the test's namespace answer as ``backend``
        (``"127.0.0.1:PORT"``) does, as an image serving that port would: zen-sim reads the pods'
        ``zen-sim.kubezen.io/port-forward`` annotation (which the tests set); on the real control
        plane of ``cluster.sh``, kwok forwards to where a ``ClusterPortForward`` selecting the
        namespace says. On another real cluster the test skips."""
        if self._sim is not None:
            return
        if not os.environ.get("ZEN_TEST_CONTROL_PLANE"):
            skip_on_real_cluster("a pod port standing in for a server needs zen-sim or cluster.sh")
        host, _, target = backend.rpartition(":")
        self.apply(
            "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterPortForward\n"
            f"metadata: {{name: {self.namespace}-{port}, "
            f"labels: {{{TEST_NAMESPACE}: {self.namespace}}}}}\n"
            f"spec:\n  selector: {{matchNamespaces: [{self.namespace}]}}\n"
            f"  forwards: [{{ports: [{port}], target: {{address: '{host}', port: {target}}}}}]\n"
        )

    def wait_for_pod_metrics(self, count: int, timeout: float = 60.0) -> None:
        """Waits until metrics.k8s.io serves the usage of ``count`` pods of the test's
        namespace (metrics-server reads them two scrapes, 10 s apart, after they run)."""
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{self.namespace}/pods"
        _eventually(lambda: len(json.loads(self.kubectl("get", "--raw", path) or "{}")
                                .get("items") or []) >= count,
                    timeout, f"the metrics of {count} pods")

    def sample_for(self, zen_sim: float) -> float:
        """Seconds to sample usage zen-sim reports anew every second: metrics-server reads each
        pod every 10 s, so on a real cluster two readings take 21 s."""
        return zen_sim if self._sim is not None else 21.0

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """kubectl against this cluster, in the test's namespace; its standard output."""
        result = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir", str(self._cache),
             "-n", self.namespace, *args],
            input=stdin, text=True, capture_output=True, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def apply(self, yaml: str) -> None:
        """``kubectl apply`` of a YAML stream into the test's namespace."""
        self.kubectl("apply", "-f", "-", stdin=yaml)


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TestCluster]:
    """zen-sim, or the real cluster of ``ZEN_TEST_KUBECONFIG``, with a fresh namespace."""
    namespace = f"zen-test-{random.getrandbits(32):08x}"
    zen_sim = None if REAL_KUBECONFIG else sim.start()
    kubeconfig = REAL_KUBECONFIG or (zen_sim.kubeconfig if zen_sim else "")
    test_cluster = TestCluster(kubeconfig, namespace, zen_sim, tmp_path)
    try:
        test_cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}, "
                           "labels: {kubezen.io/test: 'true'}}\n")
        if zen_sim is None:
            # The controller manager gives a namespace its default ServiceAccount a moment
            # later; until then the ServiceAccount admission plugin refuses pods there.
            _eventually(lambda: test_cluster.kubectl("get", "serviceaccount", "default",
                                                     check=False) != "",
                        60, "the namespace's default ServiceAccount")
        yield test_cluster
    finally:
        if zen_sim is None:
            if os.environ.get("ZEN_TEST_CONTROL_PLANE"):
                test_cluster.kubectl("delete", "clusterportforwards", "--ignore-not-found",
                                     "-l", f"{TEST_NAMESPACE}={namespace}", check=False)
            test_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        else:
            zen_sim.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests that use a cluster, for the real control plane's pass."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
