"""Pure parts of the etcd_snapshot module: the snapshots' names, which of them to remove, what etcdutl reports.

Kept apart from the module so that they are unit-tested without a node, a container runtime or etcd.
"""

from __future__ import annotations

import datetime
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

# etcd-<UTC time>-<label>.db: the time first, so that the names sort as the snapshots were taken.
SNAPSHOT_NAME = re.compile(r"^etcd-(?P<taken>\d{8}T\d{6}Z)-(?P<label>[A-Za-z0-9._-]+)\.db$")
LABEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# What etcdutl snapshot status --write-out=json reports, under the names the module returns.
STATUS_FIELDS = {"hash": "hash", "revision": "revision", "totalKey": "total_keys", "totalSize": "total_size"}


def whole_number(value: Any) -> int | None:
    """An int, or the digits of one as `-e name=value` passes it; None for anything else (a bool included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def settings_problems(settings: Mapping[str, Any], data_dir: str, prefix: str = "") -> list[str]:
    """What is wrong with the settings directory, keep, label, timeout and (the role's alone) fetch_dir, each named
    with the prefix: the module's options as they are, the role's variables as etcd_snapshot_<name>."""
    problems = []
    label, keep, timeout = settings["label"], settings["keep"], settings["timeout"]
    if not isinstance(label, str) or not LABEL.match(label):
        problems.append(
            f"{prefix}label must be 1 to 64 letters, digits, '.', '_' or '-' (it goes in a file name), got {label!r}"
        )
    if (whole_number(keep) or 0) < 1:
        problems.append(f"{prefix}keep must be at least 1 (the new snapshot is one of them), got {keep!r}")
    if (whole_number(timeout) or 0) < 1:
        problems.append(f"{prefix}timeout must be at least 1 (seconds), got {timeout!r}")
    directory = str(settings["directory"])
    inside = posixpath.normpath(directory) + "/"
    if not posixpath.isabs(directory):
        problems.append(f"{prefix}directory must be an absolute path on the node, got {directory!r}")
    elif inside.startswith(posixpath.normpath(data_dir) + "/"):
        problems.append(
            f"{prefix}directory {directory} is inside etcd's data folder {data_dir}, which etcd owns and kubeadm "
            "reset removes"
        )
    fetch_dir = settings.get("fetch_dir") or ""
    if not isinstance(fetch_dir, str) or (fetch_dir and not posixpath.isabs(fetch_dir)):
        problems.append(f"{prefix}fetch_dir must be an absolute path on the controller, or empty, got {fetch_dir!r}")
    return problems


def snapshot_name(taken: datetime.datetime, label: str) -> str:
    """The file name of a snapshot taken at this moment (any time zone: the name says UTC)."""
    # datetime.UTC is Python 3.11's; Ubuntu 22.04's nodes run 3.10.
    return f"etcd-{taken.astimezone(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{label}.db"  # noqa: UP017


def snapshots_beyond(names: Iterable[str], keep: int) -> list[str]:
    """The snapshots (of the module's own names, others are not its files) beyond the newest `keep`, oldest first."""
    own = sorted((match["taken"], name) for name in names if (match := SNAPSHOT_NAME.match(name)))
    return [name for _, name in own[: max(len(own) - keep, 0)]]


def snapshot_status(output: str) -> dict[str, Any]:
    """etcdutl snapshot status --write-out=json, checked: a snapshot etcdutl cannot read, or one without a single
    revision, is no backup."""
    try:
        status = json.loads(output)
    except ValueError as error:
        raise ValueError(f"etcdutl snapshot status printed no JSON ({error}): {output.strip()[:300]!r}") from error
    if not isinstance(status, dict) or any(not isinstance(status.get(field), int) for field in STATUS_FIELDS):
        raise ValueError(f"etcdutl snapshot status lacks {', '.join(STATUS_FIELDS)}: {output.strip()[:300]!r}")
    if status["revision"] < 1 or status["totalKey"] < 1:
        raise ValueError(f"the snapshot holds no revision of the cluster: {output.strip()[:300]!r}")
    checked = {name: status[field] for field, name in STATUS_FIELDS.items()}
    checked["etcd_version"] = str(status.get("version", ""))
    return checked
