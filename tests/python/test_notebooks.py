"""The notebooks run top to bottom against zen-sim; a cell that raises fails the test."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

# The `test` extra installs these; a missing one fails the tests rather than skipping them.
nbformat: Any = importlib.import_module("nbformat")
nbclient: Any = importlib.import_module("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_every_notebook_is_tested() -> None:
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["capacity.ipynb", "graph-scaling.ipynb", "tuning-report.ipynb"]


@pytest.mark.parametrize("name", ["capacity.ipynb", "graph-scaling.ipynb", "tuning-report.ipynb"])
def test_the_notebook_runs(name: str, tmp_path: Path) -> None:
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
