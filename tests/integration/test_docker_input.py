"""The docker and containerd roles reject wrong input with a message naming the variable, before any change.

Each case applies a role with one bad variable to a fresh lab container and checks that the run fails, that the
message names what to fix, and that the host reports no change. Then valid input runs in check mode. At the end
the host must still have neither Docker nor containerd, nor anything of their configuration.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, run_playbook, write_inventory

CASES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    # name: (role, variables, fragments the failure message must contain)
    "unknown Docker install source": ("docker", {"docker_install_source": "snap"}, ["docker_install_source", "snap"]),
    "unknown containerd install source": (
        "containerd",
        {"containerd_install_source": "apt"},
        ["containerd_install_source", "apt"],
    ),
    "Docker mirror without a scheme": (
        "docker",
        {"docker_registry_mirrors": ["https://mirror.lab.example", "mirror.lab.example:5000"]},
        ["docker_registry_mirrors[1]: 'mirror.lab.example:5000' is not an http or https URL"],
    ),
    "containerd mirror URL with a bad port": (
        "containerd",
        {"containerd_registry_mirrors": [{"registry": "docker.io", "mirrors": [{"url": "https://mirror:port"}]}]},
        ["containerd_registry_mirrors[0].mirrors[0].url: 'https://mirror:port' has an invalid port"],
    ),
    "containerd registry written as a URL": (
        "containerd",
        {"containerd_registry_mirrors": [{"registry": "https://docker.io", "mirrors": [{"url": "https://m.lab"}]}]},
        ["containerd_registry_mirrors[0].registry: 'https://docker.io' is not a registry host"],
    ),
    "daemon options as a key=value string": (
        "docker",
        {"docker_daemon_options": "live-restore=true"},
        ["docker_daemon_options: 'live-restore=true' is a string, not a dict"],
    ),
    "daemon options as a list": ("docker", {"docker_daemon_options": ["live-restore"]}, ["docker_daemon_options"]),
    "log option that is not a string": (
        "docker",
        {"docker_log_options": {"max-size": "10m", "max-file": 3}},
        # The message is inside a printed list, which escapes the quotes around max-file.
        ["docker_log_options[", "max-file", "]: 3 is an integer, but dockerd takes only strings here"],
    ),
    "daemon option that has its own variable": (
        "docker",
        {"docker_daemon_options": {"log-driver": "journald"}},
        ["docker_daemon_options['log-driver']: use docker_log_driver"],
    ),
    "Docker user that does not exist": (
        "docker",
        {"docker_users": ["root", "nobody-by-that-name"]},
        ["docker_users: nobody-by-that-name do not exist"],
    ),
    "Docker and containerd from different sources": (
        "docker",
        {"docker_install_source": "distro", "containerd_install_source": "repo"},
        ["docker_install_source is 'distro' but containerd_install_source is 'repo'"],
    ),
}


@pytest.fixture(scope="module")
def container(lab_host_factory) -> str:
    return lab_host_factory("docker-input", "debian12")


def apply_role(role: str, container: str, variables: dict[str, Any], directory: Path, *extra: str) -> PlaybookRun:
    playbook = directory / "play.yml"
    play = {"name": f"Apply the {role} role", "hosts": "sensorstack", "roles": [{"role": role}]}
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                **variables,
            },
            "children": {"sensorstack": {"hosts": {"runtime": {"ansible_host": container}}}},
        }
    }
    return run_playbook(str(playbook), write_inventory(directory, inventory), *extra)


@pytest.mark.parametrize("case", list(CASES))
def test_wrong_input_is_rejected_before_any_change(case: str, container: str, tmp_path: Path) -> None:
    role, variables, fragments = CASES[case]
    run = apply_role(role, container, variables, tmp_path)
    assert run.returncode != 0, run.output
    for fragment in fragments:
        assert fragment in run.output, f"{fragment!r} missing from:\n{run.output}"
    assert run.recap()["runtime"]["changed"] == 0, run.output


def test_check_mode_on_a_new_host_reports_the_changes_and_makes_none(container: str, tmp_path: Path) -> None:
    """Valid input in check mode: the packages are only pretended to be installed, so nothing may fail on them."""
    run = apply_role(
        "docker", container, {"docker_install_source": "distro", "docker_users": ["root"]}, tmp_path, "--check"
    )
    assert run.returncode == 0, run.output
    assert run.recap()["runtime"]["changed"] > 0


def test_the_rejected_runs_left_the_host_untouched(container: str) -> None:
    """Runs after all the runs above (pytest keeps file order): nothing of Docker or containerd is there."""
    for path in ("/etc/docker", "/etc/containerd", "/etc/apt/sources.list.d/docker.sources", "/usr/bin/containerd"):
        check = subprocess.run(["docker", "exec", container, "test", "-e", path], check=False)
        assert check.returncode != 0, f"{path} exists"
