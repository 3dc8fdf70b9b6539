"""Lab hosts as systemd containers, described by an Ansible inventory (``inventories/local`` by default).

Every host with a ``lab_image`` variable becomes one container named after its ``ansible_host`` (the
``community.docker.docker`` connection addresses containers by that name). The container settings are the
ones that run systemd as PID 1 without ``--privileged``, shared with the molecule scenarios.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sensorstack.inventory import hostvars
from sensorstack.lab.images import recipe_for

LAB_LABEL = "org.sensorstack.lab"
LAB_NETWORK = "sensorstack-lab"

# Same settings as the molecule platforms (molecule/*/molecule.yml): systemd needs the cgroup tree.
SYSTEMD_CONTAINER_ARGS = (
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--cgroupns=host",
    "--cap-add=SYS_ADMIN",
    "--cap-add=NET_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    # Docker and containerd must not keep their layers on the container's own overlay root.
    "--volume=/var/lib/docker",
    "--volume=/var/lib/containerd",
    # systemd shuts down cleanly on SIGRTMIN+3 (docker import cannot set STOPSIGNAL in the image).
    "--stop-signal=SIGRTMIN+3",
)


@dataclass(frozen=True)
class LabHost:
    inventory_name: str
    container: str
    image: str

    @property
    def image_tag(self) -> str:
        return recipe_for(self.image).tag


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def hosts_from_inventory(inventory: Path) -> list[LabHost]:
    """Read the lab hosts from an inventory through ansible-inventory (so group_vars apply)."""
    hosts = []
    for name, variables in sorted(hostvars(inventory).items()):
        image = variables.get("lab_image")
        if image is None:
            continue
        recipe_for(str(image))  # fail early, naming lab_image, on an unknown image
        hosts.append(LabHost(name, str(variables.get("ansible_host", name)), str(image)))
    if not hosts:
        raise ValueError(f"no host in {inventory} sets lab_image: nothing to start")
    return hosts


def _container_state(name: str) -> str | None:
    result = _docker("inspect", "--format", "{{.State.Status}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _ensure_network() -> None:
    if _docker("network", "inspect", LAB_NETWORK, check=False).returncode != 0:
        _docker("network", "create", "--label", LAB_LABEL, LAB_NETWORK)


def _wait_for_systemd(container: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        result = _docker("exec", container, "systemctl", "is-system-running", check=False)
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"systemd in {container} did not finish booting within {timeout:.0f}s (state: {state})")


def start(host: LabHost) -> bool:
    """Start the host's container, creating it if needed. Returns True when something was done."""
    state = _container_state(host.container)
    if state == "running":
        return False
    if state is None:
        _ensure_network()
        _docker(
            "run",
            "--detach",
            f"--name={host.container}",
            f"--hostname={host.inventory_name}",
            f"--network={LAB_NETWORK}",
            f"--label={LAB_LABEL}={host.inventory_name}",
            *SYSTEMD_CONTAINER_ARGS,
            host.image_tag,
        )
    else:
        _docker("start", host.container)
    _wait_for_systemd(host.container)
    return True


def remove(container: str) -> bool:
    if _container_state(container) is None:
        return False
    _docker("rm", "--force", "--volumes", container)
    return True


def lab_containers() -> list[tuple[str, str, str]]:
    """All containers the lab made (name, inventory host, status), whatever inventory they came from."""
    result = _docker(
        "ps",
        "--all",
        "--filter",
        f"label={LAB_LABEL}",
        "--format",
        f'{{{{.Names}}}}\t{{{{.Label "{LAB_LABEL}"}}}}\t{{{{.Status}}}}',
    )
    return [tuple(line.split("\t", 2)) for line in result.stdout.splitlines() if line]  # type: ignore[misc]


def forget_facts(fact_cache: Path, inventory_names: list[str]) -> None:
    """Drop cached facts of removed hosts: a new container under the same name has other addresses."""
    for name in inventory_names:
        (fact_cache / name).unlink(missing_ok=True)


def remove_network() -> None:
    if _docker("network", "inspect", LAB_NETWORK, check=False).returncode == 0:
        _docker("network", "rm", LAB_NETWORK, check=False)
