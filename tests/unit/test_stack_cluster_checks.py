"""stack_cluster_problems: the stack-on-the-cluster settings preflight refuses before any host changes."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.filter.stack import (
    dns_label_problems,
    pod_bind_problems,
    stack_cluster_problems,
)

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
    "sensorstack_pod_cidr": "10.244.0.0/16",
    "sensorstack_stack_local_storage_class": "sensorstack-local",
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
        ({"sensorstack_stack_storage_node": "cp1", "cluster_nodes": ["worker1"]}, "that runs workloads"),
        ({"sensorstack_stack_storage_path": "volumes"}, "sensorstack_stack_storage_path must be an absolute path"),
        (
            {"sensorstack_stack_admin_cidrs": ["10.213.0.0/24", "10.244.3.0/24"]},
            "sensorstack_stack_admin_cidrs: 10.244.3.0/24 lies in the pod network (sensorstack_pod_cidr 10.244.0.0/16)",
        ),
        (
            {"sensorstack_stack_device_cidrs": ["10.213.0.0/24", "10.244.0.0/16"]},
            "sensorstack_stack_device_cidrs: 10.244.0.0/16 lies in the pod network",
        ),
    ],
    ids=[
        "namespace",
        "host-bits",
        "not-a-list",
        "admin-network",
        "device-network",
        "size",
        "storage-node",
        "tainted-storage-node",
        "path",
        "admin-network-of-pods",
        "device-network-of-pods",
    ],
)
def test_a_bad_setting_is_named(changes: dict[str, Any], expected: str) -> None:
    assert any(expected in problem for problem in problems(**changes)), problems(**changes)


def test_a_network_around_the_pod_network_passes() -> None:
    # The policies leave the pod network out of it (kubernetes_objects.ip_block).
    assert problems(sensorstack_stack_admin_cidrs=["10.0.0.0/8"], sensorstack_stack_device_cidrs=["10.0.0.0/8"]) == []


def test_a_network_that_is_only_another_nodes_address_is_refused() -> None:
    found = problems(
        sensorstack_stack_admin_cidrs=["10.213.0.11/32", "10.213.0.21/32"],
        sensorstack_stack_device_cidrs=["10.213.0.0/24"],
        sensorstack_stack_left_out_addresses=["10.213.0.21", "10.213.0.22"],
    )

    assert len(found) == 1, found
    assert found[0].startswith("sensorstack_stack_admin_cidrs: 10.213.0.21/32 is the address of a cluster node other")


def test_a_service_reached_through_its_own_url_needs_no_admin_network() -> None:
    urls = {
        "influxdb_kubernetes_api_url": "https://influx.example",
        "grafana_kubernetes_api_url": "https://grafana.example",
    }
    without_verify = {"sensorstack_stack_components": ["influxdb", "grafana"]}

    assert problems(sensorstack_stack_admin_cidrs=[], **urls, **without_verify) == []


def test_the_verify_play_reads_influxdb_through_its_node_port_even_with_a_url_of_ones_own() -> None:
    found = problems(
        sensorstack_stack_admin_cidrs=[],
        influxdb_kubernetes_api_url="https://influx.example",
        grafana_kubernetes_api_url="https://grafana.example",
    )

    assert len(found) == 1 and "configures influxdb through the node ports" in found[0]
    assert "verify play's reading back" in found[0]


def test_a_storage_class_of_ones_own_needs_no_storage_node() -> None:
    assert problems(sensorstack_stack_storage_class="longhorn", sensorstack_stack_storage_node="") == []


def test_the_local_volumes_class_named_outright_is_refused() -> None:
    # Named, it would skip the local volumes it stands for: the claims would wait for volumes nobody makes.
    [problem] = problems(sensorstack_stack_storage_class="sensorstack-local")
    assert problem.startswith("sensorstack_stack_storage_class: 'sensorstack-local' is the class of the local volumes")


def test_a_stack_without_the_verified_path_needs_no_device_network() -> None:
    assert problems(sensorstack_stack_components=["influxdb", "grafana"], sensorstack_stack_device_cidrs=[]) == []


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:8086", "[::1]:8086", "::1", "localhost"])
def test_a_loopback_bind_address_is_named(address: str) -> None:
    assert pod_bind_problems(address, "influxdb_http_address") == [
        f"influxdb_http_address ({address}) is a loopback address: on Kubernetes the probes and the Service reach the "
        "pod on its own address; leave it empty for the cluster (group_vars of the control plane)"
    ]


def test_listeners_on_every_interface_pass_and_a_loopback_one_is_named_by_index() -> None:
    listeners = [{"port": 1883}, {"port": 8883, "address": "0.0.0.0"}, {"port": 9001, "address": "127.0.0.1"}]

    (problem,) = pod_bind_problems(listeners, "mosquitto_listeners")

    assert problem.startswith("mosquitto_listeners[2].address (127.0.0.1) is a loopback address")
    assert pod_bind_problems("", "grafana_http_addr") == pod_bind_problems("::", "grafana_http_addr") == []


@pytest.mark.parametrize("address", ["192.168.10.5", "10.0.0.5:3000", "[fd00::5]:8086"])
def test_an_edge_hosts_own_address_is_refused_on_the_cluster(address: str) -> None:
    (problem,) = pod_bind_problems(address, "influxdb_http_address")
    assert problem.startswith(f"influxdb_http_address ({address}) is a fixed address: on Kubernetes a pod gets its own")


@pytest.mark.parametrize("value", ["telegraf", "t", "edge-1", "a" * 63])
def test_a_dns_label_passes(value: str) -> None:
    assert dns_label_problems(value, "telegraf_kubernetes_hostname") == []


@pytest.mark.parametrize("value", ["Telegraf", "-telegraf", "telegraf.lab", "a" * 64, ""])
def test_a_name_that_is_no_dns_label_is_named(value: str) -> None:
    [problem] = dns_label_problems(value, "telegraf_kubernetes_hostname")
    assert problem.startswith("telegraf_kubernetes_hostname must be a DNS label")
