"""Lab stand-ins for the stack's images: eclipse-mosquitto, influxdb (1.x), telegraf and grafana/grafana.

Users pull the official images at the tags pinned in versions.yml; the lab cannot reach Docker Hub. These images
carry the same tags and keep the official images' contract (paths, users and ids, entrypoints, commands, ports,
the environment variables the stack's manifests use), so one set of manifests runs both. Their content is what this
machine can build: Debian's mosquitto and influxdb packages, the project's Telegraf build, and, for Grafana (not
packaged, and its license keeps us from building it), the project's Grafana API double. Each image says so in its
``org.sensorstack.standin`` label and in bundle.json (``standin``). docs/stack-images.md lists the contract and the
differences.

Layers: the cached Debian base of the cluster images (shared blob), one layer of Debian packages and accounts
(:mod:`sensorstack.bundle.debian_packages`), one layer of the image's own files.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorstack import project_root
from sensorstack.bundle.cache import cache_root, log
from sensorstack.bundle.debian_base import build_debian_base
from sensorstack.bundle.debian_packages import (
    PackageLayer,
    PackageLayerRecipe,
    SystemAccount,
    build_package_layer,
)
from sensorstack.bundle.image_names import ImageName
from sensorstack.bundle.image_specs import DEFAULT_PATH, IMAGE_FILES, ImageFile, ImageSpec
from sensorstack.bundle.images import BuiltImage, ImageBuilder, save_images
from sensorstack.bundle.manifest import Artifact
from sensorstack.bundle.oci_layout import Entry, ImageConfig, Layer

STACK_FILES = IMAGE_FILES / "stack"
GRAFANA_DOUBLE = Path("tests/grafana_double")
BUILD_TELEGRAF = Path("scripts/build-telegraf")
STANDIN_LABEL = "org.sensorstack.standin"
DEBIAN_SUITE = "trixie"

MOSQUITTO = SystemAccount("mosquitto", 1883, 1883, "mosquitto", home="/var/empty")
INFLUXDB = SystemAccount("influxdb", 1500, 1500, "influxdb", home="/var/lib/influxdb", shell="/bin/false")
# The telegraf deb's `useradd -r` on buildpack-deps:bookworm-curl: the first system id, 999.
TELEGRAF = SystemAccount("telegraf", 999, 999, "telegraf", home="/etc/telegraf", shell="/bin/false")
# grafana/grafana: USER 472, primary group root (GF_GID=0).
GRAFANA = SystemAccount("grafana", 472, 0, "root", home="/usr/share/grafana")

GRAFANA_PATHS = {
    "GF_PATHS_CONFIG": "/etc/grafana/grafana.ini",
    "GF_PATHS_DATA": "/var/lib/grafana",
    "GF_PATHS_HOME": "/usr/share/grafana",
    "GF_PATHS_LOGS": "/var/log/grafana",
    "GF_PATHS_PLUGINS": "/var/lib/grafana/plugins",
    "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
}
GRAFANA_PROVISIONING_DIRS = ("datasources", "dashboards", "notifiers", "plugins", "access-control", "alerting")


def _file(path: str, source: Path, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, mode=mode, uid=uid, gid=gid, source=source)


def _directory(path: str, account: SystemAccount, mode: int = 0o755) -> Entry:
    return Entry(path, mode=mode, uid=account.uid, gid=account.gid)


def _labels(standin: str, title: str, description: str) -> tuple[tuple[str, str], ...]:
    labels = {
        STANDIN_LABEL: standin,
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": description,
    }
    return tuple(sorted(labels.items()))


# --- what each stand-in is --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandIn:
    """One official image and how the lab stands in for it."""

    component: str
    # The versions.yml variable holding the official image reference (its tag is the stand-in's tag).
    variable: str
    packages: PackageLayerRecipe
    # (name, contents description) -> the image; contents say what the image really carries.
    spec: Callable[[ImageName, str], ImageSpec]
    # What the contents are when the package versions are not known yet (a spec before any build).
    summary: str = ""


def mosquitto_spec(name: ImageName, contents: str) -> ImageSpec:
    """eclipse-mosquitto: root entrypoint chowns /mosquitto, mosquitto drops to 1883; config in /mosquitto/config."""
    folder = STACK_FILES / "mosquitto"
    return ImageSpec(
        name=name,
        base="debian",
        files=(),
        extra=(
            _file("/docker-entrypoint.sh", folder / "docker-entrypoint.sh", 0o755),
            _file("/mosquitto-no-auth.conf", folder / "mosquitto-no-auth.conf"),
            _directory("/mosquitto", MOSQUITTO),
            _directory("/mosquitto/config", MOSQUITTO),
            _file("/mosquitto/config/mosquitto.conf", folder / "mosquitto.conf", uid=MOSQUITTO.uid, gid=MOSQUITTO.gid),
            _directory("/mosquitto/data", MOSQUITTO),
            _directory("/mosquitto/log", MOSQUITTO),
            # Where the official image has the dynamic security plugin; Debian keeps it in the multiarch folder.
            Entry(
                "/usr/lib/mosquitto_dynamic_security.so",
                link_target="x86_64-linux-gnu/mosquitto_dynamic_security.so",
            ),
        ),
        config=ImageConfig(
            entrypoint=("/docker-entrypoint.sh",),
            cmd=("/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"),
            env=(f"PATH={DEFAULT_PATH}",),
            exposed_ports=("1883/tcp",),
            labels=_labels(contents, "eclipse-mosquitto (lab stand-in)", f"Lab stand-in for {name}: {contents}"),
        ),
    )


def influxdb_spec(name: ImageName, contents: str) -> ImageSpec:
    """influxdb:1.x: USER influxdb (1500), /entrypoint.sh + /init-influxdb.sh, CMD influxd, port 8086."""
    folder = STACK_FILES / "influxdb"
    return ImageSpec(
        name=name,
        base="debian",
        files=(),
        extra=(
            _file("/entrypoint.sh", folder / "entrypoint.sh", 0o755),
            _file("/init-influxdb.sh", folder / "init-influxdb.sh", 0o755),
            _file("/etc/influxdb/influxdb.conf", folder / "influxdb.conf"),
            _directory("/var/lib/influxdb", INFLUXDB),
        ),
        config=ImageConfig(
            entrypoint=("/entrypoint.sh",),
            cmd=("influxd",),
            env=(f"PATH={DEFAULT_PATH}",),
            user="influxdb",
            exposed_ports=("8086/tcp",),
            labels=_labels(contents, "influxdb (lab stand-in)", f"Lab stand-in for {name}: {contents}"),
        ),
    )


def telegraf_spec(name: ImageName, contents: str) -> ImageSpec:
    """telegraf: /usr/bin/telegraf, root entrypoint drops to telegraf (999) with setpriv, CMD telegraf."""
    folder = STACK_FILES / "telegraf"
    return ImageSpec(
        name=name,
        base="debian",
        files=(ImageFile("/usr/bin/telegraf", "telegraf"),),
        extra=(
            _file("/entrypoint.sh", folder / "entrypoint.sh", 0o755),
            Entry("/etc/telegraf"),
            _file("/etc/telegraf/telegraf.conf", folder / "telegraf.conf"),
            Entry("/etc/telegraf/telegraf.d"),
            _directory("/var/log/telegraf", TELEGRAF),
        ),
        config=ImageConfig(
            entrypoint=("/entrypoint.sh",),
            cmd=("telegraf",),
            env=(f"PATH={DEFAULT_PATH}",),
            exposed_ports=("8092/udp", "8094/tcp", "8125/udp"),
            labels=_labels(contents, "telegraf (lab stand-in)", f"Lab stand-in for {name}: {contents}"),
        ),
    )


def grafana_double_entries(root: Path | None = None) -> list[Entry]:
    """The double's package, installed beside the launcher in /usr/lib/sensorstack."""
    source = (root or project_root()) / GRAFANA_DOUBLE
    return [_file(f"/usr/lib/sensorstack/grafana_double/{path.name}", path) for path in sorted(source.glob("*.py"))]


def grafana_spec(name: ImageName, contents: str) -> ImageSpec:
    """grafana/grafana: USER 472 (group root), /run.sh, WORKDIR /usr/share/grafana, GF_PATHS_*, port 3000."""
    folder = STACK_FILES / "grafana"
    writable = [
        Entry(path, mode=0o777, uid=GRAFANA.uid, gid=GRAFANA.gid)
        for path in (
            GRAFANA_PATHS["GF_PATHS_DATA"],
            GRAFANA_PATHS["GF_PATHS_PLUGINS"],
            GRAFANA_PATHS["GF_PATHS_LOGS"],
            GRAFANA_PATHS["GF_PATHS_PROVISIONING"],
            *(f"{GRAFANA_PATHS['GF_PATHS_PROVISIONING']}/{sub}" for sub in GRAFANA_PROVISIONING_DIRS),
        )
    ]
    return ImageSpec(
        name=name,
        base="debian",
        files=(),
        extra=(
            _file("/run.sh", folder / "run.sh", 0o755),
            Entry("/etc/grafana"),
            _file("/etc/grafana/grafana.ini", folder / "grafana.ini"),
            Entry("/usr/share/grafana"),
            Entry("/usr/share/grafana/bin"),
            _file("/usr/share/grafana/bin/grafana", folder / "grafana", 0o755),
            _file("/usr/lib/sensorstack/grafana_standin.py", folder / "grafana_standin.py"),
            *grafana_double_entries(),
            *writable,
        ),
        config=ImageConfig(
            entrypoint=("/run.sh",),
            env=(
                f"PATH=/usr/share/grafana/bin:{DEFAULT_PATH}",
                *(f"{key}={value}" for key, value in GRAFANA_PATHS.items()),
            ),
            user=str(GRAFANA.uid),
            working_dir=GRAFANA_PATHS["GF_PATHS_HOME"],
            exposed_ports=("3000/tcp",),
            labels=_labels(
                contents,
                "grafana (lab stand-in: the sensorstack Grafana API double, not Grafana)",
                f"Lab stand-in for {name}: {contents}",
            ),
        ),
    )


STANDINS = (
    StandIn(
        "mosquitto",
        "sensorstack_mosquitto_image",
        PackageLayerRecipe("mosquitto", ("mosquitto", "mosquitto-clients"), (MOSQUITTO,)),
        mosquitto_spec,
        summary=f"debian {DEBIAN_SUITE} mosquitto",
    ),
    StandIn(
        "influxdb",
        "sensorstack_influxdb_image",
        PackageLayerRecipe("influxdb", ("influxdb", "influxdb-client"), (INFLUXDB,)),
        influxdb_spec,
        summary=f"debian {DEBIAN_SUITE} influxdb",
    ),
    StandIn(
        "telegraf",
        "sensorstack_telegraf_image",
        PackageLayerRecipe("telegraf", (), (TELEGRAF,)),
        telegraf_spec,
        summary=f"sensorstack telegraf build (scripts/build-telegraf) on debian {DEBIAN_SUITE}",
    ),
    StandIn(
        "grafana",
        "sensorstack_grafana_image",
        PackageLayerRecipe("grafana", ("python3", "python3-yaml"), (GRAFANA,)),
        grafana_spec,
        summary=f"sensorstack Grafana API double (tests/grafana_double), not Grafana; python3 on debian {DEBIAN_SUITE}",
    ),
)


def image_name(versions: Mapping[str, Any], standin: StandIn) -> ImageName:
    reference = versions.get(standin.variable)
    if not reference:
        raise KeyError(f"versions.yml has no {standin.variable} (the official image reference, e.g. with its tag)")
    return ImageName.parse(str(reference))


def describe(standin: StandIn, versions: Mapping[str, str], telegraf_version: str = "") -> str:
    """What a stand-in really carries, e.g. ``debian trixie influxdb 1.6.7~rc0-2+b12``."""
    if standin.component == "telegraf":
        return f"telegraf {telegraf_version or '?'} built by scripts/build-telegraf, on debian {DEBIAN_SUITE}"
    if standin.component == "grafana":
        python = versions.get("python3", "?")
        return (
            "sensorstack Grafana API double (tests/grafana_double), NOT Grafana; "
            f"python3 {python} on debian {DEBIAN_SUITE}"
        )
    package = standin.packages.packages[0]
    return f"debian {DEBIAN_SUITE} {package} {versions.get(package, '?')}"


def stack_images(versions: Mapping[str, Any], contents: Mapping[str, str] | None = None) -> list[ImageSpec]:
    """The four stand-ins under the official names of versions.yml; ``contents`` ({component: description}) labels
    them with what they really carry (bundle_stack_images fills it in once the packages are installed)."""
    return [
        standin.spec(image_name(versions, standin), (contents or {}).get(standin.component, standin.summary))
        for standin in STANDINS
    ]


# --- building ---------------------------------------------------------------------------------------------------


@dataclass
class StackImageBuilder(ImageBuilder):
    """ImageBuilder with a package layer between the Debian base and an image's own files."""

    package_layers: Mapping[str, PackageLayer] = field(default_factory=dict)

    def _base_layers(self, spec: ImageSpec, work: Path) -> list[tuple[Path, Layer]]:
        layers = super()._base_layers(spec, work)
        packages = self.package_layers.get(str(spec.name))
        return [*layers, (packages.layer_path, packages.layer)] if packages else layers

    def _base_id(self, spec: ImageSpec) -> Any:
        packages = self.package_layers.get(str(spec.name))
        base = super()._base_id(spec)
        return {"base": base, "packages": packages.layer.digest} if packages else base


_TELEGRAF_VERSION = re.compile(r"Telegraf (\d+\.\d+\.\d+)")


def telegraf_version(binary: Path) -> str:
    answer = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    match = _TELEGRAF_VERSION.search(answer)
    if match is None:
        raise RuntimeError(f"{binary} --version said {answer.strip()!r}: not a Telegraf")
    return match.group(1)


def built_telegraf() -> Path:
    """scripts/build-telegraf's binary (built once, then cached): the path it prints."""
    script = project_root() / BUILD_TELEGRAF
    answer = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    return Path(answer.stdout.strip().splitlines()[-1])


def check_telegraf(name: ImageName, version: str) -> None:
    """The stand-in's tag promises a Telegraf release: refuse a build of another one."""
    if name.tag.split("-")[0] != version:
        raise ValueError(
            f"{name} promises Telegraf {name.tag}, scripts/build-telegraf built {version}: pin the same release in both"
        )


def build_stack_images(
    versions: Mapping[str, Any], cache: Path | None = None, telegraf: Path | None = None
) -> list[tuple[StandIn, BuiltImage, str]]:
    """Build (or take from the cache) every stand-in; (stand-in, image, what it carries) each."""
    cache = cache or cache_root()
    base = build_debian_base(cache=cache)
    layers = {standin.component: build_package_layer(standin.packages, base, cache) for standin in STANDINS}
    telegraf = telegraf or built_telegraf()
    version = telegraf_version(telegraf)
    contents = {
        standin.component: describe(standin, layers[standin.component].versions, version) for standin in STANDINS
    }
    specs = stack_images(versions, contents)
    by_name = {str(spec.name): layers[standin.component] for standin, spec in zip(STANDINS, specs, strict=True)}
    for standin, spec in zip(STANDINS, specs, strict=True):
        if standin.component == "telegraf":
            check_telegraf(spec.name, version)
    builder = StackImageBuilder({"telegraf": telegraf}, cache=cache, debian_base=base, package_layers=by_name)
    built = []
    for standin, spec in zip(STANDINS, specs, strict=True):
        image = builder.build(spec)
        log(f"stand-in {image.name}: {image.size / 1e6:.0f} MB compressed, {contents[standin.component]}")
        built.append((standin, image, contents[standin.component]))
    return built


def bundle_stack_images(
    versions: Mapping[str, Any], bundle: Path, cache: Path | None = None, telegraf: Path | None = None
) -> list[Artifact]:
    """Build the stand-ins and place them in the bundle; their bundle.json entries carry ``standin``."""
    built = build_stack_images(versions, cache, telegraf)
    artifacts = save_images([image for _, image, _ in built], bundle)
    return [
        dataclasses.replace(artifact, standin=contents)
        for artifact, (_, _, contents) in zip(artifacts, built, strict=True)
    ]
