"""The VM lab's pure parts: acceleration choice, the qemu command, inventory reading, and the two VM inventories."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from sensorstack.lab import vm, vm_image
from sensorstack.lab.vm import VmFiles, VmHost

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"
POD_AND_SERVICE_CIDRS = [
    ipaddress.ip_network(
        yaml.safe_load((ROOT / "roles/sensorstack/defaults/main/main.yml").read_text())[f"sensorstack_{name}_cidr"]
    )
    for name in ("pod", "service")
]

INTEL_VTX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx smx est\nvmx flags\t: vnmi\n"
AMD_V = "processor\t: 0\nflags\t\t: fpu vme svm lm\n"
NO_VIRTUALIZATION = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae hypervisor\n"

HOST = VmHost(name="cp1", image="debian12", ssh_port=2211, lab_address="192.168.56.11")
IMAGE = vm_image.VmImage(Path("/cache/vm/debian-bookworm-0123456789ab"))
FILES = VmFiles(Path("/lab/.vm"), "cp1")


def argument_after(argv: list[str], flag: str) -> list[str]:
    return [argv[index + 1] for index, value in enumerate(argv) if value == flag]


@pytest.mark.parametrize(("cpuinfo", "expected"), [(INTEL_VTX, True), (AMD_V, True), (NO_VIRTUALIZATION, False)])
def test_hardware_virtualization_is_read_from_the_cpu_flags(cpuinfo: str, expected: bool) -> None:
    assert vm.has_hardware_virtualization(cpuinfo) is expected


def test_without_kvm_the_vm_runs_under_multi_threaded_tcg() -> None:
    argv = vm.qemu_command(HOST, IMAGE, FILES, kvm=False)
    assert argument_after(argv, "-accel") == ["tcg,thread=multi,tb-size=256"]
    assert argument_after(argv, "-cpu") == ["max"]


def test_with_kvm_the_vm_uses_it_and_the_host_cpu() -> None:
    argv = vm.qemu_command(HOST, IMAGE, FILES, kvm=True)
    assert argument_after(argv, "-accel") == ["kvm"]
    assert argument_after(argv, "-cpu") == ["host"]


@pytest.mark.parametrize(("forced", "expected"), [("tcg", False), ("kvm", True), ("TCG", False)])
def test_the_accelerator_can_be_forced(monkeypatch: pytest.MonkeyPatch, forced: str, expected: bool) -> None:
    monkeypatch.setenv("SENSORSTACK_VM_ACCEL", forced)
    assert vm.kvm_usable() is expected


def test_the_vm_boots_its_overlay_with_the_cached_kernel() -> None:
    argv = vm.qemu_command(HOST, IMAGE, FILES, kvm=False)
    assert argument_after(argv, "-kernel") == [str(IMAGE.kernel)]
    assert argument_after(argv, "-initrd") == [str(IMAGE.initrd)]
    assert "root=/dev/vda" in argument_after(argv, "-append")[0].split()
    drives = argument_after(argv, "-drive")
    assert drives == [f"file={FILES.overlay},if=virtio,format=qcow2,discard=unmap"]
    assert str(IMAGE.rootfs) not in " ".join(argv), "the shared image must only be reached through the overlay"


def test_networking_forwards_only_loopback_ssh_and_stays_inside_qemu() -> None:
    argv = vm.qemu_command(HOST, IMAGE, FILES, kvm=False)
    user, lab = argument_after(argv, "-netdev")
    assert user.startswith("user,")
    assert re.findall(r"hostfwd=([^,]+)", user) == ["tcp:127.0.0.1:2211-:22"]
    assert "restrict=on" in user.split(",")
    assert lab.startswith("socket,")
    assert "localaddr=127.0.0.1" in lab.split(",")
    assert not any(word in " ".join(argv) for word in ("tap", "bridge", "vhost"))


def test_outbound_lifts_the_user_network_restriction() -> None:
    outbound = VmHost(name="cp1", image="debian12", ssh_port=2211, lab_address="192.168.56.11", outbound=True)
    user = argument_after(vm.qemu_command(outbound, IMAGE, FILES, kvm=False), "-netdev")[0]
    assert "restrict=off" in user.split(",")


def test_the_guest_gets_its_name_address_and_key_through_fw_cfg() -> None:
    values = argument_after(vm.qemu_command(HOST, IMAGE, FILES, kvm=False), "-fw_cfg")
    prefix = f"name={vm_image.FW_CFG_PREFIX}"
    assert f"{prefix}/hostname,string=cp1" in values
    assert f"{prefix}/lab_address,string=192.168.56.11/24" in values
    assert f"{prefix}/lab_mac,string={HOST.lab_mac}" in values
    assert f"{prefix}/authorized_keys,file=/lab/.vm/id_ed25519.pub" in values


def test_lab_macs_differ_between_hosts_of_one_segment() -> None:
    macs = {VmHost("h", "debian12", 2200 + n, f"192.168.56.{n}").lab_mac for n in range(1, 255)}
    assert len(macs) == 254
    assert all(re.fullmatch(r"52:54:01(:[0-9a-f]{2}){3}", mac) for mac in macs)
    assert vm_image.USER_NIC_MAC not in macs


def test_inventory_variables_make_a_host() -> None:
    host = vm.host_from_vars(
        "w1",
        {
            "ansible_port": "2221",
            "sensorstack_node_ip": "192.168.56.21",
            "lab_image": "debian13",
            "lab_vm_cpus": 2,
            "lab_vm_memory_mib": 2048,
            "lab_vm_outbound": "true",
        },
    )
    assert host == VmHost("w1", "debian13", 2221, "192.168.56.21", cpus=2, memory_mib=2048, outbound=True)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"sensorstack_node_ip": "192.168.56.21"}, "ansible_port"),
        ({"ansible_port": 2221}, "sensorstack_node_ip"),
        ({"ansible_port": 2221, "sensorstack_node_ip": "192.168.56.300"}, "sensorstack_node_ip"),
        ({"ansible_port": 2221, "sensorstack_node_ip": "192.168.56.21", "lab_image": "centos"}, "lab_image"),
    ],
)
def test_a_bad_host_definition_names_the_variable(variables: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        vm.host_from_vars("w1", variables)


def test_two_hosts_may_not_share_a_port_or_an_address() -> None:
    first = VmHost("a", "debian12", 2211, "192.168.56.11")
    with pytest.raises(ValueError, match="ansible_port 2211"):
        vm._check_unique([first, VmHost("b", "debian12", 2211, "192.168.56.12")])
    with pytest.raises(ValueError, match=re.escape("sensorstack_node_ip 192.168.56.11")):
        vm._check_unique([first, VmHost("b", "debian12", 2212, "192.168.56.11")])


def test_the_image_carries_what_the_common_role_installs() -> None:
    """A VM without outbound network runs the common role only if its packages are already there."""
    defaults = yaml.safe_load((ROOT / "roles/common/defaults/main.yml").read_text())
    needed = {*defaults["common_packages"], defaults["common_time_sync"]}
    assert needed <= set(vm_image.image_recipe("bookworm")["packages"])


def test_the_image_recipe_changes_with_its_suite_and_guest_files(monkeypatch: pytest.MonkeyPatch) -> None:
    bookworm = vm_image.image_recipe("bookworm")
    assert bookworm != vm_image.image_recipe("trixie")
    monkeypatch.setattr(vm_image, "_SETUP_SCRIPT", vm_image._SETUP_SCRIPT + "\n# changed\n")
    assert vm_image.image_recipe("bookworm") != bookworm


# --- The inventories of the two VM labs ----------------------------------------------------------------------


def groups_of(inventory: Path) -> dict[str, set[str]]:
    """Role group -> its hosts, from an inventory's hosts.yml."""
    tree = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]["sensorstack"]["children"]
    return {group: set((content or {}).get("hosts") or {}) for group, content in tree.items()}


def inventory_addresses(inventory: Path) -> dict[str, str]:
    tree = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]["sensorstack"]["children"]
    return {
        name: str(variables["sensorstack_node_ip"])
        for group in tree.values()
        for name, variables in group["hosts"].items()
    }


def vagrant_nodes() -> dict[str, str]:
    """Machine name -> private address, from the Vagrantfile's NODES table."""
    return dict(re.findall(r'^\s*"([\w-]+)" => \{ ip: "([\d.]+)"', VAGRANTFILE.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("name", ["vagrant", "vm"])
def test_vm_inventories_use_the_local_labs_groups(name: str) -> None:
    local = groups_of(ROOT / "inventories/local")
    groups = groups_of(ROOT / "inventories" / name)
    assert set(groups) == set(local) == {"control_plane", "workers", "edge"}
    assert len(groups["control_plane"]) == 1
    assert len(groups["workers"]) == 2


def test_the_vagrant_inventory_matches_the_vagrantfile() -> None:
    nodes = vagrant_nodes()
    assert nodes, "no NODES entry found in the Vagrantfile"
    assert inventory_addresses(ROOT / "inventories/vagrant") == nodes


@pytest.mark.parametrize("name", ["vagrant", "vm"])
def test_lab_addresses_lie_in_the_host_network_and_clear_of_the_cluster_networks(name: str) -> None:
    inventory = ROOT / "inventories" / name
    group_vars = yaml.safe_load((inventory / "group_vars/all.yml").read_text())
    (host_network,) = (ipaddress.ip_network(cidr) for cidr in group_vars["sensorstack_host_cidrs"])
    assert not any(host_network.overlaps(cluster) for cluster in POD_AND_SERVICE_CIDRS)
    addresses = inventory_addresses(inventory)
    assert all(ipaddress.ip_address(address) in host_network for address in addresses.values())
    assert len(set(addresses.values())) == len(addresses)


def test_the_vm_inventory_describes_startable_hosts() -> None:
    hosts = vm.hosts_from_inventory(ROOT / "inventories/vm")
    assert {host.name for host in hosts} == set(inventory_addresses(ROOT / "inventories/vm"))
    assert all(not host.outbound for host in hosts)
