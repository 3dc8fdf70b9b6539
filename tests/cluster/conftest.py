"""The cluster tier: real kubeadm, kubelet and containerd on lab nodes, installed from the served bundle.

One bundle server and one set of lab nodes serve every test of the session. Under CI=true a missing bundle or
Docker Engine fails the tier instead of skipping it: a skipped cluster test must never read as a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensorstack import project_root
from sensorstack.bundle.cache import cache_root
from sensorstack.bundle.manifest import read_manifest, verify
from sensorstack.bundle.serve import BundleServer
from sensorstack.lab import containers
from tests.tiers import unavailable

CLUSTER_INVENTORY = project_root() / "inventories/cluster"
# The tier's own ports, so a `bundle serve` a developer left running on the defaults does not collide.
HTTP_PORT = 18080
REGISTRY_PORT = 15000


@dataclass(frozen=True)
class Node:
    name: str
    container: str

    def run(self, *command: str, check: bool = True, timeout: float = 600, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["docker", "exec", "-i", self.container, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def sh(self, script: str, check: bool = True, timeout: float = 600) -> str:
        return self.run("sh", "-euc", script, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def bundle() -> Path:
    path = Path(os.environ.get("SENSORSTACK_BUNDLE") or cache_root() / "bundle")
    if not (path / "bundle.json").is_file():
        unavailable("cluster", f"no bundle at {path}: run `make bundle` (sensorstack bundle build)")
    problems = verify(path)
    assert problems == [], f"the bundle at {path} is damaged: {problems}"
    return path


@pytest.fixture(scope="session")
def lab_hosts() -> list[containers.LabHost]:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        unavailable("cluster", "no Docker Engine answers (make host)")
    return containers.hosts_from_inventory(CLUSTER_INVENTORY)


@pytest.fixture(scope="session")
def mirror(bundle: Path, lab_hosts: list[containers.LabHost]) -> Iterator[BundleServer]:
    """The bundle served on the lab network's gateway: the only address lab nodes reach the host by."""
    containers.ensure_network()
    server = BundleServer(bundle, containers.network_gateway(), HTTP_PORT, REGISTRY_PORT)
    with server:
        yield server


@pytest.fixture(scope="session")
def manifest(bundle: Path):  # type: ignore[no-untyped-def]
    return read_manifest(bundle)
