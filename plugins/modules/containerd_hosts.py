#!/usr/bin/python
"""Write containerd's per-registry hosts.toml files in one call, and remove the ones of registries no longer listed."""

from __future__ import annotations

DOCUMENTATION = r"""
module: containerd_hosts
short_description: Converge containerd's registry hosts directory in one call
description:
  - Writes C(<path>/<registry>/hosts.toml) for every registry of O(registries), creating the folders, and removes
    the C(hosts.toml) of a registry no longer listed when it carries O(marker) as a line of its own; files written
    by hand or by other tools stay.
  - One call for all registries, where a loop of C(ansible.builtin.template) tasks costs one round trip to the
    host per registry and file, on every run.
  - Render the texts on the controller (for example with the C(ansible.builtin.template) lookup). containerd reads
    these files at each pull; changing them needs no restart.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  path:
    description: The hosts directory (C(config_path) of containerd's CRI registry settings). Created when missing.
    type: path
    default: /etc/containerd/certs.d
  registries:
    description:
      - Registry (a folder name such as V(docker.io), V(registry.k8s.io:443) or V(_default)) to the full text of
        its C(hosts.toml).
    type: dict
    required: true
  marker:
    description:
      - A line that every file this module manages carries. A C(hosts.toml) of an unlisted registry is removed only
        when it has this line. Put it in every text of O(registries).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Ensure each registry's hosts.toml lists its mirrors
  sensorstack.iot.containerd_hosts:
    path: /etc/containerd/certs.d
    marker: "# Managed by sensorstack"
    registries:
      docker.io: |
        # Managed by sensorstack
        server = "https://registry-1.docker.io"

        [host."http://10.0.0.1:5000"]
          capabilities = ["pull", "resolve"]
"""

RETURN = r"""
written:
  description: Registries whose C(hosts.toml) was written (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [docker.io]
removed:
  description: Registries whose C(hosts.toml) carried the marker and was removed, as they are no longer listed.
  returned: always
  type: list
  elements: str
  sample: [quay.io]
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.containerd_hosts import (  # noqa: E402
    HOSTS_FILE,
    is_marked,
    plan_hosts,
    registry_name_error,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import read_text, write_atomically  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "path": {"type": "path", "default": "/etc/containerd/certs.d"},
    "registries": {"type": "dict", "required": True},
    "marker": {"type": "str", "required": True, "no_log": False},
}
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644


def current_files(module: AnsibleModule, path: str) -> dict[str, str]:
    """Registry -> text of every ``<path>/<registry>/hosts.toml`` on the host."""
    if not os.path.isdir(path):
        return {}
    found = {}
    for registry in sorted(os.listdir(path)):
        file = os.path.join(path, registry, HOSTS_FILE)
        if os.path.isfile(file):
            found[registry] = read_text(module, file) or ""
    return found


def ensure_directory(module: AnsibleModule, path: str) -> None:
    try:
        os.makedirs(path, mode=DIRECTORY_MODE, exist_ok=True)
    except OSError as error:
        module.fail_json(msg=f"cannot create {path}: {error}", path=path)


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    path, marker = params["path"], params["marker"]
    wanted: dict[str, str] = {}
    for registry, text in params["registries"].items():
        error = registry_name_error(str(registry))
        if error:
            module.fail_json(msg=f"registries: {error}")
        if not isinstance(text, str) or not is_marked(text, marker):
            module.fail_json(msg=f"registries[{registry!r}]: the text must be a string carrying the marker line")
        wanted[str(registry)] = text
    missing_root = not os.path.isdir(path)
    current = current_files(module, path)
    plan = plan_hosts(current, wanted, marker)
    modes = sorted(
        registry
        for registry in wanted
        if registry in current
        and registry not in plan.write
        and os.stat(os.path.join(path, registry, HOSTS_FILE)).st_mode & 0o7777 != FILE_MODE
    )
    result: dict[str, Any] = {
        "changed": plan.changed or bool(modes) or missing_root,
        "path": path,
        "written": list(plan.write),
        "removed": list(plan.remove),
    }
    if module._diff:
        result["diff"] = [
            {
                "before_header": os.path.join(path, registry, HOSTS_FILE),
                "after_header": os.path.join(path, registry, HOSTS_FILE),
                "before": current.get(registry, ""),
                "after": wanted.get(registry, ""),
            }
            for registry in (*plan.write, *plan.remove)
        ]
    if module.check_mode:
        return result
    if missing_root:
        ensure_directory(module, path)
    for registry in plan.write:
        folder = os.path.join(path, registry)
        ensure_directory(module, folder)
        write_atomically(module, os.path.join(folder, HOSTS_FILE), wanted[registry], mode=FILE_MODE)
    for registry in modes:
        os.chmod(os.path.join(path, registry, HOSTS_FILE), FILE_MODE)
    for registry in plan.remove:
        file = os.path.join(path, registry, HOSTS_FILE)
        try:
            os.unlink(file)
        except OSError as error:
            module.fail_json(msg=f"cannot remove {file}: {error}", path=file)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
