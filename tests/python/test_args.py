"""Arguments read one way across the package: one path or a sequence of them, and durations as
seconds, a timedelta or the plugin's spelling."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

import kubezen
import kubezen.install
from kubezen import _args

ROOT = Path(__file__).resolve().parents[2]


def test_one_path_is_one_path_and_a_sequence_is_each() -> None:
    assert _args.paths("manifests", "examples") == ["examples"]
    assert _args.paths("manifests", Path("examples")) == ["examples"]
    assert _args.paths("manifests", ["a", Path("b")]) == ["a", "b"]
    assert _args.paths("manifests", ("a",)) == ["a"]
    assert _args.paths("manifests", None) is None
    for wrong in (b"examples", 3, [1], {"a": 1}):
        with pytest.raises(TypeError, match="manifests takes a path or a sequence of paths"):
            _args.paths("manifests", wrong)  # type: ignore[arg-type]


def test_tune_reads_a_directory_given_as_one_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """It once read the string's characters as paths, `/` among them: the whole filesystem."""
    monkeypatch.chdir(ROOT)
    as_text = kubezen.tune(manifests="examples/tune")
    as_list = kubezen.tune(manifests=["examples/tune"])
    assert as_text.findings and as_text.findings == as_list.findings
    assert [r.workload for r in as_text.recommendations] == [
        r.workload for r in as_list.recommendations]


def test_install_takes_one_crd_path(tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.zen.example}
spec:
  group: zen.example
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
""")
    rgd = ROOT / "examples" / "rgd" / "web-app.yaml"
    one = kubezen.install.manifests("reconcile-controller", rgd=rgd, crds=crd)
    listed = kubezen.install.manifests("reconcile-controller", rgd=rgd, crds=[crd])
    assert one == listed


def test_durations_take_seconds_timedeltas_and_the_plugins_spelling() -> None:
    assert _args.seconds("resync", 30) == 30.0
    assert _args.seconds("resync", 0.5) == 0.5
    assert _args.seconds("resync", datetime.timedelta(minutes=5)) == 300.0
    assert _args.seconds("resync", "30s") == 30.0
    assert _args.seconds("resync", "5m") == 300.0
    assert _args.seconds("resync", "250ms") == 0.25
    assert _args.seconds("resync", "2") == 2.0
    assert _args.seconds_or_none("timeout", None) is None
    with pytest.raises(ValueError, match="resync: unknown unit"):
        _args.seconds("resync", "3 days")
    with pytest.raises(ValueError, match="resync: not a duration"):
        _args.seconds("resync", "-5s")
    for bad in (-1, float("inf"), float("nan"), datetime.timedelta(seconds=-1)):
        with pytest.raises(ValueError, match="resync must be a non-negative duration"):
            _args.seconds("resync", bad)
    for wrong in (True, None, [1]):
        with pytest.raises(TypeError, match="resync takes seconds, a timedelta or text"):
            _args.seconds("resync", wrong)  # type: ignore[arg-type]
    assert kubezen._core.parse_duration("1h") == 3600.0


def test_functions_take_every_spelling_of_a_duration() -> None:
    with kubezen.sim.start() as sim:
        sim.restart(down_for=datetime.timedelta(milliseconds=100))
        sim.restart(down_for="100ms")
        with kubezen.lead.start(kubeconfig=sim.kubeconfig, namespace="default",
                                resync="10m") as controller:
            assert not controller.wait(timeout=datetime.timedelta(milliseconds=50))
            assert not controller.wait(timeout="50ms")
        with pytest.raises(ValueError, match="resync: unknown unit"):
            kubezen.lead.start(kubeconfig=sim.kubeconfig, resync="10 minutes")
    result = kubezen.bench.cel(budget="10ms", filter="field-compare")
    assert result.rows


def test_os_pathlike_arguments_still_work(tmp_path: Path) -> None:
    class Custom(os.PathLike[str]):
        def __fspath__(self) -> str:
            return str(ROOT / "examples" / "tune")

    report = kubezen.tune(manifests=Custom())
    assert report.findings
