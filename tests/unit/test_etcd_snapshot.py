"""etcd_snapshot: the snapshots' names, which ones go, what etcdutl's report must hold, the settings' checks, and the
module on real folders with a double of crictl.

The double stands in for crictl and the etcd container behind it (the container sees the node's etcd data folder at
the same path, as kubeadm's pod does): `ps` prints the container ids it is given, `exec ... etcdctl snapshot save
FILE` writes FILE, `exec ... etcdutl snapshot status FILE` prints the report it is given. The cluster tier runs the
module against a real etcd (tests/cluster/test_upgrade.py).
"""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_snapshot import (
    settings_problems,
    snapshot_name,
    snapshot_status,
    snapshots_beyond,
)

from .module_run import run_module_file
from .role_files import RoleFiles

STATUS = {"hash": 1580366311, "revision": 4821, "totalKey": 1193, "totalSize": 5312512, "version": "3.6.0"}
ETCDCTL = ["/usr/local/bin/etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt"]
FAKE_CRICTL = """#!/usr/bin/env python3
import json, os, sys
arguments = sys.argv[1:]
with open(os.environ["FAKE_CRICTL_LOG"], "a") as log:
    log.write(json.dumps(arguments) + "\\n")
command = arguments[2]
if command == "ps":
    print(os.environ.get("FAKE_ETCD_IDS", "etcd0"))
elif command == "exec":
    inside = arguments[arguments.index("etcd0") + 1:]
    if inside[-3:-1] == ["snapshot", "save"]:
        with open(inside[-1], "wb") as snapshot:
            snapshot.write(b"bbolt /registry/deployments/default/probe")
    elif inside[1:3] == ["snapshot", "status"]:
        print(os.environ["FAKE_STATUS"])
"""


def moment(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def test_a_name_says_when_in_utc_and_why() -> None:
    taken = moment("2026-12-05T22:15:03+01:00")
    assert snapshot_name(taken, "before-upgrade-to-v1.34.2") == "etcd-20261205T211503Z-before-upgrade-to-v1.34.2.db"


def test_the_oldest_of_the_modules_own_snapshots_go_beyond_keep() -> None:
    names = [
        "etcd-20261205T211503Z-manual.db",
        "etcd-20261101T000000Z-before-upgrade-to-v1.34.2.db",
        "notes.txt",
        "etcd-20261204T090000Z-manual.db",
        "etcd-backup-from-elsewhere.db",
    ]
    assert snapshots_beyond(names, 2) == ["etcd-20261101T000000Z-before-upgrade-to-v1.34.2.db"]
    assert snapshots_beyond(names, 1) == [
        "etcd-20261101T000000Z-before-upgrade-to-v1.34.2.db",
        "etcd-20261204T090000Z-manual.db",
    ]
    assert snapshots_beyond(names, 3) == []


def test_etcdutls_report_is_read_under_the_modules_names() -> None:
    assert snapshot_status(json.dumps(STATUS)) == {
        "hash": 1580366311,
        "revision": 4821,
        "total_keys": 1193,
        "total_size": 5312512,
        "etcd_version": "3.6.0",
    }


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("Error: snapshot file has unexpected size", "printed no JSON"),
        (json.dumps({"hash": 1, "revision": 3}), "lacks hash, revision, totalKey, totalSize"),
        (json.dumps(STATUS | {"revision": 0, "totalKey": 0}), "holds no revision"),
    ],
)
def test_a_snapshot_etcdutl_cannot_vouch_for_is_refused(output: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        snapshot_status(output)


GOOD = {"directory": "/var/backups/etcd", "keep": 5, "label": "manual", "timeout": 300}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"label": "before upgrade"}, "etcd_snapshot_label must be 1 to 64 letters"),
        ({"label": "../../etc"}, "etcd_snapshot_label must be"),
        ({"keep": 0}, "etcd_snapshot_keep must be at least 1"),
        ({"timeout": 0}, "etcd_snapshot_timeout must be at least 1"),
        ({"directory": "backups"}, "etcd_snapshot_directory must be an absolute path"),
        ({"directory": "/var/lib/etcd/backups"}, "inside etcd's data folder /var/lib/etcd"),
        ({"directory": "/var/lib/etcd/"}, "inside etcd's data folder"),
        ({"fetch_dir": "backups/etcd"}, "etcd_snapshot_fetch_dir must be an absolute path on the controller"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(change: dict, problem: str) -> None:
    problems = settings_problems(GOOD | change, "/var/lib/etcd", prefix="etcd_snapshot_")
    assert len(problems) == 1 and problem in problems[0], problems


def test_a_folder_beside_the_data_folder_is_fine() -> None:
    assert settings_problems(GOOD | {"directory": "/var/lib/etcd-backups"}, "/var/lib/etcd") == []


def test_the_controllers_folder_is_absolute_or_empty() -> None:
    for fetch_dir in ("", "/srv/backups/etcd", "/srv/backups/etcd/"):
        assert settings_problems(GOOD | {"fetch_dir": fetch_dir}, "/var/lib/etcd") == []


def test_numbers_given_as_extra_vars_text_are_numbers() -> None:
    assert settings_problems(GOOD | {"keep": "1", "timeout": "60"}, "/var/lib/etcd") == []
    problems = settings_problems(GOOD | {"keep": "one", "timeout": True}, "/var/lib/etcd")
    assert [problem.split()[0] for problem in problems] == ["keep", "timeout"]


def test_the_roles_check_and_the_modules_are_one_function() -> None:
    role = RoleFiles.load("etcd_snapshot")
    settings = "{'directory': '/var/lib/etcd/x', 'keep': 0, 'label': 'manual', 'timeout': 300}"
    problems = role.render("{{ " + settings + " | sensorstack.iot.etcd_snapshot_problems(etcd_snapshot_data_dir) }}")
    assert [problem.split()[0] for problem in problems] == ["etcd_snapshot_keep", "etcd_snapshot_directory"]


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node's folders, with the double of crictl first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crictl = bin_dir / "crictl"
    crictl.write_text(FAKE_CRICTL)
    crictl.chmod(0o755)
    (tmp_path / "etcd").mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CRICTL_LOG", str(tmp_path / "crictl.log"))
    monkeypatch.setenv("FAKE_STATUS", json.dumps(STATUS))
    return tmp_path


def run_module(node: Path, check: bool = False, **arguments: object) -> dict:
    options = {"directory": str(node / "backups"), "data_dir": str(node / "etcd"), "etcdctl": ETCDCTL} | arguments
    return run_module_file("etcd_snapshot", options, check)


def crictl_calls(node: Path) -> list[list[str]]:
    log = node / "crictl.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_snapshot_is_saved_in_the_container_checked_and_moved_into_the_folder_for_root_only(node: Path) -> None:
    result = run_module(node, label="before-upgrade-to-v1.34.2", timeout=120)
    assert result["changed"] and not result.get("failed"), result
    path = Path(result["path"])
    assert path.parent == node / "backups" and path.name.endswith("-before-upgrade-to-v1.34.2.db")
    assert path.read_bytes() == b"bbolt /registry/deployments/default/probe"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (result["revision"], result["total_keys"], result["etcd_version"]) == (4821, 1193, "3.6.0")
    assert os.listdir(node / "etcd") == []  # nothing left in etcd's data folder
    save, status = crictl_calls(node)[1:]
    staged = str(node / "etcd" / f".sensorstack-{path.name}")
    assert save == ["--runtime-endpoint", "unix:///run/containerd/containerd.sock", "exec", "--timeout", "120",
                    "etcd0", *ETCDCTL, "snapshot", "save", staged]  # fmt: skip
    assert status[-4:] == ["snapshot", "status", staged, "--write-out=json"]


def test_the_oldest_snapshots_beyond_keep_go_and_other_files_stay(node: Path) -> None:
    backups = node / "backups"
    backups.mkdir()
    old = ["etcd-20261101T000000Z-manual.db", "etcd-20261102T000000Z-manual.db", "etcd-20261103T000000Z-manual.db"]
    for name in [*old, "keep-me.txt"]:
        (backups / name).write_text("old")
    result = run_module(node, keep=2)
    assert result["removed"] == [str(backups / name) for name in old[:2]]
    assert sorted(os.listdir(backups)) == sorted([old[2], Path(result["path"]).name, "keep-me.txt"])


def test_a_snapshot_etcdutl_cannot_vouch_for_fails_and_leaves_no_file(node: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STATUS", json.dumps(STATUS | {"revision": 0, "totalKey": 0}))
    result = run_module(node)
    assert result["failed"] and "no etcd snapshot taken: the snapshot holds no revision" in result["msg"], result
    assert os.listdir(node / "etcd") == [] and not (node / "backups").exists()


def test_an_existing_folder_keeps_its_mode(node: Path) -> None:
    (node / "backups").mkdir(mode=0o750)
    (node / "backups").chmod(0o750)
    result = run_module(node)
    assert not result.get("failed"), result
    assert stat.S_IMODE((node / "backups").stat().st_mode) == 0o750
    assert stat.S_IMODE(Path(result["path"]).stat().st_mode) == 0o600


def test_a_node_without_crictl_is_told_where_it_comes_from(node: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run_module(node)
    assert result["failed"] and "no crictl on this node: install cri-tools" in result["msg"], result


def test_a_node_without_a_running_etcd_is_refused(node: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_ETCD_IDS", "")
    result = run_module(node)
    assert result["failed"] and "no running container named etcd on this node" in result["msg"], result
    assert len(crictl_calls(node)) == 1


def test_check_mode_names_the_snapshot_and_what_would_go_and_touches_nothing(node: Path) -> None:
    backups = node / "backups"
    backups.mkdir()
    (backups / "etcd-20261101T000000Z-manual.db").write_text("old")
    result = run_module(node, check=True, keep=1)
    assert result["changed"] and result["removed"] == [str(backups / "etcd-20261101T000000Z-manual.db")], result
    assert os.listdir(backups) == ["etcd-20261101T000000Z-manual.db"]
    assert [call[2] for call in crictl_calls(node)] == ["ps"]


def test_bad_options_are_refused_before_crictl_runs(node: Path) -> None:
    result = run_module(node, keep=0, label="a b", directory=str(node / "etcd" / "backups"))
    assert result["failed"], result
    for option in ("label must be", "keep must be", "directory"):
        assert option in result["msg"], result["msg"]
    assert crictl_calls(node) == []
