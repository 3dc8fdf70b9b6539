"""Three control planes: two more control-plane nodes join the tier's running cluster through `site.yml` (the local
API load balancer on every node makes that possible without new certificates or kubeconfigs), then the first
control-plane node is stopped and the cluster goes on: the API answers, every other node stays Ready, and a new pod
is scheduled and runs. The stopped node is started again afterwards and the cluster is whole again. Then the
certificate renewal of role kubeadm_certificates runs on two control planes at once, as two timers that meet would:
every component of both restarts Ready with its new certificates, and no more than one etcd member is ever down.

Runs after test_cluster.py (which checks the 1 + 2 cluster as built) and leaves 3 + 2 nodes for the tests after it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from typing import Any

import pytest
import yaml

from sensorstack.bundle.versions import load_versions

from .conftest import CONTROL_PLANES, EXTRA_CONTROL_PLANES, KUBECTL, WORKERS, Cluster, Node

pytestmark = pytest.mark.cluster


def kubectl_json(node: Node, *arguments: str) -> Any:
    return json.loads(node.run(*KUBECTL, *arguments, "--output=json"))


def ready_nodes(node: Node) -> set[str]:
    return {
        item["metadata"]["name"]
        for item in kubectl_json(node, "get", "nodes")["items"]
        if {c["type"]: c["status"] for c in item["status"]["conditions"]}.get("Ready") == "True"
    }


def wait_for(description: str, check: Any, timeout: float = 600, interval: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"{description} not within {timeout:.0f} s (last: {last})")


def test_three_control_planes_run_stacked_etcd_behind_every_nodes_balancer(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    second = three_control_planes[1]
    nodes = kubectl_json(second, "get", "nodes")["items"]
    roles = {
        item["metadata"]["name"]
        for item in nodes
        if "node-role.kubernetes.io/control-plane" in item["metadata"].get("labels", {})
    }
    assert roles == {name for name, _ in CONTROL_PLANES}
    assert ready_nodes(second) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)}
    for item in nodes:
        assert item["status"]["nodeInfo"]["kubeletVersion"] == f"v{load_versions()['sensorstack_kubernetes_version']}"
    etcd = kubectl_json(second, "--namespace=kube-system", "get", "pods", "--selector=component=etcd")["items"]
    assert sorted(pod["spec"]["nodeName"] for pod in etcd) == sorted(name for name, _ in CONTROL_PLANES)
    # Every node's balancer lists every API server; the workers' kubelets reach the API through it.
    for node in [*three_control_planes, *cluster.workers]:
        config = node.run("cat", "/etc/haproxy/haproxy.cfg")
        backends = {line.split()[-1] for line in config.splitlines() if line.strip().startswith("server ")}
        assert backends == {f"{address}:6443" for _, address in CONTROL_PLANES}, node.name
        # kubeadm points a control plane's kubelet at its own API server, a worker's at the endpoint.
        kubelet = yaml.safe_load(node.run("cat", "/etc/kubernetes/kubelet.conf"))
        own = dict(CONTROL_PLANES).get(node.name)
        expected = f"https://{own}:6443" if own else "https://127.0.0.1:6444"
        assert kubelet["clusters"][0]["cluster"]["server"] == expected, node.name


def test_the_cluster_goes_on_without_its_first_control_plane(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    second = three_control_planes[1]
    subprocess.run(["docker", "stop", "--time=5", cluster.control_plane.container], check=True, capture_output=True)
    try:
        # The API answers through the balancers on the remaining nodes.
        assert second.run(*KUBECTL, "get", "--raw", "/readyz").strip() == "ok"
        # The worker's balancer retries a connection to the stopped node on another one (option redispatch); its
        # health checks take the node out within a few seconds.
        worker_readyz = ("kubectl", "--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "--raw", "/readyz")
        wait_for(
            "the API answering the worker through its balancer",
            lambda: cluster.workers[0].run(*worker_readyz, check=False, timeout=30).strip() == "ok",
            timeout=60,
        )
        wait_for(
            "the stopped node marked NotReady and the others Ready",
            lambda: ready_nodes(second) == {name for name, _ in (*EXTRA_CONTROL_PLANES, *WORKERS)},
            timeout=300,
        )
        # A new pod needs the scheduler and the controllers, whose leaders may have run on the stopped node.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ha-probe", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "main",
                        "image": load_versions()["sensorstack_mosquitto_image"],
                        "command": ["sleep", "600"],
                    }
                ],
            },
        }
        second.run(*KUBECTL, "apply", "--filename=-", stdin=yaml.safe_dump(pod))
        second.run(*KUBECTL, "wait", "--for=condition=Ready", "pod/ha-probe", "--timeout=300s", timeout=330)
        placed = kubectl_json(second, "get", "pod", "ha-probe")["spec"]["nodeName"]
        assert placed in {name for name, _ in WORKERS}
        second.run(*KUBECTL, "delete", "pod", "ha-probe", "--wait=false")
    finally:
        subprocess.run(["docker", "start", cluster.control_plane.container], check=True, capture_output=True)
    wait_for(
        "every node Ready again",
        lambda: ready_nodes(second) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)},
        timeout=600,
    )


RENEWAL = ("/usr/local/sbin/kubeadm-certificates-renew", "400")  # a threshold above a year: renews now
RESTARTED = [
    f"{component}: restarted with the new certificates, Ready"
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
]


def etcd_members_not_ready(node: Node) -> set[str]:
    pods = kubectl_json(node, "--namespace=kube-system", "get", "pods", "--selector=component=etcd")["items"]
    return {
        pod["metadata"]["name"]
        for pod in pods
        if {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}.get("Ready") != "True"
    }


def apiserver_serials(node: Node) -> tuple[str, str]:
    """The serial of the API server's certificate on disk, and of the one it serves."""
    on_disk = node.run("openssl", "x509", "-in", "/etc/kubernetes/pki/apiserver.crt", "-noout", "-serial")
    served = node.sh("openssl s_client -connect 127.0.0.1:6443 </dev/null 2>/dev/null | openssl x509 -noout -serial")
    return on_disk.strip(), served.strip()


def test_renewals_that_meet_on_two_control_planes_restart_one_etcd_member_at_a_time(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    first, second, third = three_control_planes
    before = {node.name: apiserver_serials(node) for node in (second, third)}
    not_ready: list[set[str]] = []
    watching = threading.Event()
    watching.set()

    def watch() -> None:
        while watching.is_set():
            # An answer missed is not a member down.
            with contextlib.suppress(AssertionError, subprocess.SubprocessError, ValueError):
                not_ready.append(etcd_members_not_ready(first))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    renewals: dict[str, subprocess.Popen[str]] = {}
    try:
        renewals[second.name] = subprocess.Popen(
            ["docker", "exec", second.container, *RENEWAL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        # The second renewal starts while the first one's etcd member is down: the moment the two must not meet.
        wait_for(
            "the first renewal's etcd member restarting",
            lambda: bool(not_ready and not_ready[-1]) or renewals[second.name].poll() is not None,
            timeout=300,
            interval=0.5,
        )
        assert renewals[second.name].poll() is None, "the first renewal ended before its etcd member was seen down"
        renewals[third.name] = subprocess.Popen(
            ["docker", "exec", third.container, *RENEWAL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        outputs = {name: renewal.communicate(timeout=1200)[0] for name, renewal in renewals.items()}
    finally:
        for renewal in renewals.values():
            if renewal.poll() is None:
                renewal.kill()
        watching.clear()
        watcher.join()
    for name, renewal in renewals.items():
        assert renewal.returncode == 0, f"{name}: {outputs[name]}"
        assert [line for line in outputs[name].splitlines() if line.endswith(", Ready")] == RESTARTED, outputs[name]
    assert max(len(members) for members in not_ready) == 1, [members for members in not_ready if members]
    # Each API server serves its new certificate.
    for node in (second, third):
        on_disk, served = apiserver_serials(node)
        assert on_disk == served != before[node.name][1], node.name
    wait_for(
        "every node Ready after the renewals",
        lambda: ready_nodes(first) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)},
        timeout=300,
    )
