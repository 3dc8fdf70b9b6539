"""Base images for lab hosts, built with debootstrap and tagged by a hash of their recipe.

No container registry is assumed: every image is made locally from the Debian archive, so the only download
location is the Debian mirror (``SENSORSTACK_DEBIAN_MIRROR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_REPOSITORY = "sensorstack/lab"

# Units that have nothing to do in a container and only leave the system "degraded".
_MASKED_UNITS = (
    "systemd-remount-fs.service",
    "console-getty.service",
    "getty@tty1.service",
    "systemd-firstboot.service",
    "dev-hugepages.mount",
    "sys-fs-fuse-connections.mount",
)

# Bump when the post-debootstrap steps below change meaning; it is part of the recipe hash.
_SETUP_REVISION = 2


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that decides the content of a base image (the mirror does not: it only serves it)."""

    name: str
    suite: str
    packages: tuple[str, ...] = field(
        default=("python3", "python3-apt", "systemd", "systemd-sysv", "iproute2", "ca-certificates")
    )
    variant: str = "minbase"

    def digest(self) -> str:
        recipe = asdict(self) | {"setup_revision": _SETUP_REVISION, "masked_units": _MASKED_UNITS}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.name}-{self.digest()}"

    @property
    def alias(self) -> str:
        """A stable name (molecule scenarios use it) that always points at the current recipe's image."""
        return f"{IMAGE_REPOSITORY}:{self.name}"


RECIPES: dict[str, ImageRecipe] = {
    "debian12": ImageRecipe(name="debian12", suite="bookworm"),
    "debian13": ImageRecipe(name="debian13", suite="trixie"),
}


def recipe_for(name: str) -> ImageRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise ValueError(f"unknown lab image {name!r} (lab_image); known images: {known}") from None


def image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return result.returncode == 0


def _run(argv: list[str], **kwargs: object) -> None:
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _prepare_rootfs(rootfs: Path, recipe: ImageRecipe, mirror: str) -> None:
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    (rootfs / "etc/machine-id").write_text("")
    for unit in _MASKED_UNITS:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Keep the package lists, as a real host has them (an empty cache with a fresh mtime makes apt's
    # cache_valid_time skip the update); drop only the downloaded packages.
    for entry in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        entry.unlink()


def build(recipe: ImageRecipe, mirror: str | None = None, force: bool = False) -> tuple[str, bool]:
    """Build the image unless its recipe tag already exists. Returns (tag, built)."""
    mirror = mirror or os.environ.get("SENSORSTACK_DEBIAN_MIRROR", DEFAULT_MIRROR)
    built = False
    if force or not image_exists(recipe.tag):
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
        workdir = Path(tempfile.mkdtemp(prefix=f"sensorstack-{recipe.name}-", dir="/var/tmp"))
        try:
            rootfs = workdir / "rootfs"
            _run(
                [
                    "debootstrap",
                    f"--variant={recipe.variant}",
                    f"--include={','.join(recipe.packages)}",
                    recipe.suite,
                    str(rootfs),
                    mirror,
                ],
                stdout=subprocess.DEVNULL,
            )
            _prepare_rootfs(rootfs, recipe, mirror)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            _run(
                [
                    "docker",
                    "import",
                    "-c",
                    'CMD ["/lib/systemd/systemd"]',
                    "-c",
                    "ENV container=docker",
                    "-c",
                    f"LABEL org.sensorstack.recipe={recipe.digest()}",
                    "-",
                    recipe.tag,
                ],
                stdin=tar.stdout,
                stdout=subprocess.DEVNULL,
            )
            if tar.wait() != 0:
                raise RuntimeError(f"tar of {rootfs} failed")
            built = True
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    _run(["docker", "tag", recipe.tag, recipe.alias])
    return recipe.tag, built
