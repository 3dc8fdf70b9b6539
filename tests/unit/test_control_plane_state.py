"""control_plane_state and the check preflight makes of it: whether a node runs a control plane, the etcd cluster of
its member as etcdctl reports it, and the refusal of a control plane whose member belongs to another cluster than
the first control plane's (one lost while etcd was restored on the others, back with its old data).

The module runs here on real folders with a double of crictl (the etcd container behind it prints the status it is
given). The cluster tier runs it against real etcd members: every site.yml there reads all three control planes of
the HA cluster, and tests/cluster/test_etcd_restore_after_losing_control_planes.py brings a lost control plane back
with its old data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.filter.cluster_checks import etcd_cluster_problems
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_member import endpoint_status

from .module_run import run_module_file

CLUSTER = 0xCE8B1A6BD5C9E7A1
OLD_CLUSTER = 0x5A3F0C2E9B7D1146
# etcdctl endpoint status --write-out=json of a member with a leader (3.6.6), numbers as JSON numbers.
STATUS = [
    {
        "Endpoint": "https://127.0.0.1:2379",
        "Status": {
            "header": {"cluster_id": CLUSTER, "member_id": 0x8E9E05C52164694D, "revision": 4821, "raft_term": 3},
            "version": "3.6.6",
            "dbSize": 5312512,
            "leader": 0x8E9E05C52164694D,
            "raftIndex": 6011,
            "raftTerm": 3,
        },
    }
]
ETCDCTL = ["/usr/local/bin/etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt"]
FAKE_CRICTL = """#!/usr/bin/env python3
import json, os, sys
arguments = sys.argv[1:]
with open(os.environ["FAKE_CRICTL_LOG"], "a") as log:
    log.write(json.dumps(arguments) + "\\n")
if arguments[2] == "ps":
    print(os.environ.get("FAKE_ETCD_IDS", "etcd0"))
elif arguments[2] == "exec":
    print(os.environ["FAKE_STATUS"])
"""


def status_of(cluster: int, leader: int = 0x8E9E05C52164694D, errors: list[str] | None = None) -> str:
    status = json.loads(json.dumps(STATUS))
    status[0]["Status"]["header"]["cluster_id"] = cluster
    if leader:
        status[0]["Status"]["leader"] = leader
    else:  # etcdctl leaves out a zero, as protobuf's JSON does
        del status[0]["Status"]["leader"]
    if errors:
        status[0]["Status"]["errors"] = errors
    return json.dumps(status)


def test_a_members_status_is_read_as_etcdctls_tables_print_the_ids() -> None:
    assert endpoint_status(json.dumps(STATUS)) == {
        "cluster_id": "ce8b1a6bd5c9e7a1",
        "member_id": "8e9e05c52164694d",
        "leader": "8e9e05c52164694d",
        "version": "3.6.6",
        "errors": [],
    }


def test_a_member_without_quorum_has_no_leader_and_says_so() -> None:
    read = endpoint_status(status_of(OLD_CLUSTER, leader=0, errors=["etcdserver: no leader"]))
    assert (read["cluster_id"], read["leader"], read["errors"]) == ("5a3f0c2e9b7d1146", "", ["etcdserver: no leader"])


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("Error: context deadline exceeded", "printed no JSON"),
        ("[]", "printed no single endpoint"),
        (json.dumps([{"Endpoint": "https://127.0.0.1:2379", "Status": {"version": "3.6.6"}}]), "names no cluster"),
        (json.dumps([{"Status": {"header": {"cluster_id": "ce8b"}}}]), "not an etcd ID: 'ce8b'"),
    ],
    ids=["no JSON", "no endpoint", "no cluster ID", "an ID that is no number"],
)
def test_a_status_that_names_no_cluster_is_refused(output: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        endpoint_status(output)


CONTROL_PLANES = ["cp1", "cp2", "cp3"]
NEW = {"cluster_id": "ce8b1a6bd5c9e7a1", "leader": "8e9e05c52164694d"}


@pytest.mark.parametrize(
    "members",
    [
        {"cp1": NEW, "cp2": NEW, "cp3": NEW},
        {"cp1": NEW},
        {"cp1": NEW, "cp2": {}, "cp3": NEW},
        {"cp1": {}, "cp2": NEW, "cp3": {"cluster_id": "5a3f0c2e9b7d1146", "leader": ""}},
    ],
    ids=["one cluster", "one control plane so far", "a member not read", "a first control plane not read"],
)
def test_members_of_one_cluster_or_not_read_pass(members: dict[str, dict[str, str]]) -> None:
    assert etcd_cluster_problems("control_plane", CONTROL_PLANES, members) == []


def test_a_member_of_another_cluster_is_refused_with_the_reset_that_brings_it_back() -> None:
    old = {"cluster_id": "5a3f0c2e9b7d1146", "leader": ""}
    [problem] = etcd_cluster_problems("control_plane", CONTROL_PLANES, {"cp1": NEW, "cp2": NEW, "cp3": old})
    assert problem.startswith(
        "sensorstack_control_plane_group: the etcd members of cp3 belong to another cluster (5a3f0c2e9b7d1146) than "
        "the member of cp1, the first host of group 'control_plane' (ce8b1a6bd5c9e7a1); cp3 has no leader."
    )
    assert "Reset each of them (playbooks/reset.yml --limit cp3), then run site.yml" in problem


def test_two_lost_members_with_a_quorum_of_their_own_are_named_as_running_the_old_cluster() -> None:
    old = {"cluster_id": "5a3f0c2e9b7d1146", "leader": "1c2d"}
    [problem] = etcd_cluster_problems("control_plane", CONTROL_PLANES, {"cp1": NEW, "cp2": old, "cp3": old})
    assert "the etcd members of cp2, cp3 belong to another cluster (5a3f0c2e9b7d1146)" in problem
    assert "they have a leader: they run that cluster, API servers included" in problem
    assert "playbooks/reset.yml --limit cp2,cp3" in problem


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node with an admin kubeconfig and the double of crictl first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crictl = bin_dir / "crictl"
    crictl.write_text(FAKE_CRICTL)
    crictl.chmod(0o755)
    (tmp_path / "admin.conf").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CRICTL_LOG", str(tmp_path / "crictl.log"))
    monkeypatch.setenv("FAKE_STATUS", json.dumps(STATUS))
    return tmp_path


def run_module(node: Path, check: bool = False) -> dict:
    options = {"admin_kubeconfig": str(node / "admin.conf"), "etcdctl": ETCDCTL, "timeout": 7}
    return run_module_file("control_plane_state", options, check)


def crictl_calls(node: Path) -> list[list[str]]:
    log = node / "crictl.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("check", [False, True], ids=["run", "check mode"])
def test_a_control_plane_reports_its_members_cluster_and_changes_nothing(node: Path, check: bool) -> None:
    result = run_module(node, check)
    assert not result.get("failed") and not result["changed"], result
    assert result["initialised"] and result["etcd_unread"] == ""
    assert result["etcd"]["cluster_id"] == "ce8b1a6bd5c9e7a1"
    ps, status = crictl_calls(node)
    assert ps[2:] == ["ps", "--quiet", "--state", "running", "--name", "^etcd$"]
    assert status == ["--runtime-endpoint", "unix:///run/containerd/containerd.sock", "exec", "--timeout", "7",
                      "etcd0", *ETCDCTL, "endpoint", "status", "--write-out=json"]  # fmt: skip


def test_a_node_kubeadm_has_not_set_up_is_not_asked_about_etcd(node: Path) -> None:
    (node / "admin.conf").unlink()
    result = run_module(node)
    assert (result["initialised"], result["etcd"], result["etcd_unread"]) == (False, {}, "")
    assert crictl_calls(node) == []


@pytest.mark.parametrize(
    ("environment", "unread"),
    [
        ({"PATH": "/nonexistent"}, "no crictl on this node: install cri-tools"),
        ({"FAKE_ETCD_IDS": ""}, "no running container named etcd on this node"),
        ({"FAKE_STATUS": "Error: context deadline exceeded"}, "etcdctl endpoint status printed no JSON"),
    ],
    ids=["no crictl", "no running etcd", "no answer"],
)
def test_a_member_that_cannot_be_read_is_reported_unread_without_failing(
    node: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], unread: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = run_module(node)
    assert not result.get("failed"), result
    assert result["initialised"] and result["etcd"] == {}
    assert unread in result["etcd_unread"]
