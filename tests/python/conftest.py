"""Shared facts about the checkout the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
