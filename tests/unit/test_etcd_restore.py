"""etcd_restore: the members read from kubeadm's manifests, the cluster they form again, etcdutl's command line, the
settings' checks, and the module's steps on real folders with a double of crictl.

The double stands in for crictl, the kubelet and the etcd container: a control-plane component runs while its static
pod manifest is in the manifests folder (`ps` lists it, as JSON or as the etcd container's id); `exec etcd0 etcdutl
snapshot status` prints the report it is given; `exec etcd0 etcdutl snapshot restore SNAPSHOT --data-dir=DIR ...`
writes DIR/member/snap/db with the snapshot's bytes, as etcdutl does. The cluster tier restores a real cluster of
three control planes (tests/cluster/test_etcd_restore.py).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.etcd_restore import FilterModule
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_restore import (
    CONTROL_PLANE_COMPONENTS,
    STAGED_SNAPSHOT,
    components_running,
    etcd_member,
    initial_cluster,
    restore_argv,
    settings_problems,
)

from .module_run import run_module_file
from .role_files import ROLES, RoleFiles

FILTERS = FilterModule().filters()
STATUS = {"hash": 1580366311, "revision": 4821, "totalKey": 1193, "totalSize": 5312512, "version": "3.6.6"}
# kubeadm's etcd manifest of a joined control plane, as it writes it (the fields that matter here).
MANIFEST = """
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.213.0.56:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.213.0.56:2380
    - --initial-cluster=cpc-cp1=https://10.213.0.53:2380,cpc-cp2=https://10.213.0.56:2380
    - --initial-cluster-state=existing
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --name=cpc-cp2
    image: registry.k8s.io/etcd:3.6.6-0
    name: etcd
"""
FAKE_CRICTL = """#!/usr/bin/env python3
import json, os, shutil, sys
arguments = sys.argv[1:]
with open(os.environ["FAKE_CRICTL_LOG"], "a") as log:
    log.write(json.dumps(arguments) + "\\n")
manifests = os.environ["FAKE_MANIFESTS"]
running = [c for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
           if os.path.exists(os.path.join(manifests, c + ".yaml"))]
command = arguments[2]
if command == "ps" and "--output" in arguments:
    print(json.dumps({"containers": [{"id": c + "0", "metadata": {"name": c}} for c in running]}))
elif command == "ps":
    print("etcd0" if "etcd" in running else "")
elif command == "exec":
    if "etcd" not in running:
        sys.exit("no such container")
    inside = arguments[arguments.index("etcd0") + 1:]
    if inside[1:3] == ["snapshot", "status"]:
        print(os.environ["FAKE_STATUS"])
    elif inside[1:3] == ["snapshot", "restore"]:
        if os.environ.get("FAKE_RESTORE_FAILS"):
            sys.exit("snapshot file integrity check failed")
        target = next(a.split("=", 1)[1] for a in inside if a.startswith("--data-dir="))
        os.makedirs(os.path.join(target, "member", "snap"))
        shutil.copyfile(inside[3], os.path.join(target, "member", "snap", "db"))
"""


def member(name: str, address: str) -> dict[str, str]:
    return {"name": name, "peer_url": f"https://{address}:2380", "data_dir": "/var/lib/etcd"}


# --- Pure parts -------------------------------------------------------------------------------------------------


def test_the_member_is_read_from_kubeadms_manifest() -> None:
    assert etcd_member(yaml.safe_load(MANIFEST)) == member("cpc-cp2", "10.213.0.56")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"--name=cpc-cp2": "--name="}, "names no usable member"),
        ({"--name=cpc-cp2": "--name=cp,2"}, "names no usable member"),
        (
            {
                "--initial-advertise-peer-urls=https://10.213.0.56:2380": "--initial-advertise-peer-urls=https://a:2380,"
                "https://b:2380"
            },
            "advertises no single peer URL",
        ),
        ({"--data-dir=/var/lib/etcd": "--data-dir=etcd"}, "no absolute --data-dir"),
        ({"name: etcd\n": "name: other\n"}, "no etcd container"),
    ],
)
def test_a_manifest_that_names_no_usable_member_is_refused(change: dict[str, str], problem: str) -> None:
    text = MANIFEST
    for old, new in change.items():
        text = text.replace(old, new)
    with pytest.raises(ValueError, match=problem):
        etcd_member(yaml.safe_load(text))
    with pytest.raises(AnsibleFilterError, match=problem):
        FILTERS["etcd_member"](yaml.safe_load(text))


def test_the_restored_cluster_names_every_member_in_one_order() -> None:
    members = [member("cp3", "10.0.0.3"), member("cp1", "10.0.0.1"), member("cp2", "10.0.0.2")]
    assert initial_cluster(members) == ("cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380")
    assert FILTERS["etcd_initial_cluster"](members) == initial_cluster(reversed(members))


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([member("cp1", "10.0.0.1"), member("cp1", "10.0.0.2")], "of the same name: cp1"),
        ([member("cp1", "10.0.0.1"), member("cp2", "10.0.0.1")], "of the same peer URL: https://10.0.0.1:2380"),
        ([], "no etcd member"),
    ],
)
def test_members_that_cannot_form_one_cluster_are_refused(members: list[dict[str, str]], problem: str) -> None:
    with pytest.raises(AnsibleFilterError, match=problem):
        FILTERS["etcd_initial_cluster"](members)


def test_etcdutl_restores_under_the_members_name_and_bumps_the_revision_unless_told_not_to() -> None:
    argv = restore_argv("/usr/local/bin/etcdutl", "/s.db", "/d", member("cp1", "10.0.0.1"), "cp1=x", "T1", 1000)
    assert argv == [
        "/usr/local/bin/etcdutl", "snapshot", "restore", "/s.db", "--data-dir=/d", "--name=cp1",
        "--initial-cluster=cp1=x", "--initial-cluster-token=T1", "--initial-advertise-peer-urls=https://10.0.0.1:2380",
        "--bump-revision=1000", "--mark-compacted",
    ]  # fmt: skip
    assert "--mark-compacted" not in restore_argv("e", "/s.db", "/d", member("cp1", "10.0.0.1"), "c", "T1", 0)


def test_the_failures_of_a_step_name_each_host_and_skip_what_succeeded_or_did_not_run() -> None:
    hostvars = {
        "cp1": {"staged": {"changed": True, "revision": 7}, "stopped": {"failed": False, "msg": "etcd still runs"}},
        "cp2": {"staged": {"failed": False, "msg": "no snapshot file /x.db on this node"}},
        "cp3": {"staged": {"changed": False, "skip_reason": "Conditional result was False"}},
    }
    hosts = ["cp1", "cp2", "cp3"]
    assert FILTERS["etcd_restore_failures"](hostvars, hosts, ["staged"]) == ["cp2: no snapshot file /x.db on this node"]
    assert FILTERS["etcd_restore_failures"](hostvars, hosts, ["stopped", "staged"]) == [
        "cp1: etcd still runs",
        "cp2: no snapshot file /x.db on this node",
    ]


def node_listed(name: str, ready: str, heartbeat: str, reason: str = "KubeletReady") -> dict:
    condition = {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat, "reason": reason}
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "MemoryPressure"}, condition]}}


def test_a_node_is_back_only_with_a_ready_heartbeat_sent_after_its_kubelet_restarted() -> None:
    restarted = {"cp1": "2026-12-06T16:31:05Z", "w1": "2026-12-06T16:31:05Z", "w2": "2026-12-06T16:31:06Z"}
    nodes = {
        "items": [
            node_listed("cp1", "True", "2026-12-06T16:31:09Z"),
            # Ready as the snapshot saved it: the heartbeat is from before the restart, or from its very second.
            node_listed("w1", "True", "2026-12-06T16:20:00Z"),
            node_listed("w2", "True", "2026-12-06T16:31:06Z"),
            # A lost node the run does not cover is not asked about.
            node_listed("cp2", "True", "2026-12-06T16:20:00Z"),
        ]
    }
    assert FILTERS["etcd_restore_nodes_not_back"](nodes, restarted) == [
        "w1: no status from its kubelet since 2026-12-06T16:31:05Z",
        "w2: no status from its kubelet since 2026-12-06T16:31:06Z",
    ]
    nodes["items"][1:3] = [
        node_listed("w1", "False", "2026-12-06T16:31:10Z", "KubeletNotReady"),
        node_listed("w2", "True", "2026-12-06T16:31:07Z"),
    ]
    assert FILTERS["etcd_restore_nodes_not_back"](nodes, restarted) == ["w1: Ready is False (KubeletNotReady)"]
    nodes["items"][1] = node_listed("w1", "True", "2026-12-06T16:31:11Z")
    assert FILTERS["etcd_restore_nodes_not_back"](nodes, restarted) == []
    assert FILTERS["etcd_restore_nodes_not_back"]({"items": []}, {"w3": "2026-12-06T16:31:05Z"}) == [
        "w3: not in the restored cluster"
    ]


def left_out_report(play_hosts: list[str]) -> str:
    """The report of nodes the restored cluster holds beyond the run's (kubelets.yml), as the role renders it on a
    run of cp1, w1 and w2 whose restored cluster lists w2 and cp3 without a fresh heartbeat of theirs."""
    [report] = [
        task
        for task in yaml.safe_load((ROLES / "etcd_restore/tasks/kubelets.yml").read_text())
        if task["name"] == "Name the nodes the restored cluster holds beyond this run's"
    ]
    variables = {
        "ansible_play_hosts_all": ["cp1", "w1", "w2"],
        "ansible_play_hosts": play_hosts,
        "etcd_restore_nodes": {
            "stdout": json.dumps({"items": [{"metadata": {"name": n}} for n in ("cp1", "w1", "w2", "cp3")]})
        },
        "etcd_restore_restarted": {host: "2026-12-06T16:31:05Z" for host in play_hosts},
    }
    role = RoleFiles.load("etcd_restore")
    for name, value in report["vars"].items():
        variables[name] = role.render(value, **variables)
    return role.render(report["ansible.builtin.debug"]["msg"], **variables)


def test_a_node_of_the_inventory_that_did_not_answer_is_not_reported_as_left_out_of_it() -> None:
    every_host_answered = left_out_report(["cp1", "w1", "w2"])
    assert every_host_answered.startswith(
        "The restored cluster still holds cp3, which this run did not cover (not in the inventory's control_plane or "
        "workers group): their kubelets do not report to it. A node gone for good: kubectl delete node cp3,"
    )
    w2_unreachable = left_out_report(["cp1", "w1"])
    assert (
        "holds cp3, w2, which this run did not cover (not in the inventory's control_plane or workers group, or failed "
        "or did not answer in this run: w2): their kubelets do not report to it. A host of the inventory that did not "
        "answer: restart its kubelet (systemctl restart kubelet) once it does, so that it reports to the restored "
        "cluster. A node gone for good" in w2_unreachable
    )
    assert "\n" not in w2_unreachable


def test_only_control_plane_containers_count_as_running() -> None:
    listed = {"containers": [{"metadata": {"name": name}} for name in ("kube-proxy", "etcd", "kube-scheduler")]}
    assert components_running(json.dumps(listed)) == ["etcd", "kube-scheduler"]
    assert components_running('{"containers": null}') == []
    with pytest.raises(ValueError, match="no JSON"):
        components_running("FATA[0000] connect: no such file")


GOOD = {"snapshot": "/var/backups/etcd/etcd-20261206T010000Z-manual.db", "source": "cp1", "bump_revision": 0,
        "timeout": 300, "ready_timeout": "600", "lease_wait": 900}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"snapshot": ""},
            "etcd_restore_snapshot must be the absolute path of a snapshot file on the control-plane node cp1",
        ),
        ({"snapshot": "etcd-20261206T010000Z-manual.db"}, "etcd_restore_snapshot must be the absolute path"),
        (
            {"snapshot": "snapshot.db", "source": "", "from_controller": True},
            "etcd_restore_snapshot must be the absolute path of a snapshot file on the controller",
        ),
        (
            {"from_controller": True},
            "etcd_restore_source names a control-plane node (cp1) that holds the snapshot, and "
            "etcd_restore_from_controller says the controller holds it: set one of them",
        ),
        ({"bump_revision": "lots"}, "etcd_restore_bump_revision must be a whole number"),
        ({"timeout": 0}, "etcd_restore_timeout must be at least 1"),
        ({"ready_timeout": True}, "etcd_restore_ready_timeout must be at least 1"),
        ({"lease_wait": "-5"}, "etcd_restore_lease_wait must be at least 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(change: dict, problem: str) -> None:
    assert settings_problems(GOOD) == []
    assert [problem] == [found[: len(problem)] for found in FILTERS["etcd_restore_problems"](GOOD | change)]


def role_problems(**variables: object) -> list[str]:
    """The role's own check (tasks/validate.yml) on the control planes cp1, cp2 and cp3."""
    role = RoleFiles.load("etcd_restore")
    check = yaml.safe_load((ROLES / "etcd_restore/tasks/validate.yml").read_text())[0]["vars"]
    settings = {
        "sensorstack_control_plane_group": "control_plane",
        "groups": {"control_plane": ["cp1", "cp2", "cp3"]},
        "inventory_hostname": "cp1",
        "ansible_play_hosts_all": ["cp3", "cp1", "cp2"],
        "etcd_restore_snapshot": GOOD["snapshot"],
    } | variables
    control_planes = role.render(check["etcd_restore_control_planes"], **settings)
    return role.render(check["etcd_restore_problems"], etcd_restore_control_planes=control_planes, **settings)


def test_the_role_checks_every_control_plane_takes_part_and_its_settings_with_the_same_function() -> None:
    assert role_problems() == []
    assert role_problems(ansible_play_hosts_all=["cp1", "cp2"]) == [
        "a restore replaces every etcd member of the cluster: run it on every control-plane node of group "
        "control_plane (cp1, cp2, cp3), not on cp1, cp2 alone"
    ]
    assert role_problems(inventory_hostname="worker1", etcd_restore_source="cp4", etcd_restore_timeout=0) == [
        "worker1 is not in group control_plane (sensorstack_control_plane_group): etcd runs on the control-plane nodes",
        "etcd_restore_source cp4 is not a control-plane node of this run (cp3, cp1, cp2)",
        "etcd_restore_timeout must be at least 1 (seconds), got 0",
    ]
    assert role_problems(etcd_restore_from_controller=True) == []
    assert role_problems(etcd_restore_from_controller=True, etcd_restore_source="cp2") == [
        "etcd_restore_source names a control-plane node (cp2) that holds the snapshot, and "
        "etcd_restore_from_controller says the controller holds it: set one of them"
    ]


# --- The module on a node's folders -----------------------------------------------------------------------------


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A control plane's folders: its static pod manifests, etcd's data folder with a member, a snapshot, and the
    double of crictl first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crictl = bin_dir / "crictl"
    crictl.write_text(FAKE_CRICTL)
    crictl.chmod(0o755)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for component in CONTROL_PLANE_COMPONENTS:
        (manifests / f"{component}.yaml").write_text(f"kind: Pod # {component}\n")
    (manifests / "extra.yaml").write_text("kind: Pod # not the control plane's\n")
    (tmp_path / "etcd/member/snap").mkdir(parents=True)
    (tmp_path / "etcd/member/snap/db").write_text("the cluster as it runs")
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups/snapshot.db").write_text("the cluster as it was")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CRICTL_LOG", str(tmp_path / "crictl.log"))
    monkeypatch.setenv("FAKE_MANIFESTS", str(manifests))
    monkeypatch.setenv("FAKE_STATUS", json.dumps(STATUS))
    return tmp_path


def step(node: Path, name: str, check: bool = False, **arguments: object) -> dict:
    options = {
        "step": name,
        "data_dir": str(node / "etcd"),
        "manifests_dir": str(node / "manifests"),
        "held_manifests_dir": str(node / "held"),
        "timeout": 5,
    }
    if name == "staged":
        options |= {"snapshot": str(node / "backups/snapshot.db"), "name": "cp1", "peer_url": "https://10.0.0.1:2380",
                    "initial_cluster": "cp1=https://10.0.0.1:2380", "restore_id": "20261206T011500Z"}  # fmt: skip
    if name == "swapped":
        options |= {"restore_id": "20261206T011500Z"}
    return run_module_file("etcd_restore", options | arguments, check)


def crictl_calls(node: Path) -> list[list[str]]:
    log = node / "crictl.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_whole_restore_swaps_in_the_snapshot_and_keeps_the_data_it_replaced(node: Path) -> None:
    staged = step(node, "staged")
    assert staged["changed"] and (staged["revision"], staged["total_keys"]) == (4821, 1193), staged
    assert (node / "etcd/.sensorstack-restore/member/snap/db").read_text() == "the cluster as it was"
    assert sorted(os.listdir(node / "etcd")) == [".sensorstack-restore", "member"]  # the copy went
    restore = next(call for call in crictl_calls(node) if "restore" in call)
    assert restore[restore.index("etcd0") + 1 :][5:] == [
        "--name=cp1", "--initial-cluster=cp1=https://10.0.0.1:2380", "--initial-cluster-token=20261206T011500Z",
        "--initial-advertise-peer-urls=https://10.0.0.1:2380", "--bump-revision=1000000000", "--mark-compacted",
    ]  # fmt: skip

    refused = step(node, "swapped")
    assert refused["failed"] and "etcd still runs on this node: run step stopped first" in refused["msg"], refused

    stopped = step(node, "stopped")
    assert stopped["changed"] and stopped["moved"] == [f"{c}.yaml" for c in CONTROL_PLANE_COMPONENTS], stopped
    assert os.listdir(node / "manifests") == ["extra.yaml"]
    assert stat.S_IMODE((node / "held").stat().st_mode) == 0o700
    assert step(node, "stopped")["changed"] is False

    swapped = step(node, "swapped")
    assert swapped["previous"] == str(node / "etcd/member.before-restore-20261206T011500Z"), swapped
    assert (node / "etcd/member/snap/db").read_text() == "the cluster as it was"
    assert (node / "etcd/member.before-restore-20261206T011500Z/snap/db").read_text() == "the cluster as it runs"
    assert not (node / "etcd/.sensorstack-restore").exists()
    again = step(node, "swapped")
    assert again["failed"] and "nothing restored waits" in again["msg"], again

    started = step(node, "started")
    assert started["changed"] and len(started["moved"]) == 4
    assert sorted(os.listdir(node / "manifests")) == sorted([f"{c}.yaml" for c in CONTROL_PLANE_COMPONENTS] + [
        "extra.yaml"])  # fmt: skip
    assert not (node / "held").exists()
    assert step(node, "started")["changed"] is False


def test_a_snapshot_copied_to_the_staged_name_is_restored_and_then_removed(node: Path) -> None:
    incoming = node / "etcd/.sensorstack-restore.db"
    incoming.write_text("copied from the first control plane")
    staged = step(node, "staged", snapshot=str(incoming))
    assert staged["changed"] and not incoming.exists(), staged
    assert (node / "etcd/.sensorstack-restore/member/snap/db").read_text() == "copied from the first control plane"


def test_a_restore_etcdutl_refuses_leaves_nothing_in_the_data_folder(node: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_RESTORE_FAILS", "1")
    result = step(node, "staged")
    assert result["failed"] and "etcdutl snapshot restore failed" in result["msg"], result
    assert "snapshot file integrity check failed" in result["msg"]
    assert os.listdir(node / "etcd") == ["member"]


def test_a_snapshot_etcdutl_cannot_vouch_for_is_not_restored(node: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STATUS", json.dumps(STATUS | {"revision": 0, "totalKey": 0}))
    result = step(node, "staged")
    assert result["failed"] and "holds no revision" in result["msg"], result
    assert not any("restore" in call for call in crictl_calls(node))
    assert os.listdir(node / "etcd") == ["member"]


def test_a_missing_snapshot_is_named(node: Path) -> None:
    result = step(node, "staged", snapshot=str(node / "backups/none.db"))
    assert result["failed"] and f"no snapshot file {node}/backups/none.db on this node" in result["msg"], result
    assert crictl_calls(node) == []


def test_discarding_removes_what_a_restore_staged_and_nothing_else(node: Path) -> None:
    step(node, "staged")
    assert step(node, "discarded")["changed"] is True
    assert os.listdir(node / "etcd") == ["member"]
    assert step(node, "discarded")["changed"] is False


def test_check_mode_moves_no_manifest_and_swaps_nothing(node: Path) -> None:
    assert step(node, "stopped", check=True) == step(node, "stopped", check=True) | {"changed": True}
    assert len(os.listdir(node / "manifests")) == 5 and not (node / "held").exists()
    staged = step(node, "staged", check=True)
    assert staged["changed"] and os.listdir(node / "etcd") == ["member"], staged


def test_a_node_without_the_control_planes_manifests_is_refused(node: Path) -> None:
    (node / "manifests/kube-scheduler.yaml").unlink()
    result = step(node, "stopped")
    assert result["failed"] and "no kube-scheduler.yaml in" in result["msg"], result
    assert "not a control-plane node of a kubeadm cluster with stacked etcd" in result["msg"]
    assert len(os.listdir(node / "manifests")) == 4  # nothing moved


def test_a_restore_id_that_would_overwrite_kept_data_is_refused(node: Path) -> None:
    step(node, "staged")
    step(node, "stopped")
    (node / "etcd/member.before-restore-20261206T011500Z").mkdir()
    result = step(node, "swapped")
    assert result["failed"] and "exists already" in result["msg"], result
    assert (node / "etcd/member/snap/db").read_text() == "the cluster as it runs"


def test_a_restore_id_that_cannot_name_a_folder_is_refused_before_crictl_runs(node: Path) -> None:
    result = step(node, "staged", restore_id="../../etc")
    assert result["failed"] and "restore_id must be 1 to 64 letters" in result["msg"], result
    assert crictl_calls(node) == []


def test_the_role_copies_the_snapshot_where_the_module_stages_it() -> None:
    """Two names of one file: a copy anywhere else would be restored and left behind in etcd's data folder."""
    role = RoleFiles.load("etcd_restore")
    incoming = role.render("{{ etcd_restore_incoming }}", etcd_restore_member=member("cp1", "10.0.0.1"))
    assert incoming == f"/var/lib/etcd/{STAGED_SNAPSHOT}"
