#!/usr/bin/python
"""Manage one Grafana datasource through the uid-based API."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: grafana_datasource
short_description: Manage a Grafana datasource through the uid-based API, with check and diff mode
version_added: 1.0.0
description:
  - Creates, updates or removes one datasource through Grafana's HTTP API. It is found by O(uid) when given
    (recommended, the identity then survives a rename), else by O(name); updates use C(PUT /api/datasources/uid/:uid),
    never the deprecated id-based endpoint.
  - Options left out keep the server's value; O(json_data) replaces the whole C(jsonData). An update carries the
    version this task read, so a change saved by someone else in between fails clearly instead of being overwritten.
  - Secrets (O(secure_json_data)) are write-only in Grafana, which reports only which keys are set
    (C(secureJsonFields)), so they cannot be compared. O(update_secure_json_data) decides when they are written; with
    the default V(on_create) a task that did not change never reports a change.
  - Datasources provisioned from files on the Grafana server are read-only through the API. An unchanged provisioned
    datasource is fine; a change fails with a message pointing at the provisioning file.
author:
  - sensorstack developers
extends_documentation_fragment:
  - sensorstack.iot.grafana
options:
  grafana_url:
    description:
      - Base URL of Grafana (with its sub path when served under one), as seen from the host the task runs on.
      - Named C(grafana_url) in this module because O(url) is the datasource's own URL.
    type: str
    required: true
  name:
    description:
      - The datasource's name, unique in its organization. Renames the datasource when it is found by O(uid).
    type: str
    required: true
  uid:
    description:
      - The datasource's identity, at most 40 letters, digits, C(-) or C(_). Omitted, the datasource is found by
        O(name) and Grafana generates a uid when creating it.
      - Dashboards refer to datasources by uid, so give one for anything dashboards use.
    type: str
  type:
    description:
      - The datasource plugin, for example V(influxdb), V(prometheus). Required to create the datasource.
    type: str
  url:
    description:
      - The URL Grafana's server uses to reach the data, for example V(http://influxdb.sensorstack.svc:8086). With
        V(proxy) access it must be reachable from the Grafana server (a service name, not the browser's localhost).
    type: str
  access:
    description:
      - V(proxy) (the Grafana server queries the data source) or V(direct) (the browser does; deprecated by Grafana).
      - Omitted, an existing datasource keeps its access and a new one gets V(proxy).
    type: str
    choices: [proxy, direct]
  database:
    description:
      - The legacy top-level database field. InfluxDB datasources take C(dbName) in O(json_data) instead.
    type: str
  user:
    description:
      - User the datasource authenticates as. Its password goes in O(secure_json_data) (key C(password)).
    type: str
  json_data:
    description:
      - The plugin settings (C(jsonData)), replaced as a whole. For InfluxQL on InfluxDB 1.x, the keys C(dbName)
        (the database) and C(httpMode) (V(POST) keeps long queries out of URLs).
    type: dict
  secure_json_data:
    description:
      - Secrets (C(secureJsonData)), for example the key C(password). Never logged, never returned, masked in diffs.
      - Keys not listed are left as they are in Grafana. Empty values are ignored.
    type: dict
  update_secure_json_data:
    description:
      - When the secrets in O(secure_json_data) are written, since Grafana cannot say whether they changed.
      - V(on_create) writes them when the datasource is created, and afterwards only the keys Grafana reports as
        not set; a second run reports no change. To rotate a secret, run once with V(always).
      - V(always) writes them on every run, and the task then reports a change on every run.
    type: str
    choices: [always, on_create]
    default: on_create
  is_default:
    description:
      - Make it the organization's default datasource (Grafana then clears the flag of the previous default).
      - Omitted, an existing datasource keeps its flag and a new one is not the default.
    type: bool
  state:
    description:
      - V(present) creates or updates the datasource, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Only GET requests are sent.
  diff_mode:
    support: full
    details: Shows the datasource's fields before and after; secrets appear only as masked keys.
seealso:
  - module: sensorstack.iot.grafana_dashboard
"""

EXAMPLES = r"""
- name: Ensure Grafana reads the sensor database with InfluxQL over POST
  sensorstack.iot.grafana_datasource:
    grafana_url: http://grafana.example.org:3000
    url_username: admin
    url_password: "{{ vault_grafana_admin_password }}"
    name: InfluxDB
    uid: sensorstack-influxdb
    type: influxdb
    access: proxy
    url: http://influxdb.sensorstack.svc:8086
    user: grafana
    json_data:
      dbName: sensors
      httpMode: POST
    secure_json_data:
      password: "{{ vault_influxdb_grafana_password }}"
    is_default: true

- name: Rotate the datasource password once
  sensorstack.iot.grafana_datasource:
    grafana_url: http://grafana.example.org:3000
    token: "{{ vault_grafana_token }}"
    name: InfluxDB
    uid: sensorstack-influxdb
    type: influxdb
    secure_json_data:
      password: "{{ vault_influxdb_grafana_password }}"
    update_secure_json_data: always

- name: Ensure the old datasource is gone
  sensorstack.iot.grafana_datasource:
    grafana_url: http://grafana.example.org:3000
    token: "{{ vault_grafana_token }}"
    name: Old InfluxDB
    state: absent
"""

RETURN = r"""
datasource:
  description:
    - The datasource as Grafana describes it after the task; secrets appear only as C(secureJsonFields) flags.
    - Empty when it is absent, and the current state (or empty) in check mode.
  returned: always
  type: dict
  sample: {"uid": "sensorstack-influxdb", "name": "InfluxDB", "type": "influxdb", "access": "proxy",
           "url": "http://influxdb.sensorstack.svc:8086", "jsonData": {"dbName": "sensors", "httpMode": "POST"},
           "secureJsonFields": {"password": true}, "version": 2, "readOnly": false}
uid:
  description: The datasource's uid (generated by Grafana when created without one; unknown in check mode).
  returned: when the datasource exists after the task
  type: str
  sample: sensorstack-influxdb
changes:
  description:
    - What differed, as Grafana field names (C(url), C(jsonData)...), plus C(secureJsonData) when secrets were
      written, or C(created) / C(deleted). Empty when nothing did.
  returned: always
  type: list
  elements: str
  sample: [url, jsonData]
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana import (  # noqa: E402
    CONNECTION_CONSTRAINTS,
    GrafanaClient,
    GrafanaError,
    argument_spec,
    run_module,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana_compare import (  # noqa: E402
    datasource_body,
    datasource_changes,
    datasource_result,
    datasource_view,
    secrets_to_write,
    uid_problem,
    wanted_datasource,
)


def find(client: GrafanaClient, params: dict[str, Any]) -> dict[str, Any] | None:
    """The stored datasource: by uid when given (a name held by another uid is an error), else by name."""
    if not params["uid"]:
        return client.get_datasource_by_name(params["name"])
    current = client.get_datasource(params["uid"])
    if current is None and params["state"] == "present":
        namesake = client.get_datasource_by_name(params["name"])
        if namesake is not None:
            raise GrafanaError(
                f"a datasource named {params['name']!r} already exists with uid {namesake.get('uid')!r}, not "
                f"{params['uid']!r}: give uid: {namesake.get('uid')}, or another name"
            )
    return current


def explain_write_failure(error: GrafanaError, params: dict[str, Any]) -> str:
    if error.status == 409 and "someone else" in str(error):
        return (
            f"datasource {params['name']!r} was changed by someone else after this task read it; nothing was "
            f"overwritten. Re-run the task to apply the declared settings. ({error})"
        )
    if error.status == 409:
        return f"another datasource already has the name {params['name']!r} or the uid {params['uid']!r}. ({error})"
    return str(error)


def present(client: GrafanaClient, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    current = find(client, params)
    wanted = wanted_datasource(params)
    if current is None and not params["type"]:
        raise ValueError(f"type is required to create datasource {params['name']!r} (influxdb, prometheus, ...)")
    secrets = secrets_to_write(
        params["secure_json_data"],
        (current or {}).get("secureJsonFields"),
        params["update_secure_json_data"],
        creating=current is None,
    )
    changes = datasource_changes(wanted, current)
    if secrets and current is not None:
        changes.append("secureJsonData")
    after_fields = datasource_body(wanted, current, {})
    result: dict[str, Any] = {
        "changed": bool(changes),
        "changes": changes,
        "datasource": datasource_result(current),
        "diff": {
            "before": datasource_view(current, (current or {}).get("secureJsonFields")),
            "after": datasource_view(after_fields, (current or {}).get("secureJsonFields"), tuple(sorted(secrets))),
        },
    }
    if current is not None:
        result["uid"] = current.get("uid")
    if not changes:
        return result
    if current is not None and current.get("readOnly"):
        raise GrafanaError(
            f"datasource {params['name']!r} is provisioned from a file on the Grafana server and read-only through "
            f"the API; change its provisioning file instead (it differs in: {', '.join(changes)})"
        )
    if check_mode:
        return result
    body = datasource_body(wanted, current, secrets)
    try:
        if current is None:
            answer = client.create_datasource(body)
        else:
            answer = client.update_datasource(str(current["uid"]), body)
    except GrafanaError as error:
        raise GrafanaError(explain_write_failure(error, params)) from None
    result["datasource"] = datasource_result(answer.get("datasource"))
    result["uid"] = result["datasource"].get("uid")
    return result


def absent(client: GrafanaClient, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    current = find(client, params)
    result: dict[str, Any] = {
        "changed": current is not None,
        "changes": [] if current is None else ["deleted"],
        "datasource": {},
        "diff": {"before": datasource_view(current, (current or {}).get("secureJsonFields")), "after": {}},
    }
    if current is None:
        return result
    if current.get("readOnly"):
        raise GrafanaError(
            f"datasource {params['name']!r} is provisioned from a file on the Grafana server and cannot be deleted "
            "through the API; remove it from the provisioning file (deleteDatasources) instead"
        )
    if not check_mode:
        client.delete_datasource(str(current["uid"]))
    return result


def run(client: GrafanaClient, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    if params["uid"]:
        problem = uid_problem(params["uid"], "uid")
        if problem:
            raise ValueError(problem)
    if not params["name"].strip():
        raise ValueError("name must not be empty")
    if params["state"] == "absent":
        return absent(client, params, check_mode)
    return present(client, params, check_mode)


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    **argument_spec("grafana_url"),
    "name": {"type": "str", "required": True},
    "uid": {"type": "str"},
    "type": {"type": "str"},
    "url": {"type": "str"},
    "access": {"type": "str", "choices": ["proxy", "direct"]},
    "database": {"type": "str"},
    "user": {"type": "str"},
    "json_data": {"type": "dict"},
    "secure_json_data": {"type": "dict", "no_log": True},
    "update_secure_json_data": {"type": "str", "choices": ["always", "on_create"], "default": "on_create"},
    "is_default": {"type": "bool"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        **CONNECTION_CONSTRAINTS,
    )
    run_module(module, run, url_option="grafana_url")


if __name__ == "__main__":
    main()
