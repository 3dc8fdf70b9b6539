"""The data path MQTT -> Telegraf -> InfluxDB on the converged edge host, proven with real messages.

Readings are published with mosquitto_pub as the scenario's clients (credentials in the options files prepare.yml
wrote, found through XDG_CONFIG_HOME) and read back from InfluxDB with curl as the reader user (credentials in a
netrc file): no password is ever in a command line. Expected values come from the scenario's variables and the
telegraf role's defaults, and every "never arrives" is checked after a later reading from a declared user did
arrive, so it cannot pass merely because nothing arrives at all.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((ROOT / "roles/telegraf/defaults/main.yml").read_text())
SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "group_vars/all.yml").read_text())

CONFIG_FILE = "/etc/telegraf/telegraf.conf"
ENVIRONMENT_FILE = "/etc/telegraf/telegraf.env"
BROKER_PORT = SCENARIO["mosquitto_listeners"][0]["port"]
DATABASE = SCENARIO["influxdb_databases"][0]["name"]
POLICY = next(rp["name"] for rp in SCENARIO["influxdb_retention_policies"] if rp.get("default"))
OTHER_POLICIES = [rp["name"] for rp in SCENARIO["influxdb_retention_policies"] if not rp.get("default")]
MEASUREMENT = "mqtt_consumer"
CLIENTS = SCENARIO["pipeline_clients_dir"]
NETRC = SCENARIO["pipeline_influxdb_netrc"]
SECRETS = [user["password"] for user in SCENARIO["mosquitto_users"] + SCENARIO["influxdb_users"]]


def seconds(duration: str) -> float:
    value = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert value, duration
    return float(value[1]) * {"ms": 0.001, "s": 1, "m": 60}[value[2]]


FLUSH = seconds(DEFAULTS["telegraf_agent"]["flush_interval"])
# "Within a few flush intervals": three, and a margin for the container's scheduling and for Telegraf's
# reconnects after a restart, which take seconds whatever the flush interval.
DEADLINE = 3 * FLUSH + 20


def publisher(client: str, topic: str) -> str:
    """mosquitto_pub as ``client``, sending each line of its input to ``topic`` at QoS 1 over one connection."""
    environment = f"XDG_CONFIG_HOME={CLIENTS}/{client}"
    return shlex.join(
        ["env", environment, "mosquitto_pub", "-h", "127.0.0.1", "-p", str(BROKER_PORT), "-q", "1", "-t", topic, "-l"]
    )


def publish(host, client: str, topic: str, *payloads: str) -> Any:
    """Publish each payload as ``client``; return the command's result."""
    lines = "".join(f"{payload}\n" for payload in payloads)
    return host.run(f"printf %s {shlex.quote(lines)} | {publisher(client, topic)}")


def query(host, statement: str) -> list[dict[str, Any]]:
    """Run InfluxQL as the reader; return the rows of every series, tags merged in, with the series name."""
    result = host.run(
        "curl -sS --fail-with-body --netrc-file %s -G http://127.0.0.1:8086/query "
        "--data-urlencode %s --data-urlencode %s",
        NETRC,
        f"db={DATABASE}",
        f"q={statement}",
    )
    assert result.rc == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)["results"][0]
    assert "error" not in answer, answer
    rows = []
    for series in answer.get("series", []):
        for values in series["values"]:
            rows.append(
                {
                    "_series": series["name"],
                    **series.get("tags", {}),
                    **dict(zip(series["columns"], values, strict=True)),
                }
            )
    return rows


T = TypeVar("T")


def wait_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = DEADLINE) -> tuple[T, float]:
    """Call ``read`` until ``done`` holds for its value or ``timeout`` seconds pass; return it and the seconds taken."""
    started = time.monotonic()
    while True:
        value = read()
        elapsed = time.monotonic() - started
        if done(value) or elapsed > timeout:
            return value, elapsed
        time.sleep(0.5)


def wait_for(host, statement: str, done: Callable[[list], bool], timeout: float = DEADLINE) -> tuple[list, float]:
    """Query until ``done(rows)`` holds or ``timeout`` seconds pass; return the last rows and the seconds taken."""
    return wait_until(lambda: query(host, statement), done, timeout)


def main_pid(host) -> str:
    return host.check_output("systemctl show -p MainPID --value telegraf")


def device_points(device: str, site: str = "lab", policy: str = POLICY) -> str:
    return (
        f'SELECT * FROM "{DATABASE}"."{policy}"."{MEASUREMENT}" '
        f"WHERE \"site\" = '{site}' AND \"device\" = '{device}' AND time > now() - 1h"
    )


def new_device() -> str:
    return f"th-{uuid.uuid4().hex[:8]}"


def test_telegraf_runs_as_its_own_user_and_starts_at_boot(host) -> None:
    service = host.service("telegraf")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("stat -c %%U /proc/%s", main_pid(host)) == "telegraf"


def test_secrets_are_only_in_the_environment_file_which_only_root_and_telegraf_read(host) -> None:
    environment = host.file(ENVIRONMENT_FILE)
    assert (environment.user, environment.group, environment.mode) == ("root", "telegraf", 0o640)
    config = host.file(CONFIG_FILE)
    assert (config.user, config.group, config.mode) == ("root", "telegraf", 0o640)
    content = config.content_string
    assert 'password = "${TELEGRAF_MQTT_PASSWORD}"' in content
    assert 'password = "${TELEGRAF_INFLUXDB_PASSWORD}"' in content
    command_line = host.file(f"/proc/{main_pid(host)}/cmdline").content_string
    for secret in SECRETS:
        assert secret not in content
        assert secret not in command_line


def test_the_service_got_the_tricky_password_exactly(host) -> None:
    # Quotes, $, ${...}, backslashes and backticks survive the environment file as systemd reads it.
    telegraf = next(user for user in SCENARIO["mosquitto_users"] if user["name"] == "telegraf")
    environ = host.file(f"/proc/{main_pid(host)}/environ").content_string
    assert f"TELEGRAF_MQTT_PASSWORD={telegraf['password']}" in environ.split("\0")


def test_telegraf_conf_wires_the_broker_to_the_declared_database_and_policy(host) -> None:
    config = tomllib.loads(host.file(CONFIG_FILE).content_string)
    consumer = config["inputs"]["mqtt_consumer"][0]
    assert consumer["servers"] == [f"tcp://127.0.0.1:{BROKER_PORT}"]
    assert consumer["topics"] == ["sensors/+/+"]
    assert (consumer["qos"], consumer["persistent_session"]) == (1, True)
    assert consumer["client_id"] == "telegraf-pipeline-debian13"
    assert consumer["startup_error_behavior"] == "retry"
    assert consumer["data_format"] == "json"
    assert consumer["topic_parsing"] == [{"topic": "sensors/+/+", "tags": "_/site/device"}]
    output = config["outputs"]["influxdb"][0]
    assert (output["database"], output["retention_policy"]) == (DATABASE, POLICY)
    assert output["skip_database_creation"] is True
    assert config["agent"]["metric_batch_size"] == DEFAULTS["telegraf_agent"]["metric_batch_size"]
    assert "jsonx" not in host.file(CONFIG_FILE).content_string, "side_effect.yml's rejected change is not there"


def test_a_reading_arrives_in_the_declared_policy_with_site_and_device_tags(host) -> None:
    device = new_device()
    reading = {"temperature": 21.5, "humidity": 40, "unit": "C", "note": "a string nobody named"}
    sent = publish(host, "lab", f"sensors/lab/{device}", json.dumps(reading))
    assert sent.rc == 0, sent.stderr
    rows, elapsed = wait_for(host, device_points(device), bool)
    assert len(rows) == 1, f"nothing arrived within {DEADLINE} s"
    assert elapsed <= DEADLINE
    point = rows[0]
    assert (point["site"], point["device"], point["topic"]) == ("lab", device, f"sensors/lab/{device}")
    assert (point["temperature"], point["humidity"]) == (21.5, 40)
    assert point["unit"] == "C", "a string key named in tag_keys is a tag"
    assert "note" not in point, "a string key nobody named is dropped"
    for policy in OTHER_POLICIES:
        assert query(host, device_points(device, policy=policy)) == []


def test_a_message_from_an_unknown_user_never_arrives(host) -> None:
    device = new_device()
    refused = publish(host, "stranger", f"sensors/lab/{device}", '{"forged": 1}')
    assert refused.rc != 0
    assert "not authorised" in refused.stderr
    accepted = publish(host, "lab", f"sensors/lab/{device}", '{"sentinel": 1}')
    assert accepted.rc == 0, accepted.stderr
    rows, _ = wait_for(host, device_points(device), lambda rows: any(row.get("sentinel") == 1 for row in rows))
    assert [row.get("sentinel") for row in rows] == [1], "only the declared user's reading is stored"
    assert all(row.get("forged") is None for row in rows)


def test_a_declared_user_cannot_write_into_another_site(host) -> None:
    # The broker drops it (ACL pattern sensors/%u/#) although QoS 1 acknowledges it; the same client's next
    # message arriving shows it had its chance.
    device = new_device()
    assert publish(host, "lab", f"sensors/elsewhere/{device}", '{"forged": 1}').rc == 0
    assert publish(host, "lab", f"sensors/lab/{device}", '{"sentinel": 1}').rc == 0
    rows, _ = wait_for(host, device_points(device), bool)
    assert [row["sentinel"] for row in rows] == [1]
    assert query(host, device_points(device, site="elsewhere")) == []


def count(host, device: str) -> tuple[int, int]:
    rows = query(
        host,
        f'SELECT count("seq") AS n, count(distinct("seq")) AS d FROM "{DATABASE}"."{POLICY}"."{MEASUREMENT}" '
        f"WHERE \"device\" = '{device}' AND time > now() - 1h",
    )
    return (rows[0]["n"], rows[0]["d"]) if rows else (0, 0)


def test_readings_published_while_telegraf_is_down_arrive_once_it_is_back(host) -> None:
    # QoS 1 with a persistent session: the broker queues them for Telegraf's session.
    device, total = new_device(), 50
    assert host.run("systemctl stop telegraf").rc == 0
    try:
        sent = publish(host, "lab", f"sensors/lab/{device}", *(json.dumps({"seq": n}) for n in range(1, total + 1)))
        assert sent.rc == 0, sent.stderr
    finally:
        assert host.run("systemctl start telegraf").rc == 0
    stored, _ = wait_until(lambda: count(host, device), lambda counted: counted == (total, total))
    assert stored == (total, total), "every reading queued for Telegraf's session is stored exactly once"


def test_restarting_influxdb_while_messages_flow_loses_none(host) -> None:
    # The outage outlasts a flush interval, so Telegraf's writes fail at least once and it must keep the points.
    device, rate, outage = new_device(), 20, FLUSH + 3
    total = int(rate * (2 + outage + 3))
    script = f"""
set -e
since=$(date '+%Y-%m-%d %H:%M:%S')
generate() {{ n=1; while [ $n -le {total} ]; do printf '{{"seq": %d}}\\n' $n; n=$((n+1)); sleep {1 / rate}; done; }}
generate | {publisher("lab", f"sensors/lab/{device}")} &
publisher=$!
sleep 2
systemctl stop influxdb
sleep {outage}
systemctl start influxdb
wait $publisher
journalctl -u telegraf --since "$since" --no-pager
"""
    flow = host.run("sh -c %s", script)
    assert flow.rc == 0, flow.stdout + flow.stderr
    assert re.search(r"E! .*outputs\.influxdb", flow.stdout), "Telegraf never failed a write: no outage was seen"
    stored, _ = wait_until(lambda: count(host, device), lambda counted: counted[0] >= total)
    assert stored == (total, total), "every published reading is stored exactly once"


def test_telegraf_reports_its_own_metrics_for_the_dashboard(host) -> None:
    rows, _ = wait_for(
        host,
        f'SELECT last("metrics_written") FROM "{DATABASE}"."{POLICY}"."internal_write" '
        "WHERE \"output\" = 'influxdb' AND time > now() - 1h",
        bool,
        timeout=seconds(DEFAULTS["telegraf_agent"]["interval"]) + DEADLINE,
    )
    assert rows and rows[0]["last"] > 0


# The values the edge host took from the platform-dependent defaults, set explicitly for the cluster: everything
# else comes from the scenario's own variables, the same for both platforms.
SYSTEMD_VALUES = {
    "telegraf_mqtt_servers": [f"tcp://127.0.0.1:{BROKER_PORT}"],
    "telegraf_influxdb_urls": ["http://127.0.0.1:8086"],
    "telegraf_mqtt_client_id": "telegraf-pipeline-debian13",
}


INSTALL_SETTINGS = {"telegraf_install_source", "telegraf_binary_src", "mosquitto_packages"}


def test_the_same_values_give_the_cluster_byte_identical_configuration_files(host, tmp_path: Path) -> None:
    """`sensorstack render` (platform kubernetes) of this scenario's variables puts in its ConfigMaps exactly the
    mosquitto.conf, influxdb.conf and telegraf.conf the real daemons run with here: these tests vouch for them."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {"control_plane": {"hosts": {"cp1": None}}, "workers": {"hosts": {"w1": None}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"sensorstack": {"children": hosts}}}}))
    # How Telegraf is installed on a host is not configuration: the cluster runs its image.
    settings = {key: value for key, value in SCENARIO.items() if key not in INSTALL_SETTINGS}
    variables = settings | SYSTEMD_VALUES | {"sensorstack_stack_components": ["mosquitto", "telegraf", "influxdb"]}
    (inventory / "group_vars/all.yml").write_text(yaml.safe_dump(variables))
    folder = tmp_path / "rendered"
    render = subprocess.run(
        [sys.executable, "-m", "sensorstack.cli", "render", str(folder), "-i", str(inventory), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert render.returncode == 0, render.stdout + render.stderr
    for service, path in (
        ("mosquitto", "/etc/mosquitto/mosquitto.conf"),
        ("influxdb", "/etc/influxdb/influxdb.conf"),
        ("telegraf", CONFIG_FILE),
    ):
        objects = list(yaml.safe_load_all((folder / f"{service}.yaml").read_text()))
        config_map = next(item for item in objects if item["metadata"]["name"] == f"{service}-config")
        assert config_map["data"][Path(path).name] == host.file(path).content_string, service
