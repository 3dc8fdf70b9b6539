"""The dashboards shipped in roles/grafana are valid Grafana JSON and query what Telegraf really writes.

What Telegraf writes (``../shared/reference/mosquitto-telegraf.md``): the ``mqtt_consumer`` input names its measurement
``mqtt_consumer``, adds the tags ``topic`` and ``host``, and ``topic_parsing`` on ``sensors/<site>/<device>`` adds the
tags ``site`` and ``device``; the JSON payload's numbers become fields. ``[[inputs.internal]]`` writes Telegraf's own
counters (``internal_write`` tagged ``output``; ``internal_mqtt_consumer``), and InfluxDB's monitor writes
``_internal.monitor.httpd`` tagged ``hostname`` and ``bind``. The queries themselves run against a real influxd in
``tests/integration/test_grafana_dashboard_queries.py``; here every rule that needs no server is checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana_compare import dashboard_uid

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "roles/grafana/files/dashboards").glob("*.json"))
SENSORS = ROOT / "roles/grafana/files/dashboards/sensorstack-sensors.json"

# Measurement -> the tag keys Telegraf (or InfluxDB's monitor) writes on it.
TAGS = {
    "$measurement": {"site", "device", "topic", "host"},
    "internal_mqtt_consumer": {"host", "version"},
    "internal_write": {"host", "output", "alias", "version"},
    '"_internal"."monitor"."httpd"': {"hostname", "bind"},
}
GRAFANA_BUILTINS = {"timeFilter", "__interval", "__interval_ms", "__range", "__rate_interval"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))
    return flat


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["query"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def measurement_of(query: str) -> str:
    match = re.search(r'\bFROM\s+("(?:[^"]|"\.")*"|\S+)', query)
    assert match, f"no FROM in {query}"
    name = match.group(1)
    return name[1:-1] if re.fullmatch(r'"[^"]*"', name) else name


def tag_keys(query: str) -> set[str]:
    """Identifiers used as tags: compared in WHERE, listed in GROUP BY, or named by WITH KEY."""
    keys = set(re.findall(r'"([A-Za-z_][\w]*)"\s*(?:=~|!~|=|!=|<>)\s*[\'/]', query))
    keys |= set(re.findall(r'WITH KEY\s*=\s*"([^"]+)"', query))
    group_by = re.search(r"GROUP BY (.*?)(?: fill\(|$)", query)
    if group_by:
        keys |= set(re.findall(r'"([^"]+)"', group_by.group(1)))
    return keys


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in dashboard["templating"]["list"] if v["name"] == name)


def test_there_is_a_shipped_dashboard() -> None:
    assert SENSORS in DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_a_shipped_dashboard_has_a_stable_identity_and_no_server_owned_keys(path: Path) -> None:
    dashboard = load(path)
    assert dashboard_uid(dashboard, None) == dashboard["uid"]
    assert dashboard["title"].strip() and isinstance(dashboard["schemaVersion"], int)
    assert "id" not in dashboard and "version" not in dashboard


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid(path: Path) -> None:
    every = panels(load(path))
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        cells |= area


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_goes_through_the_datasource_variable(path: Path) -> None:
    dashboard = load(path)
    assert variable(dashboard, "datasource")["type"] == "datasource"
    assert variable(dashboard, "datasource")["query"] == "influxdb"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
            assert target["rawQuery"] is True


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_variable_a_query_uses_is_defined(path: Path) -> None:
    dashboard = load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
    texts = queries(dashboard) + [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    texts += [panel.get("title", "") for panel in panels(dashboard)]
    for text in texts:
        used = set(re.findall(r"\$\{?(\w+)", text)) - {name for name in re.findall(r"\$tag_(\w+)", text)}
        used = {name for name in used if not name.startswith("tag_")}
        assert used <= defined, f"{text}: undefined {used - defined}"


def test_readings_are_filtered_and_grouped_by_the_tags_topic_parsing_writes() -> None:
    dashboard = load(SENSORS)
    assert variable(dashboard, "measurement")["query"] == "mqtt_consumer"
    assert variable(dashboard, "site")["query"] == 'SHOW TAG VALUES FROM "$measurement" WITH KEY = "site"'
    device = variable(dashboard, "device")["query"]
    assert 'WITH KEY = "device"' in device and '"site" =~ /^$site$/' in device
    assert variable(dashboard, "field")["query"] == 'SHOW FIELD KEYS FROM "$measurement"'
    readings = [q for q in queries(dashboard) if measurement_of(q) == "$measurement"]
    assert readings, "no panel shows the sensor readings"
    for query in readings:
        assert {"site", "device"} <= tag_keys(query), query


def test_every_tag_a_query_uses_is_one_its_measurement_has() -> None:
    dashboard = load(SENSORS)
    texts = queries(dashboard) + [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for text in texts:
        if text.startswith("SHOW FIELD KEYS"):
            continue
        measurement = measurement_of(text)
        assert measurement in TAGS, f"{text}: unknown measurement {measurement}"
        assert tag_keys(text) <= TAGS[measurement], f"{text}: tags {tag_keys(text) - TAGS[measurement]} are not written"


def test_time_series_queries_follow_the_time_range_and_interval() -> None:
    for query in queries(load(SENSORS)):
        assert "$timeFilter" in query, query
        if "GROUP BY time(" in query:
            assert "GROUP BY time($__interval)" in query, query
        assert query.count('"') % 2 == 0 and query.count("(") == query.count(")") and query.count("'") % 2 == 0


def test_the_stack_health_row_shows_messages_received_and_points_written() -> None:
    dashboard = load(SENSORS)
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Sensor readings", "Stack health"]
    health = {measurement_of(q) for q in queries(dashboard)} - {"$measurement"}
    assert health == {"internal_mqtt_consumer", "internal_write", '"_internal"."monitor"."httpd"'}
    joined = " ".join(queries(dashboard))
    assert '"messages_received"' in joined and '"metrics_written"' in joined and '"pointsWrittenOK"' in joined


def test_the_readings_panel_repeats_for_each_reading() -> None:
    [panel] = [p for p in panels(load(SENSORS)) if p.get("repeat")]
    assert panel["repeat"] == "field" and 'mean("$field")' in panel["targets"][0]["query"]
    assert variable(load(SENSORS), "field")["multi"] and variable(load(SENSORS), "field")["includeAll"]


def test_the_telegraf_role_writes_the_tags_and_metrics_the_dashboard_reads() -> None:
    """The telegraf role's defaults: topic_parsing yields site and device, and the internal input is on."""
    defaults_file = ROOT / "roles/telegraf/defaults/main.yml"
    if not defaults_file.exists():
        pytest.skip("roles/telegraf is not in this checkout")
    defaults = yaml.safe_load(defaults_file.read_text())
    parsed_tags = {
        tag for rule in defaults["telegraf_mqtt_topic_parsing"] for tag in rule["tags"].split("/") if tag != "_"
    }
    assert {"site", "device"} <= parsed_tags <= TAGS["$measurement"]
    assert defaults["telegraf_mqtt_topic_tag"] in TAGS["$measurement"]
    assert defaults["telegraf_mqtt_input"]["plugin"] == variable(load(SENSORS), "measurement")["query"]
    assert defaults["telegraf_internal_input"]["plugin"] == "internal"
    assert "{{ telegraf_internal_input }}" in defaults["telegraf_inputs"]
