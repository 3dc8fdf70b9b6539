"""Each grafana_* module documents exactly the options it accepts, and ansible-doc renders it."""

from __future__ import annotations

import json
import subprocess
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.modules import grafana_dashboard, grafana_datasource, grafana_folder

from tests.integration.ansible_module import ROOT, ansible_environment

MODULES: dict[str, ModuleType] = {
    "grafana_dashboard": grafana_dashboard,
    "grafana_datasource": grafana_datasource,
    "grafana_folder": grafana_folder,
}
SECRETS = {"url_password", "token", "secure_json_data"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """``ansible-doc --json`` of all three modules, doc fragments merged in as users see them."""
    names = [f"sensorstack.iot.{name}" for name in MODULES]
    result = subprocess.run(
        ["ansible-doc", "--json", *names],
        cwd=ROOT,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_argument_spec(rendered: dict[str, Any], name: str) -> None:
    documented = rendered[f"sensorstack.iot.{name}"]["doc"]["options"]
    spec = MODULES[name].ARGUMENT_SPEC
    assert set(documented) == set(spec)
    for option, rules in spec.items():
        doc = documented[option]
        assert doc["type"] == rules["type"], option
        assert doc.get("default") == rules.get("default"), option
        assert doc.get("choices") == rules.get("choices"), option
        assert bool(doc.get("required")) == bool(rules.get("required")), option
        assert sorted(doc.get("aliases") or []) == sorted(rules.get("aliases") or []), option
        assert doc["description"], option


@pytest.mark.parametrize("name", MODULES)
def test_secrets_are_no_log(name: str) -> None:
    spec = MODULES[name].ARGUMENT_SPEC
    assert {option for option, rules in spec.items() if rules.get("no_log")} == SECRETS & set(spec)


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_only_documented_options(rendered: dict[str, Any], name: str) -> None:
    documented = rendered[f"sensorstack.iot.{name}"]["doc"]["options"]
    accepted = set(documented) | {alias for doc in documented.values() for alias in doc.get("aliases") or []}
    examples = yaml.safe_load(MODULES[name].EXAMPLES)
    assert examples
    for task in examples:
        assert set(task[f"sensorstack.iot.{name}"]) <= accepted, task["name"]


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_description_and_returns(rendered: dict[str, Any], name: str) -> None:
    doc = rendered[f"sensorstack.iot.{name}"]
    assert doc["doc"]["short_description"] and doc["doc"]["description"]
    assert set(doc["return"]) == set(yaml.safe_load(MODULES[name].RETURN))
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] == "full"
