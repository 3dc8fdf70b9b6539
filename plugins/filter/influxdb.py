"""The influxdb role's semantic checks, beyond its argument spec.

``sensorstack.iot.influxdb_problems(settings)`` takes the role's variables as one mapping and lists what is wrong,
each message naming the variable and none showing a secret. The role calls it first; the preflight play calls it,
through the role's ``validate.yml``, on every host that runs InfluxDB before any host changes. Pure; unit-tested in
``tests/unit/test_stack_checks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import (
    admin_password_problems,
    environment_strings,
    names_a_credential,
)

# Environment variables that would override what the role sets and checks, {name: the variable that sets it}.
ROLE_SETTINGS = {
    "INFLUXDB_BIND_ADDRESS": "influxdb_rpc_bind_address",
    "INFLUXDB_HTTP_BIND_ADDRESS": "influxdb_http_address and influxdb_http_port",
    "INFLUXDB_HTTP_AUTH_ENABLED": "influxdb_auth_enabled",
    "INFLUXDB_META_DIR": "influxdb_meta_dir",
    "INFLUXDB_DATA_DIR": "influxdb_data_dir",
    "INFLUXDB_DATA_WAL_DIR": "influxdb_wal_dir",
}


def _credential_settings(overrides: Any, path: str = "") -> list[str]:
    """The dotted names of the settings in ``overrides`` (sections, and arrays of tables such as [[graphite]]) that
    are named like a credential and hold a value."""
    found = []
    items = overrides.items() if isinstance(overrides, Mapping) else []
    for key, value in items:
        name = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            found += _credential_settings(value, name)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for index, table in enumerate(value):
                found += _credential_settings(table, f"{name}[{index}]")
        elif names_a_credential(key) and value not in (None, ""):
            found.append(name)
    return found


def _environment_problems(environment: Any) -> list[str]:
    try:
        names = environment_strings({} if environment is None else environment)
    except AnsibleFilterError as error:
        return [f"influxdb_environment: {error.message}"]
    return [
        f"influxdb_environment: {name} would override what the role sets and checks; set {ROLE_SETTINGS[name]}"
        for name in names
        if name in ROLE_SETTINGS
    ]


def influxdb_problems(settings: Mapping[str, Any]) -> list[str]:
    """With authentication on (``influxdb_auth_enabled``), ``influxdb_admin_password`` must be a real password;
    ``influxdb_environment`` must be variable names with one-line values; on Kubernetes, where influxdb.conf is the
    ConfigMap influxdb-config, ``influxdb_config_overrides`` may hold no credential (named, never shown)."""
    problems = _environment_problems(settings.get("influxdb_environment"))
    if settings.get("influxdb_platform") == "kubernetes":
        problems += [
            f"influxdb_config_overrides.{name}: on Kubernetes influxdb.conf is the ConfigMap influxdb-config, readable"
            " by whoever reads ConfigMaps; give it in influxdb_environment (InfluxDB reads INFLUXDB_<SECTION>_<KEY>,"
            " e.g. INFLUXDB_HTTP_SHARED_SECRET), which is the Secret influxdb-environment"
            for name in _credential_settings(settings.get("influxdb_config_overrides"))
        ]
    if settings.get("influxdb_auth_enabled", True):
        problems += admin_password_problems(
            settings.get("influxdb_admin_password"), "influxdb_admin_password", "influxdb"
        )
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"influxdb_problems": influxdb_problems}
