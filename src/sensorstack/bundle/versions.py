"""The pinned versions and download locations, read from the one file the roles read too.

``roles/sensorstack/defaults/main/versions.yml`` is rendered with Ansible's own templating, so the bundle builder
and the roles can never disagree on a URL or a version derived from another variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sensorstack import project_root

VERSIONS_FILE = Path("roles/sensorstack/defaults/main/versions.yml")


def versions_file() -> Path:
    return project_root() / VERSIONS_FILE


def render(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Render every template in raw (and overrides, which win) as Ansible would with these variables alone."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    variables = {**raw, **(overrides or {})}
    trusted = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}
    templar = Templar(loader=DataLoader(), variables=trusted)
    return {name: _plain(templar.template(value)) for name, value in trusted.items()}


def _plain(value: Any) -> Any:
    """Ansible 2.19 returns tagged str subclasses; callers (json, paths) want the plain types."""
    if isinstance(value, str):
        return str(value).strip()
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def load_versions(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The rendered variables of the versions file; overrides (e.g. ``sensorstack_mirror``) as group_vars would."""
    source = path or versions_file()
    raw = yaml.safe_load(source.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of variables")
    return render(raw, overrides)


def kubernetes_minor(version: str) -> str:
    """``1.35.4`` -> ``1.35``."""
    parts = version.removeprefix("v").split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"sensorstack_kubernetes_version must look like 1.35.4, got {version!r}")
    return ".".join(parts[:2])
