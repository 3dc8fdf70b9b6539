"""What a sensorstack.iot.files task asks for, checked and ordered: pure functions, unit-tested without a host.

One task places several files and directories in one module run on the host, where one ansible.builtin.template,
copy or file task per path costs one to three module runs on every run, changed or not.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STATES = ("file", "directory", "absent")
# The options of one entry of ``files``; the task-wide owner, group, mode and directory_mode fill in what it omits.
ENTRY_OPTIONS: dict[str, dict[str, Any]] = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": list(STATES), "default": "file"},
    "content": {"type": "str", "no_log": False},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "raw"},
    "validate": {"type": "str"},
    "exclusive": {"type": "bool", "default": False},
}
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "files": {"type": "list", "elements": "dict", "required": True, "options": ENTRY_OPTIONS},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "raw"},
    "directory_mode": {"type": "raw"},
}


@dataclass(frozen=True)
class Entry:
    """One path of the task, with the task-wide attributes filled in."""

    path: str
    state: str
    content: str | None = None
    owner: str | None = None
    group: str | None = None
    mode: str | None = None
    validate: str | None = None
    exclusive: bool = False

    def file_arguments(self, path: str | None = None) -> dict[str, Any]:
        """The attributes in the form AnsibleModule.set_fs_attributes_if_different takes them."""
        return {
            "path": path or self.path,
            "owner": self.owner,
            "group": self.group,
            "mode": self.mode,
            "attributes": None,
            "secontext": [None, None, None],
        }


def _mode(value: Any) -> str | None:
    """A mode as the task gave it; an int from unquoted YAML (0644 read as 420) becomes its octal digits."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, "04o")
    return str(value)


def build_entries(
    files: Iterable[Mapping[str, Any]],
    owner: str | None = None,
    group: str | None = None,
    mode: Any = None,
    directory_mode: Any = None,
) -> tuple[list[Entry], list[str]]:
    """The entries in the task's order, and every problem with them, each naming the entry by its index and path."""
    entries: list[Entry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(files):
        path = str(item.get("path") or "")
        state = str(item.get("state") or "file")
        where = f"files[{index}] ({path or 'no path'})"
        content = item.get("content")
        validate = item.get("validate")
        if not posixpath.isabs(path):
            problems.append(f"{where}: path must be absolute")
        normalised = posixpath.normpath(path) if path else path
        if normalised in seen:
            problems.append(f"{where}: the path is listed twice")
        seen.add(normalised)
        if state == "file" and content is None:
            problems.append(
                f"{where}: a file needs content (render a template with the ansible.builtin.template lookup)"
            )
        if state != "file" and content is not None:
            problems.append(f"{where}: content is for state=file, not state={state}")
        if validate is not None and state != "file":
            problems.append(f"{where}: validate is for state=file, not state={state}")
        exclusive = bool(item.get("exclusive"))
        if exclusive and state != "directory":
            problems.append(f"{where}: exclusive is for state=directory, not state={state}")
        if validate is not None and "%s" not in validate:
            problems.append(f"{where}: validate must contain %s, the place of the file to check")
        default_mode = directory_mode if state == "directory" else mode
        entries.append(
            Entry(
                path=normalised,
                state=state,
                content=None if content is None else str(content),
                owner=item.get("owner") or owner,
                group=item.get("group") or group,
                mode=_mode(item["mode"] if item.get("mode") is not None else default_mode),
                validate=validate,
                exclusive=exclusive,
            )
        )
    return entries, problems


def strays(directory: str, names: Iterable[str], entries: Iterable[Entry]) -> list[str]:
    """What an exclusive ``directory`` holds (``names``, its listing) that the task does not place, as paths.

    A name is left to the task when it is an entry (an absent one removes itself) or lies on the way to one (a folder
    holding a listed file).
    """
    kept: set[str] = set()
    for path in (entry.path for entry in entries):
        relative = posixpath.relpath(path, directory)
        if relative != "." and not relative.startswith("../"):
            kept.add(relative.split("/", 1)[0])
    return [posixpath.join(directory, name) for name in sorted(names) if name not in kept]


def content_summary(content: str | None) -> str | None:
    """What the task's invocation shows in place of a file's content: its size and checksum, never the text."""
    if content is None:
        return None
    data = content.encode("utf-8")
    return f"({len(data)} bytes, sha1 {hashlib.sha1(data).hexdigest()})"


def text_diff(path: str, before: bytes | None, after: str | None) -> dict[str, str] | None:
    """A diff entry for a changed file, or None when the old content is not UTF-8 text (a binary file shows none)."""
    try:
        before_text = "" if before is None else before.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return {"before_header": path, "after_header": path, "before": before_text, "after": after or ""}
