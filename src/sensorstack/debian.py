"""Debian root file systems made with debootstrap, for the lab's container and VM images and the bundle's base.

One mirror setting (``SENSORSTACK_DEBIAN_MIRROR``: the only download location these images have) and one way to
run debootstrap and to clean up after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What debootstrap checks the suite's Release file against (package debian-archive-keyring). Without it debootstrap
# warns and goes on unverified, over plain HTTP: it must refuse instead.
DEBIAN_ARCHIVE_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def debian_mirror(mirror: str | None = None) -> str:
    """The mirror given, else ``$SENSORSTACK_DEBIAN_MIRROR``, else Debian's own."""
    return mirror or os.environ.get("SENSORSTACK_DEBIAN_MIRROR", DEFAULT_MIRROR)


def debootstrap_command(suite: str, rootfs: Path, packages: Sequence[str], mirror: str, variant: str) -> list[str]:
    """debootstrap's command line: every file it fetches checked against Debian's archive keys."""
    return [
        "debootstrap",
        "--force-check-gpg",
        f"--keyring={DEBIAN_ARCHIVE_KEYRING}",
        f"--variant={variant}",
        f"--include={','.join(packages)}",
        suite,
        str(rootfs),
        mirror,
    ]


def debootstrap(suite: str, rootfs: Path, packages: Sequence[str], mirror: str, variant: str = "minbase") -> None:
    """A Debian root file system of suite in rootfs, with packages included, from a signature-checked archive."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    if not DEBIAN_ARCHIVE_KEYRING.is_file():
        raise RuntimeError(
            f"{DEBIAN_ARCHIVE_KEYRING} is missing: debootstrap could not check what it downloads"
            " (apt-get install debian-archive-keyring)"
        )
    subprocess.run(debootstrap_command(suite, rootfs, packages, mirror, variant), check=True, stdout=subprocess.DEVNULL)


def unmount_below(folder: Path) -> None:
    """Unmount what a failed debootstrap or chroot left mounted in the tree (its /proc) before it is removed."""
    prefix = str(folder.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mountpoint in sorted((mount for mount in mounts if mount.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], check=False)
