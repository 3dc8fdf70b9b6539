"""What the stack's roles read from each other's variables, defined once.

Telegraf, Grafana and the verify role each take a user's password from ``mosquitto_users`` or ``influxdb_users``
and the database the readings go to from ``influxdb_databases``; these filters are the one way they do it, so the
roles cannot disagree about which entry counts (the first present one; ``state: absent`` entries never do).
``admin_password_problems`` is the one rule for the
services' admin passwords. Pure functions, run on the controller; unit-tested in ``tests/unit/test_stack_filters.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def present_entries(entries: Any, variable: str) -> list[Mapping[str, Any]]:
    """The entries of a list variable that are not ``state: absent``; a non-list names ``variable``."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise AnsibleFilterError(f"{variable} must be a list")
    return [entry for entry in entries if isinstance(entry, Mapping) and entry.get("state", "present") != "absent"]


def admin_password_problems(password: Any, variable: str, service: str) -> list[str]:
    """An admin password must be set, at least 8 characters and none of the well-known defaults (never shown)."""
    text = "" if password is None else str(password)
    known = {"admin", "password", "changeme", service}
    if len(text) < 8 or text.lower() in known:
        return [
            f"{variable} must be set, at least 8 characters long and none of {', '.join(sorted(known))}; "
            "keep it in Ansible Vault"
        ]
    return []


def stack_user_password(users: Any, name: str) -> str:
    """The password of the present user ``name`` in a mosquitto_users / influxdb_users list, or "" if none."""
    for user in present_entries(users, "the users list"):
        if user.get("name") == name:
            return str(user.get("password") or "")
    return ""


def stack_first_database(databases: Any, variable: str) -> str:
    """The first present database of influxdb_databases: where the stack's points go unless ``variable`` says else."""
    for database in present_entries(databases, "influxdb_databases"):
        return str(database["name"])
    raise AnsibleFilterError(f"influxdb_databases declares no database: set {variable}")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "stack_user_password": stack_user_password,
            "stack_first_database": stack_first_database,
        }
