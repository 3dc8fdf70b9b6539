"""files: the entries a task asks for, with the task-wide attributes filled in and every mistake named."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.files import (
    Entry,
    build_entries,
    content_summary,
    strays,
    text_diff,
)
from ansible_collections.sensorstack.iot.plugins.modules import files as files_module


def test_entries_keep_their_order_and_take_the_task_wide_attributes_they_omit() -> None:
    entries, problems = build_entries(
        [
            {"path": "/etc/app", "state": "directory"},
            {"path": "/etc/app/app.conf", "content": "a = 1\n"},
            {"path": "/etc/app/run.sh", "content": "#!/bin/sh\n", "mode": "0700", "owner": "app"},
            {"path": "/etc/app/old.conf", "state": "absent"},
        ],
        owner="root",
        group="app",
        mode="0640",
        directory_mode="0750",
    )
    assert problems == []
    assert entries == [
        Entry("/etc/app", "directory", owner="root", group="app", mode="0750"),
        Entry("/etc/app/app.conf", "file", "a = 1\n", owner="root", group="app", mode="0640"),
        Entry("/etc/app/run.sh", "file", "#!/bin/sh\n", owner="app", group="app", mode="0700"),
        Entry("/etc/app/old.conf", "absent", owner="root", group="app", mode="0640"),
    ]


def test_attributes_named_nowhere_stay_unset_so_the_host_keeps_them() -> None:
    entries, _ = build_entries([{"path": "/etc/a", "content": ""}])
    assert (entries[0].owner, entries[0].group, entries[0].mode) == (None, None, None)


def test_an_unquoted_octal_mode_read_by_yaml_as_a_number_is_the_same_mode() -> None:
    entries, _ = build_entries([{"path": "/etc/a", "content": "", "mode": 0o644}], directory_mode=0o755)
    assert entries[0].mode == "0644"
    entries, _ = build_entries([{"path": "/etc/d", "state": "directory"}], directory_mode=0o755)
    assert entries[0].mode == "0755"


def test_every_mistake_is_named_with_its_entry_before_anything_changes() -> None:
    _, problems = build_entries(
        [
            {"path": "etc/relative", "content": "x"},
            {"path": "/etc/no-content"},
            {"path": "/etc/dir", "state": "directory", "content": "x"},
            {"path": "/etc/check", "content": "x", "validate": "nft --check --file"},
            {"path": "/etc/gone", "state": "absent", "validate": "true %s"},
            {"path": "/etc/twice/", "content": "x"},
            {"path": "/etc/twice", "content": "y"},
            {"path": "/etc/only", "content": "x", "exclusive": True},
        ]
    )
    assert problems == [
        "files[0] (etc/relative): path must be absolute",
        "files[1] (/etc/no-content): a file needs content (render a template with the ansible.builtin.template lookup)",
        "files[2] (/etc/dir): content is for state=file, not state=directory",
        "files[3] (/etc/check): validate must contain %s, the place of the file to check",
        "files[4] (/etc/gone): validate is for state=file, not state=absent",
        "files[6] (/etc/twice): the path is listed twice",
        "files[7] (/etc/only): exclusive is for state=directory, not state=file",
    ]


def test_an_exclusive_directory_loses_only_what_no_entry_places() -> None:
    entries, problems = build_entries(
        [
            {"path": "/etc/app", "state": "directory", "exclusive": True},
            {"path": "/etc/app/app.conf", "content": "x"},
            {"path": "/etc/app/certs/ca.crt", "content": "x"},
            {"path": "/etc/app/old.conf", "state": "absent"},
            {"path": "/etc/appendix.conf", "content": "x"},
        ]
    )
    assert problems == []
    assert entries[0].exclusive and not entries[1].exclusive
    listing = ["app.conf", "certs", "dropped.crt", "old.conf", "appendix.conf", ".hidden"]
    assert strays("/etc/app", listing, entries) == [
        "/etc/app/.hidden",
        "/etc/app/appendix.conf",
        "/etc/app/dropped.crt",
    ]


def test_an_empty_content_is_a_content() -> None:
    entries, problems = build_entries([{"path": "/etc/empty", "content": ""}])
    assert problems == []
    assert entries[0].content == ""


def test_the_attributes_go_to_ansible_in_the_form_it_takes_them() -> None:
    entry = Entry("/etc/a", "file", "x", owner="root", group="app", mode="0640")
    assert entry.file_arguments() == {
        "path": "/etc/a",
        "owner": "root",
        "group": "app",
        "mode": "0640",
        "attributes": None,
        "secontext": [None, None, None],
    }
    assert entry.file_arguments("/etc/.a.tmp")["path"] == "/etc/.a.tmp"


def test_the_invocation_shows_a_size_and_checksum_never_the_text() -> None:
    secret = "password=hunter2\n"
    summary = content_summary(secret)
    assert summary == f"(17 bytes, sha1 {hashlib.sha1(secret.encode()).hexdigest()})"
    assert "hunter2" not in (summary or "")
    assert content_summary(None) is None


def test_a_diff_shows_the_old_and_new_text_and_none_for_a_binary_file() -> None:
    assert text_diff("/etc/a", b"old\n", "new\n") == {
        "before_header": "/etc/a",
        "after_header": "/etc/a",
        "before": "old\n",
        "after": "new\n",
    }
    assert text_diff("/etc/a", None, "new\n")["before"] == ""  # type: ignore[index]
    assert text_diff("/etc/a", b"\xff\xfe", "new\n") is None


class _RecordingModule:
    """What replace_file asks of AnsibleModule, recording the new file's mode when its attributes are set."""

    def __init__(self) -> None:
        self.modes_before_attributes: list[int] = []

    def set_fs_attributes_if_different(self, arguments: dict, changed: bool) -> bool:
        self.modes_before_attributes.append(os.stat(arguments["path"]).st_mode & 0o7777)
        os.chmod(arguments["path"], int(arguments["mode"], 8))
        return True

    def fail_json(self, **kwargs: object) -> None:
        raise AssertionError(kwargs)


@pytest.mark.parametrize("existing_mode", [None, 0o644])
def test_a_secret_is_never_in_a_file_more_open_than_its_owner_alone(tmp_path, existing_mode) -> None:
    path = tmp_path / "influxdb.env"
    if existing_mode is not None:
        path.write_text("OLD=1\n")
        path.chmod(existing_mode)
    module = _RecordingModule()
    old_umask = os.umask(0o022)
    try:
        files_module.replace_file(module, Entry(path=str(path), state="file", mode="0600"), b"PASSWORD=secret\n")
    finally:
        os.umask(old_umask)
    assert module.modes_before_attributes == [0o600]
    assert path.read_bytes() == b"PASSWORD=secret\n"
    assert path.stat().st_mode & 0o7777 == 0o600
