"""What the docker role leaves on a host, read back from the host and from the daemons themselves.

Expected values come from the scenario's inventory over the role's defaults, so the tests follow what the role
was asked for. tests/integration/test_docker_verifier.py runs this file against an unconverged host, where every
test must fail.

The lab's hosts are containers whose /proc/sys is read-only, so Docker cannot set up a bridged network for a
container there; the containers started here have no network, which has nothing to do with the role.
"""

from __future__ import annotations

import json
import secrets
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles/docker"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
ROLE_VARS = yaml.safe_load((ROLE / "vars/main.yml").read_text())
IMAGE = "sensorstack-test/busybox:verify"


@pytest.fixture(scope="module")
def expected(host) -> dict[str, Any]:
    variables = host.ansible.get_variables()
    return DEFAULTS | {key: value for key, value in variables.items() if key.startswith("docker_")}


@pytest.fixture(scope="module")
def info(host) -> dict[str, Any]:
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


@pytest.fixture(scope="module")
def image(host) -> str:
    """An image made on the host from its static busybox (installed by prepare.yml), imported without a registry."""
    host.check_output(
        'set -e; root=$(mktemp -d); mkdir "$root/bin"; cp /bin/busybox "$root/bin/busybox"; '
        f'tar -C "$root" -c . | docker import - {IMAGE}; rm -rf "$root"'
    )
    return IMAGE


def test_docker_and_containerd_run_and_start_at_boot(host) -> None:
    for name in (ROLE_VARS["docker_service"], "containerd"):
        service = host.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


def test_containers_get_the_systemd_cgroup_driver(info, expected) -> None:
    assert info["CgroupDriver"] == expected["docker_cgroup_driver"] == "systemd"


def test_docker_logs_with_the_configured_driver(info, expected) -> None:
    assert info["LoggingDriver"] == expected["docker_log_driver"]


def test_docker_hub_mirrors_are_the_configured_ones(info, expected) -> None:
    assert info["RegistryConfig"]["Mirrors"] == [
        mirror.rstrip("/") + "/" for mirror in expected["docker_registry_mirrors"]
    ]


def test_docker_keeps_its_data_in_the_configured_root(info, expected) -> None:
    assert info["DockerRootDir"] == (expected["docker_data_root"] or "/var/lib/docker")
    assert info["Driver"] == "overlay2"


def test_further_daemon_options_are_applied(info, expected) -> None:
    assert info["LiveRestoreEnabled"] is expected["docker_daemon_options"].get("live-restore", False)


def test_a_container_runs_from_an_image_made_here(host, image) -> None:
    token = secrets.token_hex(8)
    run = host.run(f"docker run --rm --network none {image} /bin/busybox echo {token}")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == token


def test_containers_get_the_configured_log_options(host, image, expected) -> None:
    name = f"sensorstack-test-{secrets.token_hex(4)}"
    host.check_output(f"docker create --network none --name {name} {image} /bin/busybox true")
    try:
        log_config = json.loads(
            host.check_output(f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {name}")
        )
    finally:
        host.run(f"docker rm --force {name}")
    assert log_config == {"Type": expected["docker_log_driver"], "Config": expected["docker_log_options"]}


def test_daemon_json_holds_exactly_the_configured_settings(host, expected) -> None:
    daemon_json = host.file(ROLE_VARS["docker_daemon_json"])
    assert daemon_json.user == "root"
    assert daemon_json.mode == 0o644
    wanted = {
        "exec-opts": [f"native.cgroupdriver={expected['docker_cgroup_driver']}"],
        "log-driver": expected["docker_log_driver"],
        "log-opts": expected["docker_log_options"],
        "registry-mirrors": expected["docker_registry_mirrors"],
        "data-root": expected["docker_data_root"],
    }
    wanted = {key: value for key, value in wanted.items() if value not in ([], {}, "")}
    assert json.loads(daemon_json.content_string) == wanted | expected["docker_daemon_options"]


def test_the_docker_users_are_in_the_docker_group(host, expected) -> None:
    assert expected["docker_users"], "the scenario must name a user to test this"
    for name in expected["docker_users"]:
        assert ROLE_VARS["docker_group"] in host.user(name).groups, name


def test_containerd_is_ready_for_the_kubelet(host) -> None:
    """The role brings containerd configured for Kubernetes, as the containerd role does."""
    plugins = host.check_output("ctr --address /run/containerd/containerd.sock plugins ls")
    assert ["io.containerd.grpc.v1", "cri", "linux/amd64", "ok"] in [line.split()[:4] for line in plugins.splitlines()]
    effective = tomllib.loads(host.check_output("containerd config dump"))
    runtime = "io.containerd.grpc.v1.cri" if effective["version"] == 2 else "io.containerd.cri.v1.runtime"
    assert effective["plugins"][runtime]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
