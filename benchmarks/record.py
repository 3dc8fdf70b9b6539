"""One place where a benchmark leaves its result: a one-line summary on stdout and a JSON report.

Every benchmark ends with ``record(name, summary, figures)``: the summary line starts with ``summary:`` so that
``make bench`` can print the lines of all benchmarks together, and ``benchmarks/results/<name>.json`` (git-ignored)
holds the figures with when, where and at which commit they were measured, so that two runs can be compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"


def _commit() -> str:
    answer = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return answer.stdout.strip() or "unknown"


def record(name: str, summary: str, figures: dict[str, Any]) -> Path:
    """Print ``summary: <name>: <summary>`` and write ``benchmarks/results/<name>.json``; returns its path."""
    print(f"summary: {name}: {summary}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    report = {
        "benchmark": name,
        "summary": summary,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "figures": figures,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def summaries() -> list[str]:
    """The summary line of every benchmark report under benchmarks/results, with when it was measured."""
    lines = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(report, dict) and "summary" in report:
            lines.append(f"{report['benchmark']}: {report['summary']} ({report['measured_at']}, {report['commit']})")
    return lines


if __name__ == "__main__":
    print("\n".join(summaries()) or "no benchmark reports in benchmarks/results yet")
