#!/usr/bin/python
"""Create or drop one InfluxDB 1.x database."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_database
short_description: Create or drop an InfluxDB 1.x database
description:
  - Ensures a database exists or not. A new database gets the server's default retention policy C(autogen).
  - To declare many objects in one task, use M(sensorstack.iot.influxdb_schema).
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  name:
    description: Database name.
    type: str
    required: true
  state:
    description: Whether the database exists. V(absent) drops it with all its data.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Ensure the telemetry database exists
  sensorstack.iot.influxdb_database:
    name: telemetry
    username: admin
    password: "{{ influxdb_admin_password }}"
"""

RETURN = r"""
statements:
  description: The statements sent (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: ['CREATE DATABASE "telemetry"']
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (  # noqa: E402
    DATABASE_OPTIONS,
    DatabaseSpec,
    Declaration,
    run_module,
)

ARGUMENT_SPEC = {**CONNECTION_ARGUMENT_SPEC, **DATABASE_OPTIONS}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, lambda params: Declaration(databases=[DatabaseSpec.parse(params)]))


if __name__ == "__main__":
    main()
