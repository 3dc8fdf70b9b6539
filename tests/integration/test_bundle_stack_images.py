"""The stack's lab stand-in images, run by Docker as the stack's manifests will run the official ones.

Every stand-in is built into a bundle, loaded into the local Docker Engine with skopeo under a test name, and run on
an internal Docker network (no route out), each as the official image's user: Mosquitto with the official config
layout mounted and a password file, InfluxDB with auth on and its admin created from the environment, Telegraf
carrying MQTT messages from the broker into InfluxDB with its configuration at /etc/telegraf/telegraf.conf, and the
Grafana stand-in answering the API with the admin password of GF_SECURITY_ADMIN_PASSWORD and a provisioned
datasource. Clients run in throwaway containers of the same images on the same network.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sensorstack.bundle import stack_images
from sensorstack.bundle.cache import cache_root
from sensorstack.bundle.image_names import ImageName
from sensorstack.bundle.manifest import Artifact
from sensorstack.bundle.versions import load_versions
from tests.tiers import unavailable

pytestmark = pytest.mark.lab

# The pins proposed for versions.yml; versions.yml wins once it has them.
PROPOSED_PINS = {
    "sensorstack_mosquitto_image": "docker.io/library/eclipse-mosquitto:2.0.22",
    "sensorstack_influxdb_image": "docker.io/library/influxdb:1.12.4",
    "sensorstack_telegraf_image": "docker.io/library/telegraf:1.37.2",
    "sensorstack_grafana_image": "docker.io/grafana/grafana:12.4.5",
}
PREFIX = "sensorstack-test-standin"
MQTT_USER, INFLUX_ADMIN, GRAFANA_ADMIN = "sensor", "admin", "admin"
DEADLINE_SECONDS = 90


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and answer.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({answer.returncode}): {answer.stdout}{answer.stderr}")
    return answer


def eventually(probe: Callable[[], bool], what: str) -> None:
    """Poll until probe() holds: services start at their own pace on a loaded machine."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Artifact], Path]:
    for command in ("docker", "skopeo", "debootstrap"):
        if shutil.which(command) is None:
            unavailable("integration", f"needs {command}")
    if run("docker", "info", check=False).returncode:
        unavailable("integration", "needs a running Docker Engine")
    bundle = tmp_path_factory.mktemp("bundle")
    versions = {**PROPOSED_PINS, **load_versions()}
    return stack_images.bundle_stack_images(versions, bundle, cache_root()), bundle


@pytest.fixture(scope="module")
def loaded(built: tuple[list[Artifact], Path]) -> Iterator[dict[str, str]]:
    """{component: local test tag} of every stand-in, loaded into Docker and removed afterwards."""
    artifacts, bundle = built
    run_id = secrets.token_hex(4)
    tags = {}
    for standin, artifact in zip(stack_images.STANDINS, artifacts, strict=True):
        tag = f"{PREFIX}/{standin.component}:{artifact.version}-{run_id}"
        run(
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci-archive:{bundle / artifact.path}",
            f"docker-daemon:{tag}",
        )
        tags[standin.component] = tag
    try:
        yield tags
    finally:
        for tag in tags.values():
            run("docker", "rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def network() -> Iterator[str]:
    name = f"{PREFIX}-{secrets.token_hex(4)}"
    run("docker", "network", "create", "--internal", name)
    try:
        yield name
    finally:
        run("docker", "network", "rm", name, check=False)


@pytest.fixture(scope="module")
def containers(network: str) -> Iterator[Callable[..., str]]:
    """start(name, *docker run arguments) -> container name, on the network under that name; removed at the end."""
    started: list[str] = []

    def start(name: str, *arguments: str) -> str:
        container = f"{network}-{name}"
        run("docker", "run", "-d", "--name", container, "--network", network, "--network-alias", name, *arguments)
        started.append(container)
        return container

    yield start
    for container in started:
        run("docker", "rm", "--force", container, check=False)


def client(network: str, image: str, *command: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """A throwaway client container on the network."""
    override = ["--entrypoint", entrypoint] if entrypoint else []
    return run("docker", "run", "--rm", "--network", network, *override, image, *command, check=False)


def process_ids(container: str) -> tuple[str, str]:
    """Real uid and gid of the container's main process."""
    status = run("docker", "exec", container, "cat", "/proc/1/status").stdout
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith(("Uid", "Gid"))}
    return fields["Uid"], fields["Gid"]


def image_config(tag: str) -> dict:
    return json.loads(run("docker", "image", "inspect", tag).stdout)[0]["Config"]


# --- the bundle -----------------------------------------------------------------------------------------------------


def test_the_bundle_lists_each_stand_in_under_its_official_name_and_says_so(built: tuple[list[Artifact], Path]) -> None:
    artifacts, bundle = built

    names = {str(ImageName.parse(f"{artifact.name}:{artifact.version}")) for artifact in artifacts}
    assert len(names) == 4 and all(artifact.standin for artifact in artifacts)
    assert all((bundle / artifact.path).is_file() for artifact in artifacts)
    grafana = next(artifact for artifact in artifacts if artifact.name.endswith("grafana/grafana"))
    assert "NOT Grafana" in grafana.standin


def test_each_loaded_image_carries_its_stand_in_label(loaded: dict[str, str]) -> None:
    for tag in loaded.values():
        assert image_config(tag)["Labels"][stack_images.STANDIN_LABEL]


# --- the services -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(loaded: dict[str, str], containers: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """Mosquitto as uid 1883 with /mosquitto/config mounted: a listener, no anonymous clients, a password file."""
    config = tmp_path_factory.mktemp("mosquitto-config")
    config.chmod(0o755)
    os.chown(config, 1883, 1883)  # the folder a mosquitto user owns, as the official layout has it
    (config / "mosquitto.conf").write_text(
        "listener 1883\nallow_anonymous false\npassword_file /mosquitto/config/passwd\n"
        "persistence true\npersistence_location /mosquitto/data/\n"
    )
    run(
        "docker", "run", "--rm", "--user", "1883:1883", "--network", "none", "-v", f"{config}:/work",
        loaded["mosquitto"], "mosquitto_passwd", "-b", "-c", "/work/passwd", MQTT_USER, "mqtt-secret",
    )  # fmt: skip
    return containers("broker", "--user", "1883:1883", "-v", f"{config}:/mosquitto/config:ro", loaded["mosquitto"])


def test_mosquitto_answers_an_authenticated_publish_and_refuses_others(
    broker: str, loaded: dict[str, str], network: str
) -> None:
    image = loaded["mosquitto"]
    publish = ("mosquitto_pub", "-h", "broker", "-q", "1", "-t", "sensors/test", "-m", "21.5")

    eventually(
        lambda: client(network, image, *publish, "-u", MQTT_USER, "-P", "mqtt-secret").returncode == 0,
        "an authenticated QoS 1 publish to the stand-in broker",
    )
    assert client(network, image, *publish).returncode != 0
    assert client(network, image, *publish, "-u", MQTT_USER, "-P", "wrong").returncode != 0
    assert process_ids(broker) == ("1883", "1883")


@pytest.fixture(scope="module")
def influxdb(loaded: dict[str, str], containers: Callable[..., str]) -> str:
    return containers(
        "influxdb",
        "-e", "INFLUXDB_HTTP_AUTH_ENABLED=true",
        "-e", f"INFLUXDB_ADMIN_USER={INFLUX_ADMIN}",
        "-e", "INFLUXDB_ADMIN_PASSWORD=influx-secret",
        "-e", "INFLUXDB_DB=sensors",
        loaded["influxdb"],
    )  # fmt: skip


def influx(network: str, image: str, query: str, *credentials: str) -> subprocess.CompletedProcess[str]:
    return client(network, image, "-host", "influxdb", *credentials, "-execute", query, entrypoint="influx")


def ping_status(network: str, image: str) -> str:
    """The status line of GET /ping, read with bash's /dev/tcp (the image has no HTTP client)."""
    request = 'exec 3<>/dev/tcp/influxdb/8086; printf "GET /ping HTTP/1.0\\r\\n\\r\\n" >&3; head -n1 <&3'
    return client(network, image, "-c", request, entrypoint="bash").stdout.strip()


def test_influxdb_answers_ping_and_creates_its_admin_from_the_environment(
    influxdb: str, loaded: dict[str, str], network: str
) -> None:
    image, admin = loaded["influxdb"], ("-username", INFLUX_ADMIN, "-password", "influx-secret")

    eventually(lambda: ping_status(network, image).startswith("HTTP/1.0 204"), "influxd answering /ping with 204")
    eventually(lambda: influx(network, image, "SHOW USERS", *admin).returncode == 0, "the admin logging in")

    users = influx(network, image, "SHOW USERS", *admin).stdout
    assert INFLUX_ADMIN in users and "true" in users
    assert "sensors" in influx(network, image, "SHOW DATABASES", *admin).stdout
    anonymous = influx(network, image, "SHOW DATABASES")
    assert anonymous.returncode != 0
    assert "unable to parse authentication credentials" in anonymous.stdout + anonymous.stderr
    assert process_ids(influxdb) == ("1500", "1500")


def test_telegraf_carries_mqtt_messages_into_influxdb(
    broker: str,
    influxdb: str,
    loaded: dict[str, str],
    network: str,
    containers: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = tmp_path_factory.mktemp("telegraf-config") / "telegraf.conf"
    config.write_text(
        '[agent]\n  interval = "2s"\n  flush_interval = "1s"\n'
        '[[inputs.mqtt_consumer]]\n  servers = ["tcp://broker:1883"]\n  topics = ["sensors/#"]\n'
        f'  username = "{MQTT_USER}"\n  password = "mqtt-secret"\n  data_format = "json"\n'
        '  name_override = "climate"\n'
        '[[outputs.influxdb]]\n  urls = ["http://influxdb:8086"]\n  database = "sensors"\n'
        f'  username = "{INFLUX_ADMIN}"\n  password = "influx-secret"\n  skip_database_creation = true\n'
    )
    config.chmod(0o644)
    telegraf = containers("telegraf", "-v", f"{config}:/etc/telegraf/telegraf.conf:ro", loaded["telegraf"])
    publish = ("mosquitto_pub", "-h", "broker", "-u", MQTT_USER, "-P", "mqtt-secret", "-q", "1", "-t", "sensors/room")
    query = ("SELECT temperature FROM climate", "-database", "sensors")
    admin = ("-username", INFLUX_ADMIN, "-password", "influx-secret")

    def arrived() -> bool:
        client(network, loaded["mosquitto"], *publish, "-m", '{"temperature": 21.5}')
        return "21.5" in influx(network, loaded["influxdb"], *query, *admin).stdout

    eventually(arrived, "a JSON message published on MQTT showing up in InfluxDB through Telegraf")
    assert process_ids(telegraf) == ("999", "999")


def test_the_grafana_stand_in_serves_the_api_with_the_admin_password_from_the_environment(
    loaded: dict[str, str], network: str, containers: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    provisioning = tmp_path_factory.mktemp("grafana-datasources")
    provisioning.chmod(0o755)
    (provisioning / "influxdb.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - name: InfluxDB\n    type: influxdb\n    uid: influxdb\n"
        "    url: http://influxdb:8086\n    database: $INFLUX_DATABASE\n"
    )
    (provisioning / "influxdb.yaml").chmod(0o644)
    grafana = containers(
        "grafana",
        "-e", "GF_SECURITY_ADMIN_PASSWORD=grafana-secret",
        "-e", "INFLUX_DATABASE=sensors",
        "-v", f"{provisioning}:/etc/grafana/provisioning/datasources:ro",
        loaded["grafana"],
    )  # fmt: skip
    script = (
        "import base64, json, sys, urllib.request, urllib.error\n"
        "def get(path, password):\n"
        "    request = urllib.request.Request('http://grafana:3000' + path)\n"
        "    token = base64.b64encode(f'admin:{password}'.encode()).decode()\n"
        "    request.add_header('Authorization', 'Basic ' + token)\n"
        "    try:\n"
        "        with urllib.request.urlopen(request, timeout=5) as answer:\n"
        "            return answer.status, json.load(answer)\n"
        "    except urllib.error.HTTPError as error:\n"
        "        return error.code, None\n"
        "print(json.dumps([get('/api/health', ''), get('/api/datasources/uid/influxdb', sys.argv[1]),\n"
        "                  get('/api/datasources', 'wrong')]))\n"
    )

    def answers(password: str = "grafana-secret") -> list | None:
        result = client(network, loaded["grafana"], "-c", script, password, entrypoint="python3")
        return json.loads(result.stdout) if result.returncode == 0 else None

    eventually(lambda: answers() is not None, "the Grafana stand-in answering on grafana:3000")
    health, datasource, wrong = answers() or []
    assert health[0] == 200 and health[1]["database"] == "ok"
    assert datasource[0] == 200
    assert (datasource[1]["database"], datasource[1]["readOnly"]) == ("sensors", True)
    assert wrong[0] == 401
    assert process_ids(grafana) == ("472", "0")

    # The image's grafana binary, as the grafana role runs it in a pod: the password from stdin, then in force on the
    # running server, the old one refused.
    cli = ("grafana", "cli", "--homepath", "/usr/share/grafana", "--config", "/etc/grafana/grafana.ini")
    reset = subprocess.run(
        ["docker", "exec", "-i", grafana, *cli, "admin", "reset-admin-password", "--password-from-stdin"],
        input="rotated-secret\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    assert "Admin password changed successfully" in reset.stdout
    rotated, before = answers("rotated-secret") or [], answers() or []
    assert (rotated[1][0], rotated[2][0], before[1][0]) == (200, 401, 401)
