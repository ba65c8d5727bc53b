"""kubezen.install: the same manifests, graph and YAML as `kubectl zen install`, options and
graph errors, and apply / dry run / uninstall against zen-sim."""

from __future__ import annotations

import doctest
import json
import subprocess
import time
from pathlib import Path

import pytest

import kubezen
import kubezen.install
from conftest import TestCluster

ROOT = Path(__file__).resolve().parents[2]
WEB_APP = ROOT / "examples" / "rgd" / "web-app.yaml"
LABEL = "install.kubezen.io/controller"


def plugin(plugin_bin: Path, *args: str) -> str:
    result = subprocess.run(
        [str(plugin_bin), *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return result.stdout


def test_the_module_doctest_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples name files of the checkout
    results = doctest.testmod(kubezen.install, extraglobs={"kubezen": kubezen})
    assert results.failed == 0 and results.attempted > 5


@pytest.mark.parametrize(
    ("controller", "args", "kwargs"),
    [
        ("lead", [], {}),
        ("lead", ["-n", "platform", "--replicas", "1", "--image", "registry.example/zen:1"],
         {"namespace": "platform", "replicas": 1, "image": "registry.example/zen:1"}),
        ("reconcile-controller", ["--rgd", str(WEB_APP), "--replicas", "3"],
         {"rgd": WEB_APP, "replicas": 3}),
    ],
)
def test_manifests_and_yaml_are_the_plugins(
    plugin_bin: Path, controller: str, args: list[str], kwargs: dict[str, object]
) -> None:
    objects = kubezen.install.manifests(controller, **kwargs)  # type: ignore[arg-type]
    listed = json.loads(plugin(plugin_bin, "install", controller, *args, "-o", "json"))
    assert objects == listed["items"]
    assert kubezen.install.to_yaml(objects) == plugin(plugin_bin, "install", controller, *args)
    deployment = objects[-1]
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == kwargs.get("replicas", 2)
    assert all(o["metadata"]["labels"][LABEL] == deployment["metadata"]["name"] for o in objects)


def test_graph_is_the_plugins_and_a_valid_graph(plugin_bin: Path) -> None:
    rgd = kubezen.install.graph()
    assert rgd == json.loads(plugin(plugin_bin, "install", "lead", "--as-graph", "-o", "json"))[
        "items"][0]
    graph = kubezen.Graph.from_yaml(json.dumps(rgd))
    assert graph.valid, graph.diagnostics()
    assert "deployment" in " ".join(graph.ids).lower()


def test_bad_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match="not a DNS label"):
        kubezen.install.manifests("lead", namespace="Not_A_Label")
    for replicas in (0, 101, -1, 70000):
        with pytest.raises(ValueError, match=f"replicas must be 1 to 100, not {replicas}"):
            kubezen.install.manifests("lead", replicas=replicas)
    with pytest.raises(ValueError, match="not an image reference"):
        kubezen.install.manifests("lead", image=" ")
    with pytest.raises(ValueError, match='"lead" or "reconcile-controller"'):
        kubezen.install.manifests("leader")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the graph"):
        kubezen.install.manifests("reconcile-controller")
    with pytest.raises(ValueError, match="rgd is for"):
        kubezen.install.manifests("lead", rgd=WEB_APP)
    with pytest.raises(ValueError, match="instances must be 'refuse', 'delete' or 'orphan'"):
        kubezen.install.uninstall("lead", instances="keep")  # type: ignore[arg-type]


def test_graph_problems_are_graph_and_install_errors(tmp_path: Path) -> None:
    with pytest.raises(kubezen.graph.GraphError, match="cannot read"):
        kubezen.install.manifests("reconcile-controller", rgd=tmp_path / "missing.yaml")
    not_a_graph = tmp_path / "cm.yaml"
    not_a_graph.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(kubezen.graph.GraphError, match="no ResourceGraphDefinition"):
        kubezen.install.manifests("reconcile-controller", rgd=not_a_graph)
    two = tmp_path / "two.yaml"
    two.write_text(WEB_APP.read_text() + "\n---\n" + WEB_APP.read_text())
    with pytest.raises(ValueError, match="holds 2 ResourceGraphDefinitions"):
        kubezen.install.manifests("reconcile-controller", rgd=two)
    huge = tmp_path / "huge.yaml"
    huge.write_text(WEB_APP.read_text() + "#" * (1 << 20))
    with pytest.raises(kubezen.install.InstallError, match="over 1 MiB: a ConfigMap cannot"):
        kubezen.install.manifests("reconcile-controller", rgd=huge)
    broken = ROOT / "examples" / "rgd" / "broken.yaml"
    with pytest.raises(kubezen.install.InstallError):
        kubezen.install.manifests("reconcile-controller", rgd=broken)


def labelled(cluster: TestCluster, kinds: str) -> list[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "get", kinds, "-A", "-l", LABEL,
         "-o", "name"],
        capture_output=True, text=True, check=True,
    )
    return sorted(result.stdout.split())


KINDS = "namespaces,serviceaccounts,clusterroles,clusterrolebindings,roles,rolebindings," \
    "services,poddisruptionbudgets,deployments"


def test_apply_dry_run_and_uninstall_leave_nothing_behind(cluster: TestCluster) -> None:
    zen = f"{cluster.namespace}-install"  # the install's own namespace, made and removed
    dry = kubezen.install.apply("lead", namespace=zen, dry_run=True,
                                kubeconfig=cluster.kubeconfig)
    assert [c.kind for c in dry][:2] == ["Namespace", "ServiceAccount"]
    assert dry[0].action == "serverside-applied"
    assert {c.action for c in dry[1:]} == {"unchecked", "serverside-applied"}
    assert labelled(cluster, KINDS) == [], "a dry run stores nothing"

    changes = kubezen.install.apply("lead", namespace=zen, kubeconfig=cluster.kubeconfig)
    assert {c.action for c in changes} == {"serverside-applied"}
    made = labelled(cluster, KINDS)
    assert len(made) == len(changes) == len(kubezen.install.manifests("lead", namespace=zen))
    again = kubezen.install.apply("lead", namespace=zen, kubeconfig=cluster.kubeconfig)
    assert again == changes, "applying twice changes nothing"

    gone = kubezen.install.uninstall("lead", namespace=zen, kubeconfig=cluster.kubeconfig)
    assert {c.action for c in gone} == {"deleted"}
    assert gone[-1].kind == "Namespace" and gone[0].kind == "Deployment"
    assert {(c.kind, c.name) for c in gone} == {(c.kind, c.name) for c in changes}
    # A real cluster's namespace controller takes a moment to finish the Namespace.
    deadline = time.monotonic() + 60
    while labelled(cluster, KINDS) != [] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert labelled(cluster, KINDS) == []


def test_an_unreachable_cluster_is_an_install_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\nusers: [{name: x, user: {}}]\n"
    )
    with pytest.raises(kubezen.install.InstallError):
        kubezen.install.apply("lead", kubeconfig=kubeconfig)
