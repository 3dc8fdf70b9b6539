"""Pure rendering for the grafana role: grafana.ini from data, dashboard providers and dashboard files.

The role renders once (``tasks/render.yml``) and each platform places the result, so these functions return text
and data only. They are unit-tested in ``tests/unit/test_grafana_render.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# go-ini (Grafana's parser) reads keys before the first section header as this section.
DEFAULT_SECTION = "DEFAULT"
GENERAL_FOLDER_DIR = "general"


def ini_value(section: str, key: str, value: Any) -> str:
    """One value as go-ini reads it back: booleans in lower case, lists comma-joined, literal text in backticks."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, Mapping):
        raise AnsibleFilterError(f"grafana_ini: [{section}] {key} is a mapping; settings are single values")
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = ",".join(str(item) for item in value)
    text = str(value)
    if "\n" in text or "\r" in text:
        raise AnsibleFilterError(f"grafana_ini: [{section}] {key} spans lines, which grafana.ini cannot hold")
    needs_quoting = text != text.strip() or any(mark in text for mark in ("#", ";", "`", '"'))
    if needs_quoting:
        if "`" in text:
            raise AnsibleFilterError(f"grafana_ini: [{section}] {key} holds both a backtick and characters to quote")
        return f"`{text}`"
    return text


def grafana_ini(sections: Mapping[str, Any], header: str = "") -> str:
    """grafana.ini text from ``{section: {key: value}}``: sections and keys sorted, so the file is stable."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    ordered = sorted(sections.items(), key=lambda item: (item[0] != DEFAULT_SECTION, item[0]))
    for section, settings in ordered:
        if not isinstance(settings, Mapping):
            raise AnsibleFilterError(f"grafana_ini: section {section} must be a mapping of settings")
        if lines:
            lines.append("")
        if section != DEFAULT_SECTION:
            lines.append(f"[{section}]")
        lines.extend(f"{key} = {ini_value(section, key, value)}" for key, value in sorted(settings.items()))
    return "\n".join(lines) + "\n"


def _folder_dir(folder_uid: str | None) -> str:
    return folder_uid or GENERAL_FOLDER_DIR


def grafana_dashboard_providers(
    dashboards: Sequence[Mapping[str, Any]],
    folders: Sequence[Mapping[str, Any]],
    dashboards_dir: str,
    update_interval: int = 30,
) -> list[dict[str, Any]]:
    """One file provider per folder that holds a dashboard (Grafana's dashboards.yaml ``providers``)."""
    titles = {str(folder["uid"]): str(folder["title"]) for folder in folders}
    used = sorted({str(entry.get("folder_uid") or "") for entry in dashboards})
    unknown = [uid for uid in used if uid and uid not in titles]
    if unknown:
        raise AnsibleFilterError(f"folder_uid {', '.join(unknown)} is not in grafana_dashboard_folders")
    return [
        {
            "name": f"sensorstack-{_folder_dir(uid)}",
            "orgId": 1,
            "type": "file",
            "folder": titles.get(uid, ""),
            "folderUid": uid,
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": int(update_interval),
            "options": {"path": f"{dashboards_dir.rstrip('/')}/{_folder_dir(uid)}", "foldersFromFilesStructure": False},
        }
        for uid in used
    ]


def grafana_dashboard_files(
    dashboards: Sequence[Mapping[str, Any]], models: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """``{<folder dir>/<uid>.json: JSON text}`` for the dashboards and their parsed models, in the same order."""
    if len(dashboards) != len(models):
        raise AnsibleFilterError("grafana_dashboard_files: one model per dashboard entry is needed")
    files: dict[str, str] = {}
    for entry, model in zip(dashboards, models, strict=True):
        uid = str(model.get("uid") or "")
        if not uid:
            raise AnsibleFilterError(f"dashboard {entry.get('src')} has no uid")
        path = f"{_folder_dir(entry.get('folder_uid'))}/{uid}.json"
        if path in files:
            raise AnsibleFilterError(f"dashboard uid {uid} is provisioned twice into the same folder")
        files[path] = json.dumps(model, indent=2, sort_keys=False) + "\n"
    return files


class FilterModule:
    """The grafana role's rendering filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "grafana_ini": grafana_ini,
            "grafana_dashboard_providers": grafana_dashboard_providers,
            "grafana_dashboard_files": grafana_dashboard_files,
        }
