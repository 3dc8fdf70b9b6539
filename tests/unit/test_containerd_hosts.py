"""containerd_hosts: what it writes and removes in a hosts directory, as pure plans and on a real folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.containerd_hosts import (
    is_marked,
    plan_hosts,
    registry_name_error,
)

from .module_run import run_module_file

ROOT = Path(__file__).resolve().parents[2]
MARKER = "# Managed by sensorstack (role containerd); edits here are overwritten."
DOCKER = f'{MARKER}\nserver = "https://registry-1.docker.io"\n\n[host."http://10.0.0.1:5000"]\n'
K8S = f'{MARKER}\nserver = "https://registry.k8s.io"\n'


def test_missing_and_different_files_are_written_and_equal_ones_left() -> None:
    plan = plan_hosts(
        {"docker.io": DOCKER, "registry.k8s.io": "old"},
        {"docker.io": DOCKER, "registry.k8s.io": K8S, "quay.io": K8S},
        MARKER,
    )
    assert plan.write == ("quay.io", "registry.k8s.io")
    assert plan.remove == ()


def test_only_marked_files_of_unlisted_registries_are_removed() -> None:
    current = {"docker.io": DOCKER, "quay.io": K8S, "ghcr.io": 'server = "https://ghcr.io"\n'}
    plan = plan_hosts(current, {"docker.io": DOCKER}, MARKER)
    assert plan.write == ()
    assert plan.remove == ("quay.io",), "a hand-written file (ghcr.io) stays"


def test_nothing_to_do_is_no_change() -> None:
    assert not plan_hosts({"docker.io": DOCKER}, {"docker.io": DOCKER}, MARKER).changed


def test_the_marker_counts_only_as_a_line_of_its_own() -> None:
    assert is_marked(DOCKER, MARKER)
    assert not is_marked(f"# not {MARKER}\n", MARKER)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x\0y"])
def test_names_that_are_not_a_folder_are_refused(name: str) -> None:
    assert registry_name_error(name)


@pytest.mark.parametrize("name", ["docker.io", "registry.k8s.io:443", "_default", "10.0.0.1:5000"])
def test_registry_names_containerd_looks_up_are_accepted(name: str) -> None:
    assert registry_name_error(name) is None


def run_module(arguments: dict, check: bool = False, diff: bool = False) -> dict:
    return run_module_file("containerd_hosts", arguments, check, diff)


def test_the_module_converges_a_folder_and_then_changes_nothing(tmp_path: Path) -> None:
    hosts = tmp_path / "certs.d"
    (hosts / "quay.io").mkdir(parents=True)
    (hosts / "quay.io/hosts.toml").write_text(K8S)
    (hosts / "ghcr.io").mkdir()
    (hosts / "ghcr.io/hosts.toml").write_text('server = "https://ghcr.io"\n')
    arguments = {"path": str(hosts), "marker": MARKER, "registries": {"docker.io": DOCKER, "registry.k8s.io": K8S}}

    checked = run_module(arguments, check=True, diff=True)
    assert checked["changed"] and checked["written"] == ["docker.io", "registry.k8s.io"]
    assert not (hosts / "docker.io").exists(), "check mode writes nothing"
    assert [entry["after"] for entry in checked["diff"]] == [DOCKER, K8S, ""]

    first = run_module(arguments)
    assert first["changed"] and first["removed"] == ["quay.io"]
    assert (hosts / "docker.io/hosts.toml").read_text() == DOCKER
    assert (hosts / "docker.io/hosts.toml").stat().st_mode & 0o777 == 0o644
    assert not (hosts / "quay.io/hosts.toml").exists()
    assert (hosts / "ghcr.io/hosts.toml").exists()

    assert run_module(arguments) == run_module(arguments) | {"changed": False}


def test_a_text_without_the_marker_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    answer = run_module({"path": str(tmp_path / "certs.d"), "marker": MARKER, "registries": {"docker.io": "x"}})
    assert answer["failed"] and "docker.io" in answer["msg"] and "marker" in answer["msg"]
    assert not (tmp_path / "certs.d").exists()


def test_an_empty_list_still_creates_the_folder_containerd_is_pointed_at(tmp_path: Path) -> None:
    arguments = {"path": str(tmp_path / "certs.d"), "marker": MARKER, "registries": {}}

    assert run_module(arguments, check=True)["changed"]
    assert not (tmp_path / "certs.d").exists()
    assert run_module(arguments)["changed"]
    assert (tmp_path / "certs.d").is_dir()
    assert not run_module(arguments)["changed"]
