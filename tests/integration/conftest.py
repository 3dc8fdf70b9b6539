"""Fixtures that run Ansible against real lab containers (systemd in Docker, from the lab's base images)."""

from __future__ import annotations

import functools
import http.server
import ipaddress
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.bundle import aptrepo
from sensorstack.lab import containers, images
from sensorstack.lab.containers import LAB_CONNECTION
from tests.tiers import unavailable

from .ansible_module import ROOT, ansible_environment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder uses the lab's Docker Engine or real servers: mark it, so `-m lab` selects it (a
    pytestmark here would not: pytest reads it from test modules only)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.lab)


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """The PLAY RECAP counters per host."""
        counters = {}
        for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, flags=re.MULTILINE):
            counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", fields)}
        return counters


def run_playbook(playbook: str, inventory: Path, *extra: str) -> PlaybookRun:
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / playbook), *extra],
        cwd=ROOT,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    return PlaybookRun(result.returncode, result.stdout + result.stderr)


def write_inventory(directory: Path, inventory: dict) -> Path:
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def _require_docker() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        unavailable("integration", "needs a running Docker Engine (make host)")


@pytest.fixture(scope="session")
def lab_host_factory() -> Iterator:
    """Start throwaway lab containers (named sensorstack-test-*) and remove them at the end of the session."""
    _require_docker()
    started: list[str] = []

    def start(name: str, image: str = "debian12") -> str:
        images.build(images.recipe_for(image))
        host = containers.LabHost(inventory_name=name, container=f"sensorstack-test-{name}", image=image)
        containers.remove(host.container)
        containers.start(host)
        started.append(host.container)
        return host.container

    yield start
    for container in started:
        containers.remove(container)


def influxdb_edge_inventory(host: str, container: str) -> dict[str, Any]:
    """One edge host, a lab container, running InfluxDB alone: real module passwords flow, and nothing needs a
    repository out of reach. What the CLI and the installed wheel deploy."""
    return {
        "all": {
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                "sensorstack_cluster_enabled": False,
                "sensorstack_stack_components": ["influxdb"],
            },
            "children": {"sensorstack": {"children": {"edge": {"hosts": {host: {"ansible_host": container}}}}}},
        }
    }


def _container_network_settings(container: str) -> dict[str, Any]:
    inspect = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True)
    return next(iter(json.loads(inspect.stdout)[0]["NetworkSettings"]["Networks"].values()))


def container_address(container: str) -> str:
    """A container's default address, where clients on this machine reach its services."""
    return _container_network_settings(container)["IPAddress"]


def container_network(container: str) -> str:
    """The CIDR of the Docker network a container's default address lives on."""
    network = _container_network_settings(container)
    return str(ipaddress.ip_interface(f"{network['IPAddress']}/{network['IPPrefixLen']}").network)


def run_in_container(container: str, script: str, *arguments: str, shell: str = "sh") -> str:
    """Run a shell script (its arguments as $1 ...) in a lab container; its output, stripped. A failure fails."""
    done = subprocess.run(
        ["docker", "exec", container, shell, "-c", script, shell, *arguments], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def kubernetes_binaries() -> dict[str, Path]:
    """kubeadm, kubelet, kubectl, ... built from the pinned source by the bundle (seconds once `make bundle` ran)."""
    from sensorstack.bundle.cache import cache_root
    from sensorstack.bundle.components import build_kubernetes
    from sensorstack.bundle.versions import load_versions

    version = load_versions()["sensorstack_kubernetes_version"]
    return {name: Path(path) for name, path in build_kubernetes(version, cache_root()).binaries.items()}


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def served_on_lab_gateway(directory: Path) -> Iterator[str]:
    """A folder served over HTTP (an apt repository, a bundle) on the lab network's gateway only: reachable from the
    lab hosts, not from other machines. Yields its URL, without a trailing slash."""
    containers.ensure_network()
    gateway = containers.network_gateway()
    server = _QuietServer((gateway, 0), functools.partial(_QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{gateway}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class SignedRepository:
    """An apt repository laid out and signed as a vendor's, served on the lab gateway (signed_repository)."""

    url: str
    key_url: str
    fingerprint: str
    version: str


@contextmanager
def signed_repository(work: Path, debs: list[Path], minor: str, version: str) -> Iterator[SignedRepository]:
    """``debs`` in a flat apt repository signed with a key of its own, served on the lab network's gateway only;
    ``version`` is the packages' version, for the tests' pins."""
    key = aptrepo.ensure_signing_key(work / "key")
    folder = aptrepo.write_apt_repository(work / "apt", debs, minor, key.home)
    with served_on_lab_gateway(work / "apt") as served:
        url = f"{served}/{folder.relative_to(work / 'apt').as_posix()}"
        yield SignedRepository(url + "/", url + "/Release.key", key.fingerprint, version)


def run_role_on_lab_host(
    role: str, name: str, container: str, directory: Path, variables: dict[str, Any], *options: str
) -> PlaybookRun:
    """ansible-playbook of one play that runs ``role`` on one lab container (inventory name ``name``)."""
    playbook = directory / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": f"Run the role {role}", "hosts": "all", "roles": [role]}]))
    inventory = {
        "all": {
            "hosts": {name: {"ansible_host": container}},
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                **variables,
            },
        }
    }
    return run_playbook(str(playbook), write_inventory(directory, inventory), *options)
