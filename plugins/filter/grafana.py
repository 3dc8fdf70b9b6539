"""The grafana role's checks and rendering: its semantic checks, grafana.ini, dashboard providers and files.

``sensorstack.iot.grafana_problems(settings)`` lists what is wrong with the role's variables (one mapping), each
message naming the variable and none showing a secret; the role calls it first, and the preflight play calls it
through the role's ``validate.yml`` before any host changes. The role renders once (``tasks/render.yml``) and each
platform places the result, so the rendering filters return text and data only. Unit-tested in
``tests/unit/test_grafana_render.py`` and ``tests/unit/test_stack_checks.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import admin_password_problems, names_a_credential
from ansible_collections.sensorstack.iot.plugins.module_utils.openpgp import normalise_fingerprint

# go-ini (Grafana's parser) reads keys before the first section header as this section.
DEFAULT_SECTION = "DEFAULT"
GENERAL_FOLDER_DIR = "general"
KEY_CHECKSUM = re.compile(r"^sha(256|384|512):[0-9a-fA-F]{64,128}$")
KEY_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
# A credential inside another value: user:password@ in a URL ([database] url), password= in a connection string
# ([remote_cache] connstr).
EMBEDDED_CREDENTIAL = re.compile(r"://[^/@\s:]+:[^/@\s]+@|(?:^|[\s,;])password=", re.IGNORECASE)
# Grafana's own expansions, read when it starts or provisions, anywhere in a value ("Bearer $__file{...}"): a value
# with one takes its credential from there.
GRAFANA_EXPANSION = re.compile(r"\$__(?:file|env|vault)\{[^}]*\}|\$\{[^}]*\}")
# The ones that read the environment, which the Grafana pod's fixed list of variables never holds for them.
ENVIRONMENT_EXPANSION = re.compile(r"\$__env\{[^}]*\}|\$\{[^}]*\}")
FILE_EXPANSION = re.compile(r"\$__file\{([^}]*)\}")
BOOLEAN_TEXT = ("true", "false", "yes", "no", "on", "off", "0", "1")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
# The files the role writes into the secrets directory itself, and that directory (vars/main.yml).
ROLE_SECRET_NAMES = ("admin_password", "influxdb_password")
DEFAULT_SECRETS_DIR = "/etc/grafana/secrets"


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


def _key_pin_problems(settings: Mapping[str, Any]) -> list[str]:
    """The systemd platform trusts Grafana's apt key only pinned: by its primary fingerprint, its file's checksum, or
    both (sensorstack.iot.apt_signing_key)."""
    if settings.get("grafana_platform", "systemd") != "systemd":
        return []
    checksum = str(settings.get("grafana_apt_key_checksum") or "").strip()
    fingerprint = normalise_fingerprint(str(settings.get("grafana_apt_key_fingerprint") or ""))
    problems = []
    if fingerprint and not KEY_FINGERPRINT.match(fingerprint):
        problems.append(
            f"grafana_apt_key_fingerprint must be the key's fingerprint (40 hex digits, spaces allowed), got "
            f"{settings.get('grafana_apt_key_fingerprint')!r}"
        )
    if checksum and not KEY_CHECKSUM.match(checksum):
        problems.append(f"grafana_apt_key_checksum must be sha256:<hex>, got {checksum!r}")
    if not fingerprint and not checksum:
        problems.append(
            "grafana_apt_key_fingerprint or grafana_apt_key_checksum must pin Grafana's apt signing key, got "
            "neither: set the key's fingerprint as Grafana's install documentation gives it, or download "
            f"{settings.get('grafana_apt_key_url')} (grafana_apt_key_url), check its fingerprint, and set the file's "
            "sha256sum. The key is never trusted unpinned."
        )
    return problems


def _datasource_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    user = settings.get("grafana_influxdb_user") or ""
    if (
        settings.get("grafana_influxdb_datasource_enabled", True)
        and user
        and not settings.get("grafana_influxdb_password")
    ):
        problems.append(
            f"grafana_influxdb_user is {user} but grafana_influxdb_password is empty: set it (Ansible Vault), or set "
            'grafana_influxdb_user to "" for an InfluxDB without authentication'
        )
    defaults = [
        str(source.get("name"))
        for source in settings.get("grafana_provisioned_datasources") or []
        if isinstance(source, Mapping) and source.get("isDefault")
    ]
    if len(defaults) > 1:
        problems.append(
            f"Grafana refuses provisioning with more than one default datasource; these are: {', '.join(defaults)} "
            "(grafana_influxdb_is_default and isDefault in grafana_datasources)"
        )
    return problems


def _folder_problems(settings: Mapping[str, Any]) -> list[str]:
    declared = {folder.get("uid") for folder in settings.get("grafana_dashboard_folders") or []}
    unknown = sorted(
        {
            str(dashboard["folder_uid"])
            for dashboard in settings.get("grafana_dashboards_all") or []
            if dashboard.get("folder_uid") and dashboard["folder_uid"] not in declared
        }
    )
    if not unknown:
        return []
    return [
        f"folder_uid {', '.join(unknown)} of grafana_dashboards/grafana_extra_dashboards is not in "
        "grafana_dashboard_folders; declare it there ({uid, title}) or leave folder_uid empty for the General folder"
    ]


def _secrets_dir(settings: Mapping[str, Any]) -> str:
    return str(settings.get("grafana_secrets_dir") or DEFAULT_SECRETS_DIR).rstrip("/")


def _holds_a_secret_in_the_clear(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return False
    text = str(value).strip()
    return bool(text) and text.lower() not in BOOLEAN_TEXT and not GRAFANA_EXPANSION.search(text)


def _embeds_a_credential(value: Any) -> bool:
    return isinstance(value, str) and bool(EMBEDDED_CREDENTIAL.search(value)) and not GRAFANA_EXPANSION.search(value)


def _ini_settings(settings: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(section, key, value) of grafana_ini, sections that are not mappings left to the grafana_ini filter's error."""
    return [
        (str(section), str(key), value)
        for section, values in sorted((settings.get("grafana_ini") or {}).items())
        if isinstance(values, Mapping)
        for key, value in sorted(values.items())
    ]


def _datasource_secrets(source: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(field, value) of what a provisioned datasource entry holds as credentials: every secureJsonData field, and the
    deprecated top-level password fields."""
    secure = source.get("secureJsonData") or {}
    fields = (
        [(f"secureJsonData.{key}", value) for key, value in sorted(secure.items())]
        if isinstance(secure, Mapping)
        else []
    )
    return fields + [(key, source[key]) for key in ("password", "basicAuthPassword") if key in source]


def _clear_ini_credentials(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(section, key) of each grafana_ini setting that holds a credential in the clear."""
    return [
        (section, key)
        for section, key, value in _ini_settings(settings)
        if (names_a_credential(key) and _holds_a_secret_in_the_clear(value)) or _embeds_a_credential(value)
    ]


def _clear_datasource_credentials(source: Mapping[str, Any]) -> list[str]:
    """The fields of a provisioned datasource entry that hold a credential in the clear: a credential field, or a
    URL with a user's password in it."""
    fields = [field for field, value in _datasource_secrets(source) if _holds_a_secret_in_the_clear(value)]
    return fields + (["url"] if _embeds_a_credential(source.get("url")) else [])


def _provisioned_sources(settings: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [source for source in settings.get("grafana_datasources") or [] if isinstance(source, Mapping)]


def grafana_clear_credentials(settings: Mapping[str, Any]) -> bool:
    """Whether grafana.ini or the provisioning files will hold a credential in the clear (systemd allows it): the
    role then shows no diff of those files, which `sensorstack check` and --diff would print."""
    return bool(_clear_ini_credentials(settings)) or any(
        _clear_datasource_credentials(source) for source in _provisioned_sources(settings)
    )


def _clear_secret_problems(settings: Mapping[str, Any]) -> list[str]:
    """On Kubernetes grafana.ini and the provisioning files are the ConfigMap grafana-config: a credential written
    there in the clear is readable by whoever may read the namespace's ConfigMaps."""
    if settings.get("grafana_platform") != "kubernetes":
        return []
    secrets_dir = _secrets_dir(settings)
    remedy = (
        "Put the value in grafana_secrets (a name: the vaulted value), which the role places in the Secret grafana, "
        f"and write the setting as $__file{{{secrets_dir}/<name>}}, which Grafana reads from that file"
    )
    ini = _ini_settings(settings)
    sources = _provisioned_sources(settings)
    problems = [
        f"grafana_ini [{section}] {key} holds a credential in the clear, and on Kubernetes grafana.ini is the "
        f"ConfigMap grafana-config. {remedy}."
        for section, key in _clear_ini_credentials(settings)
    ]
    for source in sources:
        fields = _clear_datasource_credentials(source)
        if fields:
            problems.append(
                f"grafana_datasources entry {source.get('name')} holds {', '.join(fields)} in the clear, and on "
                f"Kubernetes the provisioned datasources are the ConfigMap grafana-config. {remedy} (or converge the "
                "datasource through grafana_api_datasources, whose secure_json_data goes to Grafana's API only)."
            )
    from_environment = sorted(
        {
            f"grafana_ini [{section}] {key}"
            for section, key, value in ini
            if isinstance(value, str) and ENVIRONMENT_EXPANSION.search(value)
        }
        | {
            f"grafana_datasources entry {source.get('name')}"
            for source in sources
            if any(ENVIRONMENT_EXPANSION.search(text) for text in _texts(source))
        }
    )
    if from_environment:
        problems.append(
            f"{', '.join(from_environment)} read an environment variable ($__env{{...}} or ${{...}}), which the "
            f"Grafana pod's environment never holds on Kubernetes, so Grafana would get an empty value. {remedy}."
        )
    return problems


def _texts(value: Any) -> list[str]:
    """Every string in a value, however deeply nested."""
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return [value] if isinstance(value, str) else []


def _file_expansions(value: Any) -> list[str]:
    """The paths of every $__file{...} in a value, however deeply nested."""
    return [path for text in _texts(value) for path in FILE_EXPANSION.findall(text)]


def _secret_name_problems(settings: Mapping[str, Any]) -> list[str]:
    secrets = settings.get("grafana_secrets") or {}
    if not isinstance(secrets, Mapping):
        return ["grafana_secrets must be a mapping of names to values ({name: vaulted value})"]
    names = [str(name) for name in secrets]
    problems = [
        f"grafana_secrets names the file {name!r}: a name is letters, digits, '.', '_' and '-', not starting with "
        "'.' or '-'"
        for name in names
        if not SECRET_NAME.match(name)
    ]
    # Not "is a str": a vaulted value may reach the filter still encrypted, as a type of its own.
    empty = [str(name) for name, value in secrets.items() if value in (None, "") or isinstance(value, Mapping | list)]
    if empty:
        problems.append(
            f"grafana_secrets gives {', '.join(empty)} no value, or a list or mapping: each needs its credential"
        )
    taken = [name for name in names if name in ROLE_SECRET_NAMES]
    if taken:
        problems.append(
            f"grafana_secrets names {', '.join(taken)}, a file of the role's own ({', '.join(ROLE_SECRET_NAMES)}: "
            "grafana_admin_password and grafana_influxdb_password); choose another name"
        )
    secrets_dir = _secrets_dir(settings)
    # The role writes influxdb_password only when the datasource has a password.
    written = {"admin_password"} | ({"influxdb_password"} if settings.get("grafana_influxdb_password") else set())
    known = set(names) | written
    referring = {
        "grafana_ini": settings.get("grafana_ini") or {},
        "grafana_datasources": settings.get("grafana_datasources") or [],
    }
    for variable, value in referring.items():
        undeclared = sorted(
            {
                path
                for path in _file_expansions(value)
                if path.rsplit("/", 1)[0] == secrets_dir and path.rsplit("/", 1)[-1] not in known
            }
        )
        if undeclared:
            problems.append(
                f"{variable} refers to {', '.join(f'$__file{{{path}}}' for path in undeclared)}, a file of the "
                f"secrets directory that grafana_secrets does not declare (it declares: {', '.join(names) or 'none'}); "
                "Grafana would not start without it"
            )
    return problems


def grafana_problems(settings: Mapping[str, Any]) -> list[str]:
    """The admin password, the pinned apt key, the InfluxDB datasource's password, one default, declared folders,
    grafana_secrets and the files that refer to them, and no credential in the clear where Kubernetes would put it in
    a ConfigMap."""
    return (
        admin_password_problems(settings.get("grafana_admin_password"), "grafana_admin_password", "grafana")
        + _key_pin_problems(settings)
        + _datasource_problems(settings)
        + _folder_problems(settings)
        + _secret_name_problems(settings)
        + _clear_secret_problems(settings)
    )


class FilterModule:
    """The grafana role's rendering filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "grafana_problems": grafana_problems,
            "grafana_clear_credentials": grafana_clear_credentials,
            "grafana_ini": grafana_ini,
            "grafana_dashboard_providers": grafana_dashboard_providers,
            "grafana_dashboard_files": grafana_dashboard_files,
        }
