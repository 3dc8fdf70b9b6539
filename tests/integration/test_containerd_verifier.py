"""The containerd scenario's testinfra tests can fail: run against a host the role never touched, every one must.

Molecule proves the tests pass after a converge; this proves none of them passes without it. The unconverged
host gets the scenario's own prepare.yml and inventory, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .ansible_module import ROOT
from .conftest import run_playbook, write_inventory
from .verifier import docker_host_inventory, run_verifier, verifier_test_names

SCENARIO = ROOT / "molecule/containerd"


def outcomes_on_unconverged_host(scenario: Path, container: str, directory: Path) -> tuple[set[str], set[str]]:
    """Run the scenario's prepare.yml, then its verifier; return the tests that passed and those that did not."""
    molecule = yaml.safe_load((scenario / "molecule.yml").read_text())
    variables = molecule["provisioner"]["inventory"]["group_vars"]["all"]
    inventory = write_inventory(directory, docker_host_inventory("unconverged", container, ("workers",), variables))
    prepare = run_playbook(str(scenario / "prepare.yml"), inventory)
    assert prepare.returncode == 0, prepare.output
    return run_verifier(sorted((scenario / "tests").glob("test_*.py")), inventory, directory)


def test_every_containerd_verifier_test_fails_on_an_unconverged_host(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("containerd-unconverged", "debian12")
    passed, not_passed = outcomes_on_unconverged_host(SCENARIO, container, tmp_path)
    assert passed == set(), f"these tests pass without the role: {sorted(passed)}"
    assert not_passed == verifier_test_names(SCENARIO / "tests/test_containerd.py")
