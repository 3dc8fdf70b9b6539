#!/usr/bin/env python3
"""How a converge scales with hosts, against Ansible's own floor, and what the sensorstack wrapper costs.

Side by side in one run, on lab containers (debian12 and debian13 alternately), with ansible.cfg as shipped
(forks, pipelining, strategy):

1. ``playbooks/prepare.yml`` on 1 fresh host and on 4 fresh hosts: first converge, then a no-op rerun (which must
   report changed=0). Ratios: rerun / first converge, and 4 hosts / 1 host for both.
2. Ansible's floor on the same hosts: a playbook of as many no-op module tasks (``ansible.builtin.command: /bin/true``)
   as the 1-host rerun ran, on 1 host and on 4. Target: sensorstack's 4-vs-1 ratio within 1.1x of the floor's.
3. ``sensorstack run prepare`` against plain ``ansible-playbook playbooks/prepare.yml``, no-op reruns on 1 host,
   alternating, best of three. Target: at most 1.05x.

Run: make bench-cli (needs Docker and the lab images; about ten minutes). The JSON report goes to
benchmarks/results/cli_overhead.json.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import record  # noqa: E402
from sensorstack.lab import containers, images  # noqa: E402
from sensorstack.lab.containers import LAB_CONNECTION  # noqa: E402
from tests.integration.ansible_module import ansible_environment  # noqa: E402

WRAPPER_TARGET = 1.05
SCALING_TARGET = 1.1


def start_hosts(count: int) -> list[str]:
    names = []
    for index in range(count):
        image = "debian12" if index % 2 == 0 else "debian13"
        images.build(images.recipe_for(image))
        host = containers.LabHost(f"bench{index}", f"sensorstack-bench-{index}", image)
        containers.remove(host.container)
        containers.start(host)
        names.append(host.container)
    return names


def remove_hosts(count: int = 4) -> None:
    for index in range(count):
        containers.remove(f"sensorstack-bench-{index}")


def inventory_for(names: list[str], directory: Path) -> Path:
    path = directory / f"hosts-{len(names)}.yml"
    hosts = {f"bench{index}": {"ansible_host": name} for index, name in enumerate(names)}
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": LAB_CONNECTION,
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                    "children": {"sensorstack": {"children": {"workers": {"hosts": hosts}}}},
                }
            }
        )
    )
    return path


def floor_playbook(tasks: int, directory: Path) -> Path:
    """A play of ``tasks`` module tasks that change nothing: the per-task cost Ansible itself sets."""
    path = directory / "floor.yml"
    play = {
        "name": "Ansible's floor: no-op module tasks",
        "hosts": "sensorstack",
        "gather_facts": False,
        "tasks": [
            {"name": f"Run no-op task {n}", "ansible.builtin.command": "/bin/true", "changed_when": False}
            for n in range(1, tasks + 1)
        ],
    }
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=ansible_environment(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


RECAPS = (
    re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", re.M),  # ansible-playbook's PLAY RECAP
    re.compile(r"^│\s*(\S+)\s*│\s*\d+\s*│\s*(\d+)\s*│", re.M),  # sensorstack's recap table (host, ok, changed)
)


def changed_counts(output: str) -> dict[str, int]:
    """Per host, changed=N of the PLAY RECAP (plain ansible-playbook) or of the recap table (sensorstack -q)."""
    return {host: int(count) for recap in RECAPS for host, count in recap.findall(output)}


def no_op(command: list[str]) -> tuple[float, str]:
    """Run a rerun that must change nothing: (seconds, its output)."""
    elapsed, output = timed(command)
    changed = changed_counts(output)
    if not changed or any(changed.values()):
        raise SystemExit(f"a rerun changed something, or printed no recap: {changed}\n{output[-3000:]}")
    return elapsed, output


def best_no_op(command: list[str], runs: int) -> float:
    return min(no_op(command)[0] for _ in range(runs))


def plain(inventory: Path, playbook: str = "playbooks/prepare.yml") -> list[str]:
    return ["ansible-playbook", "-i", str(inventory), playbook]


def wrapped(inventory: Path) -> list[str]:
    return [sys.executable, "-m", "sensorstack.cli", "run", "prepare", "-q", "-i", str(inventory)]


def tasks_run(output: str) -> int:
    return len(re.findall(r"^TASK \[", output, re.M))


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir)
        try:
            remove_hosts()
            one = inventory_for(start_hosts(1), directory)
            first_one, _ = timed(plain(one))
            rerun_one_seconds, rerun_output = no_op(plain(one))
            tasks = tasks_run(rerun_output)
            wrapper_plain, wrapper_wrapped = [rerun_one_seconds], []
            for _ in range(3):
                wrapper_wrapped.append(no_op(wrapped(one))[0])
                wrapper_plain.append(no_op(plain(one))[0])
            rerun_one = min(wrapper_plain)
            floor = floor_playbook(tasks, directory)
            floor_one = best_no_op(plain(one, str(floor)), 2)
            remove_hosts()
            four = inventory_for(start_hosts(4), directory)
            first_four, _ = timed(plain(four))
            rerun_four = best_no_op(plain(four), 2)
            floor_four = best_no_op(plain(four, str(floor)), 2)
        finally:
            remove_hosts()
    wrapper = min(wrapper_wrapped) / rerun_one
    floor_ratio = floor_four / floor_one
    figures = {
        "tasks_in_rerun": tasks,
        "first_converge_s": {"1": first_one, "4": first_four},
        "noop_rerun_s": {"1": rerun_one, "4": rerun_four},
        "floor_s": {"1": floor_one, "4": floor_four},
        "wrapper_s": {"ansible-playbook": wrapper_plain, "sensorstack": wrapper_wrapped},
        "rerun_over_first": {"1": rerun_one / first_one, "4": rerun_four / first_four},
        "four_over_one": {
            "first": first_four / first_one,
            "rerun": rerun_four / rerun_one,
            "floor": floor_ratio,
        },
        "wrapper_ratio": wrapper,
    }
    print(f"prepare.yml, {tasks} tasks in a no-op rerun; best of runs where repeated")
    print(f"{'':28} {'1 host':>9} {'4 hosts':>9} {'4/1':>7}")
    for label, key in (("first converge", "first_converge_s"), ("no-op rerun", "noop_rerun_s"), ("floor", "floor_s")):
        one_s, four_s = figures[key]["1"], figures[key]["4"]
        print(f"{label:28} {one_s:8.2f}s {four_s:8.2f}s {four_s / one_s:6.2f}x")
    print(f"rerun / first converge: 1 host {rerun_one / first_one:.2f}x, 4 hosts {rerun_four / first_four:.2f}x")
    print(f"wrapper: sensorstack {min(wrapper_wrapped):.2f} s vs ansible-playbook {rerun_one:.2f} s -> {wrapper:.3f}x")
    rerun_scaling = (rerun_four / rerun_one) / floor_ratio
    first_scaling = (first_four / first_one) / floor_ratio
    record(
        "cli_overhead",
        f"4 hosts / 1: rerun {rerun_four / rerun_one:.2f}x, first {first_four / first_one:.2f}x, Ansible's floor "
        f"{floor_ratio:.2f}x -> {rerun_scaling:.2f}x and {first_scaling:.2f}x the floor's (target <= "
        f"{SCALING_TARGET}); wrapper {wrapper:.3f}x (target <= {WRAPPER_TARGET}); rerun/first "
        f"{rerun_one / first_one:.2f}x on 1 host",
        figures,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
