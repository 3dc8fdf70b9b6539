#!/usr/bin/python
"""Manage one Grafana dashboard by uid."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: grafana_dashboard
short_description: Manage a Grafana dashboard by uid, without flapping and without overwriting concurrent edits
version_added: 1.0.0
description:
  - Creates, updates or removes one dashboard through Grafana's HTTP API, identified by its uid.
  - The wanted JSON and the stored one are compared after dropping C(id) and C(version), which Grafana owns, and the
    folder is compared too. An unchanged dashboard is never saved again, so a second run reports no change.
  - A changed dashboard is saved with the version this task read. If someone saved it in between, Grafana refuses
    (HTTP 412 version-mismatch) and the task fails with a message saying so, instead of silently overwriting their
    change; O(overwrite=true) saves regardless. Edits made in the UI before the run are replaced by the declared
    dashboard, which is the point of declaring it.
  - A dashboard needs a stable uid, from O(uid) or the JSON's C(uid). Without one the task fails, because Grafana
    would generate a new uid on every save and each run would add another copy.
author:
  - sensorstack developers
extends_documentation_fragment:
  - sensorstack.iot.grafana
  - sensorstack.iot.grafana.url
options:
  dashboard:
    description:
      - The dashboard's JSON model as a dict (or a JSON string), as exported from Grafana (C(id) and C(version)
        are ignored).
      - Mutually exclusive with O(path). One of them is required when O(state=present).
    type: dict
  path:
    description:
      - A file holding the dashboard's JSON model, read on the host the task runs on.
    type: path
  uid:
    description:
      - The dashboard's identity. Takes precedence over the C(uid) in the JSON, so a dashboard exported elsewhere
        can be placed under a uid of your choosing.
      - Required when the JSON has no C(uid), and for O(state=absent) without O(dashboard) or O(path).
      - At most 40 letters, digits, C(-) or C(_).
    type: str
  folder_uid:
    description:
      - Uid of the folder that holds the dashboard (see M(sensorstack.iot.grafana_folder)). Omitted or empty, the
        dashboard lives in the General folder; a dashboard found elsewhere is moved.
    type: str
    default: ""
  message:
    description:
      - The version-history message of a save. Not compared.
    type: str
  overwrite:
    description:
      - Save over a version saved by someone else after this task read the dashboard, instead of failing.
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates the dashboard, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Only GET requests are sent.
  diff_mode:
    support: full
    details: Shows the dashboard JSON (without C(id)/C(version)) and its folder, before and after.
seealso:
  - module: sensorstack.iot.grafana_folder
  - module: sensorstack.iot.grafana_datasource
"""

EXAMPLES = r"""
- name: Ensure the sensor dashboard is in the Sensorstack folder
  sensorstack.iot.grafana_dashboard:
    url: http://grafana.example.org:3000
    url_username: admin
    url_password: "{{ vault_grafana_admin_password }}"
    dashboard: "{{ lookup('ansible.builtin.file', 'dashboards/sensors.json') | from_json }}"
    folder_uid: sensorstack
    message: Deployed by Ansible

- name: Ensure a dashboard exported elsewhere lives under our own uid
  sensorstack.iot.grafana_dashboard:
    url: https://grafana.example.org
    token: "{{ vault_grafana_token }}"
    ca_path: /etc/ssl/certs/lab-ca.pem
    path: /srv/dashboards/mosquitto.json
    uid: lab-mosquitto

- name: Ensure the old dashboard is gone
  sensorstack.iot.grafana_dashboard:
    url: http://grafana.example.org:3000
    token: "{{ vault_grafana_token }}"
    uid: old-sensors
    state: absent
"""

RETURN = r"""
uid:
  description: The dashboard's uid.
  returned: always
  type: str
  sample: sensorstack-sensors
url:
  description: Path of the dashboard in Grafana's UI (relative to the server URL).
  returned: when the dashboard exists after the task (not in check mode for a new one)
  type: str
  sample: /d/sensorstack-sensors/sensor-readings
version:
  description: The dashboard's version in Grafana after the task.
  returned: when the dashboard exists after the task (not in check mode for a new one)
  type: int
  sample: 3
folder_uid:
  description: Uid of the dashboard's folder after the task (empty for the General folder).
  returned: when O(state=present)
  type: str
  sample: sensorstack
changes:
  description: What differed (C(created), C(dashboard), C(folder), C(deleted)); empty when nothing did.
  returned: always
  type: list
  elements: str
  sample: [dashboard]
"""

import json  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.check_mode import created_earlier_warning  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana import (  # noqa: E402
    CONNECTION_CONSTRAINTS,
    GrafanaClient,
    GrafanaError,
    argument_spec,
    run_module,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana_compare import (  # noqa: E402
    dashboard_changes,
    dashboard_diff_view,
    dashboard_payload,
    dashboard_problems,
    dashboard_uid,
    normalize_dashboard,
    stored_folder_uid,
    stored_version,
    uid_problem,
)


def load_dashboard(params: dict[str, Any]) -> dict[str, Any] | None:
    """The wanted JSON from O(dashboard) or the file at O(path); None when neither was given."""
    if params["dashboard"] is not None:
        return params["dashboard"]
    if params["path"] is None:
        return None
    try:
        with open(params["path"], encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the dashboard JSON from path {params['path']}: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"path {params['path']} holds JSON that is not a dashboard object")
    return loaded


def explain_save_failure(error: GrafanaError, uid: str, title: str, folder_uid: str, read_version: int) -> str:
    if error.status == 412 and error.reason == "version-mismatch":
        return (
            f"dashboard {uid!r} was saved by someone else after this task read it (at version {read_version}); "
            "nothing was overwritten. Re-run the task to apply the declared dashboard over their version, or set "
            f"overwrite: true. ({error})"
        )
    if error.status == 412 and error.reason == "name-exists":
        return (
            f"another dashboard titled {title!r} already exists in folder {folder_uid or 'General'!r} (Grafana "
            f"before 11 allows one dashboard per title in a folder): rename one of them. ({error})"
        )
    return str(error)


def refuse_provisioned(stored: dict[str, Any], uid: str, action: str, remedy: str) -> None:
    """Grafana refuses to save or delete a dashboard provisioned from a file: say so before trying."""
    if stored["meta"].get("provisioned"):
        raise GrafanaError(
            f"dashboard {uid!r} is provisioned from a file on the Grafana server and cannot be {action} through the "
            f"API: {remedy} its provisioning file instead"
        )


def save(client: GrafanaClient, params: dict[str, Any], wanted: dict[str, Any], stored: dict[str, Any] | None) -> Any:
    folder_uid = params["folder_uid"] or ""
    payload = dashboard_payload(wanted, folder_uid, stored, params["message"], params["overwrite"])
    try:
        return client.save_dashboard(payload)
    except GrafanaError as error:
        read = stored_version(stored) if stored else 0
        raise GrafanaError(explain_save_failure(error, wanted["uid"], str(wanted["title"]), folder_uid, read)) from None


def present(
    client: GrafanaClient, params: dict[str, Any], source: dict[str, Any], uid: str, check_mode: bool
) -> dict[str, Any]:
    problems = dashboard_problems(source)
    if problems:
        raise ValueError("; ".join(problems))
    folder_uid = params["folder_uid"] or ""
    wanted = normalize_dashboard(source, uid)
    stored = client.get_dashboard(uid)
    changes = dashboard_changes(wanted, folder_uid, stored)
    before = {} if stored is None else normalize_dashboard(stored["dashboard"], uid)
    result: dict[str, Any] = {
        "changed": bool(changes),
        "uid": uid,
        "folder_uid": folder_uid,
        "changes": changes,
        "diff": {
            "before": dashboard_diff_view(before or None, stored_folder_uid(stored) if stored else ""),
            "after": dashboard_diff_view(wanted, folder_uid),
        },
    }
    if stored is not None:
        result.update(version=stored_version(stored), url=stored["meta"].get("url"))
    if not changes:
        return result
    if stored is not None:
        refuse_provisioned(stored, uid, "saved", "change")
    moving = stored is None or "folder" in changes
    if folder_uid and moving and client.get_folder(folder_uid) is None:
        missing = f"folder_uid {folder_uid!r} does not exist: create it first (grafana_folder)"
        if not check_mode:
            raise GrafanaError(missing)
        # In check mode the grafana_folder task before this one only said it would create the folder.
        result["warnings"] = [created_earlier_warning(missing)]
    if check_mode:
        return result
    answer = save(client, params, wanted, stored)
    result.update(version=answer.get("version"), url=answer.get("url"))
    return result


def absent(client: GrafanaClient, uid: str, check_mode: bool) -> dict[str, Any]:
    stored = client.get_dashboard(uid)
    result: dict[str, Any] = {
        "changed": stored is not None,
        "uid": uid,
        "changes": [] if stored is None else ["deleted"],
    }
    if stored is None:
        result["diff"] = {"before": {}, "after": {}}
        return result
    before = normalize_dashboard(stored["dashboard"], uid)
    result["diff"] = {"before": dashboard_diff_view(before, stored_folder_uid(stored)), "after": {}}
    refuse_provisioned(stored, uid, "deleted", "remove it from")
    if not check_mode:
        client.delete_dashboard(uid)
    return result


def run(client: GrafanaClient, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    source = load_dashboard(params)
    uid = dashboard_uid(source or {}, params["uid"])
    if params["folder_uid"]:
        problem = uid_problem(params["folder_uid"], "folder_uid")
        if problem:
            raise ValueError(problem)
    if params["state"] == "absent":
        return absent(client, uid, check_mode)
    return present(client, params, source or {}, uid, check_mode)


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    **argument_spec("url"),
    "dashboard": {"type": "dict"},
    "path": {"type": "path"},
    "uid": {"type": "str"},
    "folder_uid": {"type": "str", "default": ""},
    "message": {"type": "str"},
    "overwrite": {"type": "bool", "default": False},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[["dashboard", "path"], *CONNECTION_CONSTRAINTS["mutually_exclusive"]],
        required_if=[["state", "present", ["dashboard", "path"], True]],
        required_together=CONNECTION_CONSTRAINTS["required_together"],
        required_one_of=CONNECTION_CONSTRAINTS["required_one_of"],
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
