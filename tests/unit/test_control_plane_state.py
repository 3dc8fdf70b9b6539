"""control_plane_state and the check preflight makes of it: whether a node runs a control plane, the etcd cluster of
its member as its peer listener says, and the refusal of a control plane whose member belongs to another cluster than
the first control plane's (one lost while etcd was restored on the others, back with its old data).

The module runs here against a double of etcd's peer listener on loopback, over plain HTTP (kubeadm's is HTTPS with
client certificates). The cluster tier runs it against real etcd members: every site.yml there reads the control
planes of its clusters, and tests/cluster/test_etcd_restore_after_losing_control_planes.py brings a lost control
plane back with its old data, whose member never serves clients again but answers this.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from ansible_collections.sensorstack.iot.plugins.filter.cluster_checks import etcd_cluster_problems
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_member import peer_members

from .module_run import run_module_file

# What a member of the old cluster answered on the cluster tier, after the survivor was restored without it.
MEMBERS = [
    {"id": 16921383669225334203, "peerURLs": ["https://10.213.0.53:2380"], "name": "cpc-cp1",
     "clientURLs": ["https://10.213.0.53:2379"]},
    {"id": 18221097978508667226, "peerURLs": ["https://10.213.0.56:2380"], "name": "cpc-cp2",
     "clientURLs": ["https://10.213.0.56:2379"]},
]  # fmt: skip


def test_the_cluster_and_the_members_a_member_knows_are_read_from_its_answer() -> None:
    assert peer_members("b1a339c935beb156", json.dumps(MEMBERS)) == {
        "cluster_id": "b1a339c935beb156",
        "members": ["cpc-cp1", "cpc-cp2"],
    }


def test_a_member_added_but_not_started_yet_counts_without_a_name() -> None:
    assert peer_members("1a2b", json.dumps([*MEMBERS, {"id": 7, "peerURLs": ["https://10.213.0.57:2380"]}])) == {
        "cluster_id": "1a2b",
        "members": ["", "cpc-cp1", "cpc-cp2"],
    }


@pytest.mark.parametrize(
    ("cluster_id", "body", "problem"),
    [
        (None, "[]", "named no cluster"),
        ("not-hex", "[]", "named no cluster"),
        ("b1a339c935beb156", "404 page not found", "listed no members"),
        ("b1a339c935beb156", '{"members": []}', "listed no members"),
    ],
    ids=["no header", "a header that is no ID", "no JSON", "no list"],
)
def test_an_answer_that_names_no_cluster_or_members_is_refused(cluster_id: str | None, body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        peer_members(cluster_id, body)


CONTROL_PLANES = ["cp1", "cp2", "cp3"]
RESTORED = {"cluster_id": "100f9c11e8b1b729", "members": ["cp1", "cp2"]}
OLD = {"cluster_id": "b1a339c935beb156", "members": ["cp1", "cp2", "cp3"]}


@pytest.mark.parametrize(
    "members",
    [
        {"cp1": RESTORED, "cp2": RESTORED, "cp3": RESTORED},
        {"cp1": RESTORED},
        {"cp1": RESTORED, "cp2": {}, "cp3": RESTORED},
        {"cp1": {}, "cp2": RESTORED, "cp3": OLD},
    ],
    ids=["one cluster", "one control plane so far", "a member not read", "a first control plane not read"],
)
def test_members_of_one_cluster_or_not_read_pass(members: dict[str, dict[str, object]]) -> None:
    assert etcd_cluster_problems("control_plane", CONTROL_PLANES, members) == []


def test_a_member_of_another_cluster_is_refused_with_the_reset_that_brings_it_back() -> None:
    [problem] = etcd_cluster_problems("control_plane", CONTROL_PLANES, {"cp1": RESTORED, "cp2": RESTORED, "cp3": OLD})
    assert problem.startswith(
        "sensorstack_control_plane_group: the etcd members of cp3 belong to another cluster (b1a339c935beb156) than "
        "the member of cp1, the first host of group 'control_plane' (100f9c11e8b1b729)."
    )
    assert "Reset each of them (playbooks/reset.yml --limit cp3), then run site.yml" in problem


def test_every_member_of_another_cluster_is_named_in_one_problem() -> None:
    [problem] = etcd_cluster_problems("control_plane", CONTROL_PLANES, {"cp1": RESTORED, "cp2": OLD, "cp3": OLD})
    assert "the etcd members of cp2, cp3 belong to another cluster (b1a339c935beb156)" in problem
    assert "playbooks/reset.yml --limit cp2,cp3" in problem


class PeerListener(BaseHTTPRequestHandler):
    """etcd's peer listener as GET /members answers it; ``cluster_id`` None leaves the header out."""

    cluster_id: str | None = "b1a339c935beb156"
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = json.dumps(MEMBERS).encode() if self.path == "/members" else b"404 page not found\n"
        self.send_response(200 if self.path == "/members" else 404)
        if self.cluster_id is not None:
            self.send_header("X-Etcd-Cluster-ID", self.cluster_id)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments: object) -> None:
        pass


@pytest.fixture()
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(PeerListener, "asked", [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), PeerListener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def node(tmp_path: Path) -> Path:
    (tmp_path / "admin.conf").write_text("apiVersion: v1\nkind: Config\n")
    return tmp_path


def run_module(node: Path, peer_url: str, check: bool = False) -> dict:
    return run_module_file(
        "control_plane_state", {"admin_kubeconfig": str(node / "admin.conf"), "peer_url": peer_url}, check
    )


@pytest.mark.parametrize("check", [False, True], ids=["run", "check mode"])
def test_a_control_plane_reports_its_members_cluster_and_changes_nothing(node: Path, peer: str, check: bool) -> None:
    result = run_module(node, peer + "/", check)
    assert not result.get("failed") and not result["changed"], result
    assert (result["initialised"], result["etcd_unread"]) == (True, "")
    assert result["etcd"] == {"cluster_id": "b1a339c935beb156", "members": ["cpc-cp1", "cpc-cp2"]}
    assert PeerListener.asked == ["/members"]


def test_a_node_kubeadm_has_not_set_up_is_not_asked_about_etcd(node: Path, peer: str) -> None:
    (node / "admin.conf").unlink()
    result = run_module(node, peer)
    assert (result["initialised"], result["etcd"], result["etcd_unread"]) == (False, {}, "")
    assert PeerListener.asked == []


def test_a_member_that_names_no_cluster_is_reported_unread_without_failing(
    node: Path, peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PeerListener, "cluster_id", None)
    result = run_module(node, peer)
    assert not result.get("failed") and result["initialised"] and result["etcd"] == {}, result
    assert result["etcd_unread"].startswith(f"GET {peer}/members: etcd's peer listener named no cluster")


def test_no_etcd_listening_is_reported_unread_without_failing(node: Path, peer: str) -> None:
    closed = peer.rsplit(":", 1)[0] + ":9"  # discard: nothing listens on loopback there
    result = run_module(node, closed)
    assert not result.get("failed") and result["etcd"] == {}, result
    assert result["etcd_unread"].startswith(f"GET {closed}/members: ")
