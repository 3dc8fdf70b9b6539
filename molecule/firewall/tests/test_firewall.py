"""What the firewall role lets in, tried from outside: from this machine (not in the cluster's networks) and from
the other host of the scenario (a cluster node, like this one).

An opened port answers, a port without a rule times out (dropped, not refused), the kubelet's port answers the other
node only. The rules are loaded from the role's unit, which is enabled for boot.
"""

from __future__ import annotations

import socket

import pytest
import testinfra

OPENED, CLOSED, CLUSTER = 8001, 8002, 10250


def address(host) -> str:
    return host.ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def answer(target: str, port: int) -> str:
    """answered, dropped (no reply within 3 s: a firewall's drop) or refused (a reset: nothing listens, no drop)."""
    try:
        with socket.create_connection((target, port), timeout=3):
            return "answered"
    except TimeoutError:
        return "dropped"
    except ConnectionRefusedError:
        return "refused"


def test_every_listener_runs_so_a_closed_port_is_the_firewalls_doing(host) -> None:
    for port in (OPENED, CLOSED, CLUSTER):
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening, port


def test_the_opened_port_answers_from_outside(host) -> None:
    assert answer(address(host), OPENED) == "answered"


@pytest.mark.parametrize("port", [CLOSED, CLUSTER])
def test_a_port_without_a_rule_for_this_source_is_dropped(host, port: int) -> None:
    assert answer(address(host), port) == "dropped"


def test_another_cluster_node_reaches_the_kubelets_port(host) -> None:
    inventory = host.backend.ansible_inventory
    peers = [
        name for name in host.backend.get_hosts("workers", ansible_inventory=inventory) if name != host.backend.host
    ]
    assert peers, "the scenario needs two nodes"
    probe = f"import socket; socket.create_connection(('{address(host)}', {CLUSTER}), timeout=3)"
    peer = testinfra.get_host(f"ansible://{peers[0]}", ansible_inventory=inventory)
    assert peer.run("python3 -c %s", probe).rc == 0


def test_the_rules_are_one_table_of_their_own_loaded_at_boot(host) -> None:
    unit = host.service("sensorstack-firewall")
    assert unit.is_enabled and unit.is_running  # a oneshot that stays active after loading the rules
    table = host.check_output("nft list table inet sensorstack")
    assert "hook input priority filter; policy drop;" in table
    # Docker's and Kubernetes' tables are left alone: nothing here flushes the ruleset.
    assert "flush ruleset" not in host.file("/etc/sensorstack/firewall.nft").content_string
