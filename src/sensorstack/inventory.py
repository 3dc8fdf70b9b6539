"""Read an inventory the way Ansible does (group_vars included), through ansible-inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def vault_arguments(vault_password_file: Path | None) -> list[str]:
    """The option that lets Ansible decrypt vaulted inventory variables: the password file by path, never its text."""
    return ["--vault-password-file", str(Path(vault_password_file).resolve())] if vault_password_file else []


def hostvars(inventory: Path, vault_password_file: Path | None = None) -> dict[str, dict[str, Any]]:
    """Host name -> its variables, for every host of the inventory."""
    command = [
        str(Path(sys.executable).parent / "ansible-inventory"),
        "-i",
        str(inventory),
        "--list",
        *vault_arguments(vault_password_file),
    ]
    listing = subprocess.run(command, capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise ValueError(f"cannot read inventory {inventory}: {listing.stderr.strip()}")
    return json.loads(listing.stdout)["_meta"]["hostvars"]


def connections(inventory: Path, vault_password_file: Path | None = None) -> dict[str, str]:
    """Host name -> connection plugin (ssh unless the inventory says otherwise)."""
    return {
        host: str(variables.get("ansible_connection", "ssh"))
        for host, variables in hostvars(inventory, vault_password_file).items()
    }
