"""``sensorstack.iot.to_toml``: render configuration data as TOML with a real TOML writer (tomli-w); and
``sensorstack.iot.from_toml``, which reads TOML back into data (Python's tomllib), e.g. a deployed telegraf.conf.

Telegraf and InfluxDB read TOML. Rendering from data, instead of assembling strings in Jinja, means quoting,
escaping, nested tables and arrays of tables are always right. Runs on the controller only.

tomli-w writes an array of tables as ``[[a.b]]`` sections only when one of its tables is too long for one line,
and otherwise as an inline array (``b = [{ ... }]``), so the layout of a plugin would flip when an option is added.
This filter lays the document out the way tomli-w does, except that every array of tables gets ``[[...]]``
sections, nested ones included (``[[inputs.mqtt_consumer.topic_parsing]]``), as Telegraf documents its
configuration. Every value and key is still formatted by tomli-w's public ``dumps``; a document without arrays of
tables comes out exactly as ``tomli_w.dumps`` writes it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    import tomli_w
except ImportError:  # pragma: no cover - depends on the controller's environment
    tomli_w = None

_PROBE = "k"


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


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _key(key: str) -> str:
    """A key as tomli-w writes it: bare when it can be, else a quoted string."""
    line = tomli_w.dumps({key: True})
    return line[: -len(" = true\n")]


def _literal(value: Any) -> str:
    """A value (never a table) as tomli-w writes it, arrays over several lines included."""
    return tomli_w.dumps({_PROBE: value}, multiline_strings=False)[len(f"{_PROBE} = ") : -1]


def _chunks(table: dict[str, Any], name: str, in_array: bool = False) -> Iterator[str]:
    """tomli-w's table layout (literals, then sub-tables in order), with arrays of tables always as sections."""
    literals: list[tuple[str, Any]] = []
    tables: list[tuple[str, dict[str, Any], bool]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append((key, value, False))
        elif _is_array_of_tables(value):
            tables.extend((key, item, True) for item in value)
        else:
            literals.append((key, value))
    written = False
    if in_array or (name and (literals or not tables)):
        written = True
        yield f"[[{name}]]\n" if in_array else f"[{name}]\n"
    for key, value in literals:
        written = True
        yield f"{_key(key)} = {_literal(value)}\n"
    for key, value, array in tables:
        if written:
            yield "\n"
        written = True
        part = _key(key)
        yield from _chunks(value, f"{name}.{part}" if name else part, array)


def to_toml(data: Any) -> str:
    """Render a dict as a TOML document. Keys whose value is null are left out (TOML has no null)."""
    if tomli_w is None:
        raise AnsibleFilterError("to_toml needs the tomli-w Python package on the controller (pip install tomli-w)")
    if not isinstance(data, Mapping):
        raise AnsibleFilterError(f"to_toml: expected a dict at the top level, got {type(data).__name__}")
    return "".join(_chunks(_plain(data, "$"), ""))


def from_toml(text: Any) -> dict[str, Any]:
    """Parse a TOML document (TOML 1.0, as tomllib reads it) into a dict; a syntax error names line and column."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"from_toml: expected TOML text, got {type(text).__name__}")
    try:
        return tomllib.loads(str(text))
    except tomllib.TOMLDecodeError as error:
        raise AnsibleFilterError(f"from_toml: not valid TOML: {error}") from error


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"to_toml": to_toml, "from_toml": from_toml}
