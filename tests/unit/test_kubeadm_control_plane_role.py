"""The kubeadm_control_plane role: its argument spec mirrors its defaults, and the kubeadm configuration it renders
says what the variables say (networks from the sensorstack role, endpoint from the node's address, lab settings).

The documents are rendered by Ansible's own templating from the role's defaults and vars, as a play would; the
cluster tier (tests/cluster/test_cluster.py) runs them through `kubeadm config validate` and `init`.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from .role_files import ROLES, SHARED, RoleFiles

ROLE = RoleFiles.load("kubeadm_control_plane")


def render(expression: str, **overrides: Any) -> Any:
    """An expression over the role's variables on host cp1, the first of two control-plane hosts."""
    host = {
        "inventory_hostname": "cp1",
        "inventory_dir": "/site/inventory",
        "groups": {"control_plane": ["cp1", "cp2"], "workers": ["w1"]},
        "ansible_facts": {"default_ipv4": {"address": "192.0.2.10"}},
    }
    return ROLE.render(expression, **{**host, **overrides})


def documents(**overrides: Any) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in render("{{ kubeadm_control_plane_documents }}", **overrides)}


def test_the_networks_and_version_come_from_the_project_settings() -> None:
    cluster = documents(sensorstack_pod_cidr="10.50.0.0/16", sensorstack_service_cidr="10.60.0.0/16")[
        "ClusterConfiguration"
    ]
    assert cluster["networking"] == {"podSubnet": "10.50.0.0/16", "serviceSubnet": "10.60.0.0/16"}
    assert cluster["kubernetesVersion"] == f"v{SHARED['sensorstack_kubernetes_version']}"
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"


def test_the_node_address_is_the_lab_address_else_the_default_ipv4_address() -> None:
    assert documents()["InitConfiguration"]["localAPIEndpoint"] == {"advertiseAddress": "192.0.2.10", "bindPort": 6443}
    init = documents(sensorstack_node_ip="10.213.0.11")["InitConfiguration"]
    assert init["localAPIEndpoint"]["advertiseAddress"] == "10.213.0.11"
    # The kubelet registers the node with the same address, not whatever its default route points at.
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.213.0.11"}]


def test_the_endpoint_is_the_local_load_balancer_from_day_one_and_named_in_the_certificate() -> None:
    cluster = documents(sensorstack_node_ip="10.213.0.11")["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "127.0.0.1:6444"
    assert cluster["apiServer"]["certSANs"] == ["127.0.0.1", "10.213.0.11"]
    cluster = documents(
        sensorstack_node_ip="10.213.0.11",
        kubeadm_control_plane_endpoint="k8s.example.net:6443",
        kubeadm_control_plane_cert_sans=["10.213.0.100"],
    )["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "k8s.example.net:6443"
    assert cluster["apiServer"]["certSANs"] == ["k8s.example.net", "10.213.0.11", "10.213.0.100"]


def test_without_a_load_balancer_the_endpoint_is_the_first_node_ipv6_in_brackets() -> None:
    cluster = documents(sensorstack_node_ip="10.213.0.11", sensorstack_api_load_balancer="none")
    assert cluster["ClusterConfiguration"]["controlPlaneEndpoint"] == "10.213.0.11:6443"
    cluster = documents(sensorstack_node_ip="fd00::11", sensorstack_api_load_balancer="none")["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "[fd00::11]:6443"
    assert cluster["apiServer"]["certSANs"] == ["fd00::11"]


def test_the_controllers_kubeconfig_names_this_nodes_api_server_not_the_loopback_balancer() -> None:
    admin = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubernetes", "cluster": {"server": "https://127.0.0.1:6444", "certificate-authority-data": "CA"}}
        ],
        "users": [{"name": "kubernetes-admin", "user": {"client-key-data": "KEY"}}],
    }
    encoded = base64.b64encode(yaml.safe_dump(admin).encode()).decode()
    copy = ROLE.render(
        "{{ kubeadm_control_plane_controller_kubeconfig }}",
        sensorstack_node_ip="10.213.0.11",
        kubeadm_control_plane_admin_file={"content": encoded},
    )
    assert copy["clusters"][0]["cluster"] == {"server": "https://10.213.0.11:6443", "certificate-authority-data": "CA"}
    assert copy["users"] == admin["users"]


def test_production_defaults_keep_the_kubelets_safety_checks() -> None:
    rendered = documents()
    kubelet = rendered["KubeletConfiguration"]
    assert kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "failCgroupV1": True,
        "failSwapOn": True,
    }
    assert rendered["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == []
    assert "taints" not in rendered["InitConfiguration"]["nodeRegistration"]
    assert rendered["KubeProxyConfiguration"]["mode"] == "iptables"
    assert rendered["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 32768}


def test_lab_settings_reach_the_kubelet_and_kube_proxy() -> None:
    rendered = documents(
        kubeadm_control_plane_ignore_preflight_errors=["SystemVerification"],
        kubeadm_control_plane_kubelet_fail_cgroup_v1=False,
        kubeadm_control_plane_kubelet_fail_swap_on=False,
        kubeadm_control_plane_kubelet_resolv_conf="/etc/kubernetes/resolv.conf",
        kubeadm_control_plane_kubelet_extra_configuration={"evictionHard": {"nodefs.available": "5%"}},
        kubeadm_control_plane_kube_proxy_conntrack_max_per_core=0,
        kubeadm_control_plane_schedule_workloads=True,
    )
    kubelet = rendered["KubeletConfiguration"]
    assert (kubelet["failCgroupV1"], kubelet["failSwapOn"]) == (False, False)
    assert kubelet["resolvConf"] == "/etc/kubernetes/resolv.conf"
    assert kubelet["evictionHard"] == {"nodefs.available": "5%"}
    registration = rendered["InitConfiguration"]["nodeRegistration"]
    assert registration["ignorePreflightErrors"] == ["SystemVerification"]
    assert registration["taints"] == []
    assert rendered["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 0}


def test_the_documents_come_in_the_order_kubeadm_reads_them() -> None:
    kinds = [document["kind"] for document in render("{{ kubeadm_control_plane_documents }}")]
    assert kinds == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("SystemVerification", True),
        ("Port-6443", True),
        ("FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml", True),
        ("all", True),  # a name in form: the role refuses it by value, with its own message
        ("System Verification", False),
        ("--ignore-preflight-errors=all", False),
        ("", False),
    ],
)
def test_preflight_check_names_are_recognised(name: str, valid: bool) -> None:
    pattern = ROLE.render("{{ sensorstack_kubeadm_check_name_pattern }}")
    assert bool(re.match(pattern, name)) is valid


def second_cluster_problems(*others: dict[str, Any]) -> list[str]:
    """What the check before kubeadm init says on cp1, given what the stat of admin.conf registered on the others."""
    main = yaml.safe_load((ROLES / "kubeadm_control_plane/tasks/main.yml").read_text())
    [guard] = [task for task in main if task["name"].startswith("Stop before initialising a cluster beside")]
    [_, check] = guard["block"]
    variables: dict[str, Any] = {"kubeadm_control_plane_others": {"results": list(others)}}
    for name, value in check["vars"].items():
        variables[name] = render(value, **variables)
    problems = variables["kubeadm_control_plane_second_cluster"]
    assert guard["when"] == "not kubeadm_control_plane_initialised.stat.exists"
    return problems


def test_init_stops_when_another_control_plane_runs_a_cluster_already() -> None:
    # playbooks/cluster.yml alone after cp1 was reset in an HA cluster: cp2 still runs it.
    [problem] = second_cluster_problems({"item": "cp2", "stat": {"exists": True}})
    assert "cp1, the first host of group 'control_plane', is where site.yml initialises the cluster" in problem
    assert "while cp2 run one" in problem
    assert second_cluster_problems({"item": "cp2", "stat": {"exists": False}}) == []
    # One that does not answer is not judged, as preflight leaves it.
    assert second_cluster_problems({"item": "cp2", "unreachable": True, "msg": "Failed to connect"}) == []
