"""The renewal script of role kubeadm_certificates takes the cluster's renewal Lease and asks etcd before it renews,
run by bash against doubles: kubeadm (its check-expiration listing, and a log of what it was asked), kubectl on the
Lease (lease_double.py) and the restart helper (its --etcd-whole answer).

The real script runs with the real kubeadm in tests/integration/test_kubeadm_certificates.py (no etcd, no kubectl
there) and on the cluster tier (tests/cluster/test_ha.py: postponed while a member's node is paused, and while
another node holds the Lease). Here: the branches close to expiry, which no lab can wait for, an expired Lease and
an API that does not answer.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("kubeadm_certificates")
TEMPLATE = (ROOT / "roles/kubeadm_certificates/templates/kubeadm-certificates-renew.sh.j2").read_text()
LEASE_TEMPLATE = (ROOT / "roles/kubeadm_certificates/templates/kubeadm-renewal-lease.sh.j2").read_text()
SCRIPT_TOOLS = ("date", "tr", "cmp", "install")
UNHEALTHY = "https://10.213.0.57:2379 is unhealthy: failed to commit proposal: context deadline exceeded"
LEASE_DOUBLE = Path(__file__).with_name("lease_double.py")
RESTARTS = "restart etcd kube-apiserver kube-controller-manager kube-scheduler"
# The Lease's duration the role renders: the restart timeout (300 s by default) for etcd's wait and twice for each
# component.
LEASE_SECONDS = 300 * 9


def held_by(holder: str, seconds_ago: int = 0) -> dict[str, Any]:
    renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return {
        "holder": holder,
        "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "duration": LEASE_SECONDS,
        "version": "7",
    }


def lease_state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "lease.json").read_text())


def node_doubles(folder: Path, log: Path, lease_state: dict[str, Any] | None) -> Path:
    """``folder/bin`` with the commands every script here calls: sleep (logged to ``log``, not slept), uname (node
    CP1) and kubectl on the Lease double in ``lease_state`` (None: no kubectl at all)."""
    doubles = folder / "bin"
    doubles.mkdir()
    if lease_state is not None:
        (folder / "lease.json").write_text(json.dumps(lease_state))
        (doubles / "kubectl").write_text(f'#!/bin/sh\nexec {sys.executable} {LEASE_DOUBLE} {folder} "$@"\n')
        (doubles / "kubectl").chmod(0o755)
    (doubles / "uname").write_text("#!/bin/sh\necho CP1\n")
    (doubles / "sleep").write_text(f'#!/bin/sh\necho "sleep $*" >> {log}\n')
    for double in (doubles / "uname", doubles / "sleep"):
        double.chmod(0o755)
    return doubles


def install_script(template: str, path: Path, doubles: Path, **settings: Any) -> None:
    """The role's script from ``template`` at ``path``, finding its commands in ``doubles`` only."""
    script = "\n".join(
        f"export PATH={doubles}" if line.startswith("export PATH=") else line
        for line in ROLE.render(template, ansible_managed="managed", **settings).splitlines()
    )
    path.write_text(script + "\n")
    path.chmod(0o755)


def renew(
    folder: Path,
    days_left: int,
    etcd_status: int = 0,
    lease: dict[str, Any] | None = None,
    restart_timeout: int = 300,
    **cluster: Any,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script on node cp1 with certificates that have ``days_left``, a restart helper answering
    ``etcd_status`` to --etcd-whole and the renewal Lease in state ``lease`` (``cluster``: more of lease_double.py's
    state; kubectl=False: no kubectl); return the run and what the doubles were asked."""
    log = folder / "log"
    with_kubectl = cluster.pop("kubectl", True)
    doubles = node_doubles(folder, log, {"api": True, "lease": lease} | cluster if with_kubectl else None)
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
    settings = {
        "kubeadm_certificates_restart_script": str(helper),
        "kubeadm_certificates_lease_script": str(folder / "kubeadm-renewal-lease"),
        "kubeadm_certificates_restart_timeout": restart_timeout,
        "kubeadm_certificates_admin_kubeconfig": str(folder / "admin.conf"),
        "kubeadm_certificates_root_kubeconfig_file": str(folder / "root.conf"),
    }
    for template, name in ((LEASE_TEMPLATE, "kubeadm-renewal-lease"), (TEMPLATE, "kubeadm-certificates-renew")):
        path = folder / name
        install_script(template, path, doubles, **settings)
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
    assert asked[-3:] == ["kubeadm certs renew all", RESTARTS, "delete lease of cp1"]


@pytest.mark.parametrize("etcd_status", [0, 3], ids=["every member healthy", "no etcd to ask"])
def test_with_etcd_whole_or_not_to_be_asked_the_renewal_goes_on(tmp_path: Path, etcd_status: int) -> None:
    result, asked = renew(tmp_path, days_left=200, etcd_status=etcd_status)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    assert asked[-3:] == ["kubeadm certs renew all", RESTARTS, "delete lease of cp1"]


def test_a_free_lease_is_held_for_the_renewal_and_released_after_it(tmp_path: Path) -> None:
    result, asked = renew(tmp_path, days_left=200)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    taken = asked.index(f"create lease for cp1 ({LEASE_SECONDS} s)")
    assert taken < asked.index("restart --etcd-whole") < asked.index("kubeadm certs renew all")
    assert asked[-2:] == [RESTARTS, "delete lease of cp1"]
    assert lease_state(tmp_path)["lease"] is None


def test_while_another_node_holds_the_lease_and_months_are_left_the_renewal_waits_for_a_later_run(
    tmp_path: Path,
) -> None:
    result, asked = renew(tmp_path, days_left=200, lease=held_by("cp2", seconds_ago=60))
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "renewal postponed: cp2 holds the Lease kube-system/sensorstack-certificate-renewal" in message
    assert "apiserver has 200 days left" in message
    assert not any(line.startswith(("kubeadm certs renew", "restart")) for line in asked), asked
    assert lease_state(tmp_path)["lease"]["holder"] == "cp2"


@pytest.mark.parametrize(
    "lease",
    [held_by("cp2", seconds_ago=LEASE_SECONDS + 60), held_by("cp1", seconds_ago=60)],
    ids=["expired, of another node", "this node's, from a run that died"],
)
def test_an_expired_lease_or_this_nodes_own_is_taken_over(tmp_path: Path, lease: dict[str, Any]) -> None:
    result, asked = renew(tmp_path, days_left=200, lease=lease)
    assert result.returncode == 0, result.stderr
    assert f"replace lease for cp1 ({LEASE_SECONDS} s)" in asked
    assert asked[-3:] == ["kubeadm certs renew all", RESTARTS, "delete lease of cp1"]


def test_close_to_expiry_the_renewal_waits_for_the_lease_and_then_renews(tmp_path: Path) -> None:
    result, asked = renew(tmp_path, days_left=5, lease=held_by("cp2"), released_after_gets=2)
    assert result.returncode == 0, result.stderr
    assert "waiting for cp2, which holds the Lease" in result.stdout
    assert asked.index("cp2 releases the lease") < asked.index(f"create lease for cp1 ({LEASE_SECONDS} s)")
    assert asked.count("sleep 10") == 2
    assert asked[-3:] == ["kubeadm certs renew all", RESTARTS, "delete lease of cp1"]


def test_close_to_expiry_a_lease_that_is_never_released_delays_the_renewal_by_its_duration_only(
    tmp_path: Path,
) -> None:
    # A restart timeout of 10 s: a Lease of 90 s, 9 waits of 10 s.
    result, asked = renew(tmp_path, days_left=5, lease=held_by("cp2"), restart_timeout=10)
    assert result.returncode == 0, result.stderr
    assert "WARNING: cp2 still holds the Lease kube-system/sensorstack-certificate-renewal after 90s" in (
        " ".join(result.stderr.split())
    )
    assert asked.count("sleep 10") == 9
    assert asked[-2:] == ["kubeadm certs renew all", RESTARTS]
    assert lease_state(tmp_path)["lease"]["holder"] == "cp2"


@pytest.mark.parametrize(
    ("cluster", "warning"),
    [
        ({"api": False}, "WARNING: no API server answers for the Lease"),
        ({"kubectl": False}, "WARNING: kubectl not found: renewing without the Lease"),
    ],
    ids=["no API server answers", "no kubectl"],
)
def test_without_an_api_to_hold_the_lease_the_renewal_goes_on_and_says_so(
    tmp_path: Path, cluster: dict[str, Any], warning: str
) -> None:
    result, asked = renew(tmp_path, days_left=200, **cluster)
    assert result.returncode == 0, result.stderr
    assert warning in result.stderr
    assert asked[-2:] == ["kubeadm certs renew all", RESTARTS]


def test_with_an_api_server_that_reaches_no_etcd_the_renewal_asks_its_readiness_and_goes_on_without_the_lease(
    tmp_path: Path,
) -> None:
    # Etcd without quorum: a write or read of the Lease would hang until kubectl's 20 s request timeout, twice.
    result, asked = renew(tmp_path, days_left=200, etcd=False)
    assert result.returncode == 0, result.stderr
    message = " ".join(result.stderr.split())
    assert "WARNING: no API server answers for the Lease kube-system/sensorstack-certificate-renewal, or none" in (
        message
    )
    asked_etcd = asked.index("get /readyz/etcd")
    assert asked[asked_etcd : asked_etcd + 5] == ["get /readyz/etcd", "sleep 1"] * 2 + ["get /readyz/etcd"]
    assert not any("waits for etcd" in line for line in asked), asked
    assert asked[-2:] == ["kubeadm certs renew all", RESTARTS]


def test_a_renewal_postponed_for_etcd_releases_the_lease(tmp_path: Path) -> None:
    result, asked = renew(tmp_path, days_left=200, etcd_status=1)
    assert result.returncode == 1
    assert asked[-1] == "delete lease of cp1"
    assert lease_state(tmp_path)["lease"] is None


def test_a_control_planes_upgrade_holding_the_lease_postpones_the_renewal_by_name(tmp_path: Path) -> None:
    # Role kubernetes_upgrade holds the Lease as "upgrade of NODE" around each control plane's kubeadm upgrade.
    result, asked = renew(tmp_path, days_left=200, lease=held_by("upgrade of cp2", seconds_ago=60))
    assert result.returncode == 1
    assert "renewal postponed: upgrade of cp2 holds the Lease" in " ".join(result.stderr.split())
    assert "kubeadm certs renew all" not in asked


def release(folder: Path, holder: str, **cluster: Any) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``kubeadm-renewal-lease release HOLDER`` alone against the Lease double in state ``cluster``."""
    log = folder / "log"
    doubles = node_doubles(folder, log, {"api": True, "lease": held_by(holder)} | cluster)
    path = folder / "kubeadm-renewal-lease"
    install_script(LEASE_TEMPLATE, path, doubles)
    result = subprocess.run([str(path), "release", holder], capture_output=True, text=True, check=False, env={})
    return result, log.read_text().splitlines() if log.exists() else []


def test_a_release_right_after_a_restart_of_the_api_server_waits_until_it_answers(tmp_path: Path) -> None:
    # kubeadm upgrade, and the new kubelet after it, restart the API server just before the upgrade releases.
    result, asked = release(tmp_path, "upgrade of cp1", api_refusals=3)
    assert result.returncode == 0, result.stderr
    assert asked == ["sleep 2"] * 3 + ["delete lease of upgrade of cp1"]
    assert lease_state(tmp_path)["lease"] is None


def test_a_release_with_no_api_server_for_a_minute_warns_that_the_lease_expires_on_its_own(tmp_path: Path) -> None:
    result, asked = release(tmp_path, "cp1", api=False)
    assert result.returncode == 0
    assert (
        f"could not release the Lease kube-system/sensorstack-certificate-renewal; it expires after {LEASE_SECONDS}s"
        in (result.stderr)
    )
    assert asked == ["sleep 2"] * 29


def test_a_release_leaves_another_holders_lease_alone(tmp_path: Path) -> None:
    result, asked = release(tmp_path, "cp1", lease=held_by("cp2"))
    assert result.returncode == 0, result.stderr
    assert asked == [] and lease_state(tmp_path)["lease"]["holder"] == "cp2"
