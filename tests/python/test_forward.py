"""kubezen.forward: the local-port plan of a configuration, its stable order and conflicts,
the same plan the plugin prints, and configuration errors."""

from __future__ import annotations

import doctest
import json
import socket
import subprocess
from pathlib import Path

import pytest

import kubezen
import kubezen.forward
from kubezen.forward import Assignment, ForwardConfigError

TEAM = """\
portForwards:
  web: {target: svc/web, targetPort: http, localPort: 18080, type: web}
  web-too: {target: deploy/web, targetPort: 8080, localPort: 18080}
  api: {target: svc/api, targetPort: 80}
  old: {target: pod/legacy, targetPort: 9090, disabled: true}
"""


def test_the_module_doctest_runs() -> None:
    assert doctest.testmod(kubezen.forward).failed == 0


def test_conflicts_go_to_the_entry_that_sorts_first_whatever_the_order(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(TEAM)
    plan = kubezen.forward.plan(tmp_path / "team.yaml", check_ports=False)
    assert plan.assignments == [
        Assignment("api", None, 50000, "automatic"),
        Assignment("web", 18080, 18080, "requested"),
        Assignment("web-too", 18080, 18081, "conflict", "web"),
    ]
    assert plan.port("old") is None and len(plan) == 3
    assert plan.config["portForwards"]["old"]["disabled"] is True
    # The same entries listed the other way round: the same plan.
    reordered = {"portForwards": dict(reversed(list(plan.config["portForwards"].items())))}
    assert kubezen.forward.plan(reordered, check_ports=False).assignments == plan.assignments
    assert "<table>" in plan._repr_html_()


def test_a_port_in_use_on_this_machine_is_skipped() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plan = kubezen.forward.plan(
            {"portForwards": {"a": {"target": "svc/a", "targetPort": 80, "localPort": port}}}
        )
        assert plan.assignments[0].reason == "inUse"
        assert plan.assignments[0].port not in (None, port)


def test_later_layers_change_single_fields(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(TEAM)
    plan = kubezen.forward.plan(
        tmp_path / "team.yaml", {"portForwards": {"web": {"disabled": True}}}, check_ports=False
    )
    assert [a.name for a in plan.assignments] == ["api", "web-too"]
    assert plan.port("web-too") == 18080


def test_the_plan_is_the_plugins(tmp_path: Path, plugin_bin: Path) -> None:
    (tmp_path / "team.yaml").write_text(TEAM)
    printed = subprocess.run(
        [str(plugin_bin), "forward", "plan", "--no-user-config", "-f", str(tmp_path / "team.yaml"),
         "-o", "json"],
        capture_output=True, text=True, check=True,
    )
    plugin = json.loads(printed.stdout)["assignments"]
    ours = kubezen.forward.plan(tmp_path / "team.yaml")
    assert [(row["name"], row["port"]) for row in plugin] == [
        (a.name, a.port) for a in ours.assignments
    ]


def test_user_config_is_read_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "kubectl-zen").mkdir()
    (tmp_path / "kubectl-zen" / "forward.yaml").write_text(TEAM)
    assert len(kubezen.forward.plan(check_ports=False)) == 0
    assert len(kubezen.forward.plan(user_config=True, check_ports=False)) == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"portForwards": {"api": {"target": "svc/api", "targetPort": 0}}},
         "<mapping 1>: portForwards.api.targetPort: 0 is not a port number"),
        ({"portForwards": {"api": {"target": "svc/api"}}}, "portForwards.api.targetPort: missing"),
        ({"portForwards": {"api": {"target": "svc/api", "targetPort": 80, "typ": "web"}}},
         "portForwards.api.typ: unknown field"),
        ({"localPorts": "9-1"}, "localPorts"),
    ],
)
def test_bad_configurations_name_the_file_entry_and_field(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ForwardConfigError, match=message.replace(".", r"\.")):
        kubezen.forward.plan(config)


def test_bad_files_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match="cannot read"):
        kubezen.forward.plan(tmp_path / "nowhere.yaml")
    (tmp_path / "bad.yaml").write_text("portForwards: {api: [")
    with pytest.raises(ForwardConfigError, match="bad.yaml: not YAML"):
        kubezen.forward.plan(tmp_path / "bad.yaml")
    assert issubclass(ForwardConfigError, kubezen.forward.ForwardError)
    assert issubclass(kubezen.forward.ForwardError, kubezen.ZenError)
    with pytest.raises(TypeError, match="a path or a mapping"):
        kubezen.forward.plan(42)  # type: ignore[arg-type]
