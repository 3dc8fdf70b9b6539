"""The kubernetes_packages argument spec mirrors the role's defaults, and its defaults follow the one versions file.

A default that is a template (it follows the sensorstack role's pins) has no default in the spec, where it would
only be a second, possibly stale copy; its description names what it follows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sensorstack.bundle.versions import load_versions, render

ROLE = Path(__file__).resolve().parents[2] / "roles/kubernetes_packages"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
OPTIONS: dict[str, Any] = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
    "options"
]
TYPES = {"str": str, "path": str, "int": int, "bool": bool, "dict": dict, "list": list}


def templated(value: Any) -> bool:
    return "{{" in yaml.safe_dump(value)


def test_every_default_is_specified_with_its_value_unless_it_is_a_template() -> None:
    assert set(OPTIONS) == set(DEFAULTS)
    for name, value in DEFAULTS.items():
        assert OPTIONS[name].get("description"), name
        if templated(value):
            assert "default" not in OPTIONS[name], f"{name}: a template has no default in the spec"
            description = yaml.safe_dump(OPTIONS[name]["description"])
            for followed in re.findall(r"sensorstack_\w+", value):
                assert followed in description, f"{name}: the description does not name {followed}"
        else:
            assert OPTIONS[name].get("default") == value, name
            assert isinstance(value, TYPES[OPTIONS[name]["type"]]), name


def test_every_variable_carries_the_role_prefix() -> None:
    for path in ROLE.glob("*/*.yml"):
        if path.parent.name in ("defaults", "vars"):
            assert all(name.startswith("kubernetes_packages_") for name in yaml.safe_load(path.read_text())), path


def test_the_defaults_follow_the_pinned_versions_and_the_mirror() -> None:
    mirror = "http://10.213.0.1:8080"
    pins = load_versions(overrides={"sensorstack_mirror": mirror})
    rendered = render({**pins, **DEFAULTS})
    assert rendered["kubernetes_packages_version"] == "1.35.4-1.1"
    assert rendered["kubernetes_packages_repo_url"] == f"{mirror}/apt/core:/stable:/v1.35/deb/"
    assert rendered["kubernetes_packages_repo_key_url"] == f"{mirror}/apt/core:/stable:/v1.35/deb/Release.key"
    assert rendered["kubernetes_packages_repo_key_checksum"] == pins["sensorstack_kubernetes_apt_key_checksum"]


def test_switching_the_minor_switches_the_repository_url() -> None:
    pins = load_versions(overrides={"sensorstack_kubernetes_version": "1.36.0"})
    rendered = render({**pins, **DEFAULTS})
    assert rendered["kubernetes_packages_version"] == "1.36.0-1.1"
    assert rendered["kubernetes_packages_repo_url"] == "https://pkgs.k8s.io/core:/stable:/v1.36/deb/"
