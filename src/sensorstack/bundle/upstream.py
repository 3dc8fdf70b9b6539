"""``bundle build --from upstream``: the same artifacts, fetched from where their publishers serve them.

For a user's online machine. Every byte is checked before it enters the bundle: the apt repository's signing key
against its pinned checksum, ``InRelease`` against that key (gpgv), ``Packages`` against ``InRelease``, each
``.deb`` against ``Packages``, each file against its pinned checksum; images are copied by skopeo, whose digests
are content addresses. Locations are the variables of versions.yml, so a served bundle can stand in for upstream.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sensorstack.bundle.aptrepo import ARCHITECTURE

USER_AGENT = "sensorstack-bundle"


@dataclass(frozen=True)
class PackageEntry:
    """One stanza of an apt ``Packages`` index, the fields the fetcher needs."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int
    architecture: str


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas (Packages, Release); continuation lines are joined with newlines."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    field = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, field = {}, ""
        elif line[0] in " \t" and field:
            current[field] += "\n" + line.strip()
        else:
            field, _, value = line.partition(":")
            current[field] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_packages(text: str) -> list[PackageEntry]:
    return [
        PackageEntry(
            package=stanza["Package"],
            version=stanza["Version"],
            filename=stanza["Filename"],
            sha256=stanza["SHA256"],
            size=int(stanza.get("Size", "0")),
            architecture=stanza["Architecture"],
        )
        for stanza in parse_stanzas(text)
        if {"Package", "Version", "Filename", "SHA256", "Architecture"} <= stanza.keys()
    ]


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """The ``SHA256:`` section of a (verified) Release: index path -> (sha256, size)."""
    [stanza] = parse_stanzas(release_text)[:1] or [{}]
    entries = {}
    for line in stanza.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            digest, size, name = parts
            entries[name] = (digest, int(size))
    return entries


def choose_packages(entries: Iterable[PackageEntry], wanted: Mapping[str, str]) -> dict[str, PackageEntry]:
    """The entry of each wanted package at its exact version for the bundle's architecture (or ``all``).

    A missing one is an error naming it. pkgs.k8s.io lists every architecture in one flat ``Packages`` index.
    """
    found = {(entry.package, entry.version): entry for entry in entries if entry.architecture in (ARCHITECTURE, "all")}
    chosen, missing = {}, []
    for package, version in wanted.items():
        entry = found.get((package, version))
        if entry is None:
            missing.append(f"{package}={version}")
        else:
            chosen[package] = entry
    if missing:
        raise ValueError(f"the apt repository has no {', '.join(missing)}")
    return chosen


def parse_checksum(pin: str, variable: str) -> str:
    """``sha256:<64 hex>`` -> the hex digest; anything else is an error naming the variable."""
    algorithm, _, digest = pin.partition(":")
    if algorithm != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{variable} must be sha256:<64 lowercase hex digits>, got {pin!r}")
    return digest


def download(url: str, target: Path, expected_sha256: str | None = None) -> Path:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".part")
    with urllib.request.urlopen(request, timeout=60) as answer, temporary.open("wb") as output:
        for chunk in iter(lambda: answer.read(1 << 20), b""):
            digest.update(chunk)
            output.write(chunk)
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        temporary.unlink()
        raise ValueError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {expected_sha256}")
    temporary.replace(target)
    return target


def binary_keyring(key: bytes, target: Path) -> Path:
    """gpgv wants a binary keyring: dearmor an ASCII-armored key (as pkgs.k8s.io serves Release.key)."""
    if not key.lstrip().startswith(b"-----BEGIN"):
        target.write_bytes(key)
        return target
    with tempfile.TemporaryDirectory(prefix="sensorstack-gpg-") as home:
        subprocess.run(
            ["gpg", "--homedir", home, "--batch", "--quiet", "--yes", "--output", str(target), "--dearmor"],
            input=key,
            check=True,
            capture_output=True,
        )
    return target


def verified_release(repo_url: str, key_file: Path, workdir: Path) -> str:
    """Download InRelease and return its signed text once gpgv has checked it against key_file."""
    inrelease = download(urllib.parse.urljoin(repo_url, "InRelease"), workdir / "InRelease")
    keyring = binary_keyring(key_file.read_bytes(), workdir / "trusted.gpg")
    plain = workdir / "Release"
    result = subprocess.run(
        ["gpgv", "--keyring", str(keyring), "--output", str(plain), str(inrelease)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"{repo_url}InRelease: the signature does not verify with the pinned key: {result.stderr}")
    return plain.read_text()


def fetch_debs(
    repo_url: str, key_url: str, key_checksum: str, wanted: Mapping[str, str], out: Path, workdir: Path
) -> tuple[dict[str, Path], Path]:
    """Fetch the wanted packages (name -> exact version) of a signed flat repository; return them and its key."""
    key_digest = parse_checksum(key_checksum, "sensorstack_kubernetes_apt_key_checksum")
    key = download(key_url, workdir / "Release.key", key_digest)
    release = verified_release(repo_url, key, workdir)
    indexes = release_sha256(release)
    if "Packages" not in indexes:
        raise ValueError(f"{repo_url}InRelease lists no Packages index")
    packages_digest, _ = indexes["Packages"]
    packages = download(urllib.parse.urljoin(repo_url, "Packages"), workdir / "Packages", packages_digest)
    chosen = choose_packages(parse_packages(packages.read_text()), wanted)
    fetched = {}
    for name, entry in chosen.items():
        target = out / Path(entry.filename).name
        fetched[name] = download(urllib.parse.urljoin(repo_url, entry.filename), target, entry.sha256)
    return fetched, key


def copy_image(reference: str, target: Path, registries_conf: Path | None = None) -> str:
    """skopeo copy docker://reference into an OCI archive; return the manifest digest it got."""
    command = ["skopeo"]
    if registries_conf is not None:
        command += ["--registries-conf", str(registries_conf)]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest_file = target.with_name(target.name + ".digest")
    subprocess.run(
        [
            *command,
            "copy",
            "--quiet",
            "--digestfile",
            str(digest_file),
            f"docker://{reference}",
            f"oci-archive:{target}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    digest = digest_file.read_text().strip()
    digest_file.unlink()
    return digest
