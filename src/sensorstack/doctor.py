"""Checks of the controller and of the hosts an inventory names, each with what to do when it fails."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from sensorstack import checkout_root, collection_pins
from sensorstack.inventory import connections
from sensorstack.lab.containers import DOCKER_CONNECTIONS
from sensorstack.runner import ping_hosts


def declared_range(name: str) -> SpecifierSet:
    """The range of a dependency this package declares in pyproject.toml, read from its installed metadata."""
    for line in importlib.metadata.requires("sensorstack") or []:
        requirement = Requirement(line)
        if requirement.name == name and requirement.marker is None:
            return requirement.specifier
    raise LookupError(f"the sensorstack package declares no {name} requirement")


def supported_ansible_core() -> SpecifierSet:
    """The ansible-core range this package declares in pyproject.toml."""
    return declared_range("ansible-core")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_ansible() -> Check:
    version = importlib.metadata.version("ansible-core")
    supported = supported_ansible_core()
    ok = version in supported
    return Check("ansible-core", ok, version, "" if ok else f"install ansible-core{supported}")


def check_collections() -> Check:
    wrong = collection_pins.mismatches()
    if not wrong:
        return Check("collections", True, f"{len(collection_pins.pinned())} pinned collections installed")
    detail = ", ".join(f"{name} {found or 'missing'} (pinned {pin})" for name, (pin, found) in sorted(wrong.items()))
    fix = (
        "ansible-galaxy collection install -r collections/requirements.yml, or scripts/install-collections"
        if checkout_root() is not None
        else "pip install the release of the ansible package that carries these versions (into "
        f"{collection_pins.collections_folder()})"
    )
    return Check("collections", False, detail, fix)


def check_toml_writer() -> Check:
    try:
        importlib.metadata.version("tomli-w")
    except importlib.metadata.PackageNotFoundError:
        return Check("tomli-w", False, "missing (the to_toml filter needs it)", "pip install tomli-w")
    return Check("tomli-w", True, importlib.metadata.version("tomli-w"))


def check_kubernetes_client() -> Check:
    """The kubernetes Python client, which kubernetes.core's modules import on the controller (role calico)."""
    supported = declared_range("kubernetes")
    try:
        version = importlib.metadata.version("kubernetes")
    except importlib.metadata.PackageNotFoundError:
        return Check(
            "kubernetes",
            False,
            "missing (kubernetes.core's modules need it: role calico)",
            f"pip install 'kubernetes{supported}'",
        )
    ok = version in supported
    return Check("kubernetes", ok, version, "" if ok else f"pip install 'kubernetes{supported}'")


def check_docker(needed: bool) -> Check | None:
    if not needed:
        return None
    if shutil.which("docker") is None:
        return Check(
            "docker",
            False,
            "the inventory uses the docker connection but docker is not installed",
            "scripts/bootstrap-host",
        )
    answer = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if answer.returncode != 0:
        return Check("docker", False, "Docker Engine does not answer", "start dockerd (scripts/bootstrap-host)")
    return Check("docker", True, f"Docker Engine {answer.stdout.strip()}")


def run_checks(inventory: Path, vault_password_file: Path | None = None) -> list[Check]:
    checks = [check_ansible(), check_collections(), check_toml_writer(), check_kubernetes_client()]
    hosts = connections(inventory, vault_password_file)
    docker = check_docker(any(conn in DOCKER_CONNECTIONS for conn in hosts.values()))
    if docker:
        checks.append(docker)
    if docker is None or docker.ok:
        for host, reachable in sorted(ping_hosts(inventory, vault_password_file).items()):
            how = hosts.get(host) or "ssh"
            checks.append(
                Check(
                    f"host {host}",
                    reachable,
                    f"reachable over {how}" if reachable else f"not reachable over {how}",
                    ""
                    if reachable
                    else "check the host is up and the connection settings in the inventory"
                    + (" (sensorstack lab up)" if how in DOCKER_CONNECTIONS else ""),
                )
            )
    return checks
