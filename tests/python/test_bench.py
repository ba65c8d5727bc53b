"""kubezen.bench: api against zen-sim (counts, cleanup, Ctrl-C, pandas), http, cel, graph,
reports saved and loaded, baselines, errors."""

from __future__ import annotations

import _thread
import doctest
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

import kubezen
import kubezen.bench
from kubezen import sim
from conftest import TestCluster, while_counting


def bench_namespaces(kubeconfig: str) -> list[str]:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "namespaces", "-l",
         "zen.kubezen.io/bench-run", "-o", "name"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.split()


def test_the_module_doctest_runs() -> None:
    assert doctest.testmod(kubezen.bench).failed == 0


def test_api_counts_every_operation_and_turns_into_a_dataframe(
    cluster: TestCluster, tmp_path: Path
) -> None:
    result, ticks, elapsed = while_counting(
        lambda: kubezen.bench.api(
            kubeconfig=cluster.kubeconfig, count=300, resources=20, workers=2,
            mix={"get": 70, "update": 20, "create": 10},
        ),
        0.01,
    )
    assert ticks >= elapsed / 0.01 / 4, "the GIL is released while it runs"
    assert bench_namespaces(cluster.kubeconfig) == []
    assert result.kind == "api" and result.passed
    assert result.report["operations"] == 300
    frame = result.to_pandas()
    assert list(frame["verb"]) == ["create", "get", "update", "watch"]
    assert frame.loc[frame["verb"] != "watch", "count"].sum() == 300
    assert "latency.p99_ms" in frame.columns
    assert {v["check"] for v in result.verdicts} >= {"get p99", "watch events missed"}
    assert result.environment["options"]["workers"] == 2
    path = tmp_path / "run.json"
    result.save(path)
    loaded = kubezen.bench.load(path)
    assert loaded.report == result.report
    judged = loaded.compare(result, threshold=0.0)
    assert {c["subject"] for c in judged.changes} == {"create", "get", "update", "watch"}
    assert all(not c["regression"] for c in judged.changes), "the same run, no regression"
    assert "bench api" in result._repr_html_()


def test_a_report_from_the_plugin_loads_and_bad_files_are_refused(
    tmp_path: Path, plugin_bin: Path
) -> None:
    out = subprocess.run(
        [str(plugin_bin), "bench", "graph", "--sizes", "10,20", "--budget", "5ms", "-o", "json"],
        check=True, capture_output=True, text=True,
    )
    path = tmp_path / "graph.json"
    path.write_text(out.stdout)
    loaded = kubezen.bench.load(path)
    assert loaded.kind == "graph" and [r["resources"] for r in loaded.rows] == [10, 20]
    path.write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(kubezen.bench.BenchError, match="format something/else"):
        kubezen.bench.load(path)
    with pytest.raises(kubezen.bench.BenchError, match="only api and http"):
        loaded.compare(loaded)


def test_ctrl_c_stops_the_run_and_cleans_up(cluster: TestCluster) -> None:
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        kubezen.bench.api(kubeconfig=cluster.kubeconfig, duration=60.0, resources=20)
    assert time.perf_counter() - started < 10.0
    timer.cancel()
    assert bench_namespaces(cluster.kubeconfig) == []
    assert kubezen.bench.cleanup(kubeconfig=cluster.kubeconfig) == []
    assert kubezen.bench.cleanup(kubeconfig=cluster.kubeconfig, run="0123abcd") == []


def test_http_cel_and_graph() -> None:
    with sim.start() as cluster:
        url = cluster.url + "/version"
        result = kubezen.bench.http(url, rate=100, duration=1.0, target_p99=1.0, min_success=99)
    assert result.report["requests"] == 100 and result.passed
    assert result.report["statusCodes"] == {"200": 100}
    assert result.rows[0]["outcome"] == "all"
    cel = kubezen.bench.cel(budget=0.002, filter="field")
    assert {row["name"] for row in cel.rows} >= {"field", "field-compare"}
    assert all(row["compile"]["meanUs"] > row["cached"]["meanUs"] for row in cel.rows)
    graph = kubezen.bench.graph(sizes=[10, 100], budget=0.01)
    assert graph.report["growthExponent"] is not None


def test_bad_options_raise_clear_errors() -> None:
    with pytest.raises(kubezen.bench.BenchError, match="unknown operation"):
        kubezen.bench.api(ops=["get", "stream"])
    with pytest.raises(kubezen.bench.BenchError, match="watch takes no weight"):
        kubezen.bench.api(mix={"watch": 1})
    with pytest.raises(kubezen.bench.BenchError, match="expected http"):
        kubezen.bench.http("ftp://example.com/")
    with pytest.raises(kubezen.bench.BenchError, match="is not a size"):
        kubezen.bench.graph(sizes=[0])
    with pytest.raises(kubezen.bench.BenchError, match="not a run id"):
        kubezen.bench.cleanup(run="not a run")
    with pytest.raises(kubezen.bench.BenchError, match="--rate must be at least"):
        kubezen.bench.http("http://127.0.0.1:1/", rate=1e-20)
