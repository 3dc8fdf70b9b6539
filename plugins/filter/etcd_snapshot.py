"""``sensorstack.iot.etcd_snapshot_problems(settings, data_dir)``: what is wrong with role etcd_snapshot's
directory, keep, label and timeout, each message naming its ``etcd_snapshot_*`` variable. The module
``sensorstack.iot.etcd_snapshot`` runs the same checks on its options (one function, in module_utils)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_snapshot import settings_problems


def etcd_snapshot_problems(settings: Mapping[str, Any], data_dir: str) -> list[str]:
    return settings_problems(settings, data_dir, prefix="etcd_snapshot_")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"etcd_snapshot_problems": etcd_snapshot_problems}
