"""The apiserver_lb role in check mode on a new host: haproxy is only pretended to be installed, so the role must
neither start nor reload a unit that does not exist yet; it reports what it would change and changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import run_playbook, write_inventory


@pytest.fixture(scope="module")
def container(lab_host_factory) -> str:
    return lab_host_factory("apiserver-lb", "debian13")


def test_check_mode_on_a_new_host_reports_the_changes_and_makes_none(container: str, tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    play = {"name": "Put the API load balancer on the node", "hosts": "control_plane", "roles": ["apiserver_lb"]}
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    inventory = {
        "all": {
            "vars": {"ansible_connection": LAB_CONNECTION, "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "sensorstack": {
                    "children": {
                        "control_plane": {
                            "hosts": {"cp1": {"ansible_host": container, "sensorstack_node_ip": "192.0.2.10"}}
                        }
                    }
                }
            },
        }
    }
    run = run_playbook(str(playbook), write_inventory(tmp_path, inventory), "--check")
    assert run.returncode == 0, run.output
    assert run.recap()["cp1"]["changed"] > 0, run.output
    for path in ("/usr/sbin/haproxy", "/etc/haproxy/haproxy.cfg"):
        assert subprocess.run(["docker", "exec", container, "test", "-e", path], check=False).returncode != 0, path
