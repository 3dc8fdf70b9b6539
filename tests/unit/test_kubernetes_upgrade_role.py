"""The kubernetes_upgrade role and playbooks/upgrade.yml: the spec mirrors the defaults, the node is drained before
anything changes and put back into service only at the new version, control planes go one at a time and first.

The cluster tier (tests/cluster/test_upgrade.py) upgrades a real cluster from the previous minor with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("kubernetes_upgrade")
TASKS = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/upgrade.yml").read_text())
PLAYBOOK = yaml.safe_load((ROOT / "playbooks/upgrade.yml").read_text())


def names(tasks: list[dict]) -> list[str]:
    flat = []
    for task in tasks:
        flat.append(task["name"])
        for section in ("block", "rescue"):
            flat += names(task.get(section, []))
    return flat


def test_the_node_is_drained_first_and_uncordoned_only_after_it_is_ready_at_the_new_version() -> None:
    order = names(TASKS)
    assert (
        order.index("Cordon the node, marked as cordoned by the upgrade")
        < order.index("Drain the node's pods")
        < order.index("Move kubeadm to the new version, from the new minor's repository")
    )
    assert (
        order.index("Move kubeadm to the new version, from the new minor's repository")
        < order.index("Upgrade the cluster's control plane to the new version")
        < order.index("Move the kubelet and kubectl to the new version")
    )
    assert order[-1] == "Put the node back into service"
    assert order.index("Wait until the node is Ready at the new version") < order.index(
        "Put the node back into service"
    )
    drain = TASKS[0]["block"][1]["ansible.builtin.command"]["argv"]
    assert "--ignore-daemonsets" in drain and "--delete-emptydir-data" in drain and "--timeout=" in drain


def test_control_planes_go_first_one_at_a_time_and_the_run_stops_at_the_first_failure() -> None:
    preflight, control_planes, workers = PLAYBOOK
    assert preflight["ansible.builtin.import_playbook"] == "preflight.yml"
    assert preflight["vars"] == {"preflight_upgrade": True}
    assert "control_plane" in control_planes["hosts"] and control_planes["serial"] == 1
    assert control_planes["any_errors_fatal"] is True
    assert "workers" in workers["hosts"] and workers["max_fail_percentage"] == 0
    assert [role["role"] for role in control_planes["roles"]] == ["kubernetes_upgrade"]


def test_kubeadm_upgrade_apply_runs_on_the_first_control_plane_only() -> None:
    block = TASKS[1]["block"]
    apply = next(task for task in block if task["name"] == "Upgrade the cluster's control plane to the new version")
    node = next(task for task in block if task["name"].startswith("Upgrade this node's"))
    assert apply["when"] == "kubernetes_upgrade_first" and node["when"] == "not kubernetes_upgrade_first"
    assert ROLE.render("{{ kubernetes_upgrade_first }}", inventory_hostname="cp1", groups={"control_plane": ["cp1"]})
    assert not ROLE.render(
        "{{ kubernetes_upgrade_first }}", inventory_hostname="cp2", groups={"control_plane": ["cp1", "cp2"]}
    )


def test_the_playbook_exists_beside_site_yml_but_is_not_part_of_it() -> None:
    assert "upgrade.yml" not in (ROOT / "site.yml").read_text()
    assert Path(ROOT / "playbooks/upgrade.yml").is_file()


def node(version: str, annotations: dict[str, str] | None = None) -> dict:
    """What the role's first task registers: kubectl's JSON of the node."""
    document = {"metadata": {"annotations": annotations or {}}, "status": {"nodeInfo": {"kubeletVersion": version}}}
    return {"stdout": json.dumps(document)}


def decision(current: dict) -> tuple[bool, bool]:
    """(upgrade due, left cordoned by an earlier run) for the pinned version 1.35.4."""
    variables = {"kubernetes_upgrade_current": current, "sensorstack_kubernetes_version": "1.35.4"}
    due = ROLE.render("{{ kubernetes_upgrade_due | bool }}", **variables)
    left = ROLE.render("{{ kubernetes_upgrade_left_cordoned | bool }}", **variables)
    return due, left


def test_a_node_at_the_old_version_is_upgraded() -> None:
    assert decision(node("v1.34.7")) == (True, False)


def test_a_node_a_stopped_run_left_cordoned_at_the_new_version_is_finished_not_skipped() -> None:
    assert decision(node("v1.35.4", {"sensorstack.io/upgrade-cordoned": "v1.35.4"})) == (False, True)


def test_a_node_at_the_new_version_without_the_mark_is_left_alone_even_if_cordoned_by_hand() -> None:
    assert decision(node("v1.35.4", {"other": "x"})) == (False, False)
    assert decision(
        {"stdout": json.dumps({"metadata": {}, "status": {"nodeInfo": {"kubeletVersion": "v1.35.4"}}})}
    ) == (
        False,
        False,
    )


def test_the_cordon_marks_the_node_and_putting_it_back_removes_the_mark() -> None:
    variables = {"sensorstack_kubernetes_version": "1.35.4"}
    assert ROLE.render("{{ kubernetes_upgrade_cordon_patch | to_json }}", **variables) == json.dumps(
        {"spec": {"unschedulable": True}, "metadata": {"annotations": {"sensorstack.io/upgrade-cordoned": "v1.35.4"}}}
    )
    assert ROLE.render("{{ kubernetes_upgrade_uncordon_patch | to_json }}", **variables) == json.dumps(
        {"spec": {"unschedulable": False}, "metadata": {"annotations": {"sensorstack.io/upgrade-cordoned": None}}}
    )


def test_the_target_is_the_release_the_packages_install() -> None:
    assert ROLE.render("{{ kubernetes_upgrade_version }}", sensorstack_kubernetes_version="1.35.4") == "1.35.4"
    assert (
        ROLE.render(
            "{{ kubernetes_upgrade_version }}",
            sensorstack_kubernetes_version="1.35.4",
            kubernetes_packages_version="1.35.5-1.1",
        )
        == "1.35.5"
    )
