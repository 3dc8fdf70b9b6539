"""firewall_rule_problems, firewall_statements and node_addresses: the firewall role's rule checks and rendering;
firewall_ssh_connection and firewall_sources_admit: what keeps the rules from shutting out Ansible's SSH session."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.firewall import (
    firewall_rule_problems,
    firewall_settings_problems,
    firewall_sources_admit,
    firewall_ssh_connection,
    firewall_statements,
)


def test_a_rule_from_anywhere_is_one_statement_with_its_name() -> None:
    assert firewall_statements([{"name": "ssh", "ports": [22]}]) == ['tcp dport { 22 } accept comment "ssh"']


def test_sources_are_split_by_address_family_and_ranges_kept() -> None:
    rule = {"name": "etcd", "ports": ["2379-2380"], "sources": ["10.244.0.0/16", "fd00::/64", "10.213.0.11"]}
    assert firewall_statements([rule]) == [
        'ip saddr { 10.213.0.11/32, 10.244.0.0/16 } tcp dport { 2379-2380 } accept comment "etcd"',
        'ip6 saddr { fd00::/64 } tcp dport { 2379-2380 } accept comment "etcd"',
    ]


def test_udp_and_ip_in_ip_rules() -> None:
    rules = [
        {"name": "calico vxlan", "ports": [4789], "protocol": "udp", "sources": ["10.0.0.0/8"]},
        {"name": "calico ipip", "protocol": "ipip", "sources": []},
    ]
    assert firewall_statements(rules) == [
        'ip saddr { 10.0.0.0/8 } udp dport { 4789 } accept comment "calico vxlan"',
        'meta l4proto 4 accept comment "calico ipip"',
    ]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"name": "x", "ports": [0]}, "firewall_extra_rules[0].ports: 0 is not a port"),
        ({"name": "x", "ports": [70000]}, "70000 is not a port"),
        ({"name": "x", "ports": ["9000-8000"]}, "not a range of ports with low < high"),
        ({"name": "x", "ports": ["http"]}, "'http' is neither a port nor a low-high range"),
        ({"name": "x", "ports": 22}, "firewall_extra_rules[0].ports must be a list"),
        ({"name": "x", "ports": []}, "firewall_extra_rules[0].ports is empty"),
        ({"name": "x", "ports": [4], "protocol": "ipip"}, "protocol ipip, which has no ports"),
        ({"name": "x", "ports": [1], "protocol": "sctp"}, "protocol must be one of tcp, udp, ipip"),
        ({"name": "x", "ports": [1], "sources": ["10.0.0.0/33"]}, "'10.0.0.0/33' is not a CIDR or an address"),
        ({"name": "x", "ports": [1], "sources": "10.0.0.0/8"}, "sources must be a list"),
        ({"name": 'a"; drop', "ports": [1]}, "firewall_extra_rules[0].name must be"),
        ({"name": "x", "port": [1]}, "unknown keys ['port']"),
        ("ssh", "firewall_extra_rules[0] must be a mapping"),
    ],
)
def test_a_bad_rule_is_named_with_its_variable_and_index(rule: object, problem: str) -> None:
    problems = firewall_rule_problems([rule], "firewall_extra_rules")
    assert any(problem in message for message in problems), problems


def test_good_rules_have_no_problem_and_a_bad_list_is_refused() -> None:
    assert firewall_rule_problems([{"name": "mqtt", "ports": [1883, "8883"], "sources": []}], "v") == []
    assert firewall_rule_problems("22", "firewall_extra_rules") == [
        "firewall_extra_rules must be a list of rules, got '22'"
    ]


def test_rendering_refuses_a_rule_the_checks_refuse() -> None:
    with pytest.raises(AnsibleFilterError, match="is not a port"):
        firewall_statements([{"name": "x", "ports": [0]}])


def test_preflight_names_each_variable_with_a_bad_rule() -> None:
    settings = {
        "firewall_extra_rules": [{"name": "ok", "ports": [1]}, {"name": "bad", "ports": [0]}],
        "firewall_node_rules": [{"name": "x", "protocol": "gre"}],
    }
    problems = firewall_settings_problems(settings)
    assert len(problems) == 2
    assert problems[0].startswith("firewall_extra_rules[1].ports")
    assert problems[1].startswith("firewall_node_rules[0].protocol")


def test_ssh_connection_gives_the_client_address_and_the_port_sshd_answers_on() -> None:
    assert firewall_ssh_connection("192.0.2.7 51234 198.51.100.5 2222\n") == {
        "client": "192.0.2.7",
        "client_port": 51234,
        "server": "198.51.100.5",
        "server_port": 2222,
    }
    # IPv6, and an IPv4 client seen through a dual-stack socket, as nftables sees it (IPv4).
    assert firewall_ssh_connection("2001:db8::7 51234 2001:db8::5 22")["client"] == "2001:db8::7"
    assert firewall_ssh_connection("::ffff:192.0.2.7 51234 ::ffff:198.51.100.5 22")["client"] == "192.0.2.7"


@pytest.mark.parametrize(
    "text",
    ["", None, "   ", "192.0.2.7 51234 198.51.100.5", "192.0.2.7 x 198.51.100.5 22", "host 1 198.51.100.5 22",
     "192.0.2.7 51234 198.51.100.5 0"],
    ids=["empty", "none", "blank", "three fields", "port not a number", "not an address", "port zero"],
)  # fmt: skip
def test_an_empty_or_unreadable_ssh_connection_gives_nothing_to_check(text: object) -> None:
    assert firewall_ssh_connection(text) == {}


@pytest.mark.parametrize(
    ("address", "sources", "admitted"),
    [
        ("192.0.2.7", [], True),
        ("192.0.2.7", ["10.0.0.0/8", "192.0.2.0/24"], True),
        ("192.0.2.7", ["192.0.2.7"], True),
        ("192.0.2.7", ["10.0.0.0/8", "192.0.2.8"], False),
        ("192.0.2.7", ["2001:db8::/32"], False),
        ("2001:db8::7", ["2001:db8::/32"], True),
        ("::ffff:192.0.2.7", ["192.0.2.0/24"], True),
        ("fe80::7%eth0", ["fe80::/64"], True),
        # A malformed source is the rule checks' to name: it admits nothing, and raises nothing.
        ("192.0.2.7", ["10.0.0.0/33", "192.0.2.0/24"], True),
        ("192.0.2.7", ["10.0.0.0/33"], False),
    ],
)
def test_sources_admit_an_address_inside_one_of_them_or_anything_when_empty(
    address: str, sources: list[str], admitted: bool
) -> None:
    assert firewall_sources_admit(address, sources) is admitted


def test_sources_admit_refuses_what_is_not_an_address() -> None:
    with pytest.raises(AnsibleFilterError, match="'controller' is not an address"):
        firewall_sources_admit("controller", [])
