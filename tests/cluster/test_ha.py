"""Three control planes: two more control-plane nodes join the tier's running cluster through `site.yml` (the local
API load balancer on every node makes that possible without new certificates or kubeconfigs), then the first
control-plane node is stopped and the cluster goes on: the API answers, every other node stays Ready, and a new pod
is scheduled and runs. The stopped node is started again afterwards and the cluster is whole again. Then the
certificate renewal of role kubeadm_certificates on one control plane: postponed while another one's etcd member is
down (its restart helper waits for that member), postponed while another one holds the renewal Lease, then every
component restarted with its new certificates.

Runs after test_cluster.py (which checks the 1 + 2 cluster as built) and leaves 3 + 2 nodes for the tests after it.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
import yaml

from sensorstack.bundle.versions import load_versions

from .conftest import (
    CONTROL_PLANES,
    EXTRA_CONTROL_PLANES,
    KUBECTL,
    RENEWAL_LEASE,
    WORKERS,
    Cluster,
    Node,
    renewal_lease_held,
    renewal_lease_holder,
    wait_for,
)

pytestmark = pytest.mark.cluster


def kubectl_json(node: Node, *arguments: str) -> Any:
    return json.loads(node.run(*KUBECTL, *arguments, "--output=json"))


def ready_nodes(node: Node) -> set[str]:
    return {
        item["metadata"]["name"]
        for item in kubectl_json(node, "get", "nodes")["items"]
        if {c["type"]: c["status"] for c in item["status"]["conditions"]}.get("Ready") == "True"
    }


def why_not_ready(node: Node, pod: str) -> str:
    """What a pod that does not come up shows: its description with events, the cluster's latest events, every
    pod's placement and the API servers the Service kubernetes still lists."""
    report = [
        node.run(*KUBECTL, "describe", "pod", pod, check=False),
        node.run(*KUBECTL, "get", "events", "--all-namespaces", "--sort-by=.lastTimestamp", check=False)[-6000:],
        node.run(*KUBECTL, "get", "pods", "--all-namespaces", "--output=wide", check=False),
        node.run(*KUBECTL, "get", "endpointslices", "--namespace=default", "--output=wide", check=False),
    ]
    return "\n".join(report)


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
    # Every node's balancer lists every API server; the workers' kubelets reach the API through it. Only its master
    # process keeps root.
    for node in [*three_control_planes, *cluster.workers]:
        users = node.sh(
            'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" != haproxy ] || stat -c %U "$p"; done'
        )
        assert set(users.split()) == {"root", "haproxy"}, f"{node.name}: haproxy runs as {users.split()}"
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
        waited = second.run(
            *KUBECTL, "wait", "--for=condition=Ready", "pod/ha-probe", "--timeout=300s", check=False, timeout=330
        )
        assert "condition met" in waited, f"the pod ha-probe is not Ready:\n{why_not_ready(second, 'ha-probe')}"
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
RESTART = "/usr/local/sbin/kubeadm-restart-components"
RESTARTED = (
    "etcd: restarted with the new certificates, answering at http://127.0.0.1:2381/readyz",
    "kube-apiserver: restarted with the new certificates, answering at https://127.0.0.1:6443/readyz",
    "kube-controller-manager: restarted with the new certificates, answering at https://127.0.0.1:10257/healthz",
    "kube-scheduler: restarted with the new certificates, answering at https://127.0.0.1:10259/healthz",
)
CRICTL = ("crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock")
# How long the test keeps a member down while the restart of etcd waits: well above what the helper takes to reach
# it, and with the rest of the pause below the 50 s the cluster gives a silent node before it marks it NotReady.
MEMBER_DOWN = 25


def etcd_container(node: Node) -> str:
    return node.run(*CRICTL, "ps", "--quiet", "--state", "running", "--name", "^etcd$").strip()


def apiserver_serials(node: Node) -> tuple[str, str]:
    """The serial of the API server's certificate on disk, and of the one it serves."""
    on_disk = node.run("openssl", "x509", "-in", "/etc/kubernetes/pki/apiserver.crt", "-noout", "-serial")
    served = node.sh("openssl s_client -connect 127.0.0.1:6443 </dev/null 2>/dev/null | openssl x509 -noout -serial")
    return on_disk.strip(), served.strip()


# What a node's haproxy says of one API server, through the master CLI that Debian's and Ubuntu's haproxy unit opens
# ("@1": its worker): its state, and the ages in seconds of the client sessions it carries there (health checks are
# not sessions). `show stat` names the server of an address, `show sess` gives each session's server and age.
BALANCER_STATE = """
import csv, io, re, socket, sys
def ask(command):
    cli = socket.socket(socket.AF_UNIX)
    cli.connect("/run/haproxy-master.sock")
    cli.sendall(b"@1 " + command + b"\\n")
    cli.shutdown(socket.SHUT_WR)
    return cli.makefile().read()
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
for row in csv.DictReader(io.StringIO(ask(b"show stat").lstrip("# "))):
    if row["addr"] == sys.argv[1]:
        ages = [
            sum(int(n) * UNITS[unit] for n, unit in re.findall(r"(\\d+)([dhms])", line.split(" age=")[1].split()[0]))
            for line in ask(b"show sess").splitlines()
            if f" srv={row['svname']} " in line and " age=" in line
        ]
        print(row["status"], *ages, sep="|")
"""


def watch_own_node(node: Node) -> tuple[str, ...]:
    """A client that holds one connection through the node's balancer: a watch of its own Node with the kubelet's
    credentials (the only Node they may read), as the kubelet keeps one."""
    path = f"/api/v1/nodes?watch=true&fieldSelector=metadata.name%3D{node.name}"
    return ("kubectl", "--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "--raw", path)


def balancer_state(node: Node, api_server: str) -> tuple[str, list[int]]:
    """haproxy's state of the API server ("UP", "UP 1/3" while checks fail, "DOWN"), and the ages in seconds of its
    client sessions there."""
    status, *ages = node.run("python3", "-c", BALANCER_STATE, api_server, timeout=30).strip().split("|")
    return status, [int(age) for age in ages]


def no_session_since(node: Node, api_server: str, since: float) -> bool:
    """The balancer holds no session on the API server that was already open at `since` (a time.monotonic();
    haproxy rounds an age down to whole seconds)."""
    ages = balancer_state(node, api_server)[1]
    older = [age for age in ages if age > int(time.monotonic() - since) + 1]
    assert not older, f"ages of its sessions there: {ages}"
    return True


def balancers_marked_down(nodes: list[Node], api_server: str) -> bool:
    states = {node.name: balancer_state(node, api_server) for node in nodes}
    assert all(status == "DOWN" for status, _ in states.values()), f"(state, session ages) of each balancer: {states}"
    return True


def test_while_an_etcd_member_is_down_the_renewal_waits_and_the_restart_of_etcd_too(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    """Another control plane's etcd member down (its node paused), as when its own renewal restarts it: the renewal
    on the third postpones itself (its certificates have months left) and changes nothing, and the restart helper,
    which a renewal close to expiry or a role run reaches, waits with this node's member running until the other one
    is back, then restarts it.

    A paused node is also a node that hangs: its kernel keeps every connection open while nothing answers. The other
    nodes' balancers mark its API server down, and the renewal runs only then, its reads of the cluster's
    configuration kept off the paused API server. Marked down, a balancer cuts the sessions it held there
    (on-marked-down shutdown-sessions), so their clients reconnect through the other API servers: none of the
    worker's sessions opened before the pause is left. Sessions opened while the server hung, before it was marked
    down, are not counted: in two CI runs Debian 13's haproxy 3.0.11 still held sessions there once it had marked
    the server down, and their count alone could not tell when they were opened (haproxy's ages can)."""
    _, second, third = three_control_planes
    etcd_before, certificate_before = etcd_container(third), apiserver_serials(third)[0]
    api_server = f"{dict(CONTROL_PLANES)[second.name]}:6443"
    others = [node for node in (*three_control_planes, *cluster.workers) if node != second]
    worker = cluster.workers[0]
    # Four watches through the worker's balancer: round robin gives the second control plane at least one.
    watches = [
        subprocess.Popen(
            ["docker", "exec", worker.container, "timeout", "120", *watch_own_node(worker)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(4)
    ]
    restart: subprocess.Popen[str] | None = None
    try:
        wait_for(
            f"a session of 2 s or more on {api_server} through {worker.name}'s balancer",
            lambda: max(balancer_state(worker, api_server)[1], default=0) >= 2,
            timeout=30,
            interval=1,
        )
        paused_at = time.monotonic()
        subprocess.run(["docker", "pause", second.container], check=True, capture_output=True)
        # 3 failed checks 2 s apart, each given 2 s: down within about 14 s. Waiting for it keeps the renewal's reads
        # of the cluster's configuration off the paused API server.
        wait_for(
            f"every other node's balancer marking {api_server} down",
            lambda: balancers_marked_down(others, api_server),
            timeout=30,
            interval=1,
        )
        wait_for(
            f"{worker.name}'s balancer cutting its sessions on {api_server} from before the pause",
            lambda: no_session_since(worker, api_server, paused_at),
            timeout=10,
            interval=1,
        )
        renewal = third.sh(f"{' '.join(RENEWAL)} 2>&1 && echo exit 0 || echo exit $?", timeout=300)
        assert "renewal postponed: etcd has a member that is not healthy" in renewal, renewal
        assert renewal.rstrip().endswith("exit 1"), renewal
        assert apiserver_serials(third)[0] == certificate_before
        restart = subprocess.Popen(
            ["docker", "exec", third.container, RESTART, "etcd"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(MEMBER_DOWN)
        waiting = restart.poll() is None
        etcd_while_down = etcd_container(third)
    finally:
        subprocess.run(["docker", "unpause", second.container], check=False, capture_output=True)
        for watch in watches:
            watch.kill()
    assert restart is not None
    try:
        output = restart.communicate(timeout=600)[0]
    finally:
        if restart.poll() is None:
            restart.kill()
    assert waiting and etcd_while_down == etcd_before, "etcd restarted while another member was down:\n" + output
    assert "etcd: waiting until every member is healthy" in output, output
    assert restart.returncode == 0, output
    assert RESTARTED[0] in output.splitlines(), output
    assert etcd_container(third) not in ("", etcd_before)


def test_while_another_control_plane_holds_the_renewal_lease_the_renewal_waits(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    """The second control plane holds the Lease, as while its own renewal runs: the renewal on the third, whose
    certificates have months left, postpones itself and changes nothing."""
    _, second, third = three_control_planes
    with renewal_lease_held(second, second.name):
        certificate_before = apiserver_serials(third)[0]
        renewal = third.sh(f"{' '.join(RENEWAL)} 2>&1 && echo exit 0 || echo exit $?", timeout=300)
        assert f"renewal postponed: {second.name} holds the Lease kube-system/{RENEWAL_LEASE}" in " ".join(
            renewal.split()
        )
        assert renewal.rstrip().endswith("exit 1"), renewal
        assert apiserver_serials(third)[0] == certificate_before
        assert renewal_lease_holder(second) == second.name


def test_a_renewal_restarts_every_component_with_its_new_certificate(
    cluster: Cluster, three_control_planes: list[Node]
) -> None:
    third = three_control_planes[2]
    wait_for(
        "every node Ready before the renewal",
        lambda: ready_nodes(cluster.control_plane) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)},
        timeout=300,
    )
    served_before = apiserver_serials(third)[1]
    result = subprocess.run(
        ["docker", "exec", third.container, *RENEWAL], capture_output=True, text=True, timeout=1200, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert tuple(line for line in output.splitlines() if line.endswith(("readyz", "healthz"))) == RESTARTED, output
    # The API server serves its new certificate, and the renewal's Lease is released for the next control plane.
    on_disk, served = apiserver_serials(third)
    assert on_disk == served != served_before
    assert renewal_lease_holder(third) == ""
    wait_for(
        "every node Ready after the renewal",
        lambda: ready_nodes(cluster.control_plane) == {name for name, _ in (*CONTROL_PLANES, *WORKERS)},
        timeout=300,
    )
