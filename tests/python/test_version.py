"""The Python face's version API, and its agreement with the plugin."""

from __future__ import annotations

import doctest
import importlib.metadata
import json
import subprocess
from pathlib import Path

import pytest

import kubezen
from kubezen import _core


def test_version_is_the_workspace_version(workspace_version: str) -> None:
    assert kubezen.__version__ == workspace_version
    assert _core.__version__ == workspace_version
    assert importlib.metadata.version("kubezen") == workspace_version


def test_version_info_fields() -> None:
    info = kubezen.version_info()
    assert info.version == kubezen.__version__
    assert len(info.target.split("-")) == 4, info.target
    assert len(info.rustc.split(".")) == 3, info.rustc
    assert info.profile in {"debug", "release"}


def test_version_info_records_the_commit_it_was_built_from(head_commit: str | None) -> None:
    # `make python` builds from this checkout, so the module must carry its HEAD.
    commit = kubezen.version_info().git_commit
    assert commit == (head_commit or "unknown"), "reinstall the package: `make python`"


def test_version_info_is_an_immutable_value() -> None:
    info = kubezen.version_info()
    with pytest.raises(AttributeError):
        info.version = "9.9.9"  # type: ignore[misc]
    with pytest.raises(TypeError):
        kubezen.VersionInfo()
    assert info == kubezen.version_info()
    assert hash(info) == hash(kubezen.version_info())
    assert len({info, kubezen.version_info()}) == 1
    assert info != object()


def test_to_dict_and_repr_show_every_field() -> None:
    info = kubezen.version_info()
    fields = info.to_dict()
    assert fields == {
        "version": info.version,
        "git_commit": info.git_commit,
        "target": info.target,
        "rustc": info.rustc,
        "profile": info.profile,
    }
    assert repr(info) == "VersionInfo(" + ", ".join(f'{k}="{v}"' for k, v in fields.items()) + ")"
    assert type(info).__module__ == "kubezen._core"


def test_both_faces_report_the_same_build(plugin_bin: Path) -> None:
    result = subprocess.run(
        [plugin_bin, "version", "-o", "json"], capture_output=True, text=True, check=True
    )
    plugin = json.loads(result.stdout)
    python = kubezen.version_info()
    assert plugin["version"] == python.version
    assert plugin["gitCommit"] == python.git_commit
    assert plugin["target"] == python.target
    assert plugin["rustc"] == python.rustc


def test_docstrings_and_their_examples() -> None:
    for documented in (kubezen, kubezen.VersionInfo, kubezen.version_info, _core):
        assert documented.__doc__, documented
    for prop in ("version", "git_commit", "target", "rustc", "profile"):
        assert getattr(kubezen.VersionInfo, prop).__doc__, prop
    for module in (kubezen, _core):
        results = doctest.testmod(module)
        assert results.failed == 0
    assert doctest.testmod(kubezen).attempted > 0


def test_the_package_is_typed() -> None:
    package = Path(kubezen.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_core.pyi").is_file()
