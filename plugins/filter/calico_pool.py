"""How a running Calico IP pool differs from the settings, and which of those differences the calico role may change.

``sensorstack.iot.ip_pool_differences(spec, wanted)`` lists the fields of an ``IPPool`` spec (as the API returns it:
fields at their zero value are left out) whose value is not the wanted one, in a stable order. The calico role runs
it twice: before it applies anything, on the pool a running cluster already has, and after calico-node first created
the pool from its ``CALICO_IPV4POOL_*`` environment. Pure functions, run on the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# What the API leaves out of a spec when a field has its zero value (Calico's own defaults for the others).
UNSET: dict[str, Any] = {"cidr": "", "blockSize": 26, "vxlanMode": "Never", "ipipMode": "Never", "natOutgoing": False}
# The fields Calico reads only when it creates a pool: changing them in place means migrating to a new pool.
FIXED = ("cidr", "blockSize")
# The encapsulation: changeable in place, but every pod's traffic between nodes changes with it.
ENCAPSULATION = ("vxlanMode", "ipipMode")


def _normal(field: str, value: Any) -> Any:
    if field == "blockSize":
        return int(value)
    if field == "natOutgoing":
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return bool(value)
    return str(value)


def ip_pool_fields(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The compared fields of an IPPool spec, with the zero values the API leaves out filled in."""
    spec = spec or {}
    return {field: spec.get(field, zero) if spec.get(field) is not None else zero for field, zero in UNSET.items()}


def ip_pool_differences(spec: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> list[str]:
    """The fields of wanted (cidr, blockSize, vxlanMode, ipipMode, natOutgoing) that spec has otherwise."""
    if (spec is not None and not isinstance(spec, Mapping)) or not isinstance(wanted, Mapping):
        raise AnsibleFilterError("ip_pool_differences: expected an IPPool spec and the wanted fields, as mappings")
    unknown = sorted(set(wanted) - set(UNSET))
    if unknown:
        raise AnsibleFilterError(f"ip_pool_differences: unknown IPPool fields {unknown}")
    have = ip_pool_fields(spec)
    return [
        field for field in UNSET if field in wanted and _normal(field, have[field]) != _normal(field, wanted[field])
    ]


def ip_pool_refused_changes(differences: list[str], allow_encapsulation_change: bool) -> list[str]:
    """Of the differences, those the role must not make on a running pool: the fixed fields always, the
    encapsulation unless allowed. natOutgoing is changed in place."""
    refused = [field for field in differences if field in FIXED]
    if not allow_encapsulation_change:
        refused += [field for field in differences if field in ENCAPSULATION]
    return refused


class FilterModule:
    """Calico IP pool comparison, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "ip_pool_differences": ip_pool_differences,
            "ip_pool_fields": ip_pool_fields,
            "ip_pool_refused_changes": ip_pool_refused_changes,
        }
