"""The kubernetes_packages role end to end: a Debian 13 lab host installs Kubernetes from a served bundle.

The bundle is small but real where it matters: kubeadm, kubelet and kubectl 1.35.4 packed from the binaries built
from source (crictl and the CNI plugins are stand-ins), in an apt repository laid out like pkgs.k8s.io and signed
with a bundle key, next to stand-in packages of 1.35.5 (so the pin has to choose) and of 1.36.0 in the repository of
the next minor (so an upgrade has to switch repositories). A bundle.json records the key's sha256, which is where
the role's message sends users for the checksum. It is served over HTTP on the lab network's gateway only.

The tests run in file order against one host: refused input, check mode, the install, the idempotent rerun, then
the upgrade path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sensorstack.bundle import aptrepo, debs
from sensorstack.bundle.manifest import Manifest, artifact_for, read_manifest
from sensorstack.bundle.versions import load_versions

from .conftest import PlaybookRun, kubernetes_binaries, run_role_on_lab_host, served_on_lab_gateway

pytestmark = pytest.mark.lab

HOST = "kubernetes-packages"
SOURCES = "/etc/apt/sources.list.d/kubernetes.sources"
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"
PACKAGES = ("kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni")


def _stand_in(path: Path, name: str) -> Path:
    path.write_text(f"#!/bin/sh\necho 'stand-in {name}'\n")
    path.chmod(0o755)
    return path


_STAND_IN_KUBEADM = """#!/bin/sh
if [ "$1 $2 $3" = "config images list" ]; then
  echo '{"kind": "Images", "images": ["registry.k8s.io/kube-apiserver:v1.0.0", "registry.k8s.io/pause:3.10.1"]}'
  exit 0
fi
echo 'stand-in kubeadm'
"""


def _stand_in_kubeadm(path: Path) -> Path:
    """A kubeadm that answers `config images list --output json` as the real one does (the role reads the pause
    image from it), and prints its name otherwise."""
    path.write_text(_STAND_IN_KUBEADM)
    path.chmod(0o755)
    return path


def _binaries(folder: Path, real: dict[str, Path] | None) -> dict[str, Path]:
    """kubeadm, kubelet and kubectl from real (or stand-ins), crictl and one CNI plugin always stand-ins."""
    folder.mkdir(parents=True)
    binaries = {name: real[name] if real else _stand_in(folder / name, name) for name in ("kubelet", "kubectl")}
    binaries["kubeadm"] = real["kubeadm"] if real else _stand_in_kubeadm(folder / "kubeadm")
    binaries["crictl"] = _stand_in(folder / "crictl", "crictl")
    plugins = folder / "cni"
    plugins.mkdir()
    _stand_in(plugins / "bridge", "bridge")
    binaries["cni-plugins"] = plugins
    return binaries


@dataclass(frozen=True)
class ServedBundle:
    url: str
    key_checksum: str


@pytest.fixture(scope="module")
def served_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedBundle]:
    work = tmp_path_factory.mktemp("kubernetes-packages")
    pins = load_versions()
    # The real 1.35.4 packages come from the shared cache: built once (about a minute), then reused.
    pinned = debs.ensure_kubernetes_debs(_binaries(work / "real", kubernetes_binaries()), pins)
    patch = debs.build_kubernetes_debs(
        _binaries(work / "patch", None), {**pins, "sensorstack_kubernetes_version": "1.35.5"}, work / "debs-1.35.5"
    )
    minor = debs.build_kubernetes_debs(
        _binaries(work / "minor", None), {**pins, "sensorstack_kubernetes_version": "1.36.0"}, work / "debs-1.36.0"
    )
    key = aptrepo.ensure_signing_key(work / "key")
    bundle = work / "bundle"
    newer_patch = [deb for deb in patch if deb.name.split("_")[0] in ("kubeadm", "kubelet", "kubectl")]
    repository = aptrepo.write_apt_repository(bundle / "apt", [*pinned, *newer_patch], "1.35", key.home)
    aptrepo.write_apt_repository(bundle / "apt", minor, "1.36", key.home)
    release_key = artifact_for(
        bundle,
        repository / "Release.key",
        kind="key",
        name="apt-signing-key",
        version="1.35",
        upstream=pins["sensorstack_kubernetes_apt_key_url"],
    )
    Manifest(source="test", versions={}, artifacts=[release_key]).write(bundle)

    with served_on_lab_gateway(bundle) as url:
        checksum = read_manifest(bundle).find("key", "apt-signing-key").sha256
        yield ServedBundle(url, f"sha256:{checksum}")


@pytest.fixture(scope="module")
def host(lab_host_factory, served_bundle: ServedBundle) -> str:
    return lab_host_factory(HOST, "debian13")


def apply_role(host: str, bundle: ServedBundle, directory: Path, *options: str, **variables: Any) -> PlaybookRun:
    settings = {
        "sensorstack_mirror": bundle.url,
        "sensorstack_kubernetes_apt_key_checksum": bundle.key_checksum,
        **variables,
    }
    return run_role_on_lab_host("kubernetes_packages", HOST, host, directory, settings, *options)


def on_host(host: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=False)


def installed_versions(host: str) -> dict[str, str]:
    listing = on_host(host, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\n", *PACKAGES)
    return {
        name: version
        for name, version, status in (line.split(" ") for line in listing.stdout.splitlines())
        if status == "installed"
    }


def held(host: str) -> set[str]:
    return set(on_host(host, "apt-mark", "showhold").stdout.split())


def exists(host: str, path: str) -> bool:
    return on_host(host, "test", "-e", path).returncode == 0


def kubernetes_sources(host: str) -> list[str]:
    """The apt source files that name a Kubernetes repository."""
    found = on_host(host, "grep", "-rl", "core:/stable:", "/etc/apt/sources.list.d/")
    return sorted(found.stdout.split())


def test_an_empty_key_checksum_stops_the_role_before_any_change(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(host, served_bundle, tmp_path, sensorstack_kubernetes_apt_key_checksum="")
    assert run.returncode != 0, run.output
    for fragment in ("kubernetes_packages_repo_key_checksum is empty", "sensorstack_kubernetes_apt_key_checksum"):
        assert fragment in run.output, run.output
    assert "bundle.json" in run.output, run.output
    assert run.recap()[HOST]["changed"] == 0, run.output
    assert not exists(host, KEYRING) and not exists(host, SOURCES)


def test_a_key_that_does_not_match_its_checksum_is_refused_before_any_change(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(host, served_bundle, tmp_path, sensorstack_kubernetes_apt_key_checksum="sha256:" + "0" * 64)
    assert run.returncode != 0, run.output
    assert "checksum" in run.output.lower(), run.output
    assert run.recap()[HOST]["changed"] == 0, run.output
    assert not exists(host, KEYRING) and not exists(host, SOURCES)
    assert installed_versions(host) == {}


def test_check_mode_on_a_new_host_reports_the_changes_and_makes_none(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(host, served_bundle, tmp_path, "--check")
    assert run.returncode == 0, run.output
    assert run.recap()[HOST]["changed"] > 0, run.output
    assert "would install kubeadm=1.35.4-1.1, kubelet=1.35.4-1.1, kubectl=1.35.4-1.1" in run.output, run.output
    assert not exists(host, KEYRING) and not exists(host, SOURCES)
    assert installed_versions(host) == {}


def test_the_pinned_packages_are_installed_from_the_bundle_and_held(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(host, served_bundle, tmp_path)
    assert run.returncode == 0, run.output
    # 1.35.5 is in the repository too: the pin chose.
    assert installed_versions(host) == {
        "kubeadm": "1.35.4-1.1",
        "kubelet": "1.35.4-1.1",
        "kubectl": "1.35.4-1.1",
        "cri-tools": "1.34.0-1.1",
        "kubernetes-cni": "1.9.0-1.1",
    }
    assert held(host) == {"kubeadm", "kubelet", "kubectl"}
    assert on_host(host, "kubeadm", "version", "-o", "short").stdout.strip() == "v1.35.4"
    assert on_host(host, "systemctl", "is-enabled", "kubelet").stdout.strip() == "enabled"
    # kubeadm starts the kubelet once it has written its configuration.
    assert on_host(host, "systemctl", "is-active", "kubelet").stdout.strip() == "inactive"
    sources = on_host(host, "cat", SOURCES).stdout
    assert [line for line in sources.splitlines() if not line.startswith("#")] == [
        "Types: deb",
        f"URIs: {served_bundle.url}/apt/core:/stable:/v1.35/deb/",
        "Suites: /",
        f"Signed-By: {KEYRING}",
    ]


def test_a_second_run_changes_nothing(host: str, served_bundle: ServedBundle, tmp_path: Path) -> None:
    run = apply_role(host, served_bundle, tmp_path)
    assert run.returncode == 0, run.output
    assert run.recap()[HOST]["changed"] == 0, run.output


def test_a_new_pin_does_not_move_installed_packages_without_the_upgrade_switch(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(host, served_bundle, tmp_path, sensorstack_kubernetes_version="1.35.5")
    assert run.returncode != 0, run.output
    assert "kubernetes_packages_upgrade: true" in run.output, run.output
    assert '"kubeadm": "1.35.4-1.1"' in run.output, run.output
    assert run.recap()[HOST]["changed"] == 0, run.output
    assert installed_versions(host)["kubeadm"] == "1.35.4-1.1"


def test_the_upgrade_switch_moves_held_packages_to_the_new_patch_and_holds_them_again(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    run = apply_role(
        host, served_bundle, tmp_path, sensorstack_kubernetes_version="1.35.5", kubernetes_packages_upgrade=True
    )
    assert run.returncode == 0, run.output
    versions = installed_versions(host)
    assert {name: versions[name] for name in ("kubeadm", "kubelet", "kubectl")} == dict.fromkeys(
        ("kubeadm", "kubelet", "kubectl"), "1.35.5-1.1"
    )
    assert held(host) == {"kubeadm", "kubelet", "kubectl"}


def test_crictl_is_installed_where_kubeadm_no_longer_pulls_it_in(
    host: str, served_bundle: ServedBundle, tmp_path: Path
) -> None:
    """kubeadm 1.35.5's package does not depend on cri-tools (as pkgs.k8s.io's since April 2026): the role installs
    crictl itself, which the certificate renewal and the etcd snapshots run."""
    removed = on_host(host, "apt-get", "remove", "--yes", "cri-tools")
    assert removed.returncode == 0 and "cri-tools" not in installed_versions(host), removed.stdout + removed.stderr
    assert installed_versions(host)["kubeadm"] == "1.35.5-1.1"
    run = apply_role(host, served_bundle, tmp_path, sensorstack_kubernetes_version="1.35.5")
    assert run.returncode == 0, run.output
    assert run.recap()[HOST]["changed"] > 0, run.output
    assert installed_versions(host)["cri-tools"] == "1.34.0-1.1"
    assert "cri-tools" not in held(host)
    assert on_host(host, "crictl", "--version").returncode == 0


def test_a_new_minor_switches_the_one_repository_file(host: str, served_bundle: ServedBundle, tmp_path: Path) -> None:
    run = apply_role(
        host, served_bundle, tmp_path, sensorstack_kubernetes_version="1.36.0", kubernetes_packages_upgrade=True
    )
    assert run.returncode == 0, run.output
    assert kubernetes_sources(host) == [SOURCES]
    assert f"URIs: {served_bundle.url}/apt/core:/stable:/v1.36/deb/" in on_host(host, "cat", SOURCES).stdout
    assert installed_versions(host)["kubeadm"] == "1.36.0-1.1"
    assert held(host) == {"kubeadm", "kubelet", "kubectl"}


def test_the_upgrade_switch_never_moves_packages_back(host: str, served_bundle: ServedBundle, tmp_path: Path) -> None:
    run = apply_role(host, served_bundle, tmp_path, kubernetes_packages_upgrade=True)
    assert run.returncode != 0, run.output
    assert "installed at newer versions" in run.output, run.output
    assert run.recap()[HOST]["changed"] == 0, run.output
    assert "/v1.36/" in on_host(host, "cat", SOURCES).stdout
