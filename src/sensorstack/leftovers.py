"""Processes a cancelled run leaves behind, found by a marker in their environment and stopped.

ansible-runner stops a cancelled ansible-playbook and its process group. Some processes of a run leave that group:
Mitogen's multiplexer (--mitogen) starts in a session of its own and waits for a socket that stays open, so it
outlived every Ctrl-C. Every process of a run inherits the run's environment, so each run carries a marker there
(RUN_MARKER=<run id>). After a cancelled run, the processes that still carry it are stopped. This needs /proc
(Linux); elsewhere nothing is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

RUN_MARKER = "SENSORSTACK_RUN"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts: signalling it is refused, not failed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def marked_processes(run_id: str, proc: Path = Path("/proc")) -> list[int]:
    """The process ids whose environment holds RUN_MARKER=run_id, this process excepted."""
    entry = f"{RUN_MARKER}={run_id}".encode()
    found = []
    for folder in proc.glob("[0-9]*"):
        try:
            environment = (folder / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if entry in environment.split(b"\0") and int(folder.name) != os.getpid():
            found.append(int(folder.name))
    return sorted(found)


def stop_marked_processes(run_id: str, grace: float = 5.0, proc: Path = Path("/proc")) -> list[int]:
    """SIGTERM every process of the run still there, then SIGKILL what outlives ``grace`` seconds; their ids."""
    stopped = marked_processes(run_id, proc)
    for pid in stopped:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while marked_processes(run_id, proc) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in marked_processes(run_id, proc):
        _signal(pid, signal.SIGKILL)
    return stopped


def _signal(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, number)
