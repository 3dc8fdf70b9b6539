"""Lab hosts as systemd containers, described by an Ansible inventory (``inventories/local`` by default).

Every host with a ``lab_image`` variable becomes one container named after its ``ansible_host`` (the
``docker`` connection addresses containers by that name), on one bridge network with a fixed
subnet (``lab_subnet``). The image decides how the container runs: base images get the settings that run systemd
as PID 1 without ``--privileged``, shared with the molecule scenarios; Kubernetes node images (``debian13-node``)
get what a kubelet and containerd need. A host that sets ``sensorstack_node_ip`` gets that fixed address.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sensorstack.inventory import hostvars
from sensorstack.lab.images import NODE_PREPARE_UNIT, recipe_for
from sensorstack.lab.node import CGROUP_ROOT, parse_mountinfo

# The connection the lab's inventories name, by its short name: ansible-core routes it to community.docker.docker,
# and Mitogen (sensorstack deploy --mitogen) accelerates only the connections it knows by their short names.
LAB_CONNECTION = "docker"
DOCKER_CONNECTIONS = frozenset({LAB_CONNECTION, "community.docker.docker"})

LAB_LABEL = "org.sensorstack.lab"
LAB_NETWORK = "sensorstack-lab"
# Test fixtures start their throwaway hosts under this prefix (tests/integration/conftest.py) and remove them.
TEST_CONTAINER_PREFIX = "sensorstack-test-"

# Outside Calico's pod network (10.244.0.0/16), the service network (10.96.0.0/12), Calico's own default pool
# (192.168.0.0/16) and Docker's default address pools (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16).
DEFAULT_LAB_SUBNET = "10.213.0.0/24"

# Same settings as the molecule platforms (molecule/*/molecule.yml), but for the cgroup tree (systemd_cgroup_args).
SYSTEMD_CONTAINER_ARGS = (
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
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

# What a node may do: every capability Docker 20.10 knows, except those whose only use is changing the host itself.
# SYS_RESOURCE is outside this machine's bounding set (the reason --privileged fails); loading kernel modules,
# setting the clock, kexec, raw I/O ports, process accounting, wake alarms, suspend blocking and the audit and LSM
# policies are the host's. containerd gives privileged pods the capabilities it has itself, so they get this set.
NODE_CAPABILITIES = (
    "AUDIT_READ",
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_CHROOT",
    "SYS_NICE",
    "SYS_PTRACE",
    "SYS_TTY_CONFIG",
    "SYSLOG",
)

# Settings of a Kubernetes node on either cgroup version. Deliberately NOT systempaths=unconfined: with /proc/sys
# writable from the start, systemd as PID 1 raises the host's fs.file-max and fs.nr_open before any unit can stop
# it. Docker's read-only /proc/sys stays; node.py reopens only /proc/sys/net, which is the node's own.
NODE_COMMON_ARGS = (
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    *(f"--cap-add={capability}" for capability in NODE_CAPABILITIES),
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    # The kubelet's OOM watcher reads the kernel log; pods get devices through the node's device cgroup.
    "--device=/dev/kmsg",
    "--device-cgroup-rule=a *:* rwm",
    "--volume=/var/lib/containerd",
    "--volume=/var/lib/kubelet",
    "--stop-signal=SIGRTMIN+3",
)


def systemd_cgroup_args(cgroup_version: int, host_mountinfo: str) -> tuple[str, ...]:
    """How a systemd container sees the cgroup tree: the host's namespace, every hierarchy writable.

    On cgroup v1 each hierarchy is bind-mounted on a tmpfs of the container's own. Mounting the host's
    /sys/fs/cgroup itself (as molecule does) lets the container's systemd create directories in the host's tmpfs
    and remount it read-only with a 4 MiB size: measured here, it changes the host.
    """
    if cgroup_version == 2:
        return ("--cgroupns=host", f"--volume={CGROUP_ROOT}:{CGROUP_ROOT}:rw")
    hierarchies = sorted(
        mount.mount_point
        for mount in parse_mountinfo(host_mountinfo)
        if mount.fs_type in ("cgroup", "cgroup2") and Path(mount.mount_point).parent == Path(CGROUP_ROOT)
    )
    return (
        "--cgroupns=host",
        f"--tmpfs={CGROUP_ROOT}:rw,nosuid,nodev,noexec,mode=755",
        *(f"--volume={point}:{point}:rw" for point in hierarchies),
    )


def node_cgroup_args(cgroup_version: int, host_mountinfo: str) -> tuple[str, ...]:
    """How a node sees the cgroup tree: on v1 as any systemd container (node.py later makes the node's own cgroup
    the root of each hierarchy); on v2 in a private namespace, where Docker already shows the node's cgroup as the
    root and node.py makes it writable before systemd starts."""
    if cgroup_version == 2:
        return ("--cgroupns=private",)
    return systemd_cgroup_args(cgroup_version, host_mountinfo)


@dataclass(frozen=True)
class LabHost:
    inventory_name: str
    container: str
    image: str
    address: str | None = None
    subnet: str = DEFAULT_LAB_SUBNET

    @property
    def image_tag(self) -> str:
        return recipe_for(self.image).tag

    @property
    def kubernetes_node(self) -> bool:
        return recipe_for(self.image).kubernetes_node


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def network_layout(subnet: str) -> tuple[str, str]:
    """(gateway, range Docker hands out on its own) of a lab subnet: first address, upper half."""
    network = ipaddress.IPv4Network(subnet)
    if network.prefixlen > 28:
        raise ValueError(f"lab_subnet {subnet} is too small: use a /28 or larger")
    dynamic = list(network.subnets(prefixlen_diff=1))[1]
    return str(network.network_address + 1), str(dynamic)


def check_addresses(hosts: list[LabHost]) -> None:
    """Fixed addresses must lie in the lab subnet, outside the gateway and Docker's own range, each used once."""
    subnets = {host.subnet for host in hosts}
    if len(subnets) > 1:
        raise ValueError(f"the lab hosts disagree on lab_subnet: {', '.join(sorted(subnets))}")
    seen: dict[str, str] = {}
    for host in hosts:
        if host.address is None:
            continue
        network = ipaddress.IPv4Network(host.subnet)
        gateway, dynamic = network_layout(host.subnet)
        address = ipaddress.IPv4Address(host.address)
        where = f"sensorstack_node_ip of host {host.inventory_name}: {host.address}"
        if address not in network or address in (network.network_address, network.broadcast_address):
            raise ValueError(f"{where} is not a host address of lab_subnet {host.subnet}")
        if str(address) == gateway or address in ipaddress.IPv4Network(dynamic):
            raise ValueError(f"{where} is the gateway or in {dynamic}, which Docker hands out itself")
        if host.address in seen:
            raise ValueError(f"{where} is also the address of {seen[host.address]}")
        seen[host.address] = host.inventory_name


def hosts_from_inventory(inventory: Path) -> list[LabHost]:
    """Read the lab hosts from an inventory through ansible-inventory (so group_vars apply)."""
    hosts = []
    for name, variables in sorted(hostvars(inventory).items()):
        image = variables.get("lab_image")
        if image is None or variables.get("lab_provider", "container") != "container":
            continue
        recipe_for(str(image))  # fail early, naming lab_image, on an unknown image
        address = variables.get("sensorstack_node_ip")
        hosts.append(
            LabHost(
                name,
                str(variables.get("ansible_host", name)),
                str(image),
                address=str(address) if address is not None else None,
                subnet=str(variables.get("lab_subnet", DEFAULT_LAB_SUBNET)),
            )
        )
    if not hosts:
        raise ValueError(f"no host in {inventory} sets lab_image: nothing to start")
    try:
        check_addresses(hosts)
    except ipaddress.AddressValueError as error:
        raise ValueError(f"{inventory}: {error}") from None
    return hosts


def _container_state(name: str) -> str | None:
    result = _docker("inspect", "--format", "{{.State.Status}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _network_subnets() -> list[str] | None:
    result = _docker("network", "inspect", "--format", "{{json .IPAM.Config}}", LAB_NETWORK, check=False)
    if result.returncode != 0:
        return None
    return [entry["Subnet"] for entry in json.loads(result.stdout) or [] if "Subnet" in entry]


def network_exists() -> bool:
    return _network_subnets() is not None


def ensure_network(subnet: str = DEFAULT_LAB_SUBNET) -> None:
    """Create the lab network with its fixed subnet unless it exists (or another process just created it)."""
    if _network_subnets() is None:
        gateway, dynamic = network_layout(subnet)
        created = _docker(
            "network",
            "create",
            f"--label={LAB_LABEL}",
            f"--subnet={subnet}",
            f"--gateway={gateway}",
            f"--ip-range={dynamic}",
            LAB_NETWORK,
            check=False,
        )
        if created.returncode != 0 and _network_subnets() is None:
            raise RuntimeError(f"docker network create {LAB_NETWORK} failed: {created.stderr.strip()}")


def network_gateway() -> str:
    """The host's address on the lab network: the only address lab hosts reach the host by."""
    result = _docker("network", "inspect", "--format", "{{json .IPAM.Config}}", LAB_NETWORK)
    return str(json.loads(result.stdout)[0]["Gateway"])


def _host_cgroup_version() -> int:
    return int(_docker("info", "--format", "{{.CgroupVersion}}").stdout.strip() or 1)


def container_args(host: LabHost) -> tuple[str, ...]:
    """The ``docker run`` settings of a host: a node's or the plain systemd ones, and its fixed address."""
    fixed = (f"--ip={host.address}",) if host.address else ()
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        version, table = _host_cgroup_version(), mountinfo.read()
    if not host.kubernetes_node:
        return (*SYSTEMD_CONTAINER_ARGS, *systemd_cgroup_args(version, table), *fixed)
    return (*NODE_COMMON_ARGS, *node_cgroup_args(version, table), *fixed)


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


def _check_node_prepared(container: str) -> None:
    if _docker("exec", container, "systemctl", "is-active", "--quiet", NODE_PREPARE_UNIT, check=False).returncode:
        journal = _docker("exec", container, "journalctl", "--no-pager", "-u", NODE_PREPARE_UNIT, check=False)
        raise RuntimeError(f"{container}: {NODE_PREPARE_UNIT} failed, the node is unusable:\n{journal.stdout}")


def start(host: LabHost) -> bool:
    """Start the host's container, creating it if needed. Returns True when something was done."""
    state = _container_state(host.container)
    if state == "running":
        return False
    if state is None:
        ensure_network(host.subnet)
        if host.address is not None and not any(
            ipaddress.IPv4Address(host.address) in ipaddress.IPv4Network(subnet) for subnet in _network_subnets() or []
        ):
            raise RuntimeError(
                f"the network {LAB_NETWORK} exists without {host.address} in its subnet (made by an older lab?): "
                "`sensorstack lab down` removes it"
            )
        _docker(
            "run",
            "--detach",
            f"--name={host.container}",
            f"--hostname={host.inventory_name}",
            f"--network={LAB_NETWORK}",
            f"--label={LAB_LABEL}={host.inventory_name}",
            *container_args(host),
            host.image_tag,
        )
    else:
        _docker("start", host.container)
    _wait_for_systemd(host.container)
    if host.kubernetes_node:
        _check_node_prepared(host.container)
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


def belongs_to_a_test_session(container: str) -> bool:
    """`lab down` must not pull a container from under a running pytest session."""
    return container.startswith(TEST_CONTAINER_PREFIX)


def forget_facts(fact_cache: Path, inventory_names: list[str]) -> None:
    """Drop cached facts of removed hosts: a new container under the same name has other addresses."""
    for name in inventory_names:
        (fact_cache / name).unlink(missing_ok=True)


def remove_network() -> None:
    """Remove the lab network unless a container still uses it (a test session's, say)."""
    if _docker("network", "inspect", LAB_NETWORK, check=False).returncode == 0:
        _docker("network", "rm", LAB_NETWORK, check=False)
