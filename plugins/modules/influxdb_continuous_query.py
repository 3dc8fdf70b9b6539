#!/usr/bin/python
"""Create, replace or drop one InfluxDB 1.x continuous query."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_continuous_query
short_description: Manage an InfluxDB 1.x continuous query
description:
  - Creates a continuous query from its C(SELECT ... INTO ... FROM ... GROUP BY time(...)) body, or drops it.
  - The server stores its own rendering of a query (measurements qualified as C(db.rp.m), its own quoting and
    duration units). The module compares a normalised form of both, so an unchanged query is never recreated;
    a changed one is dropped and created again (InfluxQL has no ALTER for queries).
  - The body is checked before anything is sent (SELECT, INTO, FROM and GROUP BY time(...) present), and a
    statement the server cannot parse is refused as a whole, so a malformed query never drops the old one.
  - To declare many objects in one task, use M(sensorstack.iot.influxdb_schema).
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  database:
    description: Database the query runs on; it must exist.
    type: str
    required: true
  name:
    description: Query name.
    type: str
    required: true
  query:
    description:
      - The body, C(SELECT ... INTO ... FROM ... GROUP BY time(...)), without C(BEGIN)/C(END).
      - Required when O(state=present).
    type: str
  resample_every:
    description: How often the query runs (C(RESAMPLE EVERY)); the server's default is the GROUP BY interval.
    type: str
  resample_for:
    description: Time range each run covers (C(RESAMPLE FOR)).
    type: str
  state:
    description: Whether the query exists.
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
- name: Downsample every measurement to 30-minute means
  sensorstack.iot.influxdb_continuous_query:
    database: telemetry
    name: downsample_30m
    query: >-
      SELECT mean(*) INTO telemetry.downsampled.:MEASUREMENT
      FROM telemetry.raw./.*/ GROUP BY time(30m), *
    resample_every: 30m
    resample_for: 1h
    username: admin
    password: "{{ influxdb_admin_password }}"
"""

RETURN = r"""
statements:
  description: The statements sent (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: ['DROP CONTINUOUS QUERY "downsample_30m" ON "telemetry"']
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (  # noqa: E402
    CONTINUOUS_QUERY_OPTIONS,
    ContinuousQuerySpec,
    Declaration,
    run_module,
)

ARGUMENT_SPEC = {**CONNECTION_ARGUMENT_SPEC, **CONTINUOUS_QUERY_OPTIONS}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["query"])],
        supports_check_mode=True,
    )
    run_module(module, lambda params: Declaration(continuous_queries=[ContinuousQuerySpec.parse(params)]))


if __name__ == "__main__":
    main()
