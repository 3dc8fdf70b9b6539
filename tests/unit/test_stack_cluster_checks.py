"""stack_cluster_problems: the stack-on-the-cluster settings preflight refuses before any host changes."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.filter.stack import stack_cluster_problems

VALID: dict[str, Any] = {
    "sensorstack_stack_components": ["mosquitto", "telegraf", "influxdb", "grafana"],
    "sensorstack_stack_namespace": "sensorstack",
    "sensorstack_stack_device_cidrs": ["10.213.0.0/24"],
    "sensorstack_stack_admin_cidrs": ["10.213.0.0/24"],
    "sensorstack_stack_volume_sizes": {"mosquitto": "1Gi", "influxdb": "10Gi", "grafana": "1Gi"},
    "sensorstack_stack_storage_class": "",
    "sensorstack_stack_storage_node": "worker1",
    "sensorstack_stack_storage_path": "/var/lib/sensorstack/volumes",
    "cluster_nodes": ["cp1", "worker1"],
}


def problems(address: str | None = "10.213.0.11", **changes: Any) -> list[str]:
    return stack_cluster_problems(VALID | changes, "cp1", address)


def test_the_lab_settings_pass() -> None:
    assert problems() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"sensorstack_stack_namespace": "Sensor_Stack"}, "sensorstack_stack_namespace must be a DNS label"),
        ({"sensorstack_stack_device_cidrs": ["10.213.0.1/24"]}, "sensorstack_stack_device_cidrs: '10.213.0.1/24'"),
        ({"sensorstack_stack_admin_cidrs": "10.213.0.0/24"}, "sensorstack_stack_admin_cidrs must be a list"),
        ({"sensorstack_stack_admin_cidrs": ["192.0.2.0/24"]}, "cp1 (10.213.0.11) configures influxdb and grafana"),
        ({"sensorstack_stack_device_cidrs": []}, "cp1 (10.213.0.11) publishes the verify play's reading"),
        ({"sensorstack_stack_volume_sizes": {"mosquitto": "1Gi", "influxdb": "ten"}}, "volume_sizes.influxdb"),
        ({"sensorstack_stack_storage_node": "edge1"}, "sensorstack_stack_storage_node must name a cluster node"),
        ({"sensorstack_stack_storage_path": "volumes"}, "sensorstack_stack_storage_path must be an absolute path"),
    ],
    ids=["namespace", "host-bits", "not-a-list", "admin-network", "device-network", "size", "storage-node", "path"],
)
def test_a_bad_setting_is_named(changes: dict[str, Any], expected: str) -> None:
    assert any(expected in problem for problem in problems(**changes)), problems(**changes)


def test_a_service_reached_through_its_own_url_needs_no_admin_network() -> None:
    assert (
        problems(
            sensorstack_stack_admin_cidrs=[],
            influxdb_kubernetes_api_url="https://influx.example",
            grafana_kubernetes_api_url="https://grafana.example",
        )
        == []
    )


def test_a_storage_class_of_ones_own_needs_no_storage_node() -> None:
    assert problems(sensorstack_stack_storage_class="longhorn", sensorstack_stack_storage_node="") == []


def test_a_stack_without_the_verified_path_needs_no_device_network() -> None:
    assert problems(sensorstack_stack_components=["influxdb", "grafana"], sensorstack_stack_device_cidrs=[]) == []
