"""A two-node cluster built by the collection's roles from the served bundle: kubeadm_control_plane, kubeadm_join
and calico.

One control-plane node and one worker of this module's own (``sensorstack-test-cpc-*`` containers, fixed addresses)
get containerd and the Kubernetes packages, the control plane is initialised by kubeadm_control_plane, the worker
joins it with kubeadm_join, and the calico role installs the pod network. The tests then check what a user checks
after a deploy: both nodes Ready, CoreDNS running, the IP pool is kubeadm's podSubnet, a pod on the worker talks to a
pod on the control plane and resolves ``kubernetes.default``; the admin kubeconfig on the controller reaches the API
server; a second run changes nothing; the refusals stop before any change; the host's kernel settings are untouched.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64decode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle.images import containerd_mirrors
from sensorstack.bundle.manifest import read_manifest
from sensorstack.bundle.serve import BundleServer
from sensorstack.bundle.versions import load_versions
from sensorstack.lab import containers
from sensorstack.lab.node import host_sysctls
from tests.integration.ansible_module import ansible_environment

from .conftest import CLUSTER_INVENTORY, Node

pytestmark = pytest.mark.cluster

VERSIONS = load_versions()
KUBERNETES = VERSIONS["sensorstack_kubernetes_version"]
POD_CIDR = yaml.safe_load((project_root() / "roles/sensorstack/defaults/main/main.yml").read_text())[
    "sensorstack_pod_cidr"
]
# Ports of this module's own bundle server, apart from the cluster tier's (18080/15000) and `bundle serve`'s.
HTTP_PORT = 28080
REGISTRY_PORT = 25000
CONTROL_PLANE = ("cpc-cp1", "10.213.0.53")
WORKER = ("cpc-worker1", "10.213.0.54")
KUBECTL = ("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf")
# Every step may pull images or packages through the mirror on a loaded two-core machine.
PLAYBOOK_TIMEOUT = 3600


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        counters = {}
        for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, flags=re.MULTILINE):
            counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", fields)}
        return counters

    def tail(self, characters: int = 6000) -> str:
        return self.output[-characters:]


@dataclass
class Cluster:
    control_plane: Node
    worker: Node
    inventory: Path
    directory: Path
    timings: dict[str, float] = field(default_factory=dict)

    def playbook(self, name: str, plays: list[dict[str, Any]], *extra: str) -> PlaybookRun:
        path = self.directory / f"{name}.yml"
        path.write_text(yaml.safe_dump(plays, sort_keys=False))
        started = time.monotonic()
        result = subprocess.run(
            ["ansible-playbook", "-i", str(self.inventory), str(path), *extra],
            cwd=project_root(),
            # Facts of these throwaway hosts stay in memory, away from the lab's shared fact cache.
            env=ansible_environment(ANSIBLE_CACHE_PLUGIN="memory"),
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT,
            check=False,
        )
        return PlaybookRun(result.returncode, result.stdout + result.stderr, time.monotonic() - started)

    def kubectl_json(self, *arguments: str) -> Any:
        return json.loads(self.control_plane.run(*KUBECTL, *arguments, "--output=json"))


def lab_inventory(mirror: BundleServer, key_checksum: str) -> dict[str, Any]:
    """The cluster lab's own settings (its group_vars), and what the new roles need on cgroup v1 containers that
    share the host's kernel."""
    lab_settings = yaml.safe_load((CLUSTER_INVENTORY / "group_vars/all.yml").read_text())

    def host(name: str, address: str) -> dict[str, Any]:
        return {name: {"ansible_host": f"{containers.TEST_CONTAINER_PREFIX}{name}", "sensorstack_node_ip": address}}

    return {
        "all": {
            "vars": {
                **lab_settings,
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
                "sensorstack_mirror": mirror.url,
                "sensorstack_kubernetes_apt_key_checksum": key_checksum,
                "containerd_sandbox_image": "registry.k8s.io/pause:3.10.1",
                "containerd_registry_mirrors": containerd_mirrors(mirror.registry),
                # The host runs cgroup v1, which kubeadm's SystemVerification and the kubelet refuse by default.
                "kubeadm_control_plane_ignore_preflight_errors": ["SystemVerification"],
                "kubeadm_control_plane_kubelet_fail_cgroup_v1": False,
                "kubeadm_control_plane_kubelet_fail_swap_on": False,
                # The nodes' resolv.conf names Docker's 127.0.0.11, a loop for CoreDNS (written by the prepare play).
                "kubeadm_control_plane_kubelet_resolv_conf": "/etc/kubernetes/resolv.conf",
                # The nodes share the host's kernel: kube-proxy must leave its conntrack table size alone.
                "kubeadm_control_plane_kube_proxy_conntrack_max_per_core": 0,
                "kubeadm_control_plane_health_check_timeout": "10m0s",
                "kubeadm_join_ignore_preflight_errors": ["SystemVerification"],
                "kubeadm_join_tls_bootstrap_timeout": "10m0s",
                "calico_ip_autodetection_method": "cidr=10.213.0.0/24",
                "calico_wait_timeout": 900,
            },
            "children": {
                "sensorstack": {
                    "children": {
                        "control_plane": {"hosts": host(*CONTROL_PLANE)},
                        "workers": {"hosts": host(*WORKER)},
                    }
                }
            },
        }
    }


def prepare_play(resolver: str) -> dict[str, Any]:
    """What the common role and the lab image leave to the site on these nodes (see the module's report)."""
    return {
        "name": "Prepare the lab nodes: forwarding in their own network namespace, a resolver off loopback",
        "hosts": "sensorstack",
        "tasks": [
            {
                "name": "Ensure sysctl is installed, as the common role installs it",
                "ansible.builtin.apt": {"name": "procps", "update_cache": True, "cache_valid_time": 3600},
            },
            {
                "name": "Ensure the node forwards IPv4 packets",
                "ansible.posix.sysctl": {
                    "name": "net.ipv4.ip_forward",
                    "value": "1",
                    "sysctl_file": "/etc/sysctl.d/90-lab-forward.conf",
                    "sysctl_set": True,
                },
            },
            {
                "name": "Ensure the kubelet's directory exists",
                "ansible.builtin.file": {"path": "/etc/kubernetes", "state": "directory", "mode": "0755"},
            },
            {
                "name": "Ensure the kubelet's resolv.conf names the lab gateway",
                "ansible.builtin.copy": {
                    "content": f"nameserver {resolver}\n",
                    "dest": "/etc/kubernetes/resolv.conf",
                    "mode": "0644",
                },
            },
        ],
    }


NODE_PLAYS = [
    {
        "name": "Container runtime and Kubernetes packages on every node",
        "hosts": "sensorstack",
        "roles": [{"role": "sensorstack.iot.containerd"}, {"role": "sensorstack.iot.kubernetes_packages"}],
    }
]
CONTROL_PLANE_PLAYS = [
    {
        "name": "Initialise the control plane",
        "hosts": "control_plane[0]",
        "roles": [{"role": "sensorstack.iot.kubeadm_control_plane"}],
    }
]
JOIN_PLAYS = [
    {
        "name": "Join the workers",
        "hosts": "workers",
        "roles": [{"role": "sensorstack.iot.kubeadm_join"}],
    }
]
NETWORK_PLAYS = [
    {
        "name": "Install the pod network",
        "hosts": "control_plane[0]",
        "roles": [{"role": "sensorstack.iot.calico"}],
    }
]


@pytest.fixture(scope="module")
def host_sysctls_before() -> dict[str, str]:
    return host_sysctls()


@pytest.fixture(scope="module")
def cluster(bundle: Path, host_sysctls_before: dict[str, str]) -> Iterator[Cluster]:
    manifest = read_manifest(bundle)
    key_checksum = f"sha256:{manifest.find('key', 'apt-signing-key').sha256}"
    hosts = [
        containers.LabHost(name, f"{containers.TEST_CONTAINER_PREFIX}{name}", "debian13-node", address=address)
        for name, address in (CONTROL_PLANE, WORKER)
    ]
    containers.ensure_network()
    server = BundleServer(bundle, containers.network_gateway(), HTTP_PORT, REGISTRY_PORT)
    with tempfile.TemporaryDirectory(prefix="sensorstack-cpc-") as temporary, server:
        directory = Path(temporary)
        inventory = directory / "hosts.yml"
        inventory.write_text(yaml.safe_dump(lab_inventory(server, key_checksum), sort_keys=False))
        try:
            for host in hosts:
                containers.remove(host.container)
                containers.start(host)
            built = Cluster(
                Node(CONTROL_PLANE[0], hosts[0].container), Node(WORKER[0], hosts[1].container), inventory, directory
            )
            stages = [
                ("nodes", [prepare_play(server.address), *NODE_PLAYS]),
                ("control plane", CONTROL_PLANE_PLAYS),
                ("join", JOIN_PLAYS),
                ("network", NETWORK_PLAYS),
            ]
            for name, plays in stages:
                run = built.playbook(name.replace(" ", "_"), plays)
                built.timings[name] = run.seconds
                assert run.returncode == 0, f"stage {name} failed:\n{run.tail()}"
            print(f"\ncluster built: {', '.join(f'{name} {seconds:.0f} s' for name, seconds in built.timings.items())}")
            yield built
        finally:
            if not os.environ.get("SENSORSTACK_KEEP_CLUSTER"):
                for host in hosts:
                    containers.remove(host.container)


def test_both_nodes_are_ready_at_the_pinned_version(cluster: Cluster) -> None:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    assert sorted(node["metadata"]["name"] for node in nodes) == sorted([CONTROL_PLANE[0], WORKER[0]])
    for node in nodes:
        ready = {condition["type"]: condition["status"] for condition in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES}"
    addresses = {
        node["metadata"]["name"]: {a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"}
        for node in nodes
    }
    assert addresses == {CONTROL_PLANE[0]: {CONTROL_PLANE[1]}, WORKER[0]: {WORKER[1]}}


def test_kubeadm_built_the_cluster_from_the_rendered_configuration(cluster: Cluster) -> None:
    config = cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kubeadm-config")
    cluster_configuration = yaml.safe_load(config["data"]["ClusterConfiguration"])
    assert cluster_configuration["controlPlaneEndpoint"] == f"{CONTROL_PLANE[1]}:6443"
    assert cluster_configuration["networking"]["podSubnet"] == POD_CIDR
    assert cluster_configuration["kubernetesVersion"] == f"v{KUBERNETES}"
    proxy = cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kube-proxy")
    proxy_configuration = yaml.safe_load(proxy["data"]["config.conf"])
    assert proxy_configuration["mode"] == "iptables"
    assert proxy_configuration["conntrack"]["maxPerCore"] == 0
    kubelet = cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kubelet-config")
    assert yaml.safe_load(kubelet["data"]["kubelet"])["resolvConf"] == "/etc/kubernetes/resolv.conf"
    taints = cluster.kubectl_json("get", "node", CONTROL_PLANE[0])["spec"].get("taints", [])
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in taints


def test_calico_and_coredns_run_on_the_nodes(cluster: Cluster) -> None:
    calico = cluster.kubectl_json("--namespace=kube-system", "get", "pods", "--selector=k8s-app=calico-node")
    ready_on = {
        pod["spec"]["nodeName"]
        for pod in calico["items"]
        if all(status["ready"] for status in pod["status"].get("containerStatuses", []))
    }
    assert ready_on == {CONTROL_PLANE[0], WORKER[0]}
    coredns = cluster.kubectl_json("--namespace=kube-system", "get", "pods", "--selector=k8s-app=kube-dns")
    assert coredns["items"] and {pod["status"]["phase"] for pod in coredns["items"]} == {"Running"}


def test_the_ip_pool_is_kubeadms_pod_network_with_vxlan(cluster: Cluster) -> None:
    pools = cluster.kubectl_json("get", "ippools.crd.projectcalico.org")["items"]
    assert [(pool["spec"]["cidr"], pool["spec"]["vxlanMode"]) for pool in pools] == [(POD_CIDR, "Always")]
    # The manifest's images, pulled through the mirror under their upstream names.
    daemonset = cluster.kubectl_json("--namespace=kube-system", "get", "daemonset", "calico-node")
    images = {c["image"] for c in daemonset["spec"]["template"]["spec"]["containers"]}
    assert images == {f"quay.io/calico/node:v{VERSIONS['sensorstack_calico_version']}"}


def broker_pods(mosquitto_image: str) -> str:
    """A broker on the control plane (tolerating its taint) and a client on the worker, both from the bundle."""
    server_command = "printf 'listener 1883\\nallow_anonymous true\\n' > /tmp/m.conf && exec mosquitto -c /tmp/m.conf"
    pods = []
    for name, node, command in (
        ("cpc-broker", CONTROL_PLANE[0], ["sh", "-c", server_command]),
        ("cpc-client", WORKER[0], ["sleep", "infinity"]),
    ):
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": mosquitto_image, "command": command}],
                },
            }
        )
    return yaml.safe_dump_all(pods)


@pytest.fixture(scope="module")
def pod_pair(cluster: Cluster) -> dict[str, Any]:
    image = VERSIONS["sensorstack_mosquitto_image"]
    cluster.control_plane.run(*KUBECTL, "apply", "--filename=-", stdin=broker_pods(image))
    cluster.control_plane.run(
        *KUBECTL, "wait", "--for=condition=Ready", "pod/cpc-broker", "pod/cpc-client", "--timeout=600s", timeout=700
    )
    return {pod["metadata"]["name"]: pod for pod in cluster.kubectl_json("get", "pods")["items"]}


def test_a_pod_on_the_worker_reaches_a_pod_on_the_control_plane(cluster: Cluster, pod_pair: dict[str, Any]) -> None:
    broker, client = pod_pair["cpc-broker"], pod_pair["cpc-client"]
    assert (broker["spec"]["nodeName"], client["spec"]["nodeName"]) == (CONTROL_PLANE[0], WORKER[0])
    address = broker["status"]["podIP"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(POD_CIDR), address
    exec_client = (*KUBECTL, "exec", "cpc-client", "--")
    # MQTT across the nodes: a retained message published to the broker's pod address comes back to a subscriber.
    cluster.control_plane.run(*exec_client, "mosquitto_pub", "-h", address, "-t", "cpc/probe", "-m", "hello", "-r")
    received = cluster.control_plane.run(
        *exec_client, "mosquitto_sub", "-h", address, "-t", "cpc/probe", "-C", "1", "-W", "30"
    )
    assert received.strip() == "hello"


def test_a_pod_resolves_the_kubernetes_service(cluster: Cluster, pod_pair: dict[str, Any]) -> None:
    service = cluster.kubectl_json("get", "service", "kubernetes")["spec"]["clusterIP"]
    resolved = cluster.control_plane.run(*KUBECTL, "exec", "cpc-client", "--", "getent", "hosts", "kubernetes.default")
    assert resolved.split()[0] == service, resolved


def test_the_admin_kubeconfig_on_the_controller_reaches_the_api_server(cluster: Cluster) -> None:
    path = cluster.directory / "artifacts/admin.conf"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    assert server == f"https://{CONTROL_PLANE[1]}:6443"
    user = config["users"][0]["user"]
    credentials = cluster.directory / "client.pem"
    credentials.write_bytes(b64decode(user["client-certificate-data"]) + b64decode(user["client-key-data"]))
    credentials.chmod(0o600)
    authority = b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=authority)
    context.load_cert_chain(credentials)
    with urllib.request.urlopen(f"{server}/version", context=context, timeout=30) as answer:
        assert json.load(answer)["gitVersion"] == f"v{KUBERNETES}"


def test_a_second_run_changes_nothing(cluster: Cluster) -> None:
    plays = [prepare_play(containers.network_gateway()), *NODE_PLAYS, *CONTROL_PLANE_PLAYS, *JOIN_PLAYS, *NETWORK_PLAYS]
    run = cluster.playbook("second_run", plays)
    cluster.timings["second run"] = run.seconds
    print(f"\nsecond run: {run.seconds:.0f} s")
    assert run.returncode == 0, run.tail()
    recap = run.recap()
    assert set(recap) == {CONTROL_PLANE[0], WORKER[0]}
    assert {host: counters["changed"] for host, counters in recap.items()} == {CONTROL_PLANE[0]: 0, WORKER[0]: 0}, (
        run.tail()
    )


def test_check_mode_on_the_built_cluster_reports_no_change(cluster: Cluster) -> None:
    plays = [prepare_play(containers.network_gateway()), *NODE_PLAYS, *CONTROL_PLANE_PLAYS, *JOIN_PLAYS, *NETWORK_PLAYS]
    run = cluster.playbook("check_mode", plays, "--check")
    assert run.returncode == 0, run.tail()
    assert {host: counters["changed"] for host, counters in run.recap().items()} == {
        CONTROL_PLANE[0]: 0,
        WORKER[0]: 0,
    }, run.tail()


@pytest.mark.parametrize(
    ("role", "settings", "message"),
    [
        ("calico", {"calico_encapsulation": "IPIP"}, "calico_encapsulation IPIP needs BGP"),
        ("calico", {"calico_encapsulation": "None"}, "calico_encapsulation None needs BGP"),
        (
            "kubeadm_control_plane",
            {"kubeadm_control_plane_ignore_preflight_errors": ["SystemVerification", "all"]},
            "kubeadm_control_plane_ignore_preflight_errors contains",
        ),
        (
            "kubeadm_join",
            {"kubeadm_join_ignore_preflight_errors": ["all"]},
            "kubeadm_join_ignore_preflight_errors contains",
        ),
    ],
)
def test_refused_settings_stop_the_role_before_any_change(
    cluster: Cluster, role: str, settings: dict[str, Any], message: str
) -> None:
    hosts = "workers" if role == "kubeadm_join" else "control_plane[0]"
    plays = [{"name": "Refused settings", "hosts": hosts, "roles": [{"role": f"sensorstack.iot.{role}"}]}]
    run = cluster.playbook(f"refused_{role}", plays, "--extra-vars", json.dumps(settings))
    assert run.returncode != 0
    # The callback may fold a long message over several lines.
    assert message in " ".join(run.output.split()), run.tail()
    assert [counters["changed"] for counters in run.recap().values()] == [0]


def test_the_host_kernel_settings_are_unchanged(cluster: Cluster, host_sysctls_before: dict[str, str]) -> None:
    assert host_sysctls() == host_sysctls_before
