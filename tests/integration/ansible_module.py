"""Run one collection module through ansible-playbook on localhost, as a user's task would, and return its result.

Arguments travel in a temporary playbook file (never on the command line); the result comes back through the
ansible.posix.json callback, diff included when asked for.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sensorstack.lab.containers import LAB_CONNECTION

ROOT = Path(__file__).resolve().parents[2]


def ansible_environment(**extra: str) -> dict[str, str]:
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    return os.environ | {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        # Facts stay in each run's memory: the files run in parallel (make integration) and several inventories
        # name different containers alike (cp1, broker), so a shared fact cache would hand one the other's facts.
        "ANSIBLE_CACHE_PLUGIN": "memory",
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        **extra,
    }


def local_play(tasks: list[dict[str, Any]], name: str = "Local play") -> list[dict[str, Any]]:
    """A playbook of one play running ``tasks`` on localhost with the controller's own Python, no fact gathering."""
    return [
        {
            "name": name,
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": tasks,
        }
    ]


def run_local_play(
    play: list[dict[str, Any]], workdir: Path, *options: str, inventory: str = "localhost,", **environment: str
) -> subprocess.CompletedProcess[str]:
    """Write ``play`` into ``workdir`` and run it with ansible-playbook against ``inventory`` (localhost unless
    told; ``environment``: extra environment variables)."""
    playbook = workdir / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, str(playbook), *options],
        cwd=ROOT,
        env=ansible_environment(**environment),
        capture_output=True,
        text=True,
        check=False,
    )


def run_module(
    module: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    no_log: bool = False,
    container: str | None = None,
) -> dict[str, Any]:
    """Run ``module`` (FQCN) once with ``args`` on localhost, or in ``container`` through the docker connection;
    return the task result (``failed`` when it failed)."""
    task: dict[str, Any] = {"name": "Run the module under test", module: args, "ignore_errors": True}
    if no_log:
        task["no_log"] = True
    play = local_play([task], "Module test")
    host = "localhost"
    if container is not None:
        host = container
        play[0].update(hosts=container, connection=LAB_CONNECTION)
        play[0]["vars"] = {"ansible_python_interpreter": "/usr/bin/python3"}
    options = (["--check"] if check else []) + (["--diff"] if diff else [])
    with tempfile.TemporaryDirectory(prefix="sensorstack-module-") as workdir:
        completed = run_local_play(
            play,
            Path(workdir),
            *options,
            inventory=f"{host},",
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"ansible-playbook gave no JSON report:\n{completed.stdout}\n{completed.stderr}"
        ) from error
    return report["plays"][0]["tasks"][0]["hosts"][host]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
