#!/usr/bin/python
"""Create, change or drop one InfluxDB 1.x user and its privileges."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_user
short_description: Manage an InfluxDB 1.x user, its password, admin flag and grants
description:
  - Creates or drops a user, corrects its password and admin flag, and converges its per-database grants.
  - The password of an existing user is checked without logging it anywhere. With authentication on, the server
    is asked to log the user in (a read-only C(SHOW DATABASES), credentials in a header); it remembers a good
    login, so reruns against a running server cost no password hashing. With authentication off, where any login
    succeeds, C(CREATE USER) is sent again instead, which the server answers with a no-op only when the password
    matches.
  - On a server with authentication on and no user yet, declaring the admin user with O(admin=true) and the
    same O(name)/O(password) as O(username)/O(password) bootstraps it.
  - To declare many objects in one task, use M(sensorstack.iot.influxdb_schema).
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  name:
    description: User name.
    type: str
    required: true
  user_password:
    description: The user's password; required to create it. Never logged.
    type: str
  admin:
    description: Whether the user is an admin. Omitted keeps an existing user's flag (new users are not admins).
    type: bool
  grants:
    description:
      - Privileges per database; each database must exist.
      - Omitted leaves the user's grants alone; V([]) revokes them all.
    type: list
    elements: dict
    suboptions:
      database:
        description: Database name.
        type: str
        required: true
      privilege:
        description: V(read), V(write) or V(all), in any case.
        type: str
        required: true
  update_password:
    description: V(always) checks and corrects the password; V(on_create) sets it only when creating the user.
    type: str
    choices: [always, on_create]
    default: always
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - O(password) is the password this module logs in with; the managed user's password is O(user_password).
"""

EXAMPLES = r"""
- name: Let Telegraf write to the telemetry database
  sensorstack.iot.influxdb_user:
    name: telegraf
    user_password: "{{ telegraf_influxdb_password }}"
    grants:
      - {database: telemetry, privilege: write}
    username: admin
    password: "{{ influxdb_admin_password }}"

- name: Bootstrap the first admin on a fresh server
  sensorstack.iot.influxdb_user:
    name: admin
    user_password: "{{ influxdb_admin_password }}"
    admin: true
    username: admin
    password: "{{ influxdb_admin_password }}"
"""

RETURN = r"""
statements:
  description: The statements sent (or that would be sent in check mode), passwords masked.
  returned: always
  type: list
  elements: str
  sample: ['GRANT WRITE ON "telemetry" TO "telegraf"']
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (  # noqa: E402
    USER_OPTIONS,
    Declaration,
    UserSpec,
    run_module,
)


def declaration_from(params: dict) -> Declaration:
    return Declaration(
        users=[UserSpec.parse(params | {"password": params["user_password"]}, password_option="user_password")]
    )


# The login password is `password`, so the user's own is `user_password`.
ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    **{key: value for key, value in USER_OPTIONS.items() if key != "password"},
    "user_password": USER_OPTIONS["password"],
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, declaration_from)


if __name__ == "__main__":
    main()
