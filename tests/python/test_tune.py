"""kubezen.tune: manifests, a snapshot with known answers, a live cluster (zen-sim), errors."""

from __future__ import annotations

import _thread
import doctest
import threading
import time
from pathlib import Path

import pytest

import kubezen
import kubezen._tune
from conftest import TestCluster, while_counting

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "examples" / "tune" / "manifests.yaml"
MIB = 1024 * 1024


def test_manifests_give_findings_and_presets() -> None:
    report = kubezen.tune(manifests=[MANIFESTS])
    assert report.source == "manifests"
    assert report.findings[0].severity == "error"
    checks = {f.check for f in report.findings}
    assert {"pdb-blocks-eviction", "heap-above-limit", "best-effort", "no-pdb"} <= checks
    cron = next(r for r in report.recommendations if r.kind == "CronJob")
    assert cron.basis == "preset:background-job" and cron.confidence == "preset"
    assert cron.recommended["cpu_request"] == 50.0 and cron.recommended["cpu_limit"] is None
    web = next(r for r in report.recommendations if r.workload == "web")
    assert web.recommended["cpu_request"] is None and web.cpu_reason == "no usage samples"
    assert not web.changes
    assert report.totals["workloads"] == 5
    assert "<table>" in report._repr_html_()
    only = kubezen.tune(manifests=[MANIFESTS], workloads=["sts/search"])
    assert [r.workload for r in only.recommendations] == ["search"]


def test_the_module_doctest_runs() -> None:
    assert doctest.testmod(kubezen._tune).failed == 0


def write_snapshot(directory: Path) -> None:
    directory.mkdir()
    (directory / "snapshot.json").write_text(
        '{"format": "kubezen.tune.snapshot/v1", "recorded": "2026-11-23T00:00:00Z", "source": "test"}'
    )
    (directory / "objects.jsonl").write_text(
        '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},'
        ' "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app",'
        ' "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}]}}}}\n'
    )
    (directory / "series.csv").write_text(
        "series,namespace,kind,workload,container,pod\n0,shop,Deployment,web,app,web-1-a\n"
    )
    rows = ["series,timestamp,cpu_millicores,memory_bytes"]
    # CPU 1..200 millicores (nearest-rank p95: 190), memory 200Mi with one 300Mi peak.
    for i in range(1, 201):
        memory = 300 * MIB if i == 77 else 200 * MIB
        rows.append(f"0,{1_790_000_000 + i * 3600},{i},{memory}")
    (directory / "samples.csv").write_text("\n".join(rows) + "\n")


def test_a_snapshot_gives_the_known_answers(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "snap")
    report = kubezen.tune(snapshot=tmp_path / "snap")
    (rec,) = report.recommendations
    assert rec.recommended["cpu_request"] is not None
    assert 189 <= rec.recommended["cpu_request"] <= 192
    assert rec.recommended["memory_request"] == 345 * MIB == rec.recommended["memory_limit"]
    assert rec.confidence == "high" and rec.usage is not None and rec.usage["cpu_samples"] == 200
    assert rec.impact < 0
    limited = kubezen.tune(snapshot=tmp_path / "snap", cpu_limit="ratio=2", memory_buffer=50)
    assert limited.recommendations[0].recommended["cpu_limit"] == 2 * limited.recommendations[0].recommended["cpu_request"]  # type: ignore[operator]
    assert limited.recommendations[0].recommended["memory_request"] == 450 * MIB
    strict = kubezen.tune(snapshot=tmp_path / "snap", min_samples=500)
    assert strict.recommendations[0].cpu_reason is not None
    assert "only 200 samples (needs 500" in strict.recommendations[0].cpu_reason


def test_to_pandas_puts_current_and_recommended_side_by_side(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    write_snapshot(tmp_path / "snap")
    report = kubezen.tune(snapshot=tmp_path / "snap")
    frame = report.to_pandas()
    assert list(frame["workload"]) == ["web"]
    assert frame.loc[0, "cpu_request"] == 1000 and frame.loc[0, "memory_request_new"] == 345 * MIB
    assert len(kubezen.tune(manifests=[MANIFESTS]).to_pandas("findings")) > 5
    with pytest.raises(ValueError, match="findings"):
        report.to_pandas("everything")


def test_errors_are_typed_and_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(kubezen.TuneError, match="no such directory"):
        kubezen.tune(snapshot=tmp_path / "missing")
    with pytest.raises(ValueError, match="not none or ratio=R"):
        kubezen.tune(manifests=[MANIFESTS], cpu_limit="half")
    with pytest.raises(ValueError, match="use one of web-api"):
        kubezen.tune(manifests=[MANIFESTS], profile="webapi")
    with pytest.raises(kubezen.TuneError, match="no workload named deploy/none"):
        kubezen.tune(manifests=[MANIFESTS], workloads=["deploy/none"])
    broken = tmp_path / "snap"
    write_snapshot(broken)
    (broken / "samples.csv").write_text("series,timestamp,cpu_millicores,memory_bytes\n0,1,x,1\n")
    with pytest.raises(kubezen.TuneError, match=r"samples\.csv:2: "):
        kubezen.tune(snapshot=broken)


WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {zen-sim.kubezen.io/cpu: 150m, zen-sim.kubezen.io/memory: 80Mi}
    spec:
      containers:
      - {name: app, image: web, resources: {requests: {cpu: '1', memory: 1Gi}, limits: {memory: 1Gi}}}
"""


def test_ctrl_c_stops_sampling_at_once(cluster: TestCluster) -> None:
    cluster.apply(WEB)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        kubezen.tune(kubeconfig=cluster.kubeconfig, namespace=cluster.namespace, sample_for=60.0,
                     every=0.25)
    assert time.perf_counter() - started < 5.0
    timer.cancel()


def test_live_sampling_releases_the_gil(cluster: TestCluster) -> None:
    cluster.apply(WEB)
    cluster.kubectl("wait", "--for=condition=Available", "deploy/web", "--timeout=30s")
    cluster.wait_for_pod_metrics(2)
    seconds = cluster.sample_for(2.0)
    report, ticks, elapsed = while_counting(
        lambda: kubezen.tune(kubeconfig=cluster.kubeconfig, namespace=cluster.namespace,
                             sample_for=seconds, every=0.25, min_samples=2),
        pause=0.01,
    )
    assert report.source.startswith(f"metrics.k8s.io ({seconds:g}s every"), report.source
    (rec,) = report.recommendations
    assert rec.recommended["cpu_request"] is not None and 120 <= rec.recommended["cpu_request"] <= 181
    assert rec.usage is not None and rec.usage["pods"] == 2
    assert elapsed >= 1.5 and ticks >= elapsed / 0.05, (ticks, elapsed)
