"""The telegraf and stack_verify argument specs keep secrets out of logs.

That the specs mirror the roles' defaults is checked for every role in test_role_specs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def specification(role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    spec = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    return defaults, spec["options"]


def test_secrets_are_no_log_in_the_spec() -> None:
    for role in ("telegraf", "stack_verify"):
        _, options = specification(role)
        for name, option in options.items():
            if name.endswith("_password") or name == "telegraf_environment":
                assert option.get("no_log") is True, name
