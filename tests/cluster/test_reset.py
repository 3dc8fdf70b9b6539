"""playbooks/reset.yml on a worker of the cluster tier's cluster (the session's ``cluster`` fixture): without
``reset_confirm=yes`` and without a terminal it stops before anything changes; in check mode it says what it would
do and changes nothing; confirmed, the worker leaves the cluster and keeps nothing of it (its kubelet.conf, Calico's
VXLAN device and veths, the iptables chains of Calico and kube-proxy) but the operator's resolv.conf; a second reset
changes nothing; the cluster play joins it again, Ready.
Then the third control plane of the HA cluster (test_ha.py's): its reset takes its etcd member out of the cluster,
and the cluster play joins it again as a control plane with a member of its own.

The tests run in this file's order and build on each other: refusal, check mode, reset, second reset, join again,
then the control plane's reset and join. Each join leaves the cluster as it found it, every node Ready.
"""

from __future__ import annotations

import re
import time

import pytest

from sensorstack import project_root

from .conftest import CONTROL_PLANES, KUBECTL, Cluster, Node, PlaybookRun
from .test_etcd_restore import etcd_member_names

pytestmark = pytest.mark.cluster

RESET = project_root() / "playbooks/reset.yml"
CLUSTER_PLAYS = project_root() / "playbooks/cluster.yml"
# The kubelet's TLS bootstrap, then calico-node's start on the node.
READY_TIMEOUT = 600
# Calico's interfaces and the chains of Calico and kube-proxy, as `ip -o link` and iptables-save name them.
CALICO_LINK = re.compile(r"^\d+: (vxlan\.calico|cali[0-9a-f]{11})[@:]", re.MULTILINE)
THEIR_CHAIN = re.compile(r"^:(cali-|KUBE-)\S*", re.MULTILINE)
THEIR_JUMP = re.compile(r" -[jg] (cali-|KUBE-)")
CONFIRMED = ("--extra-vars", '{"reset_confirm": "yes", "kubeadm_reset_drain_force": true}')


def reset_worker(cluster: Cluster, *extra: str) -> PlaybookRun:
    """playbooks/reset.yml limited to the last worker. run_playbook closes stdin: a prompt gets no answer, as in CI."""
    return cluster.run_playbook(RESET, "--limit", worker(cluster).name, *extra)


def worker(cluster: Cluster) -> Node:
    return cluster.workers[-1]


def node_names(cluster: Cluster) -> set[str]:
    return {node["metadata"]["name"] for node in cluster.kubectl_json("get", "nodes")["items"]}


def ready(cluster: Cluster, name: str) -> bool:
    nodes = [node for node in cluster.kubectl_json("get", "nodes")["items"] if node["metadata"]["name"] == name]
    conditions = {c["type"]: c["status"] for node in nodes for c in node["status"].get("conditions", [])}
    return conditions.get("Ready") == "True"


@pytest.mark.parametrize("extra", [(), ("--extra-vars", "reset_confirm=no")], ids=["no answer", "answer no"])
def test_without_a_yes_the_reset_stops_before_any_change(cluster: Cluster, extra: tuple[str, ...]) -> None:
    run = reset_worker(cluster, *extra)
    assert run.returncode != 0
    # The callback may fold a long message over several lines.
    assert "Nothing was reset" in " ".join(run.output.split()), run.tail()
    assert run.changed() == {worker(cluster).name: 0}, run.explain()
    assert worker(cluster).name in node_names(cluster)
    worker(cluster).run("test", "-f", "/etc/kubernetes/kubelet.conf")


def test_check_mode_reports_the_reset_and_changes_nothing(cluster: Cluster) -> None:
    """Check mode runs no kubeadm reset, so the pods' volumes stay mounted below /var/lib/kubelet: it reports what
    the reset would do instead of stopping on them."""
    run = reset_worker(cluster, *CONFIRMED, "--check")
    assert run.returncode == 0, run.explain()
    said = " ".join(run.output.split())
    assert f"would run kubeadm reset on {worker(cluster).name}" in said, run.tail()
    assert f"would drain {worker(cluster).name}" in said, run.tail()
    assert worker(cluster).name in node_names(cluster)
    assert not cluster.kubectl_json("get", "node", worker(cluster).name)["spec"].get("unschedulable")
    worker(cluster).run("test", "-f", "/etc/kubernetes/kubelet.conf")


@pytest.fixture(scope="module")
def first_reset(cluster: Cluster) -> PlaybookRun:
    nodes_before = node_names(cluster)
    # Other modules of the session leave pods without a controller on the workers, which kubectl drain refuses to
    # delete unless forced.
    run = reset_worker(cluster, *CONFIRMED)
    assert run.returncode == 0, run.tail()
    assert nodes_before - node_names(cluster) == {worker(cluster).name}
    return run


def test_the_reset_takes_the_worker_out_of_the_cluster(cluster: Cluster, first_reset: PlaybookRun) -> None:
    assert first_reset.changed()[worker(cluster).name] > 0
    assert worker(cluster).name not in node_names(cluster)
    assert cluster.control_plane.name in node_names(cluster)


def test_the_worker_keeps_nothing_of_the_cluster_but_the_operators_files(
    cluster: Cluster, first_reset: PlaybookRun
) -> None:
    node = worker(cluster)
    node.sh("test ! -e /etc/kubernetes/kubelet.conf && test ! -e /etc/cni/net.d/10-calico.conflist")
    node.sh("test ! -e /var/lib/kubelet/config.yaml && test ! -e /var/lib/calico && test ! -e /root/.kube/config")
    # kubeadm_reset_keep_files: the kubelet's resolv.conf, which the join needs again.
    node.run("test", "-f", "/etc/kubernetes/resolv.conf")
    links = node.run("ip", "-o", "link", "show")
    assert not CALICO_LINK.findall(links), links
    rules = node.sh("iptables-save; ip6tables-save")
    assert not THEIR_CHAIN.findall(rules), rules
    assert not THEIR_JUMP.findall(rules), rules


def test_a_second_reset_changes_nothing(cluster: Cluster, first_reset: PlaybookRun) -> None:
    run = reset_worker(cluster, "--extra-vars", "reset_confirm=yes")
    assert run.returncode == 0, run.tail()
    assert run.changed() == {worker(cluster).name: 0}, run.explain()


def join_again(cluster: Cluster, name: str) -> None:
    """playbooks/cluster.yml limited to the node, then wait until the node is Ready."""
    run = cluster.run_playbook(CLUSTER_PLAYS, "--limit", name)
    assert run.returncode == 0, run.tail()
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready(cluster, name):
        assert time.monotonic() < deadline, f"{name} is not Ready {READY_TIMEOUT} s after the join"
        time.sleep(10)
    assert name in node_names(cluster)


def test_the_reset_worker_joins_again_and_becomes_ready(cluster: Cluster, first_reset: PlaybookRun) -> None:
    join_again(cluster, worker(cluster).name)


THIRD_CONTROL_PLANE = CONTROL_PLANES[-1][0]


@pytest.fixture(scope="module")
def control_plane_reset(cluster: Cluster, three_control_planes: list[Node]) -> PlaybookRun:
    assert etcd_member_names(cluster.control_plane) == sorted(name for name, _ in CONTROL_PLANES)
    run = cluster.run_playbook(RESET, "--limit", THIRD_CONTROL_PLANE, *CONFIRMED)
    assert run.returncode == 0, run.tail()
    return run


def test_a_reset_control_plane_takes_its_etcd_member_out_of_the_cluster(
    cluster: Cluster, three_control_planes: list[Node], control_plane_reset: PlaybookRun
) -> None:
    # kubeadm reset finds the member through the node's Node object: deleted before it, the member stayed, dead.
    assert etcd_member_names(cluster.control_plane) == sorted(name for name, _ in CONTROL_PLANES[:-1])
    assert THIRD_CONTROL_PLANE not in node_names(cluster)
    reset = next(node for node in three_control_planes if node.name == THIRD_CONTROL_PLANE)
    reset.sh("test ! -e /etc/kubernetes/admin.conf && test ! -e /etc/kubernetes/manifests/etcd.yaml")
    # The two left keep a quorum: the API answers through the reset node's former peers.
    assert cluster.control_plane.run(*KUBECTL, "get", "--raw", "/readyz").strip() == "ok"


def test_the_reset_control_plane_joins_again_with_an_etcd_member(
    cluster: Cluster, control_plane_reset: PlaybookRun
) -> None:
    join_again(cluster, THIRD_CONTROL_PLANE)
    assert etcd_member_names(cluster.control_plane) == sorted(name for name, _ in CONTROL_PLANES)
