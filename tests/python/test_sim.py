"""kubezen.sim: zen-sim started from Python, driven by kubectl and plain HTTP."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubezen import sim

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def kubectl(cluster: sim.Sim, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", str(tmp_path / "cache"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def get_json(url: str, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
        return result


def test_start_serves_the_api_and_writes_a_private_kubeconfig() -> None:
    with sim.start() as cluster:
        assert cluster.running
        assert cluster.url.startswith("http://127.0.0.1:")
        version = get_json(cluster.url + "/version")
        assert str(version["gitVersion"]).startswith("v1.")
        mode = stat.S_IMODE(os.stat(cluster.kubeconfig).st_mode)
        assert mode == 0o600
        nodes = get_json(cluster.url + "/api/v1/nodes")
        assert len(nodes["items"]) == 3  # type: ignore[arg-type]
        assert "zen-sim" in repr(cluster)
        path = cluster.kubeconfig
    assert not cluster.running
    assert not os.path.exists(path), "stop removes the kubeconfig it wrote"
    cluster.stop()  # twice is fine


def test_a_kubeconfig_path_of_the_callers_choice_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "kc.yaml"
    cluster = sim.start(kubeconfig=str(target), nodes=1)
    try:
        assert cluster.kubeconfig == str(target)
        assert "current-context: zen-sim" in target.read_text()
    finally:
        cluster.stop()
    assert target.exists(), "a kubeconfig the caller named is the caller's"


@needs_kubectl
def test_kubectl_works_against_it(tmp_path: Path) -> None:
    with sim.start(ready_delay=0.05) as cluster:
        # `kubectl create deployment` sends protobuf, as kubectl's typed commands do.
        created = kubectl(cluster, "create", "deployment", "web", "--image=nginx", "--replicas=2", tmp_path=tmp_path)
        assert created.returncode == 0, created.stderr
        assert "deployment.apps/web created" in created.stdout
        waited = kubectl(
            cluster, "wait", "--for=condition=Available", "deploy/web", "--timeout=30s", tmp_path=tmp_path
        )
        assert waited.returncode == 0, waited.stderr
        pods = kubectl(cluster, "get", "pods", "-o", "json", tmp_path=tmp_path)
        phases = [pod["status"]["phase"] for pod in json.loads(pods.stdout)["items"]]
        assert phases == ["Running", "Running"]
        assert cluster.stats()["objects"] > 10


def test_faults_make_requests_fail_as_asked() -> None:
    with sim.start() as cluster:
        cluster.inject_fault("nodes", "list", status=503, retry_after=2, times=1)
        with pytest.raises(urllib.error.HTTPError) as failure:
            get_json(cluster.url + "/api/v1/nodes")
        assert failure.value.code == 503
        assert failure.value.headers["Retry-After"] == "2"
        assert get_json(cluster.url + "/api/v1/nodes")["kind"] == "NodeList", "used up after one"
        cluster.inject_fault(status=500)
        with pytest.raises(urllib.error.HTTPError):
            get_json(cluster.url + "/api/v1/namespaces")
        cluster.clear_faults()
        assert get_json(cluster.url + "/api/v1/namespaces")["kind"] == "NamespaceList"
        with pytest.raises(ValueError, match="exactly one"):
            cluster.inject_fault("pods", status=500, delay_ms=10)
        with pytest.raises(ValueError, match="exactly one"):
            cluster.inject_fault("pods")


def items(url: str) -> list[object]:
    listed = get_json(url)["items"]
    assert isinstance(listed, list)
    return listed


def post_json(url: str, body: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_restart_refuses_connections_for_a_while_and_keeps_the_objects() -> None:
    with sim.start() as cluster:
        # The simulated controllers add each namespace's default ServiceAccount just after
        # start-up, as kube-controller-manager does: count once they are all there.
        settle = time.monotonic() + 10
        while len(items(cluster.url + "/api/v1/serviceaccounts")) < 4:
            assert time.monotonic() < settle, "the default ServiceAccounts never appeared"
            time.sleep(0.05)
        before = cluster.stats()["objects"]
        started = time.monotonic()
        cluster.restart(down_for=0.3)
        assert time.monotonic() - started >= 0.3
        assert get_json(cluster.url + "/version")["gitVersion"]
        assert cluster.stats()["objects"] == before
        # Over HTTP: answered first, then down.
        status, body = post_json(cluster.url + "/zen-sim/v1/restart", {"downForSeconds": 1.0})
        assert (status, body["restarting"]) == (200, True)
        time.sleep(0.4)
        with pytest.raises(urllib.error.URLError):
            get_json(cluster.url + "/version")
        deadline = time.monotonic() + 10
        while True:
            try:
                get_json(cluster.url + "/version")
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "never served again"
                time.sleep(0.1)
        status, body = post_json(cluster.url + "/zen-sim/v1/restart", {"downForSeconds": -1})
        assert status == 400 and "downForSeconds" in str(body["message"]), body
        with pytest.raises(ValueError, match="down_for"):
            cluster.restart(down_for=-1.0)


def test_tokens_are_required_when_set() -> None:
    with sim.start(token="s3cret") as cluster:
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(cluster.url + "/api/v1/nodes")
        assert refused.value.code == 401
        assert get_json(cluster.url + "/api/v1/nodes", token="s3cret")["kind"] == "NodeList"
        assert "token: s3cret" in Path(cluster.kubeconfig).read_text()


@needs_kubectl
def test_tls_with_kubectl(tmp_path: Path) -> None:
    with sim.start(tls=True) as cluster:
        assert cluster.url.startswith("https://")
        nodes = kubectl(cluster, "get", "nodes", "-o", "name", tmp_path=tmp_path)
        assert nodes.returncode == 0, nodes.stderr
        assert nodes.stdout.split() == [f"node/zen-sim-node-{index}" for index in range(3)]


def test_bad_arguments_are_refused_and_a_stopped_sim_says_so() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        sim.start(host="localhost.example")
    with pytest.raises(ValueError, match="ready_delay"):
        sim.start(ready_delay=-1)
    cluster = sim.start()
    port = cluster.url.rsplit(":", 1)[1]
    with pytest.raises(RuntimeError, match="cannot listen"):
        sim.start(port=int(port))
    cluster.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        cluster.stats()


def test_the_usage_model_is_configurable() -> None:
    with sim.start(usage_cpu=0.5, usage_noise=0.0, ready_delay=0.01) as cluster:
        pod = {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}]},
        }
        request = urllib.request.Request(
            cluster.url + "/api/v1/namespaces/default/pods",
            data=json.dumps(pod).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
        url = cluster.url + "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/p"
        for _ in range(200):
            try:
                metrics = get_json(url)
                break
            except urllib.error.HTTPError:
                time.sleep(0.05)
        else:
            raise AssertionError("no metrics for the running pod")
        containers = metrics["containers"]
        assert isinstance(containers, list)
        assert containers[0]["usage"]["cpu"] == "500000000n"  # half of 1 CPU, no noise
    with pytest.raises(ValueError, match="cpu usage fraction"):
        sim.start(usage_cpu=0)
    with pytest.raises(ValueError, match="noise"):
        sim.start(usage_noise=1.5)
