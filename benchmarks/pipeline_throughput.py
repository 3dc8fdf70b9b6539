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

Three runs: a paced one (the devices offer ``--rate`` readings/s in all for ``--seconds``), an unpaced one (``--burst``
readings per device as fast as they go: the ceiling), and a few readings with Mosquitto's own limits
(max_inflight_messages 20), which shows why the role raises them. Reported for each: readings/s published (until
every client has its acknowledgements), readings/s stored while the devices publish, end-to-end latency p50/p99,
readings lost (published - stored distinct) and duplicated (stored - distinct). Exit status 1 on any loss or
duplicate.

Run: .venv/bin/python benchmarks/pipeline_throughput.py [--devices 8] [--rate 12000] [--seconds 30] [--burst 5000]
     [--set telegraf_<variable>=<YAML>]
JSON report: benchmarks/results/pipeline_throughput.json (benchmarks/record.py).
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

from benchmarks.record import record  # noqa: E402
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


@dataclass(frozen=True)
class Device:
    name: str
    password: str


@dataclass
class Result:
    name: str
    devices: int
    offered_per_second: float | None
    published: int
    publish_seconds: float
    stored_while_publishing: int
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

    @property
    def published_per_second(self) -> float:
        return self.published / self.publish_seconds

    @property
    def stored_per_second(self) -> float:
        """Rows stored while the devices published, per second: the rate the path sustains under that load."""
        return self.stored_while_publishing / self.publish_seconds

    def summary(self) -> dict[str, Any]:
        return asdict(self) | {
            "lost": self.lost,
            "duplicates": self.duplicates,
            "published_per_second": round(self.published_per_second),
            "stored_per_second": round(self.stored_per_second),
        }

    def report(self) -> str:
        offered = f"offered {self.offered_per_second:.0f}/s" if self.offered_per_second else "unpaced"
        return (
            f"{self.name:20} {self.devices} devices, {self.published} readings at QoS 1, {offered}: "
            f"{self.published_per_second:6.0f} published/s | {self.stored_per_second:6.0f} stored/s while publishing,"
            f" last row after {self.store_seconds:5.1f} s | latency p50 {self.latency_p50_ms:5.0f} ms, "
            f"p99 {self.latency_p99_ms:5.0f} ms (poll {self.poll_seconds * 1000:.0f} ms) | "
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

    def __init__(
        self, device: Device, broker: MosquittoBroker, readings: int, folder: Path, rate: float | None = None
    ) -> None:
        self.device, self.readings, self.rate = device, readings, rate
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
        started = time.monotonic()
        for seq in range(1, self.readings + 1):
            if self.rate and len(lines) == 0:
                # A paced device hands over each chunk when its first reading is due, not earlier.
                delay = started + (seq - 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
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


@dataclass(frozen=True)
class Load:
    """What the simulated devices send: ``readings`` each, at ``per_second`` in all (None: as fast as they can)."""

    devices: int
    readings: int
    per_second: float | None = None


def run(
    name: str,
    binary: str,
    server: InfluxDBServer,
    load: Load,
    broker_lines: tuple[str, ...],
    poll: float,
    overrides: dict[str, Any],
) -> Result:
    run_id = f"b{secrets.token_hex(3)}"
    fleet = [Device(f"{run_id}-device-{index}", secrets.token_hex(12)) for index in range(1, load.devices + 1)]
    users = {device.name: device.password for device in fleet} | {"telegraf": "telegraf-bench-secret"}
    broker = MosquittoBroker(users, extra=broker_lines).start()
    variables = stack_variables(
        broker,
        server.url,
        influxdb_users=[{"name": "telegraf", "password": WRITER_PASSWORD}],
        telegraf_mqtt_client_id=f"telegraf-bench-{run_id}",
        **overrides,
    )
    telegraf = TelegrafProcess(binary, render_role_config(variables)).start()
    flush = float(variables.get("telegraf_agent", AGENT)["flush_interval"].removesuffix("s"))
    device_rate = load.per_second / load.devices if load.per_second else None
    total = load.devices * load.readings
    seen_ms: dict[str, list[int]] = {device.name: [] for device in fleet}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-devices-") as folder:
            started = time.monotonic()
            clients = [
                DeviceClient(device, broker, load.readings, Path(folder), device_rate).start() for device in fleet
            ]
            publishing = threading.Thread(target=lambda: [client.wait(900) for client in clients], daemon=True)
            publishing.start()
            published_at: float | None = None
            stored_while_publishing = 0
            last_change, last_total = time.monotonic(), -1
            while time.monotonic() - last_change < 3 * flush + 5:
                time.sleep(poll)
                still_publishing = publishing.is_alive()
                now_ms = time.time_ns() // 1_000_000
                counts = stored_counts(server, run_id)
                for device_name, count in counts.items():
                    seen = seen_ms[device_name]
                    seen.extend([now_ms] * (min(count, load.readings) - len(seen)))
                current = sum(counts.values())
                if published_at is None and not still_publishing:
                    published_at, stored_while_publishing = time.monotonic(), current
                if current != last_total:
                    last_change, last_total = time.monotonic(), current
                if current >= total and published_at is not None:
                    break
            publishing.join(60)
            if published_at is None:
                published_at, stored_while_publishing = time.monotonic(), last_total
            # Readings of one device reach InfluxDB in the order it sent them: the n-th row seen is reading n.
            latencies = [
                float(seen - client.sent_ms[seq])
                for client in clients
                for seq, seen in enumerate(seen_ms[client.device.name], start=1)
            ]
        distinct = sum(stored_counts(server, run_id, distinct=True).values())
        if distinct < total:
            drops = [line for line in (broker.root / "mosquitto.log").read_text().splitlines() if "dropped" in line]
            print(f"{name}: {total - distinct} readings lost; the broker logged: {drops[:3]}", file=sys.stderr)
        return Result(
            name=name,
            devices=load.devices,
            offered_per_second=load.per_second,
            published=total,
            publish_seconds=published_at - started,
            stored_while_publishing=stored_while_publishing,
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


def role_variable(assignment: str) -> tuple[str, Any]:
    """``--set name=value``: a role variable for this run, its value read as YAML."""
    name, separator, value = assignment.partition("=")
    if not separator or not name.startswith("telegraf_"):
        raise argparse.ArgumentTypeError(f"expected telegraf_<variable>=<YAML value>, got {assignment!r}")
    return name, yaml.safe_load(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=8, help="simulated devices, one MQTT connection each")
    parser.add_argument("--rate", type=float, default=12000, help="readings/s offered in all by the paced run")
    parser.add_argument("--seconds", type=float, default=30, help="length of the paced run")
    parser.add_argument("--burst", type=int, default=5000, help="readings per device in the unpaced run")
    parser.add_argument("--default-readings", type=int, default=5, help="per device, with Mosquitto's own limits")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between InfluxDB polls")
    parser.add_argument(
        "--set",
        type=role_variable,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a telegraf role variable for every run instead of its default, e.g. "
        "telegraf_mqtt_max_undelivered_messages=5000",
    )
    args = parser.parse_args()
    if MOSQUITTO is None or INFLUXD is None or MOSQUITTO_PUB is None:
        print("needs Debian's mosquitto, mosquitto-clients and influxdb packages", file=sys.stderr)
        return 2
    binary = telegraf_binary()
    overrides = dict(args.set)
    agent = overrides.get("telegraf_agent", AGENT)
    undelivered = overrides.get("telegraf_mqtt_max_undelivered_messages", UNDELIVERED)
    print(
        f"Telegraf: flush_interval {agent['flush_interval']}, metric_batch_size {agent['metric_batch_size']}, "
        f"metric_buffer_limit {agent['metric_buffer_limit']}, max_undelivered_messages {undelivered}; "
        f"broker: {', '.join(ROLE_BROKER_LIMITS)}" + (f"; overridden: {', '.join(overrides)}" if overrides else "")
    )
    paced = Load(args.devices, int(args.rate * args.seconds / args.devices), args.rate)
    server = influxdb_server()
    try:
        results = [
            run("paced", binary, server, paced, ROLE_BROKER_LIMITS, args.poll, overrides),
            run("unpaced", binary, server, Load(args.devices, args.burst), ROLE_BROKER_LIMITS, args.poll, overrides),
            run(
                "mosquitto-defaults",
                binary,
                server,
                Load(args.devices, args.default_readings),
                (),
                args.poll,
                overrides,
            ),
        ]
    finally:
        server.stop()
    for result in results:
        print(result.report())
    paced_result = results[0]
    record(
        "pipeline_throughput",
        f"{paced_result.stored_per_second:.0f} readings/s stored at {paced_result.offered_per_second:.0f}/s offered "
        f"(target >= 10000), p50 {paced_result.latency_p50_ms:.0f} ms, p99 {paced_result.latency_p99_ms:.0f} ms, "
        f"lost {sum(r.lost for r in results)}, duplicated {sum(r.duplicates for r in results)}",
        {"overrides": overrides, "runs": [result.summary() for result in results]},
    )
    return 0 if all(result.lost == 0 and result.duplicates == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
