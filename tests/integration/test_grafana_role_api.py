"""The grafana role's API step (tasks/api.yml) converges folders, datasources and dashboards, then changes nothing.

The role's API tasks run through ansible-playbook on localhost against the Grafana API double, exactly as they run
on a Grafana host against grafana_url: the first run creates everything, the second reports changed=0 and sends no
write, and an unreachable grafana_url fails after the health wait with a clear message.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.grafana_double import GrafanaDouble, JsonApi, basic_auth

from .ansible_module import ROOT, free_port, run_local_play

PASSWORD = "role-api-admin-password"
INFLUX_PASSWORD = "role-api-reader-secret"


@pytest.fixture
def double() -> Iterator[GrafanaDouble]:
    with GrafanaDouble(port=free_port(), password=PASSWORD) as server:
        yield server


def converge(
    grafana_url: str, workdir: Path, *options: str, steps: tuple[str, ...] = ("api",), **overrides: Any
) -> subprocess.CompletedProcess[str]:
    variables = {
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "grafana_url": grafana_url,
        "grafana_admin_password": PASSWORD,
        "grafana_api_wait_timeout": 4,
        "grafana_api_folders": [{"uid": "sites", "title": "Sites"}],
        "grafana_api_datasources": [
            {
                "name": "InfluxDB (API)",
                "uid": "influx-api",
                "type": "influxdb",
                "url": "http://influxdb.sensorstack.svc:8086",
                "user": "grafana",
                "json_data": {"dbName": "sensors", "httpMode": "POST"},
                "secure_json_data": {"password": INFLUX_PASSWORD},
            }
        ],
        "grafana_api_dashboards": [
            {"src": "dashboards/sensorstack-sensors.json", "uid": "sensors-api", "folder_uid": "sites"},
        ],
        **overrides,
    }
    play = [
        {
            "name": "Converge Grafana's API objects",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [
                {
                    "name": f"Run the role's {step} step",
                    "ansible.builtin.include_role": {"name": "grafana", "tasks_from": step},
                }
                for step in steps
            ],
        }
    ]
    return run_local_play(play, workdir, *options)


def recap(output: str) -> dict[str, int]:
    match = re.search(r"^localhost\s+:\s+(ok=.*)$", output, flags=re.MULTILINE)
    assert match, output
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_the_api_step_creates_everything_once_and_then_sends_no_write(double: GrafanaDouble, tmp_path: Path) -> None:
    first = converge(double.url, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["changed"] == 3
    api = JsonApi(double.url, basic_auth("admin", PASSWORD))
    assert api("GET", "/api/folders/sites")[1]["title"] == "Sites"
    dashboard = api("GET", "/api/dashboards/uid/sensors-api")[1]
    shipped = json.loads((ROOT / "roles/grafana/files/dashboards/sensorstack-sensors.json").read_text())
    assert dashboard["meta"]["folderUid"] == "sites" and dashboard["dashboard"]["panels"] == shipped["panels"]
    assert double.secrets_of("influx-api") == {"password": INFLUX_PASSWORD}
    assert INFLUX_PASSWORD not in first.stdout

    with double.recording() as requests:
        second = converge(double.url, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["changed"] == 0
    assert [f"{r.method} {r.path}" for r in requests if r.is_write] == []


def test_check_mode_while_the_admin_password_changes_says_so_instead_of_failing(
    double: GrafanaDouble, tmp_path: Path
) -> None:
    assert converge(double.url, tmp_path).returncode == 0
    with double.recording() as requests:
        checked = converge(
            double.url,
            tmp_path,
            "--check",
            steps=("admin_password", "api"),
            grafana_platform="systemd",
            grafana_admin_password="rotated-admin-password",
        )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "check mode does not compare them" in " ".join(checked.stdout.split())
    assert [f"{r.method} {r.path}" for r in requests if r.is_write] == []


def test_objects_declared_absent_are_removed(double: GrafanaDouble, tmp_path: Path) -> None:
    assert converge(double.url, tmp_path).returncode == 0
    removed = converge(
        double.url,
        tmp_path,
        grafana_api_folders=[{"uid": "sites", "state": "absent"}],
        grafana_api_datasources=[{"name": "InfluxDB (API)", "uid": "influx-api", "state": "absent"}],
        grafana_api_dashboards=[],
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    api = JsonApi(double.url, basic_auth("admin", PASSWORD))
    assert api("GET", "/api/folders/sites")[0] == 404
    assert api("GET", "/api/dashboards/uid/sensors-api")[0] == 404
    assert api("GET", "/api/datasources/uid/influx-api")[0] == 404


def test_an_unreachable_grafana_url_fails_after_the_health_wait(tmp_path: Path) -> None:
    failed = converge(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert failed.returncode != 0
    assert "Wait until Grafana's API answers at grafana_url" in failed.stdout
    assert "Connection refused" in failed.stdout


@pytest.mark.parametrize(
    ("checksum", "message"),
    [
        ("", "grafana_apt_key_fingerprint or grafana_apt_key_checksum must pin Grafana's apt signing key"),
        ("sha256:not-hex", "grafana_apt_key_checksum must be sha256:<hex>, got 'sha256:not-hex'"),
    ],
)
def test_an_unpinned_apt_key_is_refused_before_any_change(tmp_path: Path, checksum: str, message: str) -> None:
    variables = {
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "grafana_admin_password": PASSWORD,
        "grafana_apt_key_checksum": checksum,
    }
    play = [
        {
            "name": "Check the role's settings",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [
                {
                    "name": "Run the role's checks",
                    "ansible.builtin.include_role": {"name": "grafana", "tasks_from": "validate"},
                }
            ],
        }
    ]
    run = run_local_play(play, tmp_path)
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout
    assert recap(run.stdout)["changed"] == 0
