"""The architecture stays visible: the core crate knows nothing of its faces."""

from __future__ import annotations

import subprocess
from pathlib import Path

FACE_CRATES = {"clap", "clap_complete", "colored", "pyo3"}


def dependencies(root: Path, package: str) -> set[str]:
    """Every crate `package` builds with (normal and build dependencies, transitively)."""
    result = subprocess.run(
        ["cargo", "tree", "--locked", "-p", package, "-e", "normal,build", "--prefix", "none"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def test_the_core_depends_on_no_face(root: Path) -> None:
    core = dependencies(root, "kubezen")
    assert "kubezen" in core
    assert core.isdisjoint(FACE_CRATES), core & FACE_CRATES


def test_each_face_builds_on_the_core(root: Path) -> None:
    plugin = dependencies(root, "kubectl-zen")
    python = dependencies(root, "kubezen-python")
    assert {"kubezen", "clap"} <= plugin
    assert {"kubezen", "pyo3"} <= python
    assert "pyo3" not in plugin and "clap" not in python
