#!/usr/bin/python
"""Manage one Grafana folder by uid."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: grafana_folder
short_description: Manage a Grafana folder by uid, including its title
version_added: 1.0.0
description:
  - Creates, renames or removes one dashboard folder through Grafana's HTTP API, identified by its uid.
  - A changed title is applied (saved with the version this task read, so a rename made by someone else in
    between fails clearly instead of being overwritten). An unchanged folder is never saved again.
author:
  - sensorstack developers
extends_documentation_fragment:
  - sensorstack.iot.grafana
  - sensorstack.iot.grafana.url
options:
  uid:
    description:
      - The folder's identity. At most 40 letters, digits, C(-) or C(_).
    type: str
    required: true
  title:
    description:
      - The folder's title. Required when O(state=present).
      - Grafana refuses two folders with the same title; the task then names the folder that has it.
    type: str
  state:
    description:
      - V(present) creates or renames the folder.
      - V(absent) deletes it, and Grafana deletes the dashboards inside it with it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Only GET requests are sent.
  diff_mode:
    support: full
    details: Shows the folder's uid and title before and after.
seealso:
  - module: sensorstack.iot.grafana_dashboard
"""

EXAMPLES = r"""
- name: Ensure the Sensorstack folder exists with its title
  sensorstack.iot.grafana_folder:
    url: http://grafana.example.org:3000
    url_username: admin
    url_password: "{{ vault_grafana_admin_password }}"
    uid: sensorstack
    title: Sensorstack

- name: Ensure the scratch folder and its dashboards are gone
  sensorstack.iot.grafana_folder:
    url: http://grafana.example.org:3000
    token: "{{ vault_grafana_token }}"
    uid: scratch
    state: absent
"""

RETURN = r"""
folder:
  description: The folder as Grafana describes it after the task (empty when absent, or new in check mode).
  returned: always
  type: dict
  sample: {"id": 4, "uid": "sensorstack", "title": "Sensorstack", "url": "/dashboards/f/sensorstack/sensorstack",
           "version": 2}
changes:
  description: What differed (C(created), C(title), C(deleted)); empty when nothing did.
  returned: always
  type: list
  elements: str
  sample: [title]
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
    folder_changes,
    folder_view,
    uid_problem,
)


def title_holder(client: GrafanaClient, title: str, uid: str) -> str | None:
    """The uid of another folder with this title, looking through every page of ``GET /api/folders``."""
    return next((f["uid"] for f in client.list_folders() if f.get("title") == title and f.get("uid") != uid), None)


def explain_conflict(client: GrafanaClient, error: GrafanaError, uid: str, title: str) -> str:
    if error.status == 409:
        holder = title_holder(client, title, uid)
        if holder:
            return f"folder title {title!r} is already used by folder {holder!r}: choose another title. ({error})"
        return f"uid {uid!r} is already used by a dashboard or folder Grafana did not show to this user. ({error})"
    if error.status == 412:
        return (
            f"folder {uid!r} was changed by someone else after this task read it; nothing was overwritten. Re-run "
            f"the task to apply the declared title. ({error})"
        )
    return str(error)


def present(client: GrafanaClient, uid: str, title: str, check_mode: bool) -> dict[str, Any]:
    stored = client.get_folder(uid)
    changes = folder_changes(title, stored)
    result: dict[str, Any] = {
        "changed": bool(changes),
        "changes": changes,
        "folder": stored or {},
        "diff": {"before": folder_view(stored), "after": {"uid": uid, "title": title}},
    }
    if not changes or check_mode:
        return result
    try:
        if stored is None:
            result["folder"] = client.create_folder(uid, title)
        else:
            result["folder"] = client.update_folder(uid, title, int(stored.get("version") or 0))
    except GrafanaError as error:
        raise GrafanaError(explain_conflict(client, error, uid, title)) from None
    return result


def absent(client: GrafanaClient, uid: str, check_mode: bool) -> dict[str, Any]:
    stored = client.get_folder(uid)
    result: dict[str, Any] = {
        "changed": stored is not None,
        "changes": [] if stored is None else ["deleted"],
        "folder": {},
        "diff": {"before": folder_view(stored), "after": {}},
    }
    if stored is not None and not check_mode:
        client.delete_folder(uid)
    return result


def run(client: GrafanaClient, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    problem = uid_problem(params["uid"], "folder uid")
    if problem:
        raise ValueError(problem)
    if params["state"] == "absent":
        return absent(client, params["uid"], check_mode)
    if not (params["title"] or "").strip():
        raise ValueError("title must not be empty: Grafana refuses a folder without a title")
    return present(client, params["uid"], params["title"], check_mode)


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    **argument_spec("url"),
    "uid": {"type": "str", "required": True},
    "title": {"type": "str"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[["state", "present", ["title"]]],
        supports_check_mode=True,
        **CONNECTION_CONSTRAINTS,
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
