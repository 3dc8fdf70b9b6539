"""The grafana role's secrets directory under systemd, on a lab container: the vaulted passwords and grafana_secrets
as files only Grafana's group reads, a file nothing declares removed, and Grafana restarted when a file of
grafana_secrets changes (grafana.ini reads them through $__file only at start). Grafana itself is not packaged here,
so a stand-in unit named grafana-server takes the restart; nothing else of the role runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, run_playbook, write_inventory

ADMIN_PASSWORD = "vaulted-admin-5e1a"
READER_PASSWORD = "vaulted-reader-0c4d"
FIRST_SMTP_PASSWORD = "vaulted-smtp-first-77f0"
SECOND_SMTP_PASSWORD = "vaulted-smtp-second-2b93"
SECRETS_DIR = "/etc/grafana/secrets"
STAND_IN_UNIT = """[Unit]
Description=Stand-in for the Grafana unit: only its restarts are observed

[Service]
ExecStart=/bin/sleep infinity
"""


def docker_exec(container: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def container(lab_host_factory) -> str:
    name = lab_host_factory("grafana-secrets", "debian13")
    docker_exec(name, "groupadd", "--system", "grafana")
    subprocess.run(
        ["docker", "exec", "-i", name, "tee", "/etc/systemd/system/grafana-server.service"],
        input=STAND_IN_UNIT,
        capture_output=True,
        text=True,
        check=True,
    )
    docker_exec(name, "systemctl", "daemon-reload")
    docker_exec(name, "systemctl", "start", "grafana-server")
    return name


def place_secrets(container: str, directory: Path, secrets: dict[str, str]) -> PlaybookRun:
    play: dict[str, Any] = {
        "name": "Place Grafana's secrets",
        "hosts": "edge",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the role's secrets tasks",
                "ansible.builtin.include_role": {"name": "sensorstack.iot.grafana", "tasks_from": "secrets"},
            }
        ],
    }
    playbook = directory / "play.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    host_vars = {
        "ansible_host": container,
        "grafana_admin_password": ADMIN_PASSWORD,
        "grafana_influxdb_password": READER_PASSWORD,
        "grafana_secrets": secrets,
    }
    inventory = {
        "all": {
            "vars": {"ansible_connection": LAB_CONNECTION, "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {"edge": {"hosts": {"edge1": host_vars}}},
        }
    }
    return run_playbook(str(playbook), write_inventory(directory, inventory))


def invocation(container: str) -> str:
    return docker_exec(container, "systemctl", "show", "--property=InvocationID", "--value", "grafana-server").strip()


def test_secrets_are_placed_for_grafana_alone_and_a_changed_one_restarts_it(container: str, tmp_path: Path) -> None:
    docker_exec(container, "sh", "-euc", f"mkdir -p {SECRETS_DIR} && echo stale > {SECRETS_DIR}/old_token")
    before = invocation(container)

    first = place_secrets(container, tmp_path, {"smtp_password": FIRST_SMTP_PASSWORD})
    assert first.returncode == 0, first.output
    assert docker_exec(container, "stat", "-c", "%U %G %a", SECRETS_DIR).split() == ["root", "grafana", "750"]
    files = docker_exec(container, "find", SECRETS_DIR, "-type", "f", "-printf", "%f %u %g %m\n").splitlines()
    assert sorted(files) == [
        "admin_password root grafana 640",
        "influxdb_password root grafana 640",
        "smtp_password root grafana 640",
    ]
    assert docker_exec(container, "cat", f"{SECRETS_DIR}/smtp_password") == FIRST_SMTP_PASSWORD
    assert docker_exec(container, "cat", f"{SECRETS_DIR}/admin_password") == ADMIN_PASSWORD
    restarted = invocation(container)
    assert restarted != before

    again = place_secrets(container, tmp_path, {"smtp_password": FIRST_SMTP_PASSWORD})
    assert again.returncode == 0, again.output
    assert again.recap()["edge1"]["changed"] == 0, again.output
    assert invocation(container) == restarted

    rotated = place_secrets(container, tmp_path, {"smtp_password": SECOND_SMTP_PASSWORD})
    assert rotated.returncode == 0, rotated.output
    assert docker_exec(container, "cat", f"{SECRETS_DIR}/smtp_password") == SECOND_SMTP_PASSWORD
    assert invocation(container) != restarted

    dropped = place_secrets(container, tmp_path, {})
    assert dropped.returncode == 0, dropped.output
    assert sorted(docker_exec(container, "ls", SECRETS_DIR).split()) == ["admin_password", "influxdb_password"]

    for run in (first, again, rotated, dropped):
        for value in (ADMIN_PASSWORD, READER_PASSWORD, FIRST_SMTP_PASSWORD, SECOND_SMTP_PASSWORD):
            assert value not in run.output
