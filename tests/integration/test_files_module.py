"""sensorstack.iot.files run by Ansible on this machine, each test in its own temporary directory: the files, modes,
owners, checks and diffs a user gets, and what a rerun, check mode and a refused content leave behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .ansible_module import run_module


def place(check: bool = False, diff: bool = False, no_log: bool = False, **args: Any) -> dict[str, Any]:
    return run_module("sensorstack.iot.files", args, check=check, diff=diff, no_log=no_log)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree(tmp_path: Path) -> dict[str, Any]:
    """A directory, a file in it with the task-wide mode, and a script with its own mode that sh checks first."""
    return {
        "owner": "root",
        "group": "nogroup",
        "mode": "0640",
        "directory_mode": "0750",
        "files": [
            {"path": str(tmp_path / "app"), "state": "directory"},
            {"path": str(tmp_path / "app/app.conf"), "content": "level = info\n"},
            {
                "path": str(tmp_path / "app/run.sh"),
                "content": "#!/bin/sh\nexec true\n",
                "mode": "0700",
                "validate": "sh -n %s",
            },
        ],
    }


def test_a_directory_and_its_files_are_placed_in_one_call_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    first = place(**tree(tmp_path))
    assert not first.get("failed"), first
    assert first["changed"]
    assert first["changed_paths"] == [
        str(tmp_path / "app"),
        str(tmp_path / "app/app.conf"),
        str(tmp_path / "app/run.sh"),
    ]
    assert (tmp_path / "app/app.conf").read_text() == "level = info\n"
    assert (mode(tmp_path / "app"), mode(tmp_path / "app/app.conf"), mode(tmp_path / "app/run.sh")) == (
        0o750,
        0o640,
        0o700,
    )
    assert (tmp_path / "app/app.conf").stat().st_gid == (tmp_path / "app").stat().st_gid != 0
    again = place(**tree(tmp_path))
    assert not again["changed"], again
    assert again["changed_paths"] == []
    assert [result["changed"] for result in again["results"]] == [False, False, False]


def test_check_mode_reports_what_would_change_and_writes_nothing(tmp_path: Path) -> None:
    result = place(check=True, **tree(tmp_path))
    assert result["changed"]
    assert len(result["changed_paths"]) == 3
    assert not (tmp_path / "app").exists()


def test_only_the_file_that_differs_changes_and_the_diff_shows_its_text(tmp_path: Path) -> None:
    place(**tree(tmp_path))
    changed = tree(tmp_path)
    changed["files"][1]["content"] = "level = debug\n"
    result = place(diff=True, **changed)
    assert result["changed_paths"] == [str(tmp_path / "app/app.conf")]
    assert result["diff"] == [
        {
            "before_header": str(tmp_path / "app/app.conf"),
            "after_header": str(tmp_path / "app/app.conf"),
            "before": "level = info\n",
            "after": "level = debug\n",
        }
    ]
    assert (tmp_path / "app/app.conf").read_text() == "level = debug\n"
    assert mode(tmp_path / "app/app.conf") == 0o640, "the new file has the mode before it is renamed into place"
    assert sorted(os.listdir(tmp_path / "app")) == ["app.conf", "run.sh"], "no temporary file is left"


def test_a_mode_changed_by_hand_is_put_back_without_rewriting_the_file(tmp_path: Path) -> None:
    place(**tree(tmp_path))
    conf = tmp_path / "app/app.conf"
    conf.chmod(0o666)
    inode = conf.stat().st_ino
    result = place(**tree(tmp_path))
    assert result["changed_paths"] == [str(conf)]
    assert mode(conf) == 0o640
    assert conf.stat().st_ino == inode


def test_a_content_the_check_refuses_never_replaces_the_file(tmp_path: Path) -> None:
    place(**tree(tmp_path))
    broken = tree(tmp_path)
    broken["files"][1]["content"] = "level = warn\n"
    broken["files"][2]["content"] = "#!/bin/sh\nif then fi\n"
    result = place(**broken)
    assert result.get("failed"), result
    assert result["msg"] == f"{tmp_path / 'app/run.sh'}: the new content failed validation (sh -n %s)"
    assert result["rc"] != 0
    assert (tmp_path / "app/run.sh").read_text() == "#!/bin/sh\nexec true\n"
    assert (tmp_path / "app/app.conf").read_text() == "level = warn\n", "the entries before it were placed"
    assert sorted(os.listdir(tmp_path / "app")) == ["app.conf", "run.sh"], "no temporary file is left"


def test_absent_removes_a_file_and_a_directory_with_what_it_holds(tmp_path: Path) -> None:
    place(**tree(tmp_path))
    (tmp_path / "stale.conf").write_text("old\n")
    result = place(
        files=[
            {"path": str(tmp_path / "app"), "state": "absent"},
            {"path": str(tmp_path / "stale.conf"), "state": "absent"},
        ]
    )
    assert result["changed_paths"] == [str(tmp_path / "app"), str(tmp_path / "stale.conf")]
    assert list(tmp_path.iterdir()) == []
    assert not place(files=[{"path": str(tmp_path / "app"), "state": "absent"}])["changed"]


def test_an_exclusive_directory_loses_what_the_task_no_longer_places(tmp_path: Path) -> None:
    def task(*names: str) -> dict[str, Any]:
        files = [{"path": str(tmp_path / "app"), "state": "directory", "exclusive": True}]
        return {"files": files + [{"path": str(tmp_path / "app" / name), "content": f"{name}\n"} for name in names]}

    assert place(**task("a.conf", "b.crt"))["changed"]
    (tmp_path / "app/by-hand").mkdir()
    (tmp_path / "app/by-hand/note").write_text("x\n")
    (tmp_path / "outside.conf").write_text("kept\n")
    preview = place(check=True, **task("a.conf"))
    assert preview["changed_paths"] == [str(tmp_path / "app/b.crt"), str(tmp_path / "app/by-hand")]
    assert (tmp_path / "app/b.crt").exists(), "check mode removes nothing"
    result = place(**task("a.conf"))
    assert result["changed_paths"] == [str(tmp_path / "app/b.crt"), str(tmp_path / "app/by-hand")]
    assert sorted(os.listdir(tmp_path / "app")) == ["a.conf"]
    assert (tmp_path / "outside.conf").read_text() == "kept\n"
    assert not place(**task("a.conf"))["changed"]


def test_bad_entries_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    result = place(
        files=[
            {"path": str(tmp_path / "first.conf"), "content": "x\n"},
            {"path": "relative.conf", "content": "x\n"},
            {"path": str(tmp_path / "empty.conf")},
        ]
    )
    assert result.get("failed")
    assert result["msg"] == (
        "files[1] (relative.conf): path must be absolute; files[2] ("
        f"{tmp_path / 'empty.conf'}): a file needs content (render a template with the ansible.builtin.template lookup)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_whose_directory_is_missing_fails_with_the_path(tmp_path: Path) -> None:
    result = place(files=[{"path": str(tmp_path / "missing/app.conf"), "content": "x\n"}])
    assert result.get("failed")
    assert result["msg"] == f"{tmp_path / 'missing/app.conf'}: the directory {tmp_path / 'missing'} does not exist"


def test_the_result_shows_a_checksum_in_place_of_a_content(tmp_path: Path) -> None:
    secret = "token = s3cr3t-value\n"
    result = place(files=[{"path": str(tmp_path / "token.conf"), "content": secret, "mode": "0600"}])
    assert result["changed"]
    shown = result["invocation"]["module_args"]["files"][0]["content"]
    assert shown.startswith("(21 bytes, sha1 ")
    assert "s3cr3t" not in str(result)
    assert mode(tmp_path / "token.conf") == 0o600


def test_a_new_file_without_a_mode_gets_the_umask_mode_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    place(files=[{"path": str(tmp_path / "plain.conf"), "content": "a\n"}])
    assert mode(tmp_path / "plain.conf") == 0o666 & ~current_umask()
    (tmp_path / "plain.conf").chmod(0o604)
    place(files=[{"path": str(tmp_path / "plain.conf"), "content": "b\n"}])
    assert (tmp_path / "plain.conf").read_text() == "b\n"
    assert mode(tmp_path / "plain.conf") == 0o604


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
