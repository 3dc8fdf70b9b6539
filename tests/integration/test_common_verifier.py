"""The common role's testinfra tests can fail: run against a host the role never touched, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. The unconverged host gets
the same preparation as in the molecule scenario (a swap line in /etc/fstab) and nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .ansible_module import ROOT
from .conftest import write_inventory
from .verifier import docker_host_inventory, run_verifier

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
    inventory = write_inventory(tmp_path, docker_host_inventory("unconverged", container))
    _passed, not_passed = run_verifier([VERIFIER], inventory, tmp_path)
    assert not_passed == EXPECTED_FAILURES
