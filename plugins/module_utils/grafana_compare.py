"""Pure functions behind the grafana_* modules: identity, normalisation, comparison and request bodies.

Nothing here talks to a server, so every rule is unit-tested (``tests/unit/test_grafana_compare.py``):
- Dashboards: identity is the uid (the ``uid`` option, else the JSON's ``uid``; none is an error, because a dashboard
  without a uid is created anew on every run). The wanted and the stored JSON are compared after dropping ``id`` and
  ``version``, which Grafana owns; the folder is part of the wanted state (omitted means the General folder).
- Datasources: options left out keep the server's value; ``json_data`` replaces the whole ``jsonData``. Secrets are
  write-only in Grafana, so they cannot be compared: ``update_secure_json_data`` says when they are written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

GRAFANA_OWNED_DASHBOARD_KEYS = ("id", "version")
UID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]+$")
MAX_UID_LENGTH = 40
SECRET_MASK = "********"
# Never returned: the write-only secrets, and the plain-text password fields of releases before Grafana 9.
SECRET_FIELDS = frozenset({"secureJsonData", "password", "basicAuthPassword"})

# Module option -> field of Grafana's datasource API.
DATASOURCE_FIELDS = {
    "name": "name",
    "uid": "uid",
    "type": "type",
    "url": "url",
    "access": "access",
    "database": "database",
    "user": "user",
    "json_data": "jsonData",
    "is_default": "isDefault",
}
# Fields a PUT must carry over from the stored datasource: Grafana's update replaces every column.
DATASOURCE_KEPT_FIELDS = (
    "name",
    "uid",
    "type",
    "access",
    "url",
    "user",
    "database",
    "basicAuth",
    "basicAuthUser",
    "withCredentials",
    "isDefault",
    "jsonData",
)


# --- uids -------------------------------------------------------------------------------------------------------------


def uid_problem(uid: str, what: str) -> str | None:
    """Grafana's uid rules (at most 40 letters, digits, '-' or '_'), as a message naming ``what``; None if valid."""
    if len(uid) > MAX_UID_LENGTH:
        return f"{what} {uid!r} is longer than Grafana's limit of {MAX_UID_LENGTH} characters"
    if not UID_PATTERN.match(uid):
        return f"{what} {uid!r} may only hold letters, digits, '-' and '_'"
    return None


# --- Dashboards -------------------------------------------------------------------------------------------------------


def dashboard_uid(dashboard: Mapping[str, Any], uid_option: str | None) -> str:
    """The dashboard's stable identity: the ``uid`` option, else the JSON's ``uid``.

    Raises ValueError when there is none: Grafana would generate a new uid on every save, so the task would create
    another copy each run and never converge.
    """
    uid = str(uid_option or dashboard.get("uid") or "").strip()
    if not uid:
        raise ValueError(
            "the dashboard has no uid: set the uid option or a 'uid' in the dashboard JSON. Without one, Grafana "
            "generates a new uid on every save, so each run would create another copy of the dashboard"
        )
    problem = uid_problem(uid, "dashboard uid")
    if problem:
        raise ValueError(problem)
    return uid


def dashboard_problems(dashboard: Any) -> list[str]:
    """What Grafana would refuse in a dashboard's JSON, said before any request."""
    if not isinstance(dashboard, Mapping):
        return [f"the dashboard must be a JSON object, not {type(dashboard).__name__}"]
    if not str(dashboard.get("title") or "").strip():
        return ["the dashboard has no title: Grafana refuses an empty title (HTTP 400)"]
    return []


def normalize_dashboard(dashboard: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """The comparable form: the JSON without the keys Grafana owns (``id``, ``version``), with the stable uid."""
    normalized = {
        key: copy.deepcopy(value) for key, value in dashboard.items() if key not in GRAFANA_OWNED_DASHBOARD_KEYS
    }
    normalized["uid"] = uid
    return normalized


def dashboard_changes(wanted: Mapping[str, Any], wanted_folder_uid: str, stored: Mapping[str, Any] | None) -> list[str]:
    """What differs between the wanted dashboard and Grafana's answer to ``GET /api/dashboards/uid/:uid``.

    ``wanted`` is normalised; ``stored`` is the whole answer (``dashboard`` and ``meta``) or None when absent.
    """
    if stored is None:
        return ["created"]
    changes = []
    current = stored.get("dashboard") or {}
    if normalize_dashboard(current, str(current.get("uid") or wanted.get("uid"))) != dict(wanted):
        changes.append("dashboard")
    if stored_folder_uid(stored) != (wanted_folder_uid or ""):
        changes.append("folder")
    return changes


def stored_folder_uid(stored: Mapping[str, Any]) -> str:
    return str((stored.get("meta") or {}).get("folderUid") or "")


def stored_version(stored: Mapping[str, Any]) -> int:
    return int((stored.get("dashboard") or {}).get("version") or 0)


def dashboard_payload(
    wanted: Mapping[str, Any],
    folder_uid: str,
    stored: Mapping[str, Any] | None,
    message: str | None,
    overwrite: bool,
) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``.

    An update carries the stored version: if someone saved the dashboard after it was read, Grafana answers 412
    version-mismatch instead of silently overwriting their change, unless ``overwrite``. A creation never
    overwrites (there is nothing to protect, and old releases would take over a same-titled dashboard).
    """
    dashboard = dict(copy.deepcopy(wanted))
    dashboard["id"] = None
    payload: dict[str, Any] = {"dashboard": dashboard, "folderUid": folder_uid or "", "overwrite": False}
    if stored is not None:
        dashboard["id"] = (stored.get("dashboard") or {}).get("id")
        dashboard["version"] = stored_version(stored)
        payload["overwrite"] = overwrite
    if message:
        payload["message"] = message
    return payload


def dashboard_diff_view(dashboard: Mapping[str, Any] | None, folder_uid: str) -> dict[str, Any]:
    """One side of the diff: the comparable JSON and the folder."""
    if dashboard is None:
        return {}
    return {"folder_uid": folder_uid or "", "dashboard": dict(dashboard)}


# --- Folders ----------------------------------------------------------------------------------------------------------


def folder_changes(title: str, stored: Mapping[str, Any] | None) -> list[str]:
    if stored is None:
        return ["created"]
    return [] if stored.get("title") == title else ["title"]


def folder_view(folder: Mapping[str, Any] | None) -> dict[str, Any]:
    if folder is None:
        return {}
    return {"uid": folder.get("uid"), "title": folder.get("title")}


# --- Datasources ------------------------------------------------------------------------------------------------------


def wanted_datasource(params: Mapping[str, Any]) -> dict[str, Any]:
    """The API fields the task sets: every datasource option that was given (None means 'keep the server's')."""
    wanted = {field: params[option] for option, field in DATASOURCE_FIELDS.items() if params.get(option) is not None}
    return wanted


def datasource_changes(wanted: Mapping[str, Any], current: Mapping[str, Any] | None) -> list[str]:
    """API field names whose wanted value differs from the stored one (["created"] when there is none)."""
    if current is None:
        return ["created"]
    changes = []
    for field, value in wanted.items():
        stored = current.get(field)
        if field == "jsonData":
            stored = stored or {}
        if stored != value:
            changes.append(field)
    return changes


def secrets_to_write(
    secure_json_data: Mapping[str, Any] | None,
    secure_json_fields: Mapping[str, Any] | None,
    policy: str,
    creating: bool,
) -> dict[str, str]:
    """Which secrets to send. Grafana never returns them, so they cannot be compared.

    - creating: all of them;
    - ``always``: all of them, on every run (the task then reports a change each time it runs);
    - ``on_create``: only the keys Grafana reports as not set (``secureJsonFields``), so a secret added to the
      task later is written once, and an unchanged task never reports a change.
    Empty values are never sent on their own account: Grafana reports an empty secret as not set, so sending it
    would report a change forever.
    """
    secrets = {str(key): str(value) for key, value in (secure_json_data or {}).items() if value not in (None, "")}
    if creating or policy == "always":
        return secrets
    already_set = {key for key, is_set in (secure_json_fields or {}).items() if is_set}
    return {key: value for key, value in secrets.items() if key not in already_set}


def datasource_body(
    wanted: Mapping[str, Any], current: Mapping[str, Any] | None, secrets: Mapping[str, str]
) -> dict[str, Any]:
    """The body of a create (POST) or of an update (PUT by uid: every field, the stored version for locking)."""
    body: dict[str, Any] = {}
    if current is not None:
        body = {field: copy.deepcopy(current[field]) for field in DATASOURCE_KEPT_FIELDS if field in current}
        body["version"] = current.get("version")
    body.update(copy.deepcopy(dict(wanted)))
    if current is None:
        body.setdefault("access", "proxy")
        body.setdefault("isDefault", False)
    if secrets:
        body["secureJsonData"] = dict(secrets)
    return body


def datasource_view(
    fields: Mapping[str, Any] | None, secret_keys: Mapping[str, Any] | None = None, written: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One side of the diff: the managed fields, and the secret keys masked (never their values)."""
    if fields is None:
        return {}
    view = {field: copy.deepcopy(fields.get(field)) for field in DATASOURCE_KEPT_FIELDS if field in fields}
    keys = {key for key, is_set in (secret_keys or {}).items() if is_set} | set(written)
    if keys:
        view["secureJsonData"] = {
            key: f"{SECRET_MASK} (written by this task)" if key in written else SECRET_MASK for key in sorted(keys)
        }
    return view


def datasource_result(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the module returns about a datasource: Grafana's fields, secrets only as the set/not-set flags."""
    if answer is None:
        return {}
    return {key: copy.deepcopy(value) for key, value in answer.items() if key not in SECRET_FIELDS}
