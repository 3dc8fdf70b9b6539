"""``bundle.json``: every artifact of a bundle with its upstream location, version and sha256.

The manifest is the bundle's contract: ``sensorstack bundle verify`` checks a bundle's files against it, and two
bundles of the same pins (one built from source, one fetched from upstream) agree when their artifact lists do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensorstack.bundle.cache import sha256_file

MANIFEST_NAME = "bundle.json"
SCHEMA = 1
KINDS = ("deb", "image", "file", "key")


@dataclass(frozen=True)
class Artifact:
    """One file of the bundle. ``path`` is relative to the bundle root; images are OCI archives."""

    kind: str
    name: str
    version: str
    path: str
    sha256: str
    size: int
    upstream: str
    # Image manifest digest (images only): what a registry and containerd address the image by.
    digest: str = ""
    # A lab stand-in, not the upstream artifact (e.g. the Grafana image that serves the API double).
    standin: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.name, self.version)


@dataclass
class Manifest:
    source: str
    versions: dict[str, str]
    artifacts: list[Artifact] = field(default_factory=list)
    schema: int = SCHEMA

    def to_json(self) -> str:
        data = {
            "schema": self.schema,
            "source": self.source,
            "versions": dict(sorted(self.versions.items())),
            "artifacts": [asdict(artifact) for artifact in sorted(self.artifacts, key=lambda a: (a.key, a.path))],
        }
        return json.dumps(data, indent=2) + "\n"

    def write(self, bundle: Path) -> Path:
        target = bundle / MANIFEST_NAME
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(self.to_json())
        temporary.replace(target)
        return target

    def find(self, kind: str, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.kind == kind and artifact.name == name:
                return artifact
        raise KeyError(f"bundle.json has no {kind} named {name!r}")


def parse_manifest(text: str, origin: str = MANIFEST_NAME) -> Manifest:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{origin}: not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{origin}: not a sensorstack bundle manifest of schema {SCHEMA}")
    artifacts = []
    for index, entry in enumerate(data.get("artifacts", [])):
        try:
            artifact = Artifact(**entry)
        except TypeError as error:
            raise ValueError(f"{origin}: artifact #{index}: {error}") from None
        if artifact.kind not in KINDS:
            raise ValueError(f"{origin}: artifact #{index} ({artifact.name}): unknown kind {artifact.kind!r}")
        artifacts.append(artifact)
    return Manifest(source=str(data.get("source", "")), versions=dict(data.get("versions", {})), artifacts=artifacts)


def read_manifest(bundle: Path) -> Manifest:
    path = bundle / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{bundle} is not a bundle: {MANIFEST_NAME} is missing")
    return parse_manifest(path.read_text(), str(path))


def artifact_for(
    bundle: Path,
    path: Path,
    *,
    kind: str,
    name: str,
    version: str,
    upstream: str,
    digest: str = "",
    standin: str = "",
) -> Artifact:
    """Describe a file already inside the bundle."""
    return Artifact(
        kind=kind,
        name=name,
        version=version,
        path=path.relative_to(bundle).as_posix(),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        upstream=upstream,
        digest=digest,
        standin=standin,
    )


def verify(bundle: Path, manifest: Manifest | None = None) -> list[str]:
    """Every way the bundle's files differ from its manifest (empty: the bundle is whole)."""
    manifest = manifest or read_manifest(bundle)
    problems = []
    root = bundle.resolve()
    for artifact in manifest.artifacts:
        path = (bundle / artifact.path).resolve()
        if not path.is_relative_to(root):
            problems.append(f"{artifact.name} {artifact.version}: path {artifact.path} leaves the bundle")
        elif not path.is_file():
            problems.append(f"{artifact.name} {artifact.version}: {artifact.path} is missing")
        elif (actual := sha256_file(path)) != artifact.sha256:
            problems.append(
                f"{artifact.name} {artifact.version}: {artifact.path} has sha256 {actual}, bundle.json says "
                f"{artifact.sha256}"
            )
    return problems


def compare(left: Manifest, right: Manifest, ignore_kinds: Iterable[str] = ("key",)) -> list[str]:
    """How two bundles of the same pins differ: missing artifacts, other versions, other content.

    An artifact is known by its kind, name and upstream location: a bundle may carry one name twice (kubeadm of the
    pinned and of the previous release, cri-tools in the repository of each minor), never from one place twice.
    """
    ignored = set(ignore_kinds)

    def index(manifest: Manifest) -> dict[tuple[str, str, str], Artifact]:
        return {(a.kind, a.name, a.upstream): a for a in manifest.artifacts if a.kind not in ignored}

    def describe(key: tuple[str, str, str]) -> str:
        kind, name, origin = key
        return f"{kind} {name} ({origin})"

    ours, theirs = index(left), index(right)
    differences = [f"only in the first: {describe(key)}" for key in sorted(ours.keys() - theirs.keys())]
    differences += [f"only in the second: {describe(key)}" for key in sorted(theirs.keys() - ours.keys())]
    for key in sorted(ours.keys() & theirs.keys()):
        a, b = ours[key], theirs[key]
        # An image is its manifest digest: the archive around it differs between the tools that write it.
        content = "digest" if a.kind == "image" else "sha256"
        for attribute in ("version", content):
            if getattr(a, attribute) != getattr(b, attribute):
                differences.append(
                    f"{describe(key)}: {attribute} {getattr(a, attribute)!r} != {getattr(b, attribute)!r}"
                )
    return differences


def summary(manifest: Manifest) -> dict[str, Any]:
    counts: dict[str, int] = {}
    size = 0
    for artifact in manifest.artifacts:
        counts[artifact.kind] = counts.get(artifact.kind, 0) + 1
        size += artifact.size
    return {"source": manifest.source, "artifacts": counts, "bytes": size, "versions": manifest.versions}
