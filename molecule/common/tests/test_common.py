"""What the common role leaves on a host, read back from the host itself.

Expected values come from the role's defaults, so the tests follow the role's documented behaviour. The same
file is run against an unconverged host by tests/integration/test_common_verifier.py, where it must fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles/common"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
ROLE_VARS = yaml.safe_load((ROLE / "vars/main.yml").read_text())
CONTAINER_TYPES = ROLE_VARS["common_container_virtualization_types"]


def config_lines(content: str) -> list[str]:
    return [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_container(host) -> bool:
    facts = host.ansible("setup", "gather_subset=!all,virtual")["ansible_facts"]
    return facts["ansible_virtualization_role"] == "guest" and facts["ansible_virtualization_type"] in CONTAINER_TYPES


def test_kernel_modules_are_persisted_for_boot(host) -> None:
    modules = host.file(ROLE_VARS["common_modules_load_file"])
    assert modules.exists
    assert modules.user == "root"
    assert modules.mode == 0o644
    assert config_lines(modules.content_string) == DEFAULTS["common_kernel_modules"]


def test_sysctls_are_persisted_for_boot(host) -> None:
    sysctls = host.file(ROLE_VARS["common_sysctl_file"])
    assert sysctls.exists
    persisted = dict((part.strip() for part in line.split("=", 1)) for line in config_lines(sysctls.content_string))
    assert persisted == {key: str(value) for key, value in DEFAULTS["common_sysctls"].items()}


def test_no_swap_is_declared_in_fstab(host) -> None:
    for line in config_lines(host.file("/etc/fstab").content_string):
        fields = line.split()
        assert not (len(fields) >= 3 and fields[2] == "swap"), f"active swap entry left in /etc/fstab: {line}"


def test_swap_is_off_where_the_kernel_is_ours(host) -> None:
    if is_container(host):
        pytest.skip("a container's swap belongs to the machine under it; the role only edits /etc/fstab there")
    assert host.run("swapon --noheadings --show").stdout.strip() == ""


def test_running_kernel_has_the_settings_where_the_kernel_is_ours(host) -> None:
    if is_container(host):
        pytest.skip("a container cannot load modules or set sysctls; the role only persists them there")
    for key, value in DEFAULTS["common_sysctls"].items():
        assert host.sysctl(key) == value


def test_base_packages_are_installed(host) -> None:
    for name in DEFAULTS["common_packages"]:
        assert host.package(name).is_installed, name


def test_time_sync_daemon_is_enabled(host) -> None:
    assert host.service(DEFAULTS["common_time_sync"]).is_enabled


def test_etc_hosts_names_every_managed_host(host) -> None:
    variables = host.ansible.get_variables()
    managed = variables["groups"]["sensorstack"]
    content = host.file("/etc/hosts").content_string
    begin, end = "# BEGIN sensorstack managed hosts", "# END sensorstack managed hosts"
    assert begin in content
    assert end in content
    block = content.split(begin, 1)[1].split(end, 1)[0]
    named = {name for line in config_lines(block) for name in line.split()[1:]}
    assert set(managed) <= named
