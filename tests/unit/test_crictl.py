"""What the modules that work in a node's etcd container make of crictl's output (module_utils/crictl.py)."""

from __future__ import annotations

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.crictl import failure_summary, running_container


def test_the_etcd_container_must_be_the_only_one_running() -> None:
    assert running_container("3f1c9e\n", "etcd") == "3f1c9e"
    with pytest.raises(ValueError, match="no running container named etcd on this node"):
        running_container("", "etcd")
    with pytest.raises(ValueError, match="2 running containers named etcd"):
        running_container("3f1c9e\n77ab01\n", "etcd")


def test_a_failure_is_summed_up_by_its_first_lines_without_crictls_warnings() -> None:
    output = (
        'time="2026-12-05T10:00:00Z" level=warning msg="Config \\"/etc/crictl.yaml\\" does not exist"\n'
        "\n"
        "panic: assertion failed: Page expected to be: 23, but self identifies as 0\n"
        "\n"
        "goroutine 1 [running]:\n"
        "go.etcd.io/bbolt._assert(...)\n"
        "\t/go/pkg/mod/go.etcd.io/bbolt@v1.4.0/db.go:1387\n"
    )
    assert failure_summary(output) == (
        "panic: assertion failed: Page expected to be: 23, but self identifies as 0 / goroutine 1 [running]: / "
        "go.etcd.io/bbolt._assert(...)"
    )


def test_a_long_failure_is_cut_to_the_limit() -> None:
    assert failure_summary("x" * 2000) == "x" * 600
    assert failure_summary("") == ""
