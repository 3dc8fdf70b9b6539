"""The control-plane restart helper of role kubeadm_certificates, run by bash against doubles of crictl and kubectl.

The rendered script runs as the renewal would run it; only its PATH line is pointed at a folder of doubles (crictl
and kubectl, which control_plane_double.py plays, and a sleep that returns at once, so that a 2 s poll costs nothing)
and of the text tools it uses, so that no kubectl or crictl of the machine is found. The doubles play a control plane
from a JSON state: the containers running per component, the Ready answers of each component's pods, after how many
reads a restarted container is Ready, whether the API answers. They log what the script asked and did, in order,
which is what these tests read: no component stops before every pod of it in the cluster is Ready, and none before
the one restarted ahead of it is Ready again. The cluster tier runs the real thing on three control planes
(tests/cluster/test_ha.py).
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

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("kubeadm_certificates")
DOUBLE = Path(__file__).with_name("control_plane_double.py")
TEMPLATE = (ROOT / "roles/kubeadm_certificates/templates/kubeadm-restart-components.sh.j2").read_text()
# What the script runs besides crictl, kubectl and sleep.
SCRIPT_TOOLS = ("grep", "cut", "paste")
TIMEOUT = 20  # seconds: restart_timeout, 10 polls of 2 s (the doubles' sleep returns at once)


@dataclass
class ControlPlane:
    """The doubles' state and the script, in one temporary folder."""

    folder: Path
    running: dict[str, list[str]] = field(default_factory=dict)
    pods: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    ready_after: dict[str, int | None] = field(default_factory=dict)
    api_down: bool = False
    kubectl: bool = True

    def restart(self, *components: str) -> subprocess.CompletedProcess[str]:
        doubles = self.folder / "bin"
        doubles.mkdir(exist_ok=True)
        for name in ("crictl", "kubectl") if self.kubectl else ("crictl",):
            (doubles / name).write_text(f'#!/bin/sh\nexec {sys.executable} {DOUBLE} {doubles} {name} "$@"\n')
            (doubles / name).chmod(0o755)
        for tool in SCRIPT_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is not installed"
            (doubles / tool).symlink_to(found)
        (doubles / "sleep").write_text("#!/bin/sh\nexit 0\n")
        (doubles / "sleep").chmod(0o755)
        state: dict[str, Any] = {
            "running": self.running,
            "pods": self.pods,
            "ready_after": self.ready_after,
            "api_down": self.api_down,
        }
        (doubles / "state.json").write_text(json.dumps(state))
        admin = self.folder / "admin.conf"
        admin.write_text("kubeconfig\n")
        script = ROLE.render(
            TEMPLATE,
            ansible_managed="managed",
            kubeadm_certificates_admin_kubeconfig=str(admin),
            kubeadm_certificates_restart_timeout=TIMEOUT,
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


WHOLE = {"etcd": [{"etcd-cp1": "True", "etcd-cp2": "True", "etcd-cp3": "True"}]}


@pytest.fixture
def control_plane(tmp_path: Path) -> ControlPlane:
    return ControlPlane(
        tmp_path,
        running={"etcd": ["old-etcd"], "kube-apiserver": ["old-kube-apiserver"]},
        pods={**WHOLE, "kube-apiserver": [{"kube-apiserver-cp1": "True"}]},
        ready_after={"etcd": 3, "kube-apiserver": 2},
    )


def test_each_component_is_ready_again_before_the_next_one_stops(control_plane: ControlPlane) -> None:
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "etcd: restarted with the new certificates, Ready",
        "kube-apiserver: restarted with the new certificates, Ready",
    ]
    log = control_plane.log()
    assert [line for line in log if line.startswith("stop")] == ["stop etcd", "stop kube-apiserver"]
    # The new etcd container was polled until the kubelet called it Ready, and only then did the API server stop.
    etcd_polls = [line for line in log if line.startswith("ready etcd new-etcd")]
    assert etcd_polls == ["ready etcd new-etcd false"] * 2 + ["ready etcd new-etcd true"]
    assert log.index("ready etcd new-etcd true") < log.index("stop kube-apiserver")


def test_a_component_waits_until_its_pods_on_the_other_nodes_are_ready(control_plane: ControlPlane) -> None:
    # Another control-plane node is restarting its etcd: its pod is not Ready for the first two reads.
    recovering = {"etcd-cp1": "True", "etcd-cp2": "False", "etcd-cp3": "True"}
    control_plane.pods["etcd"] = [recovering, recovering, WHOLE["etcd"][0]]
    result = control_plane.restart("etcd")
    assert result.returncode == 0, result.stderr
    log = control_plane.log()
    assert [line for line in log if line.startswith("pods etcd")][:3] == [
        "pods etcd etcd-cp1=True etcd-cp2=False etcd-cp3=True",
        "pods etcd etcd-cp1=True etcd-cp2=False etcd-cp3=True",
        "pods etcd etcd-cp1=True etcd-cp2=True etcd-cp3=True",
    ]
    assert log.index("stop etcd") > 2
    assert "WARNING" not in result.stderr


def test_a_pod_that_stays_not_ready_delays_the_restart_but_does_not_prevent_it(control_plane: ControlPlane) -> None:
    # A control-plane node is down for good: its certificates must still be loaded here before they expire.
    control_plane.pods["etcd"] = [{"etcd-cp1": "True", "etcd-cp2": "False"}]
    result = control_plane.restart("etcd")
    assert result.returncode == 0, result.stderr
    assert f"WARNING: not Ready after {TIMEOUT}s: etcd-cp2; restarting etcd anyway" in result.stderr
    assert "stop etcd" in control_plane.log()


def test_a_component_that_is_not_ready_again_stops_the_run_before_the_next(control_plane: ControlPlane) -> None:
    control_plane.ready_after["etcd"] = None
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 1
    assert f"etcd runs again but is not Ready within {TIMEOUT}s after its restart" in result.stderr
    assert "describe pods --selector=component=etcd" in result.stderr
    assert "stop kube-apiserver" not in control_plane.log()


def test_a_component_that_does_not_run_again_stops_the_run(control_plane: ControlPlane) -> None:
    # The kubelet starts nothing new: the old container's ID stays the only one.
    control_plane.running["etcd"] = ["new-etcd"]
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 1
    assert f"etcd did not run again within {TIMEOUT}s after its restart" in result.stderr
    assert "stop kube-apiserver" not in control_plane.log()


def test_without_an_answering_api_the_components_restart_and_are_checked_for_running(
    control_plane: ControlPlane,
) -> None:
    control_plane.api_down = True
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 0, result.stderr
    assert [line for line in control_plane.log() if line.startswith("stop")] == ["stop etcd", "stop kube-apiserver"]
    assert "WARNING: the API does not answer: etcd restarts without knowing" in result.stderr
    assert f"WARNING: etcd runs again, but the API did not answer within {TIMEOUT}s: not known Ready" in result.stderr


def test_without_kubectl_the_components_restart_and_are_checked_for_running(control_plane: ControlPlane) -> None:
    control_plane.kubectl = False
    result = control_plane.restart("etcd", "kube-apiserver")
    assert result.returncode == 0, result.stderr
    assert "checked for running, not for Ready" in result.stderr
    assert result.stdout.splitlines() == [
        "etcd: restarted with the new certificates",
        "kube-apiserver: restarted with the new certificates",
    ]


def test_a_component_not_running_on_this_node_is_left_alone(control_plane: ControlPlane) -> None:
    result = control_plane.restart("kube-scheduler")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kube-scheduler: no running container on this node, nothing to restart"
    assert control_plane.log() == []
