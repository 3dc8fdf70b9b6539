"""The stack's node ports: in the API server's range, and none held by another Service of the cluster (a second
stack, another namespace), found before the apply would stop half-way; and which listener gets which node port."""

from __future__ import annotations

from typing import Any

from ansible_collections.sensorstack.iot.plugins.filter.mosquitto import mosquitto_node_ports
from ansible_collections.sensorstack.iot.plugins.filter.stack import (
    node_port_problems,
    node_ports_claim,
    node_ports_held,
)


def service(namespace: str, name: str, *node_ports: int) -> dict[str, Any]:
    ports = [{"port": 80, "nodePort": port} for port in node_ports] + [{"port": 443}]
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"ports": ports}}


HELD = node_ports_held(
    [
        service("sensorstack", "mosquitto", 31883, 30883),
        service("sensorstack", "influxdb", 30086),
        service("staging", "grafana", 30300),
        service("default", "kubernetes"),
    ]
)


def test_the_held_node_ports_name_their_service() -> None:
    assert HELD == [
        {"service": "sensorstack/mosquitto", "node_port": 31883},
        {"service": "sensorstack/mosquitto", "node_port": 30883},
        {"service": "sensorstack/influxdb", "node_port": 30086},
        {"service": "staging/grafana", "node_port": 30300},
    ]
    assert node_ports_held(None) == []


def test_a_service_keeps_its_own_node_ports_on_a_rerun() -> None:
    assert node_port_problems({"influxdb_kubernetes_node_port": 30086}, HELD, "sensorstack", "influxdb") == []
    claimed = {"1883": 31883, "8883": 30883}
    assert node_port_problems(claimed, HELD, "sensorstack", "mosquitto", "mosquitto_kubernetes_node_ports") == []


def test_a_node_port_another_service_holds_is_refused_with_the_variable_and_the_holder() -> None:
    assert node_port_problems({"grafana_kubernetes_node_port": 30300}, HELD, "sensorstack", "grafana") == [
        "grafana_kubernetes_node_port (30300) is held by the Service staging/grafana of the cluster: choose another"
        " node port, or remove that Service"
    ]
    # A second stack in another namespace, with the shipped node ports.
    claimed = {"1883": 31883}
    assert node_port_problems(claimed, HELD, "staging", "mosquitto", "mosquitto_kubernetes_node_ports") == [
        "mosquitto_kubernetes_node_ports[1883] (31883) is held by the Service sensorstack/mosquitto of the cluster:"
        " choose another node port, or remove that Service"
    ]


def test_a_node_port_outside_the_api_servers_range_is_refused_without_a_cluster() -> None:
    claimed = {"influxdb_kubernetes_node_port": 8086, "other": "http", "last": 32767, "first": 30000}
    assert node_port_problems(claimed, [], "sensorstack", "influxdb") == [
        "influxdb_kubernetes_node_port (8086) must be a node port from 30000 to 32767, the range the cluster's API"
        " server allocates from",
        "other (http) must be a node port from 30000 to 32767, the range the cluster's API server allocates from",
    ]


def test_each_listener_named_in_the_node_ports_gets_its_own_as_a_number_or_a_string() -> None:
    listeners = [{"port": 1883}, {"port": "8883", "tls": True}, {"port": 9001, "protocol": "websockets"}]
    assert mosquitto_node_ports(listeners, {1883: 31883, "8883": 30883, 1884: 31884}) == {"1883": 31883, "8883": 30883}
    assert mosquitto_node_ports(listeners, {}) == {}


def test_one_service_cannot_claim_a_node_port_twice() -> None:
    claimed = {"1883": 31883, "8883": 31883}
    assert node_port_problems(claimed, [], "sensorstack", "mosquitto", "mosquitto_kubernetes_node_ports") == [
        "mosquitto_kubernetes_node_ports[8883] (31883) is mosquitto_kubernetes_node_ports[1883] too: one Service"
        " cannot use a node port twice"
    ]


def test_two_services_of_the_stack_on_one_node_port_are_found_before_the_cluster_holds_either() -> None:
    claims = node_ports_claim(
        [], {"1883": 31883, "8883": 30883}, "sensorstack", "mosquitto", "mosquitto_kubernetes_node_ports"
    )
    claims = node_ports_claim(claims, {"influxdb_kubernetes_node_port": 30086}, "sensorstack", "influxdb")
    assert node_port_problems({"grafana_kubernetes_node_port": 30883}, claims, "sensorstack", "grafana") == [
        "grafana_kubernetes_node_port (30883) is mosquitto_kubernetes_node_ports[8883] of the Service"
        " sensorstack/mosquitto too: two Services cannot share a node port"
    ]
    assert node_port_problems({"grafana_kubernetes_node_port": 30300}, claims, "sensorstack", "grafana") == []


def test_a_service_checked_again_replaces_its_own_claims() -> None:
    claims = node_ports_claim([], {"influxdb_kubernetes_node_port": 30086}, "sensorstack", "influxdb")
    claims = node_ports_claim(claims, {"influxdb_kubernetes_node_port": 30087}, "sensorstack", "influxdb")
    assert claims == [
        {"service": "sensorstack/influxdb", "node_port": 30087, "variable": "influxdb_kubernetes_node_port"}
    ]
    # Its own claims never stop it, and a port out of range claims nothing (its own check names it).
    assert node_port_problems({"influxdb_kubernetes_node_port": 30087}, claims, "sensorstack", "influxdb") == []
    assert node_ports_claim(claims, {"influxdb_kubernetes_node_port": "http"}, "sensorstack", "influxdb") == []


def test_a_claim_of_this_run_is_named_before_the_clusters_holder_of_the_same_port() -> None:
    claims = node_ports_claim([], {"grafana_kubernetes_node_port": 30300}, "sensorstack", "grafana")
    problems = node_port_problems({"influxdb_kubernetes_node_port": 30300}, HELD + claims, "sensorstack", "influxdb")
    assert problems == [
        "influxdb_kubernetes_node_port (30300) is grafana_kubernetes_node_port of the Service sensorstack/grafana"
        " too: two Services cannot share a node port"
    ]
