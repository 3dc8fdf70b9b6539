"""The grafana role's systemd platform end to end on a fresh Debian 13 lab host, from an apt repository laid out and
signed as a real one, served on the lab network's gateway only.

Grafana is not packaged here (and its licence keeps the project from building it), so the repository holds a package
named grafana that installs the lab's Grafana stand-in (tests/integration/grafana_package.py: the project's Grafana
API double, under Grafana's paths, unit, account and conffile). Everything of the role runs for real against it: the
signing key pinned by fingerprint, the deb822 source, the held package, the secrets directory, grafana.ini, the
provisioning files, the unit, the admin password (at creation from $__file, later through `grafana cli`), the
provisioning reload and an object converged through the API. The tests run in file order against one host.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorstack.bundle.versions import load_versions

from .conftest import PlaybookRun, SignedRepository, run_role_on_lab_host, signed_repository
from .grafana_package import build_grafana_standin_deb

pytestmark = pytest.mark.lab

HOST = "grafana-systemd"
FIRST_PASSWORD = "vaulted-admin-first-3c8e"
SECOND_PASSWORD = "vaulted-admin-second-91d2"
READER_PASSWORD = "vaulted-reader-5f07"
SMTP_PASSWORD = "vaulted-smtp-a4b6"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedRepository]:
    work = tmp_path_factory.mktemp("grafana-repository")
    version = load_versions()["sensorstack_grafana_version"]
    package = build_grafana_standin_deb(version, work / "debs")
    with signed_repository(work, [package], ".".join(version.split(".")[:2]), version) as served:
        yield served


@pytest.fixture(scope="module")
def host(lab_host_factory, repository: SignedRepository) -> str:
    return lab_host_factory(HOST, "debian13")


def apply_role(
    host: str, repository: SignedRepository, directory: Path, *options: str, **variables: Any
) -> PlaybookRun:
    settings = {
        "grafana_admin_password": FIRST_PASSWORD,
        "grafana_apt_repository_url": repository.url,
        # A flat repository, as pkgs.k8s.io's: the suite is its folder, without components.
        "grafana_apt_suite": "/",
        "grafana_apt_components": [],
        "grafana_apt_key_url": repository.key_url,
        "grafana_apt_key_fingerprint": repository.fingerprint,
        "grafana_influxdb_url": "http://127.0.0.1:8086",
        "grafana_influxdb_database": "telemetry",
        "grafana_influxdb_password": READER_PASSWORD,
        "grafana_secrets": {"smtp_password": SMTP_PASSWORD},
        "grafana_ini": {"smtp": {"enabled": False, "password": "$__file{/etc/grafana/secrets/smtp_password}"}},
        "grafana_api_folders": [{"uid": "lab-operations", "title": "Lab operations"}],
    }
    return run_role_on_lab_host("sensorstack.iot.grafana", HOST, host, directory, settings | variables, *options)


def api(host: str, path: str, password: str) -> tuple[int, Any]:
    """GET on Grafana's API from the host itself, as the admin."""
    script = (
        "import base64, json, sys, urllib.error, urllib.request\n"
        "request = urllib.request.Request('http://127.0.0.1:3000' + sys.argv[1])\n"
        "request.add_header('Authorization', 'Basic ' + base64.b64encode(sys.stdin.read().encode()).decode())\n"
        "try:\n"
        "    answer = urllib.request.urlopen(request, timeout=10)\n"
        "    print(answer.status, answer.read().decode())\n"
        "except urllib.error.HTTPError as error:\n"
        "    print(error.code, 'null')\n"
    )
    shown = subprocess.run(
        ["docker", "exec", "-i", host, "python3", "-c", script, path],
        input=f"admin:{password}",
        capture_output=True,
        text=True,
        check=True,
    )
    status, body = shown.stdout.split(" ", 1)
    return int(status), json.loads(body)


def on_host(host: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=True).stdout


def test_a_fresh_host_gets_grafana_running_with_its_vaulted_admin_and_provisioned_objects(
    host: str, repository: SignedRepository, tmp_path: Path
) -> None:
    run = apply_role(host, repository, tmp_path)

    assert run.returncode == 0, run.output[-6000:]
    assert on_host(host, "systemctl", "is-active", "grafana-server").strip() == "active"
    assert on_host(host, "apt-mark", "showhold").split() == ["grafana"]
    status, user = api(host, "/api/user", FIRST_PASSWORD)
    assert (status, user["login"]) == (200, "admin")
    status, datasource = api(host, "/api/datasources/uid/sensorstack-influxdb", FIRST_PASSWORD)
    assert (status, datasource["url"], datasource["readOnly"]) == (200, "http://127.0.0.1:8086", True)
    assert api(host, "/api/folders/lab-operations", FIRST_PASSWORD)[1]["title"] == "Lab operations"
    assert "smtp_password" in on_host(host, "ls", "/etc/grafana/secrets")
    for secret in (FIRST_PASSWORD, READER_PASSWORD, SMTP_PASSWORD):
        assert secret not in run.output
        assert secret not in on_host(host, "cat", "/etc/grafana/grafana.ini")


def test_a_second_run_changes_nothing(host: str, repository: SignedRepository, tmp_path: Path) -> None:
    run = apply_role(host, repository, tmp_path)

    assert run.returncode == 0, run.output[-6000:]
    assert run.recap()[HOST]["changed"] == 0, run.output[-6000:]


def test_a_check_with_diff_shows_no_credential_written_in_the_clear(
    host: str, repository: SignedRepository, tmp_path: Path
) -> None:
    """systemd allows a credential in grafana.ini or a provisioned datasource in the clear; `sensorstack check`
    (check mode and diff) must still not print it."""
    clear = "clear-smtp-password-77e1"
    run = apply_role(
        host,
        repository,
        tmp_path,
        "--check",
        "--diff",
        grafana_ini={"smtp": {"enabled": False, "password": clear}},
        grafana_datasources=[
            {"name": "Other", "type": "influxdb", "url": "http://127.0.0.3:8086", "secureJsonData": {"password": clear}}
        ],
    )

    assert run.returncode == 0, run.output[-6000:]
    assert "changed: [grafana-systemd]" in run.output, run.output[-6000:]
    assert clear not in run.output


def test_a_changed_datasource_setting_reaches_the_running_grafana(
    host: str, repository: SignedRepository, tmp_path: Path
) -> None:
    run = apply_role(host, repository, tmp_path, grafana_influxdb_url="http://127.0.0.2:8086")

    assert run.returncode == 0, run.output[-6000:]
    # No diff of the provisioning file in a run without --diff.
    assert "+++ after" not in run.output, run.output[-6000:]
    status, datasource = api(host, "/api/datasources/uid/sensorstack-influxdb", FIRST_PASSWORD)
    assert (status, datasource["url"]) == (200, "http://127.0.0.2:8086")


def test_a_new_vaulted_admin_password_reaches_the_grafana_that_kept_the_old_one(
    host: str, repository: SignedRepository, tmp_path: Path
) -> None:
    run = apply_role(
        host, repository, tmp_path, grafana_admin_password=SECOND_PASSWORD, grafana_influxdb_url="http://127.0.0.2:8086"
    )

    assert run.returncode == 0, run.output[-6000:]
    assert api(host, "/api/user", SECOND_PASSWORD)[0] == 200
    assert api(host, "/api/user", FIRST_PASSWORD)[0] == 401
    assert SECOND_PASSWORD not in run.output
