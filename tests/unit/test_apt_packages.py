"""apt_packages: which requests dpkg already satisfies, read from real dpkg-query output formats."""

from __future__ import annotations

import shlex

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.apt_packages import (
    InstalledPackage,
    PackageRequest,
    absent,
    dpkg_query_command,
    hold_command,
    parse_dpkg_query,
    parse_requests,
    to_hold,
    unsatisfied,
)

# dpkg-query --show with the module's format: installed, held and installed, removed with its config left, and a
# package whose unpacking failed (half-installed).
LISTING = "haproxy\tii \t3.0.11-1\nkubelet\thi \t1.35.0-1.1\ndocker.io\trc \t26.1.5+dfsg1-9\nnftables\tiH \t1.1.1-1\n"


def test_names_with_and_without_a_version_become_requests() -> None:
    assert parse_requests(["haproxy", "kubelet=1.35.0-*", "influxdb=1.6.7~rc0-1"]) == [
        PackageRequest("haproxy"),
        PackageRequest("kubelet", "1.35.0-*"),
        PackageRequest("influxdb", "1.6.7~rc0-1"),
    ]


@pytest.mark.parametrize("name", ["pkg>=1.0", "pkg:arm64", "./local.deb", "Haproxy", "x", "pkg=1.0 other", "pkg="])
def test_a_name_only_apt_reads_sends_the_whole_task_to_apt(name: str) -> None:
    assert parse_requests(["haproxy", name]) is None


def test_the_query_names_each_package_once_in_the_c_locale_and_survives_the_shell() -> None:
    command = dpkg_query_command(parse_requests(["kubelet=1.35.0-*", "haproxy", "kubelet"]) or [])
    words = shlex.split(command)
    assert words[:3] == ["LC_ALL=C", "dpkg-query", "--show"]
    assert words[3] == "--showformat=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n"
    assert words[4:] == ["--", "haproxy", "kubelet"]


def test_the_listing_gives_status_and_version_per_package() -> None:
    found = parse_dpkg_query(LISTING + "\n")
    assert found["kubelet"] == InstalledPackage("hi ", "1.35.0-1.1")
    assert [name for name, package in found.items() if package.installed] == ["haproxy", "kubelet"]


def test_installed_packages_at_a_matching_version_leave_nothing_to_do() -> None:
    requests = parse_requests(["haproxy", "kubelet=1.35.0-*", "haproxy=3.0.11-1"]) or []
    assert unsatisfied(requests, parse_dpkg_query(LISTING)) == []


def test_missing_removed_broken_and_other_versions_are_left_to_apt() -> None:
    requests = parse_requests(["docker.io", "nftables", "chrony", "kubelet=1.34.*", "haproxy=3.0.1"]) or []
    assert unsatisfied(requests, parse_dpkg_query(LISTING)) == [
        "docker.io",
        "nftables",
        "chrony",
        "kubelet=1.34.*",
        "haproxy=3.0.1",
    ]


def test_absent_packages_are_those_dpkg_has_no_version_of_not_other_versions_or_broken_ones() -> None:
    requests = parse_requests(["docker.io", "nftables", "chrony", "kubelet=1.34.*", "haproxy", "chrony=4.*"]) or []
    assert absent(requests, parse_dpkg_query(LISTING + "not-installed\tun \t\n")) == ["docker.io", "chrony"]
    assert absent(parse_requests(["not-installed"]) or [], parse_dpkg_query("not-installed\tun \t\n")) == [
        "not-installed"
    ]


def test_only_pinned_packages_that_dpkg_does_not_hold_are_to_be_held() -> None:
    requests = parse_requests(["kubelet=1.35.0-*", "haproxy=3.0.11-1", "docker.io", "chrony=4.*", "haproxy=3.*"]) or []
    assert to_hold(requests, parse_dpkg_query(LISTING)) == ["haproxy", "chrony"]


def test_the_hold_command_names_each_package_after_the_options() -> None:
    assert shlex.split(hold_command(["haproxy", "kubelet"])) == ["apt-mark", "hold", "--", "haproxy", "kubelet"]
