#!/usr/bin/env python3
"""Where a run's time goes, task by task, from the events ansible-runner recorded (no callback to enable).

    .venv/bin/python benchmarks/profile_run.py [RUN_DIR ...] [--top N]

RUN_DIR is a run folder `sensorstack` wrote (`~/.local/state/sensorstack/runs/<time>-<pid>-<playbook>`); without
one, the newest. For each run it prints the wall time, the time spent in tasks summed over hosts, the slowest tasks
(wall time of the task across its hosts, and the hosts' sum) and the time per role, and writes the same figures to
benchmarks/results/profile-<run>.json, so a first run and a no-op rerun, or two commits, can be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sensorstack.events import job_events  # noqa: E402
from sensorstack.runner import default_artifacts_root  # noqa: E402

RESULTS = ROOT / "benchmarks/results"
HOST_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


@dataclass
class TaskTime:
    play: str
    role: str
    task: str
    action: str
    hosts: int = 0
    host_seconds: float = 0.0
    changed: int = 0
    start: float = float("inf")
    end: float = 0.0

    @property
    def wall(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Profile:
    run: str
    wall: float
    host_seconds: float
    tasks: list[TaskTime] = field(default_factory=list)

    def by_role(self) -> dict[str, float]:
        roles: dict[str, float] = defaultdict(float)
        for task in self.tasks:
            roles[task.role or "(play)"] += task.wall
        return dict(sorted(roles.items(), key=lambda item: -item[1]))

    def by_action(self) -> dict[str, tuple[int, float]]:
        """Per module or action (short name): how many tasks ran it and their wall time, the costliest first.
        Controller-side actions (assert, set_fact, include_tasks, validate_argument_spec) show what a task costs
        where no host is reached."""
        actions: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for task in self.tasks:
            entry = actions[task.action.rsplit(".", 1)[-1] or "(none)"]
            entry[0] += 1
            entry[1] += task.wall
        ranked = sorted(actions.items(), key=lambda item: -item[1][1])
        return {action: (int(count), seconds) for action, (count, seconds) in ranked}


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def profile(run_dir: Path) -> Profile:
    """Per task (by play, role and name, in the order they ran): hosts, summed duration and wall time."""
    tasks: dict[tuple[str, str, str, str], TaskTime] = {}
    first, last = float("inf"), 0.0
    for event in job_events(run_dir):
        data: dict[str, Any] = event.get("event_data", {})
        if event.get("event") not in HOST_EVENTS or "start" not in data or "end" not in data:
            continue
        # A role included several times in one play runs tasks of the same name: each inclusion is a task of
        # its own (its own uuid), not one task spanning from the first inclusion to the last.
        key = (data.get("play", ""), data.get("role", ""), data.get("task", ""), data.get("task_uuid", ""))
        task = tasks.setdefault(key, TaskTime(*key[:3], action=data.get("task_action", "")))
        start, end = _seconds(data["start"]), _seconds(data["end"])
        task.hosts += 1
        task.host_seconds += float(data.get("duration") or end - start)
        task.changed += bool(data.get("res", {}).get("changed"))
        task.start, task.end = min(task.start, start), max(task.end, end)
        first, last = min(first, start), max(last, end)
    ordered = sorted(tasks.values(), key=lambda task: task.start)
    return Profile(run_dir.name, max(0.0, last - first), sum(task.host_seconds for task in ordered), ordered)


def report(result: Profile, top: int) -> str:
    lines = [
        f"{result.run}: {result.wall:.1f} s wall, {result.host_seconds:.1f} s in tasks summed over hosts, "
        f"{len(result.tasks)} tasks",
        f"  slowest {top} tasks (wall s, host-sum s, hosts, changed, role: task [action]):",
    ]
    for task in sorted(result.tasks, key=lambda task: -task.wall)[:top]:
        lines.append(
            f"  {task.wall:7.1f} {task.host_seconds:8.1f} {task.hosts:3d} {task.changed:3d}  "
            f"{task.role or '-'}: {task.task} [{task.action}]"
        )
    lines.append(
        "  per role (wall s): "
        + ", ".join(f"{role} {seconds:.1f}" for role, seconds in list(result.by_role().items())[:12])
    )
    lines.append(
        "  per action (tasks, wall s): "
        + ", ".join(
            f"{action} {count} {seconds:.1f}" for action, (count, seconds) in list(result.by_action().items())[:14]
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (default: the newest)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    runs = args.runs or sorted(default_artifacts_root().glob("*"))[-1:]
    if not runs:
        parser.error(f"no run folder under {default_artifacts_root()}: run sensorstack first")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for run_dir in runs:
        result = profile(run_dir)
        print(report(result, args.top))
        document = asdict(result) | {"by_role": result.by_role(), "by_action": result.by_action()}
        (RESULTS / f"profile-{result.run}.json").write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
