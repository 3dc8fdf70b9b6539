#!/usr/bin/python
"""Read whether kubeadm set up a control plane on the node, and which etcd cluster its local member belongs to."""

from __future__ import annotations

DOCUMENTATION = r"""
module: control_plane_state
short_description: Read whether a node runs a kubeadm control plane and the etcd cluster of its member
description:
  - Reads whether kubeadm set up a control plane on the node (O(admin_kubeconfig) exists) and, on one, asks the
    node's own etcd member (C(etcdctl endpoint status) inside the running etcd container, through crictl) for the
    IDs of its cluster, of itself and of its leader.
  - A member answers this without a quorum, so a control plane that was cut off while the others restored etcd from a
    snapshot still names the cluster it belonged to, which is not the restored one.
  - Never changes the node. What cannot be read (no crictl, no running etcd container, no answer) leaves RV(etcd)
    empty and says why in RV(etcd_unread); the task does not fail for it.
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
  admin_kubeconfig:
    description: The admin kubeconfig kubeadm writes on every control plane it sets up.
    type: path
    default: /etc/kubernetes/admin.conf
  etcdctl:
    description:
      - The etcdctl command inside the etcd container, with the local member's endpoint and a client certificate;
        the module adds C(endpoint status --write-out=json).
    type: list
    elements: str
    required: true
  cri_socket:
    description: The container runtime's CRI endpoint that crictl talks to.
    type: str
    default: unix:///run/containerd/containerd.sock
  timeout:
    description: Seconds the member may take to answer.
    type: int
    default: 15
"""

EXAMPLES = r"""
- name: Read the etcd cluster of every control plane's member
  sensorstack.iot.control_plane_state:
    etcdctl:
      - /usr/local/bin/etcdctl
      - --endpoints=https://127.0.0.1:2379
      - --cacert=/etc/kubernetes/pki/etcd/ca.crt
      - --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt
      - --key=/etc/kubernetes/pki/etcd/healthcheck-client.key
  delegate_to: "{{ item }}"
  loop: "{{ groups['control_plane'] }}"
  run_once: true
"""

RETURN = r"""
initialised:
  description: Whether O(admin_kubeconfig) exists, that is whether kubeadm set up a control plane here.
  returned: always
  type: bool
etcd:
  description:
    - What the local etcd member says of itself, its IDs in hex as etcdctl's tables print them; empty when it could
      not be read, or on a node kubeadm has not set up.
  returned: always
  type: dict
  sample:
    cluster_id: ce8b1a6bd5c9e7a1
    member_id: 8e9e05c52164694d
    leader: ""
    version: 3.6.6
    errors: ["etcdserver: no leader"]
etcd_unread:
  description: Why RV(etcd) is empty on a node kubeadm set up ("" otherwise).
  returned: always
  type: str
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.crictl import MISSING_CRICTL, Crictl  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_member import endpoint_status  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "admin_kubeconfig": {"type": "path", "default": "/etc/kubernetes/admin.conf"},
    "etcdctl": {"type": "list", "elements": "str", "required": True},
    "cri_socket": {"type": "str", "default": "unix:///run/containerd/containerd.sock"},
    "timeout": {"type": "int", "default": 15},
}


def read_member(module: AnsibleModule) -> dict[str, Any]:
    if module.get_bin_path("crictl") is None:
        return {"etcd": {}, "etcd_unread": MISSING_CRICTL}
    crictl = Crictl(module, module.params["cri_socket"], module.params["timeout"])
    try:
        container = crictl.container("etcd")
        status = crictl.exec(
            container, [*module.params["etcdctl"], "endpoint", "status", "--write-out=json"], "etcdctl endpoint status"
        )
        return {"etcd": endpoint_status(status), "etcd_unread": ""}
    except (RuntimeError, ValueError) as error:
        return {"etcd": {}, "etcd_unread": str(error)}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not os.path.exists(module.params["admin_kubeconfig"]):
        module.exit_json(changed=False, initialised=False, etcd={}, etcd_unread="")
    module.exit_json(changed=False, initialised=True, **read_member(module))


if __name__ == "__main__":
    main()
