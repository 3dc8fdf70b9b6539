"""The calico role: its argument spec mirrors its defaults, and the kustomization it lays over Calico's manifest sets
the pool from the project's pod network, the chosen encapsulation, the address detection and the pinned images.

The files are rendered by Ansible's own templating from the role's defaults and vars, as a play would; the cluster
tier (tests/cluster/test_control_plane_calico.py) applies them with kubectl to a real cluster.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .role_files import SHARED, RoleFiles

ROLE = RoleFiles.load("calico")


def render(expression: str, **overrides: Any) -> Any:
    return ROLE.render(expression, **overrides)


def node_env(**overrides: Any) -> dict[str, str]:
    patch = render("{{ calico_kustomization_files['calico-node.patch.yaml'] }}", **overrides)
    [container] = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "calico-node"
    return {entry["name"]: entry["value"] for entry in container["env"]}


def test_every_default_is_specified_with_its_value_unless_it_is_a_template() -> None:
    assert ROLE.spec_problems() == []


def test_every_variable_carries_the_role_prefix() -> None:
    assert ROLE.unprefixed_variables() == []


def test_the_pool_is_the_project_pod_network() -> None:
    env = node_env(sensorstack_pod_cidr="10.50.0.0/16")
    assert env["CALICO_IPV4POOL_CIDR"] == "10.50.0.0/16"
    assert env["CALICO_IPV4POOL_BLOCK_SIZE"] == "26"
    assert env["CALICO_IPV4POOL_NAT_OUTGOING"] == "true"
    # What the role checks the created pool against follows the same variable.
    assert render("{{ calico_pool_wanted.cidr }}", sensorstack_pod_cidr="10.50.0.0/16") == "10.50.0.0/16"


@pytest.mark.parametrize(
    ("encapsulation", "vxlan"),
    [("VXLAN", "Always"), ("VXLANCrossSubnet", "CrossSubnet")],
)
def test_each_supported_encapsulation_sets_the_pool_modes(encapsulation: str, vxlan: str) -> None:
    env = node_env(calico_encapsulation=encapsulation)
    assert (env["CALICO_IPV4POOL_VXLAN"], env["CALICO_IPV4POOL_IPIP"]) == (vxlan, "Never")


def test_encapsulations_that_need_bgp_are_offered_by_the_spec_but_not_supported() -> None:
    offered = set(ROLE.options["calico_encapsulation"]["choices"])
    supported = set(ROLE.vars["calico_pool_modes"])
    assert offered - supported == {"IPIP", "None"}
    assert supported <= offered


def test_address_detection_follows_the_host_networks() -> None:
    assert node_env()["IP_AUTODETECTION_METHOD"] == "kubernetes-internal-ip"
    env = node_env(sensorstack_host_cidrs=["192.168.56.0/24", "10.1.0.0/24"])
    assert env["IP_AUTODETECTION_METHOD"] == "cidr=192.168.56.0/24,10.1.0.0/24"
    assert node_env(calico_ip_autodetection_method="interface=eth0")["IP_AUTODETECTION_METHOD"] == "interface=eth0"


@pytest.mark.parametrize(
    ("method", "valid"),
    [
        ("first-found", True),
        ("kubernetes-internal-ip", True),
        ("cidr=10.213.0.0/24", True),
        ("interface=eth0", True),
        ("can-reach=10.213.0.1", True),
        ("interface=", False),
        ("eth0", False),
        ("cidr 10.213.0.0/24", False),
    ],
)
def test_address_detection_methods_are_recognised(method: str, valid: bool) -> None:
    assert bool(re.match(ROLE.vars["calico_autodetection_pattern"].strip(), method)) is valid


def test_the_kustomization_pins_the_images_to_the_release_and_registry() -> None:
    kustomization = render(
        "{{ calico_kustomization_files['kustomization.yaml'] }}",
        calico_image_registry="registry.example.net:5000",
    )
    assert kustomization["resources"] == ["calico.yaml"]
    assert {patch["path"] for patch in kustomization["patches"]} == {
        "calico-node.patch.yaml",
        "calico-config.patch.yaml",
    }
    version = SHARED["sensorstack_calico_version"]
    assert kustomization["images"] == [
        {
            "name": f"quay.io/calico/{image}",
            "newName": f"registry.example.net:5000/calico/{image}",
            "newTag": f"v{version}",
        }
        for image in ("node", "cni", "kube-controllers")
    ]


def test_the_mtu_goes_to_calicos_config_map_as_a_string() -> None:
    config = render("{{ calico_kustomization_files['calico-config.patch.yaml'] }}", calico_mtu=1400)
    assert (config["kind"], config["metadata"]["name"], config["data"]) == (
        "ConfigMap",
        "calico-config",
        {"veth_mtu": "1400"},
    )


def test_the_manifest_and_its_checksum_follow_the_pins_and_the_mirror() -> None:
    mirror = "http://10.213.0.1:8080"
    version = SHARED["sensorstack_calico_version"]
    assert render("{{ calico_manifest_url }}", sensorstack_mirror=mirror) == (
        f"{mirror}/files/calico/v{version}/calico-vxlan.yaml"
    )
    assert render("{{ calico_manifest_checksum }}") == SHARED["sensorstack_calico_manifest_checksum"]
    assert re.match(ROLE.vars["calico_checksum_pattern"], SHARED["sensorstack_calico_manifest_checksum"])


def test_kubectl_applies_server_side_under_one_field_manager() -> None:
    options = render("{{ calico_apply_options }}")
    assert options[:3] == ["--server-side", "--field-manager=sensorstack", "--force-conflicts"]
    assert options[3:] == ["--kustomize", "/etc/kubernetes/calico"]


def test_extra_environment_is_added_and_replaces_entries_of_the_same_name() -> None:
    env = node_env(
        calico_node_extra_env=[
            {"name": "FELIX_DebugSkipCTLBCleanup", "value": "true"},
            {"name": "IP_AUTODETECTION_METHOD", "value": "interface=eth1"},
        ]
    )
    assert env["FELIX_DebugSkipCTLBCleanup"] == "true"
    assert env["IP_AUTODETECTION_METHOD"] == "interface=eth1"
    patch = render("{{ calico_kustomization_files['calico-node.patch.yaml'] }}")
    names = [entry["name"] for entry in patch["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names))
