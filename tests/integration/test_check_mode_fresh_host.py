"""Check mode (`sensorstack check`, site.yml --check) on an edge host nothing has touched yet: it says what a run
would do and fails nowhere, although the packages it would install, and so their units, directories and servers,
do not exist. And it changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import run_playbook, write_inventory

STACK: dict[str, Any] = {
    "sensorstack_cluster_enabled": False,
    "sensorstack_stack_components": ["mosquitto", "telegraf", "influxdb"],
    # Any executable on the controller: check mode copies nothing.
    "telegraf_install_source": "binary",
    "telegraf_binary_src": "/bin/true",
    "mosquitto_users": [{"name": "telegraf", "password": "mqtt-telegraf-pw"}],
    "influxdb_admin_password": "vaulted-admin-pw",
    "influxdb_databases": [{"name": "telemetry"}],
    "influxdb_users": [{"name": "telegraf", "password": "influx-telegraf-pw"}],
}


@pytest.fixture(scope="module")
def fresh_edge(lab_host_factory: Callable[..., str]) -> str:
    return lab_host_factory("check-edge", "debian13")


def installed(container: str, package: str) -> bool:
    shown = subprocess.run(
        ["docker", "exec", container, "dpkg-query", "--show", "--showformat=${db:Status-Abbrev}", package],
        capture_output=True,
        text=True,
    )
    return shown.stdout.startswith("ii")


def test_check_mode_on_a_fresh_edge_host_reports_the_changes_and_makes_none(fresh_edge: str, tmp_path: Path) -> None:
    assert not installed(fresh_edge, "mosquitto") and not installed(fresh_edge, "influxdb")
    inventory = {
        "all": {
            "vars": {"ansible_connection": LAB_CONNECTION, "ansible_python_interpreter": "/usr/bin/python3", **STACK},
            "children": {"sensorstack": {"children": {"edge": {"hosts": {"edge1": {"ansible_host": fresh_edge}}}}}},
        }
    }

    run = run_playbook("site.yml", write_inventory(tmp_path, inventory), "--check")

    assert run.returncode == 0, run.output[-6000:]
    recap = run.recap()["edge1"]
    assert recap["failed"] == 0 and recap["changed"] > 0, recap
    assert "the directory of /etc/mosquitto/passwd does not exist; check mode goes on" in " ".join(run.output.split())
    assert not installed(fresh_edge, "mosquitto") and not installed(fresh_edge, "influxdb")
    listing = subprocess.run(["docker", "exec", fresh_edge, "ls", "/etc/mosquitto"], capture_output=True)
    assert listing.returncode != 0, "check mode created the broker's folder"
