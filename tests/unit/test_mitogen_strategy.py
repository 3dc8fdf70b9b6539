"""The opt-in Mitogen strategy: how it is switched on, what the run's environment gets, the error without it."""

from __future__ import annotations

import builtins
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack import mitogen_strategy
from sensorstack.cli import _request, build_parser
from sensorstack.lab.containers import LAB_CONNECTION
from sensorstack.runner import runner_environment

ROOT = Path(__file__).resolve().parents[2]


def test_the_environment_names_mitogens_linear_strategy_where_it_is_installed() -> None:
    variables = mitogen_strategy.environment()
    assert variables["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(variables["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


def test_a_run_gets_the_strategy_only_when_asked_for() -> None:
    assert "ANSIBLE_STRATEGY" not in runner_environment(ROOT)
    assert runner_environment(ROOT, mitogen=True)["ANSIBLE_STRATEGY"] == "mitogen_linear"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False)])
def test_the_switch_reads_yes_and_no(value: str, expected: bool) -> None:
    assert mitogen_strategy.switched_on(value) is expected


def test_anything_else_in_the_switch_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="SENSORSTACK_MITOGEN must be 1 or 0"):
        mitogen_strategy.switched_on("fast")


def test_the_cli_takes_it_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENSORSTACK_MITOGEN", raising=False)
    assert _request(build_parser().parse_args(["deploy"]), "site", False, False).mitogen is False
    assert _request(build_parser().parse_args(["deploy", "--mitogen"]), "site", False, False).mitogen is True
    monkeypatch.setenv("SENSORSTACK_MITOGEN", "1")
    assert _request(build_parser().parse_args(["deploy"]), "site", False, False).mitogen is True


def test_without_mitogen_installed_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse_mitogen(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ansible_mitogen":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_mitogen)
    with pytest.raises(mitogen_strategy.MitogenUnavailable, match=r"pip install 'sensorstack\[mitogen\]'"):
        runner_environment(ROOT, mitogen=True)


def test_the_module_prints_exports_a_shell_can_eval() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "sensorstack.mitogen_strategy"], capture_output=True, text=True, check=True
    ).stdout
    assert printed.splitlines()[1] == "export ANSIBLE_STRATEGY=mitogen_linear"
    assert printed.startswith("export ANSIBLE_STRATEGY_PLUGINS=")


def test_the_lab_names_its_connection_as_mitogen_knows_it() -> None:
    hosts = yaml.safe_load((ROOT / "inventories/local/hosts.yml").read_text())
    assert hosts["all"]["vars"]["ansible_connection"] == LAB_CONNECTION == "docker"
