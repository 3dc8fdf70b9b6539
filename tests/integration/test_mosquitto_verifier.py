"""The mosquitto scenario's testinfra tests can fail: run against a broker the role never configured, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. The host gets Debian's broker
and clients installed by hand with the package's own configuration (anonymous clients allowed, loopback only, no
TLS, no ACL, logs in a file), which is what a forgotten role run leaves. The tests about the role's promises must
fail there; the few that any working broker passes are listed apart, so a change in either set is noticed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .ansible_module import ROOT
from .conftest import write_inventory
from .verifier import docker_host_inventory, run_verifier

VERIFIER = ROOT / "molecule/mosquitto/tests/test_mosquitto.py"

EXPECTED_FAILURES = {
    "test_the_broker_listens_on_every_declared_port",
    "test_the_files_the_broker_reads_are_private_to_it",
    "test_the_password_file_holds_hashes_of_the_declared_users_only",
    "test_an_anonymous_client_is_refused",
    "test_a_wrong_password_is_refused",
    "test_the_acl_keeps_a_device_out_of_other_devices_topics",
    "test_the_tls_listener_proves_itself_with_the_test_ca",
    "test_the_broker_logs_no_errors_or_warnings_about_its_files",
}
# What any running broker with Debian's defaults does too: not evidence of the role, but not wrong either.
EXPECTED_PASSES = {
    "test_the_broker_runs_and_starts_at_boot",
    "test_a_device_publishes_and_telegraf_reads_it",
    "test_a_device_reads_its_own_topics",
    "test_retained_messages_survive_a_restart",
}


def test_the_verifier_fails_on_a_broker_the_role_did_not_configure(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("mosquitto-unconfigured", "debian12")
    subprocess.run(
        [
            "docker", "exec", container, "sh", "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    inventory = write_inventory(tmp_path, docker_host_inventory("unconfigured", container))
    passed, not_passed = run_verifier([VERIFIER], inventory, tmp_path)
    assert not_passed == EXPECTED_FAILURES
    assert passed == EXPECTED_PASSES
