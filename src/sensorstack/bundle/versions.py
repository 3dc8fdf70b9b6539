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


def trusted(value: Any) -> Any:
    """A role's own YAML is trusted template text, nested values included, as Ansible treats it."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, Mapping):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [trusted(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """Ansible 2.19 returns tagged str subclasses; callers (json, paths, comparisons) want the plain types."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def template(expression: Any, variables: Mapping[str, Any]) -> Any:
    """Render expression (a string or a structure of them) over trusted variables, as a play would."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    return plain(templar.template(trusted(expression)))


def render(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Render every template in raw (and overrides, which win) as Ansible would with these variables alone."""
    variables = {**raw, **(overrides or {})}
    rendered = template(variables, variables)
    return {name: value.strip() if isinstance(value, str) else value for name, value in rendered.items()}


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
