"""Read an inventory the way Ansible does (group_vars included), through ansible-inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def hostvars(inventory: Path) -> dict[str, dict[str, Any]]:
    """Host name -> its variables, for every host of the inventory."""
    command = [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"]
    listing = subprocess.run(command, capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise ValueError(f"cannot read inventory {inventory}: {listing.stderr.strip()}")
    return json.loads(listing.stdout)["_meta"]["hostvars"]


def connections(inventory: Path) -> dict[str, str]:
    """Host name -> connection plugin (ssh unless the inventory says otherwise)."""
    return {host: str(variables.get("ansible_connection", "ssh")) for host, variables in hostvars(inventory).items()}
