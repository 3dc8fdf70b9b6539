"""The to_toml filter: what it writes parses back to the same data."""

from __future__ import annotations

import tomllib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.toml import to_toml
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
