#!/usr/bin/env python3
"""What a task that reads the cluster through the kubernetes.core.k8s lookup pays for importing the client.

    .venv/bin/python benchmarks/worker_imports.py [--tasks N] [--rounds R]

Ansible forks a worker from the controller's main process for every task and host, and a lookup runs in that
worker: a Python module the main process has not imported is imported again by every worker that needs it. The
kubernetes client is the heaviest such import of site.yml. Side by side, alternating, on localhost: a playbook of
N set_fact tasks, each one k8s lookup (a kubeconfig that does not exist and errors='ignore': the client is imported,
then the lookup returns nothing, so no cluster is needed), (a) as shipped, (b) with a callback plugin that imports the
client in the main process before any worker forks. Prints the best time of each and the saving per task. Not a
target of its own: it measures a candidate for issue 16's per-task cost (benchmarks/README.md, lab_rerun.py).
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
from tests.integration.ansible_module import ansible_environment  # noqa: E402

PRELOAD = """
import kubernetes.client, kubernetes.config, kubernetes.dynamic  # noqa: F401  imported before the workers fork
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "preload_kubernetes"
    CALLBACK_NEEDS_ENABLED = True
"""


def playbook(tasks: int) -> str:
    lookup = "query('kubernetes.core.k8s', kind='Pod', kubeconfig='/nonexistent', errors='ignore')"
    steps = "".join(
        f"    - name: Read the cluster {index}\n      ansible.builtin.set_fact:\n"
        f'        found_{index}: "{{{{ {lookup} }}}}"\n'
        for index in range(tasks)
    )
    return f"- name: Lookups\n  hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n{steps}"


def timed(path: Path, extra_environment: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), str(path)],
        cwd=ROOT,
        env=ansible_environment(**extra_environment),
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensorstack-worker-imports-") as temporary:
        folder = Path(temporary)
        (folder / "callbacks").mkdir()
        (folder / "callbacks/preload_kubernetes.py").write_text(PRELOAD)
        path = folder / "lookups.yml"
        path.write_text(playbook(options.tasks))
        preloaded = {
            "ANSIBLE_CALLBACK_PLUGINS": str(folder / "callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "preload_kubernetes,ansible.posix.profile_tasks",
        }
        shipped, preloading = [], []
        for _ in range(options.rounds):
            shipped.append(timed(path, {}))
            preloading.append(timed(path, preloaded))
    best_shipped, best_preloading = min(shipped), min(preloading)
    saved = (best_shipped - best_preloading) / options.tasks
    print(f"{options.tasks} lookup tasks, best of {options.rounds}, load average {os.getloadavg()[0]:.1f}:")
    print(f"  (a) each worker imports the client:        {best_shipped:6.2f} s")
    print(f"  (b) the main process imported it first:    {best_preloading:6.2f} s")
    record(
        "worker_imports",
        f"{options.tasks} k8s lookup tasks {best_shipped:.2f} s, client imported before the fork "
        f"{best_preloading:.2f} s: {saved:.2f} s a task",
        {"tasks": options.tasks, "shipped": shipped, "preloaded": preloading, "saved_per_task": saved},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
