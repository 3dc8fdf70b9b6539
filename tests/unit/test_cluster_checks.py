"""The cluster checks preflight runs on every cluster node: each bad input is refused with the variable named."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.cluster_checks import (
    cluster_problems,
    control_plane_count_problems,
    encapsulation_problems,
    endpoint_problems,
    first_control_plane_problems,
    host_port,
    kubernetes_version_problems,
    mirror_problems,
    node_addresses,
    node_source_addresses,
    parse_version,
    runtime_problems,
    upgrade_problems,
)

PINNED = {"sensorstack_kubernetes_version": "1.35.4", "sensorstack_control_plane_group": "control_plane"}


def test_a_sound_cluster_has_no_problem() -> None:
    assert cluster_problems(PINNED, ["cp1"]) == []
    assert cluster_problems(PINNED | {"calico_encapsulation": "VXLANCrossSubnet"}, ["cp1", "cp2", "cp3"]) == []


@pytest.mark.parametrize("count", [2, 4])
def test_an_even_number_of_control_planes_is_refused(count: int) -> None:
    [problem] = control_plane_count_problems("control_plane", [f"cp{n}" for n in range(count)])
    assert problem.startswith("sensorstack_control_plane_group: group 'control_plane' has")
    assert "odd number" in problem


@pytest.mark.parametrize(
    ("value", "parsed"), [("1.35.4", (1, 35, 4)), ("v1.34.0", (1, 34, 0)), ("1.35.4-1.1", (1, 35, 4))]
)
def test_versions_parse_with_or_without_v_and_revision(value: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(value) == parsed


@pytest.mark.parametrize("value", ["1.35", "latest", "", "1.35.x"])
def test_a_malformed_version_names_the_variable(value: str) -> None:
    [problem] = kubernetes_version_problems("kubeadm_control_plane_kubernetes_version", value, "1.35.4")
    assert problem.startswith("kubeadm_control_plane_kubernetes_version must be a Kubernetes release")


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.35.4", True), ("1.35.0", True), ("1.34.7", True), ("1.33.9", False), ("1.35.5", False), ("1.36.0", False)],
)
def test_kubeadm_deploys_its_own_minor_and_the_one_before(version: str, ok: bool) -> None:
    problems = kubernetes_version_problems("kubeadm_control_plane_kubernetes_version", version, "1.35.4")
    assert (problems == []) is ok, problems
    if not ok:
        assert "kubeadm 1.35.4 (sensorstack_kubernetes_version)" in problems[0]


@pytest.mark.parametrize(
    ("installed", "target", "expected"),
    [
        ("", "1.35.4", None),
        ("1.35.4-1.1", "1.35.4", None),
        ("1.34.2-1.1", "1.35.4", None),
        ("1.33.2-1.1", "1.35.4", "skips a minor release"),
        ("1.35.4-1.1", "1.34.2", "does not downgrade"),
    ],
)
def test_upgrades_go_one_minor_at_a_time_and_never_back(installed: str, target: str, expected: str | None) -> None:
    problems = upgrade_problems("lab-cp1", installed, target, upgrading=True)
    if expected is None:
        assert problems == []
    else:
        [problem] = problems
        assert problem.startswith(f"sensorstack_kubernetes_version {target}")
        assert expected in problem and "lab-cp1" in problem
    if expected == "skips a minor release":
        assert "Upgrade to 1.34 first" in problems[0]


@pytest.mark.parametrize("endpoint", ["10.0.0.10:6443", "k8s-api.lab.example:443", "[fd00::10]:6443", "localhost:8443"])
def test_good_endpoints_pass(endpoint: str) -> None:
    assert endpoint_problems("kubeadm_control_plane_endpoint", endpoint) == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "10.0.0.10",
        "10.0.0.10:",
        ":6443",
        "10.0.0.10:99999",
        "fd00::10:6443",
        "[fd00::zz]:6443",
        "https://10.0.0.10:6443",
        "api lb:6443",
    ],
)
def test_bad_endpoints_name_the_variable(endpoint: str) -> None:
    [problem] = endpoint_problems("kubeadm_control_plane_endpoint", endpoint)
    assert problem.startswith("kubeadm_control_plane_endpoint must be host:port")


@pytest.mark.parametrize(
    ("value", "message"),
    [("GRE", "must be one of"), ("vxlan", "must be one of"), ("IPIP", "needs BGP"), ("None", "needs BGP")],
)
def test_unknown_or_bgp_encapsulations_are_refused(value: str, message: str) -> None:
    [problem] = encapsulation_problems(value)
    assert problem.startswith("calico_encapsulation") and message in problem


def test_kubernetes_136_needs_containerd_2() -> None:
    assert runtime_problems("1.35.4", "distro") == []
    assert runtime_problems("1.36.0", "repo", "2.1.4") == []
    [problem] = runtime_problems("1.36.0", "distro")
    assert "containerd_install_source distro" in problem and "sensorstack_kubernetes_version 1.36.0" in problem
    assert "use containerd_install_source repo with a containerd_version 2.x" in problem
    [problem] = runtime_problems("1.36.0", "repo", "1.7.28")
    assert "containerd_version is 1.7.28" in problem


def test_the_docker_roles_source_counts_for_containerd() -> None:
    settings = {**PINNED, "sensorstack_kubernetes_version": "1.36.0", "docker_install_source": "distro"}
    problems = cluster_problems(settings, ["cp1"])
    assert any("containerd_install_source distro installs Debian's containerd 1.7" in p for p in problems), problems


def test_every_problem_of_a_node_is_reported_at_once() -> None:
    settings = PINNED | {
        "kubeadm_control_plane_endpoint": "10.0.0.10",
        "calico_encapsulation": "IPIP",
        "kubeadm_control_plane_kubernetes_version": "1.33.0",
        "inventory_hostname": "lab-cp1",
    }
    problems = cluster_problems(settings, ["cp1", "cp2"], installed_kubeadm="1.33.1-1.1", upgrading=True)
    named = [problem.split()[0].rstrip(":") for problem in problems]
    assert named == [
        "sensorstack_control_plane_group",
        "kubeadm_control_plane_kubernetes_version",
        "kubeadm_control_plane_endpoint",
        "calico_encapsulation",
        "sensorstack_kubernetes_version",
    ]


@pytest.mark.parametrize("installed", ["1.34.2-1.1", "1.35.3-1.1"])
def test_outside_the_upgrade_playbook_the_version_does_not_move(installed: str) -> None:
    [problem] = upgrade_problems("lab-cp1", installed, "1.35.4", upgrading=False)
    assert problem.startswith("sensorstack_kubernetes_version 1.35.4 differs from kubeadm")
    assert "playbooks/upgrade.yml" in problem
    assert upgrade_problems("lab-cp1", "1.35.4-1.1", "1.35.4", upgrading=False) == []


def test_the_value_first_form_for_map_is_the_same_check() -> None:
    from ansible_collections.sensorstack.iot.plugins.filter.cluster_checks import FilterModule

    of = FilterModule().filters()["endpoint_problems_of"]
    assert of("10.0.0.1:6443", "apiserver_lb_backends") == []
    assert of("10.0.0.1", "apiserver_lb_backends") == endpoint_problems("apiserver_lb_backends", "10.0.0.1")


def test_node_addresses_prefer_the_advertised_address_then_facts() -> None:
    hostvars = {
        "cp1": {"sensorstack_node_ip": "10.213.0.11"},
        "w1": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.21"}}},
        "w2": {},
    }
    assert node_addresses(["cp1", "w1", "w2"], hostvars) == ["10.213.0.11", "192.0.2.21", ""]


def test_a_node_leaves_with_its_known_address_and_each_interfaces_primary_addresses() -> None:
    facts = {
        "interfaces": ["lo", "eth0", "eth0_1", "eth1", "vxlan.calico", "br-lan"],
        "default_ipv4": {"address": "10.213.0.21", "interface": "eth0"},
        "lo": {"device": "lo", "ipv4": {"address": "127.0.0.1"}, "ipv6": [{"address": "::1", "scope": "host"}]},
        "eth0": {
            "device": "eth0",
            "ipv4": {"address": "10.213.0.21", "prefix": "24"},
            "ipv4_secondaries": [
                # A second address of the subnet: the kernel's secondary, which masquerading never picks.
                {"address": "10.213.0.40", "prefix": "24"},
                # A virtual IP that moves between nodes (keepalived): left out, so the policies stay put when it moves.
                {"address": "10.213.0.5", "prefix": "32"},
                # The first address of another subnet: a primary one, the source towards that subnet.
                {"address": "198.51.100.21", "prefix": "24"},
                # Another prefix over the same addresses is another subnet to the kernel: a primary one too.
                {"address": "10.213.0.41", "prefix": "16"},
            ],
        },
        # An address labelled eth0:1 (ifupdown): facts of its own, with no device.
        "eth0_1": {"ipv4": {"address": "203.0.113.21", "prefix": "24"}},
        # A second network card in the devices' network: a pod's traffic to another node there leaves from it.
        "eth1": {
            "device": "eth1",
            "ipv4": {"address": "192.0.2.21"},
            "ipv6": [{"address": "fd00::21", "scope": "global"}, {"address": "fe80::1", "scope": "link"}],
        },
        "vxlan.calico": {"device": "vxlan.calico", "ipv4": {"address": "10.244.1.0"}},
        # Facts name an interface with '-' written '_'.
        "br_lan": {"device": "br-lan", "ipv4": {"address": "192.0.2.121", "prefix": "24"}},
        # Not an interface, though it looks like one.
        "docker_bridge": {"device": "br0", "ipv4": {"address": "198.51.100.1"}},
    }
    hostvars = {
        "w1": {"sensorstack_node_ip": "10.213.0.121", "ansible_facts": facts},
        "w2": {"sensorstack_node_ip": "10.213.0.22"},
    }

    assert node_source_addresses(["w1", "w2"], hostvars) == [
        "10.213.0.21",
        "10.213.0.22",
        "10.213.0.41",
        "10.213.0.121",
        "10.244.1.0",
        "192.0.2.21",
        "192.0.2.121",
        "198.51.100.21",
        "203.0.113.21",
        "fd00::21",
    ]


def test_a_node_whose_only_address_is_a_32_leaves_with_it() -> None:
    # Some hosting gives a server a /32 on its main interface: the first address is the primary, whatever its prefix.
    facts = {
        "interfaces": ["eth0", "eth1"],
        "default_ipv4": {"address": "203.0.113.7"},
        "eth0": {"device": "eth0", "ipv4": {"address": "203.0.113.7", "prefix": "32"}},
        "eth1": {"device": "eth1", "ipv4": {"address": "192.0.2.7", "prefix": "32"}},
    }
    assert node_source_addresses(["w1"], {"w1": {"ansible_facts": facts}}) == ["192.0.2.7", "203.0.113.7"]


def test_a_node_of_which_no_address_is_known_is_left_out_when_told() -> None:
    hostvars = {"w1": {"sensorstack_node_ip": "10.213.0.21"}, "w2": {}}
    assert node_source_addresses(["w1", "w2"], hostvars, "skip") == ["10.213.0.21"]


def test_a_node_of_which_no_address_is_known_is_named() -> None:
    with pytest.raises(AnsibleFilterError, match=r"cluster node w2, which .*: set sensorstack_node_ip for it"):
        node_source_addresses(["w1", "w2"], {"w1": {"sensorstack_node_ip": "10.213.0.21"}, "w2": {}})


@pytest.mark.parametrize(
    ("address", "expected"),
    [("10.213.0.11", "10.213.0.11:6443"), ("cp1.lab", "cp1.lab:6443"), ("fd00::11", "[fd00::11]:6443")],
)
def test_host_port_puts_an_ipv6_address_in_brackets_and_passes_the_endpoint_check(address: str, expected: str) -> None:
    assert host_port(address, 6443) == expected
    assert endpoint_problems("apiserver_lb_backends", expected) == []


CONTROL_PLANES = ["cp1", "cp2", "cp3"]


@pytest.mark.parametrize(
    "initialised",
    [{}, {"cp1": True}, {"cp1": True, "cp2": True, "cp3": True}, {"cp1": True, "cp2": False}],
    ids=["a new cluster", "one control plane so far", "all three", "a reset extra control plane"],
)
def test_a_first_control_plane_that_runs_the_cluster_or_a_new_cluster_passes(initialised: dict[str, bool]) -> None:
    assert first_control_plane_problems("control_plane", CONTROL_PLANES, initialised) == []


def test_a_first_control_plane_without_the_cluster_the_others_run_is_refused() -> None:
    [problem] = first_control_plane_problems("control_plane", CONTROL_PLANES, {"cp1": False, "cp2": True, "cp3": True})
    assert problem.startswith("sensorstack_control_plane_group: cp1, the first host of group 'control_plane'")
    assert "while cp2, cp3 run one" in problem
    assert "List cp2 first in the group, and cp1 joins their cluster" in problem


def test_a_first_control_plane_that_did_not_answer_is_not_judged() -> None:
    assert first_control_plane_problems("control_plane", CONTROL_PLANES, {"cp2": True, "cp3": True}) == []


def test_no_control_plane_means_nothing_to_compare() -> None:
    assert first_control_plane_problems("control_plane", [], {"cp1": True}) == []


MIRRORED = {"sensorstack_mirror": "http://bundle.lab.example:8080", "architecture": "x86_64"}


def test_a_mirrored_node_with_the_distributions_runtime_or_a_mirrored_repository_passes() -> None:
    assert mirror_problems(MIRRORED | {"docker_install_source": "distro"}) == []
    assert mirror_problems(MIRRORED | {"docker_repo_url": "https://mirror.lab.example/docker/debian"}) == []
    assert mirror_problems({"architecture": "aarch64"}) == []  # no mirror: upstream serves every architecture


def test_a_mirrored_node_that_would_reach_dockers_repository_is_refused_before_any_change() -> None:
    [problem] = cluster_problems(PINNED | MIRRORED, ["cp1"])
    assert problem.startswith("sensorstack_mirror is set (http://bundle.lab.example:8080), but docker_install_source")
    assert "set docker_install_source to distro" in problem and "or docker_repo_url to a mirror" in problem


def test_a_node_of_another_architecture_than_the_bundles_is_refused() -> None:
    [problem] = mirror_problems(
        MIRRORED | {"docker_install_source": "distro", "architecture": "aarch64", "inventory_hostname": "pi4"}
    )
    assert problem.endswith("the bundle holds x86_64 packages and images only, but pi4 is aarch64")
