"""Debian packages of kubeadm, kubelet, kubectl, cri-tools and kubernetes-cni, shaped like pkgs.k8s.io's.

Upstream builds them on OBS with debbuild from the spec files in kubernetes/release
(``cmd/krel/templates/latest/<name>/<name>.spec``, dependencies from ``metadata.yaml`` there). This module packs
binaries built here into packages that carry what those packages carry for apt and for users: names, versions,
Depends, Section, Maintainer, the installed paths, kubelet's unit, kubeadm's drop-in and the ``/etc/default/kubelet``
conffile. Packages are reproducible: fixed mtimes (SOURCE_DATE_EPOCH), root ownership, sorted members.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sensorstack.bundle import cache

DATA = Path(__file__).with_name("data")
ARCHITECTURE = "amd64"
MAINTAINER = "Kubernetes Authors <dev@kubernetes.io>"
HOMEPAGE = "https://kubernetes.io"
# 2026-04-15T00:00:00Z, the day Kubernetes 1.35.4 was released: the mtime of every file in the packages.
DEFAULT_SOURCE_DATE_EPOCH = 1776211200
# gzip -6: every dpkg reads it, and on the 72 MB kubeadm it took 8 s against 22 s for -9 (1% smaller) and 135 s
# for xz (35% smaller), measured on the loaded 2-core build machine.
COMPRESSION = "gzip"
COMPRESSION_LEVELS = {"gzip": 6, "xz": 6, "zstd": 3}
# Part of the cache recipe: bump when the packaging below changes what ends up in a .deb.
PACKAGING_REVISION = 1

# The keys of `binaries` that build_kubernetes_debs needs; "cni-plugins" is a directory of plugin executables.
BINARY_KEYS = ("kubeadm", "kubelet", "kubectl", "crictl", "cni-plugins")

# kubeadm's dependency on cri-tools (>= 1.30.0), per metadata.yaml, is meant for 1.30 and 1.31 only. Until
# kubernetes/release#4387 (merged 2026-04-27) krel matched that rule for every later version too, so the packages
# published up to the April 2026 patch releases still carry it: the newest such patch per minor.
_LAST_KUBEADM_PATCH_WITH_CRI_TOOLS = {(1, 32): 13, (1, 33): 11, (1, 34): 7, (1, 35): 4, (1, 36): 0}


@dataclass(frozen=True)
class PackagedFile:
    """One file of a package: its absolute path on the host, mode, and where its bytes come from."""

    path: str
    mode: int = 0o644
    source: Path | None = None
    content: bytes | None = None

    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.source is not None
        return self.source.read_bytes()


@dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str
    section: str
    summary: str
    files: tuple[PackagedFile, ...]
    depends: tuple[str, ...] = ()
    conffiles: tuple[str, ...] = ()
    maintainer_scripts: Mapping[str, str] = field(default_factory=dict)
    maintainer: str = MAINTAINER
    homepage: str = HOMEPAGE

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{ARCHITECTURE}.deb"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def debian_versions(versions: Mapping[str, str]) -> dict[str, str]:
    """The Debian version of each package from the variables of versions.yml (e.g. kubeadm -> 1.35.4-1.1)."""
    revision = str(versions["sensorstack_kubernetes_package_revision"])
    kubernetes = str(versions["sensorstack_kubernetes_version"])
    return {
        "kubeadm": f"{kubernetes}-{revision}",
        "kubelet": f"{kubernetes}-{revision}",
        "kubectl": f"{kubernetes}-{revision}",
        "cri-tools": f"{versions['sensorstack_cri_tools_version']}-{revision}",
        "kubernetes-cni": f"{versions['sensorstack_cni_plugins_version']}-{revision}",
    }


def shared_packages(versions: Mapping[str, str], other: Mapping[str, str]) -> set[str]:
    """The packages two releases' repositories carry at the same version (cri-tools and kubernetes-cni, which the
    versions file pins once): one file serves both, as pkgs.k8s.io repeats them in the repository of each minor."""
    mine, theirs = debian_versions(versions), debian_versions(other)
    return {name for name, version in mine.items() if theirs.get(name) == version}


def package_name(deb: Path) -> str:
    """``kubeadm_1.35.4-1.1_amd64.deb`` -> ``kubeadm``."""
    return deb.name.split("_", 1)[0]


def kubeadm_depends(kubernetes_version: str) -> tuple[str, ...]:
    major, minor, patch = _version_tuple(kubernetes_version)
    if (major, minor) < (1, 30):
        raise ValueError(f"kubeadm {kubernetes_version}: only Kubernetes 1.30 and later are packaged")
    if (major, minor) < (1, 32):
        return ("cri-tools (>= 1.30.0)",)
    last = _LAST_KUBEADM_PATCH_WITH_CRI_TOOLS.get((major, minor))
    return ("cri-tools (>= 1.30.0)",) if last is not None and patch <= last else ()


def kubelet_depends() -> tuple[str, ...]:
    # kubelet.spec: iptables, the kubernetes-cni rule of metadata.yaml (>= 1.28.0), mount (deb only), util-linux.
    # conntrack, iproute2 and ethtool were dropped in September 2025 (kubernetes/release d2a7ae37), before 1.35.0.
    return ("iptables (>= 1.4.21)", "kubernetes-cni (>= 1.2.0)", "mount", "util-linux")


def _copyright(upstream_name: str, source: str, holder: str) -> bytes:
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {upstream_name}\n"
        f"Source: {source}\n\n"
        f"Files: *\nCopyright: {holder}\nLicense: Apache-2.0\n"
        " On Debian systems the full text of the Apache License, Version 2.0 is in\n"
        " /usr/share/common-licenses/Apache-2.0.\n"
    ).encode()


def _doc(package: str, upstream_name: str, source: str, holder: str) -> PackagedFile:
    return PackagedFile(f"/usr/share/doc/{package}/copyright", content=_copyright(upstream_name, source, holder))


def _executable(path: str, source: Path) -> PackagedFile:
    return PackagedFile(path, mode=0o755, source=source)


def _data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def cni_plugin_files(directory: Path) -> tuple[PackagedFile, ...]:
    """Every regular file of a CNI plugins directory, as /opt/cni/bin/<name> (upstream copies its whole tarball)."""
    entries = sorted(entry for entry in directory.iterdir() if entry.is_file())
    if not entries:
        raise ValueError(f"{directory}: no CNI plugins in it")
    return tuple(
        PackagedFile(f"/opt/cni/bin/{entry.name}", mode=0o755 if os.access(entry, os.X_OK) else 0o644, source=entry)
        for entry in entries
    )


def package_specs(binaries: Mapping[str, Path], versions: Mapping[str, str]) -> list[PackageSpec]:
    """What goes into each package (no file is read but the packaging data)."""
    missing = [key for key in BINARY_KEYS if key not in binaries]
    if missing:
        raise ValueError(f"binaries lacks {', '.join(missing)} (needs {', '.join(BINARY_KEYS)})")
    debian = debian_versions(versions)
    k8s = ("kubernetes", "https://github.com/kubernetes/kubernetes", "The Kubernetes Authors")
    return [
        PackageSpec(
            name="cri-tools",
            version=debian["cri-tools"],
            section="admin",
            summary="Command-line utility for interacting with a container runtime",
            files=(
                _executable("/usr/bin/crictl", binaries["crictl"]),
                _doc("cri-tools", "cri-tools", "https://github.com/kubernetes-sigs/cri-tools", k8s[2]),
            ),
        ),
        PackageSpec(
            name="kubeadm",
            version=debian["kubeadm"],
            section="admin",
            summary="Command-line utility for administering a Kubernetes cluster",
            files=(
                _executable("/usr/bin/kubeadm", binaries["kubeadm"]),
                PackagedFile(
                    "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", content=_data("10-kubeadm.conf")
                ),
                _doc("kubeadm", *k8s),
            ),
            depends=kubeadm_depends(str(versions["sensorstack_kubernetes_version"])),
        ),
        PackageSpec(
            name="kubectl",
            version=debian["kubectl"],
            section="admin",
            summary="Command-line utility for interacting with a Kubernetes cluster",
            files=(_executable("/usr/bin/kubectl", binaries["kubectl"]), _doc("kubectl", *k8s)),
        ),
        PackageSpec(
            name="kubelet",
            version=debian["kubelet"],
            section="net",
            summary="Node agent for Kubernetes clusters",
            files=(
                _executable("/usr/bin/kubelet", binaries["kubelet"]),
                PackagedFile("/usr/lib/systemd/system/kubelet.service", content=_data("kubelet.service")),
                PackagedFile("/etc/default/kubelet", content=_data("kubelet.default")),
                # Empty markers upstream ships because dpkg-deb does not keep empty directories.
                PackagedFile("/var/lib/kubelet/.kubelet-keep", content=b""),
                PackagedFile("/etc/kubernetes/manifests/.kubelet-keep", content=b""),
                _doc("kubelet", *k8s),
            ),
            depends=kubelet_depends(),
            conffiles=("/etc/default/kubelet",),
            maintainer_scripts={
                script: (DATA / f"kubelet.{script}").read_text() for script in ("postinst", "prerm", "postrm")
            },
        ),
        PackageSpec(
            name="kubernetes-cni",
            version=debian["kubernetes-cni"],
            section="net",
            summary="Binaries required to provision kubernetes container networking",
            files=(
                *cni_plugin_files(Path(binaries["cni-plugins"])),
                PackagedFile("/etc/cni/net.d/.kubernetes-cni-keep", content=b""),
                _doc("kubernetes-cni", "plugins", "https://github.com/containernetworking/plugins", "The CNI Authors"),
            ),
        ),
    ]


def _directories(paths: Iterable[str]) -> set[str]:
    directories = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            directories.add(parent)
            parent = os.path.dirname(parent)
    return directories


def installed_size_kib(file_sizes: Mapping[str, int]) -> int:
    """Installed-Size as dpkg-gencontrol counts it: each file rounded up to KiB, plus 1 KiB per directory."""
    return sum(-(-size // 1024) for size in file_sizes.values()) + len(_directories(file_sizes))


def render_control(spec: PackageSpec, installed_size: int) -> str:
    fields = [
        ("Package", spec.name),
        ("Version", spec.version),
        ("Architecture", ARCHITECTURE),
        ("Maintainer", spec.maintainer),
        ("Installed-Size", str(installed_size)),
        ("Depends", ", ".join(spec.depends)),
        ("Section", spec.section),
        ("Priority", "optional"),
        ("Homepage", spec.homepage),
        ("Description", f"{spec.summary}\n {spec.summary}."),
    ]
    return "".join(f"{name}: {value}\n" for name, value in fields if value)


def render_md5sums(digests: Mapping[str, str]) -> str:
    """DEBIAN/md5sums: paths relative to / in path order (conffiles are left out: dpkg tracks those itself)."""
    return "".join(f"{digest}  {path.lstrip('/')}\n" for path, digest in sorted(digests.items()))


def _digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stage(spec: PackageSpec, root: Path) -> None:
    digests: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for packaged in spec.files:
        target = root / packaged.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if packaged.source is not None:
            shutil.copyfile(packaged.source, target)
        else:
            target.write_bytes(packaged.data())
        target.chmod(packaged.mode)
        sizes[packaged.path] = target.stat().st_size
        if packaged.path not in spec.conffiles:
            digests[packaged.path] = _digest(target, "md5")
    control = root / "DEBIAN"
    control.mkdir()
    (control / "control").write_text(render_control(spec, installed_size_kib(sizes)))
    (control / "md5sums").write_text(render_md5sums(digests))
    if spec.conffiles:
        (control / "conffiles").write_text("".join(f"{path}\n" for path in spec.conffiles))
    for name, script in spec.maintainer_scripts.items():
        (control / name).write_text(script)
        (control / name).chmod(0o755)


def _fix_metadata(root: Path, epoch: int) -> None:
    """Same modes and mtimes whatever the umask and the clock of the build."""
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories:
            (Path(directory) / name).chmod(0o755)
        for name in (*files, *subdirectories):
            os.utime(Path(directory) / name, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def build_deb(
    spec: PackageSpec, out_dir: Path, source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH, compression: str = COMPRESSION
) -> Path:
    """Build one package into out_dir/<name>_<version>_amd64.deb (written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-", dir=out_dir) as tmp:
        root = Path(tmp) / "root"
        _stage(spec, root)
        _fix_metadata(root, source_date_epoch)
        built = Path(tmp) / spec.filename
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date_epoch))
        subprocess.run(
            [
                "dpkg-deb",
                "--root-owner-group",
                f"-Z{compression}",
                f"-z{COMPRESSION_LEVELS[compression]}",
                "--build",
                str(root),
                str(built),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        target = out_dir / spec.filename
        os.replace(built, target)
    return target


def build_kubernetes_debs(
    binaries: Mapping[str, Path],
    versions: Mapping[str, str],
    out_dir: Path,
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH,
    compression: str = COMPRESSION,
) -> list[Path]:
    """Build the five packages from binaries[kubeadm|kubelet|kubectl|crictl] and binaries["cni-plugins"] (a
    directory); returns the .deb paths in out_dir."""
    specs = package_specs(binaries, versions)
    for spec in specs:
        for packaged in spec.files:
            if packaged.source is not None and not packaged.source.is_file():
                raise FileNotFoundError(f"{spec.name}: {packaged.source} is not a file")
    return [build_deb(spec, out_dir, source_date_epoch, compression) for spec in specs]


def debs_recipe(
    binaries: Mapping[str, Path], versions: Mapping[str, str], source_date_epoch: int, compression: str
) -> dict:
    """Everything that decides the bytes of the packages (inputs by content, not by path)."""
    inputs: dict[str, str] = {}
    for key in BINARY_KEYS:
        path = Path(binaries[key])
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if entry.is_file():
                    mode = "x" if os.access(entry, os.X_OK) else "-"
                    inputs[f"{key}/{entry.name}"] = f"{_digest(entry)}{mode}"
        else:
            inputs[key] = _digest(path)
    packaging = {entry.name: _digest(entry) for entry in sorted(DATA.iterdir()) if entry.is_file()}
    return {
        "packages": debian_versions(versions),
        "kubernetes_version": str(versions["sensorstack_kubernetes_version"]),
        "inputs": inputs,
        "packaging": packaging,
        "packaging_revision": PACKAGING_REVISION,
        "source_date_epoch": source_date_epoch,
        "compression": compression,
    }


def ensure_kubernetes_debs(
    binaries: Mapping[str, Path],
    versions: Mapping[str, str],
    cache_root: Path | None = None,
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH,
    compression: str = COMPRESSION,
) -> list[Path]:
    """The packages from the cache folder <cache>/debs/kubernetes-debs-<recipe digest>, built when missing."""
    recipe = debs_recipe(binaries, versions, source_date_epoch, compression)

    def build(folder: Path) -> None:
        build_kubernetes_debs(binaries, versions, folder, source_date_epoch, compression)

    folder = cache.cached("debs", "kubernetes-debs", recipe, build, root=cache_root)
    return sorted(folder.glob("*.deb"))
