"""sysctls: the sysctl.d file it writes, how it compares running values, and the module on a real folder.

The module runs against this machine's /proc/sys, so the tests only ask it to set names that already hold their
value or that cannot be written (kernel.ostype, read-only even for root): the host's kernel is never changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.sysctl import (
    differing,
    name_error,
    normalized,
    proc_path,
    render_file,
)

from .module_run import run_module_file

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": "1"}


def test_the_file_holds_the_settings_in_order_under_the_header() -> None:
    assert render_file(SETTINGS, "Managed by sensorstack.\nDo not edit.") == (
        "# Managed by sensorstack.\n# Do not edit.\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n"
    )


def test_names_map_to_proc_sys_with_dots_or_with_slashes_when_a_level_holds_a_dot() -> None:
    assert proc_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert proc_path("net/ipv4/conf/eth0.10/forwarding", "/x") == "/x/net/ipv4/conf/eth0.10/forwarding"


@pytest.mark.parametrize("name", ["", "net..ip_forward", "net/../../etc/passwd", "net.ipv4.ip forward", "a=b"])
def test_names_that_are_no_sysctl_are_refused(name: str) -> None:
    assert name_error(name)


def test_values_compare_token_by_token_as_the_kernel_prints_them() -> None:
    assert normalized("4096\t87380   6291456") == "4096 87380 6291456"


def test_a_boolean_is_written_as_the_kernels_one_or_zero() -> None:
    assert render_file({"net.ipv4.ip_forward": True, "kernel.panic_on_oops": False}, "h") == (
        "# h\nnet.ipv4.ip_forward = 1\nkernel.panic_on_oops = 0\n"
    )
    assert differing({"net.ipv4.ip_forward": True}, {"net.ipv4.ip_forward": "1"}) == []
    live = {"net.ipv4.tcp_rmem": "4096\t87380\t6291456", "net.ipv4.ip_forward": "0", "vm.swappiness": None}
    wanted = {"net.ipv4.tcp_rmem": "4096 87380 6291456", "net.ipv4.ip_forward": 1, "vm.swappiness": 10}
    assert differing(wanted, live) == ["net.ipv4.ip_forward", "vm.swappiness"]


def run_module(arguments: dict, check: bool = False, diff: bool = False) -> dict:
    return run_module_file("sysctls", arguments, check, diff)


def test_the_file_is_written_once_then_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "sysctl.d/90-sensorstack.conf"
    arguments = {"path": str(path), "settings": SETTINGS, "header": "Managed by sensorstack."}

    checked = run_module(arguments, check=True, diff=True)
    assert checked["changed"] and checked["file_changed"] and not path.exists()
    assert checked["diff"]["after"] == render_file(SETTINGS, "Managed by sensorstack.")

    assert run_module(arguments)["changed"]
    assert path.read_text() == render_file(SETTINGS, "Managed by sensorstack.")
    assert path.stat().st_mode & 0o777 == 0o644
    assert not run_module(arguments)["changed"]

    path.chmod(0o600)
    assert run_module(arguments)["changed"] and path.stat().st_mode & 0o777 == 0o644
    dropped = run_module(arguments | {"settings": {"net.ipv4.ip_forward": 1}})
    assert dropped["changed"] and "bridge" not in path.read_text(), "a sysctl no longer wanted leaves the file"


def test_a_running_value_that_holds_is_not_written(tmp_path: Path) -> None:
    ostype = Path("/proc/sys/kernel/ostype").read_text().strip()
    answer = run_module(
        {"path": str(tmp_path / "a.conf"), "settings": {"kernel.ostype": ostype}, "now": ["kernel.ostype"]}
    )
    assert answer["set_now"] == [] and answer["applied"] == ["kernel.ostype"] and answer["left"] == []


def test_a_read_only_or_missing_sysctl_is_left_only_where_asked(tmp_path: Path) -> None:
    settings = {"kernel.ostype": "Other", "net.sensorstack.none": 1}
    arguments = {"path": str(tmp_path / "a.conf"), "settings": settings, "now": list(settings)}

    left = run_module(arguments | {"now_where_writable": True})
    assert left["left"] == ["kernel.ostype", "net.sensorstack.none"] and left["set_now"] == []
    assert left["applied"] == []

    failed = run_module(arguments)
    assert failed["failed"] and "net.sensorstack.none" in failed["msg"]
    checked = run_module(arguments | {"now": ["net.sensorstack.none"]}, check=True)
    assert checked["set_now"] == ["net.sensorstack.none"], "check mode: its kernel module is not loaded yet"
    not_written = run_module(arguments | {"now": ["kernel.ostype"]})
    assert not_written["failed"] and "kernel.ostype" in not_written["msg"]
    assert Path("/proc/sys/kernel/ostype").read_text().strip() != "Other"


def test_bad_input_fails_naming_the_option_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    bad_name = run_module({"path": str(path), "settings": {"net..x": 1}})
    assert bad_name["failed"] and bad_name["msg"].startswith("settings:")
    not_set = run_module({"path": str(path), "settings": SETTINGS, "now": ["vm.swappiness"]})
    assert not_set["failed"] and not_set["msg"] == "now: vm.swappiness not in settings"
    assert not path.exists()
