"""Make a lab container fit to run a kubelet without touching the host it shares a kernel with.

This file is copied into the Kubernetes node image (``debian13-node``) and run there at boot by
``sensorstack-node-prepare.service``, before containerd and the kubelet: standard library only, and no import from
the rest of the package. The planning functions are pure (they read text, return actions) so the host side tests
them; ``main`` carries the actions out inside the node.

``node.py boot`` is the image's command: on a cgroup v2 host (private cgroup namespace) it makes the container's
cgroup tree writable, which systemd needs from its first instant, then becomes systemd. ``node.py prepare`` runs
from a unit early in boot. Three things are prepared:

- **cgroup paths** (cgroup v1 with the host's cgroup namespace): the kubelet expects its container to be the root of
  every hierarchy. The container's own cgroup (``/docker/<id>``) is mounted over each hierarchy's mount point, and a
  copy of it at ``<mount point>/docker/<id>`` keeps the paths that systemd and runc derive from ``/proc/1/cgroup``
  valid. Hierarchies in which the container sits at the root were mounted by the node's own systemd (the host does
  not use those controllers); they are shared by every node, so they are unmounted. With a private cgroup
  namespace there is nothing to do.
- **host sysctls**: most of ``/proc/sys`` is global to the kernel. It stays read-only (Docker's default) except
  ``/proc/sys/net``, which belongs to the node's network namespace; the global entries the kubelet insists on are
  shadowed by regular files that already hold the values it wants, so it finds nothing to change.
- **mount propagation**: ``/`` becomes shared inside the node (pods mount with ``Bidirectional`` propagation);
  the node's mount namespace is private to it, so nothing propagates to the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

SYSTEMD = "/lib/systemd/systemd"
PROC_SYS = "/proc/sys"
CGROUP_ROOT = "/sys/fs/cgroup"
SHADOW_DIR = "/run/sensorstack/sysctl"
INIT_SCOPE = "/init.scope"

# What the kubelet's setupKernelTunables (pkg/kubelet/cm/container_manager_linux.go, Kubernetes 1.35) reads and,
# when a value differs, writes. All of them are global to the kernel: writing one from a node changes the host.
KUBELET_KERNEL_TUNABLES: Mapping[str, int] = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1_000_000,
    "kernel/keys/root_maxbytes": 25_000_000,
}

# Global values that the node's own software would change if it could: the kubelet's tunables, what systemd as PID 1
# raises at start (fs.file-max, fs.nr_open) or applies from /usr/lib/sysctl.d (kernel.pid_max), and the conntrack
# table size kube-proxy sets (read-only from any network namespace but the host's). Tests compare them on the host
# before and after a node ran.
HOST_WIDE_SYSCTLS: tuple[str, ...] = (
    *KUBELET_KERNEL_TUNABLES,
    "fs/file-max",
    "fs/nr_open",
    "kernel/pid_max",
    "net/netfilter/nf_conntrack_max",
)


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo (the fields this module needs)."""

    mount_id: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional_fields: str
    fs_type: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class Action:
    """One step of the preparation: ``mkdir PATH``, ``write PATH CONTENT`` or a ``mount``/``umount`` command."""

    argv: tuple[str, ...]

    def __str__(self) -> str:
        if self.argv[0] == "write":
            return f"write {self.argv[1]} {self.argv[2].strip()!r}"
        return " ".join(self.argv)


def _mkdir(path: str) -> Action:
    return Action(("mkdir", path))


def _write(path: str, content: str) -> Action:
    return Action(("write", path, content))


def _mount(*args: str) -> Action:
    return Action(("mount", *args))


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts in the order the kernel lists them (a later mount on the same point hides an earlier one)."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                optional_fields=" ".join(fields[6:]),
                fs_type=tail[0],
                super_options=tuple(tail[2].split(",")) if len(tail) > 2 else (),
            )
        )
    return mounts


def visible_mounts(mounts: Iterable[Mount]) -> dict[str, Mount]:
    """Mount point -> the mount that is seen there (the last one mounted on it)."""
    return {mount.mount_point: mount for mount in mounts}


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup as hierarchy -> path; v1 hierarchies keyed by their sorted controllers, v2 by ''."""
    paths = {}
    for line in text.splitlines():
        if line.strip():
            _hierarchy_id, controllers, path = line.split(":", 2)
            paths[",".join(sorted(controllers.split(","))) if controllers else ""] = path
    return paths


def _hierarchy_key(mount: Mount) -> str:
    """The /proc/<pid>/cgroup key of a cgroup mount: its controllers (and name=) from the superblock options."""
    if mount.fs_type == "cgroup2":
        return ""
    known = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}
    controllers = [
        option for option in mount.super_options if option not in known and not option.startswith("release_agent=")
    ]
    return ",".join(sorted(controllers))


def _own_path(path: str) -> str:
    """systemd moves PID 1 into init.scope; the container's cgroup is the one above it."""
    return path.removesuffix(INIT_SCOPE) or "/"


def container_cgroup(pid1_cgroups: Mapping[str, str]) -> str:
    """The cgroup the container runtime made for this container, as PID 1 sees it ('/' in a private namespace)."""
    for key in ("name=systemd", "memory", "cpu", ""):
        for hierarchy, path in pid1_cgroups.items():
            if key in hierarchy.split(",") or hierarchy == key:
                return _own_path(path)
    raise ValueError("no usable hierarchy in /proc/1/cgroup")


def _join(*parts: str) -> str:
    return str(PurePosixPath(parts[0], *(part.lstrip("/") for part in parts[1:])))


def _is_hierarchy(mount: Mount) -> bool:
    """A cgroup hierarchy mounted where systemd and the kubelet look: /sys/fs/cgroup/<name>, or /sys/fs/cgroup on v2."""
    if mount.fs_type == "cgroup2" and mount.mount_point == CGROUP_ROOT:
        return True
    return mount.fs_type in ("cgroup", "cgroup2") and PurePosixPath(mount.mount_point).parent == PurePosixPath(
        CGROUP_ROOT
    )


def plan_cgroup_fix(mounts: list[Mount], pid1_cgroups: Mapping[str, str]) -> list[Action]:
    """Actions that make the container's own cgroup the root of every hierarchy the kubelet will use."""
    own = container_cgroup(pid1_cgroups)
    if own == "/":
        return []  # private cgroup namespace: the runtime already shows this container as the root
    actions: list[Action] = []
    for point, mount in sorted(visible_mounts(mounts).items()):
        path = pid1_cgroups.get(_hierarchy_key(mount))
        if not _is_hierarchy(mount) or path is None or mount.root == own:
            continue  # not a hierarchy, one this container is not in, or done on an earlier run
        if _own_path(path) == own and mount.root == "/":
            inside = _join(point, own)
            # Put the copy at <point>/<own> inside the container's cgroup first, then mount the container's cgroup
            # (with that copy) over the mount point in one step: systemd's paths never disappear.
            actions += [
                _mkdir(_join(inside, own)),
                _mount("--bind", inside, _join(inside, own)),
                _mount("--rbind", inside, point),
            ]
        elif _own_path(path) == "/" and mount.fs_type == "cgroup" and _hierarchy_key(mount) != "name=systemd":
            actions.append(Action(("umount", point)))
    return actions


def sysctl_shadows() -> dict[str, str]:
    """Global /proc/sys entries hidden behind a regular file inside the node, with the content of that file."""
    return {entry: f"{value}\n" for entry, value in KUBELET_KERNEL_TUNABLES.items()}


def dotted(entry: str) -> str:
    """vm/overcommit_memory -> vm.overcommit_memory (the name sysctl(8) and Ansible use)."""
    return entry.replace("/", ".")


def plan_sysctl_guard(mounts: list[Mount], shadows: Mapping[str, str], existing: Iterable[str]) -> list[Action]:
    """Actions that leave only the node's own network namespace writable under /proc/sys.

    ``existing`` lists the /proc/sys entries present in this kernel (a shadow needs something to cover).
    """
    visible = visible_mounts(mounts)
    net = _join(PROC_SYS, "net")
    actions: list[Action] = []
    proc_sys = visible.get(PROC_SYS)
    if proc_sys is None or not proc_sys.read_only:
        # Started with --privileged or systempaths=unconfined: close /proc/sys before anything writes to it.
        actions += [_mount("--bind", PROC_SYS, PROC_SYS), _mount("-o", "remount,bind,ro", PROC_SYS)]
    net_mount = visible.get(net)
    if net_mount is None or net_mount.read_only:
        actions += [_mount("--bind", net, net), _mount("-o", "remount,bind,rw", net)]
    present = set(existing)
    for entry, content in sorted(shadows.items()):
        target = _join(PROC_SYS, entry)
        if entry not in present or target in visible:
            continue
        shadow = _join(SHADOW_DIR, dotted(entry))
        actions += [_write(shadow, content), _mount("--bind", shadow, target)]
    return actions


def plan_propagation(mounts: list[Mount]) -> list[Action]:
    root = visible_mounts(mounts).get("/")
    return [] if root is not None and "shared:" in root.optional_fields else [_mount("--make-rshared", "/")]


def plan_boot(mounts: list[Mount], own_cgroups: Mapping[str, str]) -> list[Action]:
    """Before systemd: a cgroup v2 tree that Docker mounted read-only in a private namespace becomes writable."""
    tree = visible_mounts(mounts).get(CGROUP_ROOT)
    if tree is None or tree.fs_type != "cgroup2" or not tree.read_only or own_cgroups.get("") != "/":
        return []  # cgroup v1 (prepared later by the unit), or a tree that is already usable
    return [_mount("-o", "remount,rw", CGROUP_ROOT)]


def host_sysctls(proc_sys: str = PROC_SYS) -> dict[str, str]:
    """The current values of HOST_WIDE_SYSCTLS, read where this runs (on the host: the host's own values)."""
    values = {}
    for entry in HOST_WIDE_SYSCTLS:
        try:
            values[dotted(entry)] = _read(_join(proc_sys, entry)).strip()
        except FileNotFoundError:
            values[dotted(entry)] = "(absent)"
    return values


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _run(action: Action) -> None:
    verb = action.argv[0]
    if verb == "mkdir":
        os.makedirs(action.argv[1], exist_ok=True)
    elif verb == "write":
        os.makedirs(os.path.dirname(action.argv[1]), exist_ok=True)
        with open(action.argv[1], "w", encoding="utf-8") as handle:
            handle.write(action.argv[2])
    else:
        subprocess.run(list(action.argv), check=True)


def prepare() -> list[Action]:
    """Plan and carry out every step, re-reading the mount table between stages. Returns what was done."""
    done: list[Action] = []
    pid1_cgroups = parse_proc_cgroup(_read("/proc/1/cgroup"))
    stages = (
        lambda mounts: plan_cgroup_fix(mounts, pid1_cgroups),
        lambda mounts: plan_sysctl_guard(
            mounts, sysctl_shadows(), [e for e in sysctl_shadows() if os.path.exists(_join(PROC_SYS, e))]
        ),
        plan_propagation,
    )
    for plan in stages:
        for action in plan(parse_mountinfo(_read("/proc/self/mountinfo"))):
            print(action, flush=True)
            _run(action)
            done.append(action)
    return done


def boot() -> None:
    for action in plan_boot(
        parse_mountinfo(_read("/proc/self/mountinfo")), parse_proc_cgroup(_read("/proc/self/cgroup"))
    ):
        _run(action)
    os.execv(SYSTEMD, [SYSTEMD])


def main(argv: list[str]) -> int:
    if argv[1:] == ["boot"]:
        boot()
    if argv[1:] == ["prepare"]:
        prepare()
        return 0
    if argv[1:] == ["plan"]:
        mounts = parse_mountinfo(_read("/proc/self/mountinfo"))
        for action in plan_cgroup_fix(mounts, parse_proc_cgroup(_read("/proc/1/cgroup"))):
            print(action)
        return 0
    print(f"usage: {argv[0]} boot|prepare|plan", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
