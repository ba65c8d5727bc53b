"""kubezen.lead: status of Services opted in to zen-lead, with the plugin's controller
running against zen-sim; errors."""

from __future__ import annotations

import doctest
import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest

import kubezen
import kubezen.lead
import kubezen.sim
from conftest import TestCluster

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec: {containers: [{name: app, image: pause, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, annotations: {zen-lead.io/enabled: "true"}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely, annotations: {zen-lead.io/enabled: "true"}}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"""


def test_the_module_doctest_runs() -> None:
    assert doctest.testmod(kubezen.lead).failed == 0


def test_status_shows_each_leader_and_what_is_wrong(cluster: TestCluster, plugin_bin: Path) -> None:
    cluster.apply(MANIFESTS)
    before = kubezen.lead.status(kubeconfig=cluster.kubeconfig, namespace=cluster.namespace)
    assert [row.service for row in before.rows] == ["lonely", "web"]
    assert all("does not exist" in " ".join(row.problems) for row in before.rows)
    controller = subprocess.Popen(
        [str(plugin_bin), "--kubeconfig", cluster.kubeconfig, "-n", cluster.namespace, "lead",
         "--leader-elect=false", "--metrics-addr", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            report = kubezen.lead.status(kubeconfig=cluster.kubeconfig,
                                         namespace=cluster.namespace)
            web = next(row for row in report.rows if row.service == "web")
            if web.leader == "web-a" and web.endpoints == 1:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
    finally:
        controller.send_signal(signal.SIGINT)
        _, stderr = controller.communicate(timeout=20)
    assert controller.returncode == 0, stderr
    assert "zen-lead stopped:" in stderr
    assert web.healthy and web.leader_service == "web-leader" and web.since
    assert (web.pods, web.ready_pods) == (1, 1)
    lonely = next(row for row in report.rows if row.service == "lonely")
    assert lonely.leader is None and not lonely.healthy
    assert any("no pod matches" in problem for problem in lonely.problems)
    assert not report.healthy and len(report) == 2
    frame = report.to_pandas()
    assert list(frame["service"]) == ["lonely", "web"]
    assert "<table>" in report._repr_html_()


def test_an_unreachable_cluster_is_a_lead_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        "users: [{name: u, user: {}}]\n"
    )
    with pytest.raises(kubezen.lead.LeadError):
        kubezen.lead.status(kubeconfig=kubeconfig)
    assert issubclass(kubezen.lead.LeadError, kubezen.ZenError)


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields kubezen's log lines carry (``record.fields``); empty for other records."""
    found = getattr(record, "fields", {})
    assert isinstance(found, dict)
    return found


def test_a_denied_write_is_logged_through_python_logging_with_its_fields(
        caplog: pytest.LogCaptureFixture) -> None:
    """The controller's log lines reach Python's `logging`: a refused write names the object,
    the status and the RBAC rule missing, once (repeats are counted, not flooded), and no line
    holds the bearer token."""
    caplog.set_level(logging.INFO, logger="kubezen")
    token = "zen-secret-token-4242"
    with kubezen.sim.start(token=token, tls=True) as sim:  # kubectl sends tokens over TLS only
        subprocess.run(["kubectl", "--kubeconfig", sim.kubeconfig, "apply", "-f", "-"],
                       input=MANIFESTS, text=True, check=True, capture_output=True)
        sim.inject_fault("endpointslices", "patch", status=403)
        with kubezen.lead.start(kubeconfig=sim.kubeconfig, namespace="default") as controller:
            deadline = time.monotonic() + 20
            while not [r for r in caplog.records if r.levelno >= logging.WARNING]:
                assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
                time.sleep(0.1)
            time.sleep(2.5)  # a retry or two, said as a count later rather than again now
        summary = controller.stop()
    messages = [r.getMessage() for r in caplog.records]
    started = [r for r in caplog.records if r.getMessage().startswith("zen-lead started:")]
    assert started and started[0].name == "kubezen.lead.controller", messages
    assert fields(started[0])["workers"] == 10
    failed = [r for r in caplog.records
              if r.levelno >= logging.WARNING and "Service default/web" in r.getMessage()]
    assert len(failed) == 1, messages
    record = failed[0]
    assert fields(record)["name"] == "web" and record.namespace == "default"  # type: ignore[attr-defined]
    assert fields(record)["kind"] == "Service" and record.status == 403  # type: ignore[attr-defined]
    assert "403" in record.getMessage() and "retrying in 2s" in record.getMessage()
    stopped = [r for r in caplog.records if r.getMessage().startswith("zen-lead stopped:")]
    assert stopped and fields(stopped[0])["errors"] == summary["errors"] > 1, messages
    assert not any(token in message for message in messages)
    assert not any(token in str(fields(r)) for r in caplog.records)
