"""The controllers inside the cluster: what ``kubectl zen install`` prints, applies and removes.

:func:`manifests` renders everything that runs zen-lead (``"lead"``) or the controller of one
resource graph (``"reconcile-controller"``) in the cluster, where Kubernetes runs, restarts and
scales it: Namespace, ServiceAccount, the narrowest ClusterRole and Role the controller's code
calls and their bindings, a Deployment (the ``background-job`` tune preset's requests and
limits, health probes, non-root, read-only root filesystem), a PodDisruptionBudget, a metrics
Service, and with more than one replica leader election on a Lease:

>>> import kubezen.install
>>> objects = kubezen.install.manifests("lead", namespace="platform", replicas=3)
>>> [o["kind"] for o in objects][:4]
['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']
>>> deployment = objects[-1]
>>> deployment["spec"]["replicas"], deployment["metadata"]["namespace"]
(3, 'platform')
>>> for rule in objects[2]["rules"]:  # the ClusterRole: what zen-lead's code calls
...     print(rule["resources"], rule["verbs"])
['services'] ['get', 'list', 'watch', 'create', 'patch', 'delete']
['pods'] ['get', 'list', 'watch']
['endpointslices'] ['list', 'watch', 'create', 'patch', 'delete']
['events'] ['create', 'patch']
>>> print(kubezen.install.to_yaml(objects)[:44])
---
apiVersion: v1
kind: Namespace
metadata:

:func:`apply` server-side applies them and :func:`uninstall` deletes exactly what an install
made, found by its ``install.kubezen.io/controller`` label:

>>> with kubezen.sim.start() as cluster:  # doctest: +SKIP
...     kubezen.install.apply("lead", kubeconfig=cluster.kubeconfig)
...     kubezen.install.uninstall("lead", kubeconfig=cluster.kubeconfig)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Literal

from kubezen._args import Paths, path, paths
from kubezen import _core
from kubezen._core import InstallError

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "Change",
    "InstallError",
    "apply",
    "graph",
    "manifests",
    "to_yaml",
    "uninstall",
]

DEFAULT_NAMESPACE = "kubezen-system"
"""The namespace controllers are installed in unless told otherwise."""

DEFAULT_IMAGE = f"ghcr.io/kubectl-zen/kubectl-zen:v{_core.__version__}"
"""The image the Deployment runs unless told otherwise: this version's release image, built by
the repository's ``Dockerfile``."""


@dataclass(frozen=True)
class Change:
    """An object an install wrote or deleted.

    ``action`` is ``"serverside-applied"``, ``"kept"`` (a Namespace that existed before and is
    not an install's, or that another install still uses), ``"unchecked"`` (a dry run's object in a Namespace not made yet: the
    API server checks nothing in it until it exists) or ``"deleted"``.
    """

    kind: str
    namespace: str
    name: str
    action: str


def manifests(
    controller: Literal["lead", "reconcile-controller"],
    *,
    rgd: str | os.PathLike[str] | None = None,
    crds: Paths | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    replicas: int = 2,
    image: str = DEFAULT_IMAGE,
) -> list[dict[str, Any]]:
    """Every object that runs ``controller`` in the cluster, in the order they are applied:
    what ``kubectl zen install CONTROLLER -o json`` prints, as plain dicts.

    ``"reconcile-controller"`` needs ``rgd``, the path of the ResourceGraphDefinition it
    reconciles (at most 1 MiB: a ConfigMap carries it), with ``crds`` (files or directories)
    to type-check custom kinds. More than one replica elect an active one on a Lease.

    >>> objects = kubezen.install.manifests(
    ...     "reconcile-controller", rgd="examples/rgd/web-app.yaml", replicas=1)
    >>> [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]
    ['zen-reconcile-web-app-graph']

    Raises ``ValueError`` for a namespace that is not a DNS label, replicas out of 1 to 100,
    an empty image, or a file with several graphs; :class:`~kubezen.graph.GraphError` for a
    file that cannot be read, is not UTF-8 YAML or holds no graph; :class:`InstallError` for
    a graph over 1 MiB or with errors.
    """
    text = _core.install_manifests(
        controller,
        rgd=path(rgd),
        crds=paths("crds", crds) or [],
        namespace=namespace,
        replicas=replicas,
        image=image,
    )
    objects: list[dict[str, Any]] = json.loads(text)
    return objects


def graph() -> dict[str, Any]:
    """zen-lead's install as a ResourceGraphDefinition (what ``kubectl zen install lead
    --as-graph`` prints): the same objects, their namespace, replica count and image read from
    a cluster-scoped ``ZenLead`` instance's ``spec``, for :func:`kubezen.reconcile` or KRO.

    >>> rgd = kubezen.install.graph()
    >>> rgd["spec"]["schema"]["kind"]
    'ZenLead'
    >>> kubezen.Graph.from_yaml(json.dumps(rgd)).valid
    True
    """
    (rgd,) = json.loads(_core.install_manifests("lead", as_graph=True))
    assert isinstance(rgd, dict)
    return rgd


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """``objects`` as one YAML stream, each document opened by ``---``, exactly as
    ``kubectl zen install`` prints them: for ``kubectl apply -f -``, kustomize or review."""
    return _core.install_yaml(json.dumps(objects))


def _change(
    controller: Literal["lead", "reconcile-controller"],
    *,
    uninstall: bool,
    dry_run: bool,
    rgd: str | os.PathLike[str] | None,
    crds: Paths | None,
    namespace: str,
    replicas: int,
    image: str,
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    instances: Literal["refuse", "delete", "orphan"] = "refuse",
) -> list[Change]:
    text = _core.install_change(
        controller,
        uninstall=uninstall,
        dry_run=dry_run,
        rgd=path(rgd),
        crds=paths("crds", crds) or [],
        namespace=namespace,
        replicas=replicas,
        image=image,
        kubeconfig=path(kubeconfig),
        context=context,
        instances=instances,
    )
    return [Change(**change) for change in json.loads(text)]


def apply(
    controller: Literal["lead", "reconcile-controller"],
    *,
    rgd: str | os.PathLike[str] | None = None,
    crds: Paths | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    replicas: int = 2,
    image: str = DEFAULT_IMAGE,
    dry_run: bool = False,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
) -> list[Change]:
    """Server-side applies :func:`manifests` (field manager ``kubectl-zen``) in order, as
    ``kubectl zen install CONTROLLER --apply`` does, and returns what happened to each object.
    With ``dry_run`` the API server checks them and stores nothing. A Namespace that existed
    before without the install's label is left as it is (and never deleted by
    :func:`uninstall`).

    Raises what :func:`manifests` raises, and :class:`InstallError` when the controller is
    installed in another namespace already (one install of a controller per cluster: nothing is
    applied), or when the cluster cannot be reached or refuses an object (the objects before it
    stay applied).
    """
    return _change(
        controller, uninstall=False, dry_run=dry_run, rgd=rgd, crds=crds, namespace=namespace,
        replicas=replicas, image=image, kubeconfig=kubeconfig, context=context,
    )


def uninstall(
    controller: Literal["lead", "reconcile-controller"],
    *,
    rgd: str | os.PathLike[str] | None = None,
    crds: Paths | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    dry_run: bool = False,
    instances: Literal["refuse", "delete", "orphan"] = "refuse",
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
) -> list[Change]:
    """Deletes every object an install of ``controller`` made in ``namespace`` (found by its
    ``install.kubezen.io/controller`` label, the Deployment first) and the Lease its replicas
    held, as ``kubectl zen install CONTROLLER --uninstall`` does: its ClusterRole and binding
    only when they are this namespace's install's, and the Namespace last, when an install made
    it and no other controller's install is left in it (``"kept"`` when one is). A
    reconcile controller is named after its graph: pass the ``rgd`` it was installed with.
    What the controller made while it ran (leader Services, a graph's CRD and instances) stays,
    but a reconcile controller's instances that its finalizer holds would wait for it for ever:
    ``instances`` says what becomes of them. ``"refuse"`` (the default) raises
    :class:`InstallError` naming them and deletes nothing; ``"delete"`` deletes each and its
    objects in reverse dependency order once the install is gone (reported ``"deleted"``);
    ``"orphan"`` only removes the finalizer (reported ``"released"``).

    Raises what :func:`manifests` raises, and :class:`InstallError` when instances are held and
    ``instances`` is ``"refuse"``, or the cluster cannot be reached or refuses a list or delete.
    """
    return _change(
        controller, uninstall=True, dry_run=dry_run, rgd=rgd, crds=crds, namespace=namespace,
        replicas=2, image=DEFAULT_IMAGE, kubeconfig=kubeconfig, context=context,
        instances=instances,
    )
