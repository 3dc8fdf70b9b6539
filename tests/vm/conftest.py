"""The VM tier: roles run against a qemu virtual machine, where the kernel is the host's own.

One VM serves the session. It is started through the inventory-driven lab (``sensorstack.lab.vm.up``) from an
inventory written into a temporary folder, so its key, overlay and logs go there and ``down`` removes them. The
VM has no outbound network (qemu user networking with ``restrict=on``): everything the roles install must already
be in the image. Under CI=true a missing qemu or debootstrap fails the tier instead of skipping it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.lab import vm
from tests.integration.ansible_module import ROOT, ansible_environment
from tests.tiers import unavailable

VM_NAME = "vm-tier1"
VM_ADDRESS = "192.168.56.201"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class VmLab:
    inventory: Path
    host: vm.VmHost
    facts: Path

    @property
    def key(self) -> Path:
        return vm.state_folder(self.inventory) / vm.KEY_NAME

    def sh(self, script: str, check: bool = True, timeout: float = 300) -> str:
        result = subprocess.run(
            vm.ssh_command(self.host, self.key, "sh", "-eu"),
            input=script,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{script!r} failed on {self.host.name} ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def playbook(self, playbook: Path, timeout: float = 1800) -> None:
        result = subprocess.run(
            ["ansible-playbook", "-i", str(self.inventory), str(playbook)],
            cwd=ROOT,
            # A fact cache of its own: the project's would hand a new VM the facts of an old one (gathering=smart).
            env=ansible_environment(ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.facts)),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"{playbook.name} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")


def vm_inventory(directory: Path, ssh_port: int, segment_port: int) -> dict[str, Any]:
    """One VM in sensorstack/workers, reached as the lab's inventories/vm reaches its hosts (absolute key path:
    testinfra reads the variable without templating it)."""
    host = {"ansible_port": ssh_port, "sensorstack_node_ip": VM_ADDRESS}
    return {
        "all": {
            "vars": {
                "lab_provider": vm.PROVIDER,
                "lab_image": "debian12",
                "lab_vm_segment_port": segment_port,
                "ansible_host": "127.0.0.1",
                "ansible_user": "root",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": str(vm.state_folder(directory) / vm.KEY_NAME),
                "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
                # The ssh connection's own setting too, which Mitogen's ssh reads instead of the options above.
                "ansible_host_key_checking": False,
                "sensorstack_host_cidrs": ["192.168.56.0/24"],
                # The VM reaches no mirror: its apt lists, as debootstrap left them, must count as fresh.
                "common_apt_cache_valid_time": 10 * 365 * 24 * 3600,
            },
            "children": {"sensorstack": {"children": {"workers": {"hosts": {VM_NAME: host}}}}},
        }
    }


@pytest.fixture(scope="session")
def vm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmLab]:
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            unavailable("VM", f"{tool} is not installed (apt-get install {package})")
    directory = tmp_path_factory.mktemp("vm-lab")
    inventory = directory / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(vm_inventory(directory, free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)))
    )
    try:
        (host,) = vm.hosts_from_inventory(inventory)
        vm.up(inventory)
        yield VmLab(inventory, host, directory / "facts")
    finally:
        vm.down(inventory)
