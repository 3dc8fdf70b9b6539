"""The renewal script of role kubeadm_certificates asks etcd before it renews, run by bash against doubles: kubeadm
(its check-expiration listing, and a log of what it was asked) and the restart helper (its --etcd-whole answer).

The real script runs with the real kubeadm in tests/integration/test_kubeadm_certificates.py (no etcd there) and on
the cluster tier (tests/cluster/test_ha.py: postponed while a member's node is paused). Here: the branch close to
expiry, which no lab can wait for.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("kubeadm_certificates")
TEMPLATE = (ROOT / "roles/kubeadm_certificates/templates/kubeadm-certificates-renew.sh.j2").read_text()
SCRIPT_TOOLS = ("date", "tr", "cmp", "install")
UNHEALTHY = "https://10.213.0.57:2379 is unhealthy: failed to commit proposal: context deadline exceeded"


def renew(folder: Path, days_left: int, etcd_status: int) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with certificates that have ``days_left`` and a restart helper answering ``etcd_status`` to
    --etcd-whole; return the run and what the doubles were asked."""
    doubles = folder / "bin"
    doubles.mkdir()
    log = folder / "log"
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days_left, hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    (doubles / "kubeadm").write_text(
        f'#!/bin/sh\necho "kubeadm $*" >> {log}\n'
        f'[ "$2" = check-expiration ] && echo "apiserver false false {expires}"\nexit 0\n'
    )
    helper = folder / "kubeadm-restart-components"
    helper.write_text(
        f'#!/bin/sh\necho "restart $*" >> {log}\n'
        f'[ "$1" = --etcd-whole ] && [ {etcd_status} = 1 ] && echo "{UNHEALTHY}"\n'
        f'[ "$1" = --etcd-whole ] && exit {etcd_status}\nexit 0\n'
    )
    for double in (doubles / "kubeadm", helper):
        double.chmod(0o755)
    for tool in SCRIPT_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (doubles / tool).symlink_to(found)
    script = ROLE.render(
        TEMPLATE,
        ansible_managed="managed",
        kubeadm_certificates_restart_script=str(helper),
        kubeadm_certificates_admin_kubeconfig=str(folder / "admin.conf"),
        kubeadm_certificates_root_kubeconfig_file=str(folder / "root.conf"),
    )
    script = "\n".join(
        f"export PATH={doubles}" if line.startswith("export PATH=") else line for line in script.splitlines()
    )
    path = folder / "kubeadm-certificates-renew"
    path.write_text(script + "\n")
    path.chmod(0o755)
    result = subprocess.run(
        [str(path), "400"], capture_output=True, text=True, check=False, env={"HOME": os.environ["HOME"]}
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_with_a_member_down_and_months_left_the_renewal_waits_for_a_later_run(tmp_path: Path) -> None:
    result, asked = renew(tmp_path, days_left=200, etcd_status=1)
    assert result.returncode == 1
    assert "renewal postponed: etcd has a member that is not healthy" in result.stderr
    assert UNHEALTHY in result.stderr and "apiserver has 200 days left" in result.stderr
    assert "kubeadm certs renew all" not in asked
    assert not any(line.startswith("restart etcd") for line in asked)


def test_with_a_member_down_and_days_left_the_renewal_goes_on(tmp_path: Path) -> None:
    result, asked = renew(tmp_path, days_left=5, etcd_status=1)
    assert result.returncode == 0, result.stderr
    assert "WARNING: etcd has a member that is not healthy, but apiserver has 5 days left" in result.stderr
    assert asked[-2:] == [
        "kubeadm certs renew all",
        "restart etcd kube-apiserver kube-controller-manager kube-scheduler",
    ]


@pytest.mark.parametrize("etcd_status", [0, 3], ids=["every member healthy", "no etcd to ask"])
def test_with_etcd_whole_or_not_to_be_asked_the_renewal_goes_on(tmp_path: Path, etcd_status: int) -> None:
    result, asked = renew(tmp_path, days_left=200, etcd_status=etcd_status)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    assert asked[-2:] == [
        "kubeadm certs renew all",
        "restart etcd kube-apiserver kube-controller-manager kube-scheduler",
    ]
