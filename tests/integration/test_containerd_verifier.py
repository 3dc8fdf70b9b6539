"""The containerd scenario's testinfra tests can fail: run against a host the role never touched, every one must.

Molecule proves the tests pass after a converge; this proves none of them passes without it. The unconverged
host gets the scenario's own prepare.yml and inventory, and nothing else.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .ansible_module import ROOT, ansible_environment
from .conftest import run_playbook, write_inventory

SCENARIO = ROOT / "molecule/containerd"


def verifier_test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def scenario_inventory(scenario: Path, container: str) -> dict[str, Any]:
    """The scenario's inventory variables and groups, for one host in the given container."""
    molecule = yaml.safe_load((scenario / "molecule.yml").read_text())
    group_vars = molecule["provisioner"]["inventory"]["group_vars"]["all"]
    return {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
                **group_vars,
            },
            "children": {
                "sensorstack": {"hosts": {"unconverged": {"ansible_host": container}}},
                "workers": {"hosts": {"unconverged": None}},
            },
        }
    }


def outcomes_on_unconverged_host(scenario: Path, container: str, directory: Path) -> tuple[set[str], set[str]]:
    """Run the scenario's prepare.yml, then its verifier; return the tests that passed and those that did not."""
    inventory = write_inventory(directory, scenario_inventory(scenario, container))
    prepare = run_playbook(str(scenario / "prepare.yml"), inventory)
    assert prepare.returncode == 0, prepare.output
    result = subprocess.run(
        ["pytest", "-p", "no:cacheprovider", "-rA", "--hosts=ansible://all", f"--ansible-inventory={inventory}"]
        + [str(path) for path in sorted((scenario / "tests").glob("test_*.py"))],
        cwd=directory,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    outcome = re.findall(r"^(PASSED|FAILED|ERROR) \S+::(test_\w+)", result.stdout, flags=re.MULTILINE)
    passed = {name for status, name in outcome if status == "PASSED"}
    return passed, {name for status, name in outcome if status != "PASSED"}


def test_every_containerd_verifier_test_fails_on_an_unconverged_host(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("containerd-unconverged", "debian12")
    passed, not_passed = outcomes_on_unconverged_host(SCENARIO, container, tmp_path)
    assert passed == set(), f"these tests pass without the role: {sorted(passed)}"
    assert not_passed == verifier_test_names(SCENARIO / "tests/test_containerd.py")
