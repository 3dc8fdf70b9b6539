#!/usr/bin/python
"""Manage users of a Mosquitto 2.x password file idempotently, one user or a whole list in a single call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mosquitto_user
short_description: Manage users in a Mosquitto 2.x password file, idempotently and without mosquitto_passwd
description:
  - Adds, updates and removes users of a Mosquitto password file (the broker's C(password_file)), one user with
    O(name) or any number at once with O(users).
  - Hashes passwords itself, in Python, as Mosquitto 2.x does (PBKDF2-HMAC-SHA512, C($7$) entries), so no password
    ever appears in a command line, and checks each existing entry against the wanted password. An entry that
    already matches keeps its salt and is not rewritten, so a second run reports no change.
  - Reads entries written by C(mosquitto_passwd), including the older salted SHA512 C($6$) form.
  - Comment and blank lines are kept. A file with a line that is neither (a plain-text password, a truncated hash,
    a user listed twice) makes the module fail, naming the line numbers, instead of rewriting the file.
  - Writes the file atomically (a temporary file renamed over it). A new file gets mode C(0600) unless O(mode) says
    otherwise, and is never readable by others in between.
  - The broker reads the file when it starts and on C(SIGHUP) (C(systemctl reload mosquitto)), so reload it after a
    change.
  - Use O(users) when there are many users; each Ansible task costs about half a second whatever it does, so one
    task per device user takes minutes where one O(users) call takes about a second.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
  - action_common_attributes.files
options:
  path:
    description: The password file. Its directory must exist.
    type: path
    required: true
  name:
    description:
      - One user to manage. Use O(users) instead for several.
      - A name cannot contain C(:) or a line break, start with C(#), or start or end with white space.
    type: str
  password:
    description:
      - Password of O(name), required when O(state=present). Never logged and never put in a command line.
    type: str
  state:
    description: Whether O(name) exists in the file. Applies to O(name) only; entries of O(users) carry their own.
    type: str
    choices: [present, absent]
    default: present
  users:
    description:
      - Users to converge in one call. Each entry is checked and, only if needed, rewritten.
      - Listing a user twice is an error.
      - With O(users) the file is always created, even when it ends up empty.
    type: list
    elements: dict
    suboptions:
      name:
        description: User name (same rules as O(name)).
        type: str
        required: true
      password:
        description: Password, required when O(users[].state=present). Never logged.
        type: str
      state:
        description: Whether the user exists in the file.
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description:
      - Also remove every user of the file that is not declared with state V(present) (by O(users) or O(name)).
      - Makes the module the owner of the whole file; comment lines are kept.
    type: bool
    default: false
  iterations:
    description:
      - PBKDF2 iterations for entries the module writes. Mosquitto's own default is 101.
      - Existing entries that match are kept whatever their iterations, unless O(rehash=true).
    type: int
    default: 101
  rehash:
    description:
      - Also rewrite entries whose password already matches but which are hashed otherwise than O(iterations) says
        (the older C($6$) form, or another iteration count). They get a new salt, so this reports a change once.
    type: bool
    default: false
notes:
  - Supports check mode and diff mode. The diff lists user names only, marking those whose password changes; it
    never shows a hash.
  - Unlike C(mosquitto_passwd -U), it never hashes a hash again, so running it on a hashed file is safe.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
  safe_file_operations:
    support: full
seealso:
  - name: mosquitto_passwd manual
    description: The tool whose file format this module writes.
    link: https://mosquitto.org/man/mosquitto_passwd-1.html
  - name: mosquitto.conf manual
    description: C(password_file), C(allow_anonymous) and C(acl_file).
    link: https://mosquitto.org/man/mosquitto-conf-5.html
"""

EXAMPLES = r"""
- name: Ensure the Telegraf user can log in to the broker
  sensorstack.iot.mosquitto_user:
    path: /etc/mosquitto/passwd
    name: telegraf
    password: "{{ vault_mosquitto_telegraf_password }}"
    owner: mosquitto
    group: mosquitto
    mode: "0600"
  notify: Reload the broker

- name: Ensure a former device can no longer log in
  sensorstack.iot.mosquitto_user:
    path: /etc/mosquitto/passwd
    name: sensor-017
    state: absent
  notify: Reload the broker

- name: Ensure the password file holds exactly the declared device users, in one task
  sensorstack.iot.mosquitto_user:
    path: /etc/mosquitto/passwd
    # A list of {name, password} dicts, e.g. from a vaulted group_vars file.
    users: "{{ vault_device_credentials }}"
    exclusive: true
    owner: mosquitto
    group: mosquitto
    mode: "0600"
  notify: Reload the broker

- name: Ensure the broker's users are those of the inventory
  sensorstack.iot.mosquitto_user:
    path: /etc/mosquitto/passwd
    users:
      - name: telegraf
        password: "{{ vault_mosquitto_telegraf_password }}"
      - name: sensor-001
        password: "{{ vault_sensor_001_password }}"
      - name: sensor-002
        state: absent
"""

RETURN = r"""
path:
  description: The password file.
  returned: always
  type: str
  sample: /etc/mosquitto/passwd
added:
  description: Users added to the file (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [sensor-003]
updated:
  description: Users whose entry was rewritten (a new password, or O(rehash=true)).
  returned: always
  type: list
  elements: str
  sample: [telegraf]
removed:
  description: Users removed from the file.
  returned: always
  type: list
  elements: str
  sample: [sensor-002]
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.check_mode import created_earlier_warning  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.mosquitto_passwd import (  # noqa: E402
    Entry,
    PasswdFileError,
    Plan,
    WantedUser,
    converge,
    names_view,
    parse_passwd,
    wanted_problems,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import read_text, write_atomically  # noqa: E402

# A file the module creates is private until owner/group/mode say otherwise: it holds password hashes.
NEW_FILE_MODE = 0o600

USER_OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "password": {"type": "str", "no_log": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}

ARGUMENT_SPEC: dict[str, Any] = {
    "path": {"type": "path", "required": True},
    "name": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "users": {"type": "list", "elements": "dict", "options": USER_OPTIONS},
    "exclusive": {"type": "bool", "default": False},
    "iterations": {"type": "int", "default": 101},
    "rehash": {"type": "bool", "default": False},
}


def wanted_users(params: dict[str, Any]) -> list[WantedUser]:
    if params["users"] is not None:
        return [WantedUser(user["name"], user["password"], user["state"]) for user in params["users"]]
    return [WantedUser(params["name"], params["password"], params["state"])]


def read_entries(module: AnsibleModule, path: str) -> list[Entry] | None:
    """The file's entries, or None when it does not exist; fails the module on an unreadable or malformed file."""
    content = read_text(
        module, path, undecodable=f"{path} is not UTF-8 text, so not a password file; it was left alone"
    )
    if content is None:
        return None
    try:
        return parse_passwd(content)
    except PasswdFileError as error:
        module.fail_json(
            msg=f"{path} is not a valid Mosquitto password file and was left alone: {error}",
            path=path,
            problems=error.problems,
        )
    return None  # not reached: fail_json exits


def diff_of(path: str, before: list[Entry], plan: Plan) -> dict[str, str]:
    return {
        "before_header": f"{path} (users)",
        "after_header": f"{path} (users)",
        "before": names_view(before),
        "after": names_view(plan.entries, plan.updated),
    }


def checked_declaration(module: AnsibleModule) -> list[WantedUser]:
    """The declared users, after failing the module on anything it cannot write (before reading the file)."""
    params = module.params
    if params["iterations"] < 1:
        module.fail_json(msg=f"iterations must be at least 1, not {params['iterations']}")
    users = wanted_users(params)
    problems = wanted_problems(users)
    if problems:
        module.fail_json(msg="; ".join(problems), problems=problems)
    return users


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    users = checked_declaration(module)
    # Write through a symbolic link rather than replace it with a file.
    path = os.path.realpath(params["path"])
    if not os.path.isdir(os.path.dirname(path)):
        missing = f"the directory of {path} does not exist"
        if not module.check_mode:
            module.fail_json(msg=missing, path=params["path"])
        # In check mode the broker's package, which creates it, was only said to be installed.
        module.warn(created_earlier_warning(missing))

    entries = read_entries(module, path)
    exists = entries is not None
    plan = converge(
        entries or [], users, exclusive=params["exclusive"], iterations=params["iterations"], rehash=params["rehash"]
    )
    # A declared list describes the whole file, so the file exists afterwards even when empty.
    write = plan.changed or (not exists and params["users"] is not None)
    result: dict[str, Any] = {
        "changed": write,
        "path": params["path"],
        "added": plan.added,
        "updated": plan.updated,
        "removed": plan.removed,
    }
    if module._diff:
        result["diff"] = diff_of(path, entries or [], plan)
    if write and not module.check_mode:
        write_atomically(module, path, plan.content, new_file_mode=NEW_FILE_MODE)
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params, path=path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("name", "users"), ("password", "users")],
        required_one_of=[("name", "users")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
