"""The stack's pods on the cluster survive a slow start: each main container has a startup probe on the endpoint its
liveness probe checks, lasting the role's startup timeout, so the kubelet does not restart an InfluxDB that is still
opening its shards, a Grafana still migrating its database or a broker still loading its sessions. And their Secrets
go as data, which server-side apply prunes."""

from __future__ import annotations

import base64
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


# --- Secrets --------------------------------------------------------------------------------------------------

SECRET_SETTINGS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # role: (settings, the values its Secret must hold by key)
    "grafana": ({"grafana_admin_password": "Admin-Pw-1"}, {"secrets.admin_password": "Admin-Pw-1"}),
    "mosquitto": (
        {"mosquitto_kubernetes_secret_files": {"/etc/mosquitto/passwd": "telegraf:$7$hash\n"}},
        {"passwd": "telegraf:$7$hash\n"},
    ),
    "telegraf": (
        {
            "telegraf_platform": "kubernetes",
            "telegraf_rendered_config": "[agent]\n",
            "telegraf_environment_values": {"TELEGRAF_MQTT_PASSWORD": "Pw-2"},
        },
        {"TELEGRAF_MQTT_PASSWORD": "Pw-2"},
    ),
}


@pytest.mark.parametrize("role", list(SECRET_SETTINGS))
def test_secrets_are_applied_as_data_so_that_a_key_dropped_from_the_settings_leaves_the_cluster(role: str) -> None:
    # Server-side apply keeps a key dropped from stringData (kubernetes/kubernetes#108008): it records stringData's
    # keys, which the API server never stores. Keys of data are the applier's own, and pruned.
    settings, values = SECRET_SETTINGS[role]
    files = RoleFiles.load(role)
    template = (ROOT / f"roles/{role}/templates/kubernetes.yml.j2").read_text()
    variables = {"ansible_managed": "managed", **RENDERED.get(role, {}), **settings}
    objects = yaml.safe_load(files.render(template, **variables))
    [secret] = [item for item in objects if item["kind"] == "Secret"]
    assert "stringData" not in secret
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert {key: decoded.get(key) for key in values} == values


def test_grafana_secrets_go_to_the_secret_and_are_mounted_where_grafana_ini_refers_to_them() -> None:
    files = RoleFiles.load("grafana")
    template = (ROOT / "roles/grafana/templates/kubernetes.yml.j2").read_text()
    variables = {
        "ansible_managed": "managed",
        **RENDERED["grafana"],
        "grafana_secrets": {"smtp_password": "Smtp-Pw-3", "oauth.client_secret": "Oauth-Pw-4"},
    }
    objects = yaml.safe_load(files.render(template, **variables))
    [secret] = [item for item in objects if item["kind"] == "Secret"]
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == {
        "secrets.admin_password": "x",
        "secrets.smtp_password": "Smtp-Pw-3",
        "secrets.oauth.client_secret": "Oauth-Pw-4",
    }
    config_maps = [item for item in objects if item["kind"] == "ConfigMap"]
    assert "Pw-" not in yaml.safe_dump(config_maps)
    [workload] = [item for item in objects if item["kind"] == "Deployment"]
    [config] = [volume for volume in workload["spec"]["template"]["spec"]["volumes"] if volume["name"] == "config"]
    [mounted] = [source["secret"]["items"] for source in config["projected"]["sources"] if "secret" in source]
    # /etc/grafana is the mount: $__file{/etc/grafana/secrets/smtp_password} reads the Secret's key.
    assert {"key": "secrets.smtp_password", "path": "secrets/smtp_password"} in mounted
    assert {"key": "secrets.oauth.client_secret", "path": "secrets/oauth.client_secret"} in mounted


# --- Egress beyond the stack ----------------------------------------------------------------------------------

OUTSIDE = {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"protocol": "TCP", "port": 8086}]}


@pytest.mark.parametrize("role", ["telegraf", "grafana"])
def test_an_extra_egress_rule_joins_the_stacks_own_flows_and_nothing_else_does(role: str) -> None:
    settings, _values = SECRET_SETTINGS[role]
    files = RoleFiles.load(role)
    template = (ROOT / f"roles/{role}/templates/kubernetes.yml.j2").read_text()

    def egress(**extra: Any) -> list[dict[str, Any]]:
        variables = {"ansible_managed": "managed", **RENDERED.get(role, {}), **settings, **extra}
        policies = [
            item for item in yaml.safe_load(files.render(template, **variables)) if item["kind"] == "NetworkPolicy"
        ]
        [policy] = [item for item in policies if "Egress" in item["spec"]["policyTypes"]]
        return policy["spec"]["egress"]

    own = egress()
    assert OUTSIDE not in own
    assert egress(**{f"{role}_kubernetes_extra_egress": [OUTSIDE]}) == [*own, OUTSIDE]


# --- Node ports -----------------------------------------------------------------------------------------------

# The lab's layout: the roles configure the stack from cp1, whose pods (if it ran any) could not be told apart from it.
LAB_GROUPS = {"control_plane": ["cp1"], "workers": ["w1", "w2"]}
LAB_HOSTVARS = {
    "cp1": {"sensorstack_node_ip": "10.213.0.11"},
    "w1": {"sensorstack_node_ip": "10.213.0.21"},
    "w2": {"sensorstack_node_ip": "10.213.0.22"},
}


@pytest.mark.parametrize(
    ("role", "networks"),
    [
        ("influxdb", "sensorstack_stack_admin_cidrs"),
        ("grafana", "sensorstack_stack_admin_cidrs"),
        ("mosquitto", "sensorstack_stack_device_cidrs"),
    ],
)
def test_a_node_port_admits_the_networks_but_no_node_other_than_the_first_control_plane(
    role: str, networks: str
) -> None:
    files = RoleFiles.load(role)
    template = (ROOT / f"roles/{role}/templates/kubernetes.yml.j2").read_text()
    variables = {
        "ansible_managed": "managed",
        **RENDERED[role],
        **SECRET_SETTINGS.get(role, ({}, {}))[0],
        "groups": LAB_GROUPS,
        "hostvars": LAB_HOSTVARS,
        networks: ["10.213.0.0/24", "10.0.0.0/8"],
    }
    [policy] = [
        item
        for item in yaml.safe_load(files.render(template, **variables))
        if item["kind"] == "NetworkPolicy" and "Ingress" in item["spec"]["policyTypes"]
    ]
    blocks = [peer["ipBlock"] for rule in policy["spec"]["ingress"] for peer in rule["from"] if "ipBlock" in peer]
    assert blocks == [
        {"cidr": "10.213.0.0/24", "except": ["10.213.0.21/32", "10.213.0.22/32"]},
        {"cidr": "10.0.0.0/8", "except": ["10.213.0.21/32", "10.213.0.22/32", "10.244.0.0/16"]},
    ]


def test_preflight_leaves_a_node_of_unknown_address_to_the_stack_play_which_stops_at_it() -> None:
    files = RoleFiles.load("influxdb")
    hostvars = {**LAB_HOSTVARS, "w2": {}}
    expression = "{{ sensorstack_stack_left_out_addresses }}"

    assert files.render(
        expression, groups=LAB_GROUPS, hostvars=hostvars, sensorstack_stack_unknown_node_addresses="skip"
    ) == ["10.213.0.21"]
    with pytest.raises(Exception, match="no address is known of cluster node w2"):
        files.render(expression, groups=LAB_GROUPS, hostvars=hostvars)
