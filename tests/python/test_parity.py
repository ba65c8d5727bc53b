"""The Python face reaches what the plugin reaches: the error hierarchy, CEL checks, tune's
snapshot, patches, controller and gateway presets, reconcile's diff and controller, zen-lead
and the port-forward supervisor in the background, each against zen-sim."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import kubezen
import kubezen.forward
import kubezen.lead
from kubezen import cel, sim
from conftest import TestCluster
from test_tune import WEB

ROOT = Path(__file__).resolve().parents[2]
WEB_APP = ROOT / "examples" / "rgd" / "web-app.yaml"
INSTANCE = ROOT / "examples" / "reconcile" / "web-app-instance.yaml"



def until(what: str, check: object, timeout: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_every_capability_error_is_a_zen_error_and_not_a_value_error() -> None:
    errors = [cel.CelError, kubezen.graph.GraphError, kubezen.ReconcileError, kubezen.TuneError,
              kubezen.bench.BenchError, kubezen.lead.LeadError, kubezen.forward.ForwardError,
              kubezen.forward.ForwardConfigError, cel.CelSyntaxError, kubezen.graph.GraphCycleError,
              kubezen.install.InstallError]
    for error in errors:
        assert issubclass(error, kubezen.ZenError), error
        # A traceback names it where it can be imported from.
        assert getattr(importlib.import_module(error.__module__), error.__qualname__) is error
    assert not issubclass(kubezen.ZenError, ValueError)
    with pytest.raises(kubezen.ZenError):
        kubezen.graph.loads("a: [")


def test_cel_check_reports_instead_of_raising() -> None:
    assert cel.check("schema.spec.replicas > 2", {"schema": {"spec": {"replicas": 3}}}) == []
    assert cel.check("nope + 1") == ['reads nope but no variable "nope" is given']
    assert cel.check("1 / 0") == ["Division by zero of Int(1) at 1:3"]
    with pytest.raises(cel.CelSyntaxError):
        cel.check("1 +")


def test_the_presets_are_the_plugins(plugin_bin: Path) -> None:
    def plugin(*args: str) -> object:
        return json.loads(subprocess.run([str(plugin_bin), "tune", *args, "-o", "json"],
                                         capture_output=True, text=True, check=True).stdout)

    assert kubezen.tune_gateway(5000, concurrency=300) == plugin(
        "gateway", "--rps", "5000", "--concurrency", "300")
    offline = kubezen.tune_controller(objects=20000, largest_namespace=3000, object_bytes=4096)
    assert offline == plugin("controller", "--objects", "20000", "--largest-namespace", "3000",
                             "--object-bytes", "4096")
    assert {s["name"] for s in offline["settings"]} >= {"--qps", "--burst"}


def test_controller_advice_counts_the_clusters_objects(cluster: TestCluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin="".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{n}}}\n" for n in range(5)))
    advice = kubezen.tune_controller(kinds=["configmaps"], kubeconfig=cluster.kubeconfig,
                                     all_namespaces=True)
    assert advice["objects"] >= 5 and advice["largest_namespace"] >= 5


def test_a_snapshot_is_recorded_analysed_patched_and_applied(
    cluster: TestCluster, tmp_path: Path
) -> None:
    ns = cluster.namespace
    cluster.apply(WEB)
    cluster.kubectl("wait", "--for=condition=Available", "deploy/web", "--timeout=30s")
    cluster.wait_for_pod_metrics(2)
    recorded = kubezen.tune_snapshot(tmp_path / "snap", kubeconfig=cluster.kubeconfig,
                                     namespace=ns, sample_for=cluster.sample_for(1.5), every=0.25)
    assert recorded["workloads"] == 1 and recorded["samples"] >= 4, recorded
    report = kubezen.tune(snapshot=tmp_path / "snap", min_samples=2, patch=tmp_path / "patches")
    (rec,) = report.recommendations
    assert rec.workload == "web" and rec.changes
    assert rec.recommended["cpu_request"] is not None and rec.recommended["cpu_request"] < 1000
    assert report.written == [f"patches/{ns}.deployment.web.yaml", "kustomization.yaml"]
    assert "resources" in (tmp_path / "patches" / report.written[0]).read_text()
    assert report.applied is None
    savings = report.savings()
    assert savings.loc[ns, "cpu_before"] == 2000 and savings.loc[ns, "cpu_saved"] > 0

    # kubectl apply owns the resources: the conflict is reported, per workload.
    refused = kubezen.tune(snapshot=tmp_path / "snap", min_samples=2, kubeconfig=cluster.kubeconfig,
                           apply=True)
    assert refused.applied is not None and "409" in (refused.applied[0]["error"] or "")
    tried = kubezen.tune(snapshot=tmp_path / "snap", min_samples=2, kubeconfig=cluster.kubeconfig,
                         apply=True, dry_run=True, force_conflicts=True)
    assert tried.applied is not None and [a["error"] for a in tried.applied] == [None]
    assert "1Gi" in cluster.kubectl("get", "deploy/web", "-o", "yaml")
    done = kubezen.tune(snapshot=tmp_path / "snap", min_samples=2, kubeconfig=cluster.kubeconfig,
                        apply=True, force_conflicts=True)
    assert done.applied is not None and done.applied[0]["error"] is None
    live = json.loads(cluster.kubectl("get", "deploy/web", "-o", "json"))
    requests = live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["cpu"] != "1", requests


def test_diff_then_apply_then_nothing_to_diff(cluster: TestCluster) -> None:
    before = kubezen.reconcile_diff(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                                    namespace=cluster.namespace)
    assert {d.change for d in before} >= {"create"}
    assert all(isinstance(d, kubezen.ObjectDiff) for d in before)
    assert kubezen.reconcile(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                             namespace=cluster.namespace).ok
    after = kubezen.reconcile_diff(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                                   namespace=cluster.namespace)
    assert {d.change for d in after} <= {"unchanged", "excluded"}, after


def test_the_reconcile_controller_runs_in_the_background_and_rides_out_a_restart(
    cluster: TestCluster,
) -> None:
    graph = kubezen.graph.load(WEB_APP)[0]
    instance = INSTANCE.read_text()
    # The instance API, as KRO would create it from the graph.
    cluster.kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps(graph.instance_crd()))
    with kubezen.reconcile_controller(graph, kubeconfig=cluster.kubeconfig, resync=5,
                                      namespace=cluster.namespace) as controller:
        assert controller.running and controller.name == f"reconcile {graph.name}"
        cluster.kubectl("apply", "--validate=false", "-f", "-", stdin=instance)
        until("the instance's deployment", lambda: "deployment.apps/shop" in cluster.kubectl(
            "get", "deploy", "-l", "zen.kubezen.io/instance=shop", "-o", "name"), timeout=60)
        until("the instance's status", lambda: "ACTIVE" in cluster.kubectl(
            "get", "webapps", "shop", "-o", "jsonpath={.status.state}"), timeout=60)
        # An API server restart: an instance made afterwards is reconciled all the same.
        cluster.restart_api_server(down_for=2.0)
        cluster.kubectl("apply", "--validate=false", "-f", "-",
                        stdin=instance.replace("name: shop", "name: cart"))
        until("cart's deployment", lambda: "deployment.apps/cart" in cluster.kubectl(
            "get", "deploy", "-l", "zen.kubezen.io/instance=cart", "-o", "name"), timeout=60)
        # Its finalizer goes with the controller's help, so the namespace can go later.
        cluster.kubectl("delete", "webapps", "--all", "--timeout=60s")
    assert not controller.running
    summary = controller.stop()
    assert summary["reconciles"] >= 2 and summary["watchErrors"] >= 1, summary
    with pytest.raises(kubezen.ReconcileError):
        kubezen.reconcile_controller(graph, kubeconfig="/nonexistent/kubeconfig")


def test_lead_runs_in_the_background_and_sums_up(cluster: TestCluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, annotations: {zen-lead.io/enabled: 'true'}}\n"
        "spec: {selector: {app: web}, ports: [{port: 80}]}\n"))
    controller = kubezen.lead.start(kubeconfig=cluster.kubeconfig, namespace=cluster.namespace)
    try:
        until("web-leader", lambda: "web-leader" in cluster.kubectl("get", "svc"), timeout=30)
        assert "running" in repr(controller)
    finally:
        summary = controller.stop()
    assert summary["reconciles"] >= 1 and summary["errors"] == 0, summary


def test_forwards_carry_bytes_and_stop_cleanly(cluster: TestCluster) -> None:
    backend = socket.create_server(("127.0.0.1", 0))
    address = "%s:%d" % backend.getsockname()
    cluster.serve_pod_port(8080, address)

    def echo() -> None:
        while True:
            try:
                connection, _ = backend.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        cluster.kubectl("apply", "-f", "-", stdin=(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, labels: {app: web}, annotations: "
            f"{{zen-sim.kubezen.io/port-forward: '8080={address}'}}}}\n"
            "spec: {containers: [{name: app, image: pause, ports: [{name: http, containerPort: 8080}]}]}\n"))
        config = {"portForwards": {"web": {"target": "pod/web-0", "targetPort": 8080,
                                           "localPort": port, "namespace": cluster.namespace}}}
        with kubezen.forward.start(config, kubeconfig=cluster.kubeconfig) as forwards:
            assert forwards.wait_running(timeout=20), forwards.statuses()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"hello")
                assert client.recv(5) == b"hello"
            (status,) = forwards.statuses()
            assert status["localPort"] == port and status["pod"] == "web-0"
            assert list(forwards.to_pandas()["state"]) == ["Running"]
        last = forwards.stop()
        assert last[0]["name"] == "web"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        backend.close()
    with pytest.raises(kubezen.forward.ForwardError, match="no enabled entries"):
        kubezen.forward.start({"portForwards": {"web": {"target": "pod/x", "targetPort": 1,
                                                        "disabled": True}}})


def test_the_new_modules_doctests_run() -> None:
    import doctest

    import kubezen._display
    import kubezen._reconcile
    import kubezen._task

    for module in (kubezen._display, kubezen._reconcile, kubezen._task, kubezen.bench, cel):
        assert doctest.testmod(module).failed == 0, module


def test_every_public_name_has_a_docstring() -> None:
    modules = [kubezen, kubezen.bench, cel, kubezen.forward, kubezen.graph, kubezen.install,
               kubezen.lead, sim]
    for module in modules:
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value):
                assert (value.__doc__ or "").strip(), f"{module.__name__}.{name}"


def test_the_knee_of_a_curve() -> None:
    knee = kubezen.bench.knee
    assert knee([1, 2, 4, 8, 16], [100, 195, 370, 420, 430]) == 4
    assert knee([16, 1, 8, 2, 4], [430, 100, 420, 195, 370]) == 4  # any order
    assert knee([1, 2, 4, 8, 16], [5, 5, 6, 9, 40], curve="convex") == 8
    assert knee([1, 2, 3], [1, 2, 3]) is None  # a straight line has none
    assert knee([1, 2], [1, 5]) is None
    assert knee([1, 2, 3], [7, 7, 7]) is None
    with pytest.raises(ValueError, match="differ in length"):
        knee([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="concave"):
        knee([1, 2, 3], [1, 2, 3], curve="wobbly")


def test_bench_results_and_sweeps_draw_charts(cluster: TestCluster) -> None:
    graph = kubezen.bench.graph(sizes=[10, 30, 100], budget=0.005)
    svg = graph.to_svg()
    assert svg.startswith("<svg") and svg.count("<polyline") == 3 and svg.count("<circle") == 9
    assert svg in graph._repr_html_()
    assert kubezen.bench.cel(budget=0.001, filter="field").to_svg() == ""
    curve = kubezen.bench.sweep(workers=[2, 1, 4], kubeconfig=cluster.kubeconfig, duration=0.5,
                                resources=10, ops=["get", "list"])
    frame = curve.to_pandas()
    assert list(frame["workers"]) == [1, 2, 4] and (frame["ops_per_s"] > 0).all()
    assert (frame["errors"] == 0).all() and (frame["p99_ms"] >= frame["p50_ms"]).all()
    assert curve.to_svg().count("<svg") == 2 and "knee at" in curve._repr_html_()
    with pytest.raises(ValueError, match="at least 1"):
        kubezen.bench.sweep(workers=[0])


RGD_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: resourcegraphdefinitions.kro.run}
spec:
  group: kro.run
  scope: Cluster
  names: {kind: ResourceGraphDefinition, plural: resourcegraphdefinitions, singular: resourcegraphdefinition, shortNames: [rgd]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_a_graph_is_read_from_the_cluster(cluster: TestCluster) -> None:
    offline = kubezen.Graph.from_file(WEB_APP)
    cluster.kubectl("apply", "--validate=false", "-f", "-", stdin=RGD_CRD)
    cluster.kubectl("wait", "--for=condition=Established",
                    "crd/resourcegraphdefinitions.kro.run", "--timeout=30s")
    until("rgd/web-app", lambda: cluster.kubectl(
        "apply", "--validate=false", "-f", str(WEB_APP), check=False) != "", timeout=30)
    live = kubezen.Graph.from_cluster(offline.name, kubeconfig=cluster.kubeconfig)
    assert live.file == f"rgd/{offline.name}"
    assert live.order() == offline.order() and live.valid
    with pytest.raises(kubezen.graph.GraphError, match="cannot read rgd/nope"):
        kubezen.Graph.from_cluster("nope", kubeconfig=cluster.kubeconfig)
