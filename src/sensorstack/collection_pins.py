"""The collections sensorstack pins (collections/requirements.yml) and what is installed where the runs find them:
./collections in a checkout, site-packages in an installed wheel."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sensorstack import checkout_root, installed_collection, project_root


def pinned(root: Path | None = None) -> dict[str, str]:
    """FQCN -> pinned version, from collections/requirements.yml."""
    requirements = (root or project_root()) / "collections/requirements.yml"
    return {entry["name"]: str(entry["version"]) for entry in yaml.safe_load(requirements.read_text())["collections"]}


def collections_folder() -> Path:
    """The folder holding ansible_collections/ that the runs read: ./collections in a checkout (first in ansible.cfg's
    collections_path), else the site-packages folder where pip put sensorstack.iot and the ansible package's own."""
    checkout = checkout_root()
    return checkout / "collections" if checkout is not None else installed_collection().parents[2]


def installed_version(fqcn: str, folder: Path | None = None) -> str | None:
    manifest = (folder or collections_folder()).joinpath("ansible_collections", *fqcn.split("."), "MANIFEST.json")
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())["collection_info"]["version"]


def mismatches(root: Path | None = None, folder: Path | None = None) -> dict[str, tuple[str, str | None]]:
    """Pinned collections (root's requirements) whose version in ``folder`` differs: FQCN -> (pinned, installed or
    None)."""
    result = {}
    for fqcn, version in pinned(root).items():
        installed = installed_version(fqcn, folder)
        if installed != version:
            result[fqcn] = (version, installed)
    return result
