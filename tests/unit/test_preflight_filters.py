"""The preflight checks: every problem is reported, and every message names what to fix."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.filter.preflight import (
    host_addressing,
    host_role_problems,
    network_problems,
    os_problems,
    parse_cidr,
    play_group_problems,
)

ROLE_GROUPS = {
    "sensorstack_control_plane_group": "control_plane",
    "sensorstack_worker_group": "workers",
    "sensorstack_edge_group": "edge",
}
DEFAULT_NETWORKS = {
    "sensorstack_pod_cidr": "10.244.0.0/16",
    "sensorstack_service_cidr": "10.96.0.0/12",
    "sensorstack_host_cidrs": [],
}


def groups(**members: list[str]) -> dict[str, list[str]]:
    everyone = sorted({host for hosts in members.values() for host in hosts})
    return {"all": everyone, "sensorstack": everyone, **members}


def test_a_well_formed_inventory_has_no_problems() -> None:
    inventory = groups(control_plane=["cp1"], workers=["w1", "w2"], edge=["gw1"])
    assert host_role_problems(inventory, "sensorstack", ROLE_GROUPS) == []


def test_a_host_without_a_role_group_is_named_with_a_hint_for_a_near_miss() -> None:
    inventory = groups(control_plane=["cp1"], worker=["w1"])
    [problem] = host_role_problems(inventory, "sensorstack", ROLE_GROUPS)
    assert "host w1 has no known host role" in problem
    assert "'worker' (did you mean 'workers'?)" in problem


def test_a_host_in_two_role_groups_is_a_duplicate_role() -> None:
    inventory = groups(control_plane=["cp1"], workers=["cp1", "w1"])
    [problem] = host_role_problems(inventory, "sensorstack", ROLE_GROUPS)
    assert "host cp1 has duplicate host roles (control_plane, workers)" in problem


def test_a_cluster_without_control_plane_names_the_variable() -> None:
    inventory = groups(workers=["w1"])
    [problem] = host_role_problems(inventory, "sensorstack", ROLE_GROUPS)
    assert problem.startswith("sensorstack_control_plane_group: group 'control_plane' is missing or empty")


def test_an_edge_only_lab_needs_no_control_plane_but_rejects_cluster_hosts() -> None:
    assert host_role_problems(groups(edge=["gw1"]), "sensorstack", ROLE_GROUPS, cluster_enabled=False) == []
    problems = host_role_problems(groups(workers=["w1"]), "sensorstack", ROLE_GROUPS, cluster_enabled=False)
    assert any("sensorstack_cluster_enabled is false" in problem for problem in problems)


def test_a_missing_hosts_group_is_reported_alone() -> None:
    assert host_role_problems({"all": ["a"]}, "sensorstack", ROLE_GROUPS) == [
        "sensorstack_hosts_group: inventory group 'sensorstack' is missing or has no hosts"
    ]


def test_a_role_group_outside_the_hosts_group_is_reported() -> None:
    inventory = {"all": ["cp1", "w9"], "sensorstack": ["cp1"], "control_plane": ["cp1"], "workers": ["w9"]}
    [problem] = host_role_problems(inventory, "sensorstack", ROLE_GROUPS)
    assert "host w9 is in role group 'workers' (sensorstack_worker_group) but not in 'sensorstack'" in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.244.0.0/33", "sensorstack_pod_cidr: '10.244.0.0/33' is not a valid CIDR"),
        ("10.244.0.0", "sensorstack_pod_cidr: '10.244.0.0' is not a CIDR"),
        ("banana/16", "sensorstack_pod_cidr: 'banana/16' is not a valid CIDR"),
        ("10.244.1.0/16", "has host bits set; did you mean 10.244.0.0/16?"),
        (16, "sensorstack_pod_cidr: 16 is not a CIDR"),
    ],
)
def test_malformed_cidrs_are_named(value: object, expected: str) -> None:
    problems = network_problems(DEFAULT_NETWORKS | {"sensorstack_pod_cidr": value})
    assert len(problems) == 1
    assert expected in problems[0]


def test_overlapping_pod_and_service_networks_are_reported() -> None:
    problems = network_problems(DEFAULT_NETWORKS | {"sensorstack_service_cidr": "10.244.128.0/20"})
    assert problems == ["sensorstack_pod_cidr (10.244.0.0/16) overlaps sensorstack_service_cidr (10.244.128.0/20)"]


def test_a_declared_host_network_overlapping_the_pods_is_reported_by_index() -> None:
    networks = DEFAULT_NETWORKS | {"sensorstack_host_cidrs": ["192.168.1.0/24", "10.244.7.0/24"]}
    assert network_problems(networks) == [
        "sensorstack_pod_cidr (10.244.0.0/16) overlaps sensorstack_host_cidrs[1] (10.244.7.0/24)"
    ]


def test_host_networks_from_facts_count_only_without_declared_host_cidrs() -> None:
    addressing = {"cp1": {"address": "10.250.0.5", "network": "10.240.0.0/12"}}
    [problem] = network_problems(DEFAULT_NETWORKS, addressing)
    assert problem.startswith("sensorstack_pod_cidr (10.244.0.0/16) overlaps the network of host cp1 (10.240.0.0/12")
    declared = DEFAULT_NETWORKS | {"sensorstack_host_cidrs": ["10.250.0.0/24"]}
    assert network_problems(declared, addressing) == []


def test_a_host_address_inside_the_service_network_is_reported() -> None:
    networks = DEFAULT_NETWORKS | {"sensorstack_host_cidrs": ["10.100.0.0/24"]}
    problems = network_problems(networks, {"cp1": {"address": "10.100.0.7"}})
    assert "sensorstack_service_cidr (10.96.0.0/12) contains the address of host cp1 (10.100.0.7)" in problems


def test_a_malformed_node_ip_is_named() -> None:
    [problem] = network_problems(DEFAULT_NETWORKS, {"cp1": {"address": "10.0.0.300"}})
    assert problem == "sensorstack_node_ip of host cp1: '10.0.0.300' is not an IP address"


def test_host_addressing_prefers_the_declared_node_ip_and_derives_the_network() -> None:
    hostvars = {
        "cp1": {
            "ansible_facts": {
                "default_ipv4": {
                    "address": "172.18.0.2",
                    "network": "172.18.0.0",
                    "netmask": "255.255.0.0",
                }
            }
        },
        "cp2": {"sensorstack_node_ip": "192.0.2.9", "ansible_facts": {"default_ipv4": {}}},
    }
    assert host_addressing(hostvars, ["cp1", "cp2"]) == {
        "cp1": {"address": "172.18.0.2", "network": "172.18.0.0/16"},
        "cp2": {"address": "192.0.2.9"},
    }


def test_ipv6_networks_are_compared_only_with_ipv6() -> None:
    networks = DEFAULT_NETWORKS | {"sensorstack_host_cidrs": ["fd00::/64"]}
    assert network_problems(networks) == []
    network, problem = parse_cidr("x", "fd00::/64")
    assert problem is None
    assert network is not None
    assert network.version == 6


@pytest.mark.parametrize(
    ("distribution", "major"), [("Debian", "12"), ("Debian", "13"), ("Ubuntu", "22"), ("Ubuntu", "24")]
)
def test_supported_operating_systems_pass(distribution: str, major: str) -> None:
    supported = {"Debian": ["12", "13"], "Ubuntu": ["22", "24"]}
    assert os_problems("h", distribution, major, supported) == []


def test_an_unsupported_operating_system_names_the_facts_and_the_setting() -> None:
    [problem] = os_problems("h", "Debian", "11", {"Debian": [12, 13]})
    assert "host h runs Debian 11 (ansible_distribution, ansible_distribution_major_version)" in problem
    assert "preflight_supported_distributions allows: Debian 12, 13" in problem


PREFLIGHT_PLAYS = Path(__file__).resolve().parents[2] / "playbooks/preflight.yml"


def first_play_name(**extra_vars: str) -> str:
    """preflight.yml's first play name as Ansible templates it: extra vars only, no host (plain Jinja does the same
    for its default filters)."""
    template = yaml.safe_load(PREFLIGHT_PLAYS.read_text())[0]["name"]
    return jinja2.Template(template).render(**extra_vars)


def test_the_plays_group_names_are_read_back_from_the_first_plays_name() -> None:
    hostvars = {"cp1": {}, "localhost": {}}
    assert play_group_problems(first_play_name(), hostvars, hostvars) == []
    named = first_play_name(sensorstack_control_plane_group="masters")
    assert play_group_problems(named, {"cp1": {"sensorstack_control_plane_group": "masters"}}, ["cp1"]) == []


def test_a_group_name_set_in_the_inventory_only_is_refused_with_the_command_line_to_use() -> None:
    hostvars = {"cp1": {"sensorstack_control_plane_group": "masters"}, "w1": {}, "localhost": {}}
    [problem] = play_group_problems(first_play_name(), hostvars, list(hostvars))
    assert problem.startswith("sensorstack_control_plane_group is 'masters' in the inventory, but the plays run on ")
    assert "group 'control_plane'" in problem and "-e sensorstack_control_plane_group=masters" in problem


def test_an_unreadable_play_name_is_reported_rather_than_passed() -> None:
    assert play_group_problems("Validate the inventory layout", {}, []) != []
