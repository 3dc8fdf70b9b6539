"""influxdb_environment against a real influxd (Debian's 1.6.7): the way a credential reaches InfluxDB without
influxdb.conf (a ConfigMap on Kubernetes). [http] shared-secret, given as INFLUXDB_HTTP_SHARED_SECRET, turns on JWT
authentication: a token signed with it logs the admin in, one signed with another secret does not. The environment
is the role's own rendering (stack_environment_strings, the text both the unit's environment file and the Secret
hold)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.filter.stack import environment_strings

from tests.tiers import needs

from .conftest import run_in_container, run_role_on_lab_host
from .influxdb_server import InfluxDBServer

INFLUXD = shutil.which("influxd")
pytestmark = needs(INFLUXD is None, "needs Debian's influxdb package (apt-get install influxdb)")

SECRET = 'jwt "signing" $ecret\\1'
ADMIN = ("admin", "admin-password-9f2c")


def token(username: str, secret: str) -> str:
    def encode(part: dict[str, object]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    signed = (
        encode({"alg": "HS256", "typ": "JWT"}) + b"." + encode({"username": username, "exp": int(time.time()) + 60})
    )
    signature = base64.urlsafe_b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).rstrip(b"=")
    return (signed + b"." + signature).decode()


def status_with_bearer(server: InfluxDBServer, bearer: str) -> int:
    request = urllib.request.Request(f"{server.url}/query?{urllib.parse.urlencode({'q': 'SHOW DATABASES'})}")
    request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def server() -> Iterator[InfluxDBServer]:
    assert INFLUXD is not None
    environment = environment_strings({"INFLUXDB_HTTP_SHARED_SECRET": SECRET})
    influxd = InfluxDBServer(INFLUXD, environment=environment).start()
    try:
        created = influxd.query(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES")
        assert "error" not in json.dumps(created), created
        yield influxd
    finally:
        influxd.stop()


def test_a_token_signed_with_the_shared_secret_from_the_environment_logs_in(server: InfluxDBServer) -> None:
    assert status_with_bearer(server, token(ADMIN[0], SECRET)) == 200


def test_a_token_signed_with_another_secret_is_refused(server: InfluxDBServer) -> None:
    assert status_with_bearer(server, token(ADMIN[0], "another secret")) == 401


# --- The role on a systemd host --------------------------------------------------------------------------------


def influxd_environment(container: str) -> dict[str, str]:
    """The environment the running influxd has, as systemd gave it from the unit's environment file."""
    script = "tr '\\0' '\\n' < /proc/$(systemctl show --property=MainPID --value influxdb)/environ"
    listing = run_in_container(container, script)
    return dict(line.split("=", 1) for line in listing.splitlines() if "=" in line)


def test_the_role_gives_influxd_the_environment_through_a_private_file_and_removes_it_when_dropped(
    lab_host_factory: Any, tmp_path: Path
) -> None:
    container = lab_host_factory("influxdb-environment", "debian13")
    settings = {"influxdb_admin_password": ADMIN[1], "influxdb_environment": {"INFLUXDB_HTTP_SHARED_SECRET": SECRET}}
    run = run_role_on_lab_host("sensorstack.iot.influxdb", "edge", container, tmp_path, settings)
    assert run.returncode == 0, run.output
    assert "signing" not in run.output, "the secret reached the output"
    assert run_in_container(container, "stat -c '%U %G %a' /etc/influxdb/influxdb.env") == "root root 600"
    # The package's own environment file is the operator's: the role leaves it alone.
    run_in_container(container, "echo 'INFLUXD_OPTS=' > /etc/default/influxdb")
    assert influxd_environment(container)["INFLUXDB_HTTP_SHARED_SECRET"] == SECRET

    again = run_role_on_lab_host("sensorstack.iot.influxdb", "edge", container, tmp_path, settings)
    assert again.returncode == 0, again.output
    assert again.recap()["edge"]["changed"] == 0, again.output

    # influxd parses a duration from a string only: the rejected file never replaces the one the server runs with.
    pid = run_in_container(container, "systemctl show --property=MainPID --value influxdb")
    config = run_in_container(container, "cat /etc/influxdb/influxdb.conf")
    broken = run_role_on_lab_host(
        "sensorstack.iot.influxdb",
        "edge",
        container,
        tmp_path,
        settings | {"influxdb_config_overrides": {"coordinator": {"query-timeout": 30}}},
    )
    assert broken.returncode != 0
    assert "missing unit in duration" in broken.output, broken.output
    assert run_in_container(container, "cat /etc/influxdb/influxdb.conf") == config
    assert run_in_container(container, "systemctl show --property=MainPID --value influxdb") == pid

    dropped = run_role_on_lab_host(
        "sensorstack.iot.influxdb", "edge", container, tmp_path, settings | {"influxdb_environment": {}}
    )
    assert dropped.returncode == 0, dropped.output
    assert "RUNNING HANDLER [sensorstack.iot.influxdb : Restart InfluxDB]" in dropped.output, dropped.output
    assert run_in_container(container, "test -e /etc/influxdb/influxdb.env && echo kept || echo gone") == "gone"
    assert run_in_container(container, "ls /etc/systemd/system/influxdb.service.d") == ""
    assert run_in_container(container, "cat /etc/default/influxdb") == "INFLUXD_OPTS="
    assert "INFLUXDB_HTTP_SHARED_SECRET" not in influxd_environment(container)
