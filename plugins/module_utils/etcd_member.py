"""What a control plane's local etcd member says of itself (`etcdctl endpoint status --write-out=json`), read by
module control_plane_state. Pure and unit-tested; the member answers without a quorum, so a member cut off from its
cluster still says which cluster it belongs to.
"""

from __future__ import annotations

import json
from typing import Any


def hex_id(value: Any) -> str:
    """An etcd ID as etcdctl's tables print it (``%x``); 0 and a missing one are "" (no leader, say)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not an etcd ID: {value!r}")
    return format(value, "x") if value else ""


def endpoint_status(output: str) -> dict[str, Any]:
    """The one endpoint's cluster, member and leader IDs (hex), its etcd version and errors (``etcdserver: no
    leader`` on a member without quorum)."""
    try:
        statuses = json.loads(output)
    except ValueError as error:
        raise ValueError(f"etcdctl endpoint status printed no JSON ({error}): {output.strip()[:300]!r}") from error
    if not isinstance(statuses, list) or len(statuses) != 1 or not isinstance(statuses[0], dict):
        raise ValueError(f"etcdctl endpoint status printed no single endpoint: {output.strip()[:300]!r}")
    status = statuses[0].get("Status") or {}
    header = status.get("header") or {}
    cluster_id = hex_id(header.get("cluster_id", 0))
    if not cluster_id:
        raise ValueError(f"etcdctl endpoint status names no cluster: {output.strip()[:300]!r}")
    return {
        "cluster_id": cluster_id,
        "member_id": hex_id(header.get("member_id", 0)),
        "leader": hex_id(status.get("leader", 0)),
        "version": str(status.get("version", "")),
        "errors": [str(error) for error in status.get("errors") or []],
    }
