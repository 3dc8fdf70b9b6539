"""``sensorstack bundle build``: gather every pinned artifact of a cluster into one folder with its bundle.json.

Layout (the same for both sources, so a bundle fetched from upstream and one built from source agree):
- ``apt/core:/stable:/v<minor>/deb/``: a signed flat repository laid out like pkgs.k8s.io;
- ``images/<registry>/<path>/<tag>.tar``: OCI archives under the images' upstream names;
- ``files/calico/v<version>/calico-vxlan.yaml``: Calico's manifest of the pinned release;
- ``bundle.json``: every artifact with its upstream location, version and sha256.

Every step is cached outside the checkout (``sensorstack.bundle.cache``), so a rebuild with the same pins costs
seconds; the bundle folder itself is assembled from hard links into that cache.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sensorstack.bundle import aptrepo, components, debs, gobuild, images, stack_images, upstream
from sensorstack.bundle.cache import cache_root, log, place
from sensorstack.bundle.manifest import Artifact, Manifest, artifact_for, verify
from sensorstack.bundle.versions import kubernetes_minor, load_versions

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


def from_source(bundle: Path, versions: Mapping[str, Any]) -> Manifest:
    """Build every binary from the Go module proxy, package and image it; the Calico manifest from its module."""
    root = cache_root()
    kubernetes_version = versions["sensorstack_kubernetes_version"]
    built = components.build_all(versions, root)
    binaries = images.binaries_of(built.values())
    image_list = components.kubeadm_image_list(binaries["kubeadm"], kubernetes_version)
    package_inputs = {name: binaries[name] for name in ("kubeadm", "kubelet", "kubectl", "crictl")}
    package_inputs["cni-plugins"] = built["cni-plugins"].folder / "bin"
    package_files = debs.ensure_kubernetes_debs(package_inputs, versions, root)
    key = aptrepo.ensure_signing_key(root)
    repository = aptrepo.write_apt_repository(
        bundle / "apt", package_files, kubernetes_minor(kubernetes_version), key.home
    )
    upstream_versions = load_versions()
    artifacts = _apt_artifacts(bundle, repository, package_files, upstream_versions)
    artifacts += images.bundle_images(versions, image_list, binaries, bundle, root)
    artifacts += stack_images.bundle_stack_images(versions, bundle, root)
    calico = calico_module(versions["sensorstack_calico_version"])
    artifacts.append(_calico_artifact(bundle, calico / "manifests" / CALICO_MANIFEST, versions, upstream_versions))
    return Manifest(source="source", versions=_version_record(versions, image_list), artifacts=artifacts)


def from_upstream(bundle: Path, versions: Mapping[str, Any], registries_conf: Path | None = None) -> Manifest:
    """Fetch the published artifacts from the (possibly overridden) upstream locations, checking every byte."""
    root = cache_root()
    kubernetes_version = versions["sensorstack_kubernetes_version"]
    key_checksum = versions.get("sensorstack_kubernetes_apt_key_checksum") or ""
    with tempfile.TemporaryDirectory(prefix="sensorstack-upstream-") as scratch:
        work = Path(scratch)
        fetched, _key = upstream.fetch_debs(
            versions["sensorstack_kubernetes_apt_url"],
            versions["sensorstack_kubernetes_apt_key_url"],
            key_checksum,
            debs.debian_versions(versions),
            work / "debs",
            work,
        )
        kubeadm = extract_binary(fetched["kubeadm"], "usr/bin/kubeadm", work / "kubeadm-root")
        image_list = components.kubeadm_image_list(kubeadm, kubernetes_version)
        signing = aptrepo.ensure_signing_key(root)
        package_files = sorted(fetched.values())
        repository = aptrepo.write_apt_repository(
            bundle / "apt", package_files, kubernetes_minor(kubernetes_version), signing.home
        )
        upstream_versions = load_versions()
        artifacts = _apt_artifacts(bundle, repository, package_files, upstream_versions)
        names = [spec.name for spec in images.cluster_images(versions, image_list)]
        names += [spec.name for spec in stack_images.stack_images(versions)]
        for name in names:
            target = bundle / name.archive
            digest = upstream.copy_image(str(name), target, registries_conf)
            artifacts.append(
                artifact_for(
                    bundle,
                    target,
                    kind="image",
                    name=name.repository,
                    version=name.tag,
                    upstream=str(name),
                    digest=digest,
                )
            )
        manifest_file = upstream.download(
            versions["sensorstack_calico_manifest_url"],
            work / CALICO_MANIFEST,
            upstream.parse_checksum(
                versions["sensorstack_calico_manifest_checksum"], "sensorstack_calico_manifest_checksum"
            ),
        )
        artifacts.append(_calico_artifact(bundle, manifest_file, versions, upstream_versions))
    return Manifest(source="upstream", versions=_version_record(versions, image_list), artifacts=artifacts)


def _version_record(versions: Mapping[str, Any], image_list: Mapping[str, str]) -> dict[str, str]:
    companions = components.companion_versions(image_list)
    return {
        "kubernetes": versions["sensorstack_kubernetes_version"],
        "kubernetes_package_revision": versions["sensorstack_kubernetes_package_revision"],
        "cri_tools": versions["sensorstack_cri_tools_version"],
        "cni_plugins": versions["sensorstack_cni_plugins_version"],
        "calico": versions["sensorstack_calico_version"],
        "etcd": companions.etcd,
        "coredns": companions.coredns,
        "pause": companions.pause,
    }


def build_bundle(
    bundle: Path,
    source: str = "source",
    overrides: Mapping[str, Any] | None = None,
    registries_conf: Path | None = None,
) -> Manifest:
    versions = load_versions(overrides=overrides)
    bundle.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if source == "source":
        manifest = from_source(bundle, versions)
    elif source == "upstream":
        manifest = from_upstream(bundle, versions, registries_conf)
    else:
        raise ValueError(f"--from must be source or upstream, not {source!r}")
    problems = verify(bundle, manifest)
    if problems:
        raise RuntimeError("the bundle does not match what was just built: " + "; ".join(problems))
    manifest.write(bundle)
    log(f"bundle at {bundle}: {len(manifest.artifacts)} artifacts in {time.monotonic() - started:.0f} s")
    return manifest
