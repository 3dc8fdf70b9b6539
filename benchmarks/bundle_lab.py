"""The bundle and the cluster lab: a warm (or cold) bundle build and verify, the cluster lab's up and down.

    .venv/bin/python benchmarks/bundle_lab.py           # warm: the caches of ~/.cache/sensorstack and Go
    .venv/bin/python benchmarks/bundle_lab.py --cold    # cold: empty caches in a temporary folder (about an hour)

Figures, not pass/fail: the warm build is what CI pays on a machine that has built once; the cold build is what a
fresh machine pays. Both are printed with the figure they are compared with, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import record  # noqa: E402

SENSORSTACK = ROOT / ".venv/bin/sensorstack"
CLUSTER = ROOT / "inventories/local"


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="build with empty caches (about an hour on 2 cores)")
    args = parser.parse_args()
    results: dict[str, float] = {}
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="sensorstack-bench-") as scratch:
        if args.cold:
            env |= {"SENSORSTACK_CACHE": f"{scratch}/cache", "GOCACHE": f"{scratch}/go-build"}
        bundle = Path(scratch) / "bundle"
        results["bundle_build_s"] = timed([str(SENSORSTACK), "bundle", "build", "--out", str(bundle)], env)
        results["bundle_verify_s"] = timed([str(SENSORSTACK), "bundle", "verify", str(bundle)], env)
    results["lab_up_s"] = timed([str(SENSORSTACK), "lab", "up", "-i", str(CLUSTER)])
    results["lab_down_s"] = timed([str(SENSORSTACK), "lab", "down", "-i", str(CLUSTER)])
    summary = {key: round(value, 1) for key, value in results.items()}
    record(
        f"bundle_lab{'_cold' if args.cold else ''}",
        ", ".join(f"{key.removesuffix('_s').replace('_', ' ')} {value} s" for key, value in summary.items()),
        summary,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
