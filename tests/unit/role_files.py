"""A role's variable files as the unit tests read them, and the checks every role's files must pass.

The checks return their problems (empty: none) so each test's own assert prints them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sensorstack.bundle.versions import template

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
# The sensorstack role's defaults (project settings and the one versions file): every role depends on it.
SHARED: dict[str, Any] = {
    name: value
    for path in sorted((ROLES / "sensorstack/defaults/main").glob("*.yml"))
    for name, value in yaml.safe_load(path.read_text()).items()
}
SPEC_TYPES = {"str": str, "path": str, "int": int, "bool": bool, "dict": dict, "list": list}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class RoleFiles:
    name: str
    defaults: dict[str, Any]
    vars: dict[str, Any]
    options: dict[str, Any]

    @classmethod
    def load(cls, name: str) -> RoleFiles:
        folder = ROLES / name
        spec = _load(folder / "meta/argument_specs.yml")
        return cls(
            name=name,
            defaults=_load(folder / "defaults/main.yml"),
            vars=_load(folder / "vars/main.yml"),
            options=spec["argument_specs"]["main"]["options"],
        )

    def render(self, expression: Any, **variables: Any) -> Any:
        """expression over the shared settings, the role's defaults and vars, then variables (which win)."""
        return template(expression, {**SHARED, **self.defaults, **self.vars, **variables})

    def spec_problems(self) -> list[str]:
        """How the argument spec fails to mirror the defaults. A default that is a template (it follows a
        sensorstack_* setting) has no default in the spec, where it would be a stale copy; its description names what
        it follows."""
        problems = [f"in defaults, not in the spec: {name}" for name in sorted(set(self.defaults) - set(self.options))]
        problems += [f"in the spec, not in defaults: {name}" for name in sorted(set(self.options) - set(self.defaults))]
        for name, value in self.defaults.items():
            option = self.options.get(name)
            if option is None:
                continue
            if not option.get("description"):
                problems.append(f"{name}: no description")
            if "{{" in yaml.safe_dump(value):
                if "default" in option:
                    problems.append(f"{name}: a template has no default in the spec")
                description = yaml.safe_dump(option.get("description"))
                problems += [
                    f"{name}: the description does not name {followed}"
                    for followed in re.findall(r"sensorstack_\w+", str(value))
                    if followed not in description
                ]
            else:
                if option.get("default") != value:
                    problems.append(f"{name}: default {value!r}, the spec says {option.get('default')!r}")
                if not isinstance(value, SPEC_TYPES[option["type"]]):
                    problems.append(f"{name}: {value!r} is not of the spec's type {option['type']}")
        return problems

    def unprefixed_variables(self) -> list[str]:
        """Variables of defaults and vars that lack the role's prefix."""
        return sorted(name for name in (*self.defaults, *self.vars) if not name.startswith(f"{self.name}_"))
