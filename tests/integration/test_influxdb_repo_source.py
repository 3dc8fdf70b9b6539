"""The influxdb role with influxdb_install_source: repo on a fresh Debian 13 lab host: InfluxData's repository as the
role configures it (role influxdata_repo: the signing key pinned by fingerprint, the deb822 source), the package at
influxdb_repo_version held there, the service answering.

InfluxData's repository is out of reach here, so the test lays out and signs one like it, served on the lab
network's gateway only, holding Debian's own influxdb package re-versioned to the release the role pins
(versions.yml): the real influxd, unit and account, at a version only that repository has, so the install can only
have come from it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorstack.bundle.versions import load_versions

from .conftest import PlaybookRun, SignedRepository, run_in_container, run_role_on_lab_host, signed_repository

pytestmark = pytest.mark.lab

HOST = "influxdb-repo"
ADMIN_PASSWORD = "vaulted-admin-7d1e"
# Debian's influxdb package with the version InfluxData's repository gives the pinned release.
REPACKAGE = """set -eu
apt-get update -qq
cd /var/tmp && rm -rf influxdb-repack && mkdir influxdb-repack && cd influxdb-repack
apt-get download -qq influxdb
dpkg-deb -R influxdb_*.deb tree
sed -i "s/^Version: .*/Version: $1/" tree/DEBIAN/control
dpkg-deb -b tree "influxdb_$1_amd64.deb" >/dev/null
rm -rf /var/lib/apt/lists/*
"""


# The databases the admin sees, over the HTTP API on the host (the package has no CLI).
SHOW_DATABASES = """python3 - "$1" <<'PY'
import base64, json, sys, urllib.request
request = urllib.request.Request("http://127.0.0.1:8086/query?q=SHOW+DATABASES")
token = base64.b64encode(("admin:" + sys.argv[1]).encode()).decode()
request.add_header("Authorization", "Basic " + token)
answer = json.load(urllib.request.urlopen(request, timeout=10))
print(" ".join(row[0] for row in answer["results"][0]["series"][0]["values"]))
PY
"""


@pytest.fixture(scope="module")
def host(lab_host_factory: Any) -> str:
    return lab_host_factory(HOST, "debian13")


@pytest.fixture(scope="module")
def repository(host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedRepository]:
    work = tmp_path_factory.mktemp("influxdata-repository")
    version = f"{load_versions()['sensorstack_influxdb_version']}-1"
    run_in_container(host, REPACKAGE, version)
    (work / "debs").mkdir()
    package = work / "debs" / f"influxdb_{version}_amd64.deb"
    subprocess.run(["docker", "cp", f"{host}:/var/tmp/influxdb-repack/{package.name}", str(package)], check=True)
    run_in_container(host, "rm -rf /var/tmp/influxdb-repack")
    with signed_repository(work, [package], "1.11", version) as served:
        yield served


def apply_role(host: str, repository: SignedRepository, directory: Path) -> PlaybookRun:
    settings = {
        "influxdb_install_source": "repo",
        "influxdb_admin_password": ADMIN_PASSWORD,
        "influxdb_databases": [{"name": "telemetry"}],
        "influxdata_repo_url": repository.url,
        # A flat repository: the suite is its folder, without components.
        "influxdata_repo_suites": ["/"],
        "influxdata_repo_components": [],
        "influxdata_repo_key_url": repository.key_url,
        "influxdata_repo_key_fingerprint": repository.fingerprint,
    }
    return run_role_on_lab_host("sensorstack.iot.influxdb", HOST, host, directory, settings)


def test_influxdb_comes_from_influxdatas_repository_at_the_pinned_version_and_stays_there(
    host: str, repository: SignedRepository, tmp_path: Path
) -> None:
    run = apply_role(host, repository, tmp_path)
    assert run.returncode == 0, run.output
    assert run_in_container(host, "dpkg-query -W -f '${Version}' influxdb") == repository.version
    assert run_in_container(host, "apt-mark showhold") == "influxdb"
    policy = run_in_container(host, "apt-cache policy influxdb")
    assert f"*** {repository.version} " in policy and repository.url.rstrip("/") in policy, policy
    assert run_in_container(host, "systemctl is-active influxdb") == "active"
    databases = run_in_container(host, SHOW_DATABASES, ADMIN_PASSWORD)
    assert "telemetry" in databases.split(), databases

    again = apply_role(host, repository, tmp_path)
    assert again.returncode == 0, again.output
    assert again.recap()[HOST]["changed"] == 0, again.output
