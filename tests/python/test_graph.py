"""kubezen.graph: KRO resource graphs from Python, the same analysis as the plugin's."""

from __future__ import annotations

import doctest
import json
import subprocess
from pathlib import Path

import pytest

import kubezen
from conftest import while_counting
from kubezen import graph
from kubezen.graph import Graph, GraphCycleError, GraphError

RGD = """\
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata: {{name: {name}}}
spec:
  schema: {{apiVersion: v1alpha1, kind: Test, spec: {{name: string}}}}
  resources:
    - id: service
      template: {{apiVersion: v1, kind: Service, metadata: {{name: "${{app.metadata.name}}"}}}}
    - id: app
      template: {{apiVersion: apps/v1, kind: Deployment, metadata: {{name: "${{schema.spec.name}}"}}}}
"""


def synthetic(resources: int) -> str:
    """An RGD of `resources` ConfigMaps, each reading a parent's name."""
    lines = [
        "apiVersion: kro.run/v1alpha1",
        "kind: ResourceGraphDefinition",
        "metadata: {name: big}",
        "spec:",
        "  schema: {apiVersion: v1alpha1, kind: Big, spec: {name: string}}",
        "  resources:",
    ]
    for i in range(resources):
        data = f'{{parent: "${{r{(i - 1) // 4}.metadata.name}}"}}' if i else "{root: x}"
        lines.append(
            f"    - id: r{i}\n      template: {{apiVersion: v1, kind: ConfigMap, "
            f'metadata: {{name: "${{schema.spec.name}}-{i}"}}, data: {data}}}'
        )
    return "\n".join(lines) + "\n"


def test_the_docstrings_run() -> None:
    assert doctest.testmod(graph).failed == 0
    assert doctest.testmod(kubezen._core).failed == 0


@pytest.mark.parametrize("example", ["web-app", "database", "conditional", "platform", "broken"])
def test_python_and_plugin_agree(root: Path, plugin_bin: Path, example: str) -> None:
    path = root / "examples" / "rgd" / f"{example}.yaml"
    g = Graph.from_file(path)
    report = json.loads(
        subprocess.run(
            [str(plugin_bin), "graph", "inspect", str(path), "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
    assert g.name == report["name"]
    assert g.valid == report["valid"] == (example != "broken")
    assert g.cycles() == report["cycles"]
    assert [d.message for d in g.diagnostics()] == [d["message"] for d in report["diagnostics"]]
    if g.valid:
        assert g.order() == report["order"]
        assert g.waves() == report["waves"]
        assert g.levels() == report["levels"]
        assert g.critical_path() == report["criticalPath"]
    assert g.report() == report


def test_a_cycle_raises_with_the_cycles(root: Path) -> None:
    g = Graph.from_file(root / "examples" / "rgd" / "broken.yaml")
    for method in (g.order, g.waves, g.levels, g.critical_path):
        with pytest.raises(GraphCycleError) as raised:
            method()
        assert raised.value.cycles == [["frontend", "api", "orders", "frontend"]]
    by_message = {d.message: d for d in g.diagnostics()}
    unknown = by_message["references unknown identifiers: [databse]"]
    assert unknown.severity == "error"
    assert unknown.resource == "orders"
    assert unknown.path == "spec.resources[2].template.spec.template.spec.containers[0].env[1].value"
    assert unknown.hint is not None and "frontend" in unknown.hint
    assert unknown.file.endswith("broken.yaml") and unknown.document == 1
    assert "unknown identifiers" in str(unknown) and "Diagnostic(" in repr(unknown)


def test_kro_ordering_from_dependencies() -> None:
    g = Graph.from_dependencies(
        {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": [], "e": ["f", "a"], "f": []}
    )
    assert g.order() == ["d", "b", "c", "a", "f", "e"]
    assert g.dependencies("a") == ["b", "c"]
    assert g.dependents("d") == ["b", "c"]
    with pytest.raises(KeyError):
        g.dependents("zz")
    assert g.metrics()["edges"] == 6
    assert len(g) == 6 and g.ids == ["a", "b", "c", "d", "e", "f"]


def test_several_graphs_need_a_name() -> None:
    text = RGD.format(name="one") + "---\n" + RGD.format(name="two")
    with pytest.raises(GraphError, match="holds 2 graphs"):
        Graph.from_yaml(text)
    assert Graph.from_yaml(text, name="two").name == "two"
    with pytest.raises(GraphError, match='no graph named "three"'):
        Graph.from_yaml(text, name="three")
    assert [g.name for g in graph.loads(text)] == ["one", "two"]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"kind: caf\xe9\n")
    with pytest.raises(GraphError, match="not UTF-8"):
        Graph.from_file(latin)
    with pytest.raises(GraphError, match="invalid YAML"):
        Graph.from_yaml("a: [1, 2\nb: }")
    with pytest.raises(GraphError, match="no ResourceGraphDefinition"):
        Graph.from_yaml("kind: ConfigMap\napiVersion: v1\n")
    with pytest.raises(GraphError, match="cannot read"):
        Graph.from_file(tmp_path / "missing.yaml")
    with pytest.raises(GraphError):
        Graph.from_yaml("[" * 100_000 + "]" * 100_000)


def test_exports_and_rich_display(root: Path) -> None:
    g = Graph.from_file(root / "examples" / "rgd" / "web-app.yaml")
    assert g.to_dot().startswith('digraph "web-app" {')
    assert '"deployment" -> "service";' in g.to_dot()
    assert g.to_mermaid().startswith("flowchart LR")
    svg = g.to_svg()
    assert svg.startswith("<svg") and svg.count("<g><title>") == len(g)
    html = g._repr_html_()
    assert "<svg" in html and "web-app" in html and "valid" in html
    crd = g.instance_crd()
    assert crd["metadata"]["name"] == "webapps.kro.run"
    assert g.spec_schema()["properties"]["port"] == {
        "type": "integer",
        "default": 8080,
        "minimum": 1,
        "maximum": 65535,
    }


def test_to_networkx_matches() -> None:
    nx = pytest.importorskip("networkx")
    g = Graph.from_yaml(RGD.format(name="web"))
    d = g.to_networkx()
    assert isinstance(d, nx.DiGraph)
    assert list(nx.topological_sort(d)) == g.order()
    assert d.nodes["app"]["kind"] == "Deployment"
    assert list(d.edges) == [("app", "service")]


def test_analysis_releases_the_gil() -> None:
    text = synthetic(20_000)
    g, ticks, elapsed = while_counting(lambda: Graph.from_yaml(text), pause=0.0005)
    assert g.valid and len(g) == 20_000
    # The counter thread ran while Rust worked: at least a tick per 10 ms of analysis.
    assert elapsed > 0.05 and ticks >= elapsed / 0.01, (ticks, elapsed)


def test_crds_extend_the_type_checks(tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: widgets.example.com}\nspec:\n  group: example.com\n"
        "  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n"
        "    - name: v1\n      served: true\n      storage: true\n      schema:\n"
        "        openAPIV3Schema: {type: object, properties: {spec: {type: object, "
        "properties: {size: {type: integer}}}}}\n"
    )
    rgd = (
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: w}\n"
        "spec:\n  schema: {apiVersion: v1alpha1, kind: W, spec: {name: string}}\n  resources:\n"
        "    - id: widget\n      template: {apiVersion: example.com/v1, kind: Widget, "
        'metadata: {name: x}, spec: {size: "${schema.spec.name}"}}\n'
    )
    assert Graph.from_yaml(rgd).valid
    checked = Graph.from_yaml(rgd, crds=[crd])
    assert not checked.valid
    assert "but expected \"int\"" in checked.diagnostics()[0].message
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(GraphError, match="no CustomResourceDefinition"):
        Graph.from_yaml(rgd, crds=[crd, other])
