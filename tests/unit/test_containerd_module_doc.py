"""The containerd_config module documents exactly the options it accepts, and ansible-doc renders it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml
from ansible_collections.sensorstack.iot.plugins.modules import containerd_config

ROOT = Path(__file__).resolve().parents[2]


def test_documented_options_are_the_argument_spec() -> None:
    documented = yaml.safe_load(containerd_config.DOCUMENTATION)["options"]
    assert set(documented) == set(containerd_config.ARGUMENT_SPEC)
    for name, spec in containerd_config.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name


def test_examples_use_only_documented_options() -> None:
    documented = set(yaml.safe_load(containerd_config.DOCUMENTATION)["options"]) | {"owner", "group", "mode"}
    for task in yaml.safe_load(containerd_config.EXAMPLES):
        assert set(task["sensorstack.iot.containerd_config"]) <= documented, task["name"]


def test_ansible_doc_renders_the_module() -> None:
    environment = os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    result = subprocess.run(
        ["ansible-doc", "--json", "sensorstack.iot.containerd_config"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)["sensorstack.iot.containerd_config"]
    assert doc["doc"]["short_description"]
    assert set(doc["return"]) == {"path", "version", "generated", "changes", "backup_file"}
