"""The sensorstack.iot.mosquitto_user module as a task runs it: through ansible-playbook, on real files.

Files written by Debian's mosquitto_passwd are the reference for "already correct"; the broker's acceptance of the
module's files is tested in test_mosquitto_broker.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.mosquitto_passwd import parse_passwd

from tests.tiers import needs

from .ansible_module import run_module

MODULE = "sensorstack.iot.mosquitto_user"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin")
needs_mosquitto_passwd = needs(MOSQUITTO_PASSWD is None, "needs Debian's mosquitto package")

PASSWORDS = {"alice": "alice-correct-horse-1", "bob": "bob-battery-staple-2"}


@pytest.fixture
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mosquitto-user-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def users(passwords: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "password": password} for name, password in passwords.items()]


def converge(path: Path, passwords: dict[str, str], *, check: bool = False, diff: bool = False, **options: Any):
    return run_module(MODULE, {"path": str(path), "users": users(passwords), **options}, check=check, diff=diff)


def hashed_by_mosquitto_passwd(path: Path, passwords: dict[str, str], *options: str) -> bytes:
    """A password file made by the real tool from a plain-text one (-U), so no password is in its argv."""
    assert MOSQUITTO_PASSWD is not None
    path.write_text("".join(f"{name}:{password}\n" for name, password in passwords.items()))
    subprocess.run([MOSQUITTO_PASSWD, *options, "-U", str(path)], check=True)
    return path.read_bytes()


def verifies(path: Path, passwords: dict[str, str]) -> bool:
    entries = {entry.name: entry.hash for entry in parse_passwd(path.read_text()) if entry.name is not None}
    return set(entries) == set(passwords) and all(
        entry is not None and entry.verify(passwords[name]) for name, entry in entries.items()
    )


# --- Files from mosquitto_passwd ----------------------------------------------------------------------------


@needs_mosquitto_passwd
@pytest.mark.parametrize("form", [[], ["-H", "sha512"]], ids=["pbkdf2-sha512 ($7$)", "sha512 ($6$)"])
def test_a_file_from_mosquitto_passwd_is_already_correct(directory: Path, form: list[str]) -> None:
    path = directory / "passwd"
    before = hashed_by_mosquitto_passwd(path, PASSWORDS, *form)
    result = converge(path, PASSWORDS)
    assert result["changed"] is False, result
    assert path.read_bytes() == before


@needs_mosquitto_passwd
def test_rehash_upgrades_old_sha512_entries_once(directory: Path) -> None:
    path = directory / "passwd"
    hashed_by_mosquitto_passwd(path, PASSWORDS, "-H", "sha512")
    first = converge(path, PASSWORDS, rehash=True)
    assert first["changed"] is True
    assert sorted(first["updated"]) == sorted(PASSWORDS)
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in path.read_text().splitlines())
    assert verifies(path, PASSWORDS)
    assert converge(path, PASSWORDS, rehash=True)["changed"] is False


@needs_mosquitto_passwd
def test_a_changed_password_rewrites_only_that_user(directory: Path) -> None:
    path = directory / "passwd"
    before = hashed_by_mosquitto_passwd(path, PASSWORDS).decode().splitlines()
    result = converge(path, PASSWORDS | {"bob": "bob-new-password-3"})
    assert result["changed"] is True
    assert result["updated"] == ["bob"]
    after = path.read_text().splitlines()
    assert after[0] == before[0], "alice's entry (and salt) must be kept"
    assert after[1] != before[1]
    assert verifies(path, PASSWORDS | {"bob": "bob-new-password-3"})


# --- Writing ------------------------------------------------------------------------------------------------


def test_a_new_file_is_private_and_a_rerun_changes_nothing(directory: Path) -> None:
    path = directory / "passwd"
    first = converge(path, PASSWORDS)
    assert first["changed"] is True
    assert first["added"] == ["alice", "bob"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verifies(path, PASSWORDS)
    written = path.read_bytes()
    second = converge(path, PASSWORDS)
    assert second["changed"] is False
    assert path.read_bytes() == written, "matching entries must keep their salts"


def test_single_user_tasks_add_update_and_remove(directory: Path) -> None:
    path = directory / "passwd"
    arguments = {"path": str(path), "name": "alice", "password": PASSWORDS["alice"]}
    assert run_module(MODULE, arguments)["added"] == ["alice"]
    assert run_module(MODULE, arguments)["changed"] is False
    assert run_module(MODULE, arguments | {"password": "alice-other-9"})["updated"] == ["alice"]
    assert verifies(path, {"alice": "alice-other-9"})
    removed = run_module(MODULE, {"path": str(path), "name": "alice", "state": "absent"})
    assert removed["removed"] == ["alice"]
    assert path.read_text() == ""
    assert run_module(MODULE, {"path": str(path), "name": "alice", "state": "absent"})["changed"] is False


def test_exclusive_removes_undeclared_users_and_keeps_comments(directory: Path) -> None:
    path = directory / "passwd"
    converge(path, PASSWORDS | {"carol": "carol-password-5"})
    path.write_text("# devices of lab 3\n" + path.read_text())
    kept = converge(path, PASSWORDS)
    assert kept["changed"] is False, "without exclusive, undeclared users stay"
    result = converge(path, PASSWORDS, exclusive=True)
    assert result["removed"] == ["carol"]
    assert path.read_text().splitlines()[0] == "# devices of lab 3"
    assert verifies(path, PASSWORDS)


def test_owner_group_and_mode_are_enforced_on_an_unchanged_file(directory: Path) -> None:
    path = directory / "passwd"
    converge(path, PASSWORDS)
    path.chmod(0o644)
    owner = pwd.getpwnam("mosquitto") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    result = converge(path, PASSWORDS, owner=owner.pw_name, group=owner.pw_name, mode="0640")
    assert result["changed"] is True
    assert result["added"] == result["updated"] == result["removed"] == []
    status = path.stat()
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (owner.pw_uid, 0o640)
    assert converge(path, PASSWORDS, owner=owner.pw_name, group=owner.pw_name, mode="0640")["changed"] is False


def test_an_empty_list_with_exclusive_locks_everybody_out(directory: Path) -> None:
    path = directory / "passwd"
    converge(path, PASSWORDS)
    result = converge(path, {}, exclusive=True)
    assert sorted(result["removed"]) == ["alice", "bob"]
    assert path.read_text() == ""


# --- Check and diff modes -----------------------------------------------------------------------------------


def test_check_mode_reports_the_change_without_writing(directory: Path) -> None:
    path = directory / "passwd"
    result = converge(path, PASSWORDS, check=True)
    assert result["changed"] is True
    assert result["added"] == ["alice", "bob"]
    assert not path.exists()
    converge(path, PASSWORDS)
    before = path.read_bytes()
    result = converge(path, {"alice": "alice-changed-6"}, check=True, exclusive=True)
    assert (result["changed"], result["updated"], result["removed"]) == (True, ["alice"], ["bob"])
    assert path.read_bytes() == before


def test_the_diff_names_users_and_never_shows_hashes_or_passwords(directory: Path) -> None:
    path = directory / "passwd"
    converge(path, PASSWORDS)
    hashes = [line.split(":", 1)[1] for line in path.read_text().splitlines()]
    result = converge(path, {"alice": "alice-changed-7", "dave": "dave-password-8"}, diff=True, exclusive=True)
    diff = result["diff"]
    assert diff["before"] == "alice\nbob\n"
    assert diff["after"] == "alice (password changes)\ndave\n"
    shown = json.dumps(result)
    for secret in [*hashes, "alice-changed-7", "dave-password-8", "$7$"]:
        assert secret not in shown


# --- Refusals -----------------------------------------------------------------------------------------------


def test_a_malformed_file_fails_and_is_left_untouched(directory: Path) -> None:
    path = directory / "passwd"
    converge(path, PASSWORDS)
    path.write_text(path.read_text() + "mallory:plain-text-secret\n")
    before = path.read_bytes()
    result = converge(path, PASSWORDS | {"carol": "carol-password-5"}, exclusive=True)
    assert result.get("failed") is True
    assert "line 3 (user 'mallory')" in result["msg"]
    assert "left alone" in result["msg"]
    assert "plain-text-secret" not in json.dumps(result)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ([{"name": "alice", "password": "a-1"}, {"name": "alice", "password": "a-2"}], "declared more than once"),
        ([{"name": "alice"}], "a password is required with state=present"),
        ([{"name": "ali:ce", "password": "a-1"}], "contains ':'"),
        ([{"name": "alice", "password": ""}], "cannot be empty"),
    ],
)
def test_an_impossible_declaration_fails_before_the_file_is_touched(
    directory: Path, declared: list[dict[str, str]], message: str
) -> None:
    path = directory / "passwd"
    result = run_module(MODULE, {"path": str(path), "users": declared})
    assert result.get("failed") is True
    assert message in result["msg"]
    assert not path.exists()


def test_a_missing_directory_fails_clearly(directory: Path) -> None:
    result = run_module(MODULE, {"path": str(directory / "absent" / "passwd"), "name": "alice", "password": "a-1"})
    assert result.get("failed") is True
    assert "does not exist" in result["msg"]


# --- Secrets ------------------------------------------------------------------------------------------------


def test_passwords_are_never_in_a_command_line_or_the_result(directory: Path) -> None:
    secret = "argv-watch-password-" + os.urandom(6).hex()
    seen: list[str] = []
    stop = threading.Event()

    def watch_command_lines() -> None:
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    if secret.encode() in cmdline.read_bytes():
                        seen.append(cmdline.parent.name)
                except OSError:
                    continue

    watcher = threading.Thread(target=watch_command_lines, daemon=True)
    watcher.start()
    try:
        result = converge(directory / "passwd", {"alice": secret})
    finally:
        stop.set()
        watcher.join()
    assert result["changed"] is True
    assert seen == [], "a process had the password in its command line"
    assert secret not in json.dumps(result)
    assert result["invocation"]["module_args"]["users"][0]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
