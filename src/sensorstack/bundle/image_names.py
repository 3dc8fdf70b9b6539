"""Image names and where the bundle's registry keeps them.

One registry serves every upstream registry under a path prefix named after it (``registry.k8s.io/pause:3.10.1`` ->
``<mirror>/registry.k8s.io/pause:3.10.1``), so three upstream registries share one ``docker-registry`` and one port.
containerd reaches it through a ``hosts.toml`` per upstream registry whose mirror URL carries that prefix with
``override_path = true`` (:func:`containerd_mirrors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"


@dataclass(frozen=True, order=True)
class ImageName:
    """A fully qualified image name: registry host, repository path inside it, tag."""

    registry: str
    path: str
    tag: str

    @classmethod
    def parse(cls, reference: str) -> ImageName:
        """``registry.k8s.io/pause:3.10.1``; a name without a registry host is Docker Hub's, as docker spells it."""
        remainder, separator, tag = reference.rpartition(":")
        if not separator or not remainder or "/" in tag or "@" in reference:
            raise ValueError(f"not a tagged image reference: {reference!r}")
        first, slash, rest = remainder.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, remainder
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not path or path != path.lower():
            raise ValueError(f"not a valid repository in {reference!r}")
        return cls(registry, path, tag)

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"

    def mirrored(self, mirror: str) -> str:
        """Where the bundle's registry at ``mirror`` (host:port) keeps this image."""
        return f"{mirror}/{self.registry}/{self.path}:{self.tag}"

    @property
    def archive(self) -> str:
        """The image's archive inside a bundle (no ':' in it: skopeo's transports split on the first one)."""
        return f"images/{self.registry}/{self.path}_{self.tag}.oci.tar"


def containerd_mirrors(registry_host: str) -> list[dict[str, Any]]:
    """``containerd_registry_mirrors`` entries sending each upstream registry's pulls to the bundle's registry at
    ``registry_host`` (host:port): versions.yml's ``sensorstack_containerd_registry_mirrors``, as the roles get it."""
    from sensorstack.bundle.versions import load_versions

    overrides = {"sensorstack_mirror_registry": registry_host}
    return list(load_versions(overrides=overrides)["sensorstack_containerd_registry_mirrors"])
