"""The telegraf role's configuration, run by a real Telegraf between a real broker and a real InfluxDB.

Each test renders telegraf.conf and the environment file with the role itself (``tasks/render.yml``), then runs
the Telegraf that scripts/build-telegraf builds against Debian's mosquitto and influxd on loopback ports. The
flush interval is shortened to one second to keep the tests quick; everything else is the role's default unless a
test says otherwise. The molecule scenario ``pipeline`` proves the same path with the shipped agent settings on a
systemd host.
"""

from __future__ import annotations

import json
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.tiers import needs

from .influxdb_server import InfluxDBServer
from .telegraf_stack import (
    INFLUXD,
    MOSQUITTO,
    MosquittoBroker,
    TelegrafProcess,
    render_role_config,
    stack_variables,
    telegraf_binary,
)

pytestmark = needs(MOSQUITTO is None or INFLUXD is None, "needs Debian's mosquitto and influxdb packages")

ADMIN, ADMIN_PASSWORD = "admin", "pipeline-Admin-42"
# Both passwords hold what an environment file and a TOML string must escape.
TELEGRAF_MQTT_PASSWORD = 'mqtt "quoted" $dollar ${BRACED} \\backslash `tick` #hash'
TELEGRAF_INFLUXDB_PASSWORD = "influx 'single' \"double\" $(not a command)"
USERS = {"lab": "lab-gateway-secret", "telegraf": TELEGRAF_MQTT_PASSWORD}
FAST_AGENT = {
    "interval": "10s",
    "flush_interval": "1s",
    "metric_batch_size": 1000,
    "metric_buffer_limit": 100000,
    "skip_processors_after_aggregators": True,
}


@pytest.fixture(scope="module")
def telegraf() -> str:
    return telegraf_binary()


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    server = MosquittoBroker(USERS).start()
    yield server
    server.stop()


@pytest.fixture
def influxdb() -> Iterator[InfluxDBServer]:
    assert INFLUXD is not None
    server = InfluxDBServer(INFLUXD).start()
    try:
        server.query(f"CREATE USER {ADMIN} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
        escaped = TELEGRAF_INFLUXDB_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
        for statement in (
            "CREATE DATABASE telemetry",
            "CREATE RETENTION POLICY raw ON telemetry DURATION 1d REPLICATION 1 DEFAULT",
            "CREATE RETENTION POLICY other ON telemetry DURATION 2d REPLICATION 1",
            f"CREATE USER telegraf WITH PASSWORD '{escaped}'",
            "GRANT WRITE ON telemetry TO telegraf",
        ):
            answer = server.query(statement, ADMIN, ADMIN_PASSWORD)
            assert "error" not in json.dumps(answer), (statement, answer)
        yield server
    finally:
        server.stop()


def variables(broker: MosquittoBroker, influxdb: InfluxDBServer, **overrides: Any) -> dict[str, Any]:
    defaults = {
        "influxdb_users": [{"name": "telegraf", "password": TELEGRAF_INFLUXDB_PASSWORD}],
        "telegraf_agent": FAST_AGENT,
        "telegraf_mqtt_json_tag_keys": ["unit"],
    }
    return stack_variables(broker, influxdb.url, **(defaults | overrides))


def publish(broker: MosquittoBroker, user: str, messages: list[tuple[str, str]]) -> None:
    """Publish at QoS 1 and wait until the broker has acknowledged every message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(user, USERS[user])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def points(influxdb: InfluxDBServer, statement: str) -> list[dict[str, Any]]:
    answer = influxdb.query(statement, ADMIN, ADMIN_PASSWORD, database="telemetry")["results"][0]
    assert "error" not in answer, answer
    rows = []
    for series in answer.get("series", []):
        for values in series["values"]:
            rows.append(
                {
                    "_series": series["name"],
                    **series.get("tags", {}),
                    **dict(zip(series["columns"], values, strict=True)),
                }
            )
    return rows


def eventually(read: Callable[[], list], timeout: float = 15.0) -> list:
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_the_role_s_configuration_passes_telegraf_s_own_check(telegraf: str, tmp_path: Path) -> None:
    broker = MosquittoBroker(USERS, port=1883)  # not started: the check never connects
    rendered = render_role_config(stack_variables(broker, "http://127.0.0.1:8086"))
    config = tomllib.loads(rendered.config)
    assert set(config["inputs"]) == {"mqtt_consumer", "internal"}
    assert "[[inputs.mqtt_consumer.topic_parsing]]" in rendered.config
    process = TelegrafProcess(telegraf, rendered, root=tmp_path)
    checked = process.check()
    assert checked.returncode == 0, checked.stderr


def test_a_wrong_data_format_fails_the_check_and_names_it(telegraf: str, tmp_path: Path) -> None:
    broker = MosquittoBroker(USERS, port=1883)
    rendered = render_role_config(
        stack_variables(broker, "http://127.0.0.1:8086", telegraf_mqtt_options={"data_format": "jsonx"})
    )
    checked = TelegrafProcess(telegraf, rendered, root=tmp_path).check()
    assert checked.returncode != 0
    assert "undefined but requested parser: jsonx" in checked.stderr


def test_a_reading_reaches_influxdb_with_site_and_device_tags(
    telegraf: str, broker: MosquittoBroker, influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    rendered = render_role_config(variables(broker, influxdb))
    process = TelegrafProcess(telegraf, rendered, root=tmp_path).start()
    try:
        reading = {"temperature": 21.5, "humidity": 40, "unit": "C", "note": "dropped"}
        publish(broker, "lab", [("sensors/lab/th-1", json.dumps(reading))])
        rows = eventually(lambda: points(influxdb, 'SELECT * FROM "telemetry"."raw"."mqtt_consumer"'))
    finally:
        process.remove()
    assert len(rows) == 1, process.log()
    point = rows[0]
    assert (point["site"], point["device"], point["topic"], point["unit"]) == ("lab", "th-1", "sensors/lab/th-1", "C")
    assert (point["temperature"], point["humidity"]) == (21.5, 40)
    assert "note" not in point
    assert points(influxdb, 'SELECT * FROM "telemetry"."other"."mqtt_consumer"') == []


def test_telegraf_s_own_metrics_reach_the_database_for_the_dashboard(
    telegraf: str, broker: MosquittoBroker, influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    agent = FAST_AGENT | {"interval": "1s"}
    rendered = render_role_config(variables(broker, influxdb, telegraf_agent=agent))
    process = TelegrafProcess(telegraf, rendered, root=tmp_path).start()
    try:
        publish(broker, "lab", [("sensors/lab/th-1", '{"temperature": 20}')])
        statement = 'SELECT last("messages_received") FROM "telemetry"."raw"."internal_mqtt_consumer"'
        received = eventually(lambda: [row for row in points(influxdb, statement) if row["last"] >= 1])
        statement = 'SELECT last("metrics_written") FROM internal_write WHERE "output" = \'influxdb\''
        written = eventually(lambda: [row for row in points(influxdb, statement) if row["last"] > 0])
    finally:
        process.remove()
    assert received, process.log()
    assert written, process.log()


def test_processors_and_aggregators_from_the_lists_run_in_telegraf(
    telegraf: str, broker: MosquittoBroker, influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    # Every plugin kind from data: a processor renames a field, an aggregator sums readings per period, and a
    # second output writes everything to a file in JSON.
    capture = tmp_path / "metrics.json"
    rendered = render_role_config(
        variables(
            broker,
            influxdb,
            telegraf_processors=[
                {"plugin": "rename", "options": {"replace": [{"field": "temp", "dest": "temperature"}]}}
            ],
            telegraf_aggregators=[
                {
                    "plugin": "basicstats",
                    "options": {
                        "period": "2s",
                        "drop_original": False,
                        "stats": ["count", "max"],
                        "namepass": ["mqtt*"],
                    },
                }
            ],
            telegraf_outputs=[
                "{{ telegraf_influxdb_output }}",
                {"plugin": "file", "options": {"files": [str(capture)], "data_format": "json"}},
            ],
        )
    )
    config = tomllib.loads(rendered.config)
    assert set(config) >= {"processors", "aggregators", "outputs"}
    assert set(config["outputs"]) == {"influxdb", "file"}
    process = TelegrafProcess(telegraf, rendered, root=tmp_path / "telegraf").start()
    try:
        publish(broker, "lab", [("sensors/lab/th-2", json.dumps({"temp": value})) for value in (18.0, 19.0, 23.0)])
        renamed = eventually(
            lambda: points(influxdb, "SELECT \"temperature\" FROM mqtt_consumer WHERE device = 'th-2'")
        )
        statement = 'SELECT "temperature_count", "temperature_max" FROM mqtt_consumer WHERE "temperature_count" > 0'
        stats = eventually(
            lambda: [
                rows for rows in [points(influxdb, statement)] if sum(row["temperature_count"] for row in rows) >= 3
            ],
            timeout=20,
        )
    finally:
        process.remove()
    assert sorted(row["temperature"] for row in renamed) == [18.0, 19.0, 23.0], process.log()
    # A period boundary may split the three readings, never lose or repeat one.
    assert stats, process.log()
    assert sum(row["temperature_count"] for row in stats[0]) == 3
    assert max(row["temperature_max"] for row in stats[0]) == 23.0
    assert '"temperature":23' in capture.read_text()
