"""A Kubernetes lab node (debian13-node) runs a real kubelet inside its own cgroup and leaves the host as it was.

One node container is started the way `sensorstack lab up` starts it; Debian's containerd is installed in it with
apt and the kubelet built from the pinned Kubernetes source (the bundle's build cache) is copied in. The kubelet
must settle without the "missing paths" error, with kubepods.slice under the node's cgroup and not at the host's
root, and the host's kernel settings must read the same afterwards even though the kubelet writes its tunables.
Removing the node must leave no cgroup and no volume behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensorstack.lab import containers, images
from sensorstack.lab.node import KUBELET_KERNEL_TUNABLES, host_sysctls, parse_mountinfo, visible_mounts

from .conftest import kubernetes_binaries

pytestmark = pytest.mark.lab

CGROUP = Path("/sys/fs/cgroup")
# The hierarchies the kubelet manages with the systemd driver on cgroup v1 (this machine's layout).
KUBELET_HIERARCHIES = ("cpu", "memory", "pids", "systemd")

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
staticPodPath: /etc/kubernetes/manifests
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
"""

KUBELET_UNIT = """\
[Unit]
Description=kubelet, standalone (no API server)
After=containerd.service
[Service]
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --v=2
Restart=always
RestartSec=2
[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Node:
    container: str
    container_id: str

    def run(self, *command: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", "exec", "-i", self.container, *command], input=stdin, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed in {self.container}: {result.stderr}{result.stdout}")
        return result

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, check=check)

    def install(self, path: str, content: str) -> None:
        self.run("install", "-D", "-m", "0644", "/dev/stdin", path, stdin=content)


def _wait_for(what: str, condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(1)


def _cgroup_root() -> tuple[list[str], str]:
    """What the host's /sys/fs/cgroup holds and how it is mounted (a systemd container can change both)."""
    table = visible_mounts(parse_mountinfo(Path("/proc/self/mountinfo").read_text()))
    mount = table[str(CGROUP)]
    return sorted(os.listdir(CGROUP)), f"{','.join(mount.options)} {','.join(mount.super_options)}"


@pytest.fixture(scope="module")
def host_before() -> dict[str, str]:
    return host_sysctls()


@pytest.fixture(scope="module")
def cgroup_root_before() -> tuple[list[str], str]:
    return _cgroup_root()


@pytest.fixture(scope="module")
def node(host_before: dict[str, str], cgroup_root_before: tuple[list[str], str]) -> Iterator[Node]:
    images.build(images.recipe_for("debian13-node"))
    host = containers.LabHost(inventory_name="lab-node-test", container="sensorstack-test-node", image="debian13-node")
    containers.remove(host.container)
    containers.start(host)
    inspect = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}}", host.container], capture_output=True, text=True
    )
    yield Node(host.container, inspect.stdout.strip())
    containers.remove(host.container)


def test_the_node_boots_prepared(node: Node, cgroup_root_before: tuple[list[str], str]) -> None:
    assert node.run("systemctl", "is-system-running").stdout.strip() == "running"
    assert node.run("systemctl", "is-active", images.NODE_PREPARE_UNIT).stdout.strip() == "active"
    # The node's own cgroup is the root of its hierarchies: what the kubelet expects to find there.
    inside = visible_mounts(parse_mountinfo(node.run("cat", "/proc/self/mountinfo").stdout))
    for hierarchy in KUBELET_HIERARCHIES:
        assert inside[f"/sys/fs/cgroup/{hierarchy}"].root == f"/docker/{node.container_id}", hierarchy
    # ...and the node's systemd wrote nothing into the host's cgroup tmpfs.
    assert _cgroup_root() == cgroup_root_before


def test_only_the_nodes_network_sysctls_are_writable(node: Node) -> None:
    refused = node.sh("echo 1 > /proc/sys/fs/nr_open", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    node.sh("echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet")
    assert node.run("cat", "/proc/sys/net/ipv4/conf/all/route_localnet").stdout.strip() == "1"


def test_the_kubelet_tunables_written_in_the_node_stay_in_the_node(node: Node, host_before: dict[str, str]) -> None:
    # Each one written as the kubelet does (a plain write to /proc/sys), to a value the host does not have.
    for entry in KUBELET_KERNEL_TUNABLES:
        node.sh(f"echo 7 > /proc/sys/{entry}")
        assert node.run("cat", f"/proc/sys/{entry}").stdout.strip() == "7"
    assert host_sysctls() == host_before


@pytest.fixture(scope="module")
def kubelet(node: Node) -> Node:
    kubelet = kubernetes_binaries()["kubelet"]
    node.sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd >/dev/null")
    node.sh(
        "containerd config default"
        " | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/'"
        " -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' > /etc/containerd/config.toml"
        " && systemctl restart containerd"
    )
    subprocess.run(["docker", "cp", str(kubelet), f"{node.container}:/usr/bin/kubelet"], check=True)
    node.install("/var/lib/kubelet/config.yaml", KUBELET_CONFIG)
    node.install("/etc/systemd/system/kubelet.service", KUBELET_UNIT)
    node.sh("mkdir -p /etc/kubernetes/manifests && systemctl daemon-reload && systemctl start kubelet")
    qos = CGROUP / "memory/docker" / node.container_id / "kubepods.slice/kubepods-besteffort.slice"
    _wait_for("the kubelet's QoS cgroups", qos.is_dir, timeout=180)
    return node


def test_the_kubelet_settles_inside_the_node(kubelet: Node) -> None:
    assert kubelet.run("systemctl", "show", "--property=NRestarts", "--value", "kubelet").stdout.strip() == "0"
    assert kubelet.run("systemctl", "is-active", "kubelet").stdout.strip() == "active"
    journal = kubelet.run("journalctl", "--no-pager", "-u", "kubelet").stdout
    assert "has some missing paths" not in journal
    assert "Failed to start ContainerManager" not in journal


def test_the_pods_cgroups_are_under_the_node_not_the_host_root(kubelet: Node) -> None:
    for hierarchy in KUBELET_HIERARCHIES:
        assert (CGROUP / hierarchy / "docker" / kubelet.container_id / "kubepods.slice").is_dir(), hierarchy
        assert not list((CGROUP / hierarchy).glob("kubepods*")), f"kubepods at the host's root of {hierarchy}"


def test_the_kubelets_own_writes_leave_the_host_unchanged(kubelet: Node, host_before: dict[str, str]) -> None:
    # The shadows held 7 (previous test): the kubelet found them wrong and wrote its values, into the shadows.
    journal = kubelet.run("journalctl", "--no-pager", "-u", "kubelet", "-o", "cat").stdout
    assert 'Updating kernel flag" flag="vm/overcommit_memory"' in journal
    assert kubelet.run("cat", "/proc/sys/vm/overcommit_memory").stdout.strip() == "1"
    assert host_sysctls() == host_before


def test_removing_the_node_leaves_no_cgroup_and_no_volume(node: Node) -> None:
    mounts = json.loads(subprocess.run(["docker", "inspect", node.container], capture_output=True, text=True).stdout)
    volumes = [mount["Name"] for mount in mounts[0]["Mounts"] if mount["Type"] == "volume"]
    assert len(volumes) == 2  # /var/lib/containerd and /var/lib/kubelet
    containers.remove(node.container)
    assert not list(CGROUP.glob(f"*/docker/{node.container_id}"))
    listed = subprocess.run(["docker", "volume", "ls", "--quiet"], capture_output=True, text=True).stdout.split()
    assert not set(volumes) & set(listed)
