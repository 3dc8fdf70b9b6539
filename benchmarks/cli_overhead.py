#!/usr/bin/env python3
"""What the sensorstack wrapper costs, and how a converge scales, measured on real lab containers.

1. `sensorstack run prepare` vs plain `ansible-playbook playbooks/prepare.yml`, same inventory, both no-op reruns.
2. A no-op rerun against the first converge of fresh hosts.
3. 4 lab hosts against 1 (first converge of fresh hosts each time).
Run: make bench-cli (needs Docker and the lab images; about ten minutes).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sensorstack.lab import containers, images  # noqa: E402
from tests.integration.ansible_module import ansible_environment  # noqa: E402


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


def inventory_for(names: list[str], directory: Path) -> Path:
    path = directory / "hosts.yml"
    hosts = {f"bench{index}": {"ansible_host": name} for index, name in enumerate(names)}
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "community.docker.docker",
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                    "children": {"sensorstack": {"children": {"workers": {"hosts": hosts}}}},
                }
            }
        )
    )
    return path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=ansible_environment(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed


def plain(inventory: Path) -> list[str]:
    return ["ansible-playbook", "-i", str(inventory), "playbooks/prepare.yml"]


def wrapped(inventory: Path) -> list[str]:
    return [sys.executable, "-m", "sensorstack.cli", "run", "prepare", "-q", "-i", str(inventory)]


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        try:
            one = start_hosts(1)
            inventory = inventory_for(one, Path(workdir))
            first_one = timed(plain(inventory))
            rerun_plain = min(timed(plain(inventory)) for _ in range(3))
            rerun_wrapped = min(timed(wrapped(inventory)) for _ in range(3))
            for name in one:
                containers.remove(name)
            four = start_hosts(4)
            first_four = timed(plain(inventory_for(four, Path(workdir))))
        finally:
            for index in range(4):
                containers.remove(f"sensorstack-bench-{index}")
    print(
        f"no-op rerun, 1 host: ansible-playbook {rerun_plain:.2f} s, sensorstack {rerun_wrapped:.2f} s "
        f"-> wrapper ratio {rerun_wrapped / rerun_plain:.2f}x"
    )
    print(
        f"1 host: first converge {first_one:.2f} s, no-op rerun {rerun_plain:.2f} s "
        f"-> rerun/first {rerun_plain / first_one:.2f}x"
    )
    print(f"first converge: 4 hosts {first_four:.2f} s, 1 host {first_one:.2f} s -> 4/1 {first_four / first_one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
