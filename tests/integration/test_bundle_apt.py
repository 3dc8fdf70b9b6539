"""The bundle's Kubernetes apt repository, served over HTTP to a Debian 13 host as users configure pkgs.k8s.io.

Packages are built from small stand-in executables (the real binaries only change their size), indexed and signed
with the bundle's key; a throwaway trixie container (apt 3.0, which verifies with sqv) fetches them from an HTTP
server on the Docker network's gateway. Dependencies on Debian packages are resolved against the Debian archive's
index the lab image carries, without any download from outside.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensorstack.bundle import aptrepo, debs
from sensorstack.bundle.build import reuse_shared
from sensorstack.bundle.cache import default_bundle_dir
from sensorstack.bundle.manifest import read_manifest
from sensorstack.bundle.upstream import parse_packages, release_sha256
from sensorstack.bundle.versions import kubernetes_minor, load_versions, previous_release
from sensorstack.lab import images
from tests.tiers import unavailable

pytestmark = pytest.mark.lab

KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/kubernetes.sources"
# Only our source: the Debian lists already in the image stay (no List-Cleanup) and are never refreshed.
UPDATE = ["apt-get", "update", "-o", "Dir::Etc::SourceList=/dev/null", "-o", "APT::Get::List-Cleanup=false"]


def _stand_ins(folder: Path) -> dict[str, Path]:
    binaries: dict[str, Path] = {}
    for name in ("kubeadm", "kubelet", "kubectl", "crictl"):
        path = folder / name
        path.write_text(f"#!/bin/sh\necho 'stand-in {name}'\n")
        path.chmod(0o755)
        binaries[name] = path
    plugins = folder / "cni"
    plugins.mkdir()
    for name in ("bridge", "host-local", "loopback", "portmap"):
        (plugins / name).write_text(f"#!/bin/sh\necho 'stand-in {name}'\n")
        (plugins / name).chmod(0o755)
    binaries["cni-plugins"] = plugins
    return binaries


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.requested.append(self.path)


@dataclass
class Lab:
    container: str
    bundle: Path
    base_url: str
    requested: list[str]
    debs: list[Path]
    key: aptrepo.SigningKey

    def run(self, *command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "exec", "-i", self.container, *command], input=stdin, capture_output=True, check=False
        )

    def sh(self, script: str) -> subprocess.CompletedProcess:
        return self.run("sh", "-c", script)

    def use_repository(self, path: str) -> None:
        """Point the host's Kubernetes source at <base_url>/<path>/ and forget what apt knew about it."""
        source = f"Types: deb\nURIs: {self.base_url}/{path}/\nSuites: /\nSigned-By: {KEYRING}\n"
        assert self.run("sh", "-c", f"cat > {SOURCES}", stdin=source.encode()).returncode == 0
        host = self.base_url.removeprefix("http://")
        assert self.sh(f"rm -f /var/lib/apt/lists/{host}_* /var/lib/apt/lists/partial/{host}_*").returncode == 0

    def update(self) -> subprocess.CompletedProcess:
        return self.run(*UPDATE)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        unavailable("integration", "needs a running Docker Engine (make host)")
    if shutil.which("gpg") is None or shutil.which("dpkg-deb") is None:
        unavailable("integration", "needs gpg and dpkg-deb on the host")
    work = tmp_path_factory.mktemp("apt")
    stand_ins = work / "bin"
    stand_ins.mkdir()
    built = debs.ensure_kubernetes_debs(_stand_ins(stand_ins), load_versions(), cache_root=work / "cache")
    key = aptrepo.ensure_signing_key(work / "cache")
    bundle = work / "bundle"
    aptrepo.write_apt_repository(bundle / "apt", built, "1.35", key.home)
    # The previous release's repository, as the bundle has it: its own kubeadm, kubelet and kubectl, and the same
    # cri-tools and kubernetes-cni files as the pinned one.
    previous = previous_release(load_versions())
    if previous is not None:
        previous_bin = work / "previous-bin"
        previous_bin.mkdir()
        own = debs.ensure_kubernetes_debs(_stand_ins(previous_bin), previous, cache_root=work / "cache")
        shared = debs.shared_packages(previous, load_versions())
        aptrepo.write_apt_repository(
            bundle / "apt",
            reuse_shared(own, built, shared),
            kubernetes_minor(previous["sensorstack_kubernetes_version"]),
            key.home,
        )

    tag, _built = images.build(images.recipe_for("debian13"))
    container = f"sensorstack-test-apt-{secrets.token_hex(4)}"
    _docker("run", "-d", "--rm", "--name", container, "--entrypoint", "sleep", tag, "infinity")
    server = None
    try:
        gateway = _docker("inspect", "-f", "{{.NetworkSettings.Gateway}}", container)
        requested: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requested": requested})
        # Bound to the Docker bridge's gateway only: reachable from the test container, not from other hosts.
        server = _Server((gateway, 0), functools.partial(handler, directory=str(bundle)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        # As users do with pkgs.k8s.io: the served, armored Release.key, dearmored into a keyring.
        served_key = (bundle / "apt" / aptrepo.repository_path("1.35") / "Release.key").read_bytes()
        keyring = subprocess.run(["gpg", "--dearmor"], input=served_key, capture_output=True, check=True).stdout
        lab = Lab(container, bundle, f"http://{gateway}:{server.server_address[1]}", requested, built, key)
        assert lab.sh("mkdir -p -m 755 /etc/apt/keyrings").returncode == 0
        assert lab.run("sh", "-c", f"cat > {KEYRING} && chmod 644 {KEYRING}", stdin=keyring).returncode == 0
        yield lab
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def _text(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).decode(errors="replace")


def _tampered_copy(lab: Lab, name: str) -> Path:
    """A copy of the good repository at <bundle>/<name>/, for a test to spoil."""
    target = lab.bundle / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(lab.bundle / "apt" / aptrepo.repository_path("1.35"), target)
    return target


def test_trixie_apt_accepts_the_signed_repository_over_http(lab: Lab) -> None:
    lab.use_repository("apt/core:/stable:/v1.35/deb")
    update = lab.update()
    output = _text(update)
    assert update.returncode == 0, output
    # sqv accepted the signature without a warning (apt 3.0 warns about weak or soon-rejected keys and digests)
    assert "W:" not in output and "E:" not in output, output
    assert any(path.endswith("/InRelease") for path in lab.requested), lab.requested

    policy = _text(lab.run("apt-cache", "policy", "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"))
    for expected in ("1.35.4-1.1", "1.34.0-1.1", "1.9.0-1.1", f"{lab.base_url}/apt/core:/stable:/v1.35/deb"):
        assert expected in policy, policy


def test_installing_kubeadm_pulls_cri_tools_from_the_repository(lab: Lab) -> None:
    lab.use_repository("apt/core:/stable:/v1.35/deb")
    assert lab.update().returncode == 0
    install = lab.run("apt-get", "install", "-y", "--no-install-recommends", "kubeadm=1.35.4-1.1", "kubectl=1.35.4-1.1")
    assert install.returncode == 0, _text(install)

    status = _text(lab.run("dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "kubeadm", "cri-tools"))
    assert "kubeadm 1.35.4-1.1 install ok installed" in status, status
    assert "cri-tools 1.34.0-1.1 install ok installed" in status, status
    assert _text(lab.run("kubeadm")).strip() == "stand-in kubeadm"
    assert _text(lab.run("crictl")).strip() == "stand-in crictl"
    drop_in = _text(lab.run("cat", "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"))
    assert "EnvironmentFile=-/etc/default/kubelet" in drop_in, drop_in
    assert any(path.endswith("/amd64/kubeadm_1.35.4-1.1_amd64.deb") for path in lab.requested), lab.requested


def test_kubelet_dependencies_resolve_against_the_debian_archive(lab: Lab) -> None:
    lab.use_repository("apt/core:/stable:/v1.35/deb")
    assert lab.update().returncode == 0
    simulation = lab.run("apt-get", "install", "-s", "-y", "--no-install-recommends", "kubelet=1.35.4-1.1")
    plan = _text(simulation)
    assert simulation.returncode == 0, plan
    assert "Inst iptables " in plan, plan  # from Debian
    assert "Inst kubernetes-cni (1.9.0-1.1 " in plan, plan  # from the bundle
    assert "Inst kubelet (1.35.4-1.1 " in plan, plan


def _previous_release() -> tuple[str, str]:
    """The previous release's repository path in a bundle and its Debian version; skips when there is none."""
    previous = previous_release(load_versions())
    if previous is None:
        pytest.skip("sensorstack_kubernetes_upgrade_from_version is empty: no previous release in the bundle")
    minor = kubernetes_minor(previous["sensorstack_kubernetes_version"])
    return f"apt/core:/stable:/v{minor}/deb", debs.debian_versions(previous)["kubeadm"]


def test_the_previous_release_installs_from_the_repository_of_its_minor(lab: Lab) -> None:
    path, version = _previous_release()
    # A host without the pinned release (an earlier test may have installed it here): a fresh install, not a downgrade.
    purge = lab.run("dpkg", "--purge", "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni")
    assert purge.returncode == 0, _text(purge)
    lab.use_repository(path)
    update = lab.update()
    assert update.returncode == 0, _text(update)
    packages = [f"{name}={version}" for name in ("kubeadm", "kubelet", "kubectl")]
    simulation = lab.run("apt-get", "install", "-s", "-y", "--no-install-recommends", *packages)
    plan = _text(simulation)
    assert simulation.returncode == 0, plan
    for name in ("kubeadm", "kubelet", "kubectl"):
        assert f"Inst {name} ({version} " in plan, plan
    assert "Inst kubernetes-cni (1.9.0-1.1 " in plan, plan  # the pinned release's, repeated in this repository


def test_the_built_bundle_carries_the_previous_release_in_its_own_signed_repository(tmp_path: Path) -> None:
    """Against the bundle `sensorstack bundle build` wrote (skipped without one): the previous minor's repository
    lists its kubeadm, kubelet and kubectl, verifies with its key, and its kubeadm is that release."""
    path, version = _previous_release()
    bundle = default_bundle_dir()
    if not (bundle / "bundle.json").is_file():
        unavailable("integration", f"no bundle at {bundle}: run `sensorstack bundle build`")
    repository = bundle / path
    keyring = tmp_path / "keyring.gpg"
    armored = (repository / "Release.key").read_bytes()
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=armored, capture_output=True, check=True).stdout)
    release = subprocess.run(
        ["gpgv", "--keyring", str(keyring), "--output", "-", str(repository / "InRelease")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages_text = (repository / "Packages").read_bytes()
    assert release_sha256(release)["Packages"] == (hashlib.sha256(packages_text).hexdigest(), len(packages_text))
    listed = {entry.package: entry for entry in parse_packages(packages_text.decode())}
    assert {name: listed[name].version for name in ("kubeadm", "kubelet", "kubectl")} == dict.fromkeys(
        ("kubeadm", "kubelet", "kubectl"), version
    )
    assert {"cri-tools", "kubernetes-cni"} <= listed.keys()
    recorded = {(a.name, a.version) for a in read_manifest(bundle).artifacts if a.path.startswith(path + "/")}
    assert {(name, entry.version) for name, entry in listed.items()} <= recorded

    kubeadm = repository / listed["kubeadm"].filename
    subprocess.run(["dpkg-deb", "--extract", str(kubeadm), str(tmp_path / "root")], check=True)
    short = subprocess.run(
        [str(tmp_path / "root/usr/bin/kubeadm"), "version", "-o", "short"], capture_output=True, text=True, check=True
    )
    assert short.stdout.strip() == f"v{version.split('-')[0]}"


def test_a_tampered_packages_index_fails_the_update(lab: Lab) -> None:
    spoiled = _tampered_copy(lab, "tampered-packages")
    packages = (spoiled / "Packages").read_text().replace("Depends: cri-tools (>= 1.30.0)\n", "")
    (spoiled / "Packages").write_text(packages)
    (spoiled / "Packages.gz").write_bytes(aptrepo.gzip_bytes(packages.encode()))
    lab.use_repository("tampered-packages")
    update = lab.update()
    output = _text(update)
    assert update.returncode != 0, output
    assert "Failed to fetch" in output and "/tampered-packages/Packages" in output, output
    assert "Hash Sum mismatch" in output or "unexpected size" in output, output


def test_a_replaced_package_file_is_refused(lab: Lab) -> None:
    spoiled = _tampered_copy(lab, "tampered-deb")
    shutil.copyfile(spoiled / "amd64/kubeadm_1.35.4-1.1_amd64.deb", spoiled / "amd64/kubectl_1.35.4-1.1_amd64.deb")
    lab.use_repository("tampered-deb")
    assert lab.update().returncode == 0
    assert lab.run("apt-get", "clean").returncode == 0  # no good copy left in apt's cache from another test
    download = lab.run("apt-get", "install", "-y", "--download-only", "--reinstall", "kubectl=1.35.4-1.1")
    output = _text(download)
    assert download.returncode != 0, output
    assert "Hash Sum mismatch" in output or "unexpected size" in output, output


def test_a_release_signed_by_another_key_fails_the_update(lab: Lab, tmp_path: Path) -> None:
    spoiled = _tampered_copy(lab, "other-signer")
    other = aptrepo.ensure_signing_key(tmp_path)
    assert other.fingerprint != lab.key.fingerprint
    aptrepo.write_apt_repository(
        lab.bundle / "other-root", lab.debs, "1.35", other.home
    )  # sign the same content with the other key
    for name in ("InRelease", "Release.gpg"):
        shutil.copyfile(lab.bundle / "other-root" / aptrepo.repository_path("1.35") / name, spoiled / name)
    lab.use_repository("other-signer")
    update = lab.update()
    output = _text(update)
    assert update.returncode != 0, output
    assert "is not signed" in output, output


def test_packages_are_reproducible_and_cached(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        unavailable("integration", "needs dpkg-deb on the host")
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    binaries = _stand_ins(stand_ins)
    cached = debs.ensure_kubernetes_debs(binaries, load_versions(), cache_root=tmp_path / "cache")
    assert debs.ensure_kubernetes_debs(binaries, load_versions(), cache_root=tmp_path / "cache") == cached
    assert (cached[0].parent / "build.json").is_file()
    rebuilt = debs.build_kubernetes_debs(binaries, load_versions(), tmp_path / "again")
    assert [path.name for path in rebuilt] == [path.name for path in cached]
    for first, second in zip(cached, rebuilt, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name

    kubelet = next(path for path in rebuilt if path.name.startswith("kubelet_"))
    listing = subprocess.run(["dpkg-deb", "-c", str(kubelet)], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        assert " root/root " in line and " 2026-04-15 00:00 " in line, line
    conffiles = subprocess.run(
        ["dpkg-deb", "--info", str(kubelet), "conffiles"], capture_output=True, text=True, check=True
    ).stdout
    assert conffiles == "/etc/default/kubelet\n"
