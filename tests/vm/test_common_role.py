"""The common role on a VM changes the running kernel, which it must leave alone in a container.

The molecule scenario runs on containers, where the kernel checks of its verifier skip. Here the same prepare and
converge playbooks run against a VM, and the results are read back from the VM's kernel: lsmod, sysctl, swapon.
The molecule verifier then runs against the VM too, where its kernel checks must fail before the role and pass,
none skipped, after it; and a reboot shows that the settings come back on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from sensorstack.lab import vm
from tests.integration.ansible_module import ROOT
from tests.integration.verifier import run_verifier, verifier_test_names

from .conftest import VmLab

pytestmark = pytest.mark.vm

SCENARIO = ROOT / "molecule/common"
VERIFIER = SCENARIO / "tests/test_common.py"
DEFAULTS = yaml.safe_load((ROOT / "roles/common/defaults/main.yml").read_text())
EXPECTED_SYSCTLS = {key: str(value) for key, value in DEFAULTS["common_sysctls"].items()}
KERNEL_CHECKS = {
    "test_swap_is_off_where_the_kernel_is_ours",
    "test_running_kernel_has_the_settings_where_the_kernel_is_ours",
}

# One round trip: loaded modules, each sysctl (or MISSING when the kernel has no such key yet), active swap.
READ_KERNEL = """
echo "modules: $(lsmod | awk 'NR > 1 {print $1}' | tr '\\n' ' ')"
for key in KEYS; do echo "sysctl: $key=$(sysctl -n "$key" 2>/dev/null || echo MISSING)"; done
swapon --noheadings --show=NAME | sed 's/^/swap: /'
"""

MAKE_SWAP = """
fallocate -l 64M /swapfile
chmod 0600 /swapfile
mkswap /swapfile >/dev/null
swapon /swapfile
"""


@dataclass(frozen=True)
class KernelState:
    modules: set[str]
    sysctls: dict[str, str]
    swaps: list[str]


def read_kernel(lab: VmLab) -> KernelState:
    output = lab.sh(READ_KERNEL.replace("KEYS", " ".join(EXPECTED_SYSCTLS)))
    lines = [line.split(": ", 1) for line in output.splitlines() if ": " in line]
    modules = {name for kind, value in lines if kind == "modules" for name in value.split()}
    sysctls = dict(value.split("=", 1) for kind, value in lines if kind == "sysctl")
    return KernelState(modules, sysctls, [value for kind, value in lines if kind == "swap"])


@dataclass(frozen=True)
class Before:
    kernel: KernelState
    verifier_failures: set[str]


@pytest.fixture(scope="module")
def before(vm_lab: VmLab) -> Before:
    """The VM as an installer leaves it: an active swap file declared in /etc/fstab (molecule's prepare)."""
    vm_lab.sh(MAKE_SWAP)
    vm_lab.playbook(SCENARIO / "prepare.yml")
    kernel = read_kernel(vm_lab)
    _passed, not_passed = run_verifier([VERIFIER], vm_lab.inventory, vm_lab.inventory.parent)
    return Before(kernel, not_passed)


@pytest.fixture(scope="module")
def converged(before: Before, vm_lab: VmLab) -> KernelState:
    vm_lab.playbook(SCENARIO / "converge.yml")
    return read_kernel(vm_lab)


def test_before_the_role_the_kernel_is_unprepared_and_the_verifier_says_so(before: Before) -> None:
    assert before.kernel.swaps == ["/swapfile"]
    assert "br_netfilter" not in before.kernel.modules
    assert all(before.kernel.sysctls[key] != value for key, value in EXPECTED_SYSCTLS.items()), before.kernel
    assert before.verifier_failures >= KERNEL_CHECKS, "the verifier's kernel checks must run, and fail, on a VM"


def test_the_role_loads_the_kernel_modules(converged: KernelState) -> None:
    assert set(DEFAULTS["common_kernel_modules"]) <= converged.modules


def test_the_role_sets_the_running_sysctls(converged: KernelState) -> None:
    assert converged.sysctls == EXPECTED_SYSCTLS


def test_the_role_turns_swap_off(converged: KernelState) -> None:
    assert converged.swaps == []


def test_the_molecule_verifier_passes_with_nothing_skipped(converged: KernelState, vm_lab: VmLab) -> None:
    passed, not_passed = run_verifier([VERIFIER], vm_lab.inventory, vm_lab.inventory.parent)
    assert not_passed == set()
    assert passed == verifier_test_names(VERIFIER)


def test_the_settings_come_back_after_a_reboot(converged: KernelState, vm_lab: VmLab) -> None:
    """What the role persisted (modules-load.d, sysctl.d, fstab) is what a fresh boot of the VM applies."""
    state = vm.state_folder(vm_lab.inventory)
    assert vm.stop_vm(vm_lab.host.name, state)
    assert vm.start_vm(vm_lab.host, state)
    rebooted = read_kernel(vm_lab)
    assert set(DEFAULTS["common_kernel_modules"]) <= rebooted.modules
    assert rebooted.sysctls == EXPECTED_SYSCTLS
    assert rebooted.swaps == []
