"""The shipped inventory folders parse cleanly with the project's ansible.cfg, whatever else the folder holds.

An inventory folder also holds artifacts/ (the admin kubeconfig a cluster run fetches) and files/ (dashboards the
variables name). Ansible tries every file of an inventory folder as an inventory source unless ansible.cfg tells it
not to: each run then warns about the kubeconfig and reads a dashboard's JSON keys as group names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: lab
    cluster: {server: "https://10.213.0.11:6443"}
"""
DASHBOARD = '{"uid": "lab", "title": "Lab", "time": {"from": "now-6h", "to": "now"}, "panels": []}\n'


def inventory_graph(inventory: Path) -> subprocess.CompletedProcess:
    environment = os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    command = [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--graph"]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["local", "lab"])
def test_an_inventory_folder_with_its_artifacts_and_files_parses_without_warnings(tmp_path: Path, name: str) -> None:
    inventory = tmp_path / name
    shutil.copytree(ROOT / "inventories" / name, inventory, ignore=shutil.ignore_patterns("artifacts"))
    (inventory / "artifacts").mkdir()
    (inventory / "artifacts/admin.conf").write_text(KUBECONFIG)
    (inventory / "files/dashboards").mkdir(parents=True, exist_ok=True)
    (inventory / "files/dashboards/extra.json").write_text(DASHBOARD)

    graph = inventory_graph(inventory)

    assert graph.returncode == 0, graph.stderr
    assert "WARNING" not in graph.stderr, graph.stderr
    groups = {line.strip(" |-@:") for line in graph.stdout.splitlines() if "@" in line}
    assert "sensorstack" in groups
    assert not groups & {"uid", "title", "time", "panels", "apiVersion", "clusters"}, groups
