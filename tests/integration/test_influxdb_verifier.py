"""The influxdb scenario's testinfra tests can fail: run against a server the role never configured, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. The host gets Debian's InfluxDB
installed by hand with the package's own configuration (authentication off, the file readable by everyone, no
telemetry database, no retention policies, continuous queries or users), which is what a forgotten role run leaves:
a running server, so the tests about the role's promises fail for what the role would have done, not for a missing
daemon. The one test any such server passes is listed apart, so a change in either set is noticed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .ansible_module import ROOT
from .conftest import write_inventory
from .verifier import docker_host_inventory, run_verifier

VERIFIER = ROOT / "molecule/influxdb/tests/test_influxdb.py"

EXPECTED_FAILURES = {
    "test_the_configuration_is_private_and_has_auth_on",
    "test_anonymous_and_wrong_credentials_are_refused",
    "test_the_declared_retention_policies_exist",
    "test_the_declared_continuous_query_exists",
    "test_the_declared_users_log_in_with_their_grants",
}
# What Debian's package does by itself (HTTP on every interface, the RPC service on loopback, enabled for boot):
# not evidence of the role, but not wrong either.
EXPECTED_PASSES = {
    "test_the_service_runs_and_listens",
}

# The package starts influxd, which takes a moment to answer: wait for /ping so the listener test sees the server.
WAIT_FOR_PING = (
    "for attempt in $(seq 60); do "
    "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8086/ping\", timeout=2)' "
    "2>/dev/null && exit 0; sleep 1; done; exit 1"
)


def test_the_verifier_fails_on_a_server_the_role_did_not_configure(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("verifier-influxdb-unconfigured", "debian12")
    subprocess.run(
        [
            "docker", "exec", container, "sh", "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    subprocess.run(["docker", "exec", container, "sh", "-c", WAIT_FOR_PING], check=True, capture_output=True)
    inventory = write_inventory(tmp_path, docker_host_inventory("influxdb-unconfigured", container))
    passed, not_passed = run_verifier([VERIFIER], inventory, tmp_path)
    assert not_passed == EXPECTED_FAILURES
    assert passed == EXPECTED_PASSES
