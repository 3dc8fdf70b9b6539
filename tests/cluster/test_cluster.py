"""The cluster `site.yml` builds: a control plane and two workers from the served bundle (kubernetes_packages,
containerd, kubeadm_control_plane, kubeadm_join, calico), checked the way a user checks a deploy: every node Ready
at the pinned version, CoreDNS running, the IP pool is kubeadm's podSubnet, a pod on one worker talks to a pod on
the other and resolves ``kubernetes.default``; the admin kubeconfig on the controller reaches the API server; a
second run and a check-mode run change nothing; the running pool's encapsulation changes only when allowed; bad
settings stop in preflight before any host changes; the firewall lets in the API and drops what it does not open; the
host's kernel settings are untouched.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import stat
import urllib.request
from base64 import b64decode
from typing import Any

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle.versions import load_versions
from sensorstack.lab.node import host_sysctls

from .conftest import CONTROL_PLANE, WORKERS, Cluster

pytestmark = pytest.mark.cluster

VERSIONS = load_versions()
KUBERNETES = VERSIONS["sensorstack_kubernetes_version"]
PACKAGE_VERSION = f"{KUBERNETES}-{VERSIONS['sensorstack_kubernetes_package_revision']}"
SETTINGS = yaml.safe_load((project_root() / "roles/sensorstack/defaults/main/main.yml").read_text())
POD_CIDR = SETTINGS["sensorstack_pod_cidr"]
ADDRESSES = dict([CONTROL_PLANE, *WORKERS])


def test_every_node_is_ready_at_the_pinned_version_with_its_address(cluster: Cluster) -> None:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    assert sorted(node["metadata"]["name"] for node in nodes) == sorted(ADDRESSES)
    for node in nodes:
        ready = {condition["type"]: condition["status"] for condition in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES}"
    addresses = {
        node["metadata"]["name"]: {a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"}
        for node in nodes
    }
    assert addresses == {name: {address} for name, address in ADDRESSES.items()}


def test_the_packages_come_from_the_signed_mirror_and_stay_held(cluster: Cluster) -> None:
    worker = cluster.workers[0]
    policy = worker.run("apt-cache", "policy", "kubeadm")
    mirrored = load_versions(overrides={"sensorstack_mirror": f"http://{_gateway(cluster)}:28080"})
    assert f"*** {PACKAGE_VERSION} " in policy and mirrored["sensorstack_kubernetes_apt_url"].rstrip("/") in policy
    assert set(worker.run("apt-mark", "showhold").split()) >= {"kubeadm", "kubelet", "kubectl"}


def _gateway(cluster: Cluster) -> str:
    return str(yaml.safe_load(cluster.inventory.read_text())["all"]["vars"]["lab_gateway"])


def test_kubeadm_built_the_cluster_from_the_rendered_configuration(cluster: Cluster) -> None:
    cluster_configuration = cluster.stored_cluster_configuration()
    assert cluster_configuration is not None
    # The API load balancer on every node's loopback (role apiserver_lb), from day one.
    assert cluster_configuration["controlPlaneEndpoint"] == "127.0.0.1:6444"
    assert cluster_configuration["networking"]["podSubnet"] == POD_CIDR
    assert cluster_configuration["kubernetesVersion"] == f"v{KUBERNETES}"
    proxy = cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kube-proxy")
    proxy_configuration = yaml.safe_load(proxy["data"]["config.conf"])
    assert proxy_configuration["mode"] == "iptables"
    assert proxy_configuration["conntrack"]["maxPerCore"] == 0
    kubelet = cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kubelet-config")
    kubelet_configuration = yaml.safe_load(kubelet["data"]["kubelet"])
    assert kubelet_configuration["resolvConf"] == "/etc/kubernetes/resolv.conf"
    # The lab's kubelet_extra_configuration: the nodes' disk is the machine's, which other work fills, so the kubelet
    # reckons in fixed amounts; every node (a joined worker too) runs with it, and none is tainted for disk pressure.
    assert kubelet_configuration["evictionHard"]["imagefs.available"] == "1Gi"
    assert kubelet_configuration["imageGCHighThresholdPercent"] == 100
    for node in cluster.nodes:
        running = yaml.safe_load(node.run("cat", "/var/lib/kubelet/config.yaml"))
        assert running["evictionHard"] == kubelet_configuration["evictionHard"], node.name
    pressure = [
        (item["metadata"]["name"], taint["key"])
        for item in cluster.kubectl_json("get", "nodes")["items"]
        for taint in item["spec"].get("taints", [])
        if "pressure" in taint["key"]
    ]
    assert pressure == []
    taints = cluster.kubectl_json("get", "node", CONTROL_PLANE[0])["spec"].get("taints", [])
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in taints
    # containerd gives pods the pause image the installed kubeadm names, not one kept by hand.
    pause = [line for line in cluster.workers[0].run("kubeadm", "config", "images", "list").split() if "pause" in line]
    assert f'sandbox_image = "{pause[0]}"' in cluster.workers[0].run("cat", "/etc/containerd/config.toml")


def test_calico_and_coredns_run_on_the_nodes(cluster: Cluster) -> None:
    calico = cluster.kubectl_json("--namespace=kube-system", "get", "pods", "--selector=k8s-app=calico-node")
    ready_on = {
        pod["spec"]["nodeName"]
        for pod in calico["items"]
        if all(status["ready"] for status in pod["status"].get("containerStatuses", []))
    }
    assert ready_on == set(ADDRESSES)
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
    """A broker on the first worker and a client on the second, both from the bundle."""
    server_command = "printf 'listener 1883\\nallow_anonymous true\\n' > /tmp/m.conf && exec mosquitto -c /tmp/m.conf"
    pods = []
    for name, node, command in (
        ("cpc-broker", WORKERS[0][0], ["sh", "-c", server_command]),
        ("cpc-client", WORKERS[1][0], ["sleep", "infinity"]),
    ):
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": mosquitto_image, "command": command}],
                },
            }
        )
    return yaml.safe_dump_all(pods)


@pytest.fixture(scope="module")
def pod_pair(cluster: Cluster) -> dict[str, Any]:
    cluster.kubectl("apply", "--filename=-", stdin=broker_pods(VERSIONS["sensorstack_mosquitto_image"]))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/cpc-broker", "pod/cpc-client", "--timeout=600s", timeout=700)
    return {pod["metadata"]["name"]: pod for pod in cluster.kubectl_json("get", "pods")["items"]}


def test_a_pod_on_one_worker_reaches_a_pod_on_the_other(cluster: Cluster, pod_pair: dict[str, Any]) -> None:
    broker, client = pod_pair["cpc-broker"], pod_pair["cpc-client"]
    assert (broker["spec"]["nodeName"], client["spec"]["nodeName"]) == (WORKERS[0][0], WORKERS[1][0])
    address = broker["status"]["podIP"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(POD_CIDR), address
    exec_client = ("exec", "cpc-client", "--")
    # MQTT across the nodes: a retained message published to the broker's pod address comes back to a subscriber.
    cluster.kubectl(*exec_client, "mosquitto_pub", "-h", address, "-t", "cpc/probe", "-m", "hello", "-r")
    received = cluster.kubectl(*exec_client, "mosquitto_sub", "-h", address, "-t", "cpc/probe", "-C", "1", "-W", "30")
    assert received.strip() == "hello"


def test_a_pod_resolves_the_kubernetes_service(cluster: Cluster, pod_pair: dict[str, Any]) -> None:
    service = cluster.kubectl_json("get", "service", "kubernetes")["spec"]["clusterIP"]
    resolved = cluster.kubectl("exec", "cpc-client", "--", "getent", "hosts", "kubernetes.default")
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
    run = cluster.site()
    cluster.timings["second run"] = run.seconds
    print(f"\nsecond run of site.yml: {run.seconds:.0f} s (first {cluster.timings['first run']:.0f} s)")
    assert run.returncode == 0, run.tail()
    assert run.changed() == dict.fromkeys(ADDRESSES, 0), run.explain()


def test_check_mode_on_the_built_cluster_reports_no_change(cluster: Cluster) -> None:
    run = cluster.site("--check")
    assert run.returncode == 0, run.tail()
    assert run.changed() == dict.fromkeys(ADDRESSES, 0), run.explain()


def test_check_mode_before_the_stack_exists_says_what_a_run_would_deploy(cluster: Cluster) -> None:
    new_namespace = {"sensorstack_stack_namespace": "sensorstack-not-yet"}
    run = cluster.run_playbook(
        project_root() / "playbooks/stack.yml",
        "--check",
        "--limit",
        cluster.control_plane.name,
        "--extra-vars",
        json.dumps(new_namespace),
    )
    assert run.returncode == 0, run.tail()
    assert "in namespace sensorstack-not-yet, which the cluster does not have yet" in " ".join(run.output.split())
    assert run.changed() == {cluster.control_plane.name: 1}, run.explain()
    namespaces = {item["metadata"]["name"] for item in cluster.kubectl_json("get", "namespaces")["items"]}
    assert "sensorstack-not-yet" not in namespaces


def test_a_calico_resource_definition_edited_by_hand_is_applied_again(cluster: Cluster) -> None:
    """The calico role applies only the CRDs the cluster does not hold as the release has them: a hand edit of one
    must still be found and undone, by the apply of that definition alone."""
    crd, annotation = "ippools.crd.projectcalico.org", "controller-gen.kubebuilder.io/version"
    released = cluster.kubectl_json("get", "crd", crd)["metadata"]["annotations"][annotation]
    cluster.kubectl("annotate", "--overwrite", "crd", crd, f"{annotation}=edited-by-hand")
    run = cluster.run_playbook(project_root() / "playbooks/network.yml")
    assert run.returncode == 0, run.tail()
    task = "calico : Ensure Calico's resource definitions are those of the release"
    assert run.changed_tasks() == [f"{task}: changed: [{cluster.control_plane.name} -> localhost]"], run.explain()
    assert cluster.kubectl_json("get", "crd", crd)["metadata"]["annotations"][annotation] == released


def _vxlan_mode(cluster: Cluster) -> str:
    return cluster.kubectl_json("get", "ippools.crd.projectcalico.org", "default-ipv4-ippool")["spec"]["vxlanMode"]


def test_the_running_clusters_encapsulation_changes_only_when_allowed(
    cluster: Cluster, pod_pair: dict[str, Any]
) -> None:
    network = project_root() / "playbooks/network.yml"
    cross_subnet = {"calico_encapsulation": "VXLANCrossSubnet"}
    refused = cluster.run_playbook(network, "--extra-vars", json.dumps(cross_subnet))
    assert refused.returncode != 0
    message = " ".join(refused.output.split())
    assert 'vxlanMode "Always" where calico_encapsulation asks for "CrossSubnet"' in message, refused.tail()
    assert "calico_allow_encapsulation_change=true" in message, refused.tail()
    assert "Place Calico's pinned manifest on the node" not in refused.output, "the role went on after refusing"
    assert set(refused.changed().values()) <= {0}, refused.tail()
    assert _vxlan_mode(cluster) == "Always"

    allowed = {"calico_allow_encapsulation_change": True}
    # Check mode reports the allowed change and makes it not.
    checked = cluster.run_playbook(network, "--check", "--extra-vars", json.dumps({**cross_subnet, **allowed}))
    assert checked.returncode == 0, checked.tail()
    assert any("Change the running IP pool" in task for task in checked.changed_tasks()), checked.explain()
    assert _vxlan_mode(cluster) == "Always"
    try:
        changed = cluster.run_playbook(network, "--extra-vars", json.dumps({**cross_subnet, **allowed}))
        pool = cluster.kubectl_json(
            "get", "ippools.crd.projectcalico.org", "default-ipv4-ippool", "--show-managed-fields"
        )
        # Who wrote the pool last, when the change did not hold.
        writers = json.dumps(pool["metadata"].get("managedFields"), indent=1)
        assert changed.returncode == 0, f"{changed.tail()}\npool: {json.dumps(pool['spec'])}\nwriters: {writers}"
        assert _vxlan_mode(cluster) == "CrossSubnet"
    finally:
        back = cluster.run_playbook(network, "--extra-vars", json.dumps(allowed))
    assert back.returncode == 0, back.tail()
    assert _vxlan_mode(cluster) == "Always"
    # Pods still reach each other across the nodes once every calico-node has followed.
    test_a_pod_on_one_worker_reaches_a_pod_on_the_other(cluster, pod_pair)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sensorstack_service_cidr": "10.244.0.0/16"}, "sensorstack_service_cidr"),
        ({"kubeadm_control_plane_kubernetes_version": "1.33.1"}, "kubeadm_control_plane_kubernetes_version 1.33.1"),
        ({"sensorstack_kubernetes_version": "1.35.3"}, "moves to another version only with playbooks/upgrade.yml"),
        ({"calico_encapsulation": "IPIP"}, "calico_encapsulation IPIP needs BGP"),
        ({"calico_encapsulation": "GRE"}, "calico_encapsulation"),
        ({"kubeadm_control_plane_endpoint": "10.213.0.53"}, "kubeadm_control_plane_endpoint must be host:port"),
        ({"firewall_extra_rules": [{"name": "x", "ports": [70000]}]}, "firewall_extra_rules[0].ports: 70000 is not"),
        ({"sensorstack_stack_device_cidrs": ["10.213.0.0/33"]}, "sensorstack_stack_device_cidrs: '10.213.0.0/33'"),
        ({"mosquitto_password_file": "/var/lib/passwd"}, "/var/lib/passwd must lie under it"),
    ],
    ids=[
        "cidr-overlap",
        "unsupported-version",
        "skip-minor",
        "bgp-encapsulation",
        "unknown-encapsulation",
        "bad-endpoint",
        "bad-firewall-port",
        "bad-device-network",
        "stack-file-outside-its-secret",
    ],
)
def test_bad_settings_stop_in_preflight_before_any_host_changes(
    cluster: Cluster, settings: dict[str, Any], message: str
) -> None:
    # One node is enough to be refused (and quicker: preflight gathers facts first).
    run = cluster.site("--extra-vars", json.dumps(settings), "--limit", CONTROL_PLANE[0])
    assert run.returncode != 0
    # The callback may fold a long message over several lines.
    assert message in " ".join(run.output.split()), run.tail()
    assert "Validate the variables and the hosts" in run.output
    assert "Prepare every host" not in run.output, "a play after preflight ran"
    assert set(run.changed().values()) <= {0}, run.tail()


def test_an_upgrade_that_skips_a_minor_stops_in_preflight(cluster: Cluster) -> None:
    run = cluster.run_playbook(
        project_root() / "playbooks/upgrade.yml",
        "--extra-vars",
        json.dumps({"sensorstack_kubernetes_version": "1.37.0"}),
        "--limit",
        CONTROL_PLANE[0],
    )
    assert run.returncode != 0
    assert f"1.37.0 skips a minor release: {CONTROL_PLANE[0]} runs kubeadm {KUBERNETES}" in " ".join(run.output.split())
    assert "Upgrade the control-plane nodes" not in run.output
    assert set(run.changed().values()) <= {0}, run.tail()


@pytest.mark.parametrize(
    ("role", "settings", "message"),
    [
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
def test_a_role_run_alone_refuses_ignoring_every_kubeadm_check(
    cluster: Cluster, role: str, settings: dict[str, Any], message: str
) -> None:
    hosts = "workers" if role == "kubeadm_join" else "control_plane[0]"
    plays = [{"name": "Refused settings", "hosts": hosts, "roles": [{"role": f"sensorstack.iot.{role}"}]}]
    run = cluster.playbook(f"refused_{role}", plays, "--extra-vars", json.dumps(settings))
    assert run.returncode != 0
    assert message in " ".join(run.output.split()), run.tail()
    assert set(run.changed().values()) == {0}, run.explain()


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except TimeoutError:
        return False


def test_the_firewall_lets_in_the_api_and_drops_a_port_it_does_not_open(cluster: Cluster) -> None:
    # The lab turns the firewall role on (inventories/local/group_vars/sensorstack.yml).
    worker, (worker_name, worker_address) = cluster.workers[0], WORKERS[0]
    assert "table inet sensorstack" in worker.run("nft", "list", "tables")
    worker.run("systemd-run", "--unit=cpc-firewall-probe", "python3", "-m", "http.server", "8002")
    try:
        # The listener answers on the node itself (loopback), so a silence from outside is the firewall's.
        worker.sh(
            "for i in $(seq 50); do python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8002), 1)\" "
            "&& exit 0; sleep 0.2; done; exit 1"
        )
        assert not _answers(worker_address, 8002), f"{worker_name}:8002 has no rule but answered"
    finally:
        worker.run("systemctl", "stop", "cpc-firewall-probe", check=False)
    assert _answers(CONTROL_PLANE[1], 6443)


PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("dropped")
"""


def test_a_worker_reaches_the_control_planes_kubelet_but_never_its_etcd(cluster: Cluster) -> None:
    # etcd listens on the control plane's address too (kubeadm's listen URLs), so a silence is the firewall's: etcd
    # is open to the control-plane nodes only, the kubelet to every node.
    worker, control_plane = cluster.workers[0], CONTROL_PLANE[1]
    manifest = cluster.control_plane.run("cat", "/etc/kubernetes/manifests/etcd.yaml")
    assert f"https://{control_plane}:2379" in manifest and f"https://{control_plane}:2380" in manifest
    reached = {
        port: worker.run("python3", "-c", PROBE, control_plane, str(port)).strip() for port in (2379, 2380, 10250)
    }
    assert reached == {2379: "dropped", 2380: "dropped", 10250: "open"}


def _verifies_as(cluster: Cluster, name: str) -> bool:
    """Whether the API server's certificate verifies for ``name`` against the cluster's CA, as a client checks it."""
    context = ssl.create_default_context(cadata=cluster.control_plane.run("cat", "/etc/kubernetes/pki/ca.crt"))
    try:
        with (
            socket.create_connection((CONTROL_PLANE[1], 6443), timeout=5) as connection,
            context.wrap_socket(connection, server_hostname=name),
        ):
            return True
    except ssl.SSLCertVerificationError:
        return False


def test_a_new_certificate_name_reaches_the_running_api_server(cluster: Cluster) -> None:
    """kubeadm writes certSANs only at init: a name added later must still reach the serving certificate."""
    name, address = "api.cpc.lab.example", "10.213.0.250"
    assert not _verifies_as(cluster, name)
    # The cluster plays on the control plane only: what a change of certificate names touches.
    only_the_control_plane = ("--tags", "cluster", "--limit", CONTROL_PLANE[0])
    names = json.dumps({"kubeadm_control_plane_cert_sans": [name, address]})
    run = cluster.site(*only_the_control_plane, "--extra-vars", names)
    assert run.returncode == 0, run.explain()
    assert "Issue the API server's certificate with every stored name" in "\n".join(run.changed_tasks())
    assert _verifies_as(cluster, name)
    stored = cluster.stored_cluster_configuration()
    assert stored is not None
    assert {name, address} <= set(stored["apiServer"]["certSANs"])
    # Back to the inventory's names: the configuration file and the stored configuration follow, and nothing else
    # changes: a certificate with a name more is kept.
    back = cluster.site(*only_the_control_plane)
    assert back.returncode == 0, back.explain()
    assert {task.rsplit(": changed:", 1)[0] for task in back.changed_tasks()} == {
        "kubeadm_control_plane : Ensure the kubeadm configuration describes the cluster and passes kubeadm's own "
        "validation",
        "kubeadm_control_plane : Ensure the stored configuration names every certificate name the API server must "
        "carry",
    }, back.explain()
    assert _verifies_as(cluster, name)


def test_a_cluster_whose_init_did_not_finish_stops_the_run_naming_the_reset(cluster: Cluster) -> None:
    """A run stopped during kubeadm init leaves admin.conf (the role's sign of an initialised node) without the
    stored configuration kubeadm writes once the API server runs: the next run stops, saying what to do, instead of
    failing on a missing list element. The ConfigMap comes back with the command the message gives."""
    saved = cluster.stored_cluster_configuration()
    assert saved is not None
    only_the_control_plane = ("--tags", "cluster", "--limit", CONTROL_PLANE[0])
    cluster.kubectl("--namespace=kube-system", "delete", "configmap", "kubeadm-config")
    try:
        run = cluster.site(*only_the_control_plane)
    finally:
        cluster.control_plane.run(
            "kubeadm", "init", "phase", "upload-config", "kubeadm", "--config", "/etc/kubernetes/kubeadm-config.yaml"
        )
    assert cluster.stored_cluster_configuration() == saved
    assert run.returncode != 0
    message = " ".join(run.output.split())
    assert "holds no ConfigMap kube-system/kubeadm-config: kubeadm init did not finish there" in message, run.tail()
    assert f"playbooks/reset.yml --limit {CONTROL_PLANE[0]} -e reset_confirm=yes" in message, run.tail()
    assert run.changed() == {CONTROL_PLANE[0]: 0}, run.explain()


def test_the_host_kernel_settings_are_unchanged(cluster: Cluster, host_sysctls_before: dict[str, str]) -> None:
    assert host_sysctls() == host_sysctls_before
