"""The kubeadm_certificates role on a systemd host with the real kubeadm: the timer, the renewal script it starts, and
the report that `sensorstack` prints.

One throwaway lab container (Debian 13, systemd as PID 1, named sensorstack-test-certs-renewal) gets the kubeadm
the bundle builds (`kubernetes_binaries()`) and a control-plane PKI from `kubeadm init phase certs all` and `kubeadm
init phase kubeconfig all`: certificates and kubeconfigs, no cluster. kubeadm finds no API server to read its
configuration from and falls back to its defaults, as on a node whose API server is down. No component runs, so the
script has nothing to restart: first without crictl, then with crictl and no container runtime. The tests run in
file order against that one host: check mode, the install and the report `sensorstack run --json` prints, the
idempotent rerun, a run of the service with fresh certificates (nothing renewed), with certificates that fall due
(renewed), the script by hand with a threshold above their validity (renewed), and the removal.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.bundle.cache import cache_root
from sensorstack.bundle.components import build_cri_tools
from sensorstack.bundle.versions import load_versions
from sensorstack.cli import main
from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, kubernetes_binaries, run_playbook, write_inventory

pytestmark = pytest.mark.lab

HOST = "cp1"
SERVICE = "kubeadm-certificates-renew.service"
TIMER = "kubeadm-certificates-renew.timer"
SCRIPT = "/usr/local/sbin/kubeadm-certificates-renew"
LEASE_SCRIPT = "/usr/local/sbin/kubeadm-renewal-lease"
PKI = "/etc/kubernetes/pki"
ADMIN = "/etc/kubernetes/admin.conf"
ROOT_KUBECONFIG = "/root/.kube/config"
JOURNAL_WAIT = 30  # seconds: how long renew() waits for the service's lines to reach the journal
# A ClusterConfiguration whose certificates live 10 days (kubeadm.k8s.io/v1beta4 certificateValidityPeriod): they
# fall due under the default threshold of 30 days.
SHORT_LIVED = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v{version}
certificateValidityPeriod: 240h0m0s
"""


@dataclass
class Node:
    container: str
    directory: Path

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "exec", self.container, *command], capture_output=True, text=True, check=False)

    def converge(self, *options: str, **variables: Any) -> PlaybookRun:
        (self.directory / "vars.json").write_text(json.dumps(variables))
        return run_playbook(str(self.playbook), self.inventory, "-e", f"@{self.directory / 'vars.json'}", *options)

    @property
    def playbook(self) -> Path:
        return self.directory / "play.yml"

    @property
    def inventory(self) -> Path:
        return self.directory / "hosts.yml"

    def make_pki(self, short_lived: bool = False) -> None:
        """A new control-plane PKI (kubeadm's 1 year, or 10 days) and root's kubeconfig as a copy of admin.conf."""
        version = _kubernetes_version()
        options = ["--config", "/root/short-lived.yaml"] if short_lived else ["--kubernetes-version", f"v{version}"]
        if short_lived:
            self.run("sh", "-c", f"cat > /root/short-lived.yaml <<'EOF'\n{SHORT_LIVED.format(version=version)}EOF")
        self.run("sh", "-c", f"rm -rf {PKI} /etc/kubernetes/*.conf")
        for phase in ("certs", "kubeconfig"):
            made = self.run("kubeadm", "init", "phase", phase, "all", *options)
            assert made.returncode == 0, made.stdout + made.stderr
        assert self.run("install", "-D", "-m", "0600", ADMIN, ROOT_KUBECONFIG).returncode == 0

    def fingerprints(self) -> str:
        """Serial and end date of every certificate of the PKI."""
        each = f"for c in $(find {PKI} -name '*.crt' | sort); do openssl x509 -in $c -noout -serial -enddate; done"
        listing = self.run("sh", "-c", each)
        assert listing.returncode == 0 and listing.stdout, listing.stderr
        return listing.stdout

    def days_left(self) -> set[int]:
        """The days left of the certificates, as kubeadm's own table prints them (364d -> 364)."""
        table = self.run("kubeadm", "certs", "check-expiration").stdout.split("CERTIFICATE AUTHORITY   EXPIRES")[0]
        return {int(word[:-1]) for word in table.split() if word.endswith("d") and word[:-1].isdigit()}

    def renew(self, *awaited: str) -> str:
        """Start the renewal service as its timer would, and return what this run of it wrote to the journal once
        every awaited line is there (or after JOURNAL_WAIT seconds).

        journald reads a service's output from a stream of its own: a oneshot service can be over before its lines
        are in the journal, so a single read right after `systemctl start` may find nothing. The lines are those of
        the service after the journal's last entry before the start: the unit's InvocationID, read once the oneshot
        has ended, was found empty in CI (an empty journal)."""
        last = self.run("journalctl", "--no-pager", "--lines=1", "--output=json").stdout.strip()
        after = [f"--after-cursor={json.loads(last)['__CURSOR']}"] if last else []
        started = self.run("systemctl", "start", SERVICE)
        deadline = time.monotonic() + JOURNAL_WAIT
        while True:
            journal = self.run("journalctl", "--no-pager", "-o", "cat", f"--unit={SERVICE}", *after).stdout
            if all(line in journal for line in awaited) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert started.returncode == 0, started.stderr + journal
        return journal


def _kubernetes_version() -> str:
    return load_versions()["sensorstack_kubernetes_version"]


def crictl_binary() -> Path:
    """crictl as the bundle builds it (cri-tools, from the pinned source; cached)."""
    return build_cri_tools(str(load_versions()["sensorstack_cri_tools_version"]), cache_root()).binaries["crictl"]


@pytest.fixture(scope="module")
def node(lab_host_factory: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Node:
    container = lab_host_factory("certs-renewal", "debian13")
    directory = tmp_path_factory.mktemp("kubeadm-certificates")
    subprocess.run(
        ["docker", "cp", str(kubernetes_binaries()["kubeadm"]), f"{container}:/usr/local/bin/kubeadm"], check=True
    )
    write_inventory(
        directory,
        {
            "all": {
                "vars": {
                    "ansible_connection": LAB_CONNECTION,
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": {"control_plane": {"hosts": {HOST: {"ansible_host": container}}}},
            }
        },
    )
    play = {
        "name": "Renew the control-plane certificates",
        "hosts": "control_plane",
        "gather_facts": False,
        "roles": [{"role": "kubeadm_certificates"}],
    }
    (directory / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    created = Node(container, directory)
    created.make_pki()
    return created


def test_check_mode_on_a_new_node_changes_nothing_and_still_reports(node: Node) -> None:
    run = node.converge("--check")
    assert run.returncode == 0, run.output
    assert run.recap()[HOST]["changed"] > 0, run.output
    assert "control_plane_certificates" in run.output, run.output
    assert node.run("test", "-e", SCRIPT).returncode != 0
    assert node.run("systemctl", "cat", TIMER).returncode != 0


def test_the_role_enables_the_timer_and_sensorstack_reports_the_days_left(
    node: Node, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the run's artifacts
    code = main(["run", str(node.playbook), "-i", str(node.inventory), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    [certificates] = report["certificates"]
    assert certificates["host"] == HOST
    assert set(certificates["days_left"].values()) == {364}, certificates
    assert certificates["soonest"] in certificates["days_left"]
    assert (certificates["soonest_days_left"], certificates["renewal_due"]) == (364, False)
    assert node.run("systemctl", "is-enabled", TIMER).stdout.strip() == "enabled"
    assert node.run("systemctl", "is-active", TIMER).stdout.strip() == "active"
    assert node.run("stat", "-c", "%a %U", SCRIPT).stdout.split() == ["700", "root"]
    assert node.run("stat", "-c", "%a %U", LEASE_SCRIPT).stdout.split() == ["700", "root"]
    assert "OnCalendar=daily" in node.run("systemctl", "cat", TIMER).stdout


def test_a_second_run_changes_nothing(node: Node) -> None:
    run = node.converge()
    assert run.returncode == 0, run.output
    assert run.recap()[HOST]["changed"] == 0, run.output


def test_the_service_leaves_certificates_that_are_not_due_alone(node: Node) -> None:
    before = node.fingerprints()
    journal = node.renew("nothing to renew")
    assert "nothing to renew" in journal, journal
    assert node.fingerprints() == before


def test_certificates_that_fall_due_are_renewed_and_roots_kubeconfig_follows(node: Node) -> None:
    node.make_pki(short_lived=True)
    assert node.days_left() == {9}
    before = node.fingerprints()
    journal = node.renew("renewing, fewer than 30 days left", "crictl not found")
    assert "renewing, fewer than 30 days left" in journal, journal
    # No crictl on this host: the renewal stands, and the journal says what is left to do.
    assert "crictl not found" in journal, journal
    assert node.fingerprints() != before
    assert node.days_left() == {364}
    assert node.run("cmp", ADMIN, ROOT_KUBECONFIG).returncode == 0


def test_a_threshold_above_the_validity_renews_also_with_crictl_and_no_runtime(node: Node) -> None:
    subprocess.run(["docker", "cp", str(crictl_binary()), f"{node.container}:/usr/local/bin/crictl"], check=True)
    before = node.fingerprints()
    renewal = node.run(SCRIPT, "400")  # by hand, the threshold as argument
    assert renewal.returncode == 0, renewal.stdout + renewal.stderr
    assert "renewing, fewer than 400 days left" in renewal.stdout, renewal.stdout
    # crictl is there and no container runtime answers: the renewal stands, the warning says what is left to do.
    assert "no container runtime answers" in renewal.stderr, renewal.stderr
    assert node.fingerprints() != before
    assert node.days_left() == {364}


def test_disabling_the_renewal_removes_the_timer_the_service_and_the_script(node: Node) -> None:
    run = node.converge(kubeadm_certificates_renewal_enabled=False)
    assert run.returncode == 0, run.output
    assert node.run("systemctl", "cat", TIMER).returncode != 0
    assert node.run("systemctl", "cat", SERVICE).returncode != 0
    assert node.run("test", "-e", SCRIPT).returncode != 0
    assert node.run("test", "-e", LEASE_SCRIPT).returncode != 0
