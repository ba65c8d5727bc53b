"""kubectl-zen from Python.

kubezen is the Python face of kubectl-zen, a Kubernetes performance toolkit: the same Rust
engine as the ``kubectl zen`` plugin, for scripts and Jupyter.

>>> import kubezen
>>> kubezen.version_info().version == kubezen.__version__
True
"""

from kubezen import bench, cel, forward, graph, lead, sim
from kubezen._core import Graph, VersionInfo, __version__, version_info
from kubezen._reconcile import (
    ObjectOutcome,
    ReconcileError,
    ReconcileResult,
    RenderedResource,
    Rendering,
    reconcile,
)
from kubezen._tune import Finding, Recommendation, TuneError, TuneReport, tune

__all__ = [
    "Finding",
    "Graph",
    "ObjectOutcome",
    "ReconcileError",
    "ReconcileResult",
    "Recommendation",
    "RenderedResource",
    "Rendering",
    "TuneError",
    "TuneReport",
    "VersionInfo",
    "__version__",
    "bench",
    "cel",
    "forward",
    "graph",
    "lead",
    "reconcile",
    "sim",
    "tune",
    "version_info",
]
