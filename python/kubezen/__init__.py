"""kubectl-zen from Python.

kubezen is the Python face of kubectl-zen, a Kubernetes performance toolkit: the same Rust
engine as the ``kubectl zen`` plugin, for scripts and Jupyter. Every error it raises for work
that could not be done derives from :class:`ZenError`.

>>> import kubezen
>>> kubezen.version_info().version == kubezen.__version__
True
"""

from kubezen import bench, cel, forward, graph, install, lead, sim
from kubezen._core import Graph, VersionInfo, ZenError, __version__, version_info
from kubezen._reconcile import (
    ObjectDiff,
    ObjectOutcome,
    ReconcileError,
    ReconcileResult,
    RenderedResource,
    Rendering,
    reconcile,
    reconcile_controller,
    reconcile_diff,
)
from kubezen._task import Controller
from kubezen._tune import (
    Finding,
    Recommendation,
    TuneError,
    TuneReport,
    tune,
    tune_controller,
    tune_gateway,
    tune_snapshot,
)

__all__ = [
    "Controller",
    "Finding",
    "Graph",
    "ObjectDiff",
    "ObjectOutcome",
    "ReconcileError",
    "ReconcileResult",
    "Recommendation",
    "RenderedResource",
    "Rendering",
    "TuneError",
    "TuneReport",
    "VersionInfo",
    "ZenError",
    "__version__",
    "bench",
    "cel",
    "forward",
    "graph",
    "install",
    "lead",
    "reconcile",
    "reconcile_controller",
    "reconcile_diff",
    "sim",
    "tune",
    "tune_controller",
    "tune_gateway",
    "tune_snapshot",
    "version_info",
]
