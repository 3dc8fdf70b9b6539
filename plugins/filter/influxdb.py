"""The influxdb role's semantic checks, beyond its argument spec.

``sensorstack.iot.influxdb_problems(settings)`` takes the role's variables as one mapping and lists what is wrong,
each message naming the variable and none showing a secret. The role calls it first; the preflight play calls it,
through the role's ``validate.yml``, on every host that runs InfluxDB before any host changes. Pure; unit-tested in
``tests/unit/test_stack_checks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.sensorstack.iot.plugins.filter.stack import admin_password_problems


def influxdb_problems(settings: Mapping[str, Any]) -> list[str]:
    """With authentication on (``influxdb_auth_enabled``), ``influxdb_admin_password`` must be a real password."""
    if not settings.get("influxdb_auth_enabled", True):
        return []
    return admin_password_problems(settings.get("influxdb_admin_password"), "influxdb_admin_password", "influxdb")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"influxdb_problems": influxdb_problems}
