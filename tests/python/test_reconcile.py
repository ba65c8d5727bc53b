"""kubezen.reconcile: offline rendering, and live apply / re-apply / delete against zen-sim."""

from __future__ import annotations

from pathlib import Path

import pytest

import kubezen
from conftest import TestCluster

ROOT = Path(__file__).resolve().parents[2]
WEB_APP = ROOT / "examples" / "rgd" / "web-app.yaml"
INSTANCE = ROOT / "examples" / "reconcile" / "web-app-instance.yaml"


def test_dry_run_renders_offline_in_dependency_order() -> None:
    rendering = kubezen.reconcile(WEB_APP, INSTANCE, dry_run=True)
    assert [r.id for r in rendering.resources][:2] == ["config", "deployment"]
    deployment = next(r for r in rendering.resources if r.id == "deployment").objects[0]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"]["zen.kubezen.io/instance"] == "shop"
    ingress = next(r for r in rendering.resources if r.id == "ingress")
    assert not ingress.included and ingress.objects == []
    assert rendering.status["url"] == "http://shop.default.svc:8080"
    assert all(o["kind"] != "Ingress" for o in rendering.objects)


def test_invalid_instances_raise_with_the_field_path() -> None:
    bad = {"apiVersion": "kro.run/v1alpha1", "kind": "WebApp", "metadata": {"name": "x"},
           "spec": {"name": "x", "image": "i", "port": 70000}}
    with pytest.raises(kubezen.ReconcileError, match=r"spec\.port"):
        kubezen.reconcile(WEB_APP, bad, dry_run=True)


def test_live_apply_reapply_and_delete(cluster: TestCluster) -> None:
    first = kubezen.reconcile(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                              namespace=cluster.namespace)
    assert first.ok, first
    assert {o.outcome for o in first.objects} == {"created", "excluded"}
    assert first.status["availableReplicas"] == 1
    again = kubezen.reconcile(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                              namespace=cluster.namespace)
    assert again.ok and again.writes == 0
    gone = kubezen.reconcile(WEB_APP, INSTANCE, kubeconfig=cluster.kubeconfig,
                              namespace=cluster.namespace, delete=True)
    assert gone.ok
    # The graph's objects go in reverse order; the instance itself is stored (and deleted)
    # only where its CRD is served, as on a cluster where a controller installed it.
    deleted = [o.id for o in gone.objects if o.outcome == "deleted" and o.id != "(instance)"]
    assert deleted[-1] == "config", gone.objects
