"""The kubernetes_upgrade role and playbooks/upgrade.yml: the spec mirrors the defaults, the node is drained before
anything changes and put back into service only at the new version, control planes go one at a time and first.

The cluster tier (tests/cluster/test_upgrade.py) upgrades a real cluster from the previous minor with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .role_files import ROOT, RoleFiles, opened_tasks

ROLE = RoleFiles.load("kubernetes_upgrade")
TASKS = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/upgrade.yml").read_text())
PLAYBOOK = yaml.safe_load((ROOT / "playbooks/upgrade.yml").read_text())


def names(tasks: list[dict]) -> list[str]:
    return [task["name"] for task in opened_tasks(tasks)]


def task_named(name: str) -> dict[str, Any]:
    return next(task for task in opened_tasks(TASKS) if task["name"] == name)


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
    drain = task_named("Drain the node's pods")["ansible.builtin.command"]["argv"]
    assert "--ignore-daemonsets" in drain and "--delete-emptydir-data" in drain and "--timeout=" in drain


def test_control_planes_go_first_one_at_a_time_and_the_run_stops_at_the_first_failure() -> None:
    preflight, control_planes, workers = PLAYBOOK
    assert preflight["ansible.builtin.import_playbook"] == "preflight.yml"
    assert preflight["vars"] == {"preflight_upgrade": True}
    assert "control_plane" in control_planes["hosts"] and control_planes["serial"] == 1
    assert control_planes["any_errors_fatal"] is True
    assert "workers" in workers["hosts"] and workers["max_fail_percentage"] == 0
    assert [role["role"] for role in control_planes["roles"]] == ["kubernetes_upgrade"]


def test_etcd_is_saved_on_the_first_control_plane_before_anything_of_the_upgrade_moves() -> None:
    order = names(TASKS)
    snapshot = task_named("Take a snapshot of etcd before the control plane's upgrade")
    assert order.index(snapshot["name"]) < order.index("Cordon the node, marked as cordoned by the upgrade")
    assert snapshot["ansible.builtin.include_role"]["name"] == "etcd_snapshot"
    assert snapshot["when"] == "kubernetes_upgrade_first and kubernetes_upgrade_etcd_snapshot"
    label = ROLE.render(snapshot["vars"]["etcd_snapshot_label"], sensorstack_kubernetes_version="1.35.4")
    assert label == "before-upgrade-to-v1.35.4"


def test_kubeadm_upgrade_apply_runs_on_the_first_control_plane_only() -> None:
    block = task_named("Upgrade the node, or put it back into service and stop")["block"]
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


def order_problems(host: str, cluster_version: str, control_planes: dict[str, str] | None = None) -> list[str]:
    """kubernetes_upgrade_order_problems on ``host`` with the cluster's kubeadm-config at ``cluster_version`` and the
    control-plane nodes' kubelets at ``control_planes`` (None: not read, as on a control plane)."""
    configuration = {"data": {"ClusterConfiguration": yaml.safe_dump({"kubernetesVersion": cluster_version})}}
    nodes = {
        "items": [
            {"metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": version}}}
            for name, version in (control_planes or {}).items()
        ]
    }
    return ROLE.render(
        "{{ kubernetes_upgrade_order_problems }}",
        inventory_hostname=host,
        ansible_facts={"nodename": host},
        groups={"control_plane": ["cp1", "cp2"], "workers": ["w1"]},
        kubernetes_packages_version="1.35.4-1.1",
        kubernetes_upgrade_cluster_configuration={"stdout": json.dumps(configuration)},
        kubernetes_upgrade_control_plane_nodes={"stdout": json.dumps(nodes)} if control_planes else {"skipped": True},
    )


def test_a_control_plane_waits_for_kubeadm_upgrade_apply_on_the_first() -> None:
    [problem] = order_problems("cp2", "v1.34.12")
    assert problem.startswith("cp2 cannot be upgraded before the control plane: the cluster is at v1.34.12")
    assert "Upgrade cp1 first" in problem
    assert order_problems("cp2", "v1.35.4") == []


def test_a_worker_waits_for_every_control_plane_kubelet() -> None:
    [problem] = order_problems("w1", "v1.35.4", {"cp1": "v1.35.4", "cp2": "v1.34.12"})
    assert problem.startswith("w1 cannot be upgraded before every control plane: cp2 still run an older kubelet")
    assert order_problems("w1", "v1.35.4", {"cp1": "v1.35.4", "cp2": "v1.35.4"}) == []
    # Before kubeadm upgrade apply, the cluster's version says it all.
    [problem] = order_problems("w1", "v1.34.12", {"cp1": "v1.34.12", "cp2": "v1.34.12"})
    assert "the cluster is at v1.34.12" in problem


def test_the_order_is_checked_before_the_node_is_cordoned_but_not_in_check_mode() -> None:
    main = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/main.yml").read_text())
    order = [task["name"] for task in opened_tasks(main)]
    assert order.index("Check that the control plane goes first") < order.index("Upgrade the node")
    [check] = [task for task in main if task["name"] == "Check that the control plane goes first"]
    # A dry run of the first control plane moves nothing, so every other node would look early.
    assert check["when"].startswith("not ansible_check_mode and ")
    reads = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/order.yml").read_text())
    assert all(task.get("check_mode") is False for task in reads if "ansible.builtin.command" in task)


MARK = "sensorstack.io/upgrade-cordoned"


def as_read(node: dict, expression: str) -> Any:
    """``expression`` on node w1 as the role reads it from the cluster (kubernetes_upgrade_current)."""
    return ROLE.render(
        expression,
        inventory_hostname="w1",
        ansible_facts={"nodename": "w1"},
        kubernetes_packages_version="1.35.4-1.1",
        kubernetes_upgrade_current={"stdout": json.dumps(node)},
    )


def test_a_node_the_operator_cordoned_is_upgraded_and_left_cordoned_also_by_a_later_run() -> None:
    by_hand = {"spec": {"unschedulable": True}, "metadata": {}}
    # Its mark says it was cordoned before, and putting it "back into service" only removes the mark.
    assert as_read(by_hand, "{{ kubernetes_upgrade_cordon_patch }}") == {
        "spec": {"unschedulable": True},
        "metadata": {"annotations": {MARK: "v1.35.4/cordoned-before"}},
    }
    assert as_read(by_hand, "{{ kubernetes_upgrade_uncordon_patch }}") == {"metadata": {"annotations": {MARK: None}}}
    # A run that stopped after its kubelet moved left that mark: the next run finishes it, and leaves it cordoned.
    left = {"spec": {"unschedulable": True}, "metadata": {"annotations": {MARK: "v1.35.4/cordoned-before"}}}
    assert as_read(left, "{{ kubernetes_upgrade_left_cordoned and kubernetes_upgrade_cordoned_by_hand }}") is True
    assert as_read(left, "{{ kubernetes_upgrade_uncordon_patch }}") == {"metadata": {"annotations": {MARK: None}}}


def test_a_node_the_upgrade_cordoned_goes_back_into_service() -> None:
    for node in (
        {"spec": {}, "metadata": {}},
        {"spec": {"unschedulable": True}, "metadata": {"annotations": {MARK: "v1.35.4"}}},
    ):
        assert as_read(node, "{{ kubernetes_upgrade_cordoned_by_hand }}") is False
        assert as_read(node, "{{ kubernetes_upgrade_uncordon_patch }}") == {
            "metadata": {"annotations": {MARK: None}},
            "spec": {"unschedulable": False},
        }
    assert as_read({"spec": {}, "metadata": {}}, "{{ kubernetes_upgrade_cordon_patch }}")["metadata"] == {
        "annotations": {MARK: "v1.35.4"}
    }


def test_a_control_planes_upgrade_holds_the_renewal_lease_from_before_the_drain_to_the_end() -> None:
    main = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/main.yml").read_text())
    [upgrade] = [task for task in main if "always" in task]
    steps = [task["name"] for task in upgrade["block"]]
    assert steps == [
        "Take the control planes' restart Lease, or stop while a certificate renewal holds it",
        "Upgrade the node",
    ]
    take = upgrade["block"][0]
    assert take["ansible.builtin.include_role"]["tasks_from"] == "restart_lease_take.yml"
    assert take["vars"]["sensorstack_restart_lease_holder"] == "{{ kubernetes_upgrade_lease_holder }}"
    assert take["vars"]["sensorstack_restart_lease_wait_variable"] == "kubernetes_upgrade_lease_wait"
    [release] = upgrade["always"]
    assert release["ansible.builtin.include_role"]["tasks_from"] == "restart_lease_release.yml"
    assert release["vars"]["sensorstack_restart_lease_holder"] == "{{ kubernetes_upgrade_lease_holder }}"
    assert take["when"] == release["when"] == "kubernetes_upgrade_is_control_plane | bool"
    # How long the shared take waits (tests/integration/test_restart_lease.py runs it against a stand-in script).
    [shared_take, _] = yaml.safe_load((ROOT / "roles/sensorstack/tasks/restart_lease_take.yml").read_text())
    assert ROLE.render(shared_take["retries"], sensorstack_restart_lease_wait=2700) == 270
    holder = ROLE.render("{{ kubernetes_upgrade_lease_holder }}", ansible_facts={"nodename": "CP2"})
    assert holder == "upgrade of cp2"


VALIDATE = yaml.safe_load((ROOT / "roles/kubernetes_upgrade/tasks/validate.yml").read_text())


def validation_problems(**settings: Any) -> list[str]:
    """The problems the role's checks find, before anything changes, with the lab's groups and these settings."""
    [check] = VALIDATE
    return ROLE.render(
        check["vars"]["kubernetes_upgrade_problems"],
        inventory_hostname="cp1",
        groups={"control_plane": ["cp1"], "workers": ["w1"]},
        kubernetes_packages_version="1.35.4-1.1",
        **settings,
    )


def test_a_drain_time_limit_kubectl_cannot_read_is_refused_naming_the_variable() -> None:
    assert validation_problems() == []
    assert validation_problems(kubernetes_upgrade_drain_timeout="300s") == []
    [problem] = validation_problems(kubernetes_upgrade_drain_timeout=300)
    assert problem.startswith("kubernetes_upgrade_drain_timeout must be a Go duration")
    assert problem.endswith('got "300"')
