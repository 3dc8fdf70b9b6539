"""The apiserver_lb role: its spec mirrors its defaults, it finds every control-plane node's address, and the
haproxy configuration it renders balances exactly those API servers on loopback with a TLS /readyz check.

haproxy itself checks the rendered file (``haproxy -c``) when the role writes it; the cluster tier runs it.
"""

from __future__ import annotations

from typing import Any

import yaml

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("apiserver_lb")
TEMPLATE = (ROOT / "roles/apiserver_lb/templates/haproxy.cfg.j2").read_text()
GROUPS = {"control_plane": ["cp1", "cp2", "cp3"], "workers": ["w1"]}


def render(expression: str, **overrides: Any) -> Any:
    hostvars = {
        "cp1": {"sensorstack_node_ip": "10.213.0.11"},
        "cp2": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.12"}}},
        "cp3": {"sensorstack_node_ip": "10.213.0.13"},
    }
    return ROLE.render(
        expression, **{"groups": GROUPS, "hostvars": hostvars, "ansible_managed": "managed", **overrides}
    )


def test_the_back_ends_are_every_control_plane_node_at_its_advertised_address() -> None:
    assert render("{{ apiserver_lb_backends }}") == ["10.213.0.11:6443", "192.0.2.12:6443", "10.213.0.13:6443"]
    assert render("{{ apiserver_lb_port }}") == 6444


def test_an_ipv6_back_end_goes_in_brackets_and_passes_the_role_s_own_check() -> None:
    hostvars = {"cp1": {"sensorstack_node_ip": "fd00::11"}, "cp2": {"sensorstack_node_ip": "10.213.0.12"}, "cp3": {}}
    assert render("{{ apiserver_lb_backends[:2] }}", hostvars=hostvars) == ["[fd00::11]:6443", "10.213.0.12:6443"]
    checked = "{{ apiserver_lb_backends[:2] | map('sensorstack.iot.endpoint_problems_of', 'apiserver_lb_backends') }}"
    assert render(checked, hostvars=hostvars) == [[], []]


def test_haproxy_listens_on_loopback_only_and_checks_each_api_server_over_tls() -> None:
    config = render(TEMPLATE)
    assert "bind 127.0.0.1:6444" in config
    assert [line.split()[-1] for line in config.splitlines() if line.strip().startswith("server ")] == [
        "10.213.0.11:6443",
        "192.0.2.12:6443",
        "10.213.0.13:6443",
    ]
    assert "option httpchk GET /readyz" in config
    assert "check check-ssl verify none" in config
    assert "mode tcp" in config
    # A dead back end costs one connect timeout: the retry goes to another API server.
    assert "option redispatch 1" in config
    # The serving process is not root's.
    global_section = config.split("\ndefaults")[0]
    assert "    user haproxy\n" in global_section and "    group haproxy\n" in global_section


def default_server_options(config: str) -> list[str]:
    (line,) = [line for line in config.splitlines() if line.strip().startswith("default-server ")]
    return line.split()[1:]


def test_a_back_end_marked_down_loses_its_connections_when_another_can_take_them() -> None:
    options = default_server_options(render(TEMPLATE))
    assert options[options.index("on-marked-down") + 1] == "shutdown-sessions"


def test_with_one_api_server_a_failed_check_cuts_no_connection() -> None:
    config = render(TEMPLATE, groups={"control_plane": ["cp1"], "workers": ["w1"]})
    assert [line.split()[-1] for line in config.splitlines() if line.strip().startswith("server ")] == [
        "10.213.0.11:6443"
    ]
    assert "on-marked-down" not in default_server_options(config)


def validation_problems(**overrides: Any) -> list[str]:
    [check] = yaml.safe_load((ROOT / "roles/apiserver_lb/tasks/validate.yml").read_text())
    variables = {name: value for name, value in check["vars"].items() if name != "apiserver_lb_problems"}
    return render(check["vars"]["apiserver_lb_problems"], **{**variables, **overrides})


def test_a_control_plane_of_no_known_address_is_named_with_what_to_set() -> None:
    assert validation_problems() == []
    # A run limited to a new worker after the fact cache expired knows nothing of cp2.
    hostvars = {"cp1": {"sensorstack_node_ip": "10.213.0.11"}, "cp2": {}, "cp3": {"sensorstack_node_ip": "10.213.0.13"}}
    problems = validation_problems(hostvars=hostvars)
    assert " ".join(problems[0].split()) == (
        "the control-plane hosts cp2 have no address this run knows, for the load balancer's back ends: set "
        "sensorstack_node_ip for them, or run without a --limit that leaves them out (their facts are gathered then)"
    )
