"""The upgrade from the previous minor release to the pinned one, as an operator runs it.

The tier's cluster (conftest.py) is built by `site.yml` at the release the bundle carries for this
(``sensorstack_kubernetes_upgrade_from_version``), with a Deployment of two replicas and a PodDisruptionBudget of one
on it; then `playbooks/upgrade.yml` runs with the pinned version while a watcher reads the Deployment through the
Kubernetes API every second: it must never see fewer than one Ready replica. Afterwards every node reports the
pinned version, the packages are held there, and a rerun of the upgrade changes nothing, but finishes a node that a
stopped run left cordoned (and leaves alone a node the operator cordoned). That `site.yml` then
changes nothing either is test_cluster.py's second run, on this same upgraded cluster.
"""

from __future__ import annotations

import json
import re

import pytest

from sensorstack import project_root
from sensorstack.bundle.versions import load_versions

from .conftest import RENEWAL_LEASE, UPGRADE, Cluster, PlaybookRun
from .upgrade_probe import UpgradeRecord

pytestmark = pytest.mark.cluster

VERSIONS = load_versions()
TARGET = VERSIONS["sensorstack_kubernetes_version"]
FROM = VERSIONS["sensorstack_kubernetes_upgrade_from_version"]


@pytest.fixture(scope="module")
def upgrade(cluster: Cluster) -> UpgradeRecord:
    assert cluster.upgrade is not None
    print(
        f"\nupgrade {FROM} -> {TARGET}: {cluster.upgrade.seconds:.0f} s; ready replicas seen: "
        f"min {min(cluster.upgrade.readings, default=0)}, {len(cluster.upgrade.readings)} readings, "
        f"{cluster.upgrade.errors} reads failed while the API server restarted"
    )
    return cluster.upgrade


def test_the_cluster_was_built_at_the_previous_release(upgrade: UpgradeRecord) -> None:
    assert upgrade.versions_before == {f"v{FROM}"}


def test_a_worker_is_not_upgraded_before_the_control_plane(cluster: Cluster, upgrade: UpgradeRecord) -> None:
    """playbooks/upgrade.yml limited to a worker, before the control plane: the worker's kubelet would be newer than
    the API server, and later runs would skip it as upgraded. The run stops on it, unchanged."""
    worker = cluster.workers[0].name
    message = " ".join(upgrade.worker_first_output.split())
    assert f"{worker} cannot be upgraded before the control plane: the cluster is at v{FROM}" in message, message[
        -3000:
    ]
    assert upgrade.worker_first_changed == {worker: 0}
    assert upgrade.versions_after_worker_first == {f"v{FROM}"}


def test_every_node_reports_the_pinned_version(cluster: Cluster, upgrade: UpgradeRecord) -> None:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    assert {item["status"]["nodeInfo"]["kubeletVersion"] for item in nodes} == {f"v{TARGET}"}
    assert all(not item["spec"].get("unschedulable") for item in nodes), "a node was left cordoned"
    configuration = cluster.stored_cluster_configuration()
    assert configuration is not None and configuration["kubernetesVersion"] == f"v{TARGET}"
    for node in cluster.nodes:
        assert node.run("kubeadm", "version", "-o", "short").strip() == f"v{TARGET}"
        assert set(node.run("apt-mark", "showhold").split()) >= {"kubeadm", "kubelet", "kubectl"}


def test_the_control_plane_held_the_renewal_lease_for_its_upgrade_and_released_it(
    cluster: Cluster, upgrade: UpgradeRecord
) -> None:
    """kubeadm upgrade restarts the control plane's etcd member: the Lease keeps a certificate renewal elsewhere from
    restarting another one at the same time."""
    run = PlaybookRun(upgrade.returncode, upgrade.output, upgrade.seconds)
    taken = [task for task in run.changed_tasks() if "Take the control planes' restart Lease" in task]
    assert [task.rsplit(" ", 1)[-1] for task in taken] == [f"[{cluster.control_plane.name}]"], run.explain()
    assert cluster.kubectl("--namespace=kube-system", "get", "lease", RENEWAL_LEASE, "--ignore-not-found") == ""


# Where role etcd_snapshot keeps the snapshots (its defaults/main.yml), and the probe Deployment's key in etcd.
SNAPSHOTS = "/var/backups/etcd"
PROBE_KEY = "/registry/deployments/default/upgrade-probe"
# A standalone etcd restored from a snapshot on the control plane, from the binaries of its running etcd container
# (a distroless image: no shell in it), on ports of its own.
RESTORE_CHECK = """
id=$(crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps --quiet --state running --name '^etcd$')
bin=/run/containerd/io.containerd.runtime.v2.task/k8s.io/$id/rootfs/usr/local/bin
data=$(mktemp -d)/etcd
peer="--initial-cluster restored=http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800"
$bin/etcdutl snapshot restore "$1" --data-dir "$data" --name restored $peer >/dev/null
$bin/etcd --name restored --data-dir "$data" $peer --listen-peer-urls http://127.0.0.1:23800 \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 >"$data.log" 2>&1 &
trap 'kill $!; wait $! || true; rm -rf "$(dirname "$data")"' EXIT
for _ in $(seq 60); do
  $bin/etcdctl --endpoints=http://127.0.0.1:23790 endpoint health >/dev/null 2>&1 && break
  sleep 1
done
$bin/etcdctl --endpoints=http://127.0.0.1:23790 get --keys-only "$2"
"""


def snapshots(cluster: Cluster) -> dict[str, str]:
    """The snapshots on the control plane: name to mode and owner."""
    listing = cluster.control_plane.sh(f"cd {SNAPSHOTS} && stat --format '%n %a %U' etcd-*.db")
    return {name: rest for name, rest in (line.split(" ", 1) for line in listing.splitlines())}


def test_the_upgrade_first_took_a_snapshot_of_etcd_that_restores_with_the_workload_in_it(
    cluster: Cluster, upgrade: UpgradeRecord
) -> None:
    """Before kubeadm upgrade apply moved anything, the first control plane's etcd was saved, checked and kept for
    root alone; restored into a standalone etcd it holds the probe Deployment that ran through the upgrade."""
    taken = snapshots(cluster)
    assert len(taken) == 1 and next(iter(taken)).endswith(f"-before-upgrade-to-v{TARGET}.db"), taken
    ((name, owner),) = taken.items()
    assert owner == "600 root", taken
    assert cluster.control_plane.run("stat", "--format", "%a %U", SNAPSHOTS).strip() == "700 root"
    report = " ".join(upgrade.output.split())
    assert f"{SNAPSHOTS}/{name}, etcd revision" in report, report[-3000:]
    # The snapshot's moment: the cluster at the old release, before the control plane's node was drained.
    assert report.index(name) < report.index("Drain the node's pods")
    restored = cluster.control_plane.run("sh", "-euc", RESTORE_CHECK, "restore", f"{SNAPSHOTS}/{name}", PROBE_KEY)
    assert restored.split() == [PROBE_KEY], restored


def test_a_snapshot_on_demand_keeps_the_newest_only(cluster: Cluster, upgrade: UpgradeRecord) -> None:
    run = cluster.run_playbook(
        project_root() / "playbooks/etcd-snapshot.yml",
        "-e",
        "etcd_snapshot_label=on-demand",
        "-e",
        "etcd_snapshot_keep=1",
    )
    assert run.returncode == 0, run.tail()
    assert run.changed() == {cluster.control_plane.name: 1}, run.explain()
    taken = snapshots(cluster)
    assert len(taken) == 1 and next(iter(taken)).endswith("-on-demand.db"), taken
    report = " ".join(run.output.split())
    assert re.search(
        rf"-on-demand\.db, etcd revision \d+, \d+ keys, \d+ bytes; removed {SNAPSHOTS}/etcd-\S+-before-upgrade-to-v",
        report,
    ), run.tail()


def test_the_workload_never_dropped_below_one_ready_replica(upgrade: UpgradeRecord) -> None:
    assert len(upgrade.readings) > 30, upgrade.readings
    assert min(upgrade.readings) >= 1, upgrade.readings


def test_a_second_upgrade_run_changes_nothing(cluster: Cluster, upgrade: UpgradeRecord) -> None:
    run = cluster.run_playbook(UPGRADE)
    assert run.returncode == 0, run.tail()
    assert set(run.changed().values()) == {0}, run.explain()


# What the kubernetes_upgrade role sets on a node while it has it cordoned (its vars/main.yml).
CORDON_MARK = "sensorstack.io/upgrade-cordoned"


def test_a_rerun_puts_back_a_node_a_stopped_run_left_cordoned_and_no_other(
    cluster: Cluster, upgrade: UpgradeRecord
) -> None:
    # As a run leaves a node whose kubelet reached the new version but that was not Ready in time.
    stopped, by_hand = (worker.name for worker in cluster.workers)
    left_by_a_run = {"spec": {"unschedulable": True}, "metadata": {"annotations": {CORDON_MARK: f"v{TARGET}"}}}
    cluster.kubectl("patch", "node", stopped, "--type=merge", f"--patch={json.dumps(left_by_a_run)}")
    cluster.kubectl("cordon", by_hand)
    try:
        run = cluster.run_playbook(UPGRADE)
        assert run.returncode == 0, run.tail()
        nodes = {item["metadata"]["name"]: item for item in cluster.kubectl_json("get", "nodes")["items"]}
        assert not nodes[stopped]["spec"].get("unschedulable"), "the node the stopped run left is still cordoned"
        assert CORDON_MARK not in nodes[stopped]["metadata"].get("annotations", {})
        assert nodes[by_hand]["spec"].get("unschedulable"), "the rerun uncordoned a node the operator cordoned"
        assert run.changed()[stopped] > 0 and run.changed()[by_hand] == 0, run.explain()
    finally:
        cluster.kubectl("uncordon", by_hand)
        cluster.kubectl("uncordon", stopped)
