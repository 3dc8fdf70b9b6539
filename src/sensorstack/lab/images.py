"""Images for lab hosts, built locally and tagged by a hash of their recipe.

No container registry is assumed: base images are made with debootstrap from the Debian archive, so the only
download location is the Debian mirror (``SENSORSTACK_DEBIAN_MIRROR``). Kubernetes node images add a few files to a
base image (``docker build``, seconds): the boot-time preparation in ``node.py`` and the units that run it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from sensorstack.bundle.cache import cache_root
from sensorstack.debian import debian_mirror, debootstrap

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

    # Containers from this image run with the plain systemd settings (containers.SYSTEMD_CONTAINER_ARGS).
    kubernetes_node: ClassVar[bool] = False

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


NODE_SCRIPT = "/usr/local/lib/sensorstack/node.py"
NODE_PREPARE_UNIT = "sensorstack-node-prepare.service"

_NODE_PREPARE_UNIT_TEXT = f"""\
[Unit]
Description=Prepare this lab container to run a kubelet (cgroup paths, host sysctl guard)
Documentation=file://{NODE_SCRIPT}
DefaultDependencies=no
ConditionVirtualization=container
Before=sysinit.target systemd-sysctl.service containerd.service kubelet.service docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/python3 {NODE_SCRIPT} prepare
# The node's network namespace is new at every start: apply the net.* settings of /etc/sysctl.d again (the rest of
# /proc/sys is the host's and stays read-only, so systemd-sysctl.service itself does not run).
ExecStartPost=-/usr/lib/systemd/systemd-sysctl --prefix=/net/

[Install]
WantedBy=sysinit.target
"""

# The container runtime and the kubelet never start on an unprepared node, whoever installs their units.
_NODE_RUNTIME_DROP_IN = f"""\
[Unit]
Requires={NODE_PREPARE_UNIT}
After={NODE_PREPARE_UNIT}
"""


def _node_files() -> dict[str, str]:
    """Files a Kubernetes node image adds to its base image: path in the image -> content."""
    files = {
        NODE_SCRIPT: (Path(__file__).parent / "node.py").read_text(),
        f"/etc/systemd/system/{NODE_PREPARE_UNIT}": _NODE_PREPARE_UNIT_TEXT,
    }
    for service in ("containerd", "kubelet", "docker"):
        files[f"/etc/systemd/system/{service}.service.d/10-sensorstack-node.conf"] = _NODE_RUNTIME_DROP_IN
    return files


@dataclass(frozen=True)
class NodeImageRecipe:
    """A base image plus what a Kubernetes node needs (a separate recipe: the base images stay as they are)."""

    name: str
    base: ImageRecipe
    # No kernel modules in a container (the host has none to offer either); binfmt_misc is the host's.
    masked_units: tuple[str, ...] = (
        "systemd-modules-load.service",
        "proc-sys-fs-binfmt_misc.automount",
        "systemd-binfmt.service",
    )

    # Containers from this image run with the node settings (containers.node_container_args).
    kubernetes_node: ClassVar[bool] = True

    def digest(self) -> str:
        files = {path: hashlib.sha256(text.encode()).hexdigest() for path, text in _node_files().items()}
        recipe = {"name": self.name, "base": self.base.digest(), "masked_units": self.masked_units, "files": files}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.name}-{self.digest()}"

    @property
    def alias(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.name}"


Recipe = ImageRecipe | NodeImageRecipe

_DEBIAN13 = ImageRecipe(name="debian13", suite="trixie")

# Kubernetes nodes are Debian 13 only: its containerd 1.7.24 runs Kubernetes 1.35, bookworm's 1.6 does not.
RECIPES: dict[str, Recipe] = {
    "debian12": ImageRecipe(name="debian12", suite="bookworm"),
    "debian13": _DEBIAN13,
    "debian13-node": NodeImageRecipe(name="debian13-node", base=_DEBIAN13),
}


def recipe_for(name: str) -> Recipe:
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


def _debootstrap_image(recipe: ImageRecipe, mirror: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"sensorstack-{recipe.name}-", dir="/var/tmp"))
    try:
        rootfs = workdir / "rootfs"
        debootstrap(recipe.suite, rootfs, recipe.packages, mirror, recipe.variant)
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
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def node_dockerfile(recipe: NodeImageRecipe) -> str:
    """The Dockerfile that adds the node files (copied from ``rootfs/`` in the build context) to the base image."""
    links = [f"ln -sf /dev/null /etc/systemd/system/{unit}" for unit in recipe.masked_units]
    links.append(
        f"mkdir -p /etc/systemd/system/sysinit.target.wants && ln -sf ../{NODE_PREPARE_UNIT} "
        f"/etc/systemd/system/sysinit.target.wants/{NODE_PREPARE_UNIT}"
    )
    return "\n".join(
        [
            f"FROM {recipe.base.tag}",
            "COPY rootfs/ /",
            "RUN " + " && ".join(links),
            # Started through node.py: on a cgroup v2 host it makes the cgroup tree writable before systemd starts.
            f'CMD ["/usr/bin/python3", "{NODE_SCRIPT}", "boot"]',
            "STOPSIGNAL SIGRTMIN+3",
            f"LABEL org.sensorstack.recipe={recipe.digest()}",
            "",
        ]
    )


def _docker_build_node_image(recipe: NodeImageRecipe) -> None:
    with tempfile.TemporaryDirectory(prefix=f"sensorstack-{recipe.name}-") as context:
        for path, text in _node_files().items():
            target = Path(context, "rootfs", path.lstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        Path(context, "Dockerfile").write_text(node_dockerfile(recipe))
        _run(
            ["docker", "build", "--quiet", "--tag", recipe.tag, context],
            stdout=subprocess.DEVNULL,
            env=os.environ | {"DOCKER_BUILDKIT": "0"},
        )


def build(recipe: Recipe, mirror: str | None = None, force: bool = False) -> tuple[str, bool]:
    """Build the image unless its recipe tag already exists. Returns (tag, built)."""
    mirror = debian_mirror(mirror)
    built = False
    locks = cache_root() / "lab-images"
    locks.mkdir(parents=True, exist_ok=True)
    # Two callers (threads of `lab images`, parallel test sessions) must not build the same image twice.
    with (locks / f".{recipe.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if isinstance(recipe, NodeImageRecipe):
            build(recipe.base, mirror)
        if force or not image_exists(recipe.tag):
            if isinstance(recipe, NodeImageRecipe):
                _docker_build_node_image(recipe)
            else:
                _debootstrap_image(recipe, mirror)
            built = True
        _run(["docker", "tag", recipe.tag, recipe.alias])
    return recipe.tag, built
