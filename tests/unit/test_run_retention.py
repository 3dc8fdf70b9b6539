"""Run logs under the state folder: the newest N are kept, older runs go, nothing else is touched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sensorstack.cli import build_parser
from sensorstack.runner import DEFAULT_KEEP_RUNS, prune_runs, run_finished, runs_to_prune

RUNS = [
    "20261201T090000-100-site",
    "20261202T080000-200-site",
    "20261130T235959-300-verify",
    "20261202T080000-150-reset",
]


def test_the_oldest_runs_beyond_the_newest_n_are_pruned() -> None:
    assert runs_to_prune(RUNS, 2) == ["20261130T235959-300-verify", "20261201T090000-100-site"]


def test_zero_keeps_every_run_and_a_large_n_prunes_nothing() -> None:
    assert runs_to_prune(RUNS, 0) == []
    assert runs_to_prune(RUNS, 10) == []


def finished(folder: Path) -> None:
    """A run folder as ansible-runner leaves it at the end of a run: with its status."""
    folder.mkdir()
    (folder / "status").write_text("successful")


def test_folders_not_named_like_a_run_are_never_pruned(tmp_path: Path) -> None:
    for name in RUNS:
        finished(tmp_path / name)
    for name in ["notes", "20261202-site"]:
        (tmp_path / name).mkdir()
    removed = prune_runs(tmp_path, 1)
    assert sorted(path.name for path in removed) == sorted(set(RUNS) - {"20261202T080000-200-site"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["20261202-site", "20261202T080000-200-site", "notes"]


def test_the_cli_takes_the_number_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args(["deploy"]).keep_runs == DEFAULT_KEEP_RUNS
    assert build_parser().parse_args(["deploy", "--keep-runs", "3"]).keep_runs == 3
    monkeypatch.setenv("SENSORSTACK_KEEP_RUNS", "7")
    assert build_parser().parse_args(["deploy"]).keep_runs == 7


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_number_is_a_usage_error_naming_the_setting(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["deploy", "--keep-runs", value])
    assert stopped.value.code == 2
    assert "--keep-runs (or SENSORSTACK_KEEP_RUNS) must be a whole number >= 0" in capsys.readouterr().err


def test_a_run_still_going_is_neither_pruned_nor_counted(tmp_path: Path) -> None:
    # Two runs side by side with --keep-runs 1: the one that ends first must not remove the other's live folder.
    going = tmp_path / f"20261130T000000-{os.getpid()}-a1b2c3-site"
    going.mkdir()
    for name in RUNS:
        finished(tmp_path / name)
    prune_runs(tmp_path, 1)
    assert sorted(path.name for path in tmp_path.iterdir()) == [going.name, "20261202T080000-200-site"]


def test_a_killed_run_counts_as_finished_and_loses_the_environment_it_recorded(tmp_path: Path) -> None:
    # SIGKILL or a reboot: no status file, and the process named in the folder's name is gone.
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = tmp_path / f"20261203T000000-{gone.pid}-d4e5f6-site"
    killed.mkdir()
    (killed / "command").write_text(json.dumps({"command": ["ansible-playbook"], "env": {"GITHUB_TOKEN": "t0ken"}}))
    assert run_finished(killed)
    assert json.loads((killed / "command").read_text())["env"] == {}
    finished(tmp_path / "20261204T000000-100-site")
    assert [path.name for path in prune_runs(tmp_path, 1)] == [killed.name]
