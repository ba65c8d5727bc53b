"""The notebooks run top to bottom, against zen-sim and the real control plane; a cell that
raises fails the test."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from conftest import TestCluster

# The `test` extra installs these; a missing one fails the tests rather than skipping them.
nbformat: Any = importlib.import_module("nbformat")
nbclient: Any = importlib.import_module("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_every_notebook_is_tested() -> None:
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["capacity.ipynb", "graph-scaling.ipynb", "tuning-report.ipynb"]


def run(name: str, tmp_path: Path) -> None:
    """Runs a notebook top to bottom in a fresh kernel; a cell that raises fails the test."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{name} is committed with outputs: clear them (Kernel > Restart and Clear Output)"
    )
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors, errors
    nbformat.write(notebook, tmp_path / name)  # the executed copy, to look at when it fails


def test_the_graph_scaling_notebook_runs(tmp_path: Path) -> None:
    run("graph-scaling.ipynb", tmp_path)


def test_the_capacity_notebook_runs(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits the environment: the notebook benchmarks the test's cluster.
    monkeypatch.setenv("ZEN_NOTEBOOK_KUBECONFIG", cluster.kubeconfig)
    run("capacity.ipynb", tmp_path)


def test_the_tuning_report_notebook_runs(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its teams' usage comes from zen-sim's annotations, which the real control plane's kwok
    # nodes report to metrics-server too. On zen-sim it starts one of its own, as a user's does.
    if cluster.is_real:
        monkeypatch.setenv("ZEN_NOTEBOOK_KUBECONFIG", cluster.kubeconfig)
    run("tuning-report.ipynb", tmp_path)
