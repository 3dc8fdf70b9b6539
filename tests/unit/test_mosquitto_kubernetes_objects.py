"""The broker's cluster objects: the pod's checksum annotation, which rolls the broker when what it reads at its
start changes, follows the users the password file holds, not only the declared ones."""

from __future__ import annotations

from typing import Any

import yaml

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("mosquitto")
OBJECTS = (ROOT / "roles/mosquitto/templates/kubernetes.yml.j2").read_text()
STACK_NAMES = yaml.safe_load((ROOT / "roles/sensorstack/vars/main.yml").read_text())
DECLARED = "telegraf:$7$101$c2FsdA==$aGFzaA==\n"


def checksum(passwd: str, **overrides: Any) -> str:
    variables = {
        **STACK_NAMES,
        "ansible_managed": "managed",
        "mosquitto_rendered_config": "listener 1883\n",
        "mosquitto_rendered_acl": "",
        "mosquitto_credentials": [{"name": "telegraf", "password": "secret"}],
        "mosquitto_kubernetes_passwd": passwd,
        **overrides,
    }
    objects = yaml.safe_load(ROLE.render(OBJECTS, **variables))
    [workload] = [item for item in objects if item["kind"] in ("Deployment", "StatefulSet")]
    return str(workload["spec"]["template"]["metadata"]["annotations"]["sensorstack.io/config-checksum"])


def test_the_users_held_count_their_hashes_do_not() -> None:
    assert ROLE.render(
        "{{ mosquitto_kubernetes_passwd_users }}",
        mosquitto_kubernetes_passwd="# users\nstray:$7$101$eA==$eQ==\n\ntelegraf:$7$101$c2FsdA==$aGFzaA==\n",
    ) == ["stray", "telegraf"]
    # A render salts the hashes anew: the same users, the same checksum.
    assert checksum(DECLARED) == checksum(DECLARED.replace("c2FsdA==", "b3RoZXI="))


def test_a_user_removed_from_the_password_file_rolls_the_broker() -> None:
    # The Secret held a user added by hand; the role's exclusive run removes it, and the broker must restart to
    # forget it.
    assert checksum(DECLARED + "stray:$7$101$eA==$eQ==\n") != checksum(DECLARED)
