"""The firewall role: its spec mirrors its defaults, each host group gets exactly its ports, the stack's ports follow
the stack roles' own defaults, and the rendered nftables file drops what it does not name.

nft itself checks the rendered file (``nft --check``) when the role writes it; molecule/firewall loads it on Debian 12
and 13 and connects to an opened and a closed port from outside.
"""

from __future__ import annotations

from typing import Any

import pytest
from yaml import safe_load as yaml_load

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("firewall")
TEMPLATE = (ROOT / "roles/firewall/templates/firewall.nft.j2").read_text()
GROUPS = {"control_plane": ["cp1"], "workers": ["w1", "w2"], "edge": ["edge1"]}
HOSTVARS = {
    "cp1": {"sensorstack_node_ip": "10.213.0.11"},
    "w1": {"sensorstack_node_ip": "10.213.0.21"},
    "w2": {"ansible_facts": {"default_ipv4": {"address": "10.213.0.22"}}},
    "edge1": {"sensorstack_node_ip": "10.213.0.31"},
}


def render(expression: str, host: str, **overrides: Any) -> Any:
    return ROLE.render(
        expression,
        **{
            "groups": GROUPS,
            "hostvars": HOSTVARS,
            "inventory_hostname": host,
            "ansible_managed": "managed",
            **overrides,
        },
    )


def ports(rules: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {rule["name"]: list(rule.get("ports", [])) for rule in rules}


def test_a_control_plane_node_opens_kubeadms_and_calicos_ports_once_each() -> None:
    # The controller manager (10257) and the scheduler (10259) listen on loopback: no rule.
    assert ports(render("{{ firewall_rules }}", "cp1")) == {
        "ssh": [22],
        "kubernetes API": [6443],
        "etcd": ["2379-2380"],
        "kubelet": [10250],
        "calico vxlan": [4789],
        "calico typha": [5473],
        "calico bgp": [179],
        "calico ipip": [],
    }


NODES = ["10.213.0.11", "10.213.0.21", "10.213.0.22"]


def test_a_worker_opens_the_kubelet_to_nodes_and_pods_and_calico_to_the_nodes_only() -> None:
    rules = {rule["name"]: rule for rule in render("{{ firewall_rules }}", "w1")}
    assert list(rules) == ["ssh", "kubelet", "calico vxlan", "calico typha", "calico bgp", "calico ipip"]
    assert rules["kubelet"]["sources"] == [*NODES, "10.244.0.0/16"]
    # A pod could otherwise talk BGP to its own node, or reach Typha and the tunnels.
    assert all(rules[name]["sources"] == NODES for name in list(rules)[2:])


def test_etcd_is_open_to_the_control_plane_nodes_only_whatever_the_host_networks() -> None:
    for overrides in ({}, {"sensorstack_host_cidrs": ["10.213.0.0/24"]}):
        [etcd] = [rule for rule in render("{{ firewall_rules }}", "cp1", **overrides) if rule["name"] == "etcd"]
        assert etcd["sources"] == ["10.213.0.11"], overrides


def test_the_host_networks_replace_the_node_addresses_when_set() -> None:
    assert render("{{ firewall_node_sources }}", "w1", sensorstack_host_cidrs=["10.213.0.0/24"]) == ["10.213.0.0/24"]


def test_an_edge_host_opens_the_stack_roles_listeners_and_no_cluster_port() -> None:
    assert ports(render("{{ firewall_rules }}", "edge1")) == {
        "ssh": [22],
        "mqtt": [1883],
        "influxdb": [8086],
        "grafana": [3000],
    }


def test_the_stack_ports_follow_the_inventory_and_skip_loopback_listeners() -> None:
    rules = render(
        "{{ firewall_rules }}",
        "edge1",
        mosquitto_listeners=[{"port": 1883}, {"port": 8883, "tls": True}],
        influxdb_http_address="127.0.0.1",
        grafana_http_port=3001,
    )
    assert ports(rules) == {"ssh": [22], "mqtt": [1883, 8883], "grafana": [3001]}


@pytest.mark.parametrize(
    ("role", "variable", "fallback"),
    [
        ("mosquitto", "mosquitto_listeners", [{"port": 1883}]),
        ("influxdb", "influxdb_http_port", 8086),
        ("influxdb", "influxdb_http_address", ""),
        ("grafana", "grafana_http_port", 3000),
        ("grafana", "grafana_http_addr", ""),
    ],
)
def test_the_fallbacks_are_the_stack_roles_own_defaults(role: str, variable: str, fallback: Any) -> None:
    assert RoleFiles.load(role).defaults[variable] == fallback


def test_the_rules_file_drops_by_default_and_accepts_only_the_named_ports() -> None:
    text = render(TEMPLATE, "w1", firewall_extra_rules=[{"name": "node exporter", "ports": [9100]}])
    assert "type filter hook input priority filter; policy drop;" in text
    assert "ct state established,related accept" in text
    assert 'iif "lo" accept' in text
    accepted = [line.strip() for line in text.splitlines() if line.strip().endswith('"') and " accept " in line]
    assert accepted[0] == 'tcp dport { 22 } accept comment "ssh"'
    assert accepted[-1] == 'tcp dport { 9100 } accept comment "node exporter"'
    assert (
        "ip saddr { 10.213.0.11/32, 10.213.0.21/32, 10.213.0.22/32 } udp dport { 4789 }"
        ' accept comment "calico vxlan"' in accepted
    )
    # The table replaces itself in one transaction, and nothing but the input hook is filtered.
    assert text.index("delete table inet sensorstack") < text.index("table inet sensorstack {")
    assert "hook forward" not in text and "hook output" not in text


def test_an_api_limited_to_operators_still_lets_in_the_clusters_own_networks() -> None:
    # The nodes' load balancers and kubelets, and pods through the kubernetes Service, reach the API too.
    rules = render("{{ firewall_rules }}", "cp1", firewall_api_sources=["192.0.2.0/24"])
    [api] = [rule for rule in rules if rule["name"] == "kubernetes API"]
    assert api["sources"][0] == "192.0.2.0/24"
    assert api["sources"] == ["192.0.2.0/24", *NODES, "10.244.0.0/16"]
    # Left empty, the API is open to anywhere.
    [open_api] = [rule for rule in render("{{ firewall_rules }}", "cp1") if rule["name"] == "kubernetes API"]
    assert open_api["sources"] == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, [22]),
        ({"ansible_port": 2211}, [22, 2211]),
        ({"ansible_port": 22}, [22]),
        ({"firewall_ssh_port": 2222, "ansible_port": 2222}, [2222]),
    ],
    ids=["no ansible_port", "forwarded port", "the same port", "sshd elsewhere"],
)
def test_ssh_is_open_on_the_hosts_port_and_on_the_one_ansible_connects_to(overrides: dict, expected: list) -> None:
    assert ports(render("{{ firewall_rules }}", "edge1", **overrides))["ssh"] == expected


VALIDATE_TASKS = yaml_load((ROOT / "roles/firewall/tasks/validate.yml").read_text())
[READ_SESSION, VALIDATE] = VALIDATE_TASKS


def validate_problems(host: str, **overrides: Any) -> list[str]:
    return render(
        VALIDATE["vars"]["firewall_problems"],
        host,
        **{
            "firewall_enabled": True,
            **{name: value for name, value in VALIDATE["vars"].items() if name != "firewall_problems"},
            **overrides,
        },
    )


def test_a_cluster_node_without_a_known_address_is_named_before_the_rules_fail_on_it() -> None:
    problems = validate_problems("cp1", hostvars={**HOSTVARS, "w2": {}})
    assert problems[0].startswith("the firewall of cluster node cp1 lets in the other nodes by their addresses")
    assert "none is known for w2:" in " ".join(problems[0].split())
    # With the addresses known, no such problem.
    assert validate_problems("cp1") == []


def test_with_host_networks_only_etcd_needs_the_control_planes_addresses() -> None:
    cidrs = {"sensorstack_host_cidrs": ["10.213.0.0/24"]}
    assert validate_problems("w1", hostvars={**HOSTVARS, "cp1": {}}, **cidrs) == []
    problems = validate_problems("cp1", hostvars={**HOSTVARS, "cp1": {}}, **cidrs)
    assert "none is known for cp1:" in " ".join(problems[0].split())


def test_the_old_cluster_sources_variable_and_an_etcd_open_to_anywhere_are_refused() -> None:
    [renamed] = validate_problems("w1", firewall_cluster_sources=["10.0.0.0/8"])
    assert renamed.startswith("firewall_cluster_sources is no longer read")
    assert "set firewall_node_sources" in " ".join(renamed.split())
    [anywhere] = validate_problems("cp1", firewall_control_plane_sources=[])
    assert anywhere.startswith("firewall_control_plane_sources is empty on control-plane node cp1")


# --- Ansible's own SSH session -------------------------------------------------------------------------------

CONTROLLER = "192.0.2.7"


def session(server_port: int = 22, client: str = CONTROLLER) -> dict[str, Any]:
    """The registered result of the task that reads SSH_CONNECTION on the host."""
    return {"rc": 0, "stdout": f"{client} 51234 198.51.100.5 {server_port}", "changed": False}


def test_the_session_is_read_before_any_check_without_become_and_in_check_mode_too() -> None:
    # Read first (VALIDATE_TASKS unpacks in this order), then checked.
    assert "ansible.builtin.assert" in VALIDATE
    assert READ_SESSION["ansible.builtin.command"] == {"argv": ["printenv", "SSH_CONNECTION"]}
    # sudo's env_reset drops SSH_CONNECTION; check mode would skip a command that is not told it only reads.
    assert (READ_SESSION["become"], READ_SESSION["check_mode"], READ_SESSION["changed_when"]) == (False, False, False)
    assert READ_SESSION["register"] == "firewall_ssh_environment"
    main = yaml_load((ROOT / "roles/firewall/tasks/main.yml").read_text())
    assert main[0] == {"name": main[0]["name"], "ansible.builtin.import_tasks": "validate.yml"}


@pytest.mark.parametrize(
    ("connection", "read"),
    [(None, True), ("ssh", True), ("paramiko", True), ("smart", True), ("ansible.builtin.ssh", True),
     ("docker", False), ("local", False), ("community.docker.docker", False)],
)  # fmt: skip
def test_the_session_is_read_over_ssh_only_not_in_the_lab_or_on_localhost(connection: str | None, read: bool) -> None:
    overrides = {} if connection is None else {"ansible_connection": connection}
    assert render("{{ " + READ_SESSION["when"] + " }}", "edge1", firewall_enabled=True, **overrides) is read
    assert render("{{ " + READ_SESSION["when"] + " }}", "edge1", firewall_enabled=False, **overrides) is False


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"firewall_ssh_environment": session(2200)}, [22, 2200]),
        ({"firewall_ssh_environment": session(22)}, [22]),
        ({"firewall_ssh_environment": session(2200), "ansible_port": 2200}, [22, 2200]),
        ({"firewall_ssh_environment": session(22), "ansible_port": 2211}, [22, 2211]),
        ({"firewall_ssh_environment": {"rc": 1, "stdout": ""}}, [22]),
        ({"firewall_ssh_environment": {"skipped": True, "changed": False}}, [22]),
    ],
    ids=["sshd elsewhere, from ssh_config", "the same port", "ansible_port too", "forwarded port",
         "SSH_CONNECTION empty", "not over ssh"],
)  # fmt: skip
def test_ssh_is_open_on_the_port_sshd_answers_ansibles_session_on(overrides: dict, expected: list) -> None:
    assert ports(render("{{ firewall_rules }}", "edge1", **overrides))["ssh"] == expected


def test_ssh_sources_that_leave_out_the_controller_stop_the_role_naming_them_and_the_address() -> None:
    [problem] = validate_problems(
        "edge1", firewall_ssh_sources=["10.0.0.0/8", "198.51.100.0/24"], firewall_ssh_environment=session()
    )
    problem = " ".join(problem.split())
    assert problem.startswith("firewall_ssh_sources (10.0.0.0/8, 198.51.100.0/24) does not let in 192.0.2.7,")
    assert "the address Ansible connects to edge1 from:" in problem


@pytest.mark.parametrize(
    "overrides",
    [
        {"firewall_ssh_sources": ["192.0.2.0/24"], "firewall_ssh_environment": session()},
        {"firewall_ssh_sources": [], "firewall_ssh_environment": session()},
        {"firewall_ssh_sources": ["10.0.0.0/8"], "firewall_ssh_environment": {"rc": 1, "stdout": ""}},
        {"firewall_ssh_sources": ["10.0.0.0/8"], "firewall_ssh_environment": {"skipped": True}},
        {"firewall_ssh_sources": ["10.0.0.0/8"], "firewall_ssh_environment": session(), "firewall_enabled": False},
    ],
    ids=["controller inside", "open to anywhere", "SSH_CONNECTION empty", "not over ssh", "firewall off"],
)
def test_ssh_sources_are_not_refused_when_they_admit_the_controller_or_nothing_is_known(overrides: dict) -> None:
    assert validate_problems("edge1", **overrides) == []
