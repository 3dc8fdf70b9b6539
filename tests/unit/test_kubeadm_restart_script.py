"""The control-plane restart helper of role kubeadm_certificates, run by bash against doubles of crictl and curl.

The rendered script runs as the renewal would run it; only its PATH line is pointed at a folder of doubles (crictl,
with the etcdctl it execs in the etcd container, and curl, which control_plane_double.py plays, and a sleep that
returns at once, so that a 2 s poll costs nothing) and of the text tools it uses, so that nothing of the machine is
found. The doubles play a control plane from a JSON state: the containers running per component, etcd's answers
about its members, after how many asks a restarted component answers on its health URL. They log what the script
asked and did, in order, which is what these tests read: etcd stops only once etcd reports every member healthy, and
no component stops before the one restarted ahead of it answers again. The cluster tier runs the real thing on three
control planes (tests/cluster/test_ha.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .role_files import ROOT, RoleFiles, opened_tasks

ROLE = RoleFiles.load("kubeadm_certificates")
DOUBLE = Path(__file__).with_name("control_plane_double.py")
TEMPLATE = (ROOT / "roles/kubeadm_certificates/templates/kubeadm-restart-components.sh.j2").read_text()
# What the script runs besides crictl, curl and sleep.
SCRIPT_TOOLS = ("grep", "tr", "head")
NAMES_TASKS = opened_tasks(yaml.safe_load((ROOT / "roles/kubeadm_certificates/tasks/names.yml").read_text()))
IPV4_NODE: dict[str, Any] = {"inventory_hostname": "cp1", "hostvars": {"cp1": {"sensorstack_node_ip": "10.213.0.53"}}}
TIMEOUT = 20  # seconds: restart_timeout, 10 polls of 2 s (the doubles' sleep returns at once)


@dataclass
class ControlPlane:
    """The doubles' state and the script, in one temporary folder."""

    folder: Path
    running: dict[str, list[str]] = field(default_factory=dict)
    members: list[list[str]] | None = field(default_factory=lambda: [[]])
    answer_after: dict[str, int | None] = field(default_factory=dict)
    curl: bool = True

    def restart(self, *components: str) -> subprocess.CompletedProcess[str]:
        doubles = self.folder / "bin"
        doubles.mkdir(exist_ok=True)
        for name in ("crictl", "curl") if self.curl else ("crictl",):
            (doubles / name).write_text(f'#!/bin/sh\nexec {sys.executable} {DOUBLE} {doubles} {name} "$@"\n')
            (doubles / name).chmod(0o755)
        for tool in SCRIPT_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is not installed"
            (doubles / tool).symlink_to(found)
        (doubles / "sleep").write_text("#!/bin/sh\nexit 0\n")
        (doubles / "sleep").chmod(0o755)
        state: dict[str, Any] = {"running": self.running, "members": self.members, "answer_after": self.answer_after}
        (doubles / "state.json").write_text(json.dumps(state))
        script = ROLE.render(
            TEMPLATE, **IPV4_NODE, ansible_managed="managed", kubeadm_certificates_restart_timeout=TIMEOUT
        )
        assert "export PATH=/usr/local/sbin:" in script
        script = "\n".join(
            f"export PATH={doubles}" if line.startswith("export PATH=") else line for line in script.splitlines()
        )
        path = self.folder / "kubeadm-restart-components"
        path.write_text(script + "\n")
        path.chmod(0o755)
        return subprocess.run(
            [str(path), *components], capture_output=True, text=True, check=False, env={"HOME": os.environ["HOME"]}
        )

    def log(self) -> list[str]:
        log = self.folder / "bin/log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def control_plane(tmp_path: Path) -> ControlPlane:
    return ControlPlane(
        tmp_path,
        running={"etcd": ["old-etcd"], "kube-apiserver": ["old-kube-apiserver"]},
        answer_after={"etcd": 3, "kube-apiserver": 2},
    )


def test_each_component_answers_again_before_the_next_one_stops(control_plane: ControlPlane) -> None:
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "etcd: restarted with the new certificates, answering at http://127.0.0.1:2381/readyz",
        "kube-apiserver: restarted with the new certificates, answering at https://127.0.0.1:6443/readyz",
    ]
    assert control_plane.log() == [
        "members in old-etcd: healthy",
        "stop etcd",
        "asked etcd silent",
        "asked etcd silent",
        "asked etcd answers",
        "stop kube-apiserver",
        "asked kube-apiserver silent",
        "asked kube-apiserver answers",
    ]


def test_etcd_waits_until_the_member_another_node_restarts_is_healthy(control_plane: ControlPlane) -> None:
    # Another control-plane node restarts its member: etcd reports it unhealthy for the first two asks.
    control_plane.members = [["10.213.0.56"], ["10.213.0.56"], []]
    result = control_plane.restart("etcd")
    assert result.returncode == 0, result.stderr
    assert control_plane.log()[:4] == [
        "members in old-etcd: 10.213.0.56",
        "members in old-etcd: 10.213.0.56",
        "members in old-etcd: healthy",
        "stop etcd",
    ]
    assert "WARNING" not in result.stderr
    assert result.stdout.splitlines()[0] == (
        "etcd: waiting until every member is healthy: https://10.213.0.56:2379 is unhealthy: failed to commit "
        "proposal: context deadline exceeded "
    )


@pytest.mark.parametrize(
    ("members", "status", "said"),
    [([[]], 0, ""), ([["10.213.0.57"]], 1, "https://10.213.0.57:2379 is unhealthy"), (None, 0, "")],
    ids=["healthy", "a member down", "no etcdctl"],
)
def test_the_renewal_can_ask_whether_every_member_is_healthy(
    control_plane: ControlPlane, members: list[list[str]] | None, status: int, said: str
) -> None:
    control_plane.members = members
    result = control_plane.restart("--etcd-whole")
    assert result.returncode == status, result.stderr
    assert result.stdout.startswith(said) and bool(result.stdout) == bool(said)
    assert not any(line.startswith("stop") for line in control_plane.log())


def test_a_member_that_stays_unhealthy_delays_the_restart_but_does_not_prevent_it(control_plane: ControlPlane) -> None:
    # A control-plane node is down for good: the certificates must still be loaded here before they expire.
    control_plane.members = [["10.213.0.57"]]
    result = control_plane.restart("etcd")
    assert result.returncode == 0, result.stderr
    assert f"WARNING: etcd has a member that is not healthy after {TIMEOUT}s" in result.stderr
    assert "https://10.213.0.57:2379 is unhealthy" in result.stderr
    assert "stop etcd" in control_plane.log()


def test_an_etcd_image_without_etcdctl_restarts_at_once_with_a_warning(control_plane: ControlPlane) -> None:
    control_plane.members = None
    result = control_plane.restart("etcd")
    assert result.returncode == 0, result.stderr
    assert "WARNING: no /usr/local/bin/etcdctl in the etcd container" in result.stderr
    assert control_plane.log()[0] == "stop etcd"


def test_a_component_that_does_not_answer_again_stops_the_run_before_the_next(control_plane: ControlPlane) -> None:
    control_plane.answer_after["etcd"] = None
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 1
    assert f"etcd runs again but does not answer at http://127.0.0.1:2381/readyz within {TIMEOUT}s" in result.stderr
    assert "stop kube-apiserver" not in control_plane.log()


def test_a_component_that_does_not_run_again_stops_the_run(control_plane: ControlPlane) -> None:
    # The kubelet starts nothing new: the old container's ID stays the only one.
    control_plane.running["etcd"] = ["new-etcd"]
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 1
    assert f"etcd did not run again within {TIMEOUT}s after its restart" in result.stderr
    assert "stop kube-apiserver" not in control_plane.log()


def test_without_curl_the_components_restart_and_are_checked_for_running(control_plane: ControlPlane) -> None:
    control_plane.curl = False
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 0, result.stderr
    assert "checked for running, not for answering" in result.stderr
    assert result.stdout.splitlines() == [
        "etcd: restarted with the new certificates",
        "kube-apiserver: restarted with the new certificates",
    ]


def test_a_component_not_running_on_this_node_is_left_alone(control_plane: ControlPlane) -> None:
    result = control_plane.restart("kube-scheduler")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kube-scheduler: no running container on this node, nothing to restart"
    assert control_plane.log() == []


def test_on_an_ipv6_node_the_checks_ask_where_kubeadm_binds_there() -> None:
    # kubeadm binds etcd's client and metrics listeners and the controllers to ::1 on a node whose address is IPv6.
    ipv6 = {"inventory_hostname": "cp1", "hostvars": {"cp1": {"sensorstack_node_ip": "fd00::53"}}}
    assert ROLE.render("{{ kubeadm_certificates_component_health }}", **ipv6) == {
        "etcd": "http://[::1]:2381/readyz",
        "kube-apiserver": "https://[::1]:6443/readyz",
        "kube-controller-manager": "https://[::1]:10257/healthz",
        "kube-scheduler": "https://[::1]:10259/healthz",
    }
    assert "--endpoints=https://[::1]:2379" in ROLE.render("{{ kubeadm_certificates_etcdctl }}", **ipv6)
    assert ROLE.render("{{ kubeadm_certificates_etcdctl[1] }}", **IPV4_NODE) == "--endpoints=https://127.0.0.1:2379"
    # The role's own check of the certificate the API server serves after new names asks there too.
    [served] = [
        task
        for task in NAMES_TASKS
        if task["name"] == "Wait until the API server serves a certificate with every stored name"
    ]
    assert "s_client -connect [::1]:6443 " in ROLE.render(served["ansible.builtin.shell"]["cmd"], **ipv6)
