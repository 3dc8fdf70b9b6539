"""text_file: one file replaced in one rename, with the owner and mode it is to keep, and nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import write_atomically


class Failed(Exception):
    pass


class FakeModule:
    """The part of AnsibleModule that write_atomically uses: fail_json ends the module."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def fail_json(self, **result: Any) -> None:
        raise Failed(result["msg"])


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_a_new_secret_file_is_created_with_its_mode_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    write_atomically(FakeModule(), str(path), "user:hash\n", new_file_mode=0o600)
    assert path.read_text() == "user:hash\n"
    assert path.stat().st_mode & 0o7777 == 0o600
    assert leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_mode_and_owner_when_no_mode_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("old\n")
    path.chmod(0o640)
    before = path.stat()
    write_atomically(FakeModule(), str(path), "new\n", new_file_mode=0o600)
    after = path.stat()
    assert path.read_text() == "new\n"
    assert (after.st_mode & 0o7777, after.st_uid, after.st_gid) == (0o640, before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino, "replaced by a rename, not written in place"


def test_a_mode_asked_for_applies_to_new_and_replaced_files(tmp_path: Path) -> None:
    existing = tmp_path / "existing.conf"
    existing.write_text("old\n")
    existing.chmod(0o600)
    for path in (existing, tmp_path / "new.conf"):
        write_atomically(FakeModule(), str(path), "a = 1\n", mode=0o644)
        assert path.stat().st_mode & 0o7777 == 0o644


def test_a_new_file_without_a_mode_gets_the_umasks(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomically(FakeModule(), str(tmp_path / "a.conf"), "x\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.conf").stat().st_mode & 0o7777 == 0o640


@pytest.fixture
def busy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that cannot be renamed over, as a bind-mounted one (EBUSY)."""
    path = tmp_path / "a.conf"
    path.write_text("old\n")

    def refuse(source: str, target: str) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "replace", refuse)
    return path


def test_a_failed_rename_leaves_the_old_file_whole_and_no_temporary_file(busy_file: Path) -> None:
    with pytest.raises(Failed, match=f"cannot write {busy_file}: .*busy"):
        write_atomically(FakeModule(), str(busy_file), "new\n")
    assert busy_file.read_text() == "old\n"
    assert leftovers(busy_file.parent) == []


def test_a_file_that_cannot_be_renamed_over_is_written_in_place_only_with_unsafe_writes(busy_file: Path) -> None:
    write_atomically(FakeModule(unsafe_writes=True), str(busy_file), "new\n")
    assert busy_file.read_text() == "new\n"
    assert leftovers(busy_file.parent) == []


def test_a_missing_folder_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "a.conf"
    with pytest.raises(Failed, match=f"cannot write {path}"):
        write_atomically(FakeModule(), str(path), "x\n")
