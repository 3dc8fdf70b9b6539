#!/usr/bin/env python3
"""The main job's no-op rerun against its first run, on the built-in lab, with both runs' profiles.

    .venv/bin/python benchmarks/lab_rerun.py [-i INVENTORY] [--strategy ansible|mitogen ...] [--keep]

For each strategy (default: Ansible's own, then the opt-in Mitogen one, side by side in one run): starts the lab
from scratch (``sensorstack lab down``, ``lab up``), runs ``sensorstack deploy`` (site.yml: the cluster, Calico,
the stack on the cluster and on the edge host, the verify plays), then runs it again: the rerun must report
changed=0 on every host. Prints both wall times, their ratio (target: the rerun at most 0.30x the first run) and,
from the events the runner recorded, where each run spent its time (benchmarks/profile_run.py). ``--keep`` leaves
the lab up afterwards. Needs Docker, the lab images and the bundle (make setup); about ten minutes a strategy on
2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.profile_run import profile, report  # noqa: E402
from benchmarks.record import record  # noqa: E402
from tests.integration.ansible_module import ansible_environment  # noqa: E402

TARGET = 0.30
SENSORSTACK = [sys.executable, "-m", "sensorstack.cli"]
STRATEGIES = {"ansible": [], "mitogen": ["--mitogen"]}


def deploy(inventory: str, options: list[str]) -> tuple[float, dict, Path]:
    """One ``sensorstack deploy --json``: (seconds, its report, its run folder)."""
    started = time.perf_counter()
    result = subprocess.run(
        [*SENSORSTACK, "deploy", "--json", "-i", inventory, *options],
        cwd=ROOT,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    try:
        answer = json.loads(result.stdout)
    except ValueError as error:
        message = f"sensorstack deploy printed no report (rc {result.returncode}):\n{result.stderr[-3000:]}"
        raise SystemExit(message) from error
    if result.returncode != 0:
        raise SystemExit(f"sensorstack deploy failed: {json.dumps(answer.get('failures', answer), indent=1)[:3000]}")
    return elapsed, answer, Path(answer["artifact_dir"])


def measure(inventory: str, strategy: str, keep: bool) -> dict:
    """A fresh lab's first run and no-op rerun with one strategy: the figures, with both runs' profiles."""
    lab = [*SENSORSTACK, "lab"]
    subprocess.run([*lab, "down", "-i", inventory], cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*lab, "up", "-i", inventory], cwd=ROOT, check=True, capture_output=True)
    try:
        first, _, first_run = deploy(inventory, STRATEGIES[strategy])
        rerun, answer, rerun_run = deploy(inventory, STRATEGIES[strategy])
    finally:
        if not keep:
            subprocess.run([*lab, "down", "-i", inventory], cwd=ROOT, check=False, capture_output=True)
    changed = {host: counts.get("changed", 0) for host, counts in answer.get("recap", {}).items()}
    profiles = {}
    for label, run in (("first run", first_run), ("no-op rerun", rerun_run)):
        print(f"--- {strategy}: {label}")
        result = profile(run)
        print(report(result, top=15))
        profiles[label] = {"run": run.name, "wall_s": result.wall, "tasks": len(result.tasks)}
        profiles[label]["roles_s"] = result.by_role()
    ratio = rerun / first
    print(f"site.yml on {inventory} ({strategy}): first run {first:.1f} s, no-op rerun {rerun:.1f} s -> {ratio:.2f}x")
    return {"first_s": first, "rerun_s": rerun, "ratio": ratio, "rerun_changed": changed, "profiles": profiles}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default="inventories/local")
    parser.add_argument(
        "--strategy", action="append", choices=sorted(STRATEGIES), help="measure only these (default: both)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the lab up after the last strategy")
    args = parser.parse_args()
    strategies = args.strategy or list(STRATEGIES)
    figures = {
        strategy: measure(args.inventory, strategy, keep=args.keep and strategy == strategies[-1])
        for strategy in strategies
    }
    summary = "; ".join(
        f"{strategy}: no-op rerun {each['rerun_s']:.1f} s / first run {each['first_s']:.1f} s = {each['ratio']:.2f}x, "
        f"changed {sum(each['rerun_changed'].values())}"
        for strategy, each in figures.items()
    )
    record("lab_rerun", f"{summary} (target <= {TARGET})", figures)
    return 0 if not any(any(each["rerun_changed"].values()) for each in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
