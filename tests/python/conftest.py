"""Shared facts about the checkout the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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
