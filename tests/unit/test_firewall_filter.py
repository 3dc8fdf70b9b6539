"""firewall_rule_problems, firewall_statements and node_addresses: the firewall role's rule checks and rendering."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.firewall import (
    firewall_rule_problems,
    firewall_settings_problems,
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
