"""Lab hosts as qemu virtual machines, described by an Ansible inventory (``lab_provider: vm``).

Where containers cannot go (loading kernel modules, live sysctls, swap, a kernel of its own), a VM can. Every VM
boots the cached image of ``vm_image`` through a qcow2 overlay of its own, so the image stays read-only.

Networking never touches the host's routes or bridges:
- NIC 1 is qemu user networking; only ``127.0.0.1:<ansible_port>`` is forwarded to the guest's SSH port. By
  default it is ``restrict=on``: the guest reaches nothing outside (set ``lab_vm_outbound: true`` to let it use
  the host's network, e.g. to reach a ``bundle serve`` on the host as 10.0.2.2).
- NIC 2 joins the VMs to each other on a qemu-only multicast segment bound to 127.0.0.1, where each VM has its
  ``sensorstack_node_ip``.

A state folder beside the inventory (``<inventory>/.vm/``) holds the lab's SSH key pair, each VM's overlay, pid
file, monitor socket and console log; ``down`` stops every VM and removes the folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorstack.inventory import hostvars
from sensorstack.lab.vm_image import FW_CFG_PREFIX, USER_NIC_MAC, VmImage, build_vm_image, suite_for

__all__ = [
    "VmHost",
    "VmImage",
    "build_vm_image",
    "down",
    "hosts_from_inventory",
    "start_vm",
    "status",
    "stop_vm",
    "up",
]

PROVIDER = "vm"
STATE_FOLDER = ".vm"
KEY_NAME = "id_ed25519"
SEGMENT_GROUP = "230.0.0.1"
DEFAULT_SEGMENT_PORT = 11234
DEFAULT_PREFIX_LENGTH = 24
# Under software emulation a Debian VM needs about 1.5 min to reach SSH on an idle machine; allow for load.
DEFAULT_BOOT_TIMEOUT = 900.0
DEFAULT_SHUTDOWN_GRACE = 120.0


@dataclass(frozen=True)
class VmHost:
    """One VM, as the inventory describes it."""

    name: str
    image: str
    ssh_port: int
    lab_address: str
    prefix_length: int = DEFAULT_PREFIX_LENGTH
    cpus: int = 1
    memory_mib: int = 1024
    segment_port: int = DEFAULT_SEGMENT_PORT
    outbound: bool = False

    @property
    def lab_mac(self) -> str:
        """A MAC made from the lab address, so it is unique on the segment and the same at every boot."""
        octets = ipaddress.IPv4Address(self.lab_address).packed[1:]
        return "52:54:01:" + ":".join(f"{octet:02x}" for octet in octets)


@dataclass(frozen=True)
class VmFiles:
    """Where one VM keeps its runtime files inside the lab's state folder."""

    state: Path
    name: str

    @property
    def overlay(self) -> Path:
        return self.state / f"{self.name}.qcow2"

    @property
    def pidfile(self) -> Path:
        return self.state / f"{self.name}.pid"

    @property
    def monitor(self) -> Path:
        return self.state / f"{self.name}.monitor"

    @property
    def console(self) -> Path:
        return self.state / f"{self.name}.console.log"

    @property
    def key(self) -> Path:
        return self.state / KEY_NAME


def state_folder(inventory: Path) -> Path:
    return (inventory if inventory.is_dir() else inventory.parent) / STATE_FOLDER


# --- Acceleration ------------------------------------------------------------------------------------------


def has_hardware_virtualization(cpuinfo: str) -> bool:
    """True when the CPU flags name VT-x (vmx) or AMD-V (svm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and {"vmx", "svm"} & set(value.split()):
            return True
    return False


def _kvm_device_opens(device: Path = Path("/dev/kvm")) -> bool:
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def accelerator_args(kvm_usable: bool) -> list[str]:
    if kvm_usable:
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]


def kvm_usable() -> bool:
    """KVM only with a working /dev/kvm AND real VT-x/AMD-V.

    Some hosts serve /dev/kvm without them (kvm_pvm, pagetable-based): a Debian kernel hangs there while
    booting, with no error from qemu, so such a /dev/kvm must not be trusted. ``SENSORSTACK_VM_ACCEL=tcg|kvm``
    overrides the detection.
    """
    forced = os.environ.get("SENSORSTACK_VM_ACCEL", "").lower()
    if forced in ("tcg", "kvm"):
        return forced == "kvm"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return has_hardware_virtualization(cpuinfo) and _kvm_device_opens()


# --- The qemu command ----------------------------------------------------------------------------------------


def _fw_cfg_value(text: str) -> str:
    # qemu's option parser reads a doubled comma as a literal one.
    return text.replace(",", ",,")


def qemu_command(host: VmHost, image: VmImage, files: VmFiles, kvm: bool) -> list[str]:
    """The full qemu argv for one VM (daemonized: qemu detaches once the VM runs and writes its pid file)."""
    user_net = f"user,id=user,hostfwd=tcp:127.0.0.1:{host.ssh_port}-:22,restrict={'off' if host.outbound else 'on'}"
    lab_net = f"socket,id=lab,mcast={SEGMENT_GROUP}:{host.segment_port},localaddr=127.0.0.1"
    lab_address = f"{host.lab_address}/{host.prefix_length}"
    return [
        "qemu-system-x86_64",
        "-name",
        f"sensorstack-{host.name}",
        "-machine",
        "q35",
        *accelerator_args(kvm),
        "-smp",
        str(host.cpus),
        "-m",
        str(host.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        # quiet: every console character costs an emulated I/O exit; errors are still logged.
        "root=/dev/vda rw console=ttyS0 quiet",
        "-drive",
        f"file={files.overlay},if=virtio,format=qcow2,discard=unmap",
        "-netdev",
        user_net,
        "-device",
        f"virtio-net-pci,netdev=user,mac={USER_NIC_MAC}",
        "-netdev",
        lab_net,
        "-device",
        f"virtio-net-pci,netdev=lab,mac={host.lab_mac}",
        "-device",
        "virtio-rng-pci",
        "-fw_cfg",
        f"name={FW_CFG_PREFIX}/hostname,string={_fw_cfg_value(host.name)}",
        "-fw_cfg",
        f"name={FW_CFG_PREFIX}/lab_address,string={lab_address}",
        "-fw_cfg",
        f"name={FW_CFG_PREFIX}/lab_mac,string={host.lab_mac}",
        "-fw_cfg",
        f"name={FW_CFG_PREFIX}/authorized_keys,file={_fw_cfg_value(str(files.key))}.pub",
        "-serial",
        f"file:{files.console}",
        "-monitor",
        f"unix:{files.monitor},server=on,wait=off",
        "-pidfile",
        str(files.pidfile),
        "-daemonize",
    ]


# --- Processes -----------------------------------------------------------------------------------------------


def _running_pid(files: VmFiles) -> int | None:
    """The VM's qemu pid, if that process still runs and is ours (a recycled pid is not)."""
    try:
        pid = int(files.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(files.pidfile).encode() in cmdline else None


def ensure_key(state: Path) -> Path:
    """The lab's SSH key pair (made once per lab, removed by ``down``)."""
    key = state / KEY_NAME
    if not key.exists():
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sensorstack-vm-lab", "-f", str(key)],
            check=True,
        )
    return key


def ssh_command(host: VmHost, key: Path, *command: str) -> list[str]:
    """ssh into a lab VM as root through its forwarded port (host keys change with every new VM)."""
    return [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(host.ssh_port),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "root@127.0.0.1",
        *command,
    ]


def _console_tail(files: VmFiles, lines: int = 15) -> str:
    try:
        return "\n".join(files.console.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console output)"


def wait_for_ssh(host: VmHost, files: VmFiles, timeout: float = DEFAULT_BOOT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running_pid(files) is None:
            raise RuntimeError(f"VM {host.name} stopped while booting; console:\n{_console_tail(files)}")
        probe = subprocess.run(ssh_command(host, files.key, "true"), capture_output=True, timeout=60, check=False)
        if probe.returncode == 0:
            return
        time.sleep(3)
    raise TimeoutError(f"VM {host.name} did not answer SSH within {timeout:.0f}s; console:\n{_console_tail(files)}")


def start_vm(host: VmHost, state: Path, image: VmImage | None = None, timeout: float = DEFAULT_BOOT_TIMEOUT) -> bool:
    """Boot the VM (from its existing overlay, if any) and wait for SSH. Returns False if it was running."""
    files = VmFiles(state, host.name)
    if _running_pid(files) is not None:
        return False
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        raise RuntimeError("qemu is not installed (apt-get install qemu-system-x86 qemu-utils)")
    image = image or build_vm_image(suite_for(host.image))
    ensure_key(state)
    if not files.overlay.exists():
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.rootfs), str(files.overlay)],
            check=True,
        )
    files.console.unlink(missing_ok=True)
    launch = subprocess.run(qemu_command(host, image, files, kvm_usable()), capture_output=True, text=True, check=False)
    if launch.returncode != 0:
        raise RuntimeError(f"qemu did not start VM {host.name}: {launch.stderr.strip()}")
    wait_for_ssh(host, files, timeout)
    return True


def _monitor(files: VmFiles, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(files.monitor))
        connection.recv(4096)  # the banner and prompt
        connection.sendall(command.encode() + b"\n")
        connection.recv(4096)


def stop_vm(name: str, state: Path, grace: float = DEFAULT_SHUTDOWN_GRACE) -> bool:
    """Shut the VM down like a power button (ACPI), killing qemu only after ``grace`` seconds.

    The button is pressed again every 10 s: a guest still booting ignores a press it gets too early.
    Returns False when the VM was not running.
    """
    files = VmFiles(state, name)
    pid = _running_pid(files)
    if pid is None:
        return False
    deadline = time.monotonic() + grace
    next_press = 0.0
    while _running_pid(files) is not None and time.monotonic() < deadline:
        if time.monotonic() >= next_press:
            # qemu may be going away already, or its monitor busy: the loop sees which.
            with contextlib.suppress(OSError):
                _monitor(files, "system_powerdown")
            next_press = time.monotonic() + 10
        time.sleep(0.5)
    if _running_pid(files) is not None:
        os.kill(pid, signal.SIGKILL)
        # Not /proc/<pid> itself: the daemonized qemu's parent is init, which may leave a zombie unreaped a while.
        killed = time.monotonic() + 30
        while _running_pid(files) is not None and time.monotonic() < killed:
            time.sleep(0.1)
    files.pidfile.unlink(missing_ok=True)
    files.monitor.unlink(missing_ok=True)
    return True


# --- The inventory-driven lab ----------------------------------------------------------------------------


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def host_from_vars(name: str, variables: dict[str, Any]) -> VmHost:
    """One VmHost from a host's inventory variables; every error names the variable to fix."""
    image = str(variables.get("lab_image", "debian12"))
    suite_for(image)
    try:
        ssh_port = int(variables["ansible_port"])
        address = str(ipaddress.IPv4Address(str(variables["sensorstack_node_ip"])))
    except KeyError as missing:
        raise ValueError(f"VM host {name} needs {missing.args[0]} (lab_provider: vm)") from None
    except ValueError as error:
        raise ValueError(f"VM host {name}: ansible_port or sensorstack_node_ip is invalid: {error}") from None
    return VmHost(
        name=name,
        image=image,
        ssh_port=ssh_port,
        lab_address=address,
        prefix_length=int(variables.get("lab_vm_prefix_length", DEFAULT_PREFIX_LENGTH)),
        cpus=int(variables.get("lab_vm_cpus", 1)),
        memory_mib=int(variables.get("lab_vm_memory_mib", 1024)),
        segment_port=int(variables.get("lab_vm_segment_port", DEFAULT_SEGMENT_PORT)),
        outbound=_flag(variables.get("lab_vm_outbound", False)),
    )


def hosts_from_inventory(inventory: Path) -> list[VmHost]:
    """The inventory's hosts with ``lab_provider: vm``, through ansible-inventory (so group_vars apply)."""
    hosts = [
        host_from_vars(name, variables)
        for name, variables in sorted(hostvars(inventory).items())
        if variables.get("lab_provider") == PROVIDER
    ]
    if not hosts:
        raise ValueError(f"no host in {inventory} sets lab_provider: vm: nothing to start")
    _check_unique(hosts)
    return hosts


def _check_unique(hosts: list[VmHost]) -> None:
    for attribute in ("ssh_port", "lab_address"):
        seen: dict[object, str] = {}
        for host in hosts:
            value = getattr(host, attribute)
            if value in seen:
                variable = "ansible_port" if attribute == "ssh_port" else "sensorstack_node_ip"
                raise ValueError(f"{host.name} and {seen[value]} share {variable} {value}")
            seen[value] = host.name


def up(inventory: Path, timeout: float = DEFAULT_BOOT_TIMEOUT) -> list[tuple[str, bool]]:
    """Build missing images, then boot every VM of the inventory. Returns (name, started) per host."""
    hosts = hosts_from_inventory(inventory)
    state = state_folder(inventory)
    images = {name: build_vm_image(suite_for(name)) for name in sorted({host.image for host in hosts})}
    return [(host.name, start_vm(host, state, images[host.image], timeout)) for host in hosts]


def down(inventory: Path) -> list[str]:
    """Stop every VM that has files in the lab's state folder and remove the folder (overlays, key, logs).

    Returns the names of the VMs removed, running or not (their cached facts are stale now).
    """
    state = state_folder(inventory)
    if not state.is_dir():
        return []
    names = sorted(
        {path.name.removesuffix(".pid") for path in state.glob("*.pid")}
        | {path.name.removesuffix(".qcow2") for path in state.glob("*.qcow2")}
    )
    for name in names:
        stop_vm(name, state)
    shutil.rmtree(state)
    return names


def status(inventory: Path) -> list[tuple[str, str]]:
    """(name, running|stopped|absent) for every VM host of the inventory."""
    state = state_folder(inventory)
    result = []
    for host in hosts_from_inventory(inventory):
        files = VmFiles(state, host.name)
        if _running_pid(files) is not None:
            result.append((host.name, "running"))
        else:
            result.append((host.name, "stopped" if files.overlay.exists() else "absent"))
    return result
