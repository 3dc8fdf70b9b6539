"""Where the roles reach a co-located server on an edge host: loopback when it listens on every interface, its own
address when it is bound to one (the role's API checks, Telegraf's output and input, Grafana's datasource); and the
configuration file the server's unit reads."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.filter.stack import local_host

from .role_files import ROLES, RoleFiles


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("192.0.2.31", "192.0.2.31"),
        ("192.0.2.31:8086", "192.0.2.31"),
        ("[fd00::31]:8086", "fd00::31"),
        (None, "127.0.0.1"),
    ],
)
def test_a_server_answers_on_loopback_unless_bound_to_one_address(address: str | None, host: str) -> None:
    assert local_host(address) == host


def test_the_influxdb_role_checks_its_api_on_the_address_it_binds() -> None:
    influxdb = RoleFiles.load("influxdb")
    assert influxdb.render("{{ influxdb_api_url }}") == "http://127.0.0.1:8086"
    assert influxdb.render("{{ influxdb_api_url }}", influxdb_http_address="192.0.2.31") == "http://192.0.2.31:8086"
    assert influxdb.render("{{ influxdb_api_url }}", influxdb_http_address="fd00::31") == "http://[fd00::31]:8086"


def test_telegraf_and_grafana_reach_the_broker_and_influxdb_where_they_listen() -> None:
    bound = {
        "influxdb_http_address": "192.0.2.31",
        "mosquitto_listeners": [{"port": 8883, "tls": True}, {"port": 1884, "address": "192.0.2.32"}],
    }
    telegraf = RoleFiles.load("telegraf")
    assert telegraf.render("{{ telegraf_influxdb_urls }}", telegraf_platform="systemd", **bound) == [
        "http://192.0.2.31:8086"
    ]
    assert telegraf.render("{{ telegraf_mqtt_servers }}", telegraf_platform="systemd", **bound) == [
        "tcp://192.0.2.32:1884"
    ]
    assert telegraf.render("{{ telegraf_mqtt_servers }}", telegraf_platform="systemd") == ["tcp://127.0.0.1:1883"]
    grafana = RoleFiles.load("grafana")
    assert grafana.render("{{ grafana_influxdb_url }}", grafana_platform="systemd", **bound) == "http://192.0.2.31:8086"
    assert grafana.render("{{ grafana_url }}", grafana_http_addr="192.0.2.33") == "http://192.0.2.33:3000"


# --- The configuration file the distribution's unit reads -----------------------------------------------------

UNIT_READS = {"mosquitto": "/etc/mosquitto/mosquitto.conf", "influxdb": "/etc/influxdb/influxdb.conf"}


@pytest.mark.parametrize("role", list(UNIT_READS))
def test_a_configuration_file_the_unit_never_reads_is_refused_on_systemd_only(role: str) -> None:
    files = RoleFiles.load(role)
    [check] = [
        task
        for task in yaml.safe_load((ROLES / role / "tasks/validate.yml").read_text())
        if task["name"].startswith("Check the platform")
    ]
    expression = check["vars"][f"{role}_platform_problems"]

    def problems(**settings: str) -> list[str]:
        return files.render(expression, **{f"{role}_platform": "systemd", **settings})

    assert problems() == []
    [problem] = problems(**{f"{role}_config_file": "/srv/broker.conf"})
    assert problem.startswith(f"{role}_config_file must be {UNIT_READS[role]} on systemd, the file")
    assert problem.endswith("(got /srv/broker.conf)")
    assert problems(**{f"{role}_platform": "kubernetes", f"{role}_config_file": "/srv/broker.conf"}) == []
