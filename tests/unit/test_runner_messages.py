"""What the CLI tells an operator about a failure (the failed items by their label, only the failures the recap counts),
and a -l @file read where the operator named it."""

from pathlib import Path

import pytest

from sensorstack.events import HostRecap, HostResult, HostStatus
from sensorstack.runner import counted_failures, failure_message, limit_with_files_resolved


def test_a_looped_failure_names_each_failed_item() -> None:
    result = {
        "msg": "One or more items failed",
        "results": [
            {"item": "common", "failed": False, "msg": "ok"},
            {"item": "influxdb", "failed": True, "msg": "'telegraf_password' is undefined"},
        ],
    }
    assert failure_message(result) == "One or more items failed; influxdb: 'telegraf_password' is undefined"


def test_a_plain_failure_keeps_its_message() -> None:
    assert failure_message({"msg": "boom"}) == "boom"


def test_a_module_that_could_not_run_says_why_from_its_stderr() -> None:
    result = {
        "msg": "Module result deserialization failed: No start of json char found",
        "module_stderr": "Error response from daemon: No such container: sensorstack-lab-edge1\r\n",
        "module_stdout": "",
        "rc": 1,
    }
    assert failure_message(result) == (
        "Module result deserialization failed: No start of json char found: "
        "Error response from daemon: No such container: sensorstack-lab-edge1"
    )


def test_a_failed_item_is_named_by_its_label_not_by_the_item_that_holds_a_password() -> None:
    result = {
        "msg": "One or more items failed",
        "results": [
            {
                "item": {"name": "sensor-1", "password": "hunter22"},
                "_ansible_item_label": "sensor-1",
                "failed": True,
                "msg": "refused",
            }
        ],
    }
    assert failure_message(result) == "One or more items failed; sensor-1: refused"


def failure(host: str, task: str, status: HostStatus = HostStatus.FAILED) -> HostResult:
    return HostResult("Play", task, host, status, "boom")


def test_only_the_failures_the_recap_counts_are_reported() -> None:
    """A failure a rescue recovered and an ignored unreachable delegate come as events, but the run did not fail."""
    failures = [
        failure("cp1", "apply (rescued)"),
        failure("cp1", "stat another node", HostStatus.UNREACHABLE),
        failure("w1", "apply (rescued)"),
        failure("w1", "apply again"),
        failure("w1", "always: clean up"),
        failure("w2", "ssh", HostStatus.UNREACHABLE),
    ]
    recap = {
        "cp1": HostRecap(ok=5, rescued=1, ignored=1),
        "w1": HostRecap(failed=2, rescued=1),
        "w2": HostRecap(unreachable=1),
    }
    assert [(f.host, f.task) for f in counted_failures(failures, recap)] == [
        ("w1", "apply again"),
        ("w1", "always: clean up"),
        ("w2", "ssh"),
    ]


def test_a_limit_file_is_read_where_the_operator_named_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert limit_with_files_resolved("@hosts.txt,lab-cp1") == f"@{tmp_path / 'hosts.txt'},lab-cp1"
    assert limit_with_files_resolved("edge:@hosts.txt") == f"edge,@{tmp_path / 'hosts.txt'}"
    assert limit_with_files_resolved("edge, @hosts.txt") == f"edge,@{tmp_path / 'hosts.txt'}"
    assert limit_with_files_resolved("edge:!lab-edge2") == "edge:!lab-edge2"
    assert limit_with_files_resolved(None) is None
