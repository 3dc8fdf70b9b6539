"""Pure parts of restoring a kubeadm cluster's stacked etcd from a snapshot: who the members are (from kubeadm's
etcd manifests), the cluster they form again, etcdutl's command line, and which control-plane containers still run.

Kept apart from the module and the filters so that they are unit-tested without a node, a container runtime or etcd.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_snapshot import whole_number

# The static pods a restore stops on every control plane, as kubeadm names their manifests and containers: the API
# servers may not write to etcd while its data is swapped, and the controllers and the scheduler start again with
# caches of the restored cluster rather than of the one it replaced.
CONTROL_PLANE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# A member's name goes into --initial-cluster, where ',' and '=' separate members and their URLs.
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PEER_URL = re.compile(r"^https?://\S+:\d+$")
# The folder a restore writes the new member data to, inside etcd's data folder (the only folder of the node that
# the etcd pod mounts, at the same path), until every member is stopped and it takes the place of member/.
STAGED_DIR = ".sensorstack-restore"
STAGED_SNAPSHOT = ".sensorstack-restore.db"


def manifest_flags(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The --flag=value arguments of the etcd container in kubeadm's etcd static pod manifest (parsed YAML)."""
    try:
        containers = manifest["spec"]["containers"]
        command = next(c for c in containers if c.get("name") == "etcd")["command"]
    except (KeyError, TypeError, StopIteration) as error:
        raise ValueError(f"not kubeadm's etcd manifest: no etcd container with a command ({error!r})") from error
    flags = {}
    for argument in command:
        if isinstance(argument, str) and argument.startswith("--") and "=" in argument:
            name, value = argument[2:].split("=", 1)
            flags[name] = value
    return flags


def etcd_member(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The member a control plane runs: its name, the peer URL it advertises and its data folder."""
    flags = manifest_flags(manifest)
    member = {
        "name": flags.get("name", ""),
        "peer_url": flags.get("initial-advertise-peer-urls", ""),
        "data_dir": flags.get("data-dir", ""),
    }
    if not MEMBER_NAME.match(member["name"]):
        raise ValueError(f"the etcd manifest names no usable member (--name={member['name']!r})")
    if "," in member["peer_url"] or not PEER_URL.match(member["peer_url"]):
        raise ValueError(
            f"the etcd manifest of member {member['name']} advertises no single peer URL "
            f"(--initial-advertise-peer-urls={member['peer_url']!r})"
        )
    if not member["data_dir"].startswith("/"):
        raise ValueError(f"the etcd manifest of member {member['name']} has no absolute --data-dir")
    return member


def initial_cluster(members: Iterable[Mapping[str, str]]) -> str:
    """etcd's --initial-cluster for these members, refusing two members of one name or one peer URL."""
    members = list(members)
    names = [member["name"] for member in members]
    urls = [member["peer_url"] for member in members]
    for what, values in (("name", names), ("peer URL", urls)):
        doubles = sorted({value for value in values if values.count(value) > 1})
        if doubles:
            raise ValueError(f"two control planes run an etcd member of the same {what}: {', '.join(doubles)}")
    if not members:
        raise ValueError("no etcd member to restore")
    return ",".join(f"{member['name']}={member['peer_url']}" for member in sorted(members, key=lambda m: m["name"]))


def restore_argv(
    etcdutl: str,
    snapshot: str,
    data_dir: str,
    member: Mapping[str, str],
    cluster: str,
    token: str,
    bump_revision: int,
) -> list[str]:
    """etcdutl snapshot restore for one member. A bumped revision marked compacted makes every watch of the API
    servers' clients (kubelets, controllers, operators) fail and list again, instead of waiting for revisions the
    restored etcd numbers anew (etcd's and Kubernetes' advice for a cluster that ran Kubernetes)."""
    argv = [
        etcdutl,
        "snapshot",
        "restore",
        snapshot,
        f"--data-dir={data_dir}",
        f"--name={member['name']}",
        f"--initial-cluster={cluster}",
        f"--initial-cluster-token={token}",
        f"--initial-advertise-peer-urls={member['peer_url']}",
    ]
    if bump_revision > 0:
        argv += [f"--bump-revision={bump_revision}", "--mark-compacted"]
    return argv


def components_running(ps_output: str) -> list[str]:
    """The control-plane containers that `crictl ps --state running --output json` lists (sorted names)."""
    try:
        listed = json.loads(ps_output or "{}").get("containers") or []
    except (ValueError, AttributeError) as error:
        raise ValueError(f"crictl ps printed no JSON list of containers: {ps_output.strip()[:300]!r}") from error
    names = {container.get("metadata", {}).get("name", "") for container in listed}
    return sorted(names & set(CONTROL_PLANE_COMPONENTS))


def settings_problems(settings: Mapping[str, Any], prefix: str = "etcd_restore_") -> list[str]:
    """What is wrong with role etcd_restore's snapshot, where it is kept, bump_revision, the timeouts and
    lease_wait, each named as its variable. settings["source"] is the node that holds the snapshot (empty when
    settings["from_controller"])."""
    problems = []
    snapshot = settings["snapshot"]
    from_controller = settings.get("from_controller") is True
    if not isinstance(snapshot, str) or not posixpath.isabs(snapshot) or snapshot.endswith("/"):
        where = "the controller" if from_controller else f"the control-plane node {settings['source']}"
        problems.append(
            f"{prefix}snapshot must be the absolute path of a snapshot file on {where} (for example "
            f"/var/backups/etcd/etcd-<UTC time>-<label>.db), got {snapshot!r}"
        )
    if from_controller and settings.get("source"):
        problems.append(
            f"{prefix}source names a control-plane node ({settings['source']}) that holds the snapshot, and "
            f"{prefix}from_controller says the controller holds it: set one of them"
        )
    if whole_number(settings["bump_revision"]) is None:
        problems.append(f"{prefix}bump_revision must be a whole number (0: none), got {settings['bump_revision']!r}")
    for name in ("timeout", "ready_timeout", "lease_wait"):
        if (whole_number(settings[name]) or 0) < 1:
            problems.append(f"{prefix}{name} must be at least 1 (seconds), got {settings[name]!r}")
    return problems
