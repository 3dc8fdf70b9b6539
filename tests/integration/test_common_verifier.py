"""The common role's testinfra tests can fail: run against a host the role never touched, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. The unconverged host gets
the same preparation as in the molecule scenario (a swap line in /etc/fstab) and nothing else.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .ansible_module import ROOT, ansible_environment
from .conftest import write_inventory

VERIFIER = ROOT / "molecule/common/tests/test_common.py"

EXPECTED_FAILURES = {
    "test_kernel_modules_are_persisted_for_boot",
    "test_sysctls_are_persisted_for_boot",
    "test_no_swap_is_declared_in_fstab",
    "test_base_packages_are_installed",
    "test_time_sync_daemon_is_enabled",
    "test_etc_hosts_names_every_managed_host",
}


def test_the_verifier_fails_on_an_unconverged_host(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("unconverged", "debian13")
    subprocess.run(
        ["docker", "exec", container, "sh", "-c", "echo '/swapfile none swap sw 0 0' >> /etc/fstab"],
        check=True,
    )
    inventory = write_inventory(
        tmp_path,
        {
            "all": {
                "vars": {
                    "ansible_connection": "community.docker.docker",
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": {"sensorstack": {"hosts": {"unconverged": {"ansible_host": container}}}},
            }
        },
    )
    result = subprocess.run(
        [
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rfs",
            "--hosts=ansible://all",
            f"--ansible-inventory={inventory}",
            str(VERIFIER),
        ],
        cwd=tmp_path,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    failed = set(re.findall(r"^FAILED \S+::(test_\w+)", result.stdout, flags=re.MULTILINE))
    assert result.returncode == 1, result.stdout + result.stderr
    assert failed == EXPECTED_FAILURES, result.stdout
