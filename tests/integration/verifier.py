"""Run a molecule scenario's testinfra files against a lab container the role never touched.

Molecule proves a verifier passes after a converge; the tests built on these helpers prove it fails without one.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

from sensorstack.lab.containers import LAB_CONNECTION

from .ansible_module import ansible_environment


def docker_host_inventory(
    host: str, container: str, groups: tuple[str, ...] = (), variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An inventory of one lab container reached over ``docker exec``, in ``sensorstack`` and ``groups``."""
    children: dict[str, Any] = {"sensorstack": {"hosts": {host: {"ansible_host": container}}}}
    children |= {group: {"hosts": {host: None}} for group in groups}
    return {
        "all": {
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                **(variables or {}),
            },
            "children": children,
        }
    }


def verifier_test_names(path: Path) -> set[str]:
    """The test functions a testinfra file defines."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def run_verifier(files: list[Path], inventory: Path, directory: Path) -> tuple[set[str], set[str]]:
    """Run testinfra ``files`` against every host of ``inventory``: (tests that passed, tests that did not)."""
    result = subprocess.run(
        ["pytest", "-p", "no:cacheprovider", "-rA", "--hosts=ansible://all", f"--ansible-inventory={inventory}"]
        + [str(path) for path in files],
        cwd=directory,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    outcome = re.findall(r"^(PASSED|FAILED|ERROR) \S+::(test_\w+)", result.stdout, flags=re.MULTILINE)
    if not outcome:
        raise AssertionError(f"the verifier ran no test:\n{result.stdout}\n{result.stderr}")
    passed = {name for status, name in outcome if status == "PASSED"}
    return passed, {name for status, name in outcome if status != "PASSED"}
