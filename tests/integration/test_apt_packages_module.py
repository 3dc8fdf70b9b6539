"""sensorstack.iot.apt_packages in a lab container with the real dpkg and apt: what dpkg has installed spares the
apt run, what it lacks goes to apt, exactly as ansible.builtin.apt would do it.

The package apt installs comes from a flat repository inside the container (a file: source of two versions of one
.deb that dpkg-deb builds here), the container's only apt source: nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .ansible_module import run_module

pytestmark = pytest.mark.lab

PROBE = "sensorstack-probe"
REPOSITORY = "/srv/sensorstack-probe-repository"


def _build_probe_repository(directory: Path) -> Path:
    """A flat apt repository of sensorstack-probe 1.0-1 and 2.0-1 (Architecture: all, no files): the .debs and
    their Packages index."""
    repository = directory / "repository"
    repository.mkdir()
    index = []
    for version in ("1.0-1", "2.0-1"):
        tree = directory / version
        (tree / "DEBIAN").mkdir(parents=True)
        control = (
            f"Package: {PROBE}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: sensorstack <dev@sensorstack.invalid>\n"
            "Description: an empty package the apt_packages tests install\n"
        )
        (tree / "DEBIAN/control").write_text(control)
        deb = repository / f"{PROBE}_{version}_all.deb"
        build = ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)]
        subprocess.run(build, check=True, capture_output=True)
        data = deb.read_bytes()
        checksum = hashlib.sha256(data).hexdigest()
        index.append(f"{control}Filename: ./{deb.name}\nSize: {len(data)}\nSHA256: {checksum}\n")
    (repository / "Packages").write_text("\n".join(index) + "\n")
    return repository


@pytest.fixture(scope="module")
def host(lab_host_factory: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    container = lab_host_factory("apt-packages", "debian13")
    repository = _build_probe_repository(tmp_path_factory.mktemp("apt-packages"))
    subprocess.run(["docker", "cp", str(repository), f"{container}:{REPOSITORY}"], check=True)
    only_the_probe = (
        f"echo 'deb [trusted=yes] file:{REPOSITORY} ./' > /etc/apt/sources.list"
        " && apt-get update -qq -o APT::Update::Error-Mode=any"
    )
    prepared = subprocess.run(["docker", "exec", container, "sh", "-c", only_the_probe], capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    return container


def install(host: str, check: bool = False, **args: Any) -> dict[str, Any]:
    return run_module("sensorstack.iot.apt_packages", args, check=check, container=host)


def probe_status(host: str) -> str:
    shown = subprocess.run(
        ["docker", "exec", host, "dpkg-query", "--show", "--showformat=${db:Status-Abbrev}${Version}", PROBE],
        capture_output=True,
        text=True,
    )
    return shown.stdout.strip()


def test_installed_packages_report_no_change_and_apt_does_not_run(host: str) -> None:
    result = install(host, name=["dpkg", "bash"], update_cache=True, cache_valid_time=0)
    assert not result.get("failed"), result
    assert (result["changed"], result["apt_ran"], result["missing"]) == (False, False, []), result


def test_check_mode_runs_apt_for_a_missing_package_and_installs_nothing(host: str) -> None:
    result = install(host, check=True, name=[f"{PROBE}=1.0-*"], update_cache=True)
    assert not result.get("failed"), result
    assert (result["changed"], result["apt_ran"], result["missing"]) == (True, True, [f"{PROBE}=1.0-*"]), result
    assert probe_status(host) == ""


def test_a_missing_package_is_installed_by_apt_and_the_rerun_asks_dpkg_only(host: str) -> None:
    first = install(host, name=["bash", f"{PROBE}=1.0-*"], update_cache=True)
    assert not first.get("failed"), first
    assert (first["changed"], first["apt_ran"], first["missing"]) == (True, True, [f"{PROBE}=1.0-*"]), first
    assert probe_status(host) == "ii 1.0-1"
    again = install(host, name=["bash", f"{PROBE}=1.0-*"], update_cache=True)
    assert (again["changed"], again["apt_ran"]) == (False, False), again


def test_hold_pinned_holds_the_pinned_package_once(host: str) -> None:
    assert probe_status(host) == "ii 1.0-1"
    checked = install(host, check=True, name=["bash", f"{PROBE}=1.0-1"], hold_pinned=True)
    assert (checked["changed"], checked["apt_ran"], checked["held"]) == (True, False, [PROBE]), checked
    assert probe_status(host) == "ii 1.0-1"
    held = install(host, name=["bash", f"{PROBE}=1.0-1"], hold_pinned=True)
    assert (held["changed"], held["apt_ran"], held["held"]) == (True, False, [PROBE]), held
    assert probe_status(host) == "hi 1.0-1"
    again = install(host, name=["bash", f"{PROBE}=1.0-1"], hold_pinned=True)
    assert (again["changed"], again["apt_ran"], again["held"]) == (False, False, []), again


def test_a_version_apt_does_not_have_goes_to_apt_which_says_so(host: str) -> None:
    result = install(host, name=[f"{PROBE}=3.0-1"])
    assert result.get("failed"), result
    assert result["apt_ran"] is True, result
    assert "3.0-1" in result["msg"], result
    assert probe_status(host) == "hi 1.0-1"


def test_check_mode_reports_a_version_its_lists_do_not_hold_yet_as_a_change(host: str) -> None:
    # As for a package from a repository the same run adds: check mode refreshes no package lists.
    result = install(host, check=True, name=[f"{PROBE}=3.0-1"], update_cache=True)
    assert not result.get("failed"), result
    assert (result["changed"], result["msg"]) == (True, f"would install {PROBE}=3.0-1"), result
    assert any("apt's package lists do not hold" in str(warning) for warning in result.get("warnings", [])), result
    assert probe_status(host) == "hi 1.0-1"


def test_a_held_package_moved_to_a_new_pin_is_held_again(host: str) -> None:
    result = install(host, name=[f"{PROBE}=2.0-*"], allow_change_held_packages=True, hold_pinned=True)
    assert not result.get("failed"), result
    assert (result["changed"], result["apt_ran"]) == (True, True), result
    assert probe_status(host) == "hi 2.0-1"


def test_a_name_only_apt_reads_goes_to_apt(host: str) -> None:
    result = install(host, name=[f"{PROBE}:all"])
    assert not result.get("failed"), result
    assert (result["changed"], result["apt_ran"]) == (False, True), result
