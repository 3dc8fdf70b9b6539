"""roles/sensorstack/tasks/kubernetes_endpoint.yml: the one URL at which InfluxDB, Grafana and the verify play reach a
stack Service from outside the cluster, built from what it read (the Service's node port, the node of its pod)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("sensorstack")
TASKS = yaml.safe_load((ROOT / "roles/sensorstack/tasks/kubernetes_endpoint.yml").read_text())
[KEEP] = [task for task in TASKS if task["name"].startswith("Keep the address the service answers at")]


def found(host_ip: str, running: bool = True) -> dict[str, Any]:
    return {
        "services": [{"spec": {"ports": [{"port": 8086, "nodePort": 30086}]}}],
        "pods": [{"metadata": {}, "status": {"hostIP": host_ip}}] if running else [],
    }


def url(endpoint_found: dict[str, Any], **variables: Any) -> str:
    return ROLE.render(
        KEEP["ansible.builtin.set_fact"]["sensorstack_endpoint_url"],
        sensorstack_endpoint_found=endpoint_found,
        sensorstack_endpoint_port=8086,
        **variables,
    )


@pytest.mark.parametrize(
    ("host_ip", "variables", "expected"),
    [
        ("10.213.0.21", {}, "http://10.213.0.21:30086"),
        ("fd00::21", {}, "http://[fd00::21]:30086"),
        ("10.213.0.21", {"sensorstack_endpoint_scheme": "mqtts"}, "mqtts://10.213.0.21:30086"),
    ],
    ids=["IPv4 node", "IPv6 node in brackets", "the caller's scheme"],
)
def test_the_url_is_the_node_port_on_the_node_of_the_pod(
    host_ip: str, variables: dict[str, Any], expected: str
) -> None:
    assert url(found(host_ip), **variables) == expected


def test_a_service_without_a_running_pod_has_no_url() -> None:
    assert url(found("10.213.0.21", running=False)) == ""
