#!/usr/bin/python
"""Converge databases, retention policies, continuous queries and users of an InfluxDB 1.x server in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_schema
short_description: Converge an InfluxDB 1.x schema (databases, retention policies, continuous queries, users) at once
description:
  - Declares any number of databases, retention policies, continuous queries and users, reads the server's state
    once, and sends every needed change in one request, with one diff.
  - Use it instead of one task per object when a lab declares many of them; each task costs Ansible about half a
    second whatever it does.
  - Objects that are not listed are left alone.
  - Existing users' passwords are checked as M(sensorstack.iot.influxdb_user) describes (logins several at a time).
  - On a server with authentication on and no user yet, the declared admin user whose name and password equal
    O(username)/O(password) is created first (the only statement such a server accepts).
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  databases:
    description: Databases.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Database name.
        type: str
        required: true
      state:
        description: Whether the database exists. V(absent) drops it with all its data.
        type: str
        choices: [present, absent]
        default: present
  retention_policies:
    description: Retention policies; same options as M(sensorstack.iot.influxdb_retention_policy).
    type: list
    elements: dict
    default: []
    suboptions:
      database:
        description: Database of the policy.
        type: str
        required: true
      name:
        description: Policy name (the server's own default is C(autogen)).
        type: str
        required: true
      duration:
        description:
          - How long data is kept, V(INF) for ever. Units ns, u, ms, s, m, h, d, w, combinable (V(1h30m)).
          - At least 1h. Required when O(retention_policies[].state=present).
        type: str
      replication:
        description: Replication factor (1 on open-source InfluxDB).
        type: int
        default: 1
      shard_duration:
        description:
          - Shard group duration, at least 1h and at most O(retention_policies[].duration).
          - Omitted means the server's choice on creation and no change afterwards.
        type: str
      default:
        description:
          - V(true) makes this the database's default policy.
          - V(false) or omitted changes nothing; the server has no way to un-default a policy other than making
            another one the default.
        type: bool
      state:
        description: Whether the policy exists.
        type: str
        choices: [present, absent]
        default: present
  continuous_queries:
    description: Continuous queries; same options as M(sensorstack.iot.influxdb_continuous_query).
    type: list
    elements: dict
    default: []
    suboptions:
      database:
        description: Database the query runs on.
        type: str
        required: true
      name:
        description: Query name.
        type: str
        required: true
      query:
        description: The body, C(SELECT ... INTO ... FROM ... GROUP BY time(...)), without BEGIN/END.
        type: str
      resample_every:
        description: How often the query runs (RESAMPLE EVERY).
        type: str
      resample_for:
        description: Time range each run covers (RESAMPLE FOR).
        type: str
      state:
        description: Whether the query exists. A changed query is dropped and created again.
        type: str
        choices: [present, absent]
        default: present
  users:
    description: Users; same options as M(sensorstack.iot.influxdb_user).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      password:
        description: Password; required to create the user.
        type: str
      admin:
        description: Whether the user is an admin. Omitted keeps an existing user's flag (new users are not admins).
        type: bool
      grants:
        description:
          - Privileges per database. Omitted leaves grants alone; V([]) revokes them all.
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
"""

EXAMPLES = r"""
- name: Ensure the telemetry schema exists
  sensorstack.iot.influxdb_schema:
    url: http://localhost:8086
    username: admin
    password: "{{ influxdb_admin_password }}"
    databases:
      - name: telemetry
    retention_policies:
      - {database: telemetry, name: raw, duration: 30d, default: true}
      - {database: telemetry, name: downsampled, duration: 52w}
    continuous_queries:
      - database: telemetry
        name: readings_30m
        query: >-
          SELECT mean(*) INTO telemetry.downsampled.:MEASUREMENT
          FROM telemetry.raw./.*/ GROUP BY time(30m), *
    users:
      - name: telegraf
        password: "{{ telegraf_influxdb_password }}"
        grants: [{database: telemetry, privilege: write}]
      - name: grafana
        password: "{{ grafana_influxdb_password }}"
        grants: [{database: telemetry, privilege: read}]
"""

RETURN = r"""
statements:
  description: The statements sent (or, in check mode, that would be sent), passwords masked.
  returned: always
  type: list
  elements: str
  sample:
    - CREATE DATABASE "telemetry"
    - CREATE RETENTION POLICY "raw" ON "telemetry" DURATION 30d REPLICATION 1 DEFAULT
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (  # noqa: E402
    CONTINUOUS_QUERY_OPTIONS,
    DATABASE_OPTIONS,
    RETENTION_POLICY_OPTIONS,
    USER_OPTIONS,
    ContinuousQuerySpec,
    DatabaseSpec,
    Declaration,
    RetentionPolicySpec,
    UserSpec,
    run_module,
)

ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "databases": {"type": "list", "elements": "dict", "default": [], "options": DATABASE_OPTIONS},
    "retention_policies": {"type": "list", "elements": "dict", "default": [], "options": RETENTION_POLICY_OPTIONS},
    "continuous_queries": {"type": "list", "elements": "dict", "default": [], "options": CONTINUOUS_QUERY_OPTIONS},
    "users": {"type": "list", "elements": "dict", "default": [], "options": USER_OPTIONS},
}


def declaration_from(params: dict) -> Declaration:
    return Declaration(
        databases=[DatabaseSpec.parse(item, f"databases[{i}]") for i, item in enumerate(params["databases"])],
        retention_policies=[
            RetentionPolicySpec.parse(item, f"retention_policies[{i}]")
            for i, item in enumerate(params["retention_policies"])
        ],
        continuous_queries=[
            ContinuousQuerySpec.parse(item, f"continuous_queries[{i}]")
            for i, item in enumerate(params["continuous_queries"])
        ],
        users=[UserSpec.parse(item, f"users[{i}]") for i, item in enumerate(params["users"])],
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, declaration_from)


if __name__ == "__main__":
    main()
