"""The to_toml filter: what it writes parses back to the same data."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.toml import from_toml, to_toml
from hypothesis import given
from hypothesis import strategies as st

TELEGRAF = {
    "agent": {"interval": "10s", "flush_interval": "10s", "metric_batch_size": 1000, "omit_hostname": False},
    "inputs": {
        "mqtt_consumer": [
            {
                "servers": ["tcp://127.0.0.1:1883"],
                "topics": ["sensors/+/+"],
                "username": "${MQTT_USERNAME}",
                "password": "${MQTT_PASSWORD}",
                "data_format": "json",
                "topic_parsing": [{"topic": "sensors/+/+", "tags": "_/site/device"}],
            }
        ]
    },
    "outputs": {"influxdb": [{"urls": ["http://127.0.0.1:8086"], "database": "telemetry", "timeout": "5s"}]},
}


def test_nested_tables_and_arrays_of_tables_round_trip() -> None:
    rendered = to_toml(TELEGRAF)
    assert tomllib.loads(rendered) == TELEGRAF
    assert "[[inputs.mqtt_consumer]]" in rendered


def test_arrays_of_tables_are_sections_at_every_depth_however_short() -> None:
    document = {
        "inputs": {
            "internal": [{"collect_memstats": False}],
            "mqtt_consumer": [
                {
                    "topics": ["a/+"],
                    "topic_parsing": [{"topic": "a/+", "tags": "_/x"}, {"topic": "b/+", "tags": "_/y"}],
                },
                {"topics": ["b/+"]},
            ],
        }
    }
    rendered = to_toml(document)
    assert tomllib.loads(rendered) == document
    headers = [line for line in rendered.splitlines() if line.startswith("[")]
    assert headers == [
        "[[inputs.internal]]",
        "[[inputs.mqtt_consumer]]",
        "[[inputs.mqtt_consumer.topic_parsing]]",
        "[[inputs.mqtt_consumer.topic_parsing]]",
        "[[inputs.mqtt_consumer]]",
    ]
    assert "{" not in rendered


def test_a_plugin_s_own_settings_come_before_its_sub_tables() -> None:
    # tagpass given first must still follow the plugin's settings, or TOML would put them inside tagpass.
    document = {"inputs": {"mqtt_consumer": [{"tagpass": {"site": ["lab"]}, "qos": 1, "topics": ["a"]}]}}
    rendered = to_toml(document)
    assert tomllib.loads(rendered) == document
    assert rendered.index("qos = 1") < rendered.index("[inputs.mqtt_consumer.tagpass]")


def test_lists_of_tables_inside_values_stay_inline() -> None:
    document = {"processors": {"starlark": [{"constants": {"matrix": [[{"a": 1}], [{"b": 2}]]}}]}}
    assert tomllib.loads(to_toml(document)) == document


def test_environment_references_stay_literal_strings() -> None:
    rendered = to_toml({"outputs": {"influxdb": [{"password": "${INFLUX_PASSWORD}"}]}})
    assert 'password = "${INFLUX_PASSWORD}"' in rendered


def test_quotes_backslashes_and_dotted_keys_are_escaped() -> None:
    data = {"section": {'we"ird': 'a "quoted" \\ value\nnext', "dotted.key": 1}}
    assert tomllib.loads(to_toml(data)) == data


def test_null_values_are_left_out() -> None:
    assert tomllib.loads(to_toml({"a": {"b": None, "c": 1}})) == {"a": {"c": 1}}


def test_values_toml_cannot_express_are_refused_with_their_path() -> None:
    with pytest.raises(AnsibleFilterError, match=r"\$\.a\.b holds a null item"):
        to_toml({"a": {"b": [1, None]}})
    with pytest.raises(AnsibleFilterError, match="expected a dict"):
        to_toml(["not", "a", "table"])


def test_from_toml_reads_back_what_to_toml_writes() -> None:
    assert from_toml(to_toml(TELEGRAF)) == TELEGRAF


def test_from_toml_names_the_position_of_a_syntax_error() -> None:
    with pytest.raises(AnsibleFilterError, match=r"not valid TOML: .*line 2"):
        from_toml('[agent]\ninterval = "10s\n')
    with pytest.raises(AnsibleFilterError, match="expected TOML text"):
        from_toml({"agent": {}})


keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda children: st.dictionaries(keys, st.one_of(children, st.lists(children, min_size=1, max_size=3)), max_size=3),
    max_leaves=12,
)


@given(documents)
def test_any_document_round_trips(document: dict) -> None:
    assert tomllib.loads(to_toml(document)) == document


tables_only = st.recursive(
    st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=4),
    lambda children: st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
)


@given(tables_only)
def test_documents_without_arrays_of_tables_are_written_exactly_as_tomli_w_writes_them(document: dict) -> None:
    # The influxdb role's influxdb.conf has no arrays of tables: its text must not change with this filter.
    assert to_toml(document) == tomli_w.dumps(document)
