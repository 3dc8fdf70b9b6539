"""The cluster's container images: built from the bundle's own binaries, saved in the bundle, pushed to its registry.

Images are written directly as OCI layouts (see :mod:`sensorstack.bundle.oci_layout` for why not ``docker build``)
from the layouts of :mod:`sensorstack.bundle.image_specs`, each cached per recipe (its binaries' sha256s, every other
file, its config, its base), copied into the bundle as one OCI archive per image
(``images/<registry>/<path>_<tag>.oci.tar``) and pushed with skopeo into the bundle's registry under the mirror
paths of :mod:`sensorstack.bundle.image_names`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensorstack.bundle.cache import cache_root, cached, log, place, recipe_digest
from sensorstack.bundle.debian_base import DebianBase, build_debian_base
from sensorstack.bundle.image_names import ImageName, containerd_mirrors
from sensorstack.bundle.image_specs import ImageSpec, cluster_images, static_base_entries
from sensorstack.bundle.manifest import Artifact, artifact_for, read_manifest
from sensorstack.bundle.oci_layout import (
    CONTAINERD_NAME,
    FIXED_TIME,
    REF_NAME,
    Entry,
    ImageConfig,
    Layer,
    Layout,
    write_layer,
)

__all__ = [
    "ImageBuilder",
    "ImageName",
    "bundle_images",
    "cluster_images",
    "containerd_mirrors",
    "push_images",
    "save_images",
]

RECIPE_LABEL = "org.sensorstack.recipe"

# Bump when the layout code changes what an unchanged recipe produces; it is part of every image's recipe.
_FORMAT_REVISION = 1


@dataclass(frozen=True)
class BuiltImage:
    """One cached image: an OCI archive holding exactly this image, and what identifies it."""

    name: ImageName
    folder: Path
    digest: str
    layers: tuple[int, ...]
    recipe: str
    seconds: float = 0.0

    @property
    def archive(self) -> Path:
        return self.folder / "image.oci.tar"

    @property
    def size(self) -> int:
        """Compressed bytes of all layers (what a pull transfers)."""
        return sum(self.layers)

    @classmethod
    def load(cls, folder: Path) -> BuiltImage:
        details = json.loads((folder / "image.json").read_text())
        record = json.loads((folder / "build.json").read_text())
        return cls(
            ImageName.parse(details["name"]),
            folder,
            details["digest"],
            tuple(details["layers"]),
            details["recipe"],
            record.get("seconds", 0.0),
        )


def image_entries(spec: ImageSpec, binaries: Mapping[str, Path]) -> tuple[list[Entry], ImageConfig]:
    """The image's own layer and config; raises when a required binary is missing from binaries."""
    missing = [file.binary for file in spec.files if not file.optional and file.binary not in binaries]
    if missing:
        raise ValueError(f"{spec.name}: no binary for {', '.join(missing)} (known: {', '.join(sorted(binaries))})")
    entries = [
        Entry(file.path, mode=file.mode, source=Path(binaries[file.binary]), capabilities=file.capabilities)
        for file in spec.files
        if file.binary in binaries
    ]
    config = spec.config
    if spec.fallback_config is not None and any(f.optional and f.binary not in binaries for f in spec.files):
        config = spec.fallback_config
    return [*entries, *spec.extra], config


def image_recipe(spec: ImageSpec, entries: list[Entry], config: ImageConfig, base: Any) -> dict[str, Any]:
    """Everything that decides the image's bytes: base, every entry (files by sha256), config."""
    return {
        "image": str(spec.name),
        "base": base,
        "entries": [entry.recipe() for entry in sorted(entries, key=lambda item: item.path)],
        "config": asdict(config),
        "format_revision": _FORMAT_REVISION,
    }


def _write_archive(layout: Path, archive: Path) -> None:
    """Tar an OCI layout deterministically (sorted, fixed times and owners): same image, same archive sha256."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = FIXED_TIME
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(layout)):
            tar.add(layout / name, arcname=name, filter=normalise)


def _build_image(
    work: Path,
    spec: ImageSpec,
    entries: list[Entry],
    config: ImageConfig,
    recipe_id: str,
    base_layers: list[tuple[Path, Layer]],
) -> None:
    layout = Layout.create(work / "oci")
    layers: list[Layer] = []
    for path, layer in base_layers:
        layout.add_file(path, layer.digest)
        layers.append(layer)
    own = work / "layer.tar.gz"
    layer = write_layer(entries, own, comment=f"sensorstack: {spec.name} files")
    layout.add_file(own, layer.digest)
    own.unlink()
    layers.append(layer)
    labelled = ImageConfig(**{**asdict(config), "labels": (*config.labels, (RECIPE_LABEL, recipe_id))})
    annotations = {REF_NAME: str(spec.name), CONTAINERD_NAME: str(spec.name)}
    descriptor = layout.add_image(layers, labelled, annotations)
    _write_archive(layout.root, work / "image.oci.tar")
    shutil.rmtree(layout.root)
    details = {
        "name": str(spec.name),
        "digest": descriptor["digest"],
        "layers": [item.size for item in layers],
        "recipe": recipe_id,
    }
    (work / "image.json").write_text(json.dumps(details, indent=2) + "\n")


@dataclass
class ImageBuilder:
    """Builds images from a binaries mapping ({binary name: path}), each once per recipe."""

    binaries: Mapping[str, Path]
    cache: Path = field(default_factory=cache_root)
    debian_base: DebianBase | None = None

    def _debian(self) -> DebianBase:
        if self.debian_base is None:
            self.debian_base = build_debian_base(cache=self.cache)
        return self.debian_base

    def _base_layers(self, spec: ImageSpec, work: Path) -> list[tuple[Path, Layer]]:
        if spec.base == "scratch":
            return []
        if spec.base == "debian":
            return [(self._debian().layer_path, self._debian().layer)]
        static = work / "static-base.tar.gz"
        entries = static_base_entries(self._debian().ca_certificates)
        return [(static, write_layer(entries, static, comment="sensorstack: static base"))]

    def _base_id(self, spec: ImageSpec) -> Any:
        if spec.base == "scratch":
            return "scratch"
        if spec.base == "debian":
            return {"debian": self._debian().layer.digest}
        return {"static": [entry.recipe() for entry in static_base_entries(self._debian().ca_certificates)]}

    def _check_links(self, spec: ImageSpec, entries: list[Entry]) -> None:
        """A directory in a layer hides a link of the same path below it (Debian's /bin -> usr/bin): refuse that."""
        if spec.base != "debian":
            return
        links = set(self._debian().directory_links)
        for entry in entries:
            parts = entry.path.strip("/").split("/")
            for depth in range(1, len(parts) + (1 if entry.is_dir else 0)):
                if "/".join(parts[:depth]) in links:
                    raise ValueError(
                        f"{spec.name}: {entry.path} would replace the base's link /{'/'.join(parts[:depth])} "
                        "with a directory; use the path it points to"
                    )

    def build(self, spec: ImageSpec) -> BuiltImage:
        entries, config = image_entries(spec, self.binaries)
        self._check_links(spec, entries)
        recipe = image_recipe(spec, entries, config, self._base_id(spec))
        recipe_id = recipe_digest(recipe)

        def build(work: Path) -> None:
            base_layers = self._base_layers(spec, work)
            _build_image(work, spec, entries, config, recipe_id, base_layers)
            (work / "static-base.tar.gz").unlink(missing_ok=True)

        return BuiltImage.load(cached("images", spec.slug, recipe, build, root=self.cache))

    def build_all(self, specs: Iterable[ImageSpec]) -> list[BuiltImage]:
        return [self.build(spec) for spec in specs]


def binaries_of(components: Iterable[Any]) -> dict[str, Path]:
    """One mapping of binary name -> path from built components (anything with a ``binaries`` mapping)."""
    binaries: dict[str, Path] = {}
    for component in components:
        for name, path in component.binaries.items():
            if name in binaries and binaries[name] != path:
                raise ValueError(f"two components build a binary named {name}: {binaries[name]} and {path}")
            binaries[name] = Path(path)
    return binaries


def binaries_in(*folders: Path) -> dict[str, Path]:
    """Every executable file directly inside folders, by name (e.g. a Kubernetes build's output folder)."""
    binaries: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file() and os.access(path, os.X_OK):
                binaries.setdefault(path.name, path)
    return binaries


def bundle_images(
    specs: Iterable[ImageSpec], binaries: Mapping[str, Path], bundle: Path, cache: Path | None = None
) -> list[Artifact]:
    """Build (or take from the cache) each image and place it in the bundle; return the bundle.json entries.

    ``specs`` are e.g. :func:`cluster_images` of versions and ``components.kubeadm_image_list()``'s answer,
    ``binaries`` every built binary they need by name (:func:`binaries_of` the built components).
    """
    builder = ImageBuilder(binaries, cache=cache or cache_root())
    built = []
    for spec in specs:
        image = builder.build(spec)
        log(f"image {image.name}: {image.size / 1e6:.0f} MB compressed, {image.digest}")
        built.append(image)
    return save_images(built, bundle)


# --- the bundle and its registry ----------------------------------------------------------------------------------


def save_images(images: Iterable[BuiltImage], bundle: Path) -> list[Artifact]:
    """Place each image's OCI archive in the bundle; return their bundle.json entries."""
    artifacts = []
    for image in images:
        target = bundle / image.name.archive
        place(image.archive, target)
        artifacts.append(
            artifact_for(
                bundle,
                target,
                kind="image",
                name=image.name.repository,
                version=image.name.tag,
                upstream=str(image.name),
                digest=image.digest,
            )
        )
    return artifacts


_MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def registry_digest(registry: str, repository: str, tag: str) -> str | None:
    """The manifest digest a plain-HTTP registry holds for repository:tag, None when it has none."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": _MANIFEST_ACCEPT}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def push_image(archive: Path, destination: ImageName, registry: str) -> str:
    """skopeo copy an OCI archive into a plain-HTTP registry under the mirror path; return the digest pushed."""
    with tempfile.TemporaryDirectory(prefix="sensorstack-push-") as scratch:
        digest_file = Path(scratch) / "digest"
        command = [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--digestfile",
            str(digest_file),
            f"oci-archive:{archive}",
            f"docker://{destination.mirrored(registry)}",
        ]
        answer = subprocess.run(command, capture_output=True, text=True, check=False)
        if answer.returncode != 0:
            raise RuntimeError(f"pushing {destination} to {registry} failed: {answer.stderr.strip()}")
        return digest_file.read_text().strip()


def push_images(bundle_dir: Path, registry: str = "127.0.0.1:5000") -> list[str]:
    """Copy every image of the bundle into the registry at host:port; return where each went.

    An image the registry already holds at the recorded digest is left alone, so a restart pushes nothing. A push
    that yields another digest than bundle.json records fails: containerd would then pull something else.
    """
    if shutil.which("skopeo") is None:
        raise RuntimeError("skopeo is not installed (apt-get install skopeo)")
    pushed = []
    for artifact in read_manifest(bundle_dir).artifacts:
        if artifact.kind != "image":
            continue
        name = ImageName.parse(f"{artifact.name}:{artifact.version}")
        mirror_repository = f"{name.registry}/{name.path}"
        if artifact.digest and registry_digest(registry, mirror_repository, name.tag) == artifact.digest:
            pushed.append(name.mirrored(registry))
            continue
        started = time.monotonic()
        digest = push_image(bundle_dir / artifact.path, name, registry)
        if artifact.digest and digest != artifact.digest:
            raise RuntimeError(f"{name}: the registry got manifest {digest}, bundle.json records {artifact.digest}")
        log(f"pushed {name} to {name.mirrored(registry)} in {time.monotonic() - started:.1f} s")
        pushed.append(name.mirrored(registry))
    return pushed
