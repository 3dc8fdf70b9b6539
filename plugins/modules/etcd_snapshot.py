#!/usr/bin/python
"""Take a snapshot of a kubeadm cluster's stacked etcd on a control-plane node, check it, keep the newest few."""

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_snapshot
short_description: Take a checked snapshot of the stacked etcd of a kubeadm control-plane node
description:
  - Finds the running etcd container of the node through crictl, runs C(etcdctl snapshot save) inside it (kubeadm's
    etcd image carries etcdctl and etcdutl, and the pod mounts etcd's client certificates), checks the file with
    C(etcdutl snapshot status) and moves it into O(directory) as C(etcd-<UTC time>-<label>.db), root's, C(0600).
  - The snapshot leaves the container through etcd's data folder O(data_dir), which kubeadm mounts at the same path
    in the pod; it stays there, under a hidden name, only until it is checked.
  - Then removes the oldest of the module's own snapshots in O(directory) beyond the newest O(keep). Other files
    there are left alone.
  - A snapshot holds every object of the cluster, its Secrets included.
  - Every run takes a new snapshot, so the task always reports a change. In check mode it only finds the etcd
    container and reports what it would remove.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  directory:
    description:
      - Folder of the snapshots on the node; created root's, C(0700), when missing (an existing one keeps its mode).
    type: path
    required: true
  keep:
    description: How many of the module's snapshots O(directory) keeps, the new one included (at least 1).
    type: int
    default: 5
  label:
    description: Part of the file name that says why the snapshot was taken (letters, digits, C(.), C(_), C(-)).
    type: str
    default: manual
  etcdctl:
    description:
      - The etcdctl command inside the etcd container, with its endpoint and client certificate flags; the module
        adds C(snapshot save <file>).
    type: list
    elements: str
    required: true
  etcdutl:
    description: The etcdutl executable inside the etcd container.
    type: str
    default: /usr/local/bin/etcdutl
  data_dir:
    description: etcd's data folder, at the same path on the node and in the etcd container (kubeadm's hostPath).
    type: path
    default: /var/lib/etcd
  cri_socket:
    description: The container runtime's CRI endpoint that crictl talks to.
    type: str
    default: unix:///run/containerd/containerd.sock
  timeout:
    description: Seconds the snapshot may take before the task fails (and leaves no file behind).
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: Take a snapshot of etcd before the control plane's upgrade
  sensorstack.iot.etcd_snapshot:
    directory: /var/backups/etcd
    keep: 5
    label: before-upgrade-to-v1.35.4
    etcdctl:
      - /usr/local/bin/etcdctl
      - --endpoints=https://127.0.0.1:2379
      - --cacert=/etc/kubernetes/pki/etcd/ca.crt
      - --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt
      - --key=/etc/kubernetes/pki/etcd/healthcheck-client.key
"""

RETURN = r"""
path:
  description: The new snapshot (in check mode, where it would go).
  returned: always
  type: str
  sample: /var/backups/etcd/etcd-20261205T211500Z-before-upgrade-to-v1.35.4.db
revision:
  description: The etcd revision the snapshot holds, as etcdutl reads it.
  returned: success, not in check mode
  type: int
total_keys:
  description: How many keys the snapshot holds.
  returned: success, not in check mode
  type: int
total_size:
  description: The size of the snapshot's database in bytes.
  returned: success, not in check mode
  type: int
hash:
  description: The hash of the snapshot's database that etcdutl computes.
  returned: success, not in check mode
  type: int
etcd_version:
  description: The etcd version that wrote the snapshot, as etcdutl reports it (empty when it does not).
  returned: success, not in check mode
  type: str
removed:
  description: The older snapshots removed (or that would be, in check mode) to keep O(keep).
  returned: always
  type: list
  elements: str
"""

import datetime  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.crictl import Crictl  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_snapshot import (  # noqa: E402
    settings_problems,
    snapshot_name,
    snapshot_status,
    snapshots_beyond,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "directory": {"type": "path", "required": True},
    "keep": {"type": "int", "default": 5},
    "label": {"type": "str", "default": "manual"},
    "etcdctl": {"type": "list", "elements": "str", "required": True},
    "etcdutl": {"type": "str", "default": "/usr/local/bin/etcdutl"},
    "data_dir": {"type": "path", "default": "/var/lib/etcd"},
    "cri_socket": {"type": "str", "default": "unix:///run/containerd/containerd.sock"},
    "timeout": {"type": "int", "default": 300},
}
DIRECTORY_MODE = 0o700
SNAPSHOT_MODE = 0o600


class Snapshot:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.crictl = Crictl(module, self.params["cri_socket"], self.params["timeout"])

    def take(self, container: str, name: str) -> dict[str, Any]:
        """Save the snapshot into etcd's data folder under a hidden name, check it, move it into the folder."""
        staged = os.path.join(self.params["data_dir"], f".sensorstack-{name}")
        try:
            self.crictl.exec(container, [*self.params["etcdctl"], "snapshot", "save", staged], "etcdctl snapshot save")
            status_output = self.crictl.exec(
                container, [self.params["etcdutl"], "snapshot", "status", staged, "--write-out=json"], "etcdutl"
            )
            status = snapshot_status(status_output)
            directory = self.params["directory"]
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=DIRECTORY_MODE)
                os.chmod(directory, DIRECTORY_MODE)  # makedirs' mode passes through the umask
            path = os.path.join(directory, name)
            os.chmod(staged, SNAPSHOT_MODE)
            shutil.move(staged, path)
            os.chmod(path, SNAPSHOT_MODE)
        finally:
            for leftover in (staged, f"{staged}.part"):
                if os.path.exists(leftover):
                    os.remove(leftover)
        return {"path": path, **status}

    def beyond_keep(self, new: str | None) -> list[str]:
        directory = self.params["directory"]
        names = os.listdir(directory) if os.path.isdir(directory) else []
        if new is not None and new not in names:
            names.append(new)  # check mode: counts as taken
        return [os.path.join(directory, name) for name in snapshots_beyond(names, self.params["keep"])]


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    problems = settings_problems(module.params, module.params["data_dir"])
    if problems:
        module.fail_json(msg="; ".join(problems))
    snapshot = Snapshot(module)
    name = snapshot_name(datetime.datetime.now(datetime.timezone.utc), module.params["label"])  # noqa: UP017
    try:
        container = snapshot.crictl.container("etcd")
        if module.check_mode:
            removed = snapshot.beyond_keep(name)
            module.exit_json(changed=True, path=os.path.join(module.params["directory"], name), removed=removed)
        taken = snapshot.take(container, name)
    except (RuntimeError, ValueError, OSError) as error:
        module.fail_json(msg=f"no etcd snapshot taken: {error}")
    try:
        removed = snapshot.beyond_keep(None)
        for path in removed:
            os.remove(path)
    except OSError as error:
        module.fail_json(msg=f"took {taken['path']}, but could not remove the snapshots beyond keep: {error}", **taken)
    module.exit_json(changed=True, removed=removed, **taken)


if __name__ == "__main__":
    main()
