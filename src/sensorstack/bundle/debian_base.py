"""The Debian layer under the images that program the node's packet filter: kube-proxy and calico/node.

Upstream builds them on distroless-iptables (kube-proxy) and a UBI image (calico/node); both carry iptables (legacy
and nf_tables), nft, ipset, conntrack, iproute2 and kmod. Here the same tools come from a ``debootstrap
--variant=minbase`` root trimmed of documentation, locales and apt lists, written as one deterministic layer and
cached by its recipe (the Debian mirror only serves it, so it is not part of the recipe).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from sensorstack.bundle.cache import cache_root, cached, log, sha256_file
from sensorstack.bundle.oci_layout import Layer, write_rootfs_layer
from sensorstack.debian import debian_mirror, debootstrap, unmount_below

IMAGE_FILES = Path(__file__).parent / "image_files"
IPTABLES_WRAPPER = IMAGE_FILES / "debian-base/iptables-wrapper"

DEBIAN_BASE_PACKAGES = (
    "iptables",
    "nftables",
    "ipset",
    "conntrack",
    "iproute2",
    "kmod",
    "procps",
    "ca-certificates",
)
# Unpacked from their .deb without installing their dependencies: calico/node supervises felix and its helpers with
# runit's runsvdir as upstream does, but the runit package pulls in perl (50 MB) through sysuser-helper, which only
# its init-system parts need.
UNPACKED_PACKAGES = ("runit",)
# The commands the iptables wrapper stands in for until it has picked the node's backend.
WRAPPED_COMMANDS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")
# Removed after debootstrap; the copyright files under usr/share/doc stay.
TRIMMED = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/log",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
)
# Future `apt-get install`s in a derived image stay small as well (the settings Debian's slim images use).
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""

# Bump when the steps after debootstrap change meaning; it is part of the recipe.
_SETUP_REVISION = 1


@dataclass(frozen=True)
class DebianBaseRecipe:
    suite: str = "trixie"
    variant: str = "minbase"
    packages: tuple[str, ...] = DEBIAN_BASE_PACKAGES
    unpacked: tuple[str, ...] = UNPACKED_PACKAGES

    def recipe(self) -> dict[str, object]:
        return asdict(self) | {
            "setup_revision": _SETUP_REVISION,
            "trimmed": TRIMMED,
            "dpkg_excludes": DPKG_EXCLUDES,
            "iptables_wrapper": sha256_file(IPTABLES_WRAPPER),
        }


@dataclass(frozen=True)
class DebianBase:
    """A built base: its layer blob, the CA bundle (the static images take it too) and what is installed."""

    folder: Path
    layer: Layer
    rootfs_bytes: int
    packages: tuple[str, ...]
    # Links to directories (bin -> usr/bin, var/run -> /run): a layer above must not turn them into directories.
    directory_links: tuple[str, ...] = ()

    @property
    def layer_path(self) -> Path:
        return self.folder / "layer.tar.gz"

    @property
    def ca_certificates(self) -> Path:
        return self.folder / "ca-certificates.crt"

    @classmethod
    def load(cls, folder: Path) -> DebianBase:
        details = json.loads((folder / "layer.json").read_text())
        return cls(
            folder,
            Layer(**details["layer"]),
            details["rootfs_bytes"],
            tuple(details["packages"]),
            tuple(details["directory_links"]),
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def trim(rootfs: Path) -> None:
    for relative in TRIMMED:
        target = rootfs / relative
        if target.is_dir() and not target.is_symlink():
            for child in target.iterdir():
                _remove(child)
        else:
            _remove(target)
    for document in (rootfs / "usr/share/doc").glob("*/*"):
        if document.name != "copyright":
            _remove(document)
    for old in [*(rootfs / "var/lib/dpkg").glob("*-old"), *(rootfs / "var/cache/debconf").glob("*-old")]:
        _remove(old)


def install_iptables_wrapper(rootfs: Path) -> None:
    sbin = rootfs / "usr/sbin"
    shutil.copyfile(IPTABLES_WRAPPER, sbin / "iptables-wrapper")
    (sbin / "iptables-wrapper").chmod(0o755)
    for command in WRAPPED_COMMANDS:
        link = sbin / command
        if not link.is_symlink() and not link.exists():
            raise RuntimeError(f"debootstrap left no /usr/sbin/{command}: is iptables installed?")
        link.unlink()
        link.symlink_to("iptables-wrapper")


def unpack_without_dependencies(rootfs: Path, packages: tuple[str, ...], host_resolv_conf: Path) -> list[str]:
    """Download packages with the root's own apt (its suite and keys) and copy in their programs and copyright."""
    if not packages:
        return []
    shutil.copyfile(host_resolv_conf, rootfs / "etc/resolv.conf")
    downloads = rootfs / "tmp/sensorstack-debs"
    downloads.mkdir()
    downloads.chmod(0o777)  # apt downloads as its _apt user
    chroot = ["chroot", str(rootfs)]
    subprocess.run([*chroot, "apt-get", "-q", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*chroot, "sh", "-c", f"cd /tmp/sensorstack-debs && apt-get -q download {' '.join(packages)}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    unpacked = []
    for deb in sorted(downloads.glob("*.deb")):
        contents = downloads / deb.stem
        subprocess.run(["dpkg-deb", "-x", str(deb), str(contents)], check=True)
        for program in sorted((contents / "usr/bin").iterdir()):
            shutil.copy2(program, rootfs / "usr/bin" / program.name, follow_symlinks=False)
        package = deb.name.split("_")[0]
        shutil.copytree(contents / "usr/share/doc" / package, rootfs / "usr/share/doc" / package, dirs_exist_ok=True)
        unpacked.append(deb.name.removesuffix(".deb").replace("_", " ", 1).rsplit("_", 1)[0] + " (unpacked)")
    shutil.rmtree(downloads)
    return unpacked


def directory_links(rootfs: Path) -> list[str]:
    """Paths (relative to rootfs) of links that point to directories inside rootfs."""
    links = []
    for folder, directories, files in os.walk(rootfs):
        for name in directories + files:
            path = Path(folder, name)
            if not path.is_symlink():
                continue
            target = os.readlink(path)
            resolved = rootfs / target.lstrip("/") if target.startswith("/") else path.parent / target
            if resolved.is_dir():
                links.append(path.relative_to(rootfs).as_posix())
    return sorted(links)


def _directory_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _build(work: Path, recipe: DebianBaseRecipe, mirror: str) -> None:
    rootfs = work / "rootfs"
    try:
        _bootstrap(work, rootfs, recipe, mirror)
    finally:
        unmount_below(work)


def _bootstrap(work: Path, rootfs: Path, recipe: DebianBaseRecipe, mirror: str) -> None:
    log(f"debootstrap {recipe.suite} ({recipe.variant}) with {', '.join(recipe.packages)} (a few minutes)")
    debootstrap(recipe.suite, rootfs, recipe.packages, mirror, recipe.variant)
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    listing += unpack_without_dependencies(rootfs, recipe.unpacked, Path("/etc/resolv.conf"))
    trim(rootfs)
    install_iptables_wrapper(rootfs)
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    (rootfs / "etc/dpkg/dpkg.cfg.d/01-sensorstack-nodoc").write_text(DPKG_EXCLUDES)
    shutil.copyfile(rootfs / "etc/ssl/certs/ca-certificates.crt", work / "ca-certificates.crt")
    rootfs_bytes = _directory_bytes(rootfs)
    layer = write_rootfs_layer(rootfs, work / "layer.tar.gz", comment=f"debootstrap {recipe.suite} {recipe.variant}")
    details = {
        "layer": asdict(layer),
        "rootfs_bytes": rootfs_bytes,
        "packages": sorted(line for line in listing if line),
        "directory_links": directory_links(rootfs),
    }
    (work / "layer.json").write_text(json.dumps(details, indent=2) + "\n")
    shutil.rmtree(rootfs)


def build_debian_base(
    recipe: DebianBaseRecipe | None = None, cache: Path | None = None, mirror: str | None = None
) -> DebianBase:
    """The cached base for the recipe, built first when missing."""
    recipe = recipe or DebianBaseRecipe()
    mirror = debian_mirror(mirror)
    folder = cached(
        "images",
        f"debian-base-{recipe.suite}",
        recipe.recipe(),
        lambda work: _build(work, recipe, mirror),
        root=cache or cache_root(),
    )
    return DebianBase.load(folder)
