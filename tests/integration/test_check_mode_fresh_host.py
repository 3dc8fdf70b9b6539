"""Check mode (`sensorstack check`, site.yml --check) on an edge host nothing has touched yet: it says what a run
would do and fails nowhere, although the packages it would install, and so their units, directories and servers,
do not exist. And it changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import run_playbook, served_on_lab_gateway, write_inventory

STACK: dict[str, Any] = {
    "sensorstack_cluster_enabled": False,
    "sensorstack_stack_components": ["mosquitto", "telegraf", "influxdb", "grafana"],
    # Any executable on the controller: check mode copies nothing.
    "telegraf_install_source": "binary",
    "telegraf_binary_src": "/bin/true",
    "mosquitto_users": [{"name": "telegraf", "password": "mqtt-telegraf-pw"}],
    "influxdb_admin_password": "vaulted-admin-pw",
    "influxdb_databases": [{"name": "telemetry"}],
    "influxdb_users": [
        {"name": "telegraf", "password": "influx-telegraf-pw"},
        {"name": "grafana", "password": "influx-grafana-pw"},
    ],
    "grafana_admin_password": "vaulted-grafana-admin-pw",
    # Grafana's repository stands on the lab network's gateway (below): check mode fetches the key to compare it.
    "grafana_apt_key_fingerprint": "E59E 4B3D 3EDD BE32 08E4  99FC 07C3 1312 D6A6 AD00",
    "grafana_api_folders": [{"uid": "lab-operations", "title": "Lab operations"}],
}
SIGNING_KEY = (Path(__file__).resolve().parents[1] / "unit/data/openpgp/vendor.asc").read_bytes()


@pytest.fixture(scope="module")
def grafana_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Grafana's apt repository as check mode sees it: its signing key, and nothing else (check mode downloads no
    package list)."""
    folder = tmp_path_factory.mktemp("grafana-repository")
    (folder / "gpg.key").write_bytes(SIGNING_KEY)
    with served_on_lab_gateway(folder) as url:
        yield url


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


def test_check_mode_on_a_fresh_edge_host_reports_the_changes_and_makes_none(
    fresh_edge: str, grafana_repository: str, tmp_path: Path
) -> None:
    assert not installed(fresh_edge, "mosquitto") and not installed(fresh_edge, "influxdb")
    repository = {
        "grafana_apt_repository_url": grafana_repository,
        "grafana_apt_key_url": f"{grafana_repository}/gpg.key",
    }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                **STACK,
                **repository,
            },
            "children": {"sensorstack": {"children": {"edge": {"hosts": {"edge1": {"ansible_host": fresh_edge}}}}}},
        }
    }

    run = run_playbook("site.yml", write_inventory(tmp_path, inventory), "--check")

    assert run.returncode == 0, run.output[-6000:]
    recap = run.recap()["edge1"]
    assert recap["failed"] == 0 and recap["changed"] > 0, recap
    output = " ".join(run.output.split())
    assert "the directory of /etc/mosquitto/passwd does not exist; check mode goes on" in output
    # Grafana: no unit to start, no server to ask for the admin password or the API objects, which wait for a run.
    assert "Grafana is not installed yet (check mode only said it would be): a run converges the 1 folders" in output
    for package in ("mosquitto", "influxdb", "grafana"):
        assert not installed(fresh_edge, package), package
    for folder in ("/etc/mosquitto", "/etc/grafana"):
        listing = subprocess.run(["docker", "exec", fresh_edge, "ls", folder], capture_output=True)
        assert listing.returncode != 0, f"check mode created {folder}"
