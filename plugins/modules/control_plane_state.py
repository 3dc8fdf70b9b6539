#!/usr/bin/python
"""Read whether kubeadm set up a control plane on the node, and which etcd cluster its local member belongs to."""

from __future__ import annotations

DOCUMENTATION = r"""
module: control_plane_state
short_description: Read whether a node runs a kubeadm control plane and the etcd cluster of its member
description:
  - Reads whether kubeadm set up a control plane on the node (O(admin_kubeconfig) exists) and, on one, asks the
    node's own etcd member at its peer URL which cluster it belongs to (C(GET /members), whose C(X-Etcd-Cluster-ID)
    header names it, and the members it knows), with kubeadm's etcd certificates.
  - A member answers this from its start, without a quorum and before it serves clients. A control plane that was
    cut off while the others restored etcd from a snapshot, and came back with its old data, never serves clients
    again, yet still names the cluster it belonged to, which is not the restored one.
  - Never changes the node. What cannot be read (no etcd listening, a refused certificate) leaves RV(etcd) empty and
    says why in RV(etcd_unread); the task does not fail for it.
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
  peer_url:
    description: The peer URL the node's etcd member listens on (kubeadm's C(https://<advertise address>:2380)).
    type: str
    required: true
  ca_file:
    description: The CA that signed etcd's peer certificates.
    type: path
    default: /etc/kubernetes/pki/etcd/ca.crt
  cert_file:
    description: A certificate etcd's peer listener accepts (kubeadm's peer certificate of the node).
    type: path
    default: /etc/kubernetes/pki/etcd/peer.crt
  key_file:
    description: The key of O(cert_file).
    type: path
    default: /etc/kubernetes/pki/etcd/peer.key
  timeout:
    description: Seconds the member may take to answer.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Read the etcd cluster of every control plane's member
  sensorstack.iot.control_plane_state:
    peer_url: "https://{{ hostvars[item].sensorstack_node_ip }}:2380"
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
    - What the local etcd member says of its cluster (its ID in hex, as etcd prints it, and the names of the members
      it knows); empty when it could not be read, or on a node kubeadm has not set up.
  returned: always
  type: dict
  sample:
    cluster_id: b1a339c935beb156
    members: [cp1, cp2, cp3]
etcd_unread:
  description: Why RV(etcd) is empty on a node kubeadm set up ("" otherwise).
  returned: always
  type: str
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.etcd_member import peer_members  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "admin_kubeconfig": {"type": "path", "default": "/etc/kubernetes/admin.conf"},
    "peer_url": {"type": "str", "required": True},
    "ca_file": {"type": "path", "default": "/etc/kubernetes/pki/etcd/ca.crt"},
    "cert_file": {"type": "path", "default": "/etc/kubernetes/pki/etcd/peer.crt"},
    "key_file": {"type": "path", "default": "/etc/kubernetes/pki/etcd/peer.key"},
    "timeout": {"type": "int", "default": 10},
}


def read_member(params: dict[str, Any]) -> dict[str, Any]:
    url = params["peer_url"].rstrip("/") + "/members"
    # kubeadm's peer listener takes HTTPS with a client certificate only; an etcd of plain HTTP peers needs none.
    tls = (
        {"ca_path": params["ca_file"], "client_cert": params["cert_file"], "client_key": params["key_file"]}
        if url.startswith("https://")
        else {}
    )
    try:
        response = open_url(url, method="GET", timeout=params["timeout"], validate_certs=True, **tls)
        body = response.read().decode("utf-8", errors="replace")
        return {"etcd": peer_members(response.headers.get("X-Etcd-Cluster-ID"), body), "etcd_unread": ""}
    # Any failure to read (refused, timed out, a certificate refused, an answer that names no cluster) leaves the
    # member unjudged, with the reason.
    except Exception as error:
        return {"etcd": {}, "etcd_unread": f"GET {url}: {error}"}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not os.path.exists(module.params["admin_kubeconfig"]):
        module.exit_json(changed=False, initialised=False, etcd={}, etcd_unread="")
    module.exit_json(changed=False, initialised=True, **read_member(module.params))


if __name__ == "__main__":
    main()
