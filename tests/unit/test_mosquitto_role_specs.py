"""The mosquitto role's argument spec mirrors its defaults, so ansible-core (and preflight) check every variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles/mosquitto"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
OPTIONS: dict[str, Any] = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
    "options"
]
TYPES = {"str": str, "path": str, "int": int, "bool": bool, "dict": dict, "list": list}


def described(options: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of every option and suboption that lacks a description."""
    missing = []
    for name, option in options.items():
        if not option.get("description"):
            missing.append(prefix + name)
        missing += described(option.get("options", {}), f"{prefix}{name}.")
    return missing


def test_every_default_is_specified_with_the_same_value_and_type() -> None:
    assert set(OPTIONS) == set(DEFAULTS)
    for name, value in DEFAULTS.items():
        assert name.startswith("mosquitto_"), name
        assert OPTIONS[name].get("default") == value, name
        assert isinstance(value, TYPES[OPTIONS[name]["type"]]), name


def test_every_option_and_suboption_is_described() -> None:
    assert described(OPTIONS) == []


def test_secrets_are_marked_no_log() -> None:
    assert OPTIONS["mosquitto_tls_key"]["no_log"] is True
    assert OPTIONS["mosquitto_users"]["options"]["password"]["no_log"] is True
