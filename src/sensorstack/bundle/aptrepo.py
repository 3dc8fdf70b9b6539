"""A signed flat apt repository laid out like pkgs.k8s.io: ``<root>/core:/stable:/v<minor>/deb/``.

pkgs.k8s.io serves what OBS publishes (open-build-service ``bs_publish``, ``createrepo_debian``): a flat repository,
used as ``deb [signed-by=KEYRING] URL/core:/stable:/v1.35/deb/ /``, with the packages under ``<arch>/``,
``Packages`` and ``Packages.gz`` (``Filename: amd64/kubeadm_1.35.4-1.1_amd64.deb``), a ``Release`` with the index
checksums, ``InRelease`` (clearsigned), ``Release.gpg`` (detached, armored) and ``Release.key`` (the armored public
key users ``gpg --dearmor`` into /etc/apt/keyrings/).

Signing uses one key per bundle cache (``<cache>/apt-signing-key/``, a private GNUPGHOME), made once with Ed25519 and
used with SHA-512 digests: Debian 13's apt verifies with sqv, whose policy refuses SHA-1 and weak keys.
"""

from __future__ import annotations

import atexit
import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sensorstack.bundle.cache import place

ARCHITECTURE = "amd64"
KEY_FOLDER = "apt-signing-key"
KEY_USER_ID = "sensorstack bundle apt repository"
PUBLIC_KEY_FILE = "Release.key"
# The order dpkg-scanpackages writes (and so pkgs.k8s.io's Packages has); fields not listed follow, then these.
_LEADING_FIELDS = (
    "Package",
    "Source",
    "Version",
    "Architecture",
    "Maintainer",
    "Installed-Size",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Provides",
    "Filename",
    "Size",
    "MD5sum",
    "SHA256",
)
_TRAILING_FIELDS = ("Section", "Priority", "Homepage", "Description")


@dataclass(frozen=True)
class SigningKey:
    home: Path
    fingerprint: str
    public_key: str  # ASCII armored, as served in Release.key


@dataclass(frozen=True)
class IndexedPackage:
    """A .deb as the Packages index lists it."""

    control: Mapping[str, str]
    filename: str  # relative to the repository folder
    size: int
    md5: str
    sha256: str


def repository_path(minor: str) -> Path:
    """``1.35`` -> ``core:/stable:/v1.35/deb`` (the path under the bundle's apt root)."""
    minor = minor.removeprefix("v")
    if not re.fullmatch(r"\d+\.\d+", minor):
        raise ValueError(f"the Kubernetes minor must look like 1.35, got {minor!r}")
    return Path("core:", "stable:", f"v{minor}", "deb")


def parse_control(text: str) -> dict[str, str]:
    """One deb822 paragraph (as ``dpkg-deb --field`` prints it) into fields; continuation lines stay in the value."""
    fields: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if current is None:
                raise ValueError(f"continuation line before any field: {line!r}")
            fields[current] += "\n" + line
        else:
            name, _, value = line.partition(":")
            current = name.strip()
            fields[current] = value.strip()
    return fields


def render_packages(packages: Iterable[IndexedPackage]) -> str:
    """The Packages index: one paragraph per package, sorted by name, version and file."""
    paragraphs = []
    for package in sorted(packages, key=lambda p: (p.control["Package"], p.control["Version"], p.filename)):
        fields = {
            **{name: value for name, value in package.control.items() if name not in ("Filename", "Size")},
            "Filename": package.filename,
            "Size": str(package.size),
            "MD5sum": package.md5,
            "SHA256": package.sha256,
        }
        leading = [name for name in _LEADING_FIELDS if name in fields]
        trailing = [name for name in _TRAILING_FIELDS if name in fields]
        others = [name for name in fields if name not in leading and name not in trailing]
        paragraphs.append("".join(f"{name}: {fields[name]}\n" for name in (*leading, *others, *trailing)))
    return "\n".join(paragraphs)


def gzip_bytes(data: bytes) -> bytes:
    """gzip without a file name or timestamp in the header, so equal input gives equal output."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def render_release(
    indexes: Mapping[str, bytes], minor: str, date: datetime, architectures: Sequence[str] = (ARCHITECTURE,)
) -> str:
    """The Release file of the flat repository: what it is, when it was made, and the checksums of its indexes.

    OBS writes Archive/Codename/Origin/Label/Architectures/Date/Description; there is no Suite, Components or
    Valid-Until (an air-gapped bundle must stay usable however old it is). The Date is RFC 2822 in UTC as apt
    expects it.
    """
    minor = minor.removeprefix("v")
    header = [
        ("Origin", "sensorstack"),
        ("Label", f"sensorstack kubernetes core:stable:v{minor}"),
        ("Codename", "deb"),
        ("Architectures", " ".join(architectures)),
        ("Date", format_datetime(date.astimezone(UTC), usegmt=True)),
        ("Description", f"Kubernetes v{minor} packages, rebuilt for an air-gapped sensorstack bundle"),
    ]
    lines = [f"{name}: {value}" for name, value in header]
    for algorithm, label in (("md5", "MD5Sum"), ("sha256", "SHA256")):
        lines.append(f"{label}:")
        for name, data in sorted(indexes.items()):
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


# gpg-agent's sockets live in the home folder, and a Unix socket's path has at most 107 bytes: the longest name,
# S.gpg-agent.browser, leaves a home folder of about 80. A longer one is reached through a short link in the temporary
# folder instead (one per home, removed at exit), so a deep cache or test folder still signs.
_LONGEST_HOME = 80
_short_homes: dict[Path, Path] = {}


def _gpg_home(home: Path) -> Path:
    if len(str(home)) <= _LONGEST_HOME:
        return home
    if home not in _short_homes:
        folder = Path(tempfile.mkdtemp(prefix="gpg-"))
        (folder / "h").symlink_to(home.resolve(), target_is_directory=True)
        _short_homes[home] = folder / "h"
        atexit.register(shutil.rmtree, folder, True)
    return _short_homes[home]


def _gpg(home: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    command = ["gpg", "--homedir", str(_gpg_home(home)), "--batch", "--no-tty", "--quiet", *args]
    return subprocess.run(command, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def _stop_agent(home: Path) -> None:
    """gpg starts an agent per GNUPGHOME; stop ours so nothing keeps running after a build.

    The agent removes its socket as it exits; wait for that, or the next gpg call could meet the dying agent.
    """
    home = _gpg_home(home)
    dirs = subprocess.run(
        ["gpgconf", "--homedir", str(home), "--list-dirs", "agent-socket"], capture_output=True, text=True, check=False
    )
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)
    socket = Path(dirs.stdout.strip()) if dirs.returncode == 0 and dirs.stdout.strip() else None
    deadline = time.monotonic() + 10
    while socket is not None and socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _key_fingerprint(home: Path) -> str:
    # The public keyring names the same key and, unlike the secret one, is read without starting gpg-agent.
    listing = _gpg(home, "--with-colons", "--list-keys", text=True).stdout
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    if not fingerprints:
        raise RuntimeError(f"{home}: no key to sign the apt repository with")
    return fingerprints[0]  # the primary key's fingerprint comes first


def load_signing_key(home: Path) -> SigningKey:
    fingerprint = _key_fingerprint(home)
    public = _gpg(home, "--armor", "--export", fingerprint, text=True).stdout
    return SigningKey(home=home, fingerprint=fingerprint, public_key=public)


def ensure_signing_key(cache_root: Path) -> SigningKey:
    """The bundle's signing key in <cache_root>/apt-signing-key/, generated on first use and then kept.

    Every rebuild signs with the same key, so hosts that trust one bundle trust the next. The private key never
    leaves that folder (mode 0700). Release.key is written last: a folder without it is an interrupted generation
    and is made again. (The key is made in place, not renamed into place: gpg-agent's sockets live in the folder.)
    """
    home = cache_root / KEY_FOLDER
    cache_root.mkdir(parents=True, exist_ok=True)
    with (cache_root / f".{KEY_FOLDER}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / PUBLIC_KEY_FILE).is_file():
            if home.exists():
                _stop_agent(home)
                shutil.rmtree(home)
            home.mkdir(mode=0o700)
            try:
                _gpg(
                    home,
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                    "--quick-generate-key",
                    KEY_USER_ID,
                    "ed25519",
                    "sign",
                    "never",
                )
                _write(home / PUBLIC_KEY_FILE, load_signing_key(home).public_key.encode())
            finally:
                _stop_agent(home)
    return SigningKey(
        home=home,
        fingerprint=_key_fingerprint(home),
        public_key=(home / PUBLIC_KEY_FILE).read_text(),
    )


def _sign(home: Path, fingerprint: str, release: Path, folder: Path) -> None:
    common = ("--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fingerprint, "--digest-algo", "SHA512")
    try:
        _gpg(home, *common, "--yes", "--clearsign", "--output", str(folder / "InRelease"), str(release))
        _gpg(home, *common, "--yes", "--armor", "--detach-sign", "--output", str(folder / "Release.gpg"), str(release))
    finally:
        _stop_agent(home)


def index_deb(deb: Path, filename: str) -> IndexedPackage:
    fields = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True).stdout
    data = deb.read_bytes()
    return IndexedPackage(
        control=parse_control(fields),
        filename=filename,
        size=len(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_apt_repository(
    repo_root: Path, debs: Sequence[Path], minor: str, signing_home: Path, date: datetime | None = None
) -> Path:
    """Put debs into <repo_root>/core:/stable:/v<minor>/deb/amd64/, index and sign; returns that repository folder.

    The folder ends up holding exactly these packages: others left from an earlier build are removed.
    """
    folder = repo_root / repository_path(minor)
    pool = folder / ARCHITECTURE
    pool.mkdir(parents=True, exist_ok=True)
    names = {deb.name for deb in debs}
    if len(names) != len(debs):
        raise ValueError("two packages with the same file name")
    indexed = []
    for deb in debs:
        target = pool / deb.name
        if not (target.exists() and target.samefile(deb)):
            place(deb, target)
        indexed.append(index_deb(target, f"{ARCHITECTURE}/{deb.name}"))
    packages = render_packages(indexed).encode()
    indexes = {"Packages": packages, "Packages.gz": gzip_bytes(packages)}
    release = render_release(indexes, minor, date or datetime.now(UTC))
    key = load_signing_key(signing_home)
    # Everything is signed before anything is replaced: a failed signing leaves the previous repository whole.
    with tempfile.TemporaryDirectory(prefix=".release-", dir=folder) as tmp:
        staged = Path(tmp)
        for name, data in indexes.items():
            (staged / name).write_bytes(data)
        (staged / "Release").write_text(release)
        _sign(signing_home, key.fingerprint, staged / "Release", staged)
        (staged / "Release.key").write_text(key.public_key)
        for name in (*indexes, "Release", "Release.gpg", "InRelease", "Release.key"):
            os.replace(staged / name, folder / name)
    for stale in pool.glob("*.deb"):
        if stale.name not in names:
            stale.unlink()
    return folder
