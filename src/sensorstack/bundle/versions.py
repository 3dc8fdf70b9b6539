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
# The two variables that make versions.yml describe one Kubernetes release: what derives from them (the apt
# repository of its minor, the package versions) follows when they are overridden.
RELEASE_VARIABLES = ("sensorstack_kubernetes_version", "sensorstack_kubernetes_package_revision")
# The previous release a lab cluster starts at to rehearse an upgrade, and its package revision; empty: none.
UPGRADE_FROM_VARIABLES = (
    "sensorstack_kubernetes_upgrade_from_version",
    "sensorstack_kubernetes_upgrade_from_package_revision",
)


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


def kubernetes_minor(version: str, variable: str = "sensorstack_kubernetes_version") -> str:
    """``1.35.4`` -> ``1.35``."""
    parts = version.removeprefix("v").split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{variable} must look like 1.35.4, got {version!r}")
    return ".".join(parts[:2])


def release_pins(versions: Mapping[str, Any]) -> dict[str, str]:
    """The variables that name versions' Kubernetes release, as overrides that render versions.yml for it again."""
    return {name: str(versions[name]) for name in RELEASE_VARIABLES}


def previous_release(
    versions: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, path: Path | None = None
) -> dict[str, Any] | None:
    """versions.yml rendered for a cluster at sensorstack_kubernetes_upgrade_from_version (with the same overrides),
    so its apt repository, packages and images follow as they do for the pinned release; None when it is empty.

    It must be a patch release of the minor before sensorstack_kubernetes_version: kubeadm upgrades one minor at a
    time.
    """
    version_variable, revision_variable = UPGRADE_FROM_VARIABLES
    version = str(versions.get(version_variable) or "").strip()
    if not version:
        return None
    pinned = kubernetes_minor(str(versions[RELEASE_VARIABLES[0]]))
    major, minor = (int(part) for part in pinned.split("."))
    expected = f"{major}.{minor - 1}"
    if kubernetes_minor(version, version_variable) != expected:
        raise ValueError(
            f"{version_variable} must be a {expected} release, the minor before sensorstack_kubernetes_version "
            f"{versions[RELEASE_VARIABLES[0]]} (kubeadm upgrades one minor at a time), got {version!r}"
        )
    revision = str(versions.get(revision_variable) or "").strip()
    if not revision:
        raise ValueError(f"{revision_variable} is empty: the Debian revision of the {version} packages, e.g. 1.1")
    pins = dict(zip(RELEASE_VARIABLES, (version.removeprefix("v"), revision), strict=True))
    return load_versions(path, {**(overrides or {}), **pins})
