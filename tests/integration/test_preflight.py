"""Preflight rejects bad input with a message naming the variable, before any task changes a host.

Every case runs preflight, site.yml's first step, against a real lab container with a malformed inventory and checks
that the run fails, that the message names what to fix, and that no host reports a change; two cases run the whole
site.yml and check that it stops there. Several inventory
hosts may point at the same container: the checks are about the inventory, not the machine count.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, container_network, run_playbook, write_inventory


def inventory_for(container: str, **layout: list[str]) -> dict[str, Any]:
    """An inventory whose role groups hold the given hosts, every host being the same container."""
    groups = layout or {"control_plane": ["cp1"], "workers": ["w1"]}
    return {
        "all": {
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_host": container,
                "ansible_python_interpreter": "/usr/bin/python3",
                # A cluster needs its apt key pinned (kubernetes_packages): any well-formed checksum passes preflight.
                "sensorstack_kubernetes_apt_key_checksum": "sha256:" + "0" * 64,
            },
            "children": {
                "sensorstack": {
                    "children": {group: {"hosts": {host: None for host in hosts}} for group, hosts in groups.items()}
                }
            },
        }
    }


def with_vars(inventory: dict[str, Any], **variables: Any) -> dict[str, Any]:
    changed = copy.deepcopy(inventory)
    changed["all"]["vars"].update(variables)
    return changed


@pytest.fixture(scope="module")
def container(lab_host_factory) -> str:
    return lab_host_factory("preflight", "debian12")


CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str]]] = {
    # name: (role-group layout, variables, fragments the failure message must contain)
    "misspelt role group": (
        {"control_plane": ["cp1"], "worker": ["w1"]},
        {},
        ["host w1 has no known host role", "did you mean 'workers'?"],
    ),
    # Without this check the plays' hosts: lines, which read no inventory variable, matched no control plane and
    # skipped kubeadm init while preflight passed.
    "control-plane group renamed in the inventory instead of on the command line": (
        {"masters": ["cp1"], "workers": ["w1"]},
        {"sensorstack_control_plane_group": "masters"},
        ["sensorstack_control_plane_group is 'masters' in the inventory", "-e sensorstack_control_plane_group=masters"],
    ),
    "host in two role groups": (
        {"control_plane": ["cp1"], "workers": ["cp1", "w1"]},
        {},
        ["host cp1 has duplicate host roles (control_plane, workers)"],
    ),
    "no control-plane group": (
        {"workers": ["w1"]},
        {},
        ["sensorstack_control_plane_group: group 'control_plane'"],
    ),
    "hosts group named in the inventory instead of on the command line": (
        {},
        {"sensorstack_hosts_group": "iot"},
        ["sensorstack_hosts_group is 'iot' in the inventory", "-e sensorstack_hosts_group=iot"],
    ),
    "pod CIDR prefix out of range": (
        {},
        {"sensorstack_pod_cidr": "10.244.0.0/33"},
        ["sensorstack_pod_cidr", "not a valid CIDR"],
    ),
    "pod CIDR with host bits": (
        {},
        {"sensorstack_pod_cidr": "10.244.1.0/16"},
        ["did you mean 10.244.0.0/16?"],
    ),
    "service CIDR not a CIDR": (
        {},
        {"sensorstack_service_cidr": "services"},
        ["sensorstack_service_cidr: 'services' is not a CIDR"],
    ),
    "pod and service networks overlap": (
        {},
        {"sensorstack_service_cidr": "10.244.128.0/20"},
        ["sensorstack_pod_cidr (10.244.0.0/16) overlaps sensorstack_service_cidr (10.244.128.0/20)"],
    ),
    "declared host network overlaps the pods": (
        {},
        {"sensorstack_host_cidrs": ["192.0.2.0/24", "10.244.32.0/24"]},
        ["overlaps sensorstack_host_cidrs[1] (10.244.32.0/24)"],
    ),
    "unsupported operating system": (
        {},
        {"preflight_supported_distributions": {"Debian": ["13"], "Ubuntu": ["24"]}},
        [
            "runs Debian 12 (ansible_distribution, ansible_distribution_major_version)",
            "preflight_supported_distributions",
        ],
    ),
    "role variable of the wrong type": ({}, {"common_disable_swap": "sometimes"}, ["common_disable_swap"]),
    "role variable outside its choices": ({}, {"common_time_sync": "ntpd"}, ["common_time_sync", "ntpd"]),
    "unknown container runtime source": (
        {},
        {"docker_install_source": "snap"},
        ["docker_install_source", "snap"],
    ),
    "registry mirror that is not a URL": (
        {},
        {"docker_registry_mirrors": ["mirror:5000"]},
        ["docker_registry_mirrors[0]: 'mirror:5000' is not an http or https URL"],
    ),
    "daemon options that are not a dict": (
        {},
        {"docker_daemon_options": "a=b"},
        ["docker_daemon_options"],
    ),
    # The three checks below read the inventory's settings by name (preflight's vars/main.yml).
    "firewall rule with a port out of range": (
        {},
        {"firewall_extra_rules": [{"name": "web", "ports": [70000], "sources": ["10.0.0.0/8"]}]},
        ["firewall_extra_rules[0].ports: 70000 is not a port (1-65535)"],
    ),
    "control-plane Kubernetes version the pinned kubeadm cannot deploy": (
        {},
        {"kubeadm_control_plane_kubernetes_version": "1.20.0"},
        ["kubeadm_control_plane_kubernetes_version 1.20.0 is not one kubeadm"],
    ),
    "a mirrored site whose runtime would come from Docker's repository": (
        {},
        {"sensorstack_mirror": "http://192.0.2.10:8080", "docker_install_source": "repo"},
        ["but docker_install_source is repo, which installs Docker Engine", "set docker_install_source to distro"],
    ),
    "containerd registry listed twice": (
        {},
        {"containerd_registry_mirrors": [{"registry": "docker.io", "mirrors": [{"url": "http://10.0.0.9:5000"}]}] * 2},
        ["containerd_registry_mirrors: registry 'docker.io' is listed twice"],
    ),
    "malformed node address": (
        {},
        {"sensorstack_node_ip": "10.0.0.300"},
        ["sensorstack_node_ip of host", "'10.0.0.300'"],
    ),
    # The cases below are the checks of the roles that run after preflight (their tasks/validate.yml), which
    # preflight runs on the hosts that run each role: without it they stopped the run only once the packages were
    # in or the cluster was up.
    "firewall SSH port out of range": (
        {},
        {"firewall_ssh_port": 70000},
        ["70000 is not a port (1-65535)"],
    ),
    "the firewall's former single source list": (
        {},
        {"firewall_cluster_sources": ["10.0.0.0/8"]},
        ["firewall_cluster_sources is no longer read"],
    ),
    "Docker user that does not exist": (
        {},
        {"docker_users": ["no-such-operator"]},
        ["docker_users: no-such-operator do not exist on cp1"],
    ),
    "Kubernetes signing key with a malformed checksum": (
        {},
        {"kubernetes_packages_repo_key_checksum": "md5:0123"},
        ["kubernetes_packages_repo_key_checksum must be sha256:<64 hex digits>"],
    ),
    "Kubernetes signing key not pinned": (
        {},
        {"sensorstack_kubernetes_apt_key_checksum": ""},
        ["kubernetes_packages_repo_key_checksum is empty (its default is sensorstack_kubernetes_apt_key_checksum)"],
    ),
    "API load balancer on the API servers' port": (
        {},
        {"apiserver_lb_port": 6443},
        ["apiserver_lb_port (default sensorstack_api_load_balancer_port) must be a port other than 6443"],
    ),
    "every kubeadm preflight error ignored on the first control plane": (
        {},
        {"kubeadm_control_plane_ignore_preflight_errors": ["all"]},
        ['kubeadm_control_plane_ignore_preflight_errors contains "all"'],
    ),
    "Calico address blocks wider than an IPv4 address": (
        {},
        {"calico_pool_block_size": 33},
        ["calico_pool_block_size must be between 20 and 32 (IPv4), got 33"],
    ),
    "join token lifetime that is not a duration": (
        {},
        {"kubeadm_join_token_ttl": "forever"},
        ["kubeadm_join_token_ttl, kubeadm_join_tls_bootstrap_timeout and kubeadm_join_control_plane_timeout must be"],
    ),
    "certificate renewal threshold under a day": (
        {},
        {"kubeadm_certificates_renew_days_before": 0},
        ["kubeadm_certificates_renew_days_before must be at least 1 (days before expiry), got 0"],
    ),
    # systemd on the node itself reads the expression, in preflight as in the role.
    "certificate renewal calendar that systemd cannot read": (
        {},
        {"kubeadm_certificates_renewal_on_calendar": "every full moon"},
        ["systemd does not read kubeadm_certificates_renewal_on_calendar"],
    ),
}


# An edge host with the whole stack, valid as it stands: each stack case below changes one setting.
EDGE = {"control_plane": ["cp1"], "workers": ["w1"], "edge": ["e1"]}
STACK = {
    "sensorstack_stack_components": ["mosquitto", "telegraf", "influxdb", "grafana"],
    # Any executable on the controller: preflight only checks that the binary to copy exists.
    "telegraf_install_source": "binary",
    "telegraf_binary_src": "/bin/true",
    "mosquitto_users": [{"name": "telegraf", "password": "mqtt-telegraf-pw"}],
    "influxdb_admin_password": "vaulted-admin-pw",
    "influxdb_databases": [{"name": "telemetry"}],
    "influxdb_users": [
        {"name": "telegraf", "password": "influx-telegraf-pw"},
        {"name": "grafana", "password": "influx-grafana-pw"},
    ],
    "grafana_admin_password": "vaulted-grafana-pw",
    "grafana_apt_key_checksum": "sha256:" + "0" * 64,
}

STACK_CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "the first control plane outside the admin networks": (
        {"sensorstack_stack_admin_cidrs": ["192.0.2.0/24"], "sensorstack_stack_device_cidrs": ["192.0.2.0/24"]},
        ["configures influxdb and grafana through the node ports", "sensorstack_stack_admin_cidrs"],
    ),
    # name: (settings changed from STACK, fragments the failure message must contain)
    "two broker listeners on one port": (
        {"mosquitto_listeners": [{"port": 1883}, {"port": 1883, "protocol": "websockets"}]},
        ["mosquitto_listeners: port 1883 is used by more than one listener"],
    ),
    "TLS listener without a certificate": (
        {"mosquitto_listeners": [{"port": 1883}, {"port": 8883, "tls": True}]},
        ["TLS listener on port 8883 needs certfile (or mosquitto_tls_cert)"],
    ),
    "ACL rule without a topic": (
        {"mosquitto_acl_patterns": [{"topic": "", "access": "read"}]},
        ["mosquitto_acl_patterns: a rule has no topic"],
    ),
    "well-known InfluxDB admin password": (
        {"influxdb_admin_password": "changeme"},
        ["influxdb_admin_password must be set"],
    ),
    "Grafana admin password admin": ({"grafana_admin_password": "admin"}, ["grafana_admin_password must be set"]),
    "unpinned Grafana apt key": ({"grafana_apt_key_checksum": ""}, ["grafana_apt_key_checksum must pin"]),
    "Telegraf's broker password missing": (
        {"mosquitto_users": []},
        ["references ${TELEGRAF_MQTT_PASSWORD}, which has no value: set telegraf_mqtt_password"],
    ),
    "persistent session at QoS 0": (
        {"telegraf_mqtt_qos": 0},
        ["persistent_session needs qos 1 or 2 (telegraf_mqtt_qos)"],
    ),
}

for _case, (_settings, _fragments) in STACK_CASES.items():
    CASES[f"stack: {_case}"] = (EDGE, STACK | _settings, _fragments)


def cluster_stack(container: str) -> dict[str, Any]:
    """STACK on the cluster too: its first control-plane node in the device and admin networks."""
    networks = [container_network(container)]
    return STACK | {"sensorstack_stack_device_cidrs": networks, "sensorstack_stack_admin_cidrs": networks}


def assert_nothing_changed_after_preflight(run: PlaybookRun) -> None:
    assert "PLAY [Prepare every host" not in run.output, "the run went past preflight"
    assert all(counters["changed"] == 0 for counters in run.recap().values()), run.recap()


# The cases run site.yml's first step alone (its plays stop the whole run at a failure: a unit test keeps site.yml
# that way); the tests after them run site.yml whole.
@pytest.mark.parametrize("case", list(CASES))
def test_preflight_rejects_bad_input_before_any_change(case: str, container: str, tmp_path: Path) -> None:
    layout, variables, fragments = CASES[case]
    inventory = write_inventory(tmp_path, with_vars(inventory_for(container, **layout), **variables))
    run = run_playbook("playbooks/preflight.yml", inventory)
    assert run.returncode != 0, run.output
    for fragment in fragments:
        assert fragment in run.output, f"{fragment!r} missing from:\n{run.output}"
    assert_nothing_changed_after_preflight(run)


def test_a_hosts_group_the_inventory_lacks_is_named_before_any_change(container: str, tmp_path: Path) -> None:
    run = run_playbook(
        "site.yml", write_inventory(tmp_path, inventory_for(container)), "-e", "sensorstack_hosts_group=iot"
    )
    assert run.returncode != 0, run.output
    assert "sensorstack_hosts_group: inventory group 'iot' is missing or has no hosts" in run.output, run.output
    assert_nothing_changed_after_preflight(run)


def test_a_host_network_overlapping_the_pods_is_found_from_facts(container: str, tmp_path: Path) -> None:
    """With no declared host networks, the network of each host's default address is used."""
    network = container_network(container)
    inventory = write_inventory(tmp_path, with_vars(inventory_for(container), sensorstack_pod_cidr=network))
    run = run_playbook("playbooks/preflight.yml", inventory)
    assert run.returncode != 0
    assert f"sensorstack_pod_cidr ({network}) overlaps the network of host cp1" in run.output


@pytest.mark.parametrize("layout", ["cluster", "cluster and a stack host"])
def test_a_valid_inventory_passes_preflight(layout: str, container: str, tmp_path: Path) -> None:
    """The cases above fail for their own reason: the same inventory without the fault passes."""
    inventory = with_vars(inventory_for(container, **(EDGE if layout != "cluster" else {})), **cluster_stack(container))
    run = run_playbook("playbooks/preflight.yml", write_inventory(tmp_path, inventory))
    assert run.returncode == 0, run.output
    assert all(counters["changed"] == 0 and counters["failed"] == 0 for counters in run.recap().values())


def test_group_names_given_on_the_command_line_pass_preflight(container: str, tmp_path: Path) -> None:
    """The renamed group of the case above, named where the plays read it."""
    layout = inventory_for(container, masters=["cp1"], workers=["w1"])
    inventory = write_inventory(tmp_path, with_vars(layout, **cluster_stack(container)))
    run = run_playbook("playbooks/preflight.yml", inventory, "-e", "sensorstack_control_plane_group=masters")
    assert run.returncode == 0, run.output
    assert "PLAY [Validate the inventory layout of groups sensorstack, masters, workers, edge]" in run.output


def test_two_services_of_the_stack_on_one_node_port_are_refused_on_a_first_deploy(
    container: str, tmp_path: Path
) -> None:
    """No Service of the cluster holds either port yet: without the check, the API would refuse Grafana's Service
    after its Secrets, ConfigMaps and claim were applied."""
    variables = cluster_stack(container) | {"grafana_kubernetes_node_port": 31883}
    run = run_playbook("site.yml", write_inventory(tmp_path, with_vars(inventory_for(container, **EDGE), **variables)))
    assert run.returncode != 0, run.output
    assert (
        "grafana_kubernetes_node_port (31883) is mosquitto_kubernetes_node_ports[1883] of the Service"
        " sensorstack/mosquitto too: two Services cannot share a node port"
    ) in run.output, run.output
    assert_nothing_changed_after_preflight(run)
