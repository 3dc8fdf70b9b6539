"""The previous Kubernetes release in the bundle: its versions, what it shares with the pinned one, what it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorstack.bundle import build, components, debs
from sensorstack.bundle.gobuild import BuiltComponent
from sensorstack.bundle.versions import kubernetes_minor, load_versions, previous_release

PINNED_IMAGES = {
    "registry.k8s.io/kube-apiserver": "v1.35.4",
    "registry.k8s.io/kube-proxy": "v1.35.4",
    "registry.k8s.io/etcd": "3.6.6-0",
    "registry.k8s.io/coredns/coredns": "v1.13.1",
    "registry.k8s.io/pause": "3.10.1",
}
PREVIOUS_IMAGES = {
    "registry.k8s.io/kube-apiserver": "v1.34.12",
    "registry.k8s.io/kube-proxy": "v1.34.12",
    "registry.k8s.io/etcd": "3.6.5-0",
    "registry.k8s.io/coredns/coredns": "v1.12.1",
    "registry.k8s.io/pause": "3.10.1",
}


def _versions(**changes: str) -> dict[str, str]:
    return {**load_versions(), **changes}


def test_the_pinned_previous_release_is_a_patch_of_the_minor_before() -> None:
    versions = load_versions()
    major, minor = kubernetes_minor(versions["sensorstack_kubernetes_version"]).split(".")
    previous = previous_release(versions)
    assert previous is not None
    assert kubernetes_minor(previous["sensorstack_kubernetes_version"]) == f"{major}.{int(minor) - 1}"


def test_the_previous_release_gets_the_repository_and_packages_of_its_own_minor() -> None:
    previous = previous_release(_versions(sensorstack_kubernetes_upgrade_from_version="1.34.12"))
    assert previous is not None
    assert previous["sensorstack_kubernetes_version"] == "1.34.12"
    assert previous["sensorstack_kubernetes_apt_url"] == "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
    assert previous["sensorstack_kubernetes_apt_key_url"] == "https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key"
    assert debs.debian_versions(previous)["kubeadm"] == "1.34.12-1.1"
    # What is not derived from the Kubernetes version stays the pinned one.
    assert previous["sensorstack_calico_version"] == load_versions()["sensorstack_calico_version"]


def test_the_previous_release_follows_the_same_overrides_as_the_pinned_one() -> None:
    overrides = {"sensorstack_mirror": "http://10.77.0.1:8080"}
    previous = previous_release(
        load_versions(overrides=overrides) | {"sensorstack_kubernetes_upgrade_from_version": "1.34.12"}, overrides
    )
    assert previous is not None
    assert previous["sensorstack_kubernetes_apt_url"] == "http://10.77.0.1:8080/apt/core:/stable:/v1.34/deb/"


def test_an_empty_previous_release_leaves_it_out() -> None:
    assert previous_release(_versions(sensorstack_kubernetes_upgrade_from_version="")) is None


@pytest.mark.parametrize("version", ["1.33.9", "1.35.3", "1.36.0", "2.34.0"])
def test_a_previous_release_that_is_not_of_the_minor_before_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match=r"sensorstack_kubernetes_upgrade_from_version must be a 1\.34 release"):
        previous_release(_versions(sensorstack_kubernetes_upgrade_from_version=version))


def test_a_malformed_previous_release_names_its_variable() -> None:
    with pytest.raises(ValueError, match=r"sensorstack_kubernetes_upgrade_from_version must look like 1\.35\.4"):
        previous_release(_versions(sensorstack_kubernetes_upgrade_from_version="1.34"))


def test_a_previous_release_without_a_package_revision_is_refused() -> None:
    with pytest.raises(ValueError, match="sensorstack_kubernetes_upgrade_from_package_revision is empty"):
        previous_release(
            _versions(
                sensorstack_kubernetes_upgrade_from_version="1.34.12",
                sensorstack_kubernetes_upgrade_from_package_revision="",
            )
        )


def test_both_repositories_share_cri_tools_and_kubernetes_cni_and_nothing_else() -> None:
    versions = load_versions()
    previous = previous_release(versions)
    assert previous is not None
    assert debs.shared_packages(previous, versions) == {"cri-tools", "kubernetes-cni"}
    own = {"sensorstack_cri_tools_version": "1.33.0"}
    assert debs.shared_packages({**previous, **own}, versions) == {"kubernetes-cni"}


def test_kubelet_of_the_previous_release_is_satisfied_by_the_shared_kubernetes_cni() -> None:
    previous = previous_release(_versions(sensorstack_kubernetes_upgrade_from_version="1.34.12"))
    assert previous is not None
    assert debs.kubelet_depends() == ("iptables (>= 1.4.21)", "kubernetes-cni (>= 1.2.0)", "mount", "util-linux")
    cni = debs.debian_versions(previous)["kubernetes-cni"]
    assert tuple(int(part) for part in cni.split("-")[0].split(".")) >= (1, 2, 0)
    assert debs.kubeadm_depends("1.34.12") == ()  # published after kubernetes/release#4387


def test_only_the_images_another_release_lacks_at_that_tag_are_its_own() -> None:
    assert components.own_images(PREVIOUS_IMAGES, PINNED_IMAGES) == {
        "registry.k8s.io/kube-apiserver": "v1.34.12",
        "registry.k8s.io/kube-proxy": "v1.34.12",
        "registry.k8s.io/etcd": "3.6.5-0",
        "registry.k8s.io/coredns/coredns": "v1.12.1",
    }
    assert components.own_images(PINNED_IMAGES, {}) == PINNED_IMAGES


@pytest.fixture
def recorded_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, ...]]:
    """Stand-in builders that record what they were asked to build, and a kubeadm naming the images above."""
    calls: list[tuple[str, ...]] = []

    def component(name: str, version: str, binaries: tuple[str, ...]) -> BuiltComponent:
        return BuiltComponent(name, version, tmp_path, {binary: tmp_path / binary for binary in binaries}, "digest")

    def kubernetes(version: str, _root: Path) -> BuiltComponent:
        calls.append(("kubernetes", version))
        return component("kubernetes", version, ("kubeadm", "kube-apiserver"))

    def image_list(_kubeadm: Path, version: str) -> dict[str, str]:
        return PREVIOUS_IMAGES if version == "1.34.12" else PINNED_IMAGES

    def pause(pause_version: str, kubernetes_version: str, _root: Path) -> BuiltComponent:
        calls.append(("pause", pause_version, kubernetes_version))
        return component("pause", pause_version, ("pause",))

    def etcd(version: str, _root: Path) -> BuiltComponent:
        calls.append(("etcd", version))
        return component("etcd", version, ("etcd",))

    def coredns(version: str, _root: Path) -> BuiltComponent:
        calls.append(("coredns", version))
        return component("coredns", version, ("coredns",))

    monkeypatch.setattr(components, "build_kubernetes", kubernetes)
    monkeypatch.setattr(components, "kubeadm_image_list", image_list)
    monkeypatch.setattr(components, "build_pause", pause)
    monkeypatch.setattr(components, "build_etcd", etcd)
    monkeypatch.setattr(components, "build_coredns", coredns)
    return calls


def test_the_pinned_release_builds_kubernetes_then_everything_its_kubeadm_names(
    recorded_builds: list[tuple[str, ...]], tmp_path: Path
) -> None:
    release = components.build_kubernetes_release("v1.35.4", tmp_path)
    # The same calls, in the same order, as before the previous release existed: the same recipes, the same caches.
    assert recorded_builds == [
        ("kubernetes", "1.35.4"),
        ("pause", "3.10.1", "1.35.4"),
        ("etcd", "3.6.6"),
        ("coredns", "1.13.1"),
    ]
    assert release.images == PINNED_IMAGES
    assert sorted(release.components) == ["coredns", "etcd", "kubernetes", "pause"]


def test_the_previous_release_builds_only_what_the_pinned_one_lacks(
    recorded_builds: list[tuple[str, ...]], tmp_path: Path
) -> None:
    release = components.build_kubernetes_release("1.34.12", tmp_path, shared_images=PINNED_IMAGES)
    assert recorded_builds == [("kubernetes", "1.34.12"), ("etcd", "3.6.5"), ("coredns", "1.12.1")]
    assert sorted(release.components) == ["coredns", "etcd", "kubernetes"]  # pause 3.10.1 is the pinned one's


def _deb(folder: Path, name: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_shared_packages_are_one_file_in_both_repositories(tmp_path: Path) -> None:
    pinned = [_deb(tmp_path / "pinned", "cri-tools_1.34.0-1.1_amd64.deb", b"crictl")]
    built = [
        _deb(tmp_path / "previous", "kubeadm_1.34.12-1.1_amd64.deb", b"kubeadm"),
        _deb(tmp_path / "previous", "cri-tools_1.34.0-1.1_amd64.deb", b"crictl"),
    ]
    assert build.reuse_shared(built, pinned, {"cri-tools"}) == [built[0], pinned[0]]


def test_a_shared_package_built_twice_differently_is_refused(tmp_path: Path) -> None:
    pinned = [_deb(tmp_path / "pinned", "cri-tools_1.34.0-1.1_amd64.deb", b"crictl")]
    built = [_deb(tmp_path / "previous", "cri-tools_1.34.0-1.1_amd64.deb", b"another crictl")]
    with pytest.raises(RuntimeError, match="not reproducible"):
        build.reuse_shared(built, pinned, {"cri-tools"})


def test_bundle_json_records_the_previous_release_beside_the_pinned_one() -> None:
    versions = load_versions()
    previous = previous_release(versions | {"sensorstack_kubernetes_upgrade_from_version": "1.34.12"})
    assert previous is not None
    record = build._version_record(versions, PINNED_IMAGES) | build._previous_record(previous, PREVIOUS_IMAGES)
    assert record["kubernetes"] == versions["sensorstack_kubernetes_version"]
    assert {name: value for name, value in record.items() if name.startswith("upgrade_from_")} == {
        "upgrade_from_kubernetes": "1.34.12",
        "upgrade_from_kubernetes_package_revision": "1.1",
        "upgrade_from_etcd": "3.6.5",
        "upgrade_from_coredns": "1.12.1",
        "upgrade_from_pause": "3.10.1",
    }


def test_upstream_locations_name_the_repository_of_the_releases_minor() -> None:
    previous = previous_release(
        load_versions(overrides={"sensorstack_mirror": "http://10.77.0.1:8080"})
        | {"sensorstack_kubernetes_upgrade_from_version": "1.34.12"},
        {"sensorstack_mirror": "http://10.77.0.1:8080"},
    )
    assert previous is not None
    locations = build.upstream_locations(previous)
    assert locations["sensorstack_kubernetes_apt_url"] == "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
