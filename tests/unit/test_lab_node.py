"""Kubernetes lab nodes: what node.py does inside them at boot, and how containers.py starts them.

The mount tables below are cut from real nodes on this machine (cgroup v1, Docker 20.10), the container id shortened.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from sensorstack import project_root
from sensorstack.lab import node
from sensorstack.lab.containers import (
    DEFAULT_LAB_SUBNET,
    NODE_CAPABILITIES,
    NODE_COMMON_ARGS,
    LabHost,
    belongs_to_a_test_session,
    check_addresses,
    network_layout,
    node_cgroup_args,
    systemd_cgroup_args,
)

ID = "3be69755f83f"
OWN = f"/docker/{ID}"

# A node as Docker starts it, after its systemd mounted the controllers the host does not use.
FRESH_MOUNTINFO = """\
207 148 0:72 / / rw,relatime shared:76 master:75 - overlay overlay rw,lowerdir=/a:/b
220 211 0:82 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:97 - tmpfs tmpfs ro,size=4096k,nr_inodes=1024,mode=755
224 220 0:38 / /sys/fs/cgroup/unified rw,relatime shared:106 - cgroup2 cgroup2 rw
225 220 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:110 - cgroup cgroup rw,cpu
226 220 0:32 / /sys/fs/cgroup/memory rw,relatime shared:114 - cgroup cgroup rw,memory
230 220 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:130 - cgroup cgroup rw,name=systemd
50 220 0:53 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,hugetlb
60 220 0:54 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,net_cls,net_prio
152 208 0:75 /sys /proc/sys ro,nosuid,nodev,noexec,relatime shared:81 - proc proc rw
"""

PID1_CGROUP = f"""\
17:net_cls,net_prio:/
15:hugetlb:/
9:name=systemd:{OWN}/init.scope
4:memory:{OWN}/init.scope
1:cpu:{OWN}
0::{OWN}/init.scope
"""

# The same node after node.py prepare ran (hugetlb and net_cls,net_prio unmounted).
PREPARED_MOUNTINFO = (
    "\n".join(line for line in FRESH_MOUNTINFO.splitlines() if "hugetlb" not in line and "net_cls" not in line)
    + "\n"
    + "\n".join(
        f"{300 + index} {point_id} {dev} {OWN} /sys/fs/cgroup/{name} rw,relatime shared:1 - {fs} {fs} rw{extra}"
        for index, (point_id, dev, name, fs, extra) in enumerate(
            [
                (224, "0:38", "unified", "cgroup2", ""),
                (225, "0:29", "cpu", "cgroup", ",cpu"),
                (226, "0:32", "memory", "cgroup", ",memory"),
                (230, "0:37", "systemd", "cgroup", ",name=systemd"),
            ]
        )
    )
    + "\n244 152 0:75 /sys/net /proc/sys/net rw,nosuid,nodev,noexec,relatime shared:82 - proc proc rw\n"
    + "".join(
        f"{250 + index} 152 0:80 /sensorstack/sysctl/{node.dotted(entry)} /proc/sys/{entry} rw - tmpfs tmpfs rw\n"
        for index, entry in enumerate(node.KUBELET_KERNEL_TUNABLES)
    )
)


def _argvs(actions: list[node.Action]) -> list[tuple[str, ...]]:
    return [action.argv for action in actions]


def test_mountinfo_is_read_with_escapes_and_optional_fields() -> None:
    [mount] = node.parse_mountinfo("36 35 98:0 /mnt\\0401 /mnt/a\\040b rw,noatime master:1 shared:2 - ext3 /dev/x rw\n")
    assert (mount.root, mount.mount_point, mount.fs_type) == ("/mnt 1", "/mnt/a b", "ext3")
    assert mount.optional_fields == "master:1 shared:2" and not mount.read_only


def test_the_containers_cgroup_is_pid_1s_without_init_scope() -> None:
    assert node.container_cgroup(node.parse_proc_cgroup(PID1_CGROUP)) == OWN
    assert node.container_cgroup(node.parse_proc_cgroup("0::/init.scope\n")) == "/"


def test_every_hierarchy_of_the_container_gets_its_own_cgroup_as_root_and_a_copy_at_its_old_path() -> None:
    plan = _argvs(node.plan_cgroup_fix(node.parse_mountinfo(FRESH_MOUNTINFO), node.parse_proc_cgroup(PID1_CGROUP)))
    for name in ("cpu", "memory", "systemd", "unified"):
        point, inside = f"/sys/fs/cgroup/{name}", f"/sys/fs/cgroup/{name}{OWN}"
        steps = [
            ("mkdir", f"{inside}{OWN}"),
            ("mount", "--bind", inside, f"{inside}{OWN}"),
            ("mount", "--rbind", inside, point),
        ]
        position = plan.index(steps[0])
        # The copy exists before the mount point changes: systemd's own paths never vanish.
        assert plan[position : position + 3] == steps


def test_hierarchies_the_runtime_did_not_put_the_container_in_are_unmounted() -> None:
    plan = _argvs(node.plan_cgroup_fix(node.parse_mountinfo(FRESH_MOUNTINFO), node.parse_proc_cgroup(PID1_CGROUP)))
    assert ("umount", "/sys/fs/cgroup/hugetlb") in plan
    assert ("umount", "/sys/fs/cgroup/net_cls,net_prio") in plan
    assert not any(argv[-1] == "/sys/fs/cgroup" for argv in plan)  # the tmpfs itself is left alone


def test_systemds_own_hierarchy_is_never_unmounted() -> None:
    cgroups = node.parse_proc_cgroup(f"9:name=systemd:/\n4:memory:{OWN}/init.scope\n")
    assert ("umount", "/sys/fs/cgroup/systemd") not in _argvs(
        node.plan_cgroup_fix(node.parse_mountinfo(FRESH_MOUNTINFO), cgroups)
    )


def test_the_cgroup_fix_does_nothing_twice_or_in_a_private_namespace() -> None:
    assert node.plan_cgroup_fix(node.parse_mountinfo(PREPARED_MOUNTINFO), node.parse_proc_cgroup(PID1_CGROUP)) == []
    private = node.parse_proc_cgroup("4:memory:/init.scope\n1:cpu:/\n0::/init.scope\n")
    assert node.plan_cgroup_fix(node.parse_mountinfo(FRESH_MOUNTINFO), private) == []


def test_a_cgroup_v2_host_namespace_gets_the_same_fix_on_the_single_hierarchy() -> None:
    own = "/system.slice/docker-abc.scope"
    mounts = node.parse_mountinfo("30 20 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    plan = _argvs(node.plan_cgroup_fix(mounts, node.parse_proc_cgroup(f"0::{own}/init.scope\n")))
    assert plan[-1] == ("mount", "--rbind", f"/sys/fs/cgroup{own}", "/sys/fs/cgroup")


def test_only_a_read_only_cgroup2_tree_in_a_private_namespace_is_made_writable_before_systemd() -> None:
    ro_v2 = node.parse_mountinfo("30 20 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n")
    assert _argvs(node.plan_boot(ro_v2, {"": "/"})) == [("mount", "-o", "remount,rw", "/sys/fs/cgroup")]
    assert node.plan_boot(ro_v2, {"": "/system.slice/docker-abc.scope"}) == []  # host namespace: not ours
    assert node.plan_boot(node.parse_mountinfo(FRESH_MOUNTINFO), node.parse_proc_cgroup(PID1_CGROUP)) == []


def test_the_shadowed_sysctls_are_the_kubelets_tunables_with_the_values_it_wants() -> None:
    # pkg/kubelet/cm/container_manager_linux.go setupKernelTunables, Kubernetes 1.35
    assert node.sysctl_shadows() == {
        "vm/overcommit_memory": "1\n",
        "vm/panic_on_oom": "0\n",
        "kernel/panic": "10\n",
        "kernel/panic_on_oops": "1\n",
        "kernel/keys/root_maxkeys": "1000000\n",
        "kernel/keys/root_maxbytes": "25000000\n",
    }
    # Nothing under net/: those belong to the node's network namespace and stay live.
    assert not any(entry.startswith("net/") for entry in node.sysctl_shadows())
    assert set(node.sysctl_shadows()) <= set(node.HOST_WIDE_SYSCTLS)
    assert {"fs/file-max", "fs/nr_open"} <= set(node.HOST_WIDE_SYSCTLS)  # what systemd as PID 1 raises


def test_the_guard_reopens_only_net_and_covers_each_tunable_with_a_file() -> None:
    shadows = node.sysctl_shadows()
    plan = _argvs(node.plan_sysctl_guard(node.parse_mountinfo(FRESH_MOUNTINFO), shadows, existing=shadows))
    assert plan[:2] == [
        ("mount", "--bind", "/proc/sys/net", "/proc/sys/net"),
        ("mount", "-o", "remount,bind,rw", "/proc/sys/net"),
    ]
    assert ("write", "/run/sensorstack/sysctl/vm.overcommit_memory", "1\n") in plan
    assert ("mount", "--bind", "/run/sensorstack/sysctl/vm.overcommit_memory", "/proc/sys/vm/overcommit_memory") in plan
    assert not any("remount,bind,ro" in argv for argv in plan)  # Docker's /proc/sys is read-only already


def test_a_writable_proc_sys_is_closed_first() -> None:
    """Started with --privileged or systempaths=unconfined (a user's machine), /proc/sys is the host's, writable."""
    privileged = node.parse_mountinfo("76 75 0:43 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n")
    plan = _argvs(node.plan_sysctl_guard(privileged, node.sysctl_shadows(), existing=[]))
    assert plan == [
        ("mount", "--bind", "/proc/sys", "/proc/sys"),
        ("mount", "-o", "remount,bind,ro", "/proc/sys"),
        ("mount", "--bind", "/proc/sys/net", "/proc/sys/net"),
        ("mount", "-o", "remount,bind,rw", "/proc/sys/net"),
    ]


def test_the_guard_does_nothing_twice() -> None:
    shadows = node.sysctl_shadows()
    assert node.plan_sysctl_guard(node.parse_mountinfo(PREPARED_MOUNTINFO), shadows, existing=shadows) == []


def test_root_becomes_shared_once() -> None:
    assert _argvs(node.plan_propagation(node.parse_mountinfo(FRESH_MOUNTINFO.replace("shared:76 ", "")))) == [
        ("mount", "--make-rshared", "/")
    ]
    assert node.plan_propagation(node.parse_mountinfo(FRESH_MOUNTINFO)) == []


def test_host_sysctls_reads_every_watched_entry(tmp_path: Path) -> None:
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm/overcommit_memory").write_text("0\n")
    values = node.host_sysctls(str(tmp_path))
    assert set(values) == {node.dotted(entry) for entry in node.HOST_WIDE_SYSCTLS}
    assert values["vm.overcommit_memory"] == "0" and values["fs.nr_open"] == "(absent)"


HOST_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /sys/fs/bpf rw,relatime - bpf bpf rw
"""


def test_on_cgroup_v1_each_hierarchy_is_mounted_on_a_tmpfs_of_the_containers_own() -> None:
    args = node_cgroup_args(1, HOST_MOUNTINFO)
    assert args == systemd_cgroup_args(1, HOST_MOUNTINFO)
    assert args[:2] == ("--cgroupns=host", "--tmpfs=/sys/fs/cgroup:rw,nosuid,nodev,noexec,mode=755")
    assert "--volume=/sys/fs/cgroup/cpu,cpuacct:/sys/fs/cgroup/cpu,cpuacct:rw" in args
    assert "--volume=/sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw" in args
    # Never the host's tmpfs itself: the container's systemd would remount it read-only.
    assert not any(arg.startswith("--volume=/sys/fs/cgroup:") for arg in args)
    assert len([arg for arg in args if arg.startswith("--volume=")]) == 4


def test_on_cgroup_v2_a_node_gets_a_private_cgroup_namespace() -> None:
    assert node_cgroup_args(2, "") == ("--cgroupns=private",)


def test_node_settings_keep_proc_sys_read_only_and_leave_out_host_only_capabilities() -> None:
    assert not any("systempaths" in arg or "privileged" in arg for arg in NODE_COMMON_ARGS)
    assert {"SYS_RESOURCE", "SYS_MODULE", "SYS_TIME", "SYS_BOOT"}.isdisjoint(NODE_CAPABILITIES)
    assert {"SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD"} <= set(NODE_CAPABILITIES)
    for arg in ("--device=/dev/kmsg", "--device-cgroup-rule=a *:* rwm", "--volume=/var/lib/kubelet"):
        assert arg in NODE_COMMON_ARGS


def test_the_lab_subnet_stays_clear_of_the_cluster_and_docker_networks() -> None:
    lab = ipaddress.IPv4Network(DEFAULT_LAB_SUBNET)
    for other in ("10.244.0.0/16", "10.96.0.0/12", "192.168.0.0/16", "172.16.0.0/12"):
        assert not lab.overlaps(ipaddress.IPv4Network(other)), other
    assert network_layout(DEFAULT_LAB_SUBNET) == ("10.213.0.1", "10.213.0.128/25")


def _host(name: str, address: str | None, subnet: str = DEFAULT_LAB_SUBNET) -> LabHost:
    return LabHost(name, f"c-{name}", "debian13-node", address=address, subnet=subnet)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (
            [_host("cp1", "10.1.0.5")],
            r"sensorstack_node_ip of host cp1: 10\.1\.0\.5 is not a host address of lab_subnet",
        ),
        ([_host("cp1", "10.213.0.1")], r"is the gateway or in 10\.213\.0\.128/25"),
        ([_host("cp1", "10.213.0.200")], r"is the gateway or in 10\.213\.0\.128/25"),
        ([_host("cp1", "10.213.0.11"), _host("w1", "10.213.0.11")], r"w1: 10\.213\.0\.11 is also the address of cp1"),
        ([_host("cp1", None), _host("w1", None, "10.9.0.0/24")], r"disagree on lab_subnet"),
    ],
)
def test_fixed_addresses_are_checked(hosts: list[LabHost], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_addresses(hosts)


def test_the_cluster_inventory_has_the_local_groups_and_valid_fixed_addresses() -> None:
    inventory = yaml.safe_load((project_root() / "inventories/local/hosts.yml").read_text())
    groups = inventory["all"]["children"]["sensorstack"]["children"]
    assert set(groups) == {"control_plane", "workers", "edge"}
    assert len(groups["control_plane"]["hosts"]) == 1 and len(groups["workers"]["hosts"]) == 2
    hosts = [
        LabHost(name, variables["ansible_host"], variables["lab_image"], str(variables["sensorstack_node_ip"]))
        for group in groups.values()
        for name, variables in group["hosts"].items()
    ]
    assert {host.image for host in hosts} == {"debian13-node", "debian13"}
    assert [host.image for host in hosts if host.inventory_name == "lab-edge1"] == ["debian13"]
    assert inventory["all"]["vars"]["lab_subnet"] == DEFAULT_LAB_SUBNET
    check_addresses(hosts)


def test_lab_down_leaves_a_running_test_sessions_containers_alone() -> None:
    assert belongs_to_a_test_session("sensorstack-test-node")
    assert not belongs_to_a_test_session("sensorstack-lab-cp1")
