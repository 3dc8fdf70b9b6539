"""Which etcd cluster a control plane's member belongs to, as its peer listener says (``GET /members``, the
``X-Etcd-Cluster-ID`` header and the members it knows), read by module control_plane_state. The peer listener
answers from the member's start, without a quorum and before the member serves clients: a member cut off from its
cluster (one lost while the others were restored from a snapshot) never serves clients, yet still says this. Pure
and unit-tested.
"""

from __future__ import annotations

import json
import re
from typing import Any

CLUSTER_ID = re.compile(r"^[0-9a-f]{1,16}$")


def peer_members(cluster_id: str | None, body: str) -> dict[str, Any]:
    """The cluster ID (hex, as etcd prints it) and the names of the members the member knows, sorted."""
    cluster = (cluster_id or "").strip().lower()
    if not CLUSTER_ID.match(cluster):
        raise ValueError(f"etcd's peer listener named no cluster (X-Etcd-Cluster-ID: {cluster_id!r})")
    try:
        members = json.loads(body)
    except ValueError as error:
        raise ValueError(f"etcd's peer listener listed no members ({error}): {body.strip()[:300]!r}") from error
    if not isinstance(members, list) or not all(isinstance(member, dict) for member in members):
        raise ValueError(f"etcd's peer listener listed no members: {body.strip()[:300]!r}")
    # A member added but not started yet has no name so far.
    return {"cluster_id": cluster, "members": sorted(str(member.get("name") or "") for member in members)}
