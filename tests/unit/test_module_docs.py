"""Every module of the collection documents exactly the options it accepts, and ansible-doc renders it.

The documentation is compared, suboptions included, with the ``ARGUMENT_SPEC`` the module hands to AnsibleModule,
so a documented option the module refuses, a type or default that differs, or an option nobody documented fails
here rather than in a user's playbook.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS

from tests.integration.ansible_module import ROOT, ansible_environment

NAMES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
# Modules built with add_file_common_args=True: AnsibleModule adds owner, group, mode and the rest to their spec.
FILE_MODULES = {"containerd_config", "mosquitto_user"}
SECRET_NAME = re.compile(r"password|token|secret|secure_json_data")


def load(name: str) -> ModuleType:
    return importlib.import_module(f"ansible_collections.sensorstack.iot.plugins.modules.{name}")


def accepted_spec(name: str) -> dict[str, Any]:
    spec = dict(load(name).ARGUMENT_SPEC)
    return spec | FILE_COMMON_ARGUMENTS if name in FILE_MODULES else spec


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """``ansible-doc --json`` of every module, doc fragments merged in as users see them."""
    result = subprocess.run(
        ["ansible-doc", "--json", *(f"sensorstack.iot.{name}" for name in NAMES)],
        cwd=ROOT,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def differences(documented: dict[str, Any], spec: dict[str, Any], path: str = "") -> list[str]:
    """Where the documented options and the argument spec disagree, as readable lines."""
    found = [f"{path}{option}: documented, not accepted" for option in sorted(set(documented) - set(spec))]
    found += [f"{path}{option}: accepted, not documented" for option in sorted(set(spec) - set(documented))]
    for option in sorted(set(documented) & set(spec)):
        doc, rules = documented[option], spec[option]
        where = f"{path}{option}"
        for key, default in (("type", "str"), ("elements", None), ("default", None), ("choices", None)):
            if doc.get(key, default) != rules.get(key, default):
                found.append(f"{where}: {key} documented {doc.get(key)!r}, accepted {rules.get(key)!r}")
        if bool(doc.get("required")) != bool(rules.get("required")):
            found.append(f"{where}: required documented {doc.get('required')!r}, accepted {rules.get('required')!r}")
        if sorted(doc.get("aliases") or []) != sorted(rules.get("aliases") or []):
            found.append(f"{where}: aliases documented {doc.get('aliases')!r}, accepted {rules.get('aliases')!r}")
        if not doc.get("description"):
            found.append(f"{where}: no description")
        if doc.get("suboptions") or rules.get("options"):
            found += differences(doc.get("suboptions") or {}, rules.get("options") or {}, f"{where}.")
    return found


def secrets_without_no_log(spec: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for option, rules in spec.items():
        is_secret = SECRET_NAME.search(option) and "choices" not in rules and rules.get("type") != "bool"
        if is_secret and not rules.get("no_log"):
            found.append(f"{path}{option}")
        found += secrets_without_no_log(rules.get("options") or {}, f"{path}{option}.")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_documented_options_are_the_argument_spec(rendered: dict[str, Any], name: str) -> None:
    documented = rendered[f"sensorstack.iot.{name}"]["doc"]["options"]
    assert differences(documented, accepted_spec(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_secrets_are_no_log(name: str) -> None:
    assert secrets_without_no_log(load(name).ARGUMENT_SPEC) == []


@pytest.mark.parametrize("name", NAMES)
def test_examples_use_only_documented_options(rendered: dict[str, Any], name: str) -> None:
    documented = rendered[f"sensorstack.iot.{name}"]["doc"]["options"]
    accepted = set(documented) | {alias for doc in documented.values() for alias in doc.get("aliases") or []}
    tasks = [task for task in yaml.safe_load(load(name).EXAMPLES) if f"sensorstack.iot.{name}" in task]
    assert tasks, "no example calls the module by its FQCN"
    for task in tasks:
        assert set(task[f"sensorstack.iot.{name}"]) <= accepted, task["name"]


@pytest.mark.parametrize("name", NAMES)
def test_ansible_doc_renders_the_description_returns_and_attributes(rendered: dict[str, Any], name: str) -> None:
    doc = rendered[f"sensorstack.iot.{name}"]
    assert doc["doc"]["short_description"] and doc["doc"]["description"]
    assert set(doc["return"]) == set(yaml.safe_load(load(name).RETURN) or {})
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] in ("full", "none")
