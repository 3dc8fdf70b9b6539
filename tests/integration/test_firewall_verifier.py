"""The firewall scenario's testinfra tests can fail: run against cluster nodes without the role's firewall, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. Two hosts in the workers group,
as in the scenario (the kubelet test probes from the other node), get the scenario's own prepare.yml and inventory:
its listeners on the opened, the closed and the kubelet's port run, and nothing filters them, which is what a
forgotten role run leaves. A closed port then answers everyone and no table or unit of the role's exists, so those
tests must fail. The others pass on any host whose listeners run and whose ports are all open: not evidence of the
role, but they are what makes a dropped port the firewall's doing, and they are listed apart so a change is noticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .ansible_module import ROOT
from .conftest import run_playbook, write_inventory
from .verifier import docker_host_inventory, run_verifier

SCENARIO = ROOT / "molecule/firewall"
VERIFIER = SCENARIO / "tests/test_firewall.py"
# The scenario's platforms (.config/molecule/config.yml): one node of each Debian release.
IMAGES = ("debian12", "debian13")

EXPECTED_FAILURES = {
    "test_a_port_without_a_rule_for_this_source_is_dropped",
    "test_the_rules_are_one_table_of_their_own_loaded_at_boot",
}
# What any host with the listeners and no firewall does: not evidence of the role, but not wrong either.
EXPECTED_PASSES = {
    "test_every_listener_runs_so_a_closed_port_is_the_firewalls_doing",
    "test_the_opened_port_answers_from_outside",
    "test_another_cluster_node_reaches_the_kubelets_port",
}


def workers_inventory(containers: dict[str, str], variables: dict[str, Any]) -> dict[str, Any]:
    """An inventory of lab containers ({inventory name: container}), all in ``sensorstack`` and ``workers``."""
    first, *others = (
        docker_host_inventory(host, container, ("workers",), variables) for host, container in containers.items()
    )
    for other in others:
        for group, members in other["all"]["children"].items():
            first["all"]["children"][group]["hosts"] |= members["hosts"]
    return first


def test_the_verifier_fails_on_nodes_without_the_firewall(lab_host_factory, tmp_path: Path) -> None:
    containers = {
        f"firewall-unconfigured-{image}": lab_host_factory(f"verifier-firewall-{image}", image) for image in IMAGES
    }
    molecule = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    variables = molecule["provisioner"]["inventory"]["group_vars"]["all"]
    inventory = write_inventory(tmp_path, workers_inventory(containers, variables))
    prepare = run_playbook(str(SCENARIO / "prepare.yml"), inventory)
    assert prepare.returncode == 0, prepare.output
    passed, not_passed = run_verifier([VERIFIER], inventory, tmp_path)
    assert not_passed == EXPECTED_FAILURES
    assert passed == EXPECTED_PASSES
