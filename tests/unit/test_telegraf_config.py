"""The telegraf role's pure helpers: the configuration document, the environment file, versions and checks."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter import stack, telegraf
from ansible_collections.sensorstack.iot.plugins.filter.toml import to_toml
from hypothesis import given, settings
from hypothesis import strategies as st

AGENT = {"interval": "10s", "flush_interval": "10s", "metric_batch_size": 1000}
MQTT = {"plugin": "mqtt_consumer", "options": {"servers": ["tcp://127.0.0.1:1883"], "topics": ["sensors/+/+"]}}
INFLUXDB = {"plugin": "influxdb", "options": {"urls": ["http://127.0.0.1:8086"], "database": "telemetry"}}


def test_plugins_become_arrays_of_tables_under_their_kind_in_order() -> None:
    plugins = {
        "inputs": [MQTT, {"plugin": "internal"}, {"plugin": "mqtt_consumer", "options": {"topics": ["other/#"]}}],
        "outputs": [INFLUXDB],
        "processors": [{"plugin": "converter", "options": {"order": 1, "fields": {"float": ["*"]}}}],
        "aggregators": [{"plugin": "basicstats", "options": {"period": "1m", "stats": ["mean"]}}],
    }
    document = telegraf.telegraf_document(AGENT, plugins, {"region": "north"})
    assert list(document) == ["global_tags", "agent", "inputs", "outputs", "processors", "aggregators"]
    assert document["inputs"]["mqtt_consumer"] == [MQTT["options"], {"topics": ["other/#"]}]
    assert document["inputs"]["internal"] == [{}]
    assert document["aggregators"]["basicstats"] == [{"period": "1m", "stats": ["mean"]}]
    parsed = tomllib.loads(to_toml(document))
    assert parsed == document
    assert parsed["global_tags"] == {"region": "north"}


def test_disabled_entries_and_empty_kinds_are_left_out() -> None:
    document = telegraf.telegraf_document(
        AGENT, {"inputs": [MQTT, {"plugin": "internal", "enabled": False}], "outputs": [INFLUXDB], "processors": []}
    )
    assert set(document["inputs"]) == {"mqtt_consumer"}
    assert "processors" not in document
    assert "global_tags" not in document


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        ({"input": [MQTT]}, "unknown plugin kinds"),
        ({"inputs": ["mqtt_consumer"]}, r"telegraf_inputs\[0\] must be a mapping"),
        ({"inputs": [{"plugin": "mqtt_consumer", "topics": ["a"]}]}, r"unknown keys \['topics'\].*under 'options'"),
        ({"outputs": [{"plugin": "Influx DB"}]}, r"telegraf_outputs\[0\]\.plugin must be a Telegraf plugin name"),
        ({"processors": [{"options": {}}]}, r"telegraf_processors\[0\]\.plugin"),
        ({"aggregators": [{"plugin": "minmax", "options": ["period"]}]}, r"telegraf_aggregators\[0\]\.options"),
    ],
)
def test_malformed_plugin_entries_are_refused_with_the_variable_and_index(plugins: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        telegraf.telegraf_document(AGENT, plugins)


def test_the_agent_must_be_a_mapping() -> None:
    with pytest.raises(AnsibleFilterError, match="telegraf_agent must be a mapping"):
        telegraf.telegraf_document(["10s"], {})


def _read_back_with_sh(path: Path, names: list[str]) -> dict[str, str]:
    """Load the file the way the role's configuration check does (sh, set -a) and return the named variables."""
    script = 'set -a; . "$1"; shift; for name in "$@"; do eval "printf \'%s\\0\' \\"\\$$name\\""; done'
    output = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(path), *names], env={}, capture_output=True, check=True
    ).stdout
    return dict(zip(names, output.decode().split("\0")[:-1], strict=True))


TRICKY = {"TELEGRAF_MQTT_PASSWORD": "a \"quoted\" \\ back$slash `tick` $(id) ${HOME} 'single' # hash", "EMPTY": ""}


def test_the_environment_file_reads_back_exactly_through_sh(tmp_path: Path) -> None:
    path = tmp_path / "telegraf.env"
    path.write_text(stack.systemd_environment(TRICKY))
    assert _read_back_with_sh(path, sorted(TRICKY)) == TRICKY


def test_the_environment_file_is_sorted_one_double_quoted_line_per_variable() -> None:
    text = stack.systemd_environment({"B": "2", "A": True})
    assert text == 'A="true"\nB="2"\n'


safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True), safe_text, min_size=1, max_size=3))
def test_any_single_line_value_reads_back_exactly(tmp_path_factory: pytest.TempPathFactory, values: dict) -> None:
    path = tmp_path_factory.mktemp("env") / "telegraf.env"
    path.write_text(stack.systemd_environment(values), encoding="utf-8")
    assert _read_back_with_sh(path, sorted(values)) == values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"PASSWORD": "two\nlines"}, "line break"),
        ({"1ST": "x"}, "not a valid name"),
        ({"A-B": "x"}, "not a valid name"),
        ({"LIST": ["a"]}, "single text value"),
        ({"NONE": None}, "single text value"),
    ],
)
def test_values_a_single_environment_line_cannot_hold_are_refused(values: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        stack.systemd_environment(values)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("Telegraf 1.37.2 (git: release@unknown)", "1.37.2"),
        ("Telegraf 1.32.0 (git: HEAD@8ad0e2d1)\n", "1.32.0"),
        ("Telegraf v1.28.5 (git: HEAD 1b2b2a5f)", "1.28.5"),
    ],
)
def test_the_version_is_read_from_telegraf_version_output(output: str, version: str) -> None:
    assert telegraf.telegraf_version(output) == version


def test_an_unreadable_version_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match="cannot read a Telegraf version"):
        telegraf.telegraf_version("command not found")


def test_the_cluster_secret_holds_the_text_the_environment_file_holds() -> None:
    strings = stack.environment_strings({"B_FLAG": True, "A_PORT": 8086, "C_PASSWORD": 'p"w'})

    assert strings == {"A_PORT": "8086", "B_FLAG": "true", "C_PASSWORD": 'p"w'}
    assert stack.systemd_environment({"B_FLAG": True}) == 'B_FLAG="true"\n'


def test_environment_references_are_found_in_every_string() -> None:
    document = {
        "outputs": {"influxdb": [{"password": "${INFLUX}", "urls": ["http://${HOST:-localhost}:8086"]}]},
        "inputs": {"regex": [{"replacement": "${1}", "other": "$PLAIN", "nested": {"token": "x${TOKEN?}y"}}]},
    }
    assert telegraf.telegraf_environment_references(document) == ["HOST", "INFLUX", "TOKEN"]


def _stack_document(**mqtt: object) -> dict:
    options = dict(MQTT["options"], password="${TELEGRAF_MQTT_PASSWORD}", **mqtt)
    return telegraf.telegraf_document(
        AGENT, {"inputs": [{"plugin": "mqtt_consumer", "options": options}], "outputs": [INFLUXDB]}
    )


SOURCES = {"TELEGRAF_MQTT_PASSWORD": "telegraf_mqtt_password"}


def test_a_complete_stack_configuration_has_no_problems() -> None:
    document = _stack_document(qos=1, persistent_session=True, client_id="telegraf-edge1")
    assert telegraf.telegraf_problems(document, ["TELEGRAF_MQTT_PASSWORD"], SOURCES) == []


def test_a_persistent_session_needs_qos_and_a_client_id() -> None:
    problems = telegraf.telegraf_problems(_stack_document(qos=0, persistent_session=True), ["TELEGRAF_MQTT_PASSWORD"])
    assert problems == [
        "telegraf_inputs (mqtt_consumer #1): persistent_session needs qos 1 or 2 (telegraf_mqtt_qos)",
        "telegraf_inputs (mqtt_consumer #1): persistent_session needs a client_id (telegraf_mqtt_client_id)",
    ]


def test_an_unset_secret_names_the_variable_that_supplies_it() -> None:
    document = _stack_document()
    document["outputs"]["influxdb"][0]["token"] = "${MY_TOKEN}"
    assert telegraf.telegraf_problems(document, [], SOURCES) == [
        "telegraf.conf references ${MY_TOKEN}, which has no value: set telegraf_environment.MY_TOKEN",
        "telegraf.conf references ${TELEGRAF_MQTT_PASSWORD}, which has no value: set telegraf_mqtt_password",
    ]


def test_on_kubernetes_a_credential_in_clear_text_is_refused_by_its_path() -> None:
    document = _stack_document()
    environment = ["TELEGRAF_MQTT_PASSWORD", "MY_TOKEN"]
    assert telegraf.telegraf_problems(document, environment, SOURCES, "kubernetes") == []
    document["outputs"]["influxdb"][0]["password"] = "hunter2hunter2"
    document["outputs"]["influxdb"][0]["token"] = "${MY_TOKEN}"  # from the Secret: fine
    document["outputs"]["influxdb"][0]["username"] = "telegraf"  # not a credential by its name
    [problem] = telegraf.telegraf_problems(document, environment, SOURCES, "kubernetes")
    assert problem.startswith(
        "telegraf.conf.outputs.influxdb[0].password holds a credential in clear text, and on Kubernetes telegraf.conf "
        "is the ConfigMap telegraf-config"
    )
    assert "hunter2" not in problem
    # On a host telegraf.conf is a file only root and Telegraf read.
    assert telegraf.telegraf_problems(document, environment, SOURCES) == []


def test_on_kubernetes_a_tls_file_of_a_host_is_refused_by_its_path() -> None:
    document = _stack_document(servers=["ssl://mosquitto:8883"], tls_ca="/etc/ssl/broker-ca.pem")
    [problem] = telegraf.telegraf_problems(document, ["TELEGRAF_MQTT_PASSWORD"], SOURCES, "kubernetes")
    assert problem.startswith(
        "telegraf.conf.inputs.mqtt_consumer[0].tls_ca names a file, and on Kubernetes the Telegraf pod holds no file"
    )
    assert telegraf.telegraf_problems(document, ["TELEGRAF_MQTT_PASSWORD"], SOURCES) == []


def test_no_input_or_no_output_is_a_problem_and_so_are_empty_topics() -> None:
    document = telegraf.telegraf_document(AGENT, {"inputs": [{"plugin": "mqtt_consumer", "options": {"topics": []}}]})
    assert telegraf.telegraf_problems(document) == [
        "telegraf_outputs: Telegraf needs at least one enabled output plugin",
        "telegraf_inputs (mqtt_consumer #1): servers is empty",
        "telegraf_inputs (mqtt_consumer #1): topics is empty",
    ]


def test_the_broker_port_is_the_first_plain_mqtt_listener() -> None:
    listeners = [{"port": 8883, "tls": True}, {"port": 9001, "protocol": "websockets"}, {"port": 1884}]
    assert telegraf.plain_mqtt_port(listeners) == 1884
    with pytest.raises(AnsibleFilterError, match="no plain MQTT listener: set telegraf_mqtt_servers"):
        telegraf.plain_mqtt_port([{"port": 8883, "tls": True}])


def test_the_database_and_policy_are_the_declared_defaults() -> None:
    policies = [
        {"database": "other", "name": "forever", "default": True},
        {"database": "telemetry", "name": "rollup"},
        {"database": "telemetry", "name": "raw", "default": True},
    ]
    assert telegraf.default_retention_policy(policies, "telemetry") == "raw"
    assert telegraf.default_retention_policy(policies[:2], "telemetry") == ""


def test_the_filters_are_registered_under_their_documented_names() -> None:
    names = set(telegraf.FilterModule().filters())
    assert {"telegraf_document", "telegraf_problems", "telegraf_version"} <= names
