"""Disaster recovery on the tier's HA cluster (3 control planes and 2 workers): two control-plane machines are lost
for good and take etcd's quorum with them, so the API stops answering. As roles/etcd_restore/README.md tells an
operator: the lost control planes leave the inventory, playbooks/etcd-restore.yml restores the survivor from a
snapshot taken before the loss, and the run names the lost nodes instead of waiting for them. Then their Node objects
are deleted and two new machines under the same names join as control planes through site.yml.

Checked: the survivor runs etcd alone past the old revision and holds what the snapshot held; when the restore ends,
the nodes it covers are Ready from a heartbeat sent since it began (the snapshot says Ready for every node it saved,
the lost ones too) and the two lost ones are named; after the joins etcd has three healthy members again, every node
is Ready and a new Deployment's pod runs.

Runs last (after test_reset.py): it replaces two of the cluster's nodes.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import pytest

from sensorstack.lab import containers

from .conftest import (
    CONTROL_PLANE,
    CONTROL_PLANES,
    EXTRA_CONTROL_PLANES,
    KUBECTL,
    WORKERS,
    Cluster,
    Node,
    PlaybookRun,
    cluster_inventory,
    node_container,
)
from .test_etcd_restore import (
    BUMP,
    CONFIRMED,
    RESTORE,
    a_new_deployment_runs,
    config_maps,
    etcd,
    etcd_member_names,
    revision,
    snapshot_before_a_change,
    snapshot_taken,
)
from .test_ha import ready_nodes, wait_for

pytestmark = pytest.mark.cluster

LOST = [name for name, _ in EXTRA_CONTROL_PLANES]


@dataclass
class Recovery:
    revision_before: int
    restore: PlaybookRun
    # name -> (Ready's status, whether its last heartbeat came after the restore began), as the run left them.
    heartbeats_after_restore: dict[str, tuple[str, bool]]
    members_after_restore: list[str]
    joins: PlaybookRun | None  # None when the restore failed


def api_answers(node: Node) -> bool:
    readyz = (*KUBECTL, "--request-timeout=10s", "get", "--raw", "/readyz")
    return node.run(*readyz, check=False, timeout=30).strip() == "ok"


def heartbeats_since(cluster: Cluster, began: datetime.datetime) -> dict[str, tuple[str, bool]]:
    heartbeats = {}
    for item in cluster.kubectl_json("get", "nodes")["items"]:
        ready = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
        sent = datetime.datetime.fromisoformat(ready["lastHeartbeatTime"])
        heartbeats[item["metadata"]["name"]] = (ready["status"], sent > began)
    return heartbeats


@pytest.fixture(scope="module")
def recovery(cluster: Cluster, three_control_planes: list[Node]) -> Recovery:
    survivor = cluster.control_plane
    taken, revision_before = snapshot_before_a_change(cluster, {"etcd_snapshot_label": "before-loss"})
    snapshot = snapshot_taken(taken, "before-loss")[0]

    # Two machines gone for good: one member of three left, no quorum, no API.
    for node in three_control_planes[1:]:
        containers.remove(node.container)
    wait_for("the API to stop answering without etcd's quorum", lambda: not api_answers(survivor), timeout=120)

    cluster.inventory = cluster_inventory(cluster.directory, (CONTROL_PLANE,), WORKERS)
    began = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    restore = cluster.run_playbook(RESTORE, "--extra-vars", json.dumps({"etcd_restore_snapshot": snapshot}), *CONFIRMED)
    print(f"\netcd restored on the one control plane left by playbooks/etcd-restore.yml in {restore.seconds:.0f} s")
    cluster.timings["etcd restore after losing two control planes"] = restore.seconds
    if restore.returncode != 0:
        return Recovery(revision_before, restore, {}, [], None)
    heartbeats_after_restore = heartbeats_since(cluster, began)
    members_after_restore = etcd_member_names(survivor)
    survivor.sh("rm -rf /var/lib/etcd/member.before-restore-*")

    # As the restore's report says: the lost nodes deleted, new machines under their names join by site.yml.
    cluster.kubectl("delete", "node", *LOST)
    for name, address in EXTRA_CONTROL_PLANES:
        node_container(name, address)
    cluster.inventory = cluster_inventory(cluster.directory, CONTROL_PLANES, WORKERS)
    joins = cluster.site("--skip-tags", "stack,verify")
    print(f"two new control planes joined the restored cluster by site.yml in {joins.seconds:.0f} s")
    cluster.timings["control-plane joins after the restore"] = joins.seconds
    return Recovery(revision_before, restore, heartbeats_after_restore, members_after_restore, joins)


def test_the_control_plane_left_is_restored_alone_and_holds_what_the_snapshot_held(
    cluster: Cluster, recovery: Recovery
) -> None:
    assert recovery.restore.returncode == 0, recovery.restore.tail()
    assert recovery.members_after_restore == [CONTROL_PLANE[0]]
    assert config_maps(cluster) == {"restore-probe-before"}
    assert revision(cluster.control_plane) > recovery.revision_before + BUMP // 2


def test_the_restore_waits_for_the_nodes_it_covers_to_report_and_names_the_lost_ones(recovery: Recovery) -> None:
    assert recovery.restore.returncode == 0, recovery.restore.tail()
    covered = {name: ("True", True) for name, _ in (CONTROL_PLANE, *WORKERS)}
    assert {name: recovery.heartbeats_after_restore[name] for name in covered} == covered
    # Their status is the snapshot's (Ready, until the node controller finds them silent), from before the loss.
    assert {name: recovery.heartbeats_after_restore[name][1] for name in LOST} == dict.fromkeys(LOST, False)
    report = " ".join(recovery.restore.output.split())
    assert f"The restored cluster still holds {', '.join(LOST)}, which this run did not cover" in report, (
        recovery.restore.tail()
    )
    assert f"kubectl delete node {' '.join(LOST)}" in report


def test_new_control_planes_join_the_restored_cluster_and_etcd_runs_three_members_again(
    cluster: Cluster, three_control_planes: list[Node], recovery: Recovery
) -> None:
    assert recovery.joins is not None, recovery.restore.tail()
    assert recovery.joins.returncode == 0, recovery.joins.tail()
    assert etcd_member_names(cluster.control_plane) == sorted(name for name, _ in CONTROL_PLANES)
    health = etcd(three_control_planes[2], "endpoint", "health", "--cluster")
    assert health.count("is healthy") == 3, health
    wait_for(
        "every node Ready after the joins",
        lambda: ready_nodes(cluster.control_plane) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)},
        timeout=300,
    )
    a_new_deployment_runs(cluster)
