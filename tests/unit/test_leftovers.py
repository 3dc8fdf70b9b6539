"""A cancelled run's processes that left its process group are found by their environment's marker and stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensorstack.leftovers import RUN_MARKER, marked_processes, stop_marked_processes

# A process that ignores SIGINT in a session of its own, as Mitogen's multiplexer does.
STUBBORN = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def fake_proc(root: Path, environments: dict[str, bytes]) -> Path:
    for pid, environment in environments.items():
        (root / pid).mkdir()
        (root / pid / "environ").write_bytes(environment)
    (root / "self").mkdir()
    return root


def test_only_processes_with_this_runs_marker_are_found(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            "101": b"PATH=/bin\0SENSORSTACK_RUN=run-a\0",
            "102": b"SENSORSTACK_RUN=run-a-longer\0",
            "103": b"OTHER=SENSORSTACK_RUN=run-a\0",
            "104": b"SENSORSTACK_RUN=run-b\0",
        },
    )
    assert marked_processes("run-a", proc) == [101]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_process_that_ignores_sigint_in_its_own_session_is_stopped() -> None:
    run_id = f"test-{os.getpid()}"
    stubborn = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        env=os.environ | {RUN_MARKER: run_id},
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "up\n"
        assert marked_processes(run_id) == [stubborn.pid]
        assert stop_marked_processes(run_id, grace=5) == [stubborn.pid]
        assert stubborn.wait(timeout=10) != 0
        assert marked_processes(run_id) == []
    finally:
        stubborn.kill()
