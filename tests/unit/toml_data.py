"""What a TOML document should read as after an edit: shared by the TOML editor's and containerd's tests."""

from __future__ import annotations

import copy
from typing import Any


def with_values(data: dict[str, Any], *changes: tuple[tuple[str, ...], Any]) -> dict[str, Any]:
    """``data`` with each (path, value) set, creating tables on the way, as the edit should."""
    result = copy.deepcopy(data)
    for path, value in changes:
        table = result
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    return result
