"""`sensorstack render DIR`: which folders it takes, what it replaces, and what a failed render leaves behind."""

from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sensorstack import cli


def render(monkeypatch: pytest.MonkeyPatch, folder: Path, writes: dict[str, str], code: int, *extra: str) -> Any:
    """Run the render command with the playbook run replaced: it writes ``writes`` into the staging folder."""
    seen: dict[str, Any] = {}

    def fake_run(args: Any, console: Console, playbook: str, **options: Any) -> int:
        staging = Path(options["extra_vars"]["sensorstack_stack_render_dir"])
        seen.update(playbook=playbook, limit=args.limit, staging=staging)
        for name, text in writes.items():
            (staging / name).write_text(text)
        return code

    monkeypatch.setattr(cli, "run_command", fake_run)
    args = cli.build_parser().parse_args(["render", str(folder), "-q", *extra])
    seen["code"] = cli.render_command(args, Console(file=io.StringIO()))
    return seen


def test_a_render_replaces_the_previous_one_and_leaves_no_staging_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "manifests"
    render(monkeypatch, folder, {"namespace.yaml": "old", "grafana.yaml": "old"}, cli.EXIT_OK)

    seen = render(monkeypatch, folder, {"namespace.yaml": "new"}, cli.EXIT_OK)

    assert (seen["code"], seen["playbook"], seen["limit"]) == (cli.EXIT_OK, "stack", "control_plane[0]")
    assert {path.name: path.read_text() for path in folder.iterdir()} == {"namespace.yaml": "new"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifests"]


def test_a_failed_render_leaves_the_previous_one_as_it_was(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    render(monkeypatch, folder, {"namespace.yaml": "good"}, cli.EXIT_OK)

    seen = render(monkeypatch, folder, {"namespace.yaml": "half"}, 2)

    assert seen["code"] == 2
    assert {path.name: path.read_text() for path in folder.iterdir()} == {"namespace.yaml": "good"}


def test_a_render_that_wrote_nothing_leaves_the_previous_one_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As when -l or the inventory leaves the cluster play without a host.
    folder = tmp_path / "manifests"
    render(monkeypatch, folder, {"namespace.yaml": "good"}, cli.EXIT_OK)

    with pytest.raises(RuntimeError, match="the render wrote no file"):
        render(monkeypatch, folder, {}, cli.EXIT_OK)

    assert {path.name: path.read_text() for path in folder.iterdir()} == {"namespace.yaml": "good"}


def test_a_folder_with_files_a_render_did_not_write_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [namespace.yaml]\n")
    (tmp_path / "namespace.yaml").write_text("kept")

    with pytest.raises(ValueError, match=r"holds files a render did not write \(kustomization.yaml\)"):
        cli.render_folder(tmp_path)

    assert (tmp_path / "namespace.yaml").read_text() == "kept"


def test_the_render_runs_on_the_first_host_of_the_control_plane_group_the_playbooks_take(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = {"namespace.yaml": "new"}
    seen = render(monkeypatch, tmp_path / "out", written, cli.EXIT_OK, "-e", "sensorstack_control_plane_group=masters")

    assert seen["limit"] == "masters[0]"


ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def edge_play_hosts(*extra: str) -> list[str]:
    """The hosts ansible-playbook --list-hosts gives the edge play of playbooks/stack.yml on the built-in lab."""
    root = Path(cli.project_root())
    listed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/local", "playbooks/stack.yml", "--list-hosts", "--limit", "all", *extra],
        cwd=root,
        env=os.environ | {"ANSIBLE_CONFIG": str(root / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    play = listed.split("Deploy the telemetry stack on the edge hosts", 1)[1].split("play #", 1)[0]
    return re.findall(r"^\s{6}(\S+)$", play, flags=re.MULTILINE)


def test_a_render_reaches_no_edge_host_whatever_the_limit() -> None:
    """The edge play deploys on systemd: under a render (-l all or a group that holds a gateway) it has no host."""
    assert edge_play_hosts() == ["lab-edge1"]
    assert edge_play_hosts("--extra-vars", "sensorstack_stack_render_dir=/tmp/render") == []


def test_a_folder_on_another_file_system_than_its_parent_gets_the_render(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mount point (docker run -v $PWD/out:/out ... render /out): the staging folder beside it is on another file
    system, where a rename fails with EXDEV."""
    folder = tmp_path / "manifests"
    render(monkeypatch, folder, {"namespace.yaml": "old"}, cli.EXIT_OK)

    def no_rename_across(source: Any, target: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))

    monkeypatch.setattr(os, "rename", no_rename_across)
    monkeypatch.setattr(Path, "replace", no_rename_across)
    render(monkeypatch, folder, {"namespace.yaml": "new"}, cli.EXIT_OK)

    assert {path.name: path.read_text() for path in folder.iterdir()} == {"namespace.yaml": "new"}
