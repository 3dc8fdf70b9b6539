"""The mosquitto role's handlers on a real systemd host: users reload the broker, mosquitto.conf restarts it.

One lab container (Debian 13, systemd as PID 1) is converged several times in a row, each run changing one thing;
the broker's main PID tells a reload (same process) from a restart (a new one), and paho-mqtt clients on this
machine log in over the container's address to check that the change took effect.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, container_address, run_playbook, write_inventory

PORT = 1883
BASE: dict[str, Any] = {
    "mosquitto_users": [
        {"name": "alice", "password": "alice-first-password-1"},
        {"name": "telegraf", "password": "telegraf-password-2", "topics": [{"topic": "sensors/#", "access": "read"}]},
    ],
}
PLAYBOOK = [{"name": "Converge the broker", "hosts": "all", "gather_facts": True, "roles": [{"role": "mosquitto"}]}]


@dataclass
class Lab:
    container: str
    address: str
    directory: Path

    def converge(self, variables: dict[str, Any], playbook: str = "play.yml") -> PlaybookRun:
        (self.directory / "vars.json").write_text(json.dumps(variables))
        variables_file = f"@{self.directory / 'vars.json'}"
        return run_playbook(str(self.directory / playbook), self.directory / "hosts.yml", "-e", variables_file)

    def main_pid(self) -> str:
        show = ["docker", "exec", self.container, "systemctl", "show", "--property=MainPID", "--value", "mosquitto"]
        return subprocess.run(show, capture_output=True, text=True, check=True).stdout.strip()

    def logs_in(self, user: str, password: str) -> bool:
        """Whether the broker accepts ``user`` with ``password`` (the CONNACK, over the container's address)."""
        answered = threading.Event()
        accepted: list[bool] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"mosquitto-role-test-{user}")
        client.username_pw_set(user, password)

        def on_connect(_client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
            accepted.append(not reason.is_failure)
            answered.set()

        client.on_connect = on_connect
        client.on_disconnect = lambda *_: answered.set()
        try:
            client.connect(self.address, PORT, keepalive=10)
        except OSError:
            return False
        client.loop_start()
        try:
            assert answered.wait(10), "the broker did not answer"
        finally:
            client.disconnect()
            client.loop_stop()
        return accepted == [True]


def broker_lab(lab_host_factory: Any, directory: Path, name: str) -> Lab:
    """A fresh Debian 13 lab container (sensorstack-test-<name>), inventory host ``broker``, to converge the role on."""
    container = lab_host_factory(name, "debian13")
    write_inventory(
        directory,
        {
            "all": {
                "vars": {
                    "ansible_connection": LAB_CONNECTION,
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": {"sensorstack": {"hosts": {"broker": {"ansible_host": container}}}},
            }
        },
    )
    (directory / "play.yml").write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    return Lab(container, container_address(container), directory)


@pytest.fixture(scope="module")
def lab(lab_host_factory, tmp_path_factory) -> Lab:
    return broker_lab(lab_host_factory, tmp_path_factory.mktemp("mosquitto-role"), "mosquitto-role")


@pytest.fixture
def converged(lab: Lab) -> Lab:
    """The lab converged with the base declaration, whatever the previous test changed."""
    run = lab.converge(BASE)
    assert run.returncode == 0, run.output
    return lab


def handlers(run: PlaybookRun) -> set[str]:
    names = ("Restart the broker", "Reload the broker")
    return {name for name in names if f"RUNNING HANDLER [mosquitto : {name}]" in run.output}


def test_the_declared_users_log_in_and_a_rerun_changes_nothing(converged: Lab) -> None:
    assert converged.logs_in("alice", "alice-first-password-1")
    assert not converged.logs_in("alice", "wrong-password")
    assert not converged.logs_in("mallory", "alice-first-password-1")
    again = converged.converge(BASE)
    assert again.returncode == 0, again.output
    assert again.recap()["broker"]["changed"] == 0, again.output
    assert handlers(again) == set()


def test_a_password_change_reloads_the_same_broker_process(converged: Lab) -> None:
    pid = converged.main_pid()
    users = [{"name": "alice", "password": "alice-second-password-3"}, BASE["mosquitto_users"][1]]
    run = converged.converge(BASE | {"mosquitto_users": users})
    assert run.returncode == 0, run.output
    assert handlers(run) == {"Reload the broker"}
    assert converged.main_pid() == pid
    assert converged.logs_in("alice", "alice-second-password-3")
    assert not converged.logs_in("alice", "alice-first-password-1")


def test_a_removed_user_is_refused_after_the_reload(converged: Lab) -> None:
    pid = converged.main_pid()
    run = converged.converge(BASE | {"mosquitto_users": BASE["mosquitto_users"][1:]})
    assert run.returncode == 0, run.output
    assert handlers(run) == {"Reload the broker"}
    assert converged.main_pid() == pid
    assert not converged.logs_in("alice", "alice-first-password-1")
    assert converged.logs_in("telegraf", "telegraf-password-2")


def test_a_configuration_change_restarts_the_broker(converged: Lab) -> None:
    pid = converged.main_pid()
    run = converged.converge(BASE | {"mosquitto_connection_messages": False})
    assert run.returncode == 0, run.output
    assert handlers(run) == {"Restart the broker"}
    assert converged.main_pid() not in (pid, "0")
    assert converged.logs_in("telegraf", "telegraf-password-2")


def test_a_configuration_the_broker_rejects_fails_the_run(converged: Lab) -> None:
    broken = converged.converge(BASE | {"mosquitto_config_extra": ["no_such_option true"]})
    assert broken.returncode != 0
    assert "RUNNING HANDLER [mosquitto : Restart the broker]" in broken.output
    assert "Unable to restart service mosquitto" in broken.output, broken.output


# --- Refusals before any change (on the controller: these runs stop before the role touches a host) -------------


def run_role_locally(tmp_path: Path, variables: dict[str, Any]) -> PlaybookRun:
    play = [PLAYBOOK[0] | {"hosts": "localhost", "connection": "local", "gather_facts": False}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    return run_playbook(str(tmp_path / "play.yml"), tmp_path / "hosts.yml", "-e", f"@{tmp_path / 'vars.json'}")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"mosquitto_platform": "nomad"}, "mosquitto_platform must be one of: systemd, kubernetes, got: nomad"),
        (
            {"mosquitto_platform": "kubernetes", "mosquitto_password_file": "/var/lib/mosquitto/passwd"},
            "/var/lib/mosquitto/passwd must lie under it",
        ),
        ({"mosquitto_listeners": [{"port": 8883, "tls": True}]}, "the TLS listener on port 8883 needs certfile"),
        (
            {"mosquitto_listeners": [{"port": 1883}, {"port": 1883, "address": "::"}]},
            "port 1883 is used by more than one listener",
        ),
        ({"mosquitto_listeners": [{"port": "mqtt"}]}, "mosquitto_listeners"),
        ({"mosquitto_acl_patterns": [{"topic": "sensors/%u/#", "access": "all"}]}, "mosquitto_acl_patterns"),
        (
            {"mosquitto_bridges": [{"name": "central", "addresses": ["10.0.0.1"], "topics": [{"pattern": "a b"}]}]},
            "mosquitto_bridges[central]: a topic pattern must be one word without spaces",
        ),
        (
            {"mosquitto_bridges": [{"name": "central", "addresses": ["10.0.0.1"], "topics": [{"pattern": "#"}]}]}
            | {"mosquitto_bridge_dir": "/etc/mosquitto"},
            "mosquitto_bridge_dir (/etc/mosquitto) must be a folder of its own",
        ),
        (
            {"mosquitto_platform": "kubernetes", "mosquitto_kubernetes_node_ports": {1883: 1883}},
            "mosquitto_kubernetes_node_ports[1883] (1883) must be a node port from 30000 to 32767",
        ),
        (
            {"mosquitto_platform": "kubernetes", "mosquitto_config_extra": ["remote_password hunter2-in-the-clear"]},
            "mosquitto_config_extra: on Kubernetes mosquitto.conf is the ConfigMap mosquitto-config",
        ),
    ],
    ids=[
        "unknown platform",
        "password file outside the Secret",
        "TLS without certificate",
        "shared port",
        "port not a number",
        "unknown access",
        "bridge topic with a space",
        "bridge folder holding the configuration",
        "node port out of range",
        "bridge password bound for a ConfigMap",
    ],
)
def test_the_role_refuses_what_it_cannot_do_with_a_message_naming_it(
    tmp_path: Path, variables: dict[str, Any], message: str
) -> None:
    run = run_role_locally(tmp_path, variables)
    assert run.returncode != 0
    assert message in run.output, run.output
    assert "Ensure the broker package is installed" not in run.output
    assert "hunter2" not in run.output, "a refusal repeats no credential"


def test_a_new_user_logs_in_although_a_later_task_fails_the_host(converged: Lab) -> None:
    """The role applies its change itself: a failure later in the play (another role's) would drop a handler that
    waited for the play's end, and the next run, finding the password file in place, would notify none."""
    variables = {"mosquitto_users": [*BASE["mosquitto_users"], {"name": "sensor-042", "password": "sensor-042-pw"}]}
    failing = [{**PLAYBOOK[0], "tasks": [{"name": "Fail as a later role may", "ansible.builtin.fail": {"msg": "x"}}]}]
    (converged.directory / "failing.yml").write_text(yaml.safe_dump(failing, sort_keys=False))
    run = converged.converge(variables, playbook="failing.yml")
    assert run.returncode != 0, run.output
    assert converged.logs_in("sensor-042", "sensor-042-pw"), run.output
