"""sensorstack_api_server_port: the one setting for the port the API servers listen on, which every role that
names that port follows (kubeadm's bindPort on the first control plane and on joining ones, the load balancer's
back ends and its own port check, the firewall, the controller's kubeconfig, the certificate checks)."""

from __future__ import annotations

from typing import Any

from .role_files import RoleFiles

PORT = 8443
HOSTVARS = {"cp1": {"sensorstack_node_ip": "10.213.0.11"}, "cp2": {"sensorstack_node_ip": "10.213.0.12"}}
GROUPS = {"control_plane": ["cp1", "cp2"], "workers": []}


def render(role: str, expression: str, **overrides: Any) -> Any:
    variables = {
        "sensorstack_api_server_port": PORT,
        "groups": GROUPS,
        "hostvars": HOSTVARS,
        "inventory_hostname": "cp1",
        "ansible_facts": {"default_ipv4": {"address": "10.213.0.11"}},
    }
    return RoleFiles.load(role).render(expression, **variables | overrides)


def test_the_load_balancer_sends_to_the_port_the_api_servers_listen_on() -> None:
    assert render("apiserver_lb", "{{ apiserver_lb_backends }}") == ["10.213.0.11:8443", "10.213.0.12:8443"]


def test_kubeadm_binds_the_api_servers_to_it_on_the_first_control_plane_and_on_joining_ones() -> None:
    init = render("kubeadm_control_plane", "{{ kubeadm_control_plane_init_configuration.localAPIEndpoint.bindPort }}")
    assert int(init) == PORT
    join = render("kubeadm_join", "{{ kubeadm_join_control_plane_section.controlPlane.localAPIEndpoint.bindPort }}")
    assert int(join) == PORT


def test_the_controller_and_a_cluster_without_load_balancer_reach_the_api_servers_on_it() -> None:
    assert (
        render("kubeadm_control_plane", "{{ kubeadm_control_plane_kubeconfig_server }}") == "https://10.213.0.11:8443"
    )
    endpoint = render(
        "kubeadm_control_plane", "{{ kubeadm_control_plane_endpoint }}", sensorstack_api_load_balancer="none"
    )
    assert endpoint == "10.213.0.11:8443"


def test_the_firewall_opens_it_on_control_planes() -> None:
    rules = render("firewall", "{{ firewall_control_plane_rules }}")
    assert rules[0]["name"] == "kubernetes API" and [int(port) for port in rules[0]["ports"]] == [PORT]


def test_the_certificate_checks_ask_the_api_server_on_it() -> None:
    assert int(render("kubeadm_certificates", "{{ kubeadm_certificates_apiserver_port }}")) == PORT
