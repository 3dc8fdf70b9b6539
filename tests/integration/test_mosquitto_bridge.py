"""The mosquitto role's bridges (mosquitto_bridges) on a real systemd host, to a real remote broker over TLS.

The role converges Debian's broker in a lab container (Debian 13, systemd as PID 1) with one bridge to a second
Mosquitto started by the test on this machine, on the lab network's gateway only (reachable from the lab hosts, not
from other machines), with a password file of its own and a TLS listener whose certificate a test CA signs. A device
publishes to the container's broker with paho-mqtt and a client of the remote broker receives the reading under the
bridge's prefix. The bridge's password (with a space and a #, as vaults hold them) lives only in the bridges' file,
root's and the broker group's, never in mosquitto.conf.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensorstack.lab import containers
from tests.tiers import needs

from .ansible_module import free_port
from .certificates import issue, make_ca
from .conftest import run_in_container
from .test_mosquitto_broker import port_answers, wait_until
from .test_mosquitto_role import Lab, broker_lab

MOSQUITTO = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
pytestmark = needs(MOSQUITTO is None or MOSQUITTO_PASSWD is None, "needs Debian's mosquitto package")

PORT = 1883
REMOTE_USER = "site-a"
REMOTE_PASSWORD = "bridge pass #1 of site-a"
DEVICE = {"name": "alice", "password": "alice-bridge-password-1"}
BASE: dict[str, Any] = {
    "mosquitto_users": [
        DEVICE,
        {"name": "telegraf", "password": "telegraf-password-2", "topics": [{"topic": "sensors/#", "access": "read"}]},
    ],
}


@dataclass
class Remote:
    """The broker at the other end of the bridge, on the lab network's gateway: a TLS listener on ``port``, and one on
    ``certificate_port`` that requires a client certificate signed by the same CA as its own (``client``: a
    certificate and key for the bridge)."""

    address: str
    port: int
    certificate_port: int
    ca: Path
    client: tuple[Path, Path]

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    assert MOSQUITTO is not None and MOSQUITTO_PASSWD is not None
    # Under /tmp, not pytest's own folder: the broker's account must reach its files (nobody may list them).
    directory = Path(tempfile.mkdtemp(prefix="mosquitto-bridge-remote-"))
    directory.chmod(0o711)
    containers.ensure_network()
    gateway = containers.network_gateway()
    ca = make_ca(directory, "ca")
    cert, key = issue(directory, "remote", ca, f"subjectAltName=IP:{gateway}\nextendedKeyUsage=serverAuth\n")
    client = issue(directory, "bridge-client", ca, "extendedKeyUsage=clientAuth\n")
    passwords = directory / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), REMOTE_USER, REMOTE_PASSWORD], check=True)
    port, certificate_port = free_port(), free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        f"per_listener_settings false\nallow_anonymous false\npassword_file {passwords}\n"
        f"listener {port} {gateway}\ncertfile {cert}\nkeyfile {key}\n"
        f"listener {certificate_port} {gateway}\ncertfile {cert}\nkeyfile {key}\ncafile {ca[1]}\n"
        "require_certificate true\n"
    )
    if os.geteuid() == 0:
        # The broker drops to its account before it reads the password file and the key.
        account = pwd.getpwnam("mosquitto")
        for path in (passwords, cert, key):
            os.chown(path, account.pw_uid, account.pw_gid)
    log = directory / "remote.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: process.poll() is not None or all(port_answers(p, gateway) for p in (port, certificate_port)),
            "the remote broker",
        )
        assert process.poll() is None, log.read_text()
        yield Remote(gateway, port, certificate_port, ca[1], client)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def edge(lab_host_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return broker_lab(lab_host_factory, tmp_path_factory.mktemp("mosquitto-bridge"), "mosquitto-bridge")


def bridged(remote: Remote, **more: Any) -> dict[str, Any]:
    bridge = {
        "name": "central",
        "addresses": [f"{remote.address}:{remote.port}"],
        "topics": [{"pattern": "sensors/#", "remote_prefix": "site-a/"}],
        "remote_username": REMOTE_USER,
        "remote_password": REMOTE_PASSWORD,
        "tls_ca": remote.ca_pem,
    }
    return BASE | {"mosquitto_bridges": [bridge | more]}


def receive_on_remote(remote: Remote, topic: str, publish: Any) -> tuple[str, str]:
    """Subscribe on the remote broker, call ``publish``, and return the first message that arrives."""
    messages: queue.Queue[tuple[str, str]] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bridge-test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(REMOTE_USER, REMOTE_PASSWORD)
    client.tls_set(ca_certs=str(remote.ca))
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.put(True)
    client.on_message = lambda _c, _u, message: messages.put((message.topic, message.payload.decode()))
    client.connect(remote.address, remote.port, keepalive=10)
    client.loop_start()
    try:
        subscribed.get(timeout=10)
        publish()
        return messages.get(timeout=15)
    finally:
        client.disconnect()
        client.loop_stop()


def publish_on_edge(edge: Lab, topic: str, payload: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bridge-device-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(DEVICE["name"], DEVICE["password"])
    client.connect(edge.address, PORT, keepalive=10)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def assert_a_reading_crosses(edge: Lab, remote: Remote, room: str) -> None:
    """A fresh reading a device publishes on the edge broker arrives on the remote under the bridge's prefix. It is
    published at once: the broker queues a QoS 1 reading for the bridge until it has connected."""
    payload = json.dumps({"temperature": 21.5, "id": uuid.uuid4().hex})
    topic = f"sensors/alice/{room}"
    arrived = receive_on_remote(remote, f"site-a/{topic}", lambda: publish_on_edge(edge, topic, payload))
    assert arrived == (f"site-a/{topic}", payload)


def bridge_file_modes(edge: Lab, pattern: str = "/etc/mosquitto/bridges/*") -> list[str]:
    """'path owner group mode' of the files ``pattern`` names on the edge host, sorted."""
    return sorted(run_in_container(edge.container, f"stat -c '%n %U %G %a' {pattern}").splitlines())


def test_a_reading_crosses_the_bridge_whose_password_only_the_bridges_file_holds(edge: Lab, remote: Remote) -> None:
    run = edge.converge(bridged(remote))
    assert run.returncode == 0, run.output
    assert REMOTE_PASSWORD not in run.output
    assert_a_reading_crosses(edge, remote, "room")

    assert bridge_file_modes(edge, "/etc/mosquitto/bridges /etc/mosquitto/bridges/*") == [
        "/etc/mosquitto/bridges root mosquitto 750",
        "/etc/mosquitto/bridges/bridges.conf root mosquitto 640",
        "/etc/mosquitto/bridges/central.ca.crt root mosquitto 640",
    ]
    assert f"remote_password {REMOTE_PASSWORD}" in run_in_container(
        edge.container, "cat /etc/mosquitto/bridges/bridges.conf"
    )
    config = run_in_container(edge.container, "cat /etc/mosquitto/mosquitto.conf")
    assert "include_dir /etc/mosquitto/bridges" in config
    assert REMOTE_PASSWORD not in config

    again = edge.converge(bridged(remote))
    assert again.returncode == 0, again.output
    assert again.recap()["broker"]["changed"] == 0, again.output


def test_the_bridges_folder_keeps_only_the_roles_files_and_goes_with_the_last_bridge(edge: Lab, remote: Remote) -> None:
    assert edge.converge(bridged(remote)).returncode == 0
    # A file of bridge settings left there by hand would be read too (include_dir): the role removes it.
    run_in_container(edge.container, "echo 'connection stray' > /etc/mosquitto/bridges/by-hand.conf")
    kept = edge.converge(bridged(remote))
    assert kept.returncode == 0, kept.output
    assert run_in_container(edge.container, "ls /etc/mosquitto/bridges").split() == ["bridges.conf", "central.ca.crt"]
    run = edge.converge(BASE)
    assert run.returncode == 0, run.output
    assert "RUNNING HANDLER [mosquitto : Restart the broker]" in run.output
    assert run_in_container(edge.container, "test -e /etc/mosquitto/bridges && echo present || echo gone") == "gone"
    assert "include_dir" not in run_in_container(edge.container, "cat /etc/mosquitto/mosquitto.conf")
    wait_until(lambda: port_answers(PORT, edge.address), "the broker to answer after its restart")


def test_a_bridge_presents_its_client_certificate_to_a_remote_that_requires_one(edge: Lab, remote: Remote) -> None:
    certificate, key = (path.read_text() for path in remote.client)
    settings = bridged(
        remote,
        addresses=[f"{remote.address}:{remote.certificate_port}"],
        tls_cert=certificate,
        tls_key=key,
    )
    run = edge.converge(settings)
    assert run.returncode == 0, run.output
    assert "PRIVATE KEY" not in run.output
    # The remote's listener refuses a connection without a certificate its CA signed: the reading crosses only if the
    # bridge presents the one the role placed.
    assert_a_reading_crosses(edge, remote, "cellar")

    assert bridge_file_modes(edge) == [
        "/etc/mosquitto/bridges/bridges.conf root mosquitto 640",
        "/etc/mosquitto/bridges/central.ca.crt root mosquitto 640",
        "/etc/mosquitto/bridges/central.crt root mosquitto 640",
        "/etc/mosquitto/bridges/central.key root mosquitto 640",
    ]
    assert run_in_container(edge.container, "cat /etc/mosquitto/bridges/central.key").strip() == key.strip()
    bridges = run_in_container(edge.container, "cat /etc/mosquitto/bridges/bridges.conf")
    assert "bridge_certfile /etc/mosquitto/bridges/central.crt" in bridges
    assert "bridge_keyfile /etc/mosquitto/bridges/central.key" in bridges

    again = edge.converge(settings)
    assert again.returncode == 0, again.output
    assert again.recap()["broker"]["changed"] == 0, again.output
