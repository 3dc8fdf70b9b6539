"""The shipped dashboard's InfluxQL runs on a real influxd and finds the points Telegraf writes.

Points shaped like Telegraf's (``mqtt_consumer`` with the ``site``/``device`` tags of ``sensors/<site>/<device>``,
``[[inputs.internal]]`` counters, InfluxDB's ``_internal`` monitor) are written to a throwaway influxd. Every
template-variable query and every panel query is then interpolated as Grafana's InfluxDB datasource does it
(multi-value variables as an escaped regex group, ``$timeFilter``, ``$__interval``, one ``$field`` per repeated
panel) and run: each must succeed and return series carrying the tags the panel groups by.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.tiers import unavailable

from .ansible_module import ROOT
from .influxdb_server import InfluxDBServer

DASHBOARD = json.loads((ROOT / "roles/grafana/files/dashboards/sensorstack-sensors.json").read_text())
ADMIN, PASSWORD = "admin", "dashboard-queries-secret"
DATABASE = "sensors"
READINGS = {("lab", "th-1"): {"temperature": 21.5, "humidity": 40.0}, ("lab", "th-2"): {"temperature": 19.0}}
READINGS |= {("field.north", "soil-1"): {"moisture": 0.31}}


@pytest.fixture(scope="module")
def influxdb() -> Iterator[InfluxDBServer]:
    binary = shutil.which("influxd")
    if binary is None:
        unavailable("integration", "needs influxd (Debian package influxdb)")
    server = InfluxDBServer(binary).start()
    try:
        server.query(f"CREATE USER {ADMIN} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES")
        for statement in (
            f"CREATE DATABASE {DATABASE}",
            "CREATE DATABASE _internal WITH DURATION 7d NAME monitor",
        ):
            assert "error" not in json.dumps(server.query(statement, ADMIN, PASSWORD))
        write(server, DATABASE, telegraf_points())
        write(server, "_internal", monitor_points(), retention_policy="monitor")
        yield server
    finally:
        server.stop()


def write(server: InfluxDBServer, database: str, lines: list[str], retention_policy: str | None = None) -> None:
    import base64
    import urllib.parse
    import urllib.request

    query = {"db": database, "precision": "s"} | ({"rp": retention_policy} if retention_policy else {})
    request = urllib.request.Request(
        f"{server.url}/write?{urllib.parse.urlencode(query)}", data="\n".join(lines).encode(), method="POST"
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def telegraf_points() -> list[str]:
    now = int(time.time())
    lines = []
    for minutes_ago in (5, 3, 1):
        stamp = now - 60 * minutes_ago
        for (site, device), fields in READINGS.items():
            values = ",".join(f"{key}={value + minutes_ago}" for key, value in fields.items())
            tags = f"site={site},device={device},topic=sensors/{site}/{device},host=edge-1"
            lines.append(f"mqtt_consumer,{tags} {values} {stamp}")
        count = 100 - 10 * minutes_ago
        lines.append(
            f"internal_mqtt_consumer,host=edge-1 messages_received={count}i,payload_size={count * 40}i {stamp}"
        )
        lines.append(
            f"internal_write,host=edge-1,output=influxdb metrics_written={count}i,metrics_dropped=0i,"
            f"buffer_size={minutes_ago}i {stamp}"
        )
    return lines


def monitor_points() -> list[str]:
    now = int(time.time())
    return [
        f"httpd,bind=:8086,hostname=edge-1 pointsWrittenOK={1000 - 100 * ago}i,writeReq={50 - ago}i {now - 60 * ago}"
        for ago in (5, 3, 1)
    ]


def regex_value(values: list[str]) -> str:
    """How Grafana's InfluxDB datasource writes a variable inside /regex/: escaped, several as a group."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}/-])", r"\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"


def interpolate(text: str, variables: dict[str, list[str]]) -> str:
    text = text.replace("$timeFilter", "time >= now() - 6h").replace("$__interval", "1m")
    for name in sorted(variables, key=len, reverse=True):
        values = variables[name]
        text = text.replace(f"/^${name}$/", f"/^{regex_value(values)}$/").replace(f"${name}", values[0])
    assert not re.search(r"\$\{?(?!tag_)[A-Za-z_]", text), f"uninterpolated variable in {text}"
    return text


def run(influxdb: InfluxDBServer, statement: str) -> list[dict[str, Any]]:
    answer = influxdb.query(statement, ADMIN, PASSWORD, DATABASE)
    [result] = answer["results"]
    assert "error" not in result, f"{statement}\n-> {result['error']}"
    return result.get("series", [])


def variable_query(name: str) -> str:
    return next(v["query"] for v in DASHBOARD["templating"]["list"] if v["name"] == name)


def values_of(series: list[dict[str, Any]]) -> list[str]:
    return sorted(str(row[0] if len(row) == 1 else row[-1]) for item in series for row in item["values"])


@pytest.fixture(scope="module")
def variables(influxdb: InfluxDBServer) -> dict[str, list[str]]:
    """The template variables resolved the way Grafana resolves them, one query after another."""
    resolved: dict[str, list[str]] = {"measurement": ["mqtt_consumer"]}
    resolved["site"] = values_of(run(influxdb, interpolate(variable_query("site"), resolved)))
    resolved["device"] = values_of(run(influxdb, interpolate(variable_query("device"), resolved)))
    fields = run(influxdb, interpolate(variable_query("field"), resolved))
    resolved["field"] = sorted(row[0] for item in fields for row in item["values"])
    return resolved


def test_the_variables_list_the_sites_devices_and_readings_telegraf_wrote(variables: dict[str, list[str]]) -> None:
    assert variables["site"] == ["field.north", "lab"]
    assert variables["device"] == ["soil-1", "th-1", "th-2"]
    assert variables["field"] == ["humidity", "moisture", "temperature"]


def test_the_device_list_follows_the_chosen_site(influxdb: InfluxDBServer) -> None:
    chosen = {"measurement": ["mqtt_consumer"], "site": ["field.north"]}
    assert values_of(run(influxdb, interpolate(variable_query("device"), chosen))) == ["soil-1"]


def panel_targets() -> list[tuple[str, str]]:
    every = []
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            every.append((f"{panel['title']}/{target['refId']}", target["query"]))
    return every


@pytest.mark.parametrize(("name", "query"), panel_targets(), ids=[name for name, _ in panel_targets()])
def test_every_panel_query_runs_and_finds_points(
    influxdb: InfluxDBServer, variables: dict[str, list[str]], name: str, query: str
) -> None:
    fields = variables["field"] if "$field" in query else [None]
    for field in fields:
        scope = variables | ({"field": [field]} if field else {})
        series = run(influxdb, interpolate(query, scope))
        assert series, f"{name} ({field}) found no points"
        grouped = re.findall(r'"(\w+)"', query.split("GROUP BY", 1)[1]) if "GROUP BY" in query else []
        for item in series:
            tags = item.get("tags", {})
            assert set(grouped) <= set(tags) | set(item["columns"]), f"{name}: {item}"
            assert all(tags[tag] for tag in grouped if tag in tags), f"{name} groups by a tag nobody writes: {tags}"
            numbers = [value for row in item["values"] for value in row[1:] if isinstance(value, int | float)]
            assert numbers, f"{name} ({field}) returned no values: {item}"


def test_the_readings_panel_draws_one_line_per_site_and_device(
    influxdb: InfluxDBServer, variables: dict[str, list[str]]
) -> None:
    [query] = [q for name, q in panel_targets() if "$field" in q and "mean(" in q]
    series = run(influxdb, interpolate(query, variables | {"field": ["temperature"]}))
    assert sorted((s["tags"]["site"], s["tags"]["device"]) for s in series) == [("lab", "th-1"), ("lab", "th-2")]
