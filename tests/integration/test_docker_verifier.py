"""The docker scenario's testinfra tests can fail: run against a host the role never touched, every one must.

Molecule proves the tests pass after a converge; this proves none of them passes without it. The unconverged
host gets the scenario's own prepare.yml and inventory, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from .ansible_module import ROOT
from .test_containerd_verifier import outcomes_on_unconverged_host
from .verifier import verifier_test_names

SCENARIO = ROOT / "molecule/docker"


def test_every_docker_verifier_test_fails_on_an_unconverged_host(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("docker-unconverged", "debian13")
    passed, not_passed = outcomes_on_unconverged_host(SCENARIO, container, tmp_path)
    assert passed == set(), f"these tests pass without the role: {sorted(passed)}"
    assert not_passed == verifier_test_names(SCENARIO / "tests/test_docker.py")
