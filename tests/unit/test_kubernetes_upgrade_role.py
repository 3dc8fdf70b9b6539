"""The kubernetes_upgrade role and playbooks/upgrade.yml: the spec mirrors the defaults, the node is drained before
anything changes and put back into service only at the new version, control planes go one at a time and first.

The cluster tier (tests/cluster/test_upgrade.py) upgrades a real cluster from the previous minor with it.
"""

from __future__ import annotations

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
    assert order.index("Cordon the node and drain its pods") < order.index(
        "Move kubeadm to the new version, from the new minor's repository"
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
    drain = TASKS[0]["block"][0]["ansible.builtin.command"]["argv"]
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
