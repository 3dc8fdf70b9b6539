"""The pipeline scenario's testinfra tests can fail: run against an edge host the roles never configured, they must.

Molecule proves the tests pass after a converge; this proves they are not vacuous. The host gets the scenario's own
prepare.yml and inventory (the test clients' credential files, curl, the reader's netrc) and Debian's broker,
clients and InfluxDB installed by hand with the packages' own configuration (anonymous and unknown MQTT clients
allowed, InfluxDB without authentication and without the telemetry database), which is what a forgotten run of the
mosquitto and influxdb roles leaves. Telegraf is not there: Debian does not ship it, so only the telegraf role would
have put it there. Every test must fail on that host, each for what the roles would have configured.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .ansible_module import ROOT
from .conftest import run_playbook, write_inventory
from .test_influxdb_verifier import WAIT_FOR_PING
from .verifier import docker_host_inventory, run_verifier

SCENARIO = ROOT / "molecule/pipeline"
VERIFIER = SCENARIO / "tests/test_pipeline.py"

EXPECTED_FAILURES = {
    "test_telegraf_runs_as_its_own_user_and_starts_at_boot",
    "test_secrets_are_only_in_the_environment_file_which_only_root_and_telegraf_read",
    "test_the_service_got_the_tricky_password_exactly",
    "test_telegraf_conf_wires_the_broker_to_the_declared_database_and_policy",
    "test_a_reading_arrives_in_the_declared_policy_with_site_and_device_tags",
    "test_a_message_from_an_unknown_user_never_arrives",
    "test_a_declared_user_cannot_write_into_another_site",
    "test_readings_published_while_telegraf_is_down_arrive_once_it_is_back",
    "test_restarting_influxdb_while_messages_flow_loses_none",
    "test_telegraf_reports_its_own_metrics_for_the_dashboard",
    # The packages' own configuration files are not what the roles render for the cluster.
    "test_the_same_values_give_the_cluster_byte_identical_configuration_files",
}
# Nothing passes without the roles: every test needs Telegraf, its files, the broker's users or the declared database.
EXPECTED_PASSES: set[str] = set()


def test_the_verifier_fails_on_an_edge_host_the_roles_did_not_configure(lab_host_factory, tmp_path: Path) -> None:
    container = lab_host_factory("verifier-pipeline-unconfigured", "debian13")
    subprocess.run(
        [
            "docker", "exec", container, "sh", "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq mosquitto mosquitto-clients influxdb",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    subprocess.run(["docker", "exec", container, "sh", "-c", WAIT_FOR_PING], check=True, capture_output=True)
    variables = yaml.safe_load((SCENARIO / "group_vars/all.yml").read_text())
    inventory = write_inventory(tmp_path, docker_host_inventory("edge-unconfigured", container, ("edge",), variables))
    prepare = run_playbook(str(SCENARIO / "prepare.yml"), inventory)
    assert prepare.returncode == 0, prepare.output
    passed, not_passed = run_verifier([VERIFIER], inventory, tmp_path)
    assert not_passed == EXPECTED_FAILURES
    assert passed == EXPECTED_PASSES
