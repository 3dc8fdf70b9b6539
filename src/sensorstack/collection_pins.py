"""The collections sensorstack pins (collections/requirements.yml) and what is installed in ./collections."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sensorstack import project_root


def pinned(root: Path | None = None) -> dict[str, str]:
    """FQCN -> pinned version, from collections/requirements.yml."""
    requirements = (root or project_root()) / "collections/requirements.yml"
    return {entry["name"]: str(entry["version"]) for entry in yaml.safe_load(requirements.read_text())["collections"]}


def installed_version(fqcn: str, root: Path | None = None) -> str | None:
    manifest = (root or project_root()).joinpath("collections/ansible_collections", *fqcn.split("."), "MANIFEST.json")
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())["collection_info"]["version"]


def mismatches(root: Path | None = None) -> dict[str, tuple[str, str | None]]:
    """Pinned collections whose installed version differs: FQCN -> (pinned, installed or None)."""
    result = {}
    for fqcn, version in pinned(root).items():
        installed = installed_version(fqcn, root)
        if installed != version:
            result[fqcn] = (version, installed)
    return result
