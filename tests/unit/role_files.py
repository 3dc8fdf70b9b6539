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
# The Python types a literal value of each argument-spec type may have. bool is an int to Python, never to a spec.
SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
    "raw": (object,),
}
# The one file of pinned versions and download locations (roles/sensorstack/defaults/main/versions.yml).
PINS_FILE = "versions.yml"
# How a defaults file names a variable that has no default on purpose (a secret the inventory must supply):
# "# grafana_admin_password: (no default)". The spec lists it, without a default.
NO_DEFAULT_COMMENT = re.compile(r"^#\s*(\w+):\s*\(no default\)", re.MULTILINE)


def opened_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every task of a task list, blocks opened (each block, then the tasks of its block, rescue and always)."""
    result = []
    for task in tasks:
        result.append(task)
        for section in ("block", "rescue", "always"):
            result += opened_tasks(task.get(section) or [])
    return result


def _load(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _variable_files(folder: Path) -> list[Path]:
    """What Ansible reads as a role's defaults or vars: main.yml, or every file of the directory main/."""
    return [folder / "main.yml"] if (folder / "main.yml").is_file() else sorted((folder / "main").glob("*.yml"))


def _merged(paths: list[Path]) -> dict[str, Any]:
    return {name: value for path in paths for name, value in _load(path).items()}


# The sensorstack role's defaults (project settings and the one versions file) and its vars (the names the stack's
# objects share): every role depends on it, and a dependency's vars reach the roles that depend on it.
SHARED: dict[str, Any] = _merged(
    _variable_files(ROLES / "sensorstack/defaults") + _variable_files(ROLES / "sensorstack/vars")
)


def _templated(value: Any) -> bool:
    return "{{" in yaml.safe_dump(value) or "{%" in yaml.safe_dump(value)


def _is_of_type(value: Any, spec_type: str) -> bool:
    if isinstance(value, bool) and spec_type != "bool" and spec_type != "raw":
        return False
    return isinstance(value, SPEC_TYPES[spec_type])


def _option_problems(path: str, option: Any) -> list[str]:
    """How an option of a spec, and its suboptions, fail to say what they are: a description, a known type (and
    element type), a default of that type."""
    if not isinstance(option, dict):
        return [f"{path}: not an option (a mapping with type and description)"]
    problems = [] if option.get("description") else [f"{path}: no description"]
    spec_type = option.get("type")
    if spec_type is None:
        problems.append(f"{path}: no type")
    elif spec_type not in SPEC_TYPES:
        problems.append(f"{path}: type {spec_type!r} is not one of {sorted(SPEC_TYPES)}")
    if "elements" in option:
        if spec_type != "list":
            problems.append(f"{path}: elements, but the type is {spec_type}, not list")
        if option["elements"] not in SPEC_TYPES:
            problems.append(f"{path}: elements {option['elements']!r} is not one of {sorted(SPEC_TYPES)}")
    for name, suboption in (option.get("options") or {}).items():
        problems += _option_problems(f"{path}.{name}", suboption)
        if isinstance(suboption, dict) and "default" in suboption:
            problems += _value_problems(f"{path}.{name}", suboption["default"], suboption)
    return problems


def _value_problems(path: str, value: Any, option: dict[str, Any]) -> list[str]:
    """How a literal value fails the option it is given for: its type, its elements' type, its choices, and, for
    dicts with suboptions, unknown, missing required or mistyped keys. A template in it renders to what it renders
    to, so it is not judged."""
    spec_type = option.get("type")
    if _templated(value) or spec_type not in SPEC_TYPES:
        return []
    if not _is_of_type(value, spec_type):
        return [f"{path}: {value!r} is not of the spec's type {spec_type}"]
    problems = []
    choices = option.get("choices")
    if choices is not None:
        chosen = value if spec_type == "list" else [value]
        problems += [f"{path}: {item!r} is not one of the choices {choices}" for item in chosen if item not in choices]
    if spec_type == "list" and option.get("elements") in SPEC_TYPES:
        element_option = {"type": option["elements"], "options": option.get("options")}
        for index, element in enumerate(value):
            problems += _value_problems(f"{path}[{index}]", element, element_option)
    elif spec_type == "dict" and option.get("options"):
        suboptions: dict[str, Any] = option["options"]
        problems += [f"{path}: {key!r} is not a suboption of the spec" for key in value if key not in suboptions]
        problems += [
            f"{path}: no {name!r}, which the spec requires"
            for name, suboption in suboptions.items()
            if isinstance(suboption, dict) and suboption.get("required") and name not in value
        ]
        for key, item in value.items():
            if isinstance(suboptions.get(key), dict):
                problems += _value_problems(f"{path}.{key}", item, suboptions[key])
    return problems


@dataclass(frozen=True)
class RoleFiles:
    name: str
    defaults: dict[str, Any]
    vars: dict[str, Any]
    options: dict[str, Any]
    # Variables the defaults name as having no default on purpose (NO_DEFAULT_COMMENT).
    undefaulted: frozenset[str] = frozenset()
    # Variables of a versions file (PINS_FILE): the pins live there only, so the spec gives them no default.
    pinned: frozenset[str] = frozenset()

    @classmethod
    def load(cls, name: str) -> RoleFiles:
        folder = ROLES / name
        spec = _load(folder / "meta/argument_specs.yml")
        defaults_files = _variable_files(folder / "defaults")
        return cls(
            name=name,
            defaults=_merged(defaults_files),
            vars=_merged(_variable_files(folder / "vars")),
            options=spec["argument_specs"]["main"].get("options") or {},
            undefaulted=frozenset(
                found for path in defaults_files for found in NO_DEFAULT_COMMENT.findall(path.read_text())
            ),
            pinned=frozenset(name for path in defaults_files if path.name == PINS_FILE for name in _load(path)),
        )

    def render(self, expression: Any, **variables: Any) -> Any:
        """expression over the shared settings, the role's defaults and vars, then variables (which win)."""
        return template(expression, {**SHARED, **self.defaults, **self.vars, **variables})

    def spec_problems(self) -> list[str]:
        """How the argument spec fails to mirror the defaults.

        Every default is an option of the spec and every option a default, but for a variable the defaults name as
        having none (NO_DEFAULT_COMMENT), which the spec lists without a default. Every option and suboption has a
        description and a type the spec knows. A literal default is the spec's default and of its type: its
        elements of the spec's elements type, its values among the choices, its dicts' keys among the suboptions.
        A default that is a template (it follows a sensorstack_* setting or another variable) has no default in
        the spec, where it would be a stale copy; its description names the sensorstack_* settings it follows. A
        pin of the versions file has no default in the spec either: a pin is written once."""
        specified, defaulted = set(self.options), set(self.defaults) | self.undefaulted
        problems = [f"in defaults, not in the spec: {name}" for name in sorted(defaulted - specified)]
        problems += [f"in the spec, not in defaults: {name}" for name in sorted(specified - defaulted)]
        problems += [
            f"{name}: named as having no default, but defaults sets it"
            for name in sorted(self.undefaulted & set(self.defaults))
        ]
        for name, option in self.options.items():
            problems += _option_problems(name, option)
        for name in sorted(self.undefaulted & specified):
            if "default" in self.options[name]:
                problems.append(f"{name}: the defaults give none, the spec says {self.options[name]['default']!r}")
        for name, value in self.defaults.items():
            option = self.options.get(name)
            if not isinstance(option, dict):
                continue
            if _templated(value):
                if "default" in option:
                    problems.append(f"{name}: a template has no default in the spec")
                description = yaml.safe_dump(option.get("description"))
                problems += [
                    f"{name}: the description does not name {followed}"
                    for followed in sorted(set(re.findall(r"sensorstack_\w+", str(value))))
                    if followed not in description
                ]
            elif name in self.pinned:
                if "default" in option:
                    problems.append(f"{name}: pinned in {PINS_FILE}, so the spec gives no default (one place a pin)")
                problems += _value_problems(name, value, option)
            else:
                if option.get("default") != value:
                    problems.append(f"{name}: default {value!r}, the spec says {option.get('default')!r}")
                problems += _value_problems(name, value, option)
        return problems

    def unprefixed_variables(self) -> list[str]:
        """Variables of any file of defaults/ or vars/ (main.yml, main/*.yml, the per-platform files the role
        includes) that lack the role's prefix."""
        folder = ROLES / self.name
        paths = [path for section in ("defaults", "vars") for path in sorted((folder / section).rglob("*.yml"))]
        return sorted({name for path in paths for name in _load(path) if not name.startswith(f"{self.name}_")})
