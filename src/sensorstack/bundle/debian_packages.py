"""A layer of Debian packages and system accounts above the cached Debian base: what a Dockerfile's
``RUN apt-get install ...`` adds, written as its own deterministic layer so every image keeps sharing the base's blob.

The base layer is unpacked into a scratch root, the packages are installed there with the root's own apt (services
kept from starting), accounts are given the numeric ids the upstream images use, and only what changed is written:
new and changed paths, and OCI whiteouts for removed ones. Cached per recipe like the base (the Debian mirror only
serves the packages; the versions it served are recorded next to the layer).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sensorstack.bundle.cache import cache_root, cached, log
from sensorstack.bundle.debian_base import DebianBase, trim
from sensorstack.bundle.oci_layout import Layer, write_rootfs_layer
from sensorstack.debian import unmount_below

# Bump when the steps below change what an unchanged recipe produces; it is part of the recipe.
_SETUP_REVISION = 2
# Their contents belong to the running container, never to a layer.
TRANSIENT_DIRS = ("dev", "proc", "sys", "run", "tmp", "var/tmp")
# Device nodes apt and maintainer scripts expect (the base layer carries none).
DEVICE_NODES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}
# Keeps maintainer scripts from starting the services they install (invoke-rc.d honours it).
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
WHITEOUT_PREFIX = ".wh."


@dataclass(frozen=True)
class SystemAccount:
    """A user (and its primary group) with the numeric ids an upstream image gives it."""

    name: str
    uid: int
    gid: int
    group: str
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"


@dataclass(frozen=True)
class PackageLayerRecipe:
    name: str
    packages: tuple[str, ...] = ()
    accounts: tuple[SystemAccount, ...] = ()

    def recipe(self, base: DebianBase) -> dict[str, object]:
        return {
            "packages": sorted(self.packages),
            "accounts": [asdict(account) for account in self.accounts],
            "base": base.layer.digest,
            "setup_revision": _SETUP_REVISION,
        }


@dataclass(frozen=True)
class PackageLayer:
    folder: Path
    layer: Layer
    # Installed version of each requested package, as dpkg reports it.
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def layer_path(self) -> Path:
        return self.folder / "layer.tar.gz"

    @classmethod
    def load(cls, folder: Path) -> PackageLayer:
        details = json.loads((folder / "layer.json").read_text())
        return cls(folder, Layer(**details["layer"]), dict(details["versions"]))


# --- pure parts -------------------------------------------------------------------------------------------------

Snapshot = dict[str, tuple[int, int, int, int, int, str]]


def _entries(text: str) -> dict[str, list[str]]:
    return {fields[0]: fields for line in text.splitlines() if len(fields := line.split(":")) >= 4}


def account_commands(account: SystemAccount, passwd: str, group: str) -> tuple[list[list[str]], dict[str, int]]:
    """The commands that give account its ids, and the ids it had before ({"uid": old, "gid": old}, when changed).

    Package scripts create their users with the next free system id; upstream images fix them (mosquitto 1883,
    influxdb 1500). Refuses ids another user or group already holds.
    """
    users, groups = _entries(passwd), _entries(group)
    commands: list[list[str]] = []
    previous: dict[str, int] = {}
    holder = next((name for name, fields in groups.items() if int(fields[2]) == account.gid), None)
    if holder not in (None, account.group):
        raise ValueError(f"gid {account.gid} for {account.group} already belongs to group {holder}")
    if account.group not in groups:
        commands.append(["groupadd", "--system", "--gid", str(account.gid), account.group])
    elif int(groups[account.group][2]) != account.gid:
        previous["gid"] = int(groups[account.group][2])
        commands.append(["groupmod", "--gid", str(account.gid), account.group])
    holder = next((name for name, fields in users.items() if int(fields[2]) == account.uid), None)
    if holder not in (None, account.name):
        raise ValueError(f"uid {account.uid} for {account.name} already belongs to user {holder}")
    settings = ["--gid", str(account.gid), "--home", account.home, "--shell", account.shell]
    if account.name not in users:
        commands.append(["useradd", "--system", "--no-create-home", "--uid", str(account.uid), *settings, account.name])
    else:
        fields = users[account.name]
        if int(fields[2]) != account.uid:
            previous["uid"] = int(fields[2])
        wanted = [str(account.uid), str(account.gid), account.home, account.shell]
        if [fields[2], fields[3], fields[5], fields[6]] != wanted:
            commands.append(["usermod", "--uid", str(account.uid), *settings, account.name])
    return commands, previous


def _transient(path: str) -> bool:
    return any(path.startswith(f"{directory}/") for directory in TRANSIENT_DIRS)


def changes(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """Paths new or changed in after (sorted), and the removed paths a whiteout must hide (only the topmost)."""
    changed = sorted(path for path, state in after.items() if before.get(path) != state)
    removed = sorted(path for path in before if path not in after)
    gone = set(removed)
    topmost = [path for path in removed if not any(parent in gone for parent in _parents(path))]
    return changed, topmost


def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")[:-1]
    return ("/".join(parts[: index + 1]) for index in range(len(parts)))


def whiteout(path: str) -> str:
    """The OCI whiteout entry that removes path in a layer above."""
    parent, _, name = path.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else f"{WHITEOUT_PREFIX}{name}"


# --- building ---------------------------------------------------------------------------------------------------


def snapshot(rootfs: Path) -> Snapshot:
    """Every path below rootfs (transient contents left out) with what tells a change: inode, ctime, mode, owner."""
    state: Snapshot = {}
    for folder, directories, files in os.walk(rootfs):
        relative_folder = Path(folder).relative_to(rootfs).as_posix()
        for name in directories + files:
            path = name if relative_folder == "." else f"{relative_folder}/{name}"
            if _transient(path):
                continue
            info = os.lstat(Path(folder, name))
            link = os.readlink(Path(folder, name)) if stat.S_ISLNK(info.st_mode) else ""
            # A transient folder changes (ctime) with its contents; only its own mode and owner matter.
            inode, ctime = (0, 0) if path in TRANSIENT_DIRS else (info.st_ino, info.st_ctime_ns)
            state[path] = (inode, ctime, info.st_mode, info.st_uid, info.st_gid, link)
    return state


def _copy_owner_and_mode(source: Path, target: Path) -> None:
    info = os.lstat(source)
    os.lchown(target, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target, stat.S_IMODE(info.st_mode))


def stage_changes(rootfs: Path, delta: Path, changed: list[str], removed: list[str]) -> None:
    """Lay the changed paths out under delta (files as hard links: same inode, owner, xattrs) plus whiteouts."""
    delta.mkdir()
    for path in changed:
        source, target = rootfs / path, delta / path
        for parent in _parents(path):
            if not (delta / parent).exists():
                (delta / parent).mkdir()
                _copy_owner_and_mode(rootfs / parent, delta / parent)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
            _copy_owner_and_mode(source, target)
        elif source.is_dir():
            if not target.exists():
                target.mkdir()
            _copy_owner_and_mode(source, target)
        elif source.is_file():
            os.link(source, target)
    for path in removed:
        target = delta / whiteout(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def _renumber(rootfs: Path, previous: Mapping[str, int], account: SystemAccount) -> None:
    """Give what the old ids owned to the new ones (usermod only does so inside the home directory)."""
    old_uid, old_gid = previous.get("uid"), previous.get("gid")
    if old_uid is None and old_gid is None:
        return
    for folder, directories, files in os.walk(rootfs):
        for name in directories + files:
            path = Path(folder, name)
            if _transient(path.relative_to(rootfs).as_posix()):
                continue
            info = os.lstat(path)
            uid = account.uid if info.st_uid == old_uid else -1
            gid = account.gid if info.st_gid == old_gid else -1
            if uid != -1 or gid != -1:
                mode = info.st_mode
                os.lchown(path, uid, gid)
                if not stat.S_ISLNK(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                    os.chmod(path, stat.S_IMODE(mode))  # chown clears set-id bits


def _chroot(rootfs: Path, *command: str) -> None:
    environment = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    subprocess.run(["chroot", str(rootfs), *command], check=True, env=environment, stdout=subprocess.DEVNULL)


def _prepare(rootfs: Path, host_resolv_conf: Path) -> None:
    (rootfs / "dev").mkdir(exist_ok=True)
    for name, (major, minor) in DEVICE_NODES.items():
        os.mknod(rootfs / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(rootfs / "dev" / name, 0o666)
    shutil.copyfile(host_resolv_conf, rootfs / "etc/resolv.conf")
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)


def _clean(rootfs: Path) -> None:
    (rootfs / "usr/sbin/policy-rc.d").unlink()
    for name in DEVICE_NODES:
        (rootfs / "dev" / name).unlink()
    for directory in ("tmp", "var/tmp"):
        for child in (rootfs / directory).iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    trim(rootfs)  # also removes etc/resolv.conf, apt lists and logs


def installed_versions(rootfs: Path, packages: Iterable[str]) -> dict[str, str]:
    names = list(packages)
    if not names:
        return {}
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\\n", *names],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(" ", 1) for line in listing.splitlines() if line)


def _build(work: Path, recipe: PackageLayerRecipe, base: DebianBase) -> None:
    rootfs = work / "rootfs"
    rootfs.mkdir()
    try:
        subprocess.run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-xpzf",
                str(base.layer_path),
                "-C",
                str(rootfs),
            ],
            check=True,
        )
        before = snapshot(rootfs)
        _prepare(rootfs, Path("/etc/resolv.conf"))
        if recipe.packages:
            log(f"{recipe.name}: apt-get install {' '.join(recipe.packages)}")
            _chroot(rootfs, "apt-get", "-q", "update")
            _chroot(rootfs, "apt-get", "-q", "install", "-y", "--no-install-recommends", *recipe.packages)
            _chroot(rootfs, "apt-get", "clean")
        for account in recipe.accounts:
            commands, previous = account_commands(
                account, (rootfs / "etc/passwd").read_text(), (rootfs / "etc/group").read_text()
            )
            for command in commands:
                _chroot(rootfs, *command)
            _renumber(rootfs, previous, account)
        versions = installed_versions(rootfs, recipe.packages)
        _clean(rootfs)
        changed, removed = changes(before, snapshot(rootfs))
        stage_changes(rootfs, work / "delta", changed, removed)
        comment = f"sensorstack: apt-get install {' '.join(recipe.packages)}".strip()
        layer = write_rootfs_layer(work / "delta", work / "layer.tar.gz", comment=comment)
        details = {"layer": asdict(layer), "versions": versions, "changed": len(changed), "removed": removed}
        (work / "layer.json").write_text(json.dumps(details, indent=2) + "\n")
    finally:
        unmount_below(work)
        shutil.rmtree(rootfs, ignore_errors=True)
        shutil.rmtree(work / "delta", ignore_errors=True)


def build_package_layer(recipe: PackageLayerRecipe, base: DebianBase, cache: Path | None = None) -> PackageLayer:
    """The cached layer of recipe's packages and accounts above base, built first when missing."""
    folder = cached(
        "images",
        f"packages-{recipe.name}",
        recipe.recipe(base),
        lambda work: _build(work, recipe, base),
        root=cache or cache_root(),
    )
    return PackageLayer.load(folder)
