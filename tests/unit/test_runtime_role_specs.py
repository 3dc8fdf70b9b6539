"""The docker and containerd argument specs mirror the roles' defaults: same variables, same default values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


@pytest.mark.parametrize("role", ["docker", "containerd"])
def test_every_default_is_specified_with_the_same_value(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    options = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
        assert options[name].get("description"), name


@pytest.mark.parametrize("role", ["docker", "containerd"])
def test_every_variable_carries_the_role_prefix(role: str) -> None:
    for path in (ROLES / role).glob("*/*.yml"):
        if path.parent.name in ("defaults", "vars"):
            assert all(name.startswith(f"{role}_") for name in yaml.safe_load(path.read_text())), path
