"""The control planes' restart Lease as the upgrade and the etcd restore take and release it (the shared task files
roles/sensorstack/tasks/restart_lease_take.yml and restart_lease_release.yml), against a stand-in for the renewal's
Lease script that answers as the real one does for each case: taken, held by another control plane, no API server
answering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .ansible_module import local_play, run_local_play

# The stand-in records each call and answers with the exit status and output the test gives it.
LEASE_SCRIPT = """#!/bin/sh
echo "$*" >> {calls}
[ "$1" = take ] || exit 0
cat {answer_output}
exit $(cat {answer_status})
"""


def lease_tasks(holder: str, wait: int) -> list[dict[str, Any]]:
    """Take the Lease, do the work, release it: the callers' shape (the release runs whatever happened)."""
    role = "sensorstack.iot.sensorstack"
    return [
        {
            "name": "Hold the Lease around the work",
            "block": [
                {
                    "name": "Take the Lease",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": "restart_lease_take.yml"},
                    "vars": {
                        "sensorstack_restart_lease_holder": holder,
                        "sensorstack_restart_lease_wait": wait,
                        "sensorstack_restart_lease_wait_variable": "test_lease_wait",
                        "sensorstack_restart_lease_stop_reason": "the work would restart etcd.",
                    },
                },
                {"name": "Do the work", "ansible.builtin.debug": {"msg": "WORK DONE"}},
            ],
            "always": [
                {
                    "name": "Release the Lease",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": "restart_lease_release.yml"},
                    "vars": {"sensorstack_restart_lease_holder": holder},
                }
            ],
        }
    ]


def run_with_answer(tmp_path: Path, status: int, output: str, wait: int = 0) -> tuple[int, str, list[str]]:
    """Run the tasks with the stand-in answering ``take`` with ``status`` and ``output``; return the playbook's exit
    status, its output and the stand-in's calls."""
    calls = tmp_path / "calls"
    (tmp_path / "status").write_text(str(status))
    (tmp_path / "output").write_text(output)
    script = tmp_path / "kubeadm-renewal-lease"
    script.write_text(
        LEASE_SCRIPT.format(calls=calls, answer_output=tmp_path / "output", answer_status=tmp_path / "status")
    )
    script.chmod(0o755)
    completed = run_local_play(
        local_play(lease_tasks("upgrade of cp1", wait)),
        tmp_path,
        "--extra-vars",
        json.dumps({"sensorstack_renewal_lease_script": str(script)}),
    )
    made = calls.read_text().splitlines() if calls.exists() else []
    return completed.returncode, completed.stdout + completed.stderr, made


def test_a_taken_lease_is_released_after_the_work(tmp_path: Path) -> None:
    returncode, output, calls = run_with_answer(tmp_path, 0, "")
    assert returncode == 0, output
    assert "WORK DONE" in output
    assert calls == ["take upgrade of cp1", "release upgrade of cp1"]


def test_a_lease_another_holder_keeps_stops_the_run_naming_the_holder_and_the_wait(tmp_path: Path) -> None:
    returncode, output, calls = run_with_answer(tmp_path, 1, "cp2\n")
    assert returncode != 0
    assert "WORK DONE" not in output
    assert (
        "cp2 still holds the Lease kube-system/sensorstack-certificate-renewal after 0 s (test_lease_wait): "
        "the work would restart etcd." in " ".join(output.split())
    )
    # Never released: it is not this run's to release.
    assert calls == ["take upgrade of cp1"]


def test_a_held_lease_is_asked_for_again_until_the_wait_runs_out(tmp_path: Path) -> None:
    _, output, calls = run_with_answer(tmp_path, 1, "cp2\n", wait=10)
    assert "cp2 still holds the Lease" in output
    assert calls == ["take upgrade of cp1", "take upgrade of cp1"]


def test_without_an_api_server_the_work_goes_on_without_the_lease(tmp_path: Path) -> None:
    returncode, output, calls = run_with_answer(tmp_path, 2, "")
    assert returncode == 0, output
    assert "WORK DONE" in output
    assert calls == ["take upgrade of cp1"]
