"""InfluxDB as the role leaves it: the service, its configuration, and the declared schema read back over HTTP."""

from __future__ import annotations

import json

import pytest

ADMIN = ("admin", "molecule-Admin-42")


def query(host, statement: str, user: tuple[str, str] = ADMIN) -> dict:
    """Ask the server from the host itself, with Python (the only thing the role requires there).

    The credentials are the scenario's throwaway test values, handed to the script as environment variables.
    """
    script = (
        "import base64, json, os, urllib.parse, urllib.request, urllib.error\n"
        "url = 'http://127.0.0.1:8086/query?' + urllib.parse.urlencode({'q': os.environ['Q']})\n"
        "request = urllib.request.Request(url)\n"
        "token = base64.b64encode((os.environ['U'] + ':' + os.environ['P']).encode()).decode()\n"
        "request.add_header('Authorization', 'Basic ' + token)\n"
        "try:\n"
        "    print(urllib.request.urlopen(request, timeout=10).read().decode())\n"
        "except urllib.error.HTTPError as error:\n"
        "    print(json.dumps({'status': error.code}))\n"
    )
    command = host.run("env Q=%s U=%s P=%s python3 -c %s", statement, user[0], user[1], script)
    assert command.rc == 0, command.stderr
    return json.loads(command.stdout)


def rows(host, statement: str) -> list[dict]:
    result = query(host, statement)["results"][0]
    return [dict(zip(s["columns"], v, strict=True)) for s in result.get("series", []) for v in s.get("values", [])]


def test_the_service_runs_and_listens(host) -> None:
    assert host.service("influxdb").is_running
    assert host.service("influxdb").is_enabled
    assert host.socket("tcp://0.0.0.0:8086").is_listening or host.socket("tcp://:::8086").is_listening
    assert host.socket("tcp://127.0.0.1:8088").is_listening


def test_the_configuration_is_private_and_has_auth_on(host) -> None:
    config = host.file("/etc/influxdb/influxdb.conf")
    assert config.mode == 0o640
    assert config.group == "influxdb"
    assert "auth-enabled = true" in config.content_string
    lines = config.content_string.splitlines()
    assert lines[0].startswith("# Managed by Ansible")
    assert "reporting-disabled = true" in lines, "every setting must be on a line of its own"


def test_anonymous_and_wrong_credentials_are_refused(host) -> None:
    assert query(host, "SHOW DATABASES", ("nobody", "nothing")) == {"status": 401}
    assert query(host, "SHOW DATABASES", ("admin", "wrong-password")) == {"status": 401}


def test_the_declared_retention_policies_exist(host) -> None:
    policies = {row["name"]: row for row in rows(host, "SHOW RETENTION POLICIES ON telemetry")}
    assert policies["raw"]["duration"] == "720h0m0s"
    assert policies["raw"]["default"] is True
    assert policies["rollup"]["shardGroupDuration"] == "168h0m0s"
    assert policies["autogen"]["duration"] == "17472h0m0s"
    assert policies["autogen"]["default"] is False


def test_the_declared_continuous_query_exists(host) -> None:
    queries = {row["name"]: row["query"] for row in rows(host, "SHOW CONTINUOUS QUERIES")}
    assert "INTO telemetry.rollup.:MEASUREMENT" in queries["hourly"]


@pytest.mark.parametrize(
    ("user", "password", "privilege"),
    [("telegraf", "molecule-Telegraf-1", "WRITE"), ("grafana", "molecule-Grafana-1", "READ")],
)
def test_the_declared_users_log_in_with_their_grants(host, user: str, password: str, privilege: str) -> None:
    # A refused login comes back as {"status": 401}; an accepted one as results without an error.
    answer = query(host, "SHOW DATABASES", (user, password))
    assert "status" not in answer, answer
    assert "error" not in answer["results"][0], answer
    assert rows(host, f'SHOW GRANTS FOR "{user}"') == [{"database": "telemetry", "privilege": privilege}]
