"""The lab VMs' disk image: a debootstrap root file system, its kernel and initrd, cached by recipe.

No bootloader and no partition table: qemu boots the kernel and initrd directly (``-kernel/-initrd``) with the
ext4 file system as ``/dev/vda``. The image is the same for every VM; what makes a VM itself (host name, the lab
address, the SSH key it accepts) reaches it through qemu's firmware configuration device at every boot, and
``sensorstack-vm-setup`` in the guest applies it, so the cached image never holds a key or an address.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorstack.bundle.cache import cached
from sensorstack.debian import debian_mirror, debootstrap, unmount_below

CACHE_KIND = "vm"

# The lab_image names the container lab uses, mapped to their Debian suites.
SUITES = {"debian12": "bookworm", "debian13": "trixie"}

# What a booting, Ansible-manageable Debian needs on top of minbase (Ansible's apt module installs python3-apt
# itself when it is missing, which a VM without outbound network cannot).
BOOT_PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "openssh-server",
    "python3",
    "python3-apt",
)
# What the common role installs (roles/common/defaults/main.yml), so a VM without outbound network runs it.
COMMON_ROLE_PACKAGES = ("ca-certificates", "curl", "gnupg", "iproute2", "procps", "systemd-timesyncd")

# The first NIC is qemu user networking: the guest is always 10.0.2.15 there, the host 10.0.2.2, DNS 10.0.2.3.
USER_NIC_MAC = "52:54:00:12:34:56"
FW_CFG_PREFIX = "opt/org.sensorstack"

# Bump when the guest files or the steps below change meaning; it is part of the recipe.
_SETUP_REVISION = 1
# Sparse: the raw file only takes the space its files use; VMs write into their own qcow2 overlays.
_FILESYSTEM_SIZE = "8G"
# Timers that would start apt downloads in the middle of a test run, and e2scrub, which costs 40 s of boot under
# software emulation to look for snapshots that do not exist.
_MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service")

_SETUP_SCRIPT = f"""#!/bin/sh
# Applies what qemu hands this VM through fw_cfg ({FW_CFG_PREFIX}/*): host name, authorized SSH key,
# the lab network address. Runs at every boot, before the network and sshd come up.
set -eu
modprobe qemu_fw_cfg
cfg=/sys/firmware/qemu_fw_cfg/by_name/{FW_CFG_PREFIX}
value() {{ if [ -r "$cfg/$1/raw" ]; then cat "$cfg/$1/raw"; fi; }}

name=$(value hostname)
if [ -n "$name" ]; then
  echo "$name" > /etc/hostname
  echo "$name" > /proc/sys/kernel/hostname
  sed -i "/^127.0.1.1[[:space:]]/d" /etc/hosts
  echo "127.0.1.1 $name" >> /etc/hosts
fi

install -d -m 0700 /root/.ssh
value authorized_keys > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

mac=$(value lab_mac)
address=$(value lab_address)
if [ -n "$mac" ] && [ -n "$address" ]; then
  printf '[Match]\\nMACAddress=%s\\n\\n[Network]\\nAddress=%s\\n' "$mac" "$address" \\
    > /etc/systemd/network/20-sensorstack-lab.network
else
  rm -f /etc/systemd/network/20-sensorstack-lab.network
fi

# The image ships no host keys: each VM makes its own on its first boot. Only ed25519: an RSA key takes
# more than a minute under software emulation.
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
fi
"""

_SETUP_UNIT = """[Unit]
Description=Apply the sensorstack lab settings qemu passes to this VM
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target network-pre.target systemd-networkd.service ssh.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/sensorstack-vm-setup

[Install]
WantedBy=sysinit.target
"""

_SSHD_HOST_KEY = "HostKey /etc/ssh/ssh_host_ed25519_key\n"

_USER_NIC_NETWORK = f"""[Match]
MACAddress={USER_NIC_MAC}

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
"""


@dataclass(frozen=True)
class VmImage:
    """A cached image folder: the read-only root file system and the kernel and initrd that boot it."""

    folder: Path

    @property
    def rootfs(self) -> Path:
        return self.folder / "rootfs.raw"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"


def suite_for(image_name: str) -> str:
    try:
        return SUITES[image_name]
    except KeyError:
        known = ", ".join(sorted(SUITES))
        raise ValueError(f"unknown VM image {image_name!r} (lab_image); known images: {known}") from None


def image_recipe(suite: str) -> dict[str, Any]:
    """Everything that decides the image's content; the mirror only serves it, so it is not part of it."""
    return {
        "suite": suite,
        "variant": "minbase",
        "packages": sorted(BOOT_PACKAGES + COMMON_ROLE_PACKAGES),
        "filesystem_size": _FILESYSTEM_SIZE,
        "masked_units": list(_MASKED_UNITS),
        "setup_revision": _SETUP_REVISION,
        "guest_files": [_SETUP_SCRIPT, _SETUP_UNIT, _USER_NIC_NETWORK, _SSHD_HOST_KEY],
    }


def _run(argv: list[str], **kwargs: Any) -> None:
    subprocess.run(argv, check=True, **kwargs)


def _require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise RuntimeError(
            f"missing {', '.join(missing)}: apt-get install debootstrap e2fsprogs qemu-system-x86 qemu-utils"
        )


def _write(path: Path, content: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)


def _configure_rootfs(rootfs: Path, suite: str, mirror: str) -> None:
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
    # Empty, not absent: systemd fills it from qemu's -uuid (or a random one) without "first boot" semantics.
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(rootfs / "etc/hostname", "sensorstack-vm\n")
    _write(rootfs / "etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    _write(rootfs / "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    _write(rootfs / "etc/resolv.conf", "nameserver 10.0.2.3\n")
    _write(rootfs / "etc/systemd/network/10-sensorstack-user.network", _USER_NIC_NETWORK)
    _write(rootfs / "etc/ssh/sshd_config.d/sensorstack-host-key.conf", _SSHD_HOST_KEY)
    _write(rootfs / "usr/local/sbin/sensorstack-vm-setup", _SETUP_SCRIPT, mode=0o755)
    _write(rootfs / "etc/systemd/system/sensorstack-vm-setup.service", _SETUP_UNIT)
    _run(["chroot", str(rootfs), "systemctl", "enable", "--quiet", "sensorstack-vm-setup.service", "systemd-networkd"])
    _run(["chroot", str(rootfs), "systemctl", "mask", "--quiet", *_MASKED_UNITS])
    for entry in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        entry.unlink()


def _boot_file(rootfs: Path, pattern: str) -> Path:
    found = sorted((rootfs / "boot").glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in the image's /boot, found {[path.name for path in found]}")
    return found[0]


def _build_image(folder: Path, suite: str, mirror: str) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f"sensorstack-vm-{suite}-", dir="/var/tmp"))
    try:
        rootfs = scratch / "rootfs"
        debootstrap(suite, rootfs, BOOT_PACKAGES + COMMON_ROLE_PACKAGES, mirror)
        _configure_rootfs(rootfs, suite, mirror)
        shutil.copyfile(_boot_file(rootfs, "vmlinuz-*"), folder / "vmlinuz")
        shutil.copyfile(_boot_file(rootfs, "initrd.img-*"), folder / "initrd.img")
        # -d copies the tree into the new file system: no loop mount, so no privileges beyond reading the tree.
        _run(
            ["mkfs.ext4", "-q", "-L", "sensorstack", "-d", str(rootfs), str(folder / "rootfs.raw"), _FILESYSTEM_SIZE],
            stdout=subprocess.DEVNULL,
        )
    finally:
        unmount_below(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def build_vm_image(suite: str = "bookworm", mirror: str | None = None, root: Path | None = None) -> VmImage:
    """The cached image for a Debian suite, built with debootstrap when its recipe is not cached yet."""
    if suite not in SUITES.values():
        raise ValueError(f"unknown Debian suite {suite!r}; known: {', '.join(sorted(SUITES.values()))}")
    mirror = debian_mirror(mirror)
    recipe = image_recipe(suite)

    def build(folder: Path) -> None:
        _require_tools("debootstrap", "mkfs.ext4", "chroot")
        _build_image(folder, suite, mirror)

    return VmImage(cached(CACHE_KIND, f"debian-{suite}", recipe, build, root=root))
