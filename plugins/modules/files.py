#!/usr/bin/python
"""Place several files and directories on a host in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Ensure several files and directories hold what the task says, in one call
description:
  - Walks O(files) in order. A V(file) entry gets O(files[].content) when its text differs, written to a temporary
    file next to it, given its owner, group and mode, checked by O(files[].validate) and renamed over the old one,
    so a reader never sees a half-written file or, for a secret, a file with the wrong mode. A V(directory) entry is
    created (with its parents) when missing; an V(absent) entry is removed, a directory with what it holds. An
    V(exclusive) directory then loses whatever it holds that no entry of the task places.
    Owner, group and mode are set where they differ.
  - One module run for all the paths, where one M(ansible.builtin.template) or M(ansible.builtin.copy) task costs
    two module runs per path and one M(ansible.builtin.file) task one, on every run, changed or not.
  - Render templates on the controller with the C(ansible.builtin.template) lookup, which sees the same variables
    and templates directory as M(ansible.builtin.template).
  - The task's invocation shows each file's size and checksum in place of its content. A diff (C(--diff)) shows
    the content, so give a task that places a secret C(no_log=true), as for any other module.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  files:
    description: The paths, handled in this order (a directory before the files in it).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: What the path must be.
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The whole text of a V(file) entry (UTF-8). Required for V(file).
        type: str
      owner:
        description: Owner; O(owner) when omitted; left as it is when both are omitted.
        type: str
      group:
        description: Group; O(group) when omitted; left as it is when both are omitted.
        type: str
      mode:
        description:
          - Mode, as for M(ansible.builtin.file) (quote octal modes); O(mode) for a file and O(directory_mode)
            for a directory when omitted.
        type: raw
      validate:
        description:
          - A command that checks a new content before it replaces the file, with C(%s) where the temporary file's
            path goes (as for M(ansible.builtin.copy)). When it fails, the file keeps its old content and the task
            fails with the command's output. Runs only when the content changes.
        type: str
      exclusive:
        description:
          - For a V(directory) entry; the directory keeps only what the task places in it. After every entry is
            handled, anything else it holds directly (a file, a link, a folder with what is in it) is removed and
            reported among RV(changed_paths). A folder on the way to a listed path stays.
          - For a directory the role owns as a whole, so that a file dropped from the task's list goes too.
        type: bool
        default: false
  owner:
    description: The owner of every entry that names none.
    type: str
  group:
    description: The group of every entry that names none.
    type: str
  mode:
    description: The mode of every V(file) entry that names none.
    type: raw
  directory_mode:
    description: The mode of every V(directory) entry that names none.
    type: raw
notes:
  - A failure (a refused validation, a missing directory) stops at its entry; the entries before it stay placed,
    as with one task per path.
  - The parent directory of a V(file) entry must exist, or be an earlier V(directory) entry.
  - Attributes the task does not name are left as they are; a new file without a mode gets the one the umask
    gives, as with M(ansible.builtin.copy).
  - SELinux contexts are not managed (Debian and Ubuntu do not enable SELinux).
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Ensure the renewal script and its units are in place
  sensorstack.iot.files:
    owner: root
    group: root
    mode: "0644"
    files:
      - path: /usr/local/sbin/renew-certificates
        content: "{{ lookup('ansible.builtin.template', 'renew-certificates.sh.j2') }}"
        mode: "0700"
      - path: /etc/systemd/system/renew-certificates.service
        content: "{{ lookup('ansible.builtin.template', 'renew-certificates.service.j2') }}"
      - path: /etc/systemd/system/renew-certificates.timer
        content: "{{ lookup('ansible.builtin.template', 'renew-certificates.timer.j2') }}"
  register: renewal_files

- name: Reload systemd when a unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: renewal_files.changed_paths | select('search', '\\.(service|timer)$') | list | length > 0

- name: Ensure the configuration directory and a checked configuration are in place
  sensorstack.iot.files:
    files:
      - path: /etc/haproxy
        state: directory
        mode: "0755"
      - path: /etc/haproxy/haproxy.cfg
        content: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
        mode: "0644"
        validate: haproxy -c -f %s
"""

RETURN = r"""
changed_paths:
  description: The paths that changed (or would, in check mode), in the task's order.
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/renew-certificates.timer]
results:
  description: Every entry with its state and whether it changed.
  returned: always
  type: list
  elements: dict
  sample: [{path: /etc/haproxy/haproxy.cfg, state: file, changed: false}]
"""

import os  # noqa: E402
import shutil  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.files import (  # noqa: E402
    ARGUMENT_SPEC,
    Entry,
    build_entries,
    content_summary,
    strays,
    text_diff,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import write_replacement  # noqa: E402


def read_bytes(module: AnsibleModule, entry: Entry) -> bytes | None:
    """The file's bytes, or None when nothing is at the path."""
    if not os.path.lexists(entry.path):
        return None
    if os.path.islink(entry.path) or not os.path.isfile(entry.path):
        module.fail_json(msg=f"{entry.path} exists and is not a regular file", path=entry.path)
    try:
        with open(entry.path, "rb") as handle:
            return handle.read()
    except OSError as error:
        module.fail_json(msg=f"cannot read {entry.path}: {to_native(error)}", path=entry.path)
    return None  # not reached: fail_json exits


def replace_file(module: AnsibleModule, entry: Entry, data: bytes) -> None:
    """Write the new content next to the file, give it its attributes, check it, and rename it into place."""
    folder = os.path.dirname(entry.path)
    if not os.path.isdir(folder):
        module.fail_json(msg=f"{entry.path}: the directory {folder} does not exist", path=entry.path)
    temporary = None
    try:
        # The attributes the task leaves alone stay those of the file it replaces (a new file: the umask's). A mode
        # the task names is set below: until then the new content is readable by its owner alone, so that a secret
        # is never, even for a moment, in a file as open as the umask or the old file left it.
        temporary = write_replacement(entry.path, data, mode=0o600 if entry.mode is not None else None)
        module.set_fs_attributes_if_different(entry.file_arguments(temporary), False)
        if entry.validate:
            rc, out, err = module.run_command(entry.validate % temporary)
            if rc != 0:
                module.fail_json(
                    msg=f"{entry.path}: the new content failed validation ({entry.validate})",
                    path=entry.path,
                    rc=rc,
                    stdout=out,
                    stderr=err,
                )
        os.replace(temporary, entry.path)
    except OSError as error:
        module.fail_json(msg=f"cannot write {entry.path}: {to_native(error)}", path=entry.path)
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def ensure_file(module: AnsibleModule, entry: Entry, diffs: list[dict[str, str]]) -> bool:
    data = (entry.content or "").encode("utf-8")
    before = read_bytes(module, entry)
    if before == data:
        return module.set_fs_attributes_if_different(entry.file_arguments(), False)
    if module._diff:
        diff = text_diff(entry.path, before, entry.content)
        if diff is not None:
            diffs.append(diff)
    if not module.check_mode:
        replace_file(module, entry, data)
    return True


def ensure_directory(module: AnsibleModule, entry: Entry) -> bool:
    if os.path.lexists(entry.path) and not os.path.isdir(entry.path):
        module.fail_json(msg=f"{entry.path} exists and is not a directory", path=entry.path)
    created = not os.path.isdir(entry.path)
    if created and not module.check_mode:
        try:
            os.makedirs(entry.path)
        except OSError as error:
            module.fail_json(msg=f"cannot create {entry.path}: {to_native(error)}", path=entry.path)
    return module.set_fs_attributes_if_different(entry.file_arguments(), created)


def remove_strays(module: AnsibleModule, directory: Entry, entries: list[Entry]) -> list[str]:
    """Remove what the exclusive directory holds that no entry places; the removed paths."""
    if not os.path.isdir(directory.path):
        return []  # check mode: the directory is still to be created, and holds nothing
    try:
        names = os.listdir(directory.path)
    except OSError as error:
        module.fail_json(msg=f"cannot list {directory.path}: {to_native(error)}", path=directory.path)
    removed = strays(directory.path, names, entries)
    for path in removed:
        ensure_absent(module, Entry(path=path, state="absent"))
    return removed


def ensure_absent(module: AnsibleModule, entry: Entry) -> bool:
    if not os.path.lexists(entry.path):
        return False
    if not module.check_mode:
        try:
            if os.path.isdir(entry.path) and not os.path.islink(entry.path):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError as error:
            module.fail_json(msg=f"cannot remove {entry.path}: {to_native(error)}", path=entry.path)
    return True


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    entries, problems = build_entries(
        params["files"], params["owner"], params["group"], params["mode"], params["directory_mode"]
    )
    # Every result from here on, a failure's too, echoes the arguments: a size and checksum stand in for the texts.
    for item in params["files"]:
        item["content"] = content_summary(item.get("content"))
    if problems:
        module.fail_json(msg="; ".join(problems))
    results: list[dict[str, Any]] = []
    diffs: list[dict[str, str]] = []
    for entry in entries:
        if entry.state == "file":
            changed = ensure_file(module, entry, diffs)
        elif entry.state == "directory":
            changed = ensure_directory(module, entry)
        else:
            changed = ensure_absent(module, entry)
        results.append({"path": entry.path, "state": entry.state, "changed": changed})
    for directory in (entry for entry in entries if entry.exclusive):
        removed = remove_strays(module, directory, entries)
        results += [{"path": path, "state": "absent", "changed": True} for path in removed]
    changed_paths = [result["path"] for result in results if result["changed"]]
    outcome: dict[str, Any] = {"changed": bool(changed_paths), "changed_paths": changed_paths, "results": results}
    if module._diff:
        outcome["diff"] = diffs
    return outcome


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
