"""playbooks/etcd-restore.yml on the tier's first cluster, one control plane and two workers (the built-in lab's
shape): a snapshot taken by playbooks/etcd-snapshot.yml and left on the node, then a change the snapshot does not
hold (one ConfigMap added, one deleted). Confirmed, the one etcd member is restored from the node's snapshot: the
ConfigMaps are as the snapshot holds them, etcd runs one member past the old revision, every node is Ready and a new
Deployment's pod is scheduled and runs.

test_etcd_restore.py restores three members on the HA cluster, with the refusals; this is the one-member path. Runs
after test_cluster.py and test_stack.py and before test_ha.py, which grows the restored cluster to three control
planes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import CONTROL_PLANE, WORKERS, Cluster, PlaybookRun, renewal_lease_holder
from .test_etcd_restore import (
    BUMP,
    CONFIRMED,
    RESTORE,
    a_new_deployment_runs,
    config_maps,
    etcd_member_names,
    restore_left_its_data_once,
    revision,
    snapshot_before_a_change,
    snapshot_taken,
)
from .test_ha import ready_nodes

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def restored(cluster: Cluster) -> Iterator[tuple[PlaybookRun, int]]:
    """The restore's run, and etcd's revision before it. Afterwards the data kept from before the restore is removed,
    as the role's README tells an operator to once the cluster is whole: test_etcd_restore.py counts what its own
    restore keeps."""
    taken, revision_before = snapshot_before_a_change(cluster, {"etcd_snapshot_label": "one-member"})
    snapshot = snapshot_taken(taken, "one-member")[0]
    run = cluster.run_playbook(RESTORE, "--extra-vars", json.dumps({"etcd_restore_snapshot": snapshot}), *CONFIRMED)
    print(f"\netcd restored on one control plane by playbooks/etcd-restore.yml in {run.seconds:.0f} s")
    cluster.timings["etcd restore, one control plane"] = run.seconds
    yield run, revision_before
    cluster.control_plane.sh("rm -rf /var/lib/etcd/member.before-restore-*")


def test_the_one_member_is_restored_past_the_old_revision_and_holds_what_the_snapshot_held(
    cluster: Cluster, restored: tuple[PlaybookRun, int]
) -> None:
    run, revision_before = restored
    assert run.returncode == 0, run.tail()
    assert config_maps(cluster) == {"restore-probe-before"}
    assert etcd_member_names(cluster.control_plane) == [CONTROL_PLANE[0]]
    assert revision(cluster.control_plane) > revision_before + BUMP // 2
    restore_left_its_data_once(cluster.control_plane)
    # The run let go of the control planes' restart Lease it held while restoring.
    assert renewal_lease_holder(cluster.control_plane) == "", run.tail()


def test_every_node_is_ready_and_a_new_deployment_runs_after_the_one_member_restore(
    cluster: Cluster, restored: tuple[PlaybookRun, int]
) -> None:
    assert restored[0].returncode == 0, restored[0].tail()
    assert ready_nodes(cluster.control_plane) == {name for name, _ in (CONTROL_PLANE, *WORKERS)}
    a_new_deployment_runs(cluster)
