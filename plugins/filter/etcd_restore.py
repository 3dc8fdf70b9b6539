"""Filters of role etcd_restore, over the pure functions the module ``sensorstack.iot.etcd_restore`` uses too:

- ``manifest | sensorstack.iot.etcd_member``: the member a control plane runs (name, peer_url, data_dir), from its
  kubeadm etcd manifest (parsed YAML);
- ``members | sensorstack.iot.etcd_initial_cluster``: etcd's --initial-cluster for them;
- ``settings | sensorstack.iot.etcd_restore_problems``: what is wrong with the role's settings, each message naming
  its ``etcd_restore_*`` variable;
- ``hostvars | sensorstack.iot.etcd_restore_failures(hosts, registered)``: "host: message" for every host whose
  registered result of a step failed (the role runs its steps with failed_when false, so that every control plane
  answers before the run decides).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_restore import (
    etcd_member,
    initial_cluster,
    settings_problems,
)


def etcd_member_filter(manifest: Mapping[str, Any]) -> dict[str, str]:
    try:
        return etcd_member(manifest)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def etcd_initial_cluster(members: Iterable[Mapping[str, str]]) -> str:
    try:
        return initial_cluster(members)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def etcd_restore_problems(settings: Mapping[str, Any]) -> list[str]:
    return settings_problems(settings)


def etcd_restore_failures(hostvars: Mapping[str, Any], hosts: Iterable[str], registered: Iterable[str]) -> list[str]:
    hosts = list(hosts)
    failures = []
    for name in registered:
        for host in hosts:
            result = hostvars[host].get(name) or {}
            if isinstance(result, Mapping) and result.get("msg"):
                failures.append(f"{host}: {result['msg']}")
    return failures


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "etcd_member": etcd_member_filter,
            "etcd_initial_cluster": etcd_initial_cluster,
            "etcd_restore_problems": etcd_restore_problems,
            "etcd_restore_failures": etcd_restore_failures,
        }
