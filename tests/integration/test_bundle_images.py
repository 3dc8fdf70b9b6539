"""The bundle's images against real tools: skopeo, Debian's docker-registry, Docker and containerd.

The pause image (tiny, from the real pause build) goes the whole way: built, saved in a bundle as an OCI archive,
pushed into a registry under its upstream registry's path, read back by skopeo, run by Docker, and pulled by
containerd through a hosts.toml mirror written by the containerd role's own template. The Debian base is checked
where it matters: its iptables wrapper follows the backend the node already uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle import image_specs, images
from sensorstack.bundle.cache import cache_root
from sensorstack.bundle.components import build_pause
from sensorstack.bundle.debian_base import build_debian_base
from sensorstack.bundle.image_names import ImageName, containerd_mirrors
from sensorstack.bundle.manifest import Artifact, Manifest, read_manifest
from sensorstack.bundle.serve import registry_config, wait_for_url
from sensorstack.bundle.versions import load_versions
from tests.tiers import unavailable

pytestmark = pytest.mark.lab

# What kubeadm v1.35 names (`kubeadm config images list`); build_pause refuses a pause the pinned Kubernetes lacks.
PAUSE = "registry.k8s.io/pause:3.10.1"


def require(*commands: str) -> None:
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        unavailable("integration", f"needs {', '.join(missing)} (apt-get install skopeo docker-registry)")


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def registry(address: str, storage: Path) -> Iterator[str]:
    """Debian's docker-registry on address, storage in a test folder; yields host:port."""
    port = free_port(address)
    config = storage.parent / f"registry-{port}.yml"
    config.write_text(registry_config(address, port, storage))
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_url(f"http://{address}:{port}/v2/", timeout=30, process=process)  # type: ignore[arg-type]
        yield f"{address}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def pause_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle holding the pause image built from the real pause binary; images built in a fresh cache."""
    require("skopeo", "docker-registry", "gcc")
    kubernetes = str(load_versions()["sensorstack_kubernetes_version"])
    pause = build_pause(ImageName.parse(PAUSE).tag, kubernetes, cache_root())
    bundle = tmp_path_factory.mktemp("bundle")
    builder = images.ImageBuilder(pause.binaries, cache=tmp_path_factory.mktemp("cache"))
    built = builder.build_all(image_specs.kubeadm_images({"registry.k8s.io/pause": "3.10.1"}))
    Manifest(source="test", versions={}, artifacts=images.save_images(built, bundle)).write(bundle)
    return bundle


def test_a_pushed_image_is_served_at_the_digest_bundle_json_records(
    pause_bundle: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    artifact = read_manifest(pause_bundle).find("image", "registry.k8s.io/pause")
    with registry("127.0.0.1", tmp_path / "storage") as address:
        assert images.push_images(pause_bundle, address) == [f"{address}/registry.k8s.io/pause:3.10.1"]
        assert "pushed registry.k8s.io/pause:3.10.1" in capfd.readouterr().err

        remote = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{address}/registry.k8s.io/pause:3.10.1"))
        assert remote["Digest"] == artifact.digest
        config = json.loads(
            skopeo("inspect", "--config", "--tls-verify=false", f"docker://{address}/registry.k8s.io/pause:3.10.1")
        )
        assert config["config"]["Entrypoint"] == ["/pause"]
        assert config["config"]["User"] == "65535:65535"

        # A restart of `bundle serve` finds the image in place and pushes nothing.
        images.push_images(pause_bundle, address)
        assert "pushed" not in capfd.readouterr().err


def test_the_pulled_image_carries_the_built_binary(pause_bundle: Path, tmp_path: Path) -> None:
    kubernetes = str(load_versions()["sensorstack_kubernetes_version"])
    binary = build_pause("3.10.1", kubernetes, cache_root()).binaries["pause"]
    with registry("127.0.0.1", tmp_path / "storage") as address:
        images.push_images(pause_bundle, address)
        skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{address}/registry.k8s.io/pause:3.10.1",
            f"dir:{tmp_path}/pulled",
        )
    manifest = json.loads((tmp_path / "pulled/manifest.json").read_text())
    (layer,) = manifest["layers"]
    with tarfile.open(tmp_path / "pulled" / layer["digest"].removeprefix("sha256:")) as tar:
        member = tar.getmember("pause")
        content = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert hashlib.sha256(content).digest() == hashlib.sha256(binary.read_bytes()).digest()
    assert member.mode & 0o111


def test_a_push_that_yields_another_digest_fails(pause_bundle: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(pause_bundle, tampered)
    manifest = read_manifest(tampered)
    manifest.artifacts = [
        Artifact(**{**artifact.__dict__, "digest": "sha256:" + "0" * 64}) for artifact in manifest.artifacts
    ]
    manifest.write(tampered)
    with registry("127.0.0.1", tmp_path / "storage") as address, pytest.raises(RuntimeError, match="records"):
        images.push_images(tampered, address)


def test_docker_runs_the_pulled_pause_as_user_65535(pause_bundle: Path, tmp_path: Path) -> None:
    require("docker")
    name = "sensorstack-test-pause"
    with registry("127.0.0.1", tmp_path / "storage") as address:
        images.push_images(pause_bundle, address)
        reference = f"{address}/registry.k8s.io/pause:3.10.1"
        subprocess.run(["docker", "pull", "-q", reference], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "run", "-d", "--name", name, reference], check=True, capture_output=True)
        top = subprocess.run(["docker", "top", name, "-o", "pid,uid,args"], capture_output=True, text=True, check=True)
        assert top.stdout.split("\n")[1].split()[1:] == ["65535", "/pause"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", reference], capture_output=True)


# --- containerd through a hosts.toml mirror ------------------------------------------------------------------------


def render_hosts_toml(entry: dict) -> str:
    """The containerd role's own hosts.toml template, rendered for one containerd_registry_mirrors entry."""
    role = project_root() / "roles/containerd"
    variables = yaml.safe_load((role / "vars/main.yml").read_text())
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(role / "templates"), keep_trailing_newline=True)
    environment.filters["to_json"] = json.dumps
    return environment.get_template("hosts.toml.j2").render(item=entry, **variables)


def lab_gateway(container: str) -> str:
    inspect = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True)
    return next(iter(json.loads(inspect.stdout)[0]["NetworkSettings"]["Networks"].values()))["Gateway"]


def in_container(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True, check=False)


def test_containerd_pulls_pause_by_its_upstream_name_from_the_mirror(
    pause_bundle: Path, tmp_path: Path, lab_host_factory: Callable[..., str]
) -> None:
    container = lab_host_factory("images-containerd", image="debian13")
    installed = in_container(
        container, "sh", "-c", "apt-get update -q && apt-get install -y -q --no-install-recommends containerd"
    )
    assert installed.returncode == 0, installed.stderr
    gateway = lab_gateway(container)
    with registry(gateway, tmp_path / "storage") as address:
        images.push_images(pause_bundle, address)
        for entry in containerd_mirrors(address):
            # The upstream server would be tried if the mirror failed: point it at the mirror as well, so the test
            # never sends a request off this machine.
            hosts = render_hosts_toml(entry | {"server": f"http://{address}"})
            folder = f"/etc/containerd/certs.d/{entry['registry']}"
            subprocess.run(
                ["docker", "exec", "-i", container, "sh", "-c", f"mkdir -p {folder} && cat > {folder}/hosts.toml"],
                input=hosts,
                text=True,
                check=True,
            )
        pulled = in_container(
            container, "ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir", "/etc/containerd/certs.d", PAUSE
        )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    listed = in_container(container, "ctr", "-n", "k8s.io", "images", "list", "-q")
    assert PAUSE in listed.stdout.split()
    digest = in_container(container, "ctr", "-n", "k8s.io", "images", "list", f"name=={PAUSE}")
    assert read_manifest(pause_bundle).find("image", "registry.k8s.io/pause").digest in digest.stdout


# --- the Debian base: kube-proxy and calico/node -----------------------------------------------------------------

CALICO_NODE_STUB = """#!/bin/sh
# Stands in for calico-node: start-up writes the node name, the services run until stopped.
case "$1" in
    -startup) mkdir -p /var/lib/calico && echo node-1 > /var/lib/calico/nodename ;;
    -allocate-tunnel-addrs) [ "${2:-}" = -allocate-tunnel-addrs-run-once ] || while :; do sleep 1; done ;;
    *) while :; do sleep 1; done ;;
esac
"""
VXLAN_SERVICES = {
    "allocate-tunnel-addrs",
    "cni",
    "complete-startup",
    "felix",
    "monitor-addresses",
    "node-status-reporter",
}


@pytest.fixture(scope="module")
def debian_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """kube-proxy and calico/node on the real Debian base with stub binaries, loaded into Docker under test tags."""
    require("skopeo", "docker", "debootstrap")
    stubs = tmp_path_factory.mktemp("stubs")
    (stubs / "calico-node").write_text(CALICO_NODE_STUB)
    (stubs / "kube-proxy").write_text('#!/bin/sh\necho kube-proxy stub "$@"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    builder = images.ImageBuilder(
        images.binaries_in(stubs), cache=tmp_path_factory.mktemp("cache"), debian_base=build_debian_base()
    )
    specs = (
        image_specs.kubeadm_images({"registry.k8s.io/kube-proxy": "v1.35.4"}) + image_specs.calico_images("3.31.0")[:1]
    )
    tags = {}
    for spec in specs:
        tag = f"sensorstack-test/{spec.slug}:latest"
        skopeo("copy", f"oci-archive:{builder.build(spec).archive}", f"docker-daemon:{tag}")
        tags[spec.name.path] = tag
    yield tags
    for tag in tags.values():
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def docker_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", *args], capture_output=True, text=True, check=False)


def test_kube_proxy_is_the_entrypoint(debian_images: dict[str, str]) -> None:
    ran = docker_run(debian_images["kube-proxy"], "--version")
    assert ran.stdout.strip() == "kube-proxy stub --version"


@pytest.mark.parametrize(("backend", "version"), [("legacy", "(legacy)"), ("nft", "(nf_tables)")])
def test_iptables_follows_the_backend_holding_kubelets_hint(
    debian_images: dict[str, str], backend: str, version: str
) -> None:
    # The container's own network namespace: the chain vanishes with it and the host's tables are not touched.
    script = f"iptables-{backend} -t mangle -N KUBE-IPTABLES-HINT && iptables -V && readlink /usr/sbin/iptables-save"
    ran = docker_run("--cap-add=NET_ADMIN", "--entrypoint=sh", debian_images["kube-proxy"], "-c", script)
    assert ran.returncode == 0, ran.stderr
    assert version in ran.stdout
    assert ran.stdout.split()[-1] == f"xtables-{backend}-multi"


def test_calico_node_refuses_a_bgp_backend_it_has_no_bird_for(debian_images: dict[str, str]) -> None:
    ran = docker_run("-e", "CALICO_NETWORKING_BACKEND=bird", debian_images["calico/node"])
    assert ran.returncode == 1
    assert "needs BIRD" in ran.stderr


def wait_for(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_calico_node_supervises_felix_and_its_helpers_with_runit(debian_images: dict[str, str]) -> None:
    name = "sensorstack-test-calico-node"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-e", "CALICO_NETWORKING_BACKEND=vxlan", debian_images["calico/node"]],
        check=True,
        capture_output=True,
    )
    try:

        def felix() -> str:
            ps = in_container(name, "ps", "-eo", "pid=,args=").stdout.splitlines()
            return next((line.split()[0] for line in ps if line.endswith("calico-node -felix")), "")

        assert wait_for(lambda: felix() != ""), in_container(name, "ps", "-ef").stdout
        enabled = in_container(name, "ls", "/etc/service/enabled").stdout.split()
        assert set(enabled) == VXLAN_SERVICES
        environment = in_container(name, "sh", "-c", "tr '\\0' '\\n' < /proc/" + felix() + "/environ").stdout
        assert "FELIX_FELIXHOSTNAME=node-1" in environment.split()
        first = felix()
        in_container(name, "kill", first)
        assert wait_for(lambda: felix() not in ("", first)), "runit did not start felix again"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


# --- file capabilities survive the whole way ---------------------------------------------------------------------

BIND_53 = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(53)};
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("bind :53");
        return 1;
    }
    printf("bound :53 as uid %d\n", getuid());
    return 0;
}
"""


def test_coredns_binds_port_53_as_nonroot_through_its_file_capability(tmp_path: Path) -> None:
    """CoreDNS runs as 65532 and binds :53 only thanks to cap_net_bind_service on /coredns (a stand-in here)."""
    require("skopeo", "docker-registry", "docker", "gcc", "debootstrap")
    (tmp_path / "bind.c").write_text(BIND_53)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp_path / "coredns"), str(tmp_path / "bind.c")], check=True)
    builder = images.ImageBuilder(
        {"coredns": tmp_path / "coredns"}, cache=tmp_path / "cache", debian_base=build_debian_base()
    )
    bundle = tmp_path / "bundle"
    built = builder.build_all(image_specs.kubeadm_images({"registry.k8s.io/coredns/coredns": "v1.13.1"}))
    Manifest(source="test", versions={}, artifacts=images.save_images(built, bundle)).write(bundle)
    with registry("127.0.0.1", tmp_path / "storage") as address:
        images.push_images(bundle, address)
        reference = f"{address}/registry.k8s.io/coredns/coredns:v1.13.1"
        subprocess.run(["docker", "pull", "-q", reference], check=True, capture_output=True)
    try:
        # Docker lets every user bind low ports unless told otherwise; restore the kernel's default.
        privileged_ports = "--sysctl=net.ipv4.ip_unprivileged_port_start=1024"
        ran = docker_run(privileged_ports, reference)
        assert ran.stdout.strip() == "bound :53 as uid 65532", ran.stderr
        without = docker_run(privileged_ports, "--cap-drop=NET_BIND_SERVICE", reference)
        assert without.returncode != 0
    finally:
        subprocess.run(["docker", "rmi", reference], capture_output=True)
