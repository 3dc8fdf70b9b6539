"""The stack's pods on the cluster survive a slow start: each main container has a startup probe on the endpoint its
liveness probe checks, lasting the role's startup timeout, so the kubelet does not restart an InfluxDB that is still
opening its shards, a Grafana still migrating its database or a broker still loading its sessions."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .role_files import ROOT, RoleFiles

# What each role's tasks set before its template renders.
RENDERED: dict[str, dict[str, Any]] = {
    "influxdb": {"influxdb_rendered_config": "[http]\n", "influxdb_kubernetes_environment": {}},
    "grafana": {
        "grafana_rendered": {"ini": "[server]\n", "provisioning": {}, "dashboards": {}},
        "grafana_admin_password": "x",
    },
    "mosquitto": {
        "mosquitto_rendered_config": "listener 1883\n",
        "mosquitto_rendered_acl": "",
        "mosquitto_credentials": [],
        "mosquitto_kubernetes_passwd": "",
    },
}


def main_container(role: str, **overrides: Any) -> dict[str, Any]:
    files = RoleFiles.load(role)
    template = (ROOT / f"roles/{role}/templates/kubernetes.yml.j2").read_text()
    variables = {"ansible_managed": "managed", **RENDERED[role], **overrides}
    objects = yaml.safe_load(files.render(template, **variables))
    [workload] = [item for item in objects if item["kind"] in ("Deployment", "StatefulSet")]
    [container] = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == role]
    return dict(container)


@pytest.mark.parametrize(("role", "timeout"), [("influxdb", 600), ("grafana", 300), ("mosquitto", 300)])
def test_the_startup_probe_lasts_the_startup_timeout_then_the_liveness_probe_takes_over(
    role: str, timeout: int
) -> None:
    container = main_container(role)
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == timeout
    # The same endpoint; no delay of its own, which the startup probe makes needless.
    assert {k: v for k, v in startup.items() if k in ("httpGet", "tcpSocket")} == {
        k: v for k, v in liveness.items() if k in ("httpGet", "tcpSocket")
    }
    assert "initialDelaySeconds" not in liveness
    longer = main_container(role, **{f"{role}_kubernetes_startup_timeout": 3601})
    assert longer["startupProbe"]["periodSeconds"] * longer["startupProbe"]["failureThreshold"] >= 3601
