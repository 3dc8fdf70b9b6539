"""Pure helpers of the sysctls module: where a sysctl lives under /proc/sys, the sysctl.d file, value comparison."""

from __future__ import annotations

import os

PROC_SYS = "/proc/sys"


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be a sysctl, or None. Names use dots (net.ipv4.ip_forward) or slashes (net/ipv4/...)."""
    parts = name.split("/" if "/" in name else ".")
    if not name or any(part in ("", ".", "..") for part in parts) or any(c.isspace() or c in "=\0" for c in name):
        return f"{name!r} is not a sysctl name"
    return None


def proc_path(name: str, root: str = PROC_SYS) -> str:
    """The file of ``name`` under ``root``: dots separate the levels unless the name uses slashes (so that a level
    may hold a dot, as an interface such as eth0.10 does)."""
    relative = name if "/" in name else name.replace(".", "/")
    return os.path.join(root, relative)


def normalized(value: object) -> str:
    """A value as the kernel prints it back: tokens separated by single spaces (it uses tabs between several).

    A boolean (YAML's true, or a template that renders one) is the kernel's 1 or 0: written as True, it would
    fail the write to /proc and be refused by systemd-sysctl at boot.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())


def render_file(settings: dict[str, object], header: str) -> str:
    """The sysctl.d file that applies ``settings`` at boot, in the order given."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{name} = {normalized(value)}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def differing(settings: dict[str, object], live: dict[str, str | None]) -> list[str]:
    """The names whose running value (``live``; None: not readable) is not the wanted one."""
    return [
        name
        for name, value in settings.items()
        if live.get(name) is None or normalized(live[name]) != normalized(value)
    ]
