"""Preflight runs the checks of every role site.yml runs after it, so a role added to a play cannot skip them.

`preflight_role_checks` (roles/preflight/vars/main.yml) lists the host and cluster roles by the plays that run them;
the stack's services are checked by preflight's loop over `sensorstack_stack_components`. A role whose
tasks/validate.yml is in neither stops the run only when the role itself runs, after earlier plays changed hosts.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The services preflight's loop checks, from the one list the playbooks and preflight read.
STACK_SERVICES = set(
    yaml.safe_load((ROOT / "roles/sensorstack/defaults/main/main.yml").read_text())["sensorstack_stack_components"]
)


def roles_of_site_playbooks() -> set[str]:
    """The roles named in the `roles:` of every play that site.yml imports after preflight."""
    roles: set[str] = set()
    for entry in yaml.safe_load((ROOT / "site.yml").read_text()):
        playbook = entry["ansible.builtin.import_playbook"]
        if playbook.endswith("preflight.yml"):
            continue
        for play in yaml.safe_load((ROOT / playbook).read_text()):
            roles.update(item["role"] if isinstance(item, dict) else item for item in play.get("roles", []))
    return roles


def test_every_role_with_checks_that_site_yml_runs_is_checked_in_preflight() -> None:
    checked_here = (ROOT / "roles/preflight/vars/main.yml").read_text()
    with_checks = {
        role for role in roles_of_site_playbooks() if (ROOT / "roles" / role / "tasks/validate.yml").is_file()
    }
    assert with_checks, "site.yml's plays name no role with tasks/validate.yml: the playbooks were not read"
    unchecked = sorted(role for role in with_checks - STACK_SERVICES if f"'{role}'" not in checked_here)
    assert not unchecked, f"add these roles to preflight_role_checks: {unchecked}"


def test_the_stack_services_are_checked_by_preflights_own_loop() -> None:
    preflight_tasks = (ROOT / "roles/preflight/tasks/main.yml").read_text()
    assert preflight_tasks.count('name: "sensorstack.iot.{{ preflight_stack_component }}"') == 2
    assert roles_of_site_playbooks() >= STACK_SERVICES


def test_site_yml_runs_preflight_first_and_every_preflight_play_stops_the_whole_run() -> None:
    """What lets the integration tier's bad-input cases run playbooks/preflight.yml alone: site.yml runs it before any
    other play, and a failure on any host of a preflight play ends the run there."""
    first = yaml.safe_load((ROOT / "site.yml").read_text())[0]
    assert first["ansible.builtin.import_playbook"] == "playbooks/preflight.yml"
    plays = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())
    assert plays and all(play.get("any_errors_fatal") is True for play in plays)
