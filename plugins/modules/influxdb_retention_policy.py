#!/usr/bin/python
"""Create, change or drop one InfluxDB 1.x retention policy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_retention_policy
short_description: Manage an InfluxDB 1.x retention policy
description:
  - Creates a retention policy, changes its duration, replication, shard duration or default flag with
    C(ALTER RETENTION POLICY), or drops it. The server's own C(autogen) policy is managed like any other.
  - Durations are compared in nanoseconds with the server's Go-style values (C(168h0m0s)), so V(1w), V(7d) and
    V(168h) are the same policy.
  - The server's rules are checked before anything is sent, naming the option at fault; at least 1h for
    O(duration) and O(shard_duration), and O(duration) at least the shard duration (given, current, or the
    server's default for a new policy).
  - To declare many objects in one task, use M(sensorstack.iot.influxdb_schema).
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  database:
    description: Database of the policy; it must exist.
    type: str
    required: true
  name:
    description: Policy name.
    type: str
    required: true
  duration:
    description:
      - How long data is kept, V(INF) for ever. Units ns, u, ms, s, m, h, d, w, combinable (V(1h30m)).
      - Required when O(state=present).
    type: str
  replication:
    description: Replication factor (1 on open-source InfluxDB).
    type: int
    default: 1
  shard_duration:
    description:
      - Shard group duration. Omitted means the server's choice on creation (1h, 1d or 7d depending on
        O(duration)) and no change to an existing policy.
    type: str
  default:
    description:
      - V(true) makes this the database's default policy.
      - V(false) or omitted never changes anything; the server can only un-default a policy by making another
        the default, so enforcing V(false) would report a change on every run.
    type: bool
  state:
    description: Whether the policy exists.
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
- name: Keep raw readings for 30 days by default
  sensorstack.iot.influxdb_retention_policy:
    database: telemetry
    name: raw
    duration: 30d
    default: true
    username: admin
    password: "{{ influxdb_admin_password }}"

- name: Shorten the server's autogen policy to a year
  sensorstack.iot.influxdb_retention_policy:
    database: telemetry
    name: autogen
    duration: 52w
    username: admin
    password: "{{ influxdb_admin_password }}"
"""

RETURN = r"""
statements:
  description: The statements sent (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: ['ALTER RETENTION POLICY "raw" ON "telemetry" DURATION 30d']
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (  # noqa: E402
    RETENTION_POLICY_OPTIONS,
    Declaration,
    RetentionPolicySpec,
    run_module,
)

ARGUMENT_SPEC = {**CONNECTION_ARGUMENT_SPEC, **RETENTION_POLICY_OPTIONS}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["duration"])],
        supports_check_mode=True,
    )
    run_module(module, lambda params: Declaration(retention_policies=[RetentionPolicySpec.parse(params)]))


if __name__ == "__main__":
    main()
