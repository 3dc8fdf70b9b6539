"""The mosquitto role's argument spec keeps secrets out of logs.

That the spec mirrors the role's defaults, every option and suboption described, is checked for every role in
test_role_specs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles/mosquitto"
OPTIONS: dict[str, Any] = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
    "options"
]


def test_secrets_are_marked_no_log() -> None:
    assert OPTIONS["mosquitto_tls_key"]["no_log"] is True
    assert OPTIONS["mosquitto_users"]["options"]["password"]["no_log"] is True
