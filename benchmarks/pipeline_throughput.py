#!/usr/bin/env python3
"""The data path on one host at its real limit: readings published by simulated devices vs rows stored in InfluxDB.

Real daemons on loopback ports: Debian's mosquitto and influxd, and the Telegraf of scripts/build-telegraf running
the telegraf role's own rendered configuration with the agent settings the role ships (flush interval, batch size,
buffer limit, max_undelivered_messages). The broker takes the mosquitto role's shipped in-flight and queue limits.

The load comes from a compiled client, not from Python: one ``mosquitto_pub -l`` (Debian's mosquitto-clients) per
simulated device, each with its own client id, user and password (in an options file, never in argv), publishing at
QoS 1 the JSON readings the stack's topic scheme expects (``sensors/<device>/meter``, ``{"seq": n, "value": v,
"sent_ms": t}``). A writer thread per device feeds its client lines stamped with the time they are handed over, so
the latency covers the device's own queue too. InfluxDB is polled every ``--poll`` seconds: a reading counts as
stored at the first poll that sees it (the resolution of p50/p99 is the poll interval).

Reported: readings/s published (until every client has its acknowledgements), readings/s stored, end-to-end latency
p50/p99, readings lost (published - stored distinct) and duplicated (stored - distinct). A second run with
Mosquitto's own limits (max_inflight_messages 20) shows why the role raises them.

Run: .venv/bin/python benchmarks/pipeline_throughput.py [--devices 8] [--readings 5000] [--default-readings 100]
JSON report: benchmarks/results/pipeline_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
TELEGRAF_DEFAULTS = yaml.safe_load((ROOT / "roles/telegraf/defaults/main.yml").read_text())
MOSQUITTO_DEFAULTS = yaml.safe_load((ROOT / "roles/mosquitto/defaults/main.yml").read_text())
AGENT = TELEGRAF_DEFAULTS["telegraf_agent"]
UNDELIVERED = TELEGRAF_DEFAULTS["telegraf_mqtt_max_undelivered_messages"]
ROLE_BROKER_LIMITS = (
    f"max_inflight_messages {MOSQUITTO_DEFAULTS['mosquitto_max_inflight_messages']}",
    f"max_queued_messages {MOSQUITTO_DEFAULTS['mosquitto_max_queued_messages']}",
)
ADMIN, ADMIN_PASSWORD = "admin", "bench-Admin-42"
WRITER_PASSWORD = "bench-Telegraf-1"
# The devices' own in-flight window: a gateway-class client, as mosquitto_pub allows (-M).
DEVICE_INFLIGHT = 100
LINES_PER_WRITE = 50
RESULTS = ROOT / "benchmarks/results"


@dataclass(frozen=True)
class Device:
    name: str
    password: str


@dataclass
class Result:
    name: str
    devices: int
    published: int
    publish_seconds: float
    stored: int
    distinct: int
    store_seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    poll_seconds: float
    broker: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.published - self.distinct

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct

    def report(self) -> str:
        return (
            f"{self.name:20} {self.devices} devices, {self.published} readings at QoS 1: "
            f"{self.published / self.publish_seconds:8.0f} published/s | "
            f"{self.distinct / self.store_seconds:8.0f} stored/s | latency p50 {self.latency_p50_ms:6.0f} ms, "
            f"p99 {self.latency_p99_ms:6.0f} ms (poll {self.poll_seconds * 1000:.0f} ms) | "
            f"lost {self.lost}, duplicated {self.duplicates}"
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


def stored_counts(server: InfluxDBServer, run_id: str, distinct: bool = False) -> dict[str, int]:
    """Rows stored per device of this run (its devices' names start with ``run_id``)."""
    what = 'count(distinct("seq"))' if distinct else 'count("seq")'
    statement = f'SELECT {what} FROM "telemetry"."raw"."mqtt_consumer" WHERE "site" =~ /^{run_id}-/ GROUP BY "site"'
    answer: dict[str, Any] = server.query(statement, ADMIN, ADMIN_PASSWORD, database="telemetry")["results"][0]
    return {series["tags"]["site"]: int(series["values"][0][1]) for series in answer.get("series", [])}


class DeviceClient:
    """One simulated device: ``mosquitto_pub -l`` with its options in a private file, fed by a writer thread."""

    def __init__(self, device: Device, broker: MosquittoBroker, readings: int, folder: Path) -> None:
        self.device, self.readings = device, readings
        self.sent_ms: list[int] = [0] * (readings + 1)
        config = folder / device.name
        config.mkdir(mode=0o700)
        # mosquitto_pub reads default options from $XDG_CONFIG_HOME/mosquitto_pub: the password stays out of argv.
        options = config / "mosquitto_pub"
        options.write_text(
            f"-h 127.0.0.1\n-p {broker.port}\n-i {device.name}\n-u {device.name}\n-P {device.password}\n"
            f"-q 1\n-M {DEVICE_INFLIGHT}\n-t sensors/{device.name}/meter\n"
        )
        options.chmod(0o600)
        self.process = subprocess.Popen(
            [str(MOSQUITTO_PUB), "-l"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ | {"XDG_CONFIG_HOME": str(config)},
        )
        self.writer = threading.Thread(target=self._write, name=f"feed-{device.name}", daemon=True)

    def _write(self) -> None:
        assert self.process.stdin is not None
        lines: list[str] = []
        for seq in range(1, self.readings + 1):
            sent = time.time_ns() // 1_000_000
            self.sent_ms[seq] = sent
            lines.append(f'{{"seq":{seq},"value":{seq % 97},"sent_ms":{sent}}}\n')
            if len(lines) == LINES_PER_WRITE:
                self.process.stdin.write("".join(lines).encode())
                lines.clear()
        self.process.stdin.write("".join(lines).encode())
        self.process.stdin.close()

    def start(self) -> DeviceClient:
        self.writer.start()
        return self

    def wait(self, timeout: float) -> None:
        self.writer.join(timeout)
        code = self.process.wait(timeout)
        assert self.process.stderr is not None
        errors = self.process.stderr.read()
        if code != 0:
            raise RuntimeError(f"mosquitto_pub of {self.device.name} exited {code}: {errors!r}")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(
    name: str,
    binary: str,
    server: InfluxDBServer,
    devices: int,
    readings: int,
    broker_lines: tuple[str, ...],
    poll: float,
) -> Result:
    run_id = f"b{secrets.token_hex(3)}"
    fleet = [Device(f"{run_id}-device-{index}", secrets.token_hex(12)) for index in range(1, devices + 1)]
    users = {device.name: device.password for device in fleet} | {"telegraf": "telegraf-bench-secret"}
    broker = MosquittoBroker(users, extra=broker_lines).start()
    variables = stack_variables(
        broker,
        server.url,
        influxdb_users=[{"name": "telegraf", "password": WRITER_PASSWORD}],
        telegraf_mqtt_client_id=f"telegraf-bench-{run_id}",
    )
    telegraf = TelegrafProcess(binary, render_role_config(variables)).start()
    flush = float(AGENT["flush_interval"].removesuffix("s"))
    total = devices * readings
    seen_ms: dict[str, list[int]] = {device.name: [] for device in fleet}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-devices-") as folder:
            started = time.monotonic()
            clients = [DeviceClient(device, broker, readings, Path(folder)).start() for device in fleet]
            publishing = threading.Thread(target=lambda: [client.wait(900) for client in clients], daemon=True)
            publishing.start()
            published_at: float | None = None
            last_change, last_total = time.monotonic(), -1
            while time.monotonic() - last_change < 3 * flush + 5:
                time.sleep(poll)
                if published_at is None and not publishing.is_alive():
                    published_at = time.monotonic()
                now_ms = time.time_ns() // 1_000_000
                counts = stored_counts(server, run_id)
                for device_name, count in counts.items():
                    seen = seen_ms[device_name]
                    seen.extend([now_ms] * (min(count, readings) - len(seen)))
                current = sum(counts.values())
                if current != last_total:
                    last_change, last_total = time.monotonic(), current
                if current >= total and published_at is not None:
                    break
            publishing.join(60)
            published_at = published_at or time.monotonic()
            # Readings of one device reach InfluxDB in the order it sent them: the n-th row seen is reading n.
            latencies = [
                float(seen - client.sent_ms[seq])
                for client in clients
                for seq, seen in enumerate(seen_ms[client.device.name], start=1)
            ]
        distinct = sum(stored_counts(server, run_id, distinct=True).values())
        return Result(
            name=name,
            devices=devices,
            published=total,
            publish_seconds=published_at - started,
            stored=last_total,
            distinct=distinct,
            store_seconds=last_change - started,
            latency_p50_ms=statistics.median(latencies) if latencies else float("nan"),
            latency_p99_ms=percentile(latencies, 0.99),
            poll_seconds=poll,
            broker=list(broker_lines),
        )
    finally:
        telegraf.remove()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=8, help="simulated devices, one MQTT connection each")
    parser.add_argument("--readings", type=int, default=5000, help="readings per device with the role's limits")
    parser.add_argument("--default-readings", type=int, default=5, help="per device, with Mosquitto's own limits")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between InfluxDB polls")
    args = parser.parse_args()
    if MOSQUITTO is None or INFLUXD is None or MOSQUITTO_PUB is None:
        print("needs Debian's mosquitto, mosquitto-clients and influxdb packages", file=sys.stderr)
        return 2
    binary = telegraf_binary()
    print(
        f"Telegraf with the role's agent settings: flush_interval {AGENT['flush_interval']}, metric_batch_size "
        f"{AGENT['metric_batch_size']}, metric_buffer_limit {AGENT['metric_buffer_limit']}, max_undelivered_messages "
        f"{UNDELIVERED}; broker with the role's {', '.join(ROLE_BROKER_LIMITS)}"
    )
    server = influxdb_server()
    try:
        results = [
            run("role-defaults", binary, server, args.devices, args.readings, ROLE_BROKER_LIMITS, args.poll),
            run("mosquitto-defaults", binary, server, args.devices, args.default_readings, (), args.poll),
        ]
    finally:
        server.stop()
    for result in results:
        print(result.report())
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = [asdict(result) | {"lost": result.lost, "duplicates": result.duplicates} for result in results]
    (RESULTS / "pipeline_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(result.lost == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
