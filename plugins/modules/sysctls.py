#!/usr/bin/python
"""Set sysctls in a sysctl.d file and, where asked, in the running kernel, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctls
short_description: Converge a set of sysctls, at boot and now, in one call
description:
  - Writes O(path), a C(sysctl.d) file that holds exactly O(settings) (the host applies it at boot), and sets the
    sysctls named in O(now) in the running kernel through C(/proc/sys) where their value differs.
  - One call for the whole set, where a loop of C(ansible.posix.sysctl) tasks costs a module run a sysctl, on
    every run.
  - The file is the module's own: a sysctl dropped from O(settings) leaves it.
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
  settings:
    description:
      - Sysctl name (dotted, V(net.ipv4.ip_forward), or with slashes when a level holds a dot) to its value. A value
        of several numbers is compared token by token, as the kernel prints it with tabs.
    type: dict
    required: true
  path:
    description: The C(sysctl.d) file written with O(settings), mode C(0644). Its folder is created when missing.
    type: path
    required: true
  header:
    description: Comment lines at the top of the file.
    type: str
    default: Managed by sensorstack; edits here are overwritten.
  now:
    description:
      - Names of O(settings) to set in the running kernel. A name that the kernel does not have, or cannot be
        written, fails the task unless O(now_where_writable) is set; in check mode a name the kernel does not have
        yet is reported as one that would be set.
    type: list
    elements: str
    default: []
  now_where_writable:
    description:
      - Leave the names of O(now) whose C(/proc/sys) file is missing or read-only (as in a container, whose kernel
        belongs to its host) and report them in RV(left) instead of failing.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Ensure the sysctls Kubernetes needs are set now and at boot
  sensorstack.iot.sysctls:
    path: /etc/sysctl.d/90-sensorstack.conf
    settings:
      net.ipv4.ip_forward: 1
      net.bridge.bridge-nf-call-iptables: 1
    now: [net.ipv4.ip_forward, net.bridge.bridge-nf-call-iptables]
"""

RETURN = r"""
file_changed:
  description: Whether O(path) was written (or would be, in check mode).
  returned: always
  type: bool
set_now:
  description: The names set in the running kernel (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [net.ipv4.ip_forward]
left:
  description: Names of O(now) left alone because their C(/proc/sys) file is missing or read-only.
  returned: always
  type: list
  elements: str
applied:
  description: Names of O(now) that hold their value in the running kernel after the run.
  returned: always
  type: list
  elements: str
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.sysctl import (  # noqa: E402
    differing,
    name_error,
    normalized,
    proc_path,
    render_file,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import read_text, write_atomically  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "settings": {"type": "dict", "required": True},
    "path": {"type": "path", "required": True},
    "header": {"type": "str", "default": "Managed by sensorstack; edits here are overwritten."},
    "now": {"type": "list", "elements": "str", "default": []},
    "now_where_writable": {"type": "bool", "default": False},
}
FILE_MODE = 0o644


def read_live(name: str) -> str | None:
    try:
        with open(proc_path(name), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def check_arguments(module: AnsibleModule, settings: dict[str, Any], now: list[str]) -> None:
    for name in settings:
        error = name_error(str(name))
        if error:
            module.fail_json(msg=f"settings: {error}")
    unknown = [name for name in now if name not in settings]
    if unknown:
        module.fail_json(msg=f"now: {', '.join(unknown)} not in settings")


def set_live(module: AnsibleModule, name: str, value: object) -> None:
    path = proc_path(name)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(normalized(value))
    except OSError as error:
        module.fail_json(msg=f"cannot set {name} to {normalized(value)} in {path}: {error}", name=name)
    kept = read_live(name)
    if kept is None or normalized(kept) != normalized(value):
        module.fail_json(msg=f"the kernel kept {name} = {kept} after {normalized(value)} was written", name=name)


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    settings: dict[str, Any] = params["settings"]
    now: list[str] = params["now"]
    check_arguments(module, settings, now)
    path = params["path"]
    wanted = render_file(settings, params["header"])
    current = read_text(module, path)
    file_changed = current != wanted or os.stat(path).st_mode & 0o7777 != FILE_MODE

    live = {name: read_live(name) for name in now}
    left = [
        name
        for name in now
        if params["now_where_writable"] and (live[name] is None or not os.access(proc_path(name), os.W_OK))
    ]
    missing = [name for name in now if live[name] is None and name not in left]
    # In check mode the kernel module that brings a sysctl (br_netfilter) was not loaded: it would be set.
    if missing and not module.check_mode:
        module.fail_json(msg=f"the running kernel has no {', '.join(missing)} (is its module loaded?)")
    set_now = [name for name in differing({name: settings[name] for name in now}, live) if name not in left]

    result: dict[str, Any] = {
        "changed": file_changed or bool(set_now),
        "path": path,
        "file_changed": file_changed,
        "set_now": set_now,
        "left": left,
        "applied": [name for name in now if name not in left],
    }
    if module._diff:
        result["diff"] = {"before_header": path, "after_header": path, "before": current or "", "after": wanted}
    if module.check_mode:
        return result
    if file_changed:
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        except OSError as error:
            module.fail_json(msg=f"cannot create the folder of {path}: {error}", path=path)
        write_atomically(module, path, wanted, mode=FILE_MODE)
    for name in set_now:
        set_live(module, name, settings[name])
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
