"""The native module of kubezen: the kubectl-zen core, driven from Python."""

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, final

__all__ = [
    "BenchError",
    "CelError",
    "CelEvaluationError",
    "CelLimitError",
    "CelSyntaxError",
    "CelVariablesError",
    "Diagnostic",
    "ForwardConfigError",
    "ForwardError",
    "Graph",
    "GraphCycleError",
    "GraphError",
    "InstallError",
    "LeadError",
    "NativeSim",
    "NativeTask",
    "Program",
    "ReconcileError",
    "TuneError",
    "Variables",
    "VersionInfo",
    "ZenError",
    "__version__",
    "bench_api",
    "bench_cache",
    "bench_cel",
    "bench_cleanup",
    "bench_compare",
    "bench_graph",
    "bench_http",
    "bench_load",
    "bench_reconcile",
    "cel_cache_stats",
    "cel_compile",
    "cel_eval",
    "forward_plan",
    "forward_start",
    "graph_load",
    "graph_loads",
    "install_change",
    "install_manifests",
    "install_yaml",
    "lead_start",
    "lead_status",
    "parse_duration",
    "reconcile_controller_start",
    "reconcile_run",
    "tune_controller",
    "tune_gateway",
    "tune_run",
    "tune_snapshot",
    "version_info",
]

__version__: str
"""The version of the kubectl-zen core this module was built from."""

@final
class VersionInfo:
    """The version, git commit, target and toolchain this module was built from.

    The same facts as ``kubectl zen version -o json``. Instances are immutable, hashable and
    compare equal when every field does.
    """

    @property
    def version(self) -> str:
        """The semantic version shared by the core, the plugin and this package."""
    @property
    def git_commit(self) -> str:
        """The full git commit of the build, or ``"unknown"`` outside a git checkout."""
    @property
    def target(self) -> str:
        """The Rust target triple, such as ``"x86_64-unknown-linux-gnu"``."""
    @property
    def rustc(self) -> str:
        """The version of the Rust compiler that built the module."""
    @property
    def profile(self) -> str:
        """The cargo profile: ``"debug"`` or ``"release"``."""
    def to_dict(self) -> dict[str, str]:
        """The fields as a plain ``dict``, keyed by attribute name."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def parse_duration(text: str) -> float:
    """Seconds in a duration written as the plugin's flags take it: ``"500ms"``, ``"30s"``,
    ``"5m"``, ``"2h"``, ``"14d"``, ``"2w"``, or a number of seconds.

    Raises ``ValueError`` for text that is not such a duration."""

def version_info() -> VersionInfo:
    """The build information of the native module.

    >>> import kubezen
    >>> kubezen.version_info().version == kubezen.__version__
    True
    """

class ZenError(Exception):
    """The base of every error kubezen raises for work that could not be done: each
    capability's error (CelError, GraphError, ReconcileError, TuneError, BenchError, LeadError,
    ForwardError) derives from it. Arguments of the wrong type or out of range raise TypeError
    or ValueError instead."""

@final
class NativeTask:
    """Work running on a thread of its own until it ends or is stopped: a controller or the
    forward supervisor (wrapped by :class:`kubezen.Controller` and
    :class:`kubezen.forward.Forwards`)."""

    @property
    def running(self) -> bool:
        """Whether the work is still running."""
    def state(self) -> str:
        """The latest state the work published, as JSON text (``"null"`` before any)."""
    def wait(self, timeout: float | None = None) -> bool:
        """Waits until the work ends, at most ``timeout`` seconds (None: no limit), with the
        GIL released. True when it ended."""
    def stop(self) -> str:
        """Stops the work, waits for it and returns what it returned (JSON text), or raises
        its error. Safe to call again."""

class CelError(ZenError):
    """A CEL expression could not be compiled or evaluated.

    ``position`` is ``(line, column)``, from 1, where known, else None; ``kind`` names the
    kind of an evaluation error (``"no_such_key"``, ``"undeclared_reference"``, ``"type"``,
    ``"division_by_zero"``, ``"overflow"``, ``"index_out_of_bounds"``, ``"function"``,
    ``"other"``), else None.
    """

    position: tuple[int, int] | None
    kind: str | None

class CelSyntaxError(CelError):
    """The expression is not valid CEL."""

class CelLimitError(CelError):
    """The expression is longer or deeper than the engine accepts."""

class CelEvaluationError(CelError):
    """Evaluation failed: a missing key, division by zero, overflow, a wrong type."""

class CelVariablesError(CelError):
    """The variables are not values CEL can take."""

@final
class Variables:
    """Variables converted once, to evaluate many programs or one program many times without
    converting the dict on every call."""

    def __new__(cls, vars: dict[str, Any]) -> Variables: ...
    def names(self) -> list[str]:
        """The variable names, sorted."""

@final
class Program:
    """A compiled CEL expression: evaluate it as often as needed."""

    @property
    def source(self) -> str:
        """The expression's text."""
    def eval(self, vars: dict[str, Any] | Variables | None = None) -> Any:
        """Evaluates the program against ``vars``: a dict of variable names to values, or a
        :class:`Variables` converted once for many evaluations.

        The GIL is released while the expression runs.
        """
    def check(self, vars: dict[str, Any] | Variables | None = None) -> list[str]:
        """What would go wrong evaluating against ``vars``: references to variables not
        given, else the evaluation's error, as messages; empty when it runs."""
    def references(self) -> list[str]:
        """The variables and field paths the expression reads, as dotted names, sorted."""
    def complexity(self) -> dict[str, int | str]:
        """How costly the expression is: ``nodes``, ``depth``, ``calls``, ``comprehensions``,
        ``comprehension_nesting``, ``score`` and ``cost_class``."""

def cel_compile(expr: str) -> Program:
    """Compiles ``expr`` through the shared cache of compiled programs."""

def cel_eval(expr: str, vars: dict[str, Any] | Variables | None = None) -> Any:
    """Compiles (through the cache) and evaluates ``expr`` against ``vars``."""

def cel_cache_stats() -> dict[str, int]:
    """The counters of the shared cache: ``hits``, ``misses``, ``evictions``, ``entries`` and
    ``capacity``."""

class GraphError(ZenError):
    """Resource graphs could not be read: a missing file, invalid YAML, no RGD, or several
    where one was asked for."""

class GraphCycleError(GraphError):
    """The graph has a cycle, so it has no order.

    ``cycles`` lists every cycle as a path of ids that ends where it starts: ``["a", "b",
    "a"]`` means a depends on b and b on a.
    """

    cycles: list[list[str]]

@final
class Diagnostic:
    """A problem found in a graph, worded as KRO words it."""

    @property
    def severity(self) -> Literal["error", "warning"]:
        """``"error"`` (KRO would reject the graph) or ``"warning"``."""
    @property
    def message(self) -> str:
        """What is wrong."""
    @property
    def file(self) -> str:
        """The file the graph came from (``"-"`` for standard input)."""
    @property
    def document(self) -> int:
        """The YAML document in the file, from 1."""
    @property
    def resource(self) -> str | None:
        """The resource's id, or None for problems of the graph as a whole."""
    @property
    def path(self) -> str | None:
        """The field from the RGD's root, e.g. ``spec.resources[1].template.spec.replicas``."""
    @property
    def hint(self) -> str | None:
        """How to fix it, or None."""

@final
class Graph:
    """A KRO ResourceGraphDefinition, parsed, validated and ordered.

    >>> from kubezen.graph import Graph
    >>> g = Graph.from_dependencies({"vpc": [], "subnet": ["vpc"], "cluster": ["subnet", "vpc"]})
    >>> g.order()
    ['vpc', 'subnet', 'cluster']
    >>> g.waves()
    [['vpc'], ['subnet'], ['cluster']]

    In Jupyter a graph displays as a summary, its problems, and a picture.
    """

    @staticmethod
    def from_file(
        path: str | os.PathLike[str],
        name: str | None = None,
        crds: Sequence[str | os.PathLike[str]] | None = None,
    ) -> Graph:
        """The graph in ``path`` (a YAML/JSON file or a directory); ``name`` picks one of
        several; ``crds`` (files or directories of CRDs) add the schemas of custom kinds,
        whose templates are then checked as the built-in kinds' are. Raises
        :class:`GraphError` when it cannot be read."""
    @staticmethod
    def from_yaml(
        text: str,
        name: str | None = None,
        crds: Sequence[str | os.PathLike[str]] | None = None,
    ) -> Graph:
        """The graph in ``text`` (YAML or JSON); ``name`` and ``crds`` as for ``from_file``."""
    @staticmethod
    def from_cluster(
        name: str,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        crds: Sequence[str | os.PathLike[str]] | None = None,
    ) -> Graph:
        """Reads the ResourceGraphDefinition ``name`` from the cluster and analyses it."""
    @staticmethod
    def from_dependencies(dependencies: Mapping[str, Sequence[str]], name: str = "graph") -> Graph:
        """A bare dependency graph: ``{id: [ids it depends on]}`` in declaration order."""
    @property
    def name(self) -> str:
        """``metadata.name`` of the RGD."""
    @property
    def file(self) -> str:
        """The file it was read from."""
    @property
    def valid(self) -> bool:
        """True when no diagnostic is an error."""
    @property
    def ids(self) -> list[str]:
        """The resource ids, in declaration order."""
    def order(self) -> list[str]:
        """KRO's topological order: among the ready resources, the first declared. Raises
        :class:`GraphCycleError` on a cycle."""
    def waves(self) -> list[list[str]]:
        """KRO's apply waves, first to last (deletion runs them backwards)."""
    def levels(self) -> list[list[str]]:
        """Earliest-start levels: level 0 depends on nothing."""
    def cycles(self) -> list[list[str]]:
        """Every cycle as an id path that ends where it starts; empty when there is none."""
    def critical_path(self) -> list[str]:
        """The longest chain of dependencies, first dependency first."""
    def dependencies(self, id: str) -> list[str]:
        """The ids ``id`` depends on; KeyError for an unknown id."""
    def dependents(self, id: str) -> list[str]:
        """The ids that depend on ``id``; KeyError for an unknown id."""
    def diagnostics(self) -> list[Diagnostic]:
        """Every error and warning, errors first."""
    def metrics(self) -> dict[str, Any]:
        """Size and shape: ``nodes``, ``edges``, ``depth``, ``widestLevel``, fan-in/out,
        expression counts and the complexity score."""
    def report(self) -> dict[str, Any]:
        """Everything ``kubectl zen graph inspect -o json`` prints."""
    def spec_schema(self) -> dict[str, Any]:
        """The OpenAPI v3 schema KRO generates for the instance's ``spec``."""
    def instance_crd(self) -> dict[str, Any]:
        """The CustomResourceDefinition KRO would create for the instance API."""
    def to_dot(self) -> str:
        """Graphviz DOT, arrows from dependency to dependent."""
    def to_mermaid(self) -> str:
        """A Mermaid flowchart."""
    def to_svg(self) -> str:
        """A picture of the graph as SVG text, laid out by start level."""
    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph`` (edges from dependency to dependent; node attributes
        ``kind``, ``api_version``, ``resource_kind``). Needs networkx installed."""
    def _repr_html_(self) -> str: ...
    def __len__(self) -> int: ...

def graph_load(
    path: str | os.PathLike[str], crds: Sequence[str | os.PathLike[str]] | None = None
) -> list[Graph]:
    """Every graph in ``path`` (a file or a directory)."""

def graph_loads(text: str, crds: Sequence[str | os.PathLike[str]] | None = None) -> list[Graph]:
    """Every graph in ``text``; an empty list when there is none."""

# -- reconcile --------------------------------------------------------------------------

class ReconcileError(ZenError):
    """The graph has errors, the instance does not fit its schema, an expression failed
    offline, or the cluster refused what every object needs."""

class LeadError(ZenError):
    """The zen-lead state could not be read: an unreachable cluster or a refused request."""

def lead_status(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> str:
    """Every Service opted in to zen-lead, its leader and problems, as JSON text."""

def lead_start(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 10,
    resync: float = 600.0,
    metrics_addr: str | None = None,
    qps: float = ...,
    burst: int = ...,
    leader_election: bool = False,
    lease_namespace: str | None = None,
    lease_name: str = ...,
    identity: str | None = None,
) -> NativeTask:
    """Starts the zen-lead controller; its ``stop()`` returns the run summary as JSON text."""

# -- install ----------------------------------------------------------------------------

class InstallError(ZenError):
    """An install could not be rendered, applied or removed: a graph with errors, an
    unreachable cluster or a refused request."""

def install_manifests(
    controller: str,
    *,
    rgd: str | None = None,
    crds: Sequence[str] = ...,
    namespace: str = ...,
    replicas: int = 2,
    image: str = ...,
    as_graph: bool = False,
) -> str:
    """Every object that runs ``controller`` (``"lead"`` or ``"reconcile-controller"``), as a
    JSON array; with ``as_graph`` (lead only) zen-lead's install as one
    ResourceGraphDefinition."""

def install_change(
    controller: str,
    *,
    uninstall: bool = False,
    dry_run: bool = False,
    rgd: str | None = None,
    crds: Sequence[str] = ...,
    namespace: str = ...,
    replicas: int = 2,
    image: str = ...,
    kubeconfig: str | None = None,
    context: str | None = None,
    instances: str = "refuse",
) -> str:
    """Server-side applies the install of ``controller`` (or with ``uninstall`` deletes what
    it made, and with ``instances`` ``"delete"`` or ``"orphan"`` releases the instances a
    reconcile controller's finalizer holds); the changes as a JSON array."""

def install_yaml(objects: str) -> str:
    """``objects`` (JSON text of an array) as one YAML stream, as ``kubectl zen install``
    prints it."""

def reconcile_run(
    graph: Graph,
    instance: str,
    *,
    dry_run: bool = False,
    delete: bool = False,
    diff: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 4,
    timeout: float = 300.0,
    force_conflicts: bool = False,
    prune: bool = True,
) -> str:
    """Renders, applies, deletes or diffs one instance (YAML or JSON text); the result as JSON
    text."""

def reconcile_controller_start(
    graph: Graph,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    workers: int = 4,
    resync: float = 300.0,
    timeout: float = 300.0,
    force_conflicts: bool = False,
    prune: bool = True,
    metrics_addr: str | None = None,
    qps: float = ...,
    burst: int = ...,
) -> NativeTask:
    """Starts a controller for every instance of ``graph``; its ``stop()`` returns ``"null"``."""

# -- sim --------------------------------------------------------------------------------

@final
class NativeSim:
    """A running zen-sim on threads of its own (wrapped by :class:`kubezen.sim.Sim`)."""

    def __new__(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        token: str | None = None,
        ready_delay: float = 0.2,
        nodes: int = 3,
        usage_cpu: float = 0.4,
        usage_memory: float = 0.6,
        usage_noise: float = 0.2,
    ) -> NativeSim: ...
    @property
    def url(self) -> str:
        """The server's URL."""
    @property
    def running(self) -> bool:
        """Whether it is still serving."""
    def kubeconfig_yaml(self) -> str:
        """A kubeconfig for it, as YAML text."""
    def inject_fault(self, rule: dict[str, Any]) -> None:
        """Adds a fault rule in its JSON form."""
    def clear_faults(self) -> None:
        """Removes every fault rule."""
    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Marks a pod Ready or NotReady."""
    def restart(self, down_for: float) -> None:
        """Drops every connection, refuses new ones for ``down_for`` seconds, keeps objects."""
    def stats(self) -> dict[str, int]:
        """``objects``, ``revision``, ``requests``, ``uptime_seconds``."""
    def stop(self) -> None:
        """Stops serving; safe to call twice."""

# -- tune --------------------------------------------------------------------------------

class TuneError(ZenError):
    """Tuning could not run: bad options, an unreadable snapshot or manifest, or a cluster or
    Prometheus that refused."""

def tune_run(
    *,
    manifests: list[str] | None = None,
    snapshot: str | None = None,
    workloads: list[str] = ...,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    prometheus: str | None = None,
    history: float = 1209600.0,
    step: float = 300.0,
    sample_for: float = 600.0,
    every: float = 15.0,
    cpu_percentile: float = 95.0,
    cpu_limit: str = "none",
    memory_buffer: float = 15.0,
    oom_buffer: float = 25.0,
    min_samples: int = 100,
    profile: str | None = None,
    patch: str | None = None,
    apply: bool = False,
    dry_run: bool = False,
    force_conflicts: bool = False,
) -> str:
    """Analyses manifests, a snapshot or a live cluster; returns the report as JSON text, with
    ``written`` (patch files) and ``applied`` (per-workload results) beside it. The GIL is
    released while it works. Use :func:`kubezen.tune`."""

def tune_snapshot(
    dir: str,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    prometheus: str | None = None,
    history: float = 1209600.0,
    step: float = 300.0,
    sample_for: float = 600.0,
    every: float = 15.0,
) -> str:
    """Records workloads and their usage into the snapshot directory ``dir``; what was
    recorded as JSON text."""

def tune_controller(
    *,
    kinds: list[str] | None = None,
    objects: int | None = None,
    largest_namespace: int | None = None,
    object_bytes: int | None = None,
    cores: int = 2,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> str:
    """Advice for a controller's client, workers and caches, as JSON text."""

def tune_gateway(rps: int, concurrency: int = 100) -> str:
    """Sizing for an API gateway at ``rps`` requests a second, as JSON text."""

# -- bench -------------------------------------------------------------------------------

class BenchError(ZenError):
    """A benchmark could not run: bad options, an unreachable target, or a cluster that
    refused the set-up."""

def bench_api(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    workers: int = 4,
    duration: float = 30.0,
    count: int | None = None,
    resources: int = 100,
    ops: list[str] | None = None,
    mix: list[tuple[str, int]] | None = None,
    kind: str = "configmap",
    object_size: int = 1024,
    qps: float = 0.0,
    burst: int = 100,
    attempts: int = 1,
    cleanup_timeout: float = 120.0,
) -> str:
    """Runs ``bench api``; returns the report as JSON text. The GIL is released; Ctrl-C
    stops the run, cleans up and raises KeyboardInterrupt."""

def bench_cleanup(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    run: str | None = None,
    dry_run: bool = False,
    older_than: float = 0.0,
    timeout: float = 120.0,
) -> str:
    """Deletes what earlier runs left; returns the namespaces as JSON text."""

def bench_http(
    url: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] = ...,
    body: bytes | None = None,
    rate: float | None = None,
    concurrency: int | None = None,
    duration: float = 10.0,
    count: int | None = None,
    timeout: float = 30.0,
    insecure: bool = False,
    cacert: str | None = None,
    target_p95: float | None = None,
    target_p99: float | None = None,
    min_success: float | None = None,
) -> str:
    """Runs ``bench http``; returns the report as JSON text."""

def bench_cel(*, budget: float = 0.1, filter: str | None = None) -> str:
    """Runs ``bench cel``; returns the report as JSON text."""

def bench_graph(*, sizes: list[int] = ..., budget: float = 0.3) -> str:
    """Runs ``bench graph``; returns the report as JSON text."""

def bench_cache(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    objects: int = 2000,
    capacities: list[int] = ...,
    ttls: list[float] = ...,
    duration: float = 2.0,
    skew: float = 1.0,
) -> str:
    """Runs ``bench cache``; returns the report as JSON text."""

def bench_reconcile(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    resources: int = 100,
    workers: int = 4,
    runs: int = 3,
) -> str:
    """Runs ``bench reconcile``; returns the report as JSON text."""

def bench_load(text: str) -> str:
    """Checks a report's JSON text; returns it as the engine writes it."""

def bench_compare(report: str, baseline: str, threshold: float) -> str:
    """A report (JSON text) compared with a baseline (JSON text); returns it with its
    changes."""

class ForwardError(ZenError):
    """The port-forward supervisor could not run: an unreachable cluster, or nothing to forward."""

class ForwardConfigError(ForwardError):
    """A forward configuration that cannot be used; the message names its file, entry and field."""

def forward_plan(
    layers: Sequence[tuple[str, str | None]],
    *,
    user_config: bool = False,
    check_ports: bool = True,
) -> str:
    """The embedded defaults, the user's file (with ``user_config``) and ``layers`` merged in
    order (each ``(path, None)`` or ``(name, text)``), and the local port of every enabled
    entry, as JSON text: ``{"assignments": [...], "config": {...}}``."""

def forward_start(
    layers: Sequence[tuple[str, str | None]],
    *,
    user_config: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    grace: float = 2.0,
) -> NativeTask:
    """Starts the port-forward supervisor for the merged configuration; its state is every
    entry's status (a JSON list), and ``stop()`` returns the last statuses."""
