"""The mosquitto role's configuration and the mosquitto_user module, against a real Mosquitto broker.

Every broker here is Debian's ``mosquitto`` (2.0.11 on Debian 12), started by the test on free loopback ports with a
mosquitto.conf and an ACL file rendered by the role itself (``tasks/render.yml``) and a password file written by the
``sensorstack.iot.mosquitto_user`` module. Clients are paho-mqtt. The TLS listeners use a CA, server and client
certificates made here with openssl. Run as root, the broker drops to its own account as it does in production, so
its files belong to that account, as the role makes them.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.tiers import needs

from .ansible_module import ROOT, ansible_environment, free_port, run_module
from .certificates import SERVER_EXTENSIONS, issue, make_ca

MOSQUITTO = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
BROKER_ACCOUNT = "mosquitto"
AS_ROOT = os.geteuid() == 0

pytestmark = needs(MOSQUITTO is None, "needs Debian's mosquitto package (apt-get install mosquitto)")

PASSWORDS = {"alice": "alice-correct-horse-1", "bob": "bob-battery-staple-2", "telegraf": "telegraf-reads-all-3"}
# The role's ACL model: telegraf reads every reading; every other user falls under the role's default pattern,
# readwrite on sensors/<its own name>/#.
ROLE_USERS = [
    {"name": "alice", "password": PASSWORDS["alice"]},
    {"name": "bob", "password": PASSWORDS["bob"]},
    {"name": "telegraf", "password": PASSWORDS["telegraf"], "topics": [{"topic": "sensors/#", "access": "read"}]},
]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def broker_file_ownership() -> dict[str, str]:
    return {"owner": BROKER_ACCOUNT, "group": BROKER_ACCOUNT} if AS_ROOT else {}


# --- Certificates -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path


# --- Broker -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerConfig:
    directory: Path
    config: Path
    password_file: Path
    plain_port: int
    tls_port: int
    client_cert_port: int
    pki: Pki

    @property
    def ports(self) -> list[int]:
        return [self.plain_port, self.tls_port, self.client_cert_port]


@dataclass
class Broker:
    settings: BrokerConfig
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def reload(self) -> None:
        """SIGHUP, as systemctl reload sends it, then wait until the broker says it read its files again."""
        before = self.log_text().count("Reloading config")
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count("Reloading config") > before, "the broker to reload")

    def assert_never_restarted(self, pid: int) -> None:
        assert self.process.poll() is None, self.log_text()
        assert self.process.pid == pid
        assert self.log_text().count("starting") == 1, self.log_text()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mosquitto-test-"))
    # The broker's account must reach its files; nobody may list the directory.
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(workdir: Path) -> Pki:
    tls = workdir / "tls"
    tls.mkdir(mode=0o711)
    ca = make_ca(tls, "ca")
    server = issue(tls, "server", ca, SERVER_EXTENSIONS)
    client = issue(tls, "alice", ca, "extendedKeyUsage=clientAuth\n")
    _, rogue = make_ca(tls, "rogue")
    if AS_ROOT:
        # Mosquitto 2.0 loads TLS keys after dropping to its account: as the role does, give them to it.
        account = pwd.getpwnam(BROKER_ACCOUNT)
        for path in tls.iterdir():
            os.chown(path, account.pw_uid, account.pw_gid)
            path.chmod(0o600)
    return Pki(
        ca=ca[1],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        rogue_ca=rogue,
    )


RENDER_PLAYBOOK = [
    {
        "name": "Render the mosquitto role's configuration for a test broker",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            {"name": "Render the files", "ansible.builtin.include_role": {"name": "mosquitto", "tasks_from": "render"}},
            {
                "name": "Write mosquitto.conf",
                "ansible.builtin.copy": {
                    "content": "{{ mosquitto_rendered_config }}",
                    "dest": "{{ mosquitto_config_file }}",
                    "mode": "0644",
                },
            },
            {
                "name": "Write the ACL file",
                "ansible.builtin.copy": {
                    "content": "{{ mosquitto_rendered_acl }}",
                    "dest": "{{ mosquitto_acl_file }}",
                    "mode": "0600",
                    "owner": "{{ test_owner | default(omit) }}",
                    "group": "{{ test_owner | default(omit) }}",
                },
            },
        ],
    }
]


@pytest.fixture(scope="module")
def broker_config(workdir: Path, pki: Pki) -> BrokerConfig:
    """A plain listener, a TLS listener and a TLS listener that requires client certificates, all from the role."""
    settings = BrokerConfig(
        directory=workdir,
        config=workdir / "mosquitto.conf",
        password_file=workdir / "passwd",
        plain_port=free_port(),
        tls_port=free_port(),
        client_cert_port=free_port(),
        pki=pki,
    )
    tls = {"tls": True, "certfile": str(pki.server_cert), "keyfile": str(pki.server_key), "cafile": str(pki.ca)}
    variables: dict[str, Any] = {
        "mosquitto_config_file": str(settings.config),
        "mosquitto_password_file": str(settings.password_file),
        "mosquitto_acl_file": str(workdir / "acl"),
        "mosquitto_persistence": False,
        "mosquitto_listeners": [
            {"port": settings.plain_port, "address": "127.0.0.1"},
            {"port": settings.tls_port, "address": "127.0.0.1", **tls},
            {"port": settings.client_cert_port, "address": "127.0.0.1", "require_certificate": True, **tls},
        ],
        "mosquitto_users": ROLE_USERS,
    }
    if AS_ROOT:
        variables["test_owner"] = BROKER_ACCOUNT
    (workdir / "render-vars.json").write_text(json.dumps(variables))
    (workdir / "render.yml").write_text(yaml.safe_dump(RENDER_PLAYBOOK, sort_keys=False))
    rendered = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(workdir / "render.yml"), "-e", f"@{workdir / 'render-vars.json'}"],
        cwd=ROOT,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    return settings


@contextmanager
def running_broker(settings: BrokerConfig) -> Iterator[Broker]:
    assert MOSQUITTO is not None
    log = settings.directory / f"broker-{uuid.uuid4().hex[:8]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([MOSQUITTO, "-c", str(settings.config)], stdout=sink, stderr=subprocess.STDOUT)
    broker = Broker(settings, process, log)
    try:
        wait_until(
            lambda: process.poll() is not None or all(port_answers(port) for port in settings.ports),
            "the broker's listeners",
        )
        assert process.poll() is None, f"the broker exited with {process.returncode}:\n{broker.log_text()}"
        yield broker
    finally:
        process.terminate()
        process.wait(timeout=10)


def write_users(settings: BrokerConfig, passwords: dict[str, str], **options: Any) -> dict[str, Any]:
    """Converge the broker's password file to exactly ``passwords`` with the module, as the role does."""
    users = [{"name": name, "password": password} for name, password in passwords.items()]
    arguments = {"path": str(settings.password_file), "users": users, "exclusive": True, "mode": "0600"}
    result = run_module("sensorstack.iot.mosquitto_user", arguments | broker_file_ownership() | options)
    assert not result.get("failed"), result
    return result


@pytest.fixture
def broker(broker_config: BrokerConfig) -> Iterator[Broker]:
    write_users(broker_config, PASSWORDS)
    with running_broker(broker_config) as running:
        yield running


# --- MQTT client --------------------------------------------------------------------------------------------


@dataclass
class Client:
    """A paho-mqtt client that records what the broker answered and what it delivered."""

    username: str | None = None
    password: str | None = None
    ca: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    reason: ReasonCode | None = None
    error: Exception | None = None
    messages: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)
    _answered: threading.Event = field(default_factory=threading.Event)
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"mosquitto-test-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        if self.username is not None:
            self.paho.username_pw_set(self.username, self.password)
        if self.ca is not None:
            certfile = str(self.certfile) if self.certfile else None
            keyfile = str(self.keyfile) if self.keyfile else None
            self.paho.tls_set(ca_certs=str(self.ca), certfile=certfile, keyfile=keyfile)
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = lambda *_: self._answered.set()
        self.paho.on_subscribe = lambda *_: self._subscribed.set()
        self.paho.on_message = lambda _client, _userdata, message: self.messages.put(
            (message.topic, message.payload.decode())
        )

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any) -> None:
        self.reason = reason
        self._answered.set()

    def connect(self, port: int) -> ReasonCode | None:
        """The broker's CONNACK, or None when the connection ended first (``error`` says why, if it raised)."""
        try:
            self.paho.connect("127.0.0.1", port, keepalive=30)
        except (ssl.SSLError, OSError) as error:
            self.error = error
            return None
        self.paho.loop_start()
        assert self._answered.wait(10), "the broker neither answered nor closed the connection"
        return self.reason

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.paho.subscribe(topic, qos=1)
        assert self._subscribed.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: str) -> None:
        self.paho.publish(topic, payload, qos=1).wait_for_publish(10)

    def received_until(self, topic: str, timeout: float = 10.0) -> list[tuple[str, str]]:
        """Everything delivered up to and including the first message on ``topic``."""
        received: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while not received or received[-1][0] != topic:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"nothing on {topic} after {timeout}s; got {received}"
            try:
                received.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                continue
        return received

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@contextmanager
def session(port: int, username: str | None = None, password: str | None = None, **tls: Path) -> Iterator[Client]:
    client = Client(username, password, **tls)
    try:
        client.connect(port)
        yield client
    finally:
        client.close()


def refusal(port: int, username: str | None = None, password: str | None = None, **tls: Path) -> Client:
    with session(port, username, password, **tls) as client:
        return client


def login(port: int, user: str, **tls: Path) -> Client:
    return refusal(port, user, PASSWORDS[user], **tls)


def assert_not_authorised(client: Client) -> None:
    assert client.reason is not None, client.error
    assert client.reason.is_failure
    assert client.reason.getName() == "Not authorized"


# --- Authentication -----------------------------------------------------------------------------------------


def test_the_right_password_connects_and_publishes(broker: Broker) -> None:
    port = broker.settings.plain_port
    with (
        session(port, "telegraf", PASSWORDS["telegraf"]) as reader,
        session(port, "alice", PASSWORDS["alice"]) as alice,
    ):
        assert reader.accepted
        assert alice.accepted
        reader.subscribe("sensors/#")
        alice.publish("sensors/alice/temperature", "21.5")
        assert reader.received_until("sensors/alice/temperature") == [("sensors/alice/temperature", "21.5")]


def test_a_wrong_password_is_refused(broker: Broker) -> None:
    assert_not_authorised(refusal(broker.settings.plain_port, "alice", PASSWORDS["bob"]))


def test_an_unknown_user_is_refused(broker: Broker) -> None:
    assert_not_authorised(refusal(broker.settings.plain_port, "mallory", PASSWORDS["alice"]))


def test_an_anonymous_client_is_refused(broker: Broker) -> None:
    assert_not_authorised(refusal(broker.settings.plain_port))


# --- Access control -----------------------------------------------------------------------------------------


def test_the_acl_confines_a_device_to_its_own_topics(broker: Broker) -> None:
    port = broker.settings.plain_port
    with (
        session(port, "telegraf", PASSWORDS["telegraf"]) as reader,
        session(port, "alice", PASSWORDS["alice"]) as alice,
    ):
        reader.subscribe("#")
        alice.publish("sensors/bob/temperature", "forged")
        alice.publish("actuators/valve", "open")
        alice.publish("sensors/alice/sentinel", "last")
        # One publisher's messages arrive in order: the sentinel first means the other two were dropped.
        assert reader.received_until("sensors/alice/sentinel") == [("sensors/alice/sentinel", "last")]


def test_a_device_reads_its_own_topics_but_not_another_devices(broker: Broker) -> None:
    port = broker.settings.plain_port
    with session(port, "alice", PASSWORDS["alice"]) as alice, session(port, "bob", PASSWORDS["bob"]) as bob:
        alice.subscribe("sensors/bob/#")
        alice.subscribe("sensors/alice/#")
        bob.publish("sensors/bob/humidity", "40")
        alice.publish("sensors/alice/sentinel", "mine")
        assert alice.received_until("sensors/alice/sentinel") == [("sensors/alice/sentinel", "mine")]


# --- Changes and reloads ------------------------------------------------------------------------------------


def test_a_password_change_takes_effect_on_reload_without_a_restart(broker: Broker) -> None:
    port, pid = broker.settings.plain_port, broker.process.pid
    new_password = "alice-rotated-password-4"
    with session(port, "telegraf", PASSWORDS["telegraf"]) as observer:
        result = write_users(broker.settings, PASSWORDS | {"alice": new_password})
        assert result["changed"]
        assert result["updated"] == ["alice"]
        assert result["added"] == result["removed"] == []
        assert login(port, "alice").accepted, "the broker should use its old users until it is reloaded"

        broker.reload()

        assert refusal(port, "alice", new_password).accepted
        assert_not_authorised(login(port, "alice"))
        broker.assert_never_restarted(pid)
        assert observer.paho.is_connected(), "a reload must keep the clients that are still allowed"


def test_a_removed_user_is_refused_after_reload(broker: Broker) -> None:
    port = broker.settings.plain_port
    result = write_users(broker.settings, {name: pw for name, pw in PASSWORDS.items() if name != "bob"})
    assert result["changed"]
    assert result["removed"] == ["bob"]
    broker.reload()
    assert_not_authorised(login(port, "bob"))
    assert login(port, "alice").accepted


def test_an_unchanged_declaration_reports_no_change_and_keeps_the_file(broker: Broker) -> None:
    before = broker.settings.password_file.read_bytes()
    result = write_users(broker.settings, PASSWORDS)
    assert not result["changed"]
    assert broker.settings.password_file.read_bytes() == before


def test_a_file_written_by_mosquitto_passwd_is_left_alone_and_still_accepted(broker_config: BrokerConfig) -> None:
    """mosquitto_passwd hashes a plain-text file in place (-U), so no password is in its command line either."""
    broker_config.password_file.write_text("".join(f"{name}:{password}\n" for name, password in PASSWORDS.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(broker_config.password_file)], check=True)
    if AS_ROOT:
        account = pwd.getpwnam(BROKER_ACCOUNT)
        os.chown(broker_config.password_file, account.pw_uid, account.pw_gid)
    before = broker_config.password_file.read_bytes()
    result = write_users(broker_config, PASSWORDS)
    assert not result["changed"]
    assert broker_config.password_file.read_bytes() == before
    with running_broker(broker_config) as running:
        assert login(running.settings.plain_port, "alice").accepted


# --- TLS ----------------------------------------------------------------------------------------------------


def test_the_tls_listener_is_verified_by_a_client_trusting_the_test_ca(broker: Broker) -> None:
    pki, port = broker.settings.pki, broker.settings.tls_port
    with session(port, "telegraf", PASSWORDS["telegraf"], ca=pki.ca) as reader:
        assert reader.accepted
        reader.subscribe("sensors/#")
        with session(port, "alice", PASSWORDS["alice"], ca=pki.ca) as alice:
            assert alice.accepted
            alice.publish("sensors/alice/tls", "sealed")
        assert reader.received_until("sensors/alice/tls") == [("sensors/alice/tls", "sealed")]


def test_the_tls_listener_is_rejected_by_a_client_trusting_another_ca(broker: Broker) -> None:
    client = login(broker.settings.tls_port, "alice", ca=broker.settings.pki.rogue_ca)
    assert client.reason is None
    assert isinstance(client.error, ssl.SSLCertVerificationError)


def test_the_tls_listener_still_asks_for_a_password(broker: Broker) -> None:
    assert_not_authorised(refusal(broker.settings.tls_port, ca=broker.settings.pki.ca))


def test_a_listener_requiring_client_certificates_accepts_only_clients_with_one(broker: Broker) -> None:
    pki, port = broker.settings.pki, broker.settings.client_cert_port
    without = login(port, "alice", ca=pki.ca)
    assert not without.accepted, "a client without a certificate got in"
    with_cert = login(port, "alice", ca=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key)
    assert with_cert.accepted, with_cert.error
