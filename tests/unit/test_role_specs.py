"""Every role's argument spec mirrors its defaults, and every variable of its defaults and vars carries its prefix.

One test for every role with a meta/argument_specs.yml (RoleFiles.spec_problems: the same names, every option and
suboption described and typed, a literal default equal to the spec's and of its type, elements and choices
included; a default that is a template has no default in the spec), so a role is checked the day it gets a spec.
The check's own cases come last: each breaks one rule on a made-up role and must be reported.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from .role_files import ROLES, RoleFiles

SPECIFIED_ROLES = sorted(path.parents[1].name for path in ROLES.glob("*/meta/argument_specs.yml"))


def test_every_role_has_an_argument_spec() -> None:
    assert sorted(path.name for path in ROLES.iterdir() if path.is_dir()) == SPECIFIED_ROLES


@pytest.mark.parametrize("role", SPECIFIED_ROLES)
def test_the_argument_spec_mirrors_the_defaults_in_names_types_and_values(role: str) -> None:
    assert RoleFiles.load(role).spec_problems() == []


@pytest.mark.parametrize("role", SPECIFIED_ROLES)
def test_every_variable_carries_the_role_prefix(role: str) -> None:
    assert RoleFiles.load(role).unprefixed_variables() == []


# --- The check itself -------------------------------------------------------------------------------------


def made_up_role(defaults: dict[str, Any], options: dict[str, Any], undefaulted: set[str] | None = None) -> RoleFiles:
    return RoleFiles(
        name="made_up", defaults=defaults, vars={}, options=options, undefaulted=frozenset(undefaulted or ())
    )


def hosts_option(**suboptions: Any) -> dict[str, Any]:
    """A list of {name} dicts, name required, with suboptions overridden."""
    name = {"type": "str", "required": True, "description": "Host name."}
    return {"type": "list", "elements": "dict", "description": "Hosts.", "options": {"name": name, **suboptions}}


@pytest.mark.parametrize(
    ("defaults", "options", "problem"),
    [
        pytest.param(
            {"made_up_port": 80},
            {"made_up_port": {"default": 80, "description": "A port."}},
            "made_up_port: no type",
            id="option-without-type",
        ),
        pytest.param(
            {"made_up_port": 80},
            {"made_up_port": {"type": "integer", "default": 80, "description": "A port."}},
            "made_up_port: type 'integer' is not one of ['bool', 'dict', 'float', 'int', 'list', 'path', 'raw', 'str']",
            id="unknown-type",
        ),
        pytest.param(
            {"made_up_port": 80},
            {"made_up_port": {"type": "int", "default": 80}},
            "made_up_port: no description",
            id="option-without-description",
        ),
        pytest.param(
            {"made_up_port": True},
            {"made_up_port": {"type": "int", "default": True, "description": "A port."}},
            "made_up_port: True is not of the spec's type int",
            id="bool-for-int",
        ),
        pytest.param(
            {"made_up_port": "80"},
            {"made_up_port": {"type": "int", "default": "80", "description": "A port."}},
            "made_up_port: '80' is not of the spec's type int",
            id="string-for-int",
        ),
        pytest.param(
            {"made_up_port": 80},
            {"made_up_port": {"type": "int", "default": 8080, "description": "A port."}},
            "made_up_port: default 80, the spec says 8080",
            id="other-default",
        ),
        pytest.param(
            {"made_up_names": ["a", 1]},
            {"made_up_names": {"type": "list", "elements": "str", "default": ["a", 1], "description": "Names."}},
            "made_up_names[1]: 1 is not of the spec's type str",
            id="element-of-another-type",
        ),
        pytest.param(
            {"made_up_names": ["a"]},
            {"made_up_names": {"type": "list", "elements": "string", "default": ["a"], "description": "Names."}},
            "made_up_names: elements 'string' is not one of ['bool', 'dict', 'float', 'int', 'list', 'path', 'raw', "
            "'str']",
            id="unknown-elements",
        ),
        pytest.param(
            {"made_up_mode": "fast"},
            {"made_up_mode": {"type": "str", "choices": ["slow"], "default": "fast", "description": "Speed."}},
            "made_up_mode: 'fast' is not one of the choices ['slow']",
            id="default-not-a-choice",
        ),
        pytest.param(
            {"made_up_hosts": [{"name": "a", "port": 1}]},
            {"made_up_hosts": {**hosts_option(), "default": [{"name": "a", "port": 1}]}},
            "made_up_hosts[0]: 'port' is not a suboption of the spec",
            id="unknown-suboption",
        ),
        pytest.param(
            {"made_up_hosts": [{}]},
            {"made_up_hosts": {**hosts_option(), "default": [{}]}},
            "made_up_hosts[0]: no 'name', which the spec requires",
            id="missing-required-suboption",
        ),
        pytest.param(
            {"made_up_hosts": [{"name": "a", "port": "1"}]},
            {
                "made_up_hosts": {
                    **hosts_option(port={"type": "int", "description": "Port."}),
                    "default": [{"name": "a", "port": "1"}],
                }
            },
            "made_up_hosts[0].port: '1' is not of the spec's type int",
            id="suboption-of-another-type",
        ),
        pytest.param(
            {"made_up_hosts": []},
            {"made_up_hosts": {**hosts_option(port={"description": "Port."}), "default": []}},
            "made_up_hosts.port: no type",
            id="suboption-without-type",
        ),
        pytest.param(
            {"made_up_hosts": []},
            {"made_up_hosts": {**hosts_option(port={"type": "int"}), "default": []}},
            "made_up_hosts.port: no description",
            id="suboption-without-description",
        ),
        pytest.param(
            {"made_up_hosts": []},
            {
                "made_up_hosts": {
                    **hosts_option(port={"type": "int", "default": "80", "description": "Port."}),
                    "default": [],
                }
            },
            "made_up_hosts.port: '80' is not of the spec's type int",
            id="suboption-default-of-another-type",
        ),
        pytest.param(
            {"made_up_url": "http://{{ made_up_host }}"},
            {"made_up_url": {"type": "str", "default": "http://localhost", "description": "URL of made_up_host."}},
            "made_up_url: a template has no default in the spec",
            id="template-with-a-default",
        ),
        pytest.param(
            {"made_up_pool": "{{ sensorstack_pod_cidr }}"},
            {"made_up_pool": {"type": "str", "description": "The pool."}},
            "made_up_pool: the description does not name sensorstack_pod_cidr",
            id="template-not-naming-what-it-follows",
        ),
        pytest.param(
            {"made_up_port": 80},
            {},
            "in defaults, not in the spec: made_up_port",
            id="default-not-in-the-spec",
        ),
        pytest.param(
            {},
            {"made_up_port": {"type": "int", "default": 80, "description": "A port."}},
            "in the spec, not in defaults: made_up_port",
            id="option-not-in-defaults",
        ),
    ],
)
def test_the_check_reports_each_kind_of_drift(defaults: dict[str, Any], options: dict[str, Any], problem: str) -> None:
    assert made_up_role(defaults, options).spec_problems() == [problem]


def test_a_variable_the_defaults_name_as_having_no_default_is_in_the_spec_without_one() -> None:
    password = {"type": "str", "no_log": True, "description": "A secret, from the vault."}
    undefaulted = {"made_up_password"}
    assert made_up_role({}, {"made_up_password": password}, undefaulted).spec_problems() == []
    with_a_default = {"made_up_password": {**password, "default": "admin"}}
    assert made_up_role({}, with_a_default, undefaulted).spec_problems() == [
        "made_up_password: the defaults give none, the spec says 'admin'"
    ]
    assert made_up_role({}, {}, undefaulted).spec_problems() == ["in defaults, not in the spec: made_up_password"]
    # The defaults file names it in a comment: "# grafana_admin_password: (no default)".
    assert RoleFiles.load("grafana").undefaulted == {"grafana_admin_password"}


def test_a_pin_of_the_versions_file_is_written_once() -> None:
    option = {"type": "str", "description": "The release."}
    pinned = RoleFiles(
        name="made_up",
        defaults={"made_up_version": "1.2.3"},
        vars={},
        options={},
        pinned=frozenset({"made_up_version"}),
    )
    with_copy = replace(pinned, options={"made_up_version": {**option, "default": "1.2.3"}})
    assert with_copy.spec_problems() == [
        "made_up_version: pinned in versions.yml, so the spec gives no default (one place a pin)"
    ]
    without_copy = replace(pinned, options={"made_up_version": option})
    assert without_copy.spec_problems() == []
    mistyped = replace(pinned, options={"made_up_version": {**option, "type": "int"}})
    assert mistyped.spec_problems() == ["made_up_version: '1.2.3' is not of the spec's type int"]
