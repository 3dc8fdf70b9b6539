"""The telegraf and stack_verify argument specs mirror the roles' defaults, so ansible-core checks every variable.

A default that is a template (it follows other roles' variables) has no default in the spec, where it would only
be a second, possibly stale copy; its description says what it follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
TYPES = {"str": str, "path": str, "int": int, "bool": bool, "dict": dict, "list": list}


def templated(value: Any) -> bool:
    return "{{" in yaml.safe_dump(value)


def specification(role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    spec = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    return defaults, spec["options"]


@pytest.mark.parametrize("role", ["telegraf", "stack_verify"])
def test_every_default_is_specified_with_its_value_unless_it_is_a_template(role: str) -> None:
    defaults, options = specification(role)
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        assert options[name].get("description"), name
        if templated(value):
            assert "default" not in options[name], f"{name}: a template has no default in the spec"
        else:
            assert options[name].get("default") == value, name
            assert isinstance(value, TYPES[options[name]["type"]]), name


@pytest.mark.parametrize("role", ["telegraf", "stack_verify"])
def test_every_variable_carries_the_role_prefix(role: str) -> None:
    for path in (ROLES / role).glob("*/*.yml"):
        if path.parent.name in ("defaults", "vars"):
            assert all(name.startswith(f"{role}_") for name in yaml.safe_load(path.read_text())), path


def test_secrets_are_no_log_in_the_spec() -> None:
    for role in ("telegraf", "stack_verify"):
        _, options = specification(role)
        for name, option in options.items():
            if name.endswith("_password") or name == "telegraf_environment":
                assert option.get("no_log") is True, name
