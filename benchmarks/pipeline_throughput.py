#!/usr/bin/env python3
"""The data path on one host, measured: readings published to Mosquitto vs points stored in InfluxDB by Telegraf.

Real daemons on loopback ports: Debian's mosquitto and influxd, and the Telegraf of scripts/build-telegraf running
the telegraf role's own rendered configuration with the agent settings the role ships (flush interval, batch size,
buffer limit, max_undelivered_messages). A paho client publishes N JSON readings at QoS 1 as fast as the broker
acknowledges them; the benchmark polls InfluxDB until every reading is stored or nothing more arrives for three
flush intervals, then prints messages/s published, points/s stored, and the loss (published - stored, distinct).

Two broker settings are compared, because Telegraf acknowledges a QoS 1 message of its persistent session only
once InfluxDB has it:
  mosquitto-defaults  max_inflight_messages 20 (Mosquitto's default): at most 20 readings per flush interval;
  stack               max_inflight_messages = telegraf_mqtt_max_undelivered_messages, a large max_queued_messages.

Run: .venv/bin/python benchmarks/pipeline_throughput.py [--messages 20000] [--default-messages 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "collections"))  # the checkout is the sensorstack.iot collection

from tests.integration.influxdb_server import InfluxDBServer  # noqa: E402
from tests.integration.telegraf_stack import (  # noqa: E402
    INFLUXD,
    MOSQUITTO,
    MosquittoBroker,
    TelegrafProcess,
    render_role_config,
    stack_variables,
    telegraf_binary,
)

DEFAULTS = yaml.safe_load((ROOT / "roles/telegraf/defaults/main.yml").read_text())
AGENT = DEFAULTS["telegraf_agent"]
UNDELIVERED = DEFAULTS["telegraf_mqtt_max_undelivered_messages"]
ADMIN, ADMIN_PASSWORD = "admin", "bench-Admin-42"
USERS = {"site1": "site1-bench-secret", "telegraf": "telegraf-bench-secret"}
WRITER_PASSWORD = "bench-Telegraf-1"


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for unit in ("ms", "s", "m"):
        if duration.endswith(unit) and duration[: -len(unit)].replace(".", "", 1).isdigit():
            return float(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"not a duration: {duration}")


FLUSH = seconds(AGENT["flush_interval"])


@dataclass
class Result:
    name: str
    published: int
    publish_seconds: float
    stored: int
    distinct: int
    store_seconds: float

    def report(self) -> str:
        lost = self.published - self.distinct
        duplicates = self.stored - self.distinct
        return (
            f"{self.name:20} {self.published:7d} published in {self.publish_seconds:7.2f} s "
            f"({self.published / self.publish_seconds:8.0f} msg/s) | {self.distinct:7d} stored in "
            f"{self.store_seconds:7.2f} s ({self.distinct / self.store_seconds:8.0f} points/s) | "
            f"lost {lost}, duplicates {duplicates}"
        )


def influxdb_server() -> InfluxDBServer:
    assert INFLUXD is not None
    server = InfluxDBServer(INFLUXD).start()
    server.query(f"CREATE USER {ADMIN} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
    for statement in (
        "CREATE DATABASE telemetry",
        "CREATE RETENTION POLICY raw ON telemetry DURATION 1d REPLICATION 1 DEFAULT",
        f"CREATE USER telegraf WITH PASSWORD '{WRITER_PASSWORD}'",
        "GRANT WRITE ON telemetry TO telegraf",
    ):
        answer = server.query(statement, ADMIN, ADMIN_PASSWORD)
        if "error" in json.dumps(answer):
            raise RuntimeError(f"{statement}: {answer}")
    return server


def counted(server: InfluxDBServer, device: str) -> tuple[int, int]:
    statement = (
        'SELECT count("seq") AS n, count(distinct("seq")) AS d FROM "telemetry"."raw"."mqtt_consumer" '
        f"WHERE \"device\" = '{device}'"
    )
    answer: dict[str, Any] = server.query(statement, ADMIN, ADMIN_PASSWORD, database="telemetry")["results"][0]
    series = answer.get("series")
    if not series:
        return 0, 0
    _, total, distinct = series[0]["values"][0]
    return int(total), int(distinct)


def publish(broker: MosquittoBroker, device: str, messages: int) -> float:
    """Publish ``messages`` readings at QoS 1 as fast as the broker acknowledges them; return the seconds taken."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.username_pw_set("site1", USERS["site1"])
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    topic = f"sensors/site1/{device}"
    try:
        started = time.monotonic()
        infos = [
            client.publish(topic, json.dumps({"seq": n, "temperature": 20 + n % 10}), qos=1)
            for n in range(1, messages + 1)
        ]
        for info in infos:
            info.wait_for_publish(timeout=120)
        return time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()


def run(name: str, binary: str, server: InfluxDBServer, messages: int, broker_lines: tuple[str, ...]) -> Result:
    broker = MosquittoBroker(USERS, extra=broker_lines).start()
    variables = stack_variables(
        broker,
        server.url,
        influxdb_users=[{"name": "telegraf", "password": WRITER_PASSWORD}],
        telegraf_mqtt_client_id=f"telegraf-bench-{name}",
    )
    telegraf = TelegrafProcess(binary, render_role_config(variables)).start()
    device = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        started = time.monotonic()
        publish_seconds = publish(broker, device, messages)
        last_change, last = time.monotonic(), (0, 0)
        while last[1] < messages and time.monotonic() - last_change < 3 * FLUSH + 5:
            time.sleep(0.25)
            current = counted(server, device)
            if current != last:
                last_change, last = time.monotonic(), current
        return Result(name, messages, publish_seconds, last[0], last[1], last_change - started)
    finally:
        telegraf.remove()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000, help="readings with the stack's broker settings")
    parser.add_argument("--default-messages", type=int, default=100, help="readings with Mosquitto's defaults")
    args = parser.parse_args()
    if MOSQUITTO is None or INFLUXD is None:
        print("needs Debian's mosquitto and influxdb packages", file=sys.stderr)
        return 2
    binary = telegraf_binary()
    print(
        f"Telegraf {binary} with the role's agent settings: flush_interval {AGENT['flush_interval']}, "
        f"metric_batch_size {AGENT['metric_batch_size']}, metric_buffer_limit {AGENT['metric_buffer_limit']}, "
        f"max_undelivered_messages {UNDELIVERED}"
    )
    server = influxdb_server()
    try:
        results = [
            run("stack", binary, server, args.messages, (
                f"max_inflight_messages {UNDELIVERED}", "max_queued_messages 100000",
            )),
            run("mosquitto-defaults", binary, server, args.default_messages, ()),
        ]  # fmt: skip
    finally:
        server.stop()
    for result in results:
        print(result.report())
    return 0 if all(result.distinct == result.published for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
