#!/usr/bin/python
"""Run a read-only InfluxQL query and return its series."""

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_query
short_description: Run a read-only InfluxQL query against InfluxDB 1.x
description:
  - Runs one C(SELECT) or C(SHOW) statement and returns the series; for verification plays and checks.
  - Never changes anything, so it also runs in check mode and always reports C(changed=false).
  - Statements that write (C(SELECT ... INTO), C(CREATE), C(DROP), ...) are refused before anything is sent.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment: sensorstack.iot.influxdb
options:
  query:
    description: One C(SELECT) or C(SHOW) statement.
    type: str
    required: true
  database:
    description: Database the query runs in (C(db) parameter).
    type: str
  epoch:
    description: Return times as epoch numbers in this precision instead of RFC3339 strings.
    type: str
    choices: [h, m, s, ms, u, ns]
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Read the last reading of a device
  sensorstack.iot.influxdb_query:
    database: telemetry
    query: SELECT last(*) FROM readings WHERE device = 'probe-1'
    username: reader
    password: "{{ reader_password }}"
  register: reading
"""

RETURN = r"""
series:
  description: The result's series, each with C(name), C(columns), C(values) and C(tags) when grouped.
  returned: success
  type: list
  elements: dict
  sample: [{name: readings, columns: [time, temperature], values: [["2026-01-01T00:00:00Z", 21.5]]}]
rows:
  description: The same data as a flat list of dicts keyed by column, with the series name under C(_series).
  returned: success
  type: list
  elements: dict
  sample: [{_series: readings, time: "2026-01-01T00:00:00Z", temperature: 21.5}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (  # noqa: E402
    CONNECTION_ARGUMENT_SPEC,
    InfluxDBClient,
    InfluxDBError,
    series_rows,
    split_statements,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_ql import (  # noqa: E402
    InfluxQLError,
    tokenize,
)


def check_read_only(query: str) -> None:
    """Allow exactly one SHOW, or one SELECT without INTO."""
    if len(split_statements(query)) != 1:
        raise InfluxQLError("query: give exactly one statement")
    keywords = [value for kind, value in tokenize(query, continuous_query=False) if kind == "kw"]
    if not keywords or keywords[0] not in ("SELECT", "SHOW"):
        raise InfluxQLError("query: only SELECT and SHOW statements are allowed (this module never writes)")
    if keywords[0] == "SELECT" and "INTO" in keywords:
        raise InfluxQLError("query: SELECT ... INTO writes data; this module only reads")


ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "query": {"type": "str", "required": True},
    "database": {"type": "str"},
    "epoch": {"type": "str", "choices": ["h", "m", "s", "ms", "u", "ns"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    try:
        check_read_only(module.params["query"])
        client = InfluxDBClient.from_module(module)
        [result] = client.query(
            module.params["query"], database=module.params["database"], epoch=module.params["epoch"]
        )
    except (InfluxQLError, InfluxDBError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, series=result.get("series", []), rows=series_rows(result))


if __name__ == "__main__":
    main()
