#!/usr/bin/env python3
"""Converge 10 databases, 20 retention policies and 20 users on a real influxd, two ways, and compare.

(a) the influxdb role's path: one sensorstack.iot.influxdb_schema task;
(b) 50 community.general.influxdb_* tasks, one per object (they need the `influxdb` Python library).

Each way runs on a fresh server: a first run that creates everything, then a no-op rerun, then another one (by
then the server has checked each user's login once and remembers it). Prints wall times and the ratios a/b
(target: at most 0.1). Run: make bench-influxdb (or .venv/bin/python benchmarks/influxdb_schema.py).

It also prints the floor of (a)'s first run on this machine: a playbook whose one influxdb_schema task has nothing
to do, plus the server's own time to create the users (bcrypt, under its metadata lock), sent straight over HTTP.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import record  # noqa: E402
from tests.integration.ansible_module import local_play, run_local_play  # noqa: E402
from tests.integration.influxdb_server import InfluxDBServer  # noqa: E402

ADMIN = "bench-Admin-1"
DATABASES = [f"site_{i}" for i in range(10)]
POLICIES = [(db, name, duration) for db in DATABASES for name, duration in (("raw", "30d"), ("rollup", "52w"))]
USERS = [f"device_writer_{i}" for i in range(20)]


def play(tasks: list[dict]) -> list[dict]:
    return local_play(tasks, "Benchmark")


def schema_play(url: str, empty: bool = False) -> list[dict]:
    login = {"url": url, "username": "admin", "password": ADMIN}
    if empty:
        return play([{"name": "Converge an empty schema", "sensorstack.iot.influxdb_schema": login}])
    return play(
        [
            {
                "name": "Converge the whole schema in one call",
                "sensorstack.iot.influxdb_schema": login
                | {
                    "databases": [{"name": db} for db in DATABASES],
                    "retention_policies": [
                        {"database": db, "name": name, "duration": duration} for db, name, duration in POLICIES
                    ],
                    "users": [
                        {
                            "name": user,
                            "password": f"{user}-pw",
                            "grants": [{"database": DATABASES[i % 10], "privilege": "write"}],
                        }
                        for i, user in enumerate(USERS)
                    ],
                },
            }
        ]
    )


def per_object_play(port: int) -> list[dict]:
    login = {"hostname": "127.0.0.1", "port": port, "username": "admin", "password": ADMIN}
    tasks: list[dict] = []
    tasks += [
        {"name": f"Database {db}", "community.general.influxdb_database": login | {"database_name": db}}
        for db in DATABASES
    ]
    tasks += [
        {
            "name": f"Policy {db}.{name}",
            "community.general.influxdb_retention_policy": login
            | {"database_name": db, "policy_name": name, "duration": duration, "replication": 1, "default": False},
        }
        for db, name, duration in POLICIES
    ]
    tasks += [
        {
            "name": f"User {user}",
            "community.general.influxdb_user": login
            | {
                "user_name": user,
                "user_password": f"{user}-pw",
                "grants": [{"database": DATABASES[i % 10], "privilege": "WRITE"}],
            },
        }
        for i, user in enumerate(USERS)
    ]
    return tasks and play(tasks)


def timed_run(playbook: list[dict]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        result = run_local_play(playbook, Path(workdir), ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer")
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark playbook failed:\n{result.stdout}\n{result.stderr}")
    recap = [line for line in result.stdout.splitlines() if line.startswith("localhost")]
    return elapsed, recap[-1] if recap else ""


def measure(make_playbook) -> tuple[float, float, float]:
    """First run, no-op rerun, and a second no-op rerun (the server has by then checked every user's login once)."""
    server = InfluxDBServer(shutil.which("influxd") or "influxd").start()
    try:
        server.query(f"CREATE USER admin WITH PASSWORD '{ADMIN}' WITH ALL PRIVILEGES")
        playbook = make_playbook(server)
        times = []
        for label in ("first run", "rerun", "rerun 2"):
            elapsed, recap = timed_run(playbook)
            if label != "first run" and "changed=0" not in recap:
                raise SystemExit(f"the {label} was not a no-op: {recap}")
            print(f"    {label:9} {elapsed:6.2f} s  ({recap.split(':', 1)[1].split('unreachable')[0].strip()})")
            times.append(elapsed)
        first, rerun, warm_rerun = times
        return first, rerun, warm_rerun
    finally:
        server.stop()


def floor_of_first_run() -> tuple[float, float]:
    """(a playbook of one influxdb_schema task with nothing to do, the server creating the users) in seconds."""
    server = InfluxDBServer(shutil.which("influxd") or "influxd").start()
    try:
        server.query(f"CREATE USER admin WITH PASSWORD '{ADMIN}' WITH ALL PRIVILEGES")
        ansible_cost = min(timed_run(schema_play(server.url, empty=True))[0] for _ in range(3))
        server.query("; ".join(f'CREATE DATABASE "{db}"' for db in DATABASES), "admin", ADMIN)
        statements = [
            f'CREATE USER "{user}" WITH PASSWORD \'{user}-pw\'; GRANT WRITE ON "{DATABASES[i % 10]}" TO "{user}"'
            for i, user in enumerate(USERS)
        ]
        started = time.perf_counter()
        result = server.query("; ".join(statements), "admin", ADMIN)
        server_cost = time.perf_counter() - started
        if any("error" in statement for statement in result.get("results", [])) or "error" in result:
            raise SystemExit(f"creating the users failed: {result}")
        return ansible_cost, server_cost
    finally:
        server.stop()


def main() -> int:
    try:
        import influxdb  # noqa: F401
    except ImportError:
        print("needs the influxdb Python library for community.general: pip install influxdb", file=sys.stderr)
        return 2
    print(f"{len(DATABASES)} databases, {len(POLICIES)} retention policies, {len(USERS)} users")
    print("(a) role path: one sensorstack.iot.influxdb_schema task")
    role_first, role_rerun, role_warm = measure(lambda server: schema_play(server.url))
    print(f"(b) {len(DATABASES) + len(POLICIES) + len(USERS)} community.general.influxdb_* tasks")
    task_first, task_rerun, task_warm = measure(lambda server: per_object_play(server.http_port))
    print(
        f"ratio a/b: first run {role_first / task_first:.3f}x, rerun {role_rerun / task_rerun:.3f}x, "
        f"rerun 2 {role_warm / task_warm:.3f}x (target <= 0.1x)"
    )
    ansible_cost, server_cost = floor_of_first_run()
    floor = ansible_cost + server_cost
    print(
        f"floor of (a)'s first run: a one-task playbook with nothing to do {ansible_cost:.2f} s + the server creating "
        f"{len(USERS)} users {server_cost:.2f} s = {floor:.2f} s, {floor / task_first:.3f}x of (b)"
    )
    record(
        "influxdb_schema",
        f"one task vs {len(DATABASES) + len(POLICIES) + len(USERS)} tasks: first run {role_first / task_first:.3f}x, "
        f"rerun {role_rerun / task_rerun:.3f}x (target <= 0.1); first run {role_first / floor:.2f}x its floor "
        "(target <= 1.1)",
        {
            "role_s": [role_first, role_rerun, role_warm],
            "tasks_s": [task_first, task_rerun, task_warm],
            "floor_s": {"ansible": ansible_cost, "server": server_cost},
            "first_run_over_floor": role_first / floor,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
