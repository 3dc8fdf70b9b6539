"""The container runtime checks: every problem is found, every message names the variable, defaults pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.filter.runtime_checks import (
    FilterModule,
    agreement_problems,
    containerd_problems,
    docker_problems,
    url_problem,
)

ROLES = Path(__file__).resolve().parents[2] / "roles"
DOCKER_DEFAULTS = yaml.safe_load((ROLES / "docker/defaults/main.yml").read_text())
CONTAINERD_DEFAULTS = yaml.safe_load((ROLES / "containerd/defaults/main.yml").read_text())
LAB_MIRROR = {"registry": "docker.io", "mirrors": [{"url": "https://mirror.lab.example:5000"}]}


def test_the_role_defaults_pass() -> None:
    resolved = {key: value for key, value in DOCKER_DEFAULTS.items() if "{{" not in str(value)}
    assert docker_problems(resolved) == []
    resolved = {key: value for key, value in CONTAINERD_DEFAULTS.items() if "{{" not in str(value)}
    assert containerd_problems(resolved) == []


def test_only_the_variables_given_are_checked() -> None:
    """Preflight passes the inventory's variables alone; the roles' defaults are not there."""
    assert docker_problems({}) == []
    assert containerd_problems({}) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://mirror.lab.example:5000",
        "http://10.0.0.5:5001",
        "https://mirror.lab.example/v2/proxy",
        "http://[fd00::5]:5000",
        "https://registry-mirror",
    ],
)
def test_registry_urls_docker_and_containerd_accept(url: str) -> None:
    assert url_problem("docker_registry_mirrors[0]", url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mirror.lab.example:5000", "is not an http or https URL"),
        ("ftp://mirror.lab.example", "is not an http or https URL"),
        ("https://", "has no host"),
        ("https://mirror:http", "has an invalid port"),
        ("https://mirror:0", "has an invalid port"),
        ("https://mirror:99999", "has an invalid port"),
        ("https://user:secret@mirror", "carries credentials"),
        ("https://mirror/?a=1", "has a query or fragment"),
        ("https://mirror/#top", "has a query or fragment"),
        ("https://mir ror", "is not a URL"),
        ("", "is not a URL"),
        (5000, "is not a URL"),
    ],
)
def test_malformed_registry_urls_are_named_with_the_reason(url: Any, reason: str) -> None:
    problem = url_problem("docker_registry_mirrors[1]", url)
    assert problem is not None
    assert problem.startswith(f"docker_registry_mirrors[1]: {url!r} ")
    assert reason in problem


# --- docker -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "kind"),
    [("log-level=debug", "a string"), (["live-restore"], "a list"), (42, "an integer"), (None, "null")],
)
def test_daemon_options_that_are_not_a_dict_are_named(options: Any, kind: str) -> None:
    [problem] = docker_problems({"docker_daemon_options": options})
    assert problem.startswith(f"docker_daemon_options: {options!r} is {kind}, not a dict")


def test_types_are_named_as_yaml_names_them_whatever_subclass_ansible_passes() -> None:
    class TaggedStr(str):
        pass

    [problem] = docker_problems({"docker_daemon_options": TaggedStr("a=b")})
    assert problem.startswith("docker_daemon_options: 'a=b' is a string, not a dict")


@pytest.mark.parametrize(
    ("key", "advice"),
    [
        ("exec-opts", "docker_cgroup_driver"),
        ("log-driver", "docker_log_driver"),
        ("log-opts", "docker_log_options"),
        ("registry-mirrors", "docker_registry_mirrors"),
        ("data-root", "docker_data_root"),
        ("hosts", "-H fd://"),
        ("containerd", "--containerd"),
    ],
)
def test_daemon_options_may_not_repeat_what_a_variable_or_the_unit_sets(key: str, advice: str) -> None:
    [problem] = docker_problems({"docker_daemon_options": {key: "x", "live-restore": True}})
    assert problem.startswith(f"docker_daemon_options[{key!r}]: ")
    assert advice in problem


def test_other_daemon_options_pass() -> None:
    options = {"live-restore": True, "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}]}
    assert docker_problems({"docker_daemon_options": options}) == []


def test_log_options_must_be_strings_and_the_message_shows_how_to_write_them() -> None:
    problems = docker_problems({"docker_log_options": {"max-size": "10m", "max-file": 3, "compress": True}})
    assert problems == [
        "docker_log_options['max-file']: 3 is an integer, but dockerd takes only strings here (quote it: \"3\")",
        "docker_log_options['compress']: True is a boolean, but dockerd takes only strings here (quote it: \"true\")",
    ]


def test_log_options_that_are_not_a_dict_are_named() -> None:
    [problem] = docker_problems({"docker_log_options": "max-size=10m"})
    assert problem.startswith("docker_log_options: 'max-size=10m' is a string, not a dict")


def test_each_malformed_docker_mirror_is_named_by_index() -> None:
    problems = docker_problems({"docker_registry_mirrors": ["https://ok.example", "mirror.example", "https://"]})
    assert [problem.split(":")[0] for problem in problems] == [
        "docker_registry_mirrors[1]",
        "docker_registry_mirrors[2]",
    ]
    assert docker_problems({"docker_registry_mirrors": "https://mirror.example"}) == [
        "docker_registry_mirrors: 'https://mirror.example' is not a list of URLs"
    ]


@pytest.mark.parametrize(("root", "ok"), [("", True), ("/srv/docker", True), ("srv/docker", False), (7, False)])
def test_the_data_root_is_empty_or_absolute(root: Any, ok: bool) -> None:
    problems = docker_problems({"docker_data_root": root})
    assert problems == ([] if ok else [f"docker_data_root: {root!r} is not an absolute path"])


def test_the_repository_url_must_be_a_url() -> None:
    [problem] = docker_problems({"docker_repo_url": "download.docker.com/linux/debian"})
    assert problem.startswith("docker_repo_url: ")


# --- containerd ---------------------------------------------------------------------------------------------------


def test_well_formed_registry_mirrors_pass() -> None:
    mirrors = [
        LAB_MIRROR,
        {
            "registry": "registry.lab.example:5000",
            "server": "https://registry.lab.example:5000",
            "mirrors": [
                {"url": "http://10.0.0.5:5001", "capabilities": ["pull"], "skip_verify": True, "ca": "/etc/ca.pem"}
            ],
        },
        {"registry": "_default", "mirrors": [{"url": "https://all.lab.example"}]},
    ]
    assert containerd_problems({"containerd_registry_mirrors": mirrors}) == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {**LAB_MIRROR, "registry": "https://docker.io"},
            "containerd_registry_mirrors[0].registry: 'https://docker.io'",
        ),
        ({**LAB_MIRROR, "registry": "docker.io/library"}, "containerd_registry_mirrors[0].registry"),
        ({**LAB_MIRROR, "server": "registry-1.docker.io"}, "containerd_registry_mirrors[0].server: "),
        ({**LAB_MIRROR, "mirrors": []}, "containerd_registry_mirrors[0].mirrors: [] is not a non-empty list"),
        ({**LAB_MIRROR, "mirrors": ["https://m.example"]}, "containerd_registry_mirrors[0].mirrors[0]: 'https://m"),
        (
            {**LAB_MIRROR, "mirrors": [{"url": "mirror.lab.example:5000"}]},
            "containerd_registry_mirrors[0].mirrors[0].url: 'mirror.lab.example:5000' is not an http or https URL",
        ),
        (
            {**LAB_MIRROR, "mirrors": [{"url": "https://m.example", "capabilities": ["pull", "delete"]}]},
            "containerd_registry_mirrors[0].mirrors[0].capabilities: ['pull', 'delete'] must be",
        ),
        (
            {**LAB_MIRROR, "mirrors": [{"url": "https://m.example", "ca": "certs/ca.pem"}]},
            "containerd_registry_mirrors[0].mirrors[0].ca: 'certs/ca.pem' is not an absolute path",
        ),
        ("docker.io", "containerd_registry_mirrors[0]: 'docker.io' is not a dict"),
    ],
)
def test_malformed_registry_mirrors_are_named_by_position(entry: Any, expected: str) -> None:
    [problem] = containerd_problems({"containerd_registry_mirrors": [entry]})
    assert problem.startswith(expected)


def test_a_registry_listed_twice_is_reported() -> None:
    problems = containerd_problems({"containerd_registry_mirrors": [LAB_MIRROR, LAB_MIRROR]})
    assert problems == ["containerd_registry_mirrors: registry 'docker.io' is listed twice"]


def test_mirrors_need_the_hosts_directory() -> None:
    problems = containerd_problems({"containerd_registry_mirrors": [LAB_MIRROR], "containerd_registry_config_path": ""})
    assert problems == ["containerd_registry_config_path: empty, but containerd_registry_mirrors needs the directory"]


@pytest.mark.parametrize("variable", ["containerd_registry_config_path", "containerd_cni_bin_dir"])
def test_directories_are_absolute(variable: str) -> None:
    assert containerd_problems({variable: "etc/containerd"}) == [
        f"{variable}: 'etc/containerd' is not an absolute path"
    ]


@pytest.mark.parametrize("image", ["https://registry.k8s.io/pause:3.10", "registry.k8s.io/pause 3.10", 3.1])
def test_the_sandbox_image_must_be_an_image_reference(image: Any) -> None:
    [problem] = containerd_problems({"containerd_sandbox_image": image})
    assert problem.startswith(f"containerd_sandbox_image: {image!r} is not an image reference")


# --- docker and containerd together -------------------------------------------------------------------------------

PAIRS = [["docker_install_source", "containerd_install_source"], ["docker_containerd_version", "containerd_version"]]


def test_settings_both_roles_hold_must_agree() -> None:
    settings = {
        "docker_install_source": "distro",
        "containerd_install_source": "repo",
        "docker_containerd_version": "1.7.28",
        "containerd_version": "1.7.28",
    }
    assert agreement_problems(settings, PAIRS) == [
        "docker_install_source is 'distro' but containerd_install_source is 'repo': Docker's packages and "
        "containerd's must come from the same place, so set both alike"
    ]


def test_a_setting_only_one_role_holds_needs_no_agreement() -> None:
    assert agreement_problems({"docker_install_source": "distro", "containerd_install_source": None}, PAIRS) == []
    assert agreement_problems({"containerd_version": "2.1.4"}, PAIRS) == []


def test_the_checks_are_exposed_as_filters() -> None:
    filters = FilterModule().filters()
    assert filters["docker_problems"] is docker_problems
    assert filters["containerd_problems"] is containerd_problems
    assert filters["runtime_agreement_problems"] is agreement_problems


def test_the_docker_and_containerd_settings_that_must_agree_are_defined_once() -> None:
    settings = {"docker_repo_url": "https://a.example/debian", "containerd_repo_url": "https://b.example/debian"}
    assert agreement_problems(settings) == [
        "docker_repo_url is 'https://a.example/debian' but containerd_repo_url is 'https://b.example/debian': "
        "Docker's packages and containerd's must come from the same place, so set both alike"
    ]
