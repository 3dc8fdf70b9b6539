"""``sensorstack.iot.to_toml``: render configuration data as TOML with a real TOML writer (tomli-w).

Telegraf and InfluxDB read TOML. Rendering from data, instead of assembling strings in Jinja, means quoting,
escaping, nested tables and arrays of tables are always right. Runs on the controller only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    import tomli_w
except ImportError:  # pragma: no cover - depends on the controller's environment
    tomli_w = None


def _plain(value: Any, path: str) -> Any:
    """Turn Ansible's wrapped strings, lists and dicts into the plain types tomli-w accepts."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item, f"{path}.{key}") for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        if any(item is None for item in value):
            raise AnsibleFilterError(f"to_toml: {path} holds a null item, which TOML cannot express")
        return [_plain(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise AnsibleFilterError(f"to_toml: {path} is a {type(value).__name__}, which TOML cannot express")


def to_toml(data: Any) -> str:
    """Render a dict as a TOML document. Keys whose value is null are left out (TOML has no null)."""
    if tomli_w is None:
        raise AnsibleFilterError("to_toml needs the tomli-w Python package on the controller (pip install tomli-w)")
    if not isinstance(data, Mapping):
        raise AnsibleFilterError(f"to_toml: expected a dict at the top level, got {type(data).__name__}")
    return tomli_w.dumps(_plain(data, "$"), multiline_strings=False)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"to_toml": to_toml}
