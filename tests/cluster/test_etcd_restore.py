"""playbooks/etcd-restore.yml on the tier's HA cluster (3 control planes and 2 workers, test_ha.py's): a snapshot
taken by playbooks/etcd-snapshot.yml on the first control plane with a copy on the controller
(etcd_snapshot_fetch_dir: private folder and file, the node's size), then a change the snapshot does not hold (one
ConfigMap added, one deleted). Without etcd_restore_confirm=yes and without a terminal, confirmed but limited to one
control plane, confirmed while a renewal holds the control planes' restart Lease, and confirmed with a damaged
snapshot (which etcdutl refuses on every member), the playbook stops before anything changes. Confirmed, every member
is restored from the controller's copy (etcd_restore_from_controller): the ConfigMaps are as the snapshot holds them,
etcd has its three members again with the revision raised past the old one, the Lease is let go, every node is
Ready, and a new Deployment's pod is scheduled and runs (the restarted controllers and scheduler work on the
restored cluster).

Runs after test_ha.py and before test_reset.py, which builds on the cluster this one leaves whole.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle.versions import load_versions

from .conftest import (
    CONTROL_PLANES,
    WORKERS,
    Cluster,
    Node,
    PlaybookRun,
    renewal_lease_held,
    renewal_lease_holder,
    wait_for,
)
from .test_ha import ready_nodes

pytestmark = pytest.mark.cluster

RESTORE = project_root() / "playbooks/etcd-restore.yml"
SNAPSHOT = project_root() / "playbooks/etcd-snapshot.yml"
SNAPSHOTS = "/var/backups/etcd"
DAMAGED = f"{SNAPSHOTS}/damaged.db"
CONFIRMED = ("--extra-vars", '{"etcd_restore_confirm": "yes"}')
CRICTL = ("crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock")
# etcdctl in a control plane's etcd pod, with the certificate kubeadm gives etcd for its health checks.
ETCDCTL = (
    "/usr/local/bin/etcdctl",
    "--endpoints=https://127.0.0.1:2379",
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
    "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
)
# An image the tier's mirror serves.
IMAGE = load_versions()["sensorstack_mosquitto_image"]
# etcdutl's --bump-revision as role etcd_restore gives it by default.
BUMP = 1_000_000_000


@dataclass
class Restore:
    snapshot: str  # the copy on the controller that was restored
    revision_before: int
    refused: PlaybookRun
    limited: PlaybookRun
    held: PlaybookRun  # while the second control plane held the restart Lease
    held_by: str  # who held the Lease after that run
    damaged: PlaybookRun
    run: PlaybookRun


def etcd(node: Node, *arguments: str) -> str:
    container = node.run(*CRICTL, "ps", "--quiet", "--state", "running", "--name", "^etcd$").strip()
    return node.run(*CRICTL, "exec", container, *ETCDCTL, *arguments)


def revision(node: Node) -> int:
    return int(json.loads(etcd(node, "endpoint", "status", "--write-out=json"))[0]["Status"]["header"]["revision"])


def etcd_member_names(node: Node) -> list[str]:
    """The names of etcd's members (kubeadm names each after its node; one added but not started yet has none)."""
    return sorted(
        member.get("name", "") for member in json.loads(etcd(node, "member", "list", "--write-out=json"))["members"]
    )


def config_maps(cluster: Cluster) -> set[str]:
    listed = cluster.kubectl_json("get", "configmaps", "--namespace=default", "--selector=sensorstack.io/restore-test")
    return {item["metadata"]["name"] for item in listed["items"]}


def probe_config_map(cluster: Cluster, name: str) -> None:
    cluster.kubectl("create", "configmap", name, "--namespace=default", "--from-literal=probe=1")
    cluster.kubectl("label", "configmap", name, "--namespace=default", "sensorstack.io/restore-test=yes")


def snapshot_taken(run: PlaybookRun, label: str) -> tuple[str, str]:
    """The path on the node and the file name of the snapshot playbooks/etcd-snapshot.yml reports it took."""
    assert run.returncode == 0, run.tail()
    taken = re.search(rf"({SNAPSHOTS}/(etcd-\d{{8}}T\d{{6}}Z-{label}\.db)), etcd revision", run.output)
    assert taken, run.tail()
    return taken[1], taken[2]


def snapshot_before_a_change(cluster: Cluster, settings: dict[str, Any]) -> tuple[PlaybookRun, int]:
    """A probe ConfigMap, a snapshot by playbooks/etcd-snapshot.yml with settings, then a change the snapshot does not
    hold (a second ConfigMap added, the first deleted). The snapshot's run, and etcd's revision after the change."""
    probe_config_map(cluster, "restore-probe-before")
    taken = cluster.run_playbook(SNAPSHOT, "--extra-vars", json.dumps(settings))
    probe_config_map(cluster, "restore-probe-after")
    cluster.kubectl("delete", "configmap", "restore-probe-before", "--namespace=default")
    assert config_maps(cluster) == {"restore-probe-after"}
    return taken, revision(cluster.control_plane)


def restore_left_its_data_once(node: Node) -> None:
    """What a restore leaves on a control plane: the restored member, the data from before it kept once, and no
    folder of held control-plane manifests."""
    kept = node.sh("ls -a /var/lib/etcd").split()
    assert sorted(name for name in kept if not name.startswith("member.before-restore-")) == [".", "..", "member"]
    assert len([name for name in kept if name.startswith("member.before-restore-")]) == 1, (node.name, kept)
    assert node.sh("test ! -e /etc/kubernetes/sensorstack-restore && echo gone").strip() == "gone"


@pytest.fixture(scope="module")
def restore(cluster: Cluster, three_control_planes: list[Node]) -> Restore:
    # With a copy kept off the nodes, on the controller, as an operator keeps snapshots.
    backups = cluster.directory / "backups"
    snapshot_settings = {"etcd_snapshot_label": "restore-test", "etcd_snapshot_fetch_dir": str(backups)}
    taken, revision_before = snapshot_before_a_change(cluster, snapshot_settings)
    snapshot = snapshot_taken(taken, "restore-test")
    kept = backups / snapshot[1]
    report = " ".join(taken.output.split())
    assert f"copied to the controller as {kept}" in report, taken.tail()
    assert (stat.S_IMODE(backups.stat().st_mode), stat.S_IMODE(kept.stat().st_mode)) == (0o700, 0o600)
    assert kept.stat().st_size == int(cluster.control_plane.run("stat", "--format=%s", snapshot[0]))
    chosen = ("--extra-vars", json.dumps({"etcd_restore_snapshot": snapshot[0]}))
    refused = cluster.run_playbook(RESTORE, *chosen)
    limited = cluster.run_playbook(RESTORE, *chosen, *CONFIRMED, "--limit", cluster.control_plane.name)
    # A certificate renewal restarting the second control plane holds the restart Lease.
    with renewal_lease_held(three_control_planes[1], three_control_planes[1].name):
        held = cluster.run_playbook(
            RESTORE, "--extra-vars", json.dumps({**json.loads(chosen[1]), "etcd_restore_lease_wait": 1}), *CONFIRMED
        )
        held_by = renewal_lease_holder(cluster.control_plane)
    # The snapshot cut short, as a copy that did not finish leaves it: etcdutl refuses it on every member.
    cluster.control_plane.sh(f"head -c 1000000 {snapshot[0]} > {DAMAGED}")
    damaged = cluster.run_playbook(RESTORE, "--extra-vars", json.dumps({"etcd_restore_snapshot": DAMAGED}), *CONFIRMED)
    cluster.control_plane.run("rm", DAMAGED)
    # None of them may have changed anything: the later assertions would not tell.
    assert config_maps(cluster) == {"restore-probe-after"}, (
        refused.tail(),
        limited.tail(),
        held.tail(),
        damaged.tail(),
    )
    # Restored from the controller's copy: the refusals above took the node's.
    from_controller = {"etcd_restore_snapshot": str(kept), "etcd_restore_from_controller": True}
    run = cluster.run_playbook(RESTORE, "--extra-vars", json.dumps(from_controller), *CONFIRMED)
    print(f"\netcd restored on three control planes by playbooks/etcd-restore.yml in {run.seconds:.0f} s")
    cluster.timings["etcd restore"] = run.seconds
    # The run holds the Lease while it restores, and lets it go: the restored etcd has none.
    assert renewal_lease_holder(cluster.control_plane) == "", run.tail()
    return Restore(str(kept), revision_before, refused, limited, held, held_by, damaged, run)


def test_without_confirmation_nothing_is_restored(restore: Restore) -> None:
    assert restore.refused.returncode != 0
    assert "Nothing was restored: restoring etcd needs the answer yes" in " ".join(restore.refused.output.split())
    assert set(restore.refused.changed().values()) == {0}, restore.refused.explain()


def test_a_restore_limited_to_one_control_plane_is_refused(restore: Restore) -> None:
    assert restore.limited.returncode != 0
    report = " ".join(restore.limited.output.split())
    assert "a restore replaces every etcd member of the cluster: run it on every control-plane node" in report
    assert set(restore.limited.changed().values()) == {0}, restore.limited.explain()


def test_while_a_renewal_holds_the_restart_lease_nothing_is_restored(restore: Restore) -> None:
    assert restore.held.returncode != 0
    report = " ".join(restore.held.output.split())
    assert (
        "cpc-cp2 still holds the Lease kube-system/sensorstack-certificate-renewal after 1 s "
        "(etcd_restore_lease_wait): a certificate renewal or an upgrade there is restarting its control plane. "
        "Nothing was restored." in report
    ), restore.held.tail()
    assert set(restore.held.changed().values()) == {0}, restore.held.explain()
    assert restore.held_by == "cpc-cp2"


def test_a_snapshot_etcdutl_cannot_read_restores_nothing_and_leaves_nothing(
    three_control_planes: list[Node], restore: Restore
) -> None:
    assert restore.damaged.returncode != 0
    report = " ".join(restore.damaged.output.split())
    assert "Nothing was restored, etcd and the API kept running on their data:" in report, restore.damaged.tail()
    # Every control plane got the copy and refused it; none keeps the copy or anything restored from it.
    for node in three_control_planes:
        # The words depend on where the file was cut: a panic of bbolt's checks, an error, or a report without keys.
        assert f"{node.name}: etcd restore, step staged: " in report, restore.damaged.tail()
        assert not [name for name in node.sh("ls -a /var/lib/etcd").split() if "sensorstack-restore" in name]


def test_the_cluster_holds_what_the_snapshot_held(cluster: Cluster, restore: Restore) -> None:
    assert restore.run.returncode == 0, restore.run.tail()
    assert config_maps(cluster) == {"restore-probe-before"}
    # It held the control planes' restart Lease while it restored (let go at the end: the fixture checks).
    assert [task for task in restore.run.changed_tasks() if "Take the control planes' restart Lease" in task]


def test_every_member_was_restored_and_etcd_runs_three_again_past_the_old_revision(
    three_control_planes: list[Node], restore: Restore
) -> None:
    nodes = three_control_planes
    assert etcd_member_names(nodes[1]) == sorted(name for name, _ in CONTROL_PLANES)
    health = etcd(nodes[2], "endpoint", "health", "--cluster")
    assert health.count("is healthy") == 3, health
    # The bump that makes every watch of the API list again: beyond the revision before the restore.
    assert revision(nodes[0]) > restore.revision_before + BUMP // 2
    for node in nodes:
        restore_left_its_data_once(node)
    report = " ".join(restore.run.output.split())
    for node in nodes:
        assert f"{node.name}: etcd member {node.name} restored from {restore.snapshot}" in report


def a_new_deployment_runs(cluster: Cluster) -> None:
    """A new Deployment's pod is scheduled and runs: the restarted controllers and scheduler work on the restored
    cluster. Removes it, and the probe ConfigMaps, afterwards."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "restore-probe", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "restore-probe"}},
            "template": {
                "metadata": {"labels": {"app": "restore-probe"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "600"]}],
                },
            },
        },
    }
    cluster.kubectl("apply", "--filename=-", stdin=yaml.safe_dump(deployment))
    try:
        wait_for(
            "the restore-probe Deployment's pod Available",
            lambda: (
                cluster.kubectl_json("get", "deployment", "restore-probe", "--namespace=default")["status"].get(
                    "availableReplicas"
                )
                == 1
            ),
            timeout=300,
        )
    finally:
        cluster.kubectl("delete", "deployment", "restore-probe", "--namespace=default", "--wait=false")
        cluster.kubectl("delete", "configmap", "--namespace=default", "--selector=sensorstack.io/restore-test")


def test_every_node_is_ready_and_a_new_deployment_runs_after_the_restore(cluster: Cluster, restore: Restore) -> None:
    assert ready_nodes(cluster.control_plane) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)}
    a_new_deployment_runs(cluster)
