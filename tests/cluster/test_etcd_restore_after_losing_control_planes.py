"""Disaster recovery on the tier's HA cluster (3 control planes and 2 workers): two control-plane machines are lost
for good and take etcd's quorum with them, so the API stops answering. As roles/etcd_restore/README.md tells an
operator: the lost control planes leave the inventory, playbooks/etcd-restore.yml restores the survivor from a
snapshot taken before the loss, and the run names the lost nodes instead of waiting for them. Then their Node objects
are deleted. A new machine replaces one; the other comes back on its old disk before it is reset, and site.yml refuses
to run, naming it. Reset by playbooks/reset.yml as preflight says, it joins with the new one through site.yml.

Checked: the survivor runs etcd alone past the old revision and holds what the snapshot held; when the restore ends,
the nodes it covers are Ready from a heartbeat sent since it began (the snapshot says Ready for every node it saved,
the lost ones too) and the two lost ones are named; site.yml stops in preflight, changing nothing, while a lost
control plane that came back runs its member of the old cluster, and names it with the reset it needs; after the
joins etcd has three healthy members again, every node is Ready and a new Deployment's pod runs.

Runs last (after test_reset.py): it replaces one of the cluster's nodes and resets another.
"""

from __future__ import annotations

import datetime
import json
import subprocess
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
    wait_for,
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
from .test_ha import ready_nodes
from .test_reset import CONFIRMED as RESET_CONFIRMED
from .test_reset import RESET

pytestmark = pytest.mark.cluster

LOST = [name for name, _ in EXTRA_CONTROL_PLANES]


@dataclass
class Recovery:
    revision_before: int
    restore: PlaybookRun
    # name -> (Ready's status, whether its last heartbeat came after the restore began), as the run left them.
    heartbeats_after_restore: dict[str, tuple[str, bool]]
    members_after_restore: list[str]
    # site.yml with a lost control plane back on its old data, before a reset (None when the restore failed).
    with_an_old_member: PlaybookRun | None
    # The joins by site.yml (None when the restore failed; the reset's run when it failed).
    joins: PlaybookRun | None


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

    # Two machines gone (powered off, disks kept): one member of three left, no quorum, no API.
    for node in three_control_planes[1:]:
        subprocess.run(["docker", "stop", "--time=5", node.container], check=True, capture_output=True)
    wait_for("the API to stop answering without etcd's quorum", lambda: not api_answers(survivor), timeout=120)

    cluster.inventory = cluster_inventory(cluster.directory, (CONTROL_PLANE,), WORKERS)
    began = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    restore = cluster.run_playbook(RESTORE, "--extra-vars", json.dumps({"etcd_restore_snapshot": snapshot}), *CONFIRMED)
    print(f"\netcd restored on the one control plane left by playbooks/etcd-restore.yml in {restore.seconds:.0f} s")
    cluster.timings["etcd restore after losing two control planes"] = restore.seconds
    if restore.returncode != 0:
        return Recovery(revision_before, restore, {}, [], None, None)
    heartbeats_after_restore = heartbeats_since(cluster, began)
    members_after_restore = etcd_member_names(survivor)
    survivor.sh("rm -rf /var/lib/etcd/member.before-restore-*")

    # As the restore's report says: the lost nodes deleted. A new machine replaces the first; the second comes back on
    # its old disk without the reset the report asks for, and its kubelet starts its member of the cluster as it was.
    cluster.kubectl("delete", "node", *LOST)
    (replaced, replaced_address), (returned_name, _) = EXTRA_CONTROL_PLANES
    containers.remove(three_control_planes[1].container)
    node_container(replaced, replaced_address)
    returned = three_control_planes[2]
    subprocess.run(["docker", "start", returned.container], check=True, capture_output=True)
    wait_for(
        f"{returned_name}'s old etcd member to run",
        lambda: returned.sh("crictl ps --quiet --state running --name '^etcd$'", check=False).strip(),
        timeout=240,
    )
    cluster.inventory = cluster_inventory(cluster.directory, CONTROL_PLANES, WORKERS)
    with_an_old_member = cluster.site("--skip-tags", "stack,verify")

    # As preflight says: the returned one reset; then both join by site.yml.
    reset = cluster.run_playbook(RESET, "--limit", returned_name, *RESET_CONFIRMED)
    joins = cluster.site("--skip-tags", "stack,verify") if reset.returncode == 0 else reset
    print(f"a new and a reset control plane joined the restored cluster by site.yml in {joins.seconds:.0f} s")
    cluster.timings["control-plane joins after the restore"] = joins.seconds
    return Recovery(
        revision_before, restore, heartbeats_after_restore, members_after_restore, with_an_old_member, joins
    )


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


def test_a_control_plane_back_on_its_old_data_stops_site_yml_before_any_change_naming_the_reset(
    recovery: Recovery,
) -> None:
    run = recovery.with_an_old_member
    assert run is not None, recovery.restore.tail()
    assert run.returncode != 0, run.explain()
    report = " ".join(run.output.split())
    returned = LOST[-1]
    assert f"the etcd members of {returned} belong to another cluster" in report, run.tail()
    assert f"playbooks/reset.yml --limit {returned}" in report
    assert "Check that the first control-plane node runs the cluster the others run" in report
    assert set(run.changed().values()) == {0}, run.explain()


def test_a_new_and_a_reset_control_plane_join_the_restored_cluster_and_etcd_runs_three_members_again(
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
