"""``sensorstack bundle build``: gather every pinned artifact of a cluster into one folder with its bundle.json.

Layout (the same for both sources, so a bundle fetched from upstream and one built from source agree):
- ``apt/core:/stable:/v<minor>/deb/``: a signed flat repository laid out like pkgs.k8s.io;
- ``images/<registry>/<path>_<tag>.oci.tar``: OCI archives under the images' upstream names;
- ``files/calico/v<version>/calico-vxlan.yaml``: Calico's manifest of the pinned release;
- ``bundle.json``: every artifact with its upstream location, version and sha256.

The previous Kubernetes release (``sensorstack_kubernetes_upgrade_from_version``), which a lab cluster starts at to
rehearse an upgrade, comes along the same way: its repository ``apt/core:/stable:/v<its minor>/deb/`` and its
control-plane images, built or fetched by the same functions as the pinned release's.

Every step is cached outside the checkout (``sensorstack.bundle.cache``), so a rebuild with the same pins costs
seconds; the bundle folder itself is assembled from hard links into that cache.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from sensorstack.bundle import aptrepo, components, debs, gobuild, image_specs, images, stack_images, upstream
from sensorstack.bundle.cache import cache_root, log, place, sha256_file
from sensorstack.bundle.image_names import ImageName
from sensorstack.bundle.manifest import Artifact, Manifest, artifact_for, verify
from sensorstack.bundle.versions import (
    UPGRADE_FROM_VARIABLES,
    kubernetes_minor,
    load_versions,
    previous_release,
    release_pins,
)

CALICO_MANIFEST = "calico-vxlan.yaml"
KUBERNETES_PACKAGES = ("kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni")


def calico_manifest_path(version: str) -> Path:
    return Path("files/calico") / f"v{version}" / CALICO_MANIFEST


def calico_module(version: str) -> Path:
    """The Calico monorepo's module folder at the release's commit: it carries the release's manifests."""
    source = components.calico_source(version)
    return gobuild.download_module(
        components.CALICO_MODULE, source.commit_version, {"GONOSUMDB": components.CALICO_GONOSUMDB}
    ).directory


def extract_binary(deb: Path, member: str, folder: Path) -> Path:
    """One file of a package (e.g. usr/bin/kubeadm), unpacked with dpkg-deb into folder."""
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(folder)], check=True, capture_output=True)
    path = folder / member
    if not path.is_file():
        raise FileNotFoundError(f"{deb.name} has no {member}")
    return path


def upstream_locations(versions: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream locations versions.yml gives for versions' Kubernetes release, without overrides such as a
    mirror: what bundle.json records as each artifact's origin."""
    return load_versions(overrides=release_pins(versions))


def _apt_artifacts(
    bundle: Path, repository: Path, package_files: list[Path], upstream_versions: Mapping[str, Any]
) -> list[Artifact]:
    base = upstream_versions["sensorstack_kubernetes_apt_url"]
    artifacts = [
        artifact_for(
            bundle,
            repository / aptrepo.ARCHITECTURE / deb.name,
            kind="deb",
            name=deb.name.split("_", 1)[0],
            version=deb.name.split("_")[1],
            upstream=f"{base}{aptrepo.ARCHITECTURE}/{deb.name}",
        )
        for deb in package_files
    ]
    artifacts.append(
        artifact_for(
            bundle,
            repository / "Release.key",
            kind="key",
            name="apt-signing-key",
            version=kubernetes_minor(upstream_versions["sensorstack_kubernetes_version"]),
            upstream=upstream_versions["sensorstack_kubernetes_apt_key_url"],
        )
    )
    return artifacts


def _apt_repository(
    bundle: Path, package_files: list[Path], versions: Mapping[str, Any], key: aptrepo.SigningKey
) -> list[Artifact]:
    """The release's signed repository in the bundle (``apt/core:/stable:/v<minor>/deb/``) and its bundle.json
    entries."""
    minor = kubernetes_minor(versions["sensorstack_kubernetes_version"])
    repository = aptrepo.write_apt_repository(bundle / "apt", package_files, minor, key.home)
    return _apt_artifacts(bundle, repository, package_files, upstream_locations(versions))


def _calico_artifact(
    bundle: Path, source: Path, versions: Mapping[str, Any], upstream_versions: Mapping[str, Any]
) -> Artifact:
    version = versions["sensorstack_calico_version"]
    expected = upstream.parse_checksum(
        versions["sensorstack_calico_manifest_checksum"], "sensorstack_calico_manifest_checksum"
    )
    target = place(source, bundle / calico_manifest_path(version))
    artifact = artifact_for(
        bundle,
        target,
        kind="file",
        name=CALICO_MANIFEST,
        version=version,
        upstream=upstream_versions["sensorstack_calico_manifest_url"],
    )
    if artifact.sha256 != expected:
        raise ValueError(
            f"Calico's {CALICO_MANIFEST} has sha256 {artifact.sha256}, sensorstack_calico_manifest_checksum pins "
            f"{expected}"
        )
    return artifact


def _source_debs(
    binaries: Mapping[str, Path], companions: Mapping[str, Path], versions: Mapping[str, Any], root: Path
) -> list[Path]:
    """The release's five packages: its kubeadm, kubelet and kubectl with companions' crictl and CNI plugins."""
    inputs = {name: binaries[name] for name in ("kubeadm", "kubelet", "kubectl")}
    return debs.ensure_kubernetes_debs({**inputs, **companions}, versions, root)


def reuse_shared(package_files: Iterable[Path], pinned_files: Iterable[Path], shared: Collection[str]) -> list[Path]:
    """package_files with the packages named in shared taken from pinned_files: one file in both repositories.

    They were built from the same inputs, so they must be the same bytes; anything else is a packaging bug.
    """
    pinned = {debs.package_name(deb): deb for deb in pinned_files}
    files = []
    for deb in package_files:
        name = debs.package_name(deb)
        if name in shared:
            if sha256_file(deb) != sha256_file(pinned[name]):
                raise RuntimeError(
                    f"{deb.name} was built twice with different content: the packages are not reproducible"
                )
            deb = pinned[name]
        files.append(deb)
    return files


def from_source(bundle: Path, versions: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> Manifest:
    """Build every binary from the Go module proxy, package and image it; the Calico manifest from its module.

    previous (versions.yml rendered for the previous release, see :func:`previous_release`): its Kubernetes, the
    etcd, CoreDNS and pause its kubeadm names where they differ, its packages and its control-plane images too.
    """
    root = cache_root()
    kubernetes_version = versions["sensorstack_kubernetes_version"]
    built = components.build_all(versions, root)
    binaries = images.binaries_of(built.values())
    image_list = components.kubeadm_image_list(binaries["kubeadm"], kubernetes_version)
    # The cri-tools and kubernetes-cni packages of every release the bundle carries.
    companions = {"crictl": binaries["crictl"], "cni-plugins": built["cni-plugins"].folder / "bin"}
    package_files = _source_debs(binaries, companions, versions, root)
    key = aptrepo.ensure_signing_key(root)
    artifacts = _apt_repository(bundle, package_files, versions, key)
    artifacts += images.bundle_images(images.cluster_images(versions, image_list), binaries, bundle, root)
    artifacts += stack_images.bundle_stack_images(versions, bundle, root)
    calico = calico_module(versions["sensorstack_calico_version"])
    artifacts.append(_calico_artifact(bundle, calico / "manifests" / CALICO_MANIFEST, versions, load_versions()))
    record = _version_record(versions, image_list)
    if previous is not None:
        release = components.build_kubernetes_release(previous["sensorstack_kubernetes_version"], root, image_list)
        own = images.binaries_of(release.components.values())
        shared = debs.shared_packages(previous, versions)
        previous_files = reuse_shared(_source_debs(own, companions, previous, root), package_files, shared)
        artifacts += _apt_repository(bundle, previous_files, previous, key)
        specs = image_specs.kubeadm_images(components.own_images(release.images, image_list))
        artifacts += images.bundle_images(specs, own, bundle, root)
        record |= _previous_record(previous, release.images)
    return Manifest(source="source", versions=record, artifacts=artifacts)


def _fetch_debs(versions: Mapping[str, Any], wanted: Collection[str], work: Path) -> dict[str, Path]:
    """The wanted packages of versions' release from its (possibly overridden) apt repository, every byte checked."""
    minor = kubernetes_minor(versions["sensorstack_kubernetes_version"])
    fetched, _key = upstream.fetch_debs(
        versions["sensorstack_kubernetes_apt_url"],
        versions["sensorstack_kubernetes_apt_key_url"],
        versions.get("sensorstack_kubernetes_apt_key_checksum") or "",
        {name: version for name, version in debs.debian_versions(versions).items() if name in wanted},
        work / f"debs-{minor}",
        work / f"apt-{minor}",
    )
    return fetched


def _fetched_image_list(kubeadm_deb: Path, version: str, work: Path) -> dict[str, str]:
    """The images the kubeadm of a fetched package names for its own version."""
    kubeadm = extract_binary(kubeadm_deb, "usr/bin/kubeadm", work / f"kubeadm-{version}")
    return components.kubeadm_image_list(kubeadm, version)


def _copy_images(bundle: Path, names: Iterable[ImageName], registries_conf: Path | None) -> list[Artifact]:
    artifacts = []
    for name in names:
        target = bundle / name.archive
        digest = upstream.copy_image(str(name), target, registries_conf)
        artifacts.append(
            artifact_for(
                bundle, target, kind="image", name=name.repository, version=name.tag, upstream=str(name), digest=digest
            )
        )
    return artifacts


def from_upstream(
    bundle: Path,
    versions: Mapping[str, Any],
    registries_conf: Path | None = None,
    previous: Mapping[str, Any] | None = None,
) -> Manifest:
    """Fetch the published artifacts from the (possibly overridden) upstream locations, checking every byte.

    previous: the previous release's kubeadm, kubelet and kubectl from the apt repository of its minor (signed with
    the same key: pkgs.k8s.io signs every minor's repository with one key), and its control-plane images.
    """
    root = cache_root()
    kubernetes_version = versions["sensorstack_kubernetes_version"]
    with tempfile.TemporaryDirectory(prefix="sensorstack-upstream-") as scratch:
        work = Path(scratch)
        fetched = _fetch_debs(versions, KUBERNETES_PACKAGES, work)
        image_list = _fetched_image_list(fetched["kubeadm"], kubernetes_version, work)
        signing = aptrepo.ensure_signing_key(root)
        package_files = sorted(fetched.values())
        artifacts = _apt_repository(bundle, package_files, versions, signing)
        names = [spec.name for spec in images.cluster_images(versions, image_list)]
        names += [spec.name for spec in stack_images.stack_images(versions)]
        artifacts += _copy_images(bundle, names, registries_conf)
        manifest_file = upstream.download(
            versions["sensorstack_calico_manifest_url"],
            work / CALICO_MANIFEST,
            upstream.parse_checksum(
                versions["sensorstack_calico_manifest_checksum"], "sensorstack_calico_manifest_checksum"
            ),
        )
        artifacts.append(_calico_artifact(bundle, manifest_file, versions, load_versions()))
        record = _version_record(versions, image_list)
        if previous is not None:
            version = previous["sensorstack_kubernetes_version"]
            shared = debs.shared_packages(previous, versions)
            try:
                own = _fetch_debs(previous, set(KUBERNETES_PACKAGES) - shared, work)
            except (ValueError, OSError) as error:  # OSError: urllib's errors, e.g. a repository answering 404
                raise RuntimeError(
                    f"the previous release {version} ({UPGRADE_FROM_VARIABLES[0]}; empty leaves it out): {error}"
                ) from error
            previous_list = _fetched_image_list(own["kubeadm"], version, work)
            previous_files = sorted([*own.values(), *(fetched[name] for name in shared)])
            artifacts += _apt_repository(bundle, previous_files, previous, signing)
            specs = image_specs.kubeadm_images(components.own_images(previous_list, image_list))
            artifacts += _copy_images(bundle, [spec.name for spec in specs], registries_conf)
            record |= _previous_record(previous, previous_list)
    return Manifest(source="upstream", versions=record, artifacts=artifacts)


def _release_record(versions: Mapping[str, Any], image_list: Mapping[str, str]) -> dict[str, str]:
    companions = components.companion_versions(image_list)
    return {
        "kubernetes": versions["sensorstack_kubernetes_version"],
        "kubernetes_package_revision": versions["sensorstack_kubernetes_package_revision"],
        "etcd": companions.etcd,
        "coredns": companions.coredns,
        "pause": companions.pause,
    }


def _version_record(versions: Mapping[str, Any], image_list: Mapping[str, str]) -> dict[str, str]:
    return _release_record(versions, image_list) | {
        "cri_tools": versions["sensorstack_cri_tools_version"],
        "cni_plugins": versions["sensorstack_cni_plugins_version"],
        "calico": versions["sensorstack_calico_version"],
    }


def _previous_record(previous: Mapping[str, Any], image_list: Mapping[str, str]) -> dict[str, str]:
    """The previous release's versions in bundle.json: upgrade_from_kubernetes, upgrade_from_etcd, ..."""
    return {f"upgrade_from_{name}": value for name, value in _release_record(previous, image_list).items()}


def build_bundle(
    bundle: Path,
    source: str = "source",
    overrides: Mapping[str, Any] | None = None,
    registries_conf: Path | None = None,
) -> Manifest:
    versions = load_versions(overrides=overrides)
    previous = previous_release(versions, overrides)
    bundle.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if source == "source":
        manifest = from_source(bundle, versions, previous)
    elif source == "upstream":
        manifest = from_upstream(bundle, versions, registries_conf, previous)
    else:
        raise ValueError(f"--from must be source or upstream, not {source!r}")
    problems = verify(bundle, manifest)
    if problems:
        raise RuntimeError("the bundle does not match what was just built: " + "; ".join(problems))
    manifest.write(bundle)
    log(f"bundle at {bundle}: {len(manifest.artifacts)} artifacts in {time.monotonic() - started:.0f} s")
    return manifest
