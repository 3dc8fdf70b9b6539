#!/usr/bin/env python3
"""Converge 500 device users into a Mosquitto password file, two ways, and compare wall times.

(a) the mosquitto role's path: one sensorstack.iot.mosquitto_user task with the whole ``users`` list (exclusive),
    as roles/mosquitto/tasks/platform_systemd.yml runs it;
(b) one single-user task per device: the same module with ``name``/``password`` in a 500-item loop (no_log, as
    credentials need), which is how a per-user role would do it.

Each way starts from no file: a first run that adds every user, then a no-op rerun that must report no change.
Prints wall times and the ratios a/b (target: at most 0.05). Passwords travel in a vars file, never in argv.
Run: .venv/bin/python benchmarks/mosquitto_users.py [--users N]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import record  # noqa: E402
from tests.integration.ansible_module import local_play, run_local_play  # noqa: E402

TARGET_RATIO = 0.05


@dataclass(frozen=True)
class Run:
    seconds: float
    changed: int
    results: int


def play(task: dict[str, Any]) -> list[dict[str, Any]]:
    return local_play([task], "Benchmark")


def list_path_play(path: Path) -> list[dict[str, Any]]:
    return play(
        {
            "name": "Ensure the password file holds exactly the declared users",
            "sensorstack.iot.mosquitto_user": {
                "path": str(path),
                "users": "{{ bench_users }}",
                "exclusive": True,
                "mode": "0600",
            },
        }
    )


def single_user_play(path: Path) -> list[dict[str, Any]]:
    return play(
        {
            "name": "Ensure each device user is in the password file",
            "sensorstack.iot.mosquitto_user": {
                "path": str(path),
                "name": "{{ item.name }}",
                "password": "{{ item.password }}",
                "mode": "0600",
            },
            "loop": "{{ bench_users }}",
            "loop_control": {"label": "{{ item.name }}"},
            "no_log": True,
        }
    )


def timed_run(workdir: Path, name: str, playbook: list[dict[str, Any]], variables: Path) -> Run:
    start = time.perf_counter()
    completed = run_local_play(
        playbook,
        workdir,
        "-e",
        f"@{variables}",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
    )
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    items = result.get("results", [result])
    return Run(seconds, sum(1 for item in items if item.get("changed")), len(items))


def measure(workdir: Path, name: str, playbook: list[dict[str, Any]], variables: Path) -> tuple[Run, Run]:
    first = timed_run(workdir, f"{name}-first", playbook, variables)
    rerun = timed_run(workdir, f"{name}-rerun", playbook, variables)
    if first.changed == 0 or rerun.changed != 0:
        raise SystemExit(f"{name}: expected a change then none, got {first.changed} then {rerun.changed}")
    return first, rerun


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500, help="number of device users (default 500)")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mosquitto-bench-"))
    try:
        users = [
            {"name": f"device-{number:04d}", "password": secrets.token_urlsafe(18)}
            for number in range(1, options.users + 1)
        ]
        variables = workdir / "users.json"
        variables.write_text(json.dumps({"bench_users": users}))
        variables.chmod(0o600)
        list_first, list_rerun = measure(workdir, "list", list_path_play(workdir / "list.passwd"), variables)
        single_first, single_rerun = measure(workdir, "single", single_user_play(workdir / "single.passwd"), variables)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = (list_first.seconds / single_first.seconds, list_rerun.seconds / single_rerun.seconds)
    print(f"{options.users} device users, one password file, ansible-playbook on localhost (wall time)")
    print(f"{'':34} {'first run':>12} {'no-op rerun':>12}")
    print(f"{'(a) role path: one users-list task':34} {list_first.seconds:11.2f}s {list_rerun.seconds:11.2f}s")
    print(f"{'(b) one single-user task per user':34} {single_first.seconds:11.2f}s {single_rerun.seconds:11.2f}s")
    print(f"{'ratio a/b (target <= 0.05)':34} {ratios[0]:12.3f} {ratios[1]:12.3f}")
    record(
        "mosquitto_users",
        f"{options.users} users in one task vs one task each: first run {ratios[0]:.3f}x, no-op rerun "
        f"{ratios[1]:.3f}x (target <= {TARGET_RATIO})",
        {
            "users": options.users,
            "list_first_s": list_first.seconds,
            "list_rerun_s": list_rerun.seconds,
            "single_first_s": single_first.seconds,
            "single_rerun_s": single_rerun.seconds,
            "ratios": ratios,
            "target": TARGET_RATIO,
        },
    )
    return 0 if max(ratios) <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
