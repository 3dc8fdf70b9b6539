"""What the mosquitto role leaves on a host, checked from the host itself with the MQTT command-line clients.

Expected values come from the scenario's variables (vars/scenario.yml) and the role's files, so the tests follow
the role's documented behaviour. Clients read their credentials from the options files prepare.yml wrote (found
through XDG_CONFIG_HOME): no password is ever in a command line. The same file is run against an unconverged host by
tests/integration/test_mosquitto_verifier.py, where every test must fail.
"""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles/mosquitto"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
OS_VARS = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "vars/scenario.yml").read_text())

BROKER_USER = OS_VARS["mosquitto_os_user"]
CONFIG_DIR = DEFAULTS["mosquitto_config_dir"]
PASSWORD_FILE = f"{CONFIG_DIR}/passwd"
ACL_FILE = f"{CONFIG_DIR}/acl"
TLS_DIR = f"{CONFIG_DIR}/tls"
PLAIN_PORT = next(listener["port"] for listener in SCENARIO["mosquitto_listeners"] if not listener.get("tls"))
TLS_PORT = next(listener["port"] for listener in SCENARIO["mosquitto_listeners"] if listener.get("tls"))
CLIENTS = SCENARIO["mosquitto_test_clients_dir"]
USERS = {user["name"]: user for user in SCENARIO["mosquitto_users"]}
PRESENT = {name for name, user in USERS.items() if user.get("state", "present") == "present"}


def client(name: str, *arguments: str, port: int = PLAIN_PORT, server: str = "127.0.0.1") -> str:
    """A client command line whose credentials come from the options files of test client ``name``."""
    words = ["env", f"XDG_CONFIG_HOME={CLIENTS}/{name}", *arguments, "-h", server, "-p", str(port)]
    return shlex.join(words)


def exchange(host, subscriber: str, topic_filter: str, publications: list[tuple[str, str]], count: int = 1):
    """Subscribe as ``subscriber``, publish as device-001, and return what the subscriber printed (topic payload)."""
    subscribe = client(subscriber, "mosquitto_sub", "-q", "1", "-v", "-t", topic_filter, "-C", str(count), "-W", "15")
    publish = [
        client("device-001", "mosquitto_pub", "-q", "1", "-t", topic, "-m", payload) for topic, payload in publications
    ]
    script = f"""
out=$(mktemp)
{subscribe} >"$out" &
subscriber=$!
sleep 1
{" && ".join(publish)}
wait "$subscriber"; status=$?
cat "$out"; rm -f "$out"
exit "$status"
"""
    return host.run("sh -c %s", script)


def test_the_broker_runs_and_starts_at_boot(host) -> None:
    service = host.service(OS_VARS["mosquitto_os_service"])
    assert service.is_running
    assert service.is_enabled


def test_the_broker_listens_on_every_declared_port(host) -> None:
    for listener in SCENARIO["mosquitto_listeners"]:
        assert host.socket(f"tcp://0.0.0.0:{listener['port']}").is_listening, listener


def test_the_files_the_broker_reads_are_private_to_it(host) -> None:
    for path in [PASSWORD_FILE, ACL_FILE, f"{TLS_DIR}/server.key", f"{TLS_DIR}/server.crt", f"{TLS_DIR}/ca.crt"]:
        private = host.file(path)
        assert private.exists, path
        assert (private.user, private.group, private.mode) == (BROKER_USER, BROKER_USER, 0o600), path
    config = host.file(f"{CONFIG_DIR}/mosquitto.conf")
    assert (config.user, config.group, config.mode) == ("root", BROKER_USER, 0o640)


def test_the_password_file_holds_hashes_of_the_declared_users_only(host) -> None:
    content = host.file(PASSWORD_FILE).content_string
    names = [line.split(":", 1)[0] for line in content.splitlines() if line and not line.startswith("#")]
    assert set(names) == PRESENT
    for line in content.splitlines():
        assert re.fullmatch(r"[^:]+:\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}", line), "not a $7$ entry"
    for user in USERS.values():
        assert user.get("password", "\0") not in content


def test_an_anonymous_client_is_refused(host) -> None:
    anonymous = host.run(
        "env XDG_CONFIG_HOME=/nonexistent mosquitto_pub -h 127.0.0.1 -p %s -t sensors/anonymous/x -m 1", str(PLAIN_PORT)
    )
    assert anonymous.rc != 0
    assert "not authorised" in anonymous.stderr


def test_a_wrong_password_is_refused(host) -> None:
    impostor = host.run(client("impostor", "mosquitto_pub", "-t", "sensors/device-001/x", "-m", "1"))
    assert impostor.rc != 0
    assert "not authorised" in impostor.stderr


def test_a_device_publishes_and_telegraf_reads_it(host) -> None:
    received = exchange(host, "telegraf", "sensors/#", [("sensors/device-001/temperature", "21.5")])
    assert received.rc == 0, received.stderr
    assert received.stdout.splitlines() == ["sensors/device-001/temperature 21.5"]


def test_a_device_reads_its_own_topics(host) -> None:
    received = exchange(host, "device-001", "sensors/device-001/#", [("sensors/device-001/setpoint", "19")])
    assert received.rc == 0, received.stderr
    assert received.stdout.splitlines() == ["sensors/device-001/setpoint 19"]


def test_the_acl_keeps_a_device_out_of_other_devices_topics(host) -> None:
    # Messages from one publisher arrive in order: the sentinel coming first means the forged reading was dropped.
    publications = [("sensors/device-002/temperature", "99"), ("elsewhere/temperature", "98")]
    received = exchange(host, "telegraf", "#", [*publications, ("sensors/device-001/sentinel", "ok")])
    assert received.rc == 0, received.stderr
    assert received.stdout.splitlines() == ["sensors/device-001/sentinel ok"]


def test_the_tls_listener_proves_itself_with_the_test_ca(host) -> None:
    ca_file = SCENARIO["mosquitto_test_ca_file"]
    trusted = host.run(
        client(
            "device-001",
            "mosquitto_pub",
            "--cafile",
            ca_file,
            "-t",
            "sensors/device-001/tls",
            "-m",
            "1",
            port=TLS_PORT,
            server="localhost",
        )
    )
    assert trusted.rc == 0, trusted.stderr
    untrusted = host.run(
        client(
            "device-001",
            "mosquitto_pub",
            "--cafile",
            "/etc/ssl/certs/ca-certificates.crt",
            "-t",
            "sensors/device-001/tls",
            "-m",
            "1",
            port=TLS_PORT,
            server="localhost",
        )
    )
    assert untrusted.rc != 0


def test_retained_messages_survive_a_restart(host) -> None:
    topic, payload = "sensors/device-001/retained", uuid.uuid4().hex
    stored = host.run(client("device-001", "mosquitto_pub", "-q", "1", "-r", "-t", topic, "-m", payload))
    assert stored.rc == 0, stored.stderr
    host.run_expect([0], "systemctl restart %s", OS_VARS["mosquitto_os_service"])
    host.run_expect(
        [0], "timeout 30 bash -c %s", f"until (exec 3<>/dev/tcp/127.0.0.1/{PLAIN_PORT}) 2>/dev/null; do sleep 0.2; done"
    )
    received = host.run(client("telegraf", "mosquitto_sub", "-v", "-t", topic, "-C", "1", "-W", "10"))
    host.run(client("device-001", "mosquitto_pub", "-r", "-n", "-t", topic))
    assert received.stdout.splitlines() == [f"{topic} {payload}"], received.stderr


def test_the_broker_logs_no_errors_or_warnings_about_its_files(host) -> None:
    journal = host.run_expect([0], "journalctl --no-pager -o cat -u %s", OS_VARS["mosquitto_os_service"]).stdout
    assert "running" in journal, "the broker's log is not in the journal"
    problems = [line for line in journal.splitlines() if line.split(": ", 1)[-1].startswith(("Error", "Warning"))]
    assert problems == []
