"""Filters of role etcd_restore, over the pure functions the module ``sensorstack.iot.etcd_restore`` uses too:

- ``manifest | sensorstack.iot.etcd_member``: the member a control plane runs (name, peer_url, data_dir), from its
  kubeadm etcd manifest (parsed YAML);
- ``members | sensorstack.iot.etcd_initial_cluster``: etcd's --initial-cluster for them;
- ``settings | sensorstack.iot.etcd_restore_problems``: what is wrong with the role's settings, each message naming
  its ``etcd_restore_*`` variable;
- ``hostvars | sensorstack.iot.etcd_restore_failures(hosts, registered)``: "host: message" for every host whose
  registered result of a step failed (the role runs its steps with failed_when false, so that every control plane
  answers before the run decides);
- ``nodes | sensorstack.iot.etcd_restore_nodes_not_back(since)``: "name: why" for every node of ``since`` (name ->
  the time on that node before its kubelet restarted) that ``kubectl get nodes --output=json`` does not show Ready
  from a heartbeat after that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
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


def etcd_restore_nodes_not_back(nodes: Mapping[str, Any], since: Mapping[str, str]) -> list[str]:
    """A restored cluster holds each node's status as the snapshot saved it, Ready among it: only a heartbeat
    newer than the kubelet's restart shows that the node reports to the restored cluster. Both times are the node's
    own clock (RFC 3339, whole seconds), so a strictly later heartbeat is one sent after the restart began."""
    listed = {item["metadata"]["name"]: item for item in nodes.get("items", [])}
    not_back = []
    for name, restarted in sorted(since.items()):
        if name not in listed:
            not_back.append(f"{name}: not in the restored cluster")
            continue
        conditions = listed[name].get("status", {}).get("conditions", [])
        ready = next((condition for condition in conditions if condition.get("type") == "Ready"), {})
        heartbeat = ready.get("lastHeartbeatTime")
        if not heartbeat or datetime.fromisoformat(heartbeat) <= datetime.fromisoformat(restarted):
            not_back.append(f"{name}: no status from its kubelet since {restarted}")
        elif ready.get("status") != "True":
            not_back.append(f"{name}: Ready is {ready.get('status')} ({ready.get('reason', 'no reason given')})")
    return not_back


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "etcd_member": etcd_member_filter,
            "etcd_initial_cluster": etcd_initial_cluster,
            "etcd_restore_problems": etcd_restore_problems,
            "etcd_restore_failures": etcd_restore_failures,
            "etcd_restore_nodes_not_back": etcd_restore_nodes_not_back,
        }
