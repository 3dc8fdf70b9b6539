#!/usr/bin/python
"""One step of restoring a kubeadm cluster's stacked etcd from a snapshot, on one control-plane node."""

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_restore
short_description: Restore the stacked etcd member of a kubeadm control-plane node from a snapshot, step by step
description:
  - Restoring a cluster's etcd takes every control plane through the same steps, each on all of them before the next
    (role C(etcd_restore) orders them); this module runs one step on one node, with nothing but Python and crictl.
  - V(staged), while etcd runs - copies O(snapshot) into etcd's data folder O(data_dir) (the only folder of the node
    the etcd pod mounts), checks it with C(etcdutl snapshot status) and restores it with C(etcdutl snapshot restore),
    both inside the running etcd container, into a new data folder beside the member's, as member O(name) of the
    cluster O(initial_cluster). Nothing etcd reads changes yet.
  - V(stopped) - moves the static pod manifests of etcd, the API server, the controller manager and the scheduler
    from O(manifests_dir) to O(held_manifests_dir), then waits until none of their containers runs.
  - V(swapped), while none of them runs - keeps the member's data as C(member.before-restore-<restore_id>) in
    O(data_dir) and puts the restored data in its place.
  - V(started) - moves the held manifests back; the kubelet starts the components again.
  - V(discarded) - removes what V(staged) left in O(data_dir), for a restore stopped before V(swapped).
  - V(stopped), V(started) and V(discarded) change nothing when their work is done; V(staged) and V(swapped) always
    do. In check mode every step checks what it can and changes nothing.
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
  step:
    description: The step to run on this node (see the description).
    type: str
    required: true
    choices: [staged, stopped, swapped, started, discarded]
  snapshot:
    description: The snapshot file on the node, as C(etcdctl snapshot save) wrote it. Required for V(staged).
    type: path
  name:
    description: This node's member name, as its etcd manifest gives it (C(--name)). Required for V(staged).
    type: str
  peer_url:
    description: The peer URL this node's member advertises (C(--initial-advertise-peer-urls)). Required for V(staged).
    type: str
  initial_cluster:
    description:
      - Every member of the restored cluster, C(name=peer URL) separated by commas, the same on every node. Required
        for V(staged).
    type: str
  restore_id:
    description:
      - Names this restore, the same on every node - the restored cluster's C(--initial-cluster-token) and the suffix
        of the member data kept by V(swapped). Letters, digits, C(.), C(_) and C(-).
    type: str
  bump_revision:
    description:
      - Raises the restored revision by this much and marks the revisions before it compacted (C(--bump-revision),
        C(--mark-compacted)), so that every client watching the API lists again rather than waiting for revisions
        the restored etcd numbers anew. V(0) restores the revision as the snapshot holds it.
    type: int
    default: 1000000000
  data_dir:
    description: etcd's data folder, at the same path on the node and in the etcd container (kubeadm's hostPath).
    type: path
    default: /var/lib/etcd
  manifests_dir:
    description: The kubelet's static pod folder.
    type: path
    default: /etc/kubernetes/manifests
  held_manifests_dir:
    description: Where V(stopped) keeps the control-plane manifests until V(started); created root's, C(0700).
    type: path
    default: /etc/kubernetes/sensorstack-restore
  etcdutl:
    description: The etcdutl executable inside the etcd container.
    type: str
    default: /usr/local/bin/etcdutl
  cri_socket:
    description: The container runtime's CRI endpoint that crictl talks to.
    type: str
    default: unix:///run/containerd/containerd.sock
  timeout:
    description: Seconds that etcdutl may take, and that V(stopped) waits for the components to stop.
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: Restore the snapshot into a new data folder beside the running member
  sensorstack.iot.etcd_restore:
    step: staged
    snapshot: /var/backups/etcd/etcd-20261206T010000Z-manual.db
    name: cp1
    peer_url: https://10.0.0.11:2380
    initial_cluster: cp1=https://10.0.0.11:2380
    restore_id: 20261206T011500Z

- name: Stop etcd and the control plane on the node
  sensorstack.iot.etcd_restore:
    step: stopped
"""

RETURN = r"""
revision:
  description: The etcd revision the snapshot holds, as etcdutl reads it (V(staged)).
  returned: success of step staged, not in check mode
  type: int
total_keys:
  description: How many keys the snapshot holds (V(staged)).
  returned: success of step staged, not in check mode
  type: int
staged:
  description: The folder the restored member data waits in until V(swapped) (V(staged)).
  returned: step staged
  type: str
  sample: /var/lib/etcd/.sensorstack-restore
previous:
  description: Where V(swapped) kept the member's data from before the restore.
  returned: step swapped
  type: str
  sample: /var/lib/etcd/member.before-restore-20261206T011500Z
moved:
  description: The manifests that V(stopped) or V(started) moved (or would, in check mode).
  returned: steps stopped and started
  type: list
  elements: str
"""

import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.crictl import Crictl  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_restore import (  # noqa: E402
    CONTROL_PLANE_COMPONENTS,
    STAGED_DIR,
    STAGED_SNAPSHOT,
    components_running,
    restore_argv,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_snapshot import (  # noqa: E402
    LABEL,
    snapshot_status,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "step": {"type": "str", "required": True, "choices": ["staged", "stopped", "swapped", "started", "discarded"]},
    "snapshot": {"type": "path"},
    "name": {"type": "str"},
    "peer_url": {"type": "str"},
    "initial_cluster": {"type": "str"},
    "restore_id": {"type": "str"},
    "bump_revision": {"type": "int", "default": 1000000000},
    "data_dir": {"type": "path", "default": "/var/lib/etcd"},
    "manifests_dir": {"type": "path", "default": "/etc/kubernetes/manifests"},
    "held_manifests_dir": {"type": "path", "default": "/etc/kubernetes/sensorstack-restore"},
    "etcdutl": {"type": "str", "default": "/usr/local/bin/etcdutl"},
    "cri_socket": {"type": "str", "default": "unix:///run/containerd/containerd.sock"},
    "timeout": {"type": "int", "default": 300},
}
REQUIRED_IF = [
    ("step", "staged", ("snapshot", "name", "peer_url", "initial_cluster", "restore_id")),
    ("step", "swapped", ("restore_id",)),
]
PRIVATE_MODE = 0o600
KUBE_SYSTEM = "io.kubernetes.pod.namespace=kube-system"
HELD_MODE = 0o700


class Restore:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.crictl = Crictl(module, self.params["cri_socket"], self.params["timeout"])
        data_dir = self.params["data_dir"]
        self.staged_dir = os.path.join(data_dir, STAGED_DIR)
        self.staged_snapshot = os.path.join(data_dir, STAGED_SNAPSHOT)
        self.member_dir = os.path.join(data_dir, "member")

    def running(self) -> list[str]:
        return components_running(self.crictl.running("--label", KUBE_SYSTEM))

    def discard(self) -> bool:
        found = [path for path in (self.staged_dir, self.staged_snapshot) if os.path.lexists(path)]
        if not self.module.check_mode:
            shutil.rmtree(self.staged_dir, ignore_errors=True)
            if os.path.lexists(self.staged_snapshot):
                os.remove(self.staged_snapshot)
        return bool(found)

    def stage(self) -> dict[str, Any]:
        """Check the snapshot and restore it beside the running member, inside the etcd container."""
        snapshot = self.params["snapshot"]
        if not os.path.isfile(snapshot):
            raise ValueError(f"no snapshot file {snapshot} on this node")
        if self.module.check_mode:
            self.crictl.exec(self.crictl.container("etcd"), ["true"], "the etcd container")
            return {"changed": True, "staged": self.staged_dir}
        # What an earlier restore that stopped before its swap left. A snapshot copied to the node for this restore
        # may wait at the staged name already (role etcd_restore puts it there on every node but the one that holds it).
        shutil.rmtree(self.staged_dir, ignore_errors=True)
        try:
            etcd = self.crictl.container("etcd")  # once for both etcdutl runs
            if os.path.realpath(snapshot) != os.path.realpath(self.staged_snapshot):
                shutil.copyfile(snapshot, self.staged_snapshot)
            os.chmod(self.staged_snapshot, PRIVATE_MODE)
            etcdutl = self.params["etcdutl"]
            status_argv = [etcdutl, "snapshot", "status", self.staged_snapshot, "--write-out=json"]
            status = snapshot_status(self.crictl.exec(etcd, status_argv, "etcdutl"))
            member = {"name": self.params["name"], "peer_url": self.params["peer_url"]}
            argv = restore_argv(
                etcdutl,
                self.staged_snapshot,
                self.staged_dir,
                member,
                self.params["initial_cluster"],
                self.params["restore_id"],
                self.params["bump_revision"],
            )
            self.crictl.exec(etcd, argv, "etcdutl snapshot restore")
            if not os.path.isdir(os.path.join(self.staged_dir, "member")):
                raise RuntimeError(f"etcdutl snapshot restore left no member folder in {self.staged_dir}")
        except BaseException:
            shutil.rmtree(self.staged_dir, ignore_errors=True)
            raise
        finally:
            if os.path.lexists(self.staged_snapshot):
                os.remove(self.staged_snapshot)
        found = {"revision": status["revision"], "total_keys": status["total_keys"]}
        return {"changed": True, "staged": self.staged_dir, **found}

    def move_manifests(self, source: str, destination: str) -> list[str]:
        """Move the control-plane manifests that are in source (etcd's first) to destination."""
        moved = []
        for component in CONTROL_PLANE_COMPONENTS:
            name = f"{component}.yaml"
            if os.path.exists(os.path.join(source, name)):
                moved.append(name)
            elif not os.path.exists(os.path.join(destination, name)):
                raise ValueError(
                    f"no {name} in {self.params['manifests_dir']} or {self.params['held_manifests_dir']}: not a "
                    "control-plane node of a kubeadm cluster with stacked etcd"
                )
        if self.module.check_mode or not moved:
            return moved
        if not os.path.isdir(destination):
            os.makedirs(destination, mode=HELD_MODE)
            os.chmod(destination, HELD_MODE)
        for name in moved:
            os.rename(os.path.join(source, name), os.path.join(destination, name))
        return moved

    def stop(self) -> dict[str, Any]:
        moved = self.move_manifests(self.params["manifests_dir"], self.params["held_manifests_dir"])
        if self.module.check_mode:
            return {"changed": bool(moved), "moved": moved}
        deadline = time.monotonic() + self.params["timeout"]
        while running := self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{', '.join(running)} still running {self.params['timeout']} s after their manifests left "
                    f"{self.params['manifests_dir']} (they are in {self.params['held_manifests_dir']})"
                )
            time.sleep(1)
        return {"changed": bool(moved), "moved": moved}

    def swap(self) -> dict[str, Any]:
        previous = os.path.join(self.params["data_dir"], f"member.before-restore-{self.params['restore_id']}")
        if not os.path.isdir(os.path.join(self.staged_dir, "member")):
            raise ValueError(f"nothing restored waits in {self.staged_dir}: run step staged first")
        running = self.running()
        if "etcd" in running:
            raise ValueError("etcd still runs on this node: run step stopped first")
        if os.path.lexists(previous):
            raise ValueError(f"{previous} exists already: give this restore another restore_id")
        if not self.module.check_mode:
            if os.path.lexists(self.member_dir):
                os.rename(self.member_dir, previous)
            os.rename(os.path.join(self.staged_dir, "member"), self.member_dir)
            shutil.rmtree(self.staged_dir, ignore_errors=True)
        return {"changed": True, "previous": previous}

    def start(self) -> dict[str, Any]:
        held = self.params["held_manifests_dir"]
        moved = self.move_manifests(held, self.params["manifests_dir"])
        if not self.module.check_mode and os.path.isdir(held) and not os.listdir(held):
            os.rmdir(held)
        return {"changed": bool(moved), "moved": moved}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    restore_id = module.params["restore_id"]
    if restore_id is not None and not LABEL.match(restore_id):
        module.fail_json(msg=f"restore_id must be 1 to 64 letters, digits, '.', '_' or '-', got {restore_id!r}")
    restore = Restore(module)
    step = module.params["step"]
    try:
        if step == "staged":
            result = restore.stage()
        elif step == "stopped":
            result = restore.stop()
        elif step == "swapped":
            result = restore.swap()
        elif step == "started":
            result = restore.start()
        else:
            result = {"changed": restore.discard()}
    except (RuntimeError, ValueError, OSError) as error:
        module.fail_json(msg=f"etcd restore, step {step}: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
