"""What containerd_hosts changes in a registry hosts directory: pure functions, unit-tested without a host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HOSTS_FILE = "hosts.toml"


@dataclass(frozen=True)
class HostsPlan:
    """Registries whose hosts.toml is written (missing or different) and those whose file is removed."""

    write: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.write or self.remove)


def registry_name_error(name: str) -> str | None:
    """Why ``name`` cannot be a folder of the hosts directory, or None when it can (``_default`` included)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return f"{name!r} is not a registry name containerd looks up as a folder of the hosts directory"
    return None


def is_marked(text: str, marker: str) -> bool:
    """Whether a hosts.toml carries ``marker`` as a line of its own: the files this collection wrote."""
    return marker in text.splitlines()


def plan_hosts(current: Mapping[str, str], wanted: Mapping[str, str], marker: str) -> HostsPlan:
    """Compare the hosts.toml texts on the host (registry -> text) with the wanted ones.

    A wanted file that is missing or differs is written; a file of a registry no longer wanted is removed only when
    it carries the marker, so files written by hand or by other tools stay.
    """
    write = tuple(sorted(registry for registry, text in wanted.items() if current.get(registry) != text))
    remove = tuple(
        sorted(registry for registry, text in current.items() if registry not in wanted and is_marked(text, marker))
    )
    return HostsPlan(write, remove)
