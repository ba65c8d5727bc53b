"""`make dist`: the krew release archive and the manifest rendered for it."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@pytest.fixture(scope="module")
def dist(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["make", "-s", "dist", f"DIST_DIR={out}"], cwd=root, check=True)
    return out


@pytest.fixture(scope="module")
def archive(dist: Path, workspace_version: str) -> Path:
    os_name = platform.system().lower()
    path = dist / f"kubectl-zen_{workspace_version}_{os_name}_{ARCH[platform.machine()]}.tar.gz"
    assert path.is_file(), sorted(p.name for p in dist.iterdir())
    return path


@pytest.fixture(scope="module")
def manifest(dist: Path) -> dict[str, object]:
    loaded = yaml.safe_load((dist / "zen.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_is_a_krew_plugin_for_this_version(
    manifest: dict[str, object], workspace_version: str
) -> None:
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"] == {"name": "zen"}
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    assert spec["version"] == f"v{workspace_version}"
    assert spec["shortDescription"] and spec["description"]
    assert str(spec["homepage"]).startswith("https://")


def test_platform_points_at_the_archive_with_its_sha256(
    manifest: dict[str, object], archive: Path
) -> None:
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    (entry,) = spec["platforms"]
    assert entry["selector"] == {
        "matchLabels": {"os": platform.system().lower(), "arch": ARCH[platform.machine()]}
    }
    assert entry["uri"].startswith("https://")
    assert entry["uri"].endswith("/" + archive.name)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert entry["sha256"] == digest
    sha_file = archive.with_name(archive.name + ".sha256").read_text()
    assert sha_file == f"{digest}  {archive.name}\n"
    assert entry["bin"] == "kubectl-zen"
    assert {f["from"] for f in entry["files"]} == {"kubectl-zen", "LICENSE"}


def test_archive_holds_the_binary_and_the_license(
    archive: Path, tmp_path: Path, root: Path, workspace_version: str
) -> None:
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {"kubectl-zen", "LICENSE"} <= members.keys()
        assert members["kubectl-zen"].mode & 0o111, "the binary is executable"
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "LICENSE").read_bytes() == (root / "LICENSE").read_bytes()
    result = subprocess.run(
        [tmp_path / "kubectl-zen", "version", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    shipped = json.loads(result.stdout)
    assert shipped["version"] == workspace_version
    assert shipped["profile"] == "release"
