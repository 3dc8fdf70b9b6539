"""The pure parts of `bundle build --from upstream`: apt indexes, package choice, checksum pins."""

from __future__ import annotations

import pytest

from sensorstack.bundle.upstream import (
    PackageEntry,
    choose_packages,
    parse_checksum,
    parse_packages,
    release_sha256,
)

PACKAGES = """\
Package: kubeadm
Version: 1.35.3-1.1
Architecture: amd64
Filename: amd64/kubeadm_1.35.3-1.1_amd64.deb
Size: 100
SHA256: aaaa

Package: kubeadm
Version: 1.35.4-1.1
Architecture: amd64
Depends: cri-tools (>= 1.30.0), kubeadm
Description: Command-line utility
 for administering a Kubernetes cluster
Filename: amd64/kubeadm_1.35.4-1.1_amd64.deb
Size: 200
SHA256: bbbb
"""


def stanza(package: str, version: str, architecture: str) -> str:
    return (
        f"Package: {package}\nVersion: {version}\nArchitecture: {architecture}\n"
        f"Filename: {architecture}/{package}_{version}_{architecture}.deb\nSize: 1\nSHA256: {architecture}\n"
    )


# pkgs.k8s.io lists every architecture in one flat Packages index.
MULTI_ARCHITECTURE_PACKAGES = "\n".join(
    [
        stanza("kubeadm", "1.35.4-1.1", "arm64"),
        stanza("kubeadm", "1.35.4-1.1", "amd64"),
        stanza("kubeadm", "1.35.4-1.1", "s390x"),
        stanza("kubernetes-cni", "1.7.1-1.1", "all"),
        stanza("kubelet", "1.35.4-1.1", "arm64"),
        stanza("kubelet", "1.35.4-1.1", "s390x"),
    ]
)

RELEASE = """\
Origin: sensorstack
Date: Wed, 02 Dec 2026 02:00:00 UTC
SHA256:
 1111 300 Packages
 2222 120 Packages.gz
"""


def test_packages_stanzas_with_continuation_lines() -> None:
    entries = parse_packages(PACKAGES)
    assert entries == [
        PackageEntry("kubeadm", "1.35.3-1.1", "amd64/kubeadm_1.35.3-1.1_amd64.deb", "aaaa", 100, "amd64"),
        PackageEntry("kubeadm", "1.35.4-1.1", "amd64/kubeadm_1.35.4-1.1_amd64.deb", "bbbb", 200, "amd64"),
    ]


def test_release_index_checksums() -> None:
    assert release_sha256(RELEASE) == {"Packages": ("1111", 300), "Packages.gz": ("2222", 120)}
    assert release_sha256("Origin: x\n") == {}


def test_the_exact_pinned_version_is_chosen_and_a_missing_one_is_named() -> None:
    entries = parse_packages(PACKAGES)
    assert choose_packages(entries, {"kubeadm": "1.35.4-1.1"})["kubeadm"].sha256 == "bbbb"
    with pytest.raises(ValueError, match=r"no kubeadm=1\.35\.5-1\.1, kubelet=1\.35\.4-1\.1"):
        choose_packages(entries, {"kubeadm": "1.35.5-1.1", "kubelet": "1.35.4-1.1"})


def test_the_bundle_architecture_is_chosen_from_a_multi_architecture_index() -> None:
    chosen = choose_packages(
        parse_packages(MULTI_ARCHITECTURE_PACKAGES), {"kubeadm": "1.35.4-1.1", "kubernetes-cni": "1.7.1-1.1"}
    )
    assert chosen["kubeadm"].filename == "amd64/kubeadm_1.35.4-1.1_amd64.deb"
    assert chosen["kubernetes-cni"].filename == "all/kubernetes-cni_1.7.1-1.1_all.deb"


def test_a_package_only_built_for_other_architectures_is_missing() -> None:
    with pytest.raises(ValueError, match=r"the apt repository has no kubelet=1\.35\.4-1\.1$"):
        choose_packages(parse_packages(MULTI_ARCHITECTURE_PACKAGES), {"kubeadm": "1.35.4-1.1", "kubelet": "1.35.4-1.1"})


def test_checksum_pins_name_their_variable() -> None:
    assert parse_checksum("sha256:" + "a" * 64, "v") == "a" * 64
    for bad in ("", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha256:abc"):
        with pytest.raises(ValueError, match="sensorstack_kubernetes_apt_key_checksum must be sha256"):
            parse_checksum(bad, "sensorstack_kubernetes_apt_key_checksum")
