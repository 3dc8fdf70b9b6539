"""The influxdb role's semantic checks, beyond its argument spec.

``sensorstack.iot.influxdb_problems(settings)`` takes the role's variables as one mapping and lists what is wrong,
each message naming the variable and none showing a secret. The role calls it first; the preflight play calls it,
through the role's ``validate.yml``, on every host that runs InfluxDB before any host changes. Pure; unit-tested in
``tests/unit/test_stack_checks.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import admin_password_problems, environment_strings

# influxdb.conf settings that hold a credential ([http] shared-secret, and any password or token).
CREDENTIAL_KEY = re.compile(r"secret|password|token", re.IGNORECASE)


def _credential_settings(overrides: Any, path: str = "") -> list[str]:
    """The dotted names of the settings in ``overrides`` that are named like a credential and hold a value."""
    found = []
    for key, value in (overrides or {}).items() if isinstance(overrides, Mapping) else []:
        name = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            found += _credential_settings(value, name)
        elif CREDENTIAL_KEY.search(str(key)) and value not in (None, ""):
            found.append(name)
    return found


def _environment_problems(environment: Any) -> list[str]:
    try:
        environment_strings(environment or {})
    except AnsibleFilterError as error:
        return [f"influxdb_environment: {error.message}"]
    return []


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
