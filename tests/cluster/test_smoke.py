"""The ground the cluster roles stand on, proven on one lab node with nothing but the served bundle.

The mirror's apt repository installs kubeadm, kubelet and kubectl with its signature checked; containerd, set up by
the collection's own containerd role, pulls every control-plane image through hosts.toml mirrors; `kubeadm init`
builds a one-node control plane whose API server reports the pinned version; and the host's kernel settings are
the same afterwards. The kubeadm and Calico roles come with the next issue; this proves the lab and the bundle.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle.images import containerd_mirrors
from sensorstack.bundle.manifest import Manifest
from sensorstack.bundle.serve import BundleServer
from sensorstack.bundle.versions import load_versions
from sensorstack.lab import containers
from sensorstack.lab.node import host_sysctls
from tests.integration.ansible_module import ansible_environment

from .conftest import CLUSTER_INVENTORY, Node

pytestmark = pytest.mark.cluster

VERSIONS = load_versions()
KUBERNETES = VERSIONS["sensorstack_kubernetes_version"]
PACKAGE_VERSION = f"{KUBERNETES}-{VERSIONS['sensorstack_kubernetes_package_revision']}"
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"


@pytest.fixture(scope="module")
def host_sysctls_before() -> dict[str, str]:
    return host_sysctls()


@pytest.fixture(scope="module")
def node(
    lab_hosts: list[containers.LabHost], mirror: BundleServer, host_sysctls_before: dict[str, str]
) -> Iterator[Node]:
    [host] = [host for host in lab_hosts if host.inventory_name == "lab-cp1"]
    containers.remove(host.container)
    containers.start(host)
    yield Node(host.inventory_name, host.container)
    if not os.environ.get("SENSORSTACK_KEEP_LAB"):
        containers.remove(host.container)


def test_apt_installs_the_pinned_packages_from_the_signed_mirror(
    node: Node, mirror: BundleServer, manifest: Manifest
) -> None:
    mirrored = load_versions(overrides={"sensorstack_mirror": mirror.url})
    repo = mirrored["sensorstack_kubernetes_apt_url"]
    key_url = mirrored["sensorstack_kubernetes_apt_key_url"]
    # The node fetches the key itself (it reaches the host only through the lab gateway), then checks it as the
    # package role does: against the checksum that bundle.json records.
    fetch = f"import urllib.request, sys; sys.stdout.write(urllib.request.urlopen({key_url!r}).read().decode())"
    node.run("tee", f"{KEYRING}.new", stdin=node.run("python3", "-c", fetch))
    digest = node.run("sha256sum", f"{KEYRING}.new").split()[0]
    assert digest == manifest.find("key", "apt-signing-key").sha256
    node.run("mv", f"{KEYRING}.new", KEYRING)
    source = f"Types: deb\nURIs: {repo}\nSuites: /\nSigned-By: {KEYRING}\n"
    node.run("tee", "/etc/apt/sources.list.d/kubernetes.sources", stdin=source)
    update = node.run("apt-get", "update")
    # apt prints a flat repository as "<URL without its slash>  InRelease".
    assert f"{repo.rstrip('/')}  InRelease" in update, update
    packages = [f"{name}={PACKAGE_VERSION}" for name in ("kubeadm", "kubelet", "kubectl")]
    node.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", *packages, timeout=900)
    assert node.run("kubeadm", "version", "-o", "short").strip() == f"v{KUBERNETES}"
    policy = node.run("apt-cache", "policy", "kubeadm")
    assert f"*** {PACKAGE_VERSION} " in policy and repo.rstrip("/") in policy, policy
    # The unit and kubeadm's drop-in come from the package, as with pkgs.k8s.io.
    assert "10-kubeadm.conf" in node.run("systemctl", "cat", "kubelet")


def test_containerd_pulls_through_the_mirror(
    node: Node, mirror: BundleServer, manifest: Manifest, tmp_path: Path
) -> None:
    pause = manifest.find("image", "registry.k8s.io/pause")
    play = {
        "name": "Container runtime from Debian, every registry mirrored to the bundle",
        "hosts": node.name,
        "roles": [{"role": "sensorstack.iot.containerd"}],
        "vars": {
            "containerd_install_source": "distro",
            "containerd_sandbox_image": f"{pause.name}:{pause.version}",
            "containerd_registry_mirrors": containerd_mirrors(mirror.registry),
        },
    }
    playbook = tmp_path / "containerd.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    result = subprocess.run(
        ["ansible-playbook", "-i", str(CLUSTER_INVENTORY), str(playbook)],
        cwd=project_root(),
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    crictl = ("crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock")
    node.run(*crictl, "pull", f"{pause.name}:{pause.version}")
    listed = json.loads(node.run(*crictl, "images", "-o", "json"))
    digests = {digest for image in listed["images"] for digest in image.get("repoDigests", [])}
    assert f"{pause.name}@{pause.digest}" in digests, digests


KUBEADM_CONFIG = textwrap.dedent(
    """\
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: InitConfiguration
    localAPIEndpoint:
      advertiseAddress: {address}
    nodeRegistration:
      criSocket: unix:///run/containerd/containerd.sock
      ignorePreflightErrors:
        # cgroup v1 hosts: kubeadm's SystemVerification refuses them; the kubelet runs with failCgroupV1 false.
        - SystemVerification
    ---
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: ClusterConfiguration
    kubernetesVersion: v{version}
    controlPlaneEndpoint: {address}:6443
    networking:
      podSubnet: 10.244.0.0/16
      serviceSubnet: 10.96.0.0/12
    ---
    apiVersion: kubelet.config.k8s.io/v1beta1
    kind: KubeletConfiguration
    cgroupDriver: systemd
    failCgroupV1: false
    failSwapOn: false
    resolvConf: /etc/kubernetes/resolv.conf
    ---
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    conntrack:
      maxPerCore: 0
    """
)


def test_kubeadm_init_builds_a_control_plane_of_the_pinned_version(node: Node, mirror: BundleServer) -> None:
    address = node.sh("hostname -I | cut -d' ' -f1").strip()
    # The node's resolv.conf names Docker's 127.0.0.11, which CoreDNS would take for a loop: the kubelet gets the
    # lab gateway instead (nothing answers DNS there, and nothing in the lab needs outside names).
    resolver = f"nameserver {mirror.address}\n"
    node.run("install", "-D", "-m", "0644", "/dev/stdin", "/etc/kubernetes/resolv.conf", stdin=resolver)
    # Forwarding is per network namespace: the node's own, as the common role sets it on a host.
    node.run("tee", "/proc/sys/net/ipv4/ip_forward", stdin="1\n")
    node.run(
        "install",
        "-D",
        "-m",
        "0600",
        "/dev/stdin",
        "/etc/kubernetes/kubeadm-config.yaml",
        stdin=KUBEADM_CONFIG.format(address=address, version=KUBERNETES),
    )
    node.run("kubeadm", "config", "validate", "--config", "/etc/kubernetes/kubeadm-config.yaml")
    node.run("kubeadm", "init", "--config", "/etc/kubernetes/kubeadm-config.yaml", "--skip-token-print", timeout=900)
    kubectl = ("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf")
    nodes = json.loads(node.run(*kubectl, "get", "nodes", "-o", "json"))
    assert [item["metadata"]["name"] for item in nodes["items"]] == [node.name]
    assert nodes["items"][0]["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES}"
    version = json.loads(node.run(*kubectl, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == f"v{KUBERNETES}"


def test_the_host_kernel_settings_are_unchanged(node: Node, host_sysctls_before: dict[str, str]) -> None:
    assert host_sysctls() == host_sysctls_before
