"""The kubeadm_join role: its argument spec mirrors its defaults, and the JoinConfiguration it renders carries what
`kubeadm token create --print-join-command` printed on the control plane, and this node's own settings.

Rendered by Ansible's own templating from the role's defaults and vars, as a play would; the cluster tier
(tests/cluster/test_control_plane_calico.py) joins a real worker with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/kubeadm_join"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
VARS: dict[str, Any] = yaml.safe_load((ROLE / "vars/main.yml").read_text())
OPTIONS: dict[str, Any] = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
    "options"
]
SHARED: dict[str, Any] = yaml.safe_load((ROOT / "roles/sensorstack/defaults/main/main.yml").read_text())
TYPES = {"str": str, "int": int, "bool": bool, "dict": dict, "list": list}
HASH = "sha256:" + "ab" * 32
JOIN_COMMAND = f"kubeadm join 10.213.0.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"


def trusted(value: Any) -> Any:
    """Role files are trusted templates, nested values included, as Ansible treats a role's own YAML."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, Mapping):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def plain(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def render(expression: str, **overrides: Any) -> Any:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    variables = {
        **SHARED,
        **DEFAULTS,
        **VARS,
        "inventory_hostname": "w1",
        "groups": {"control_plane": ["cp1"], "workers": ["w1"]},
        "ansible_facts": {"default_ipv4": {"address": "192.0.2.21"}},
        "kubeadm_join_command": {"stdout": JOIN_COMMAND},
        **overrides,
    }
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    return plain(templar.template(trusted(expression)))


def templated(value: Any) -> bool:
    return "{{" in yaml.safe_dump(value)


def test_every_default_is_specified_with_its_value_unless_it_is_a_template() -> None:
    assert set(OPTIONS) == set(DEFAULTS)
    for name, value in DEFAULTS.items():
        assert OPTIONS[name].get("description"), name
        if templated(value):
            assert "default" not in OPTIONS[name], f"{name}: a template has no default in the spec"
            description = yaml.safe_dump(OPTIONS[name]["description"])
            for followed in re.findall(r"sensorstack_\w+", value):
                assert followed in description, f"{name}: the description does not name {followed}"
        else:
            assert OPTIONS[name].get("default") == value, name
            assert isinstance(value, TYPES[OPTIONS[name]["type"]]), name


def test_every_variable_carries_the_role_prefix() -> None:
    for path in ROLE.glob("*/*.yml"):
        if path.parent.name in ("defaults", "vars"):
            assert all(name.startswith("kubeadm_join_") for name in yaml.safe_load(path.read_text())), path


def test_the_join_configuration_carries_the_printed_endpoint_token_and_ca_hash() -> None:
    configuration = render("{{ kubeadm_join_configuration }}")
    assert (configuration["apiVersion"], configuration["kind"]) == ("kubeadm.k8s.io/v1beta4", "JoinConfiguration")
    assert configuration["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.213.0.11:6443",
        "token": "abcdef.0123456789abcdef",
        "caCertHashes": [HASH],
    }


def test_the_node_registers_with_its_own_address_and_settings() -> None:
    registration = render("{{ kubeadm_join_configuration.nodeRegistration }}")
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "192.0.2.21"}]
    assert registration["ignorePreflightErrors"] == []
    registration = render(
        "{{ kubeadm_join_configuration.nodeRegistration }}",
        sensorstack_node_ip="10.213.0.21",
        kubeadm_join_ignore_preflight_errors=["SystemVerification"],
    )
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.213.0.21"}]
    assert registration["ignorePreflightErrors"] == ["SystemVerification"]
    assert registration["criSocket"] == "unix:///run/containerd/containerd.sock"


def test_the_token_comes_from_the_first_control_plane_node() -> None:
    assert render("{{ kubeadm_join_token_host }}") == "cp1"
    assert render("{{ kubeadm_join_token_host }}", groups={"workers": ["w1"]}) == ""


def test_durations_are_recognised() -> None:
    pattern = VARS["kubeadm_join_duration_pattern"]
    assert all(re.match(pattern, value) for value in ("15m0s", "10m", "1h30m", "90s"))
    assert not any(re.match(pattern, value) for value in ("15", "15 minutes", "", "m"))
