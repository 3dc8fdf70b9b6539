"""Container images written directly as OCI image layouts: deterministic layers, config and manifest.

Why not ``docker build``: Docker 20.10's classic builder drops extended attributes on ``COPY`` (measured here), so
file capabilities that upstream images set with ``setcap`` (CoreDNS binds port 53 as a non-root user with
``cap_net_bind_service``) cannot reach a ``FROM scratch`` image. Writing the tar layers ourselves keeps them, needs no
daemon, and gives the same digest for the same inputs (given the same zlib: gzip output is part of the digest).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sensorstack.bundle.cache import place, sha256_file

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# skopeo's ``oci:DIR:REF`` selects an image of a multi-image layout by this annotation.
REF_NAME = "org.opencontainers.image.ref.name"
# ``ctr images import`` names an image by this one.
CONTAINERD_NAME = "io.containerd.image.name"

# Every file and the image config carry this time, so equal inputs give equal digests.
FIXED_TIME = 0
FIXED_CREATED = "1970-01-01T00:00:00Z"

# Linux capability numbers (include/uapi/linux/capability.h) that images set as file capabilities.
CAPABILITIES = {"cap_net_bind_service": 10, "cap_net_admin": 12, "cap_net_raw": 13, "cap_sys_admin": 21}
_VFS_CAP_REVISION_2 = 0x02000000
_VFS_CAP_FLAGS_EFFECTIVE = 0x000001
_XATTR_CAPABILITY = "security.capability"
_PAX_XATTR = "SCHILY.xattr."


def file_capabilities(names: Iterable[str]) -> bytes:
    """The ``security.capability`` value that ``setcap NAMES=+ep`` writes (struct vfs_cap_data, revision 2)."""
    permitted = [0, 0]
    for name in names:
        number = CAPABILITIES[name]
        permitted[number // 32] |= 1 << (number % 32)
    return struct.pack("<IIIII", _VFS_CAP_REVISION_2 | _VFS_CAP_FLAGS_EFFECTIVE, permitted[0], 0, permitted[1], 0)


@dataclass(frozen=True)
class Entry:
    """One path of a layer. Exactly one of source (a file on disk), data or link_target gives a file's content;
    none of them makes a directory."""

    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    source: Path | None = None
    data: bytes | None = None
    link_target: str | None = None
    capabilities: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.source is None and self.data is None and self.link_target is None

    def recipe(self) -> dict[str, Any]:
        """What decides this entry's bytes in the layer (a file is named by its content's sha256)."""
        content: str | None = None
        if self.source is not None:
            content = sha256_file(self.source)
        elif self.data is not None:
            content = hashlib.sha256(self.data).hexdigest()
        return {
            "path": self.path,
            "mode": oct(self.mode),
            "owner": f"{self.uid}:{self.gid}",
            "content": content,
            "link": self.link_target,
            "capabilities": list(self.capabilities),
        }


class _HashingWriter(io.RawIOBase):
    """Passes bytes on to target while counting and hashing them."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


@dataclass(frozen=True)
class Layer:
    """A gzipped tar layer: its blob digest and size, and the digest of the uncompressed tar (the diff id)."""

    digest: str
    size: int
    diff_id: str
    comment: str = ""

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": MEDIA_LAYER, "digest": self.digest, "size": self.size}


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for index in range(1, len(parts) + 1):
        yield "/".join(parts[:index])


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.mtime = FIXED_TIME
    if entry.link_target is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
    elif entry.is_dir:
        info.type = tarfile.DIRTYPE
    if entry.capabilities:
        value = file_capabilities(entry.capabilities)
        # tarfile encodes PAX values as UTF-8 text; surrogateescape carries the raw bytes through.
        info.pax_headers = {_PAX_XATTR + _XATTR_CAPABILITY: value.decode("utf-8", "surrogateescape")}
    return info


def _normalise(entries: Iterable[Entry]) -> list[Entry]:
    """Sort by path, add missing parent directories (0755 root), refuse duplicates."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        path = entry.path.strip("/")
        if not path or path in by_path:
            raise ValueError(f"layer path {entry.path!r} is empty or given twice")
        by_path[path] = Entry(**{**entry.__dict__, "path": path})
    for path in list(by_path):
        for parent in _parents(path):
            by_path.setdefault(parent, Entry(parent))
    return [by_path[path] for path in sorted(by_path)]


class _LayerWriter:
    """Writes a tar stream into a gzip file, hashing both the tar (diff id) and the gzip (blob digest)."""

    def __init__(self, destination: Path) -> None:
        self._stack = contextlib.ExitStack()
        self._compressed = _HashingWriter(self._stack.enter_context(destination.open("wb")))
        # mtime=0 and no file name keep the gzip header free of build-time details.
        zipped = gzip.GzipFile(fileobj=self._compressed, mode="wb", mtime=0, filename="", compresslevel=6)  # type: ignore[arg-type]
        self._stack.enter_context(zipped)
        self._tar_stream = _HashingWriter(zipped)  # type: ignore[arg-type]
        tar = tarfile.open(fileobj=self._tar_stream, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115 (the stack closes it)
        self.tar: tarfile.TarFile = self._stack.enter_context(tar)

    def close(self, comment: str) -> Layer:
        self._stack.close()
        return Layer(
            digest=f"sha256:{self._compressed.digest.hexdigest()}",
            size=self._compressed.size,
            diff_id=f"sha256:{self._tar_stream.digest.hexdigest()}",
            comment=comment,
        )


def write_layer(entries: Iterable[Entry], destination: Path, comment: str = "") -> Layer:
    """Write entries as a deterministic gzipped tar layer to destination."""
    writer = _LayerWriter(destination)
    for entry in _normalise(entries):
        info = _tarinfo(entry)
        if entry.source is not None:
            info.size = entry.source.stat().st_size
            with entry.source.open("rb") as content:
                writer.tar.addfile(info, content)
        elif entry.data is not None:
            info.size = len(entry.data)
            writer.tar.addfile(info, io.BytesIO(entry.data))
        else:
            writer.tar.addfile(info)
    return writer.close(comment)


# Contents the runtime mounts over; a root file system keeps the directories only.
_RUNTIME_DIRS = ("dev", "proc", "sys", "run")


def write_rootfs_layer(rootfs: Path, destination: Path, comment: str = "") -> Layer:
    """Write a whole root file system (e.g. from debootstrap) as one layer, with times and owners' names fixed.

    Hard links stay hard links and file capabilities stay on their files; device nodes are left out.
    """
    writer = _LayerWriter(destination)

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        top, _, rest = info.name.partition("/")
        if top in _RUNTIME_DIRS and rest:
            return None
        if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            return None
        info.mtime = FIXED_TIME
        info.uname = info.gname = ""
        if info.isfile():
            try:
                value = os.getxattr(rootfs / info.name, _XATTR_CAPABILITY, follow_symlinks=False)
            except OSError:
                value = None
            if value:
                info.pax_headers = {_PAX_XATTR + _XATTR_CAPABILITY: value.decode("utf-8", "surrogateescape")}
        return info

    for name in sorted(os.listdir(rootfs)):
        writer.tar.add(rootfs / name, arcname=name, recursive=True, filter=normalise)
    return writer.close(comment)


@dataclass(frozen=True)
class ImageConfig:
    """The runtime settings of an image (the ``config`` object of the OCI image config)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"Env": list(self.env)}
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            config["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Layout:
    """An OCI image layout directory: ``oci-layout``, ``index.json`` and content-addressed ``blobs/sha256/``."""

    root: Path
    _manifests: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path) -> Layout:
        (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
        layout = cls(root)
        index = root / "index.json"
        if index.exists():
            layout._manifests = json.loads(index.read_text()).get("manifests", [])
        else:
            layout.write_index()
        return layout

    def blob(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        path = self.blob(digest)
        if not path.exists():
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
        return digest, len(data)

    def add_file(self, source: Path, digest: str) -> None:
        """Place a blob whose digest is already known (hard link when possible: layers are large)."""
        path = self.blob(digest)
        if not path.exists():
            place(source, path)

    def add_image(
        self, layers: list[Layer], config: ImageConfig, annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Write config and manifest for layers (already in blobs/) and list the manifest in the index."""
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "created": FIXED_CREATED,
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [{"created": FIXED_CREATED, "created_by": layer.comment} for layer in layers],
        }
        config_digest, config_size = self.add_bytes(_canonical(image_config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [layer.descriptor() for layer in layers],
        }
        manifest_digest, manifest_size = self.add_bytes(_canonical(manifest))
        descriptor: dict[str, Any] = {"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": manifest_size}
        if annotations:
            descriptor["annotations"] = dict(sorted(annotations.items()))
        self.put_manifest(descriptor)
        return descriptor

    def put_manifest(self, descriptor: dict[str, Any]) -> None:
        """List a manifest in the index; one with the same ref name is replaced."""
        ref = descriptor.get("annotations", {}).get(REF_NAME)
        self._manifests = [
            existing
            for existing in self._manifests
            if existing["digest"] != descriptor["digest"]
            and (ref is None or existing.get("annotations", {}).get(REF_NAME) != ref)
        ]
        self._manifests.append(descriptor)
        self._manifests.sort(key=lambda item: item.get("annotations", {}).get(REF_NAME, item["digest"]))
        self.write_index()

    def write_index(self) -> None:
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": self._manifests}
        temporary = self.root / "index.json.tmp"
        temporary.write_text(json.dumps(index, indent=2) + "\n")
        os.replace(temporary, self.root / "index.json")

    def read_json(self, digest: str) -> dict[str, Any]:
        return json.loads(self.blob(digest).read_bytes())

    def referenced_blobs(self, manifest_digest: str) -> list[tuple[str, int]]:
        """The manifest, its config and its layers as (digest, size)."""
        manifest = self.read_json(manifest_digest)
        blobs = [(manifest_digest, self.blob(manifest_digest).stat().st_size)]
        blobs.append((manifest["config"]["digest"], manifest["config"]["size"]))
        blobs.extend((layer["digest"], layer["size"]) for layer in manifest["layers"])
        return blobs

    def verify(self) -> list[str]:
        """Re-hash every blob the index reaches; return the problems found (empty: the layout is intact)."""
        problems = []
        for descriptor in self._manifests:
            for digest, size in self.referenced_blobs(descriptor["digest"]):
                path = self.blob(digest)
                if not path.is_file():
                    problems.append(f"{digest}: missing")
                elif path.stat().st_size != size or f"sha256:{sha256_file(path)}" != digest:
                    problems.append(f"{digest}: content does not match its digest")
        return problems
