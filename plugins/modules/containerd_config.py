#!/usr/bin/python
"""Make containerd's config.toml fit Kubernetes: generate the default once, then edit only what must change."""

from __future__ import annotations

DOCUMENTATION = r"""
module: containerd_config
short_description: Make containerd's config.toml fit Kubernetes, editing it in place
description:
  - Replaces the C(config.toml) that the packages install (Debian's partial file, or the one of C(containerd.io)
    that disables the CRI plugin) with the complete output of C(containerd config default), once. The generated
    file starts with a marker line; later runs find it and edit the file in place, so changes made to other
    settings survive.
  - Sets C(SystemdCgroup = true) for the runc runtime and removes the CRI plugins from C(disabled_plugins), so the
    kubelet can use containerd with the systemd cgroup driver. Optionally sets the sandbox (pause) image, the
    directory of per-registry C(hosts.toml) files (C(config_path)) and the CNI plugin directory.
  - Finds each setting in the layout of the file's config version, C(version = 2) (containerd 1.x, under
    C(plugins."io.containerd.grpc.v1.cri")) or C(version = 3) (containerd 2.x, under
    C(plugins."io.containerd.cri.v1.runtime") and C(plugins."io.containerd.cri.v1.images")).
  - Works on the text, with nothing but Python on the host. Only the lines of changed values change; comments and
    formatting stay. A file it cannot read, or a value it cannot change safely (inside an inline table or an array
    of tables), makes it fail with the line number instead of rewriting the file.
  - Before replacing the file, checks the result with C(containerd --config FILE config dump), so containerd never
    restarts on a config it rejects.
  - Restart containerd after a change; it reads C(config.toml) only when it starts.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
  - action_common_attributes.files
options:
  path:
    description: containerd's configuration file. Its directory must exist.
    type: path
    default: /etc/containerd/config.toml
  generate_default:
    description:
      - Replace a file that this module did not generate (or create a missing one) with the output of
        C(containerd config default) before editing it. An existing file is kept as a backup.
      - With V(false), the file must exist and carry a C(version).
    type: bool
    default: true
  systemd_cgroup:
    description: Value of C(SystemdCgroup) in the options of the O(runtime) runtime.
    type: bool
    default: true
  runtime:
    description: Name of the runtime whose options get O(systemd_cgroup) (a key of C(containerd.runtimes)).
    type: str
    default: runc
  enable_cri:
    description:
      - Remove the CRI plugins (C(cri), C(io.containerd.grpc.v1.cri), C(io.containerd.cri.v1.images),
        C(io.containerd.cri.v1.runtime)) from C(disabled_plugins). V(false) leaves C(disabled_plugins) alone.
    type: bool
    default: true
  sandbox_image:
    description:
      - The sandbox (pause) image of every pod. Match the one of your kubeadm version
        (C(kubeadm config images list)). Omit to keep the file's.
    type: str
  registry_config_path:
    description:
      - Directory of per-registry C(hosts.toml) files (C(<dir>/<registry>/hosts.toml)), for mirrors and private
        registries. Omit to keep the file's; an empty string turns the directory off.
      - A version 2 file must then have no entries under C(registry.mirrors), which containerd refuses together
        with C(config_path).
    type: str
  cni_bin_dir:
    description:
      - Directory of the CNI plugin binaries; network add-ons such as Calico install theirs into C(/opt/cni/bin).
        Debian's package points containerd at C(/usr/lib/cni) instead. Omit to keep the file's.
      - Where the file lists directories (C(bin_dirs), containerd 2.1 and later), the list becomes this one
        directory.
    type: str
  restrict_oom_score_adj:
    description:
      - Value of C(restrict_oom_score_adj) of the CRI runtime plugin. V(true) keeps containers from asking for a
        lower OOM score than containerd's own, which needs C(CAP_SYS_RESOURCE); set it where containerd runs
        without that capability (containers as nodes, rootless). Omit to keep the file's.
    type: bool
  validate:
    description: Check the result with C(containerd --config FILE config dump) before writing it.
    type: bool
    default: true
  backup:
    description: Keep a copy of the previous file whenever it changes (it is always kept when it is replaced).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode. In check mode on a host where containerd is not installed yet, the default
    config cannot be generated; the module then only reports that the file would change.
requirements:
  - The C(containerd) binary on the host, for O(generate_default) and O(validate).
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
  safe_file_operations:
    support: full
seealso:
  - name: containerd configuration
    description: The settings of C(config.toml) and its versions.
    link: https://github.com/containerd/containerd/blob/main/docs/man/containerd-config.toml.5.md
  - name: Registry host configuration
    description: The C(hosts.toml) files that O(registry_config_path) points at.
    link: https://github.com/containerd/containerd/blob/main/docs/hosts.md
  - name: Container runtimes (Kubernetes)
    description: Why the kubelet and containerd must both use the systemd cgroup driver.
    link: https://kubernetes.io/docs/setup/production-environment/container-runtimes/
"""

EXAMPLES = r"""
- name: Ensure containerd serves the kubelet with systemd cgroups and registry mirrors
  sensorstack.iot.containerd_config:
    sandbox_image: registry.k8s.io/pause:3.10
    registry_config_path: /etc/containerd/certs.d
    cni_bin_dir: /opt/cni/bin
    owner: root
    group: root
    mode: "0644"
  notify: Restart containerd

- name: Ensure an existing, hand-written config only gets the systemd cgroup driver
  sensorstack.iot.containerd_config:
    path: /etc/containerd/config.toml
    generate_default: false
    systemd_cgroup: true
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/containerd/config.toml
version:
  description: The file's config version (2 for containerd 1.x, 3 for containerd 2.x).
  returned: when the file could be read or generated
  type: int
  sample: 2
generated:
  description: Whether the file was (or in check mode would be) replaced by containerd's default first.
  returned: always
  type: bool
  sample: false
changes:
  description: Each value written, as the TOML line it amounts to.
  returned: always
  type: list
  elements: str
  sample: ['plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup = true']
backup_file:
  description: Where the previous file was saved.
  returned: when a backup was made
  type: str
  sample: /etc/containerd/config.toml.4242.2026-01-01@12:00:00~
"""

import os  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.containerd_config import (  # noqa: E402
    EditError,
    Settings,
    edit_config,
    generated_file,
    is_generated,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import read_text, write_atomically  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "path": {"type": "path", "default": "/etc/containerd/config.toml"},
    "generate_default": {"type": "bool", "default": True},
    "systemd_cgroup": {"type": "bool", "default": True},
    "runtime": {"type": "str", "default": "runc"},
    "enable_cri": {"type": "bool", "default": True},
    "sandbox_image": {"type": "str"},
    "registry_config_path": {"type": "str"},
    "cni_bin_dir": {"type": "str"},
    "restrict_oom_score_adj": {"type": "bool"},
    "validate": {"type": "bool", "default": True},
    "backup": {"type": "bool", "default": False},
}


def settings_of(params: dict[str, Any]) -> Settings:
    return Settings(
        systemd_cgroup=params["systemd_cgroup"],
        runtime=params["runtime"],
        enable_cri=params["enable_cri"],
        sandbox_image=params["sandbox_image"],
        registry_config_path=params["registry_config_path"],
        cni_bin_dir=params["cni_bin_dir"],
        restrict_oom_score_adj=params["restrict_oom_score_adj"],
    )


def run_containerd(module: AnsibleModule, binary: str, *arguments: str) -> str:
    rc, stdout, stderr = module.run_command([binary, *arguments])
    if rc != 0:
        module.fail_json(msg=f"'containerd {' '.join(arguments)}' failed: {stderr.strip() or stdout.strip()}", rc=rc)
    return stdout


def default_config(module: AnsibleModule, binary: str) -> str:
    """``containerd config default`` under the marker line naming containerd's version."""
    words = run_containerd(module, binary, "--version").split()
    version = words[2] if len(words) > 2 else ""
    return generated_file(run_containerd(module, binary, "config", "default"), version)


def validate(module: AnsibleModule, binary: str, text: str) -> None:
    """Fail unless containerd reads ``text`` as a configuration."""
    descriptor, candidate = tempfile.mkstemp(prefix="containerd_config.", suffix=".toml", dir=module.tmpdir)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    rc, _, stderr = module.run_command([binary, "--config", candidate, "config", "dump"])
    if rc != 0:
        module.fail_json(msg=f"containerd rejects the edited configuration, which was not written: {stderr.strip()}")


def starting_text(module: AnsibleModule, binary: str | None, current: str | None, result: dict[str, Any]) -> str | None:
    """The text to edit: containerd's default when it must be generated, else the file. None: check mode cannot tell."""
    if not result["generated"]:
        if current is None:
            module.fail_json(msg=f"{result['path']} does not exist (set generate_default to create it)", **result)
        return current
    if binary is not None:
        return default_config(module, binary)
    if module.check_mode:
        # In check mode the package that brings containerd is only pretended to be installed.
        return None
    module.fail_json(msg="generate_default needs the containerd binary, which is not in PATH", **result)
    return None  # not reached: fail_json exits


def write(module: AnsibleModule, binary: str | None, path: str, current: str | None, text: str) -> dict[str, Any]:
    """Validate ``text`` and, outside check mode, back up and replace the file; returns the backup's name if any."""
    params = module.params
    if params["validate"]:
        if binary is not None:
            validate(module, binary, text)
        elif not module.check_mode:
            module.fail_json(msg="validate needs the containerd binary, which is not in PATH", path=path)
    if module.check_mode:
        return {}
    backup = {}
    if current is not None and (params["backup"] or not is_generated(current)):
        backup["backup_file"] = module.backup_local(path)
    write_atomically(module, path, text)
    return backup


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    path = os.path.realpath(params["path"])
    directory_exists = os.path.isdir(os.path.dirname(path))
    if not directory_exists and not module.check_mode:
        module.fail_json(msg=f"the directory of {path} does not exist", path=params["path"])
    binary = module.get_bin_path("containerd")
    current = read_text(module, path) if directory_exists else None
    generate = params["generate_default"] and not is_generated(current)
    result: dict[str, Any] = {"changed": False, "path": params["path"], "generated": generate, "changes": []}
    base = starting_text(module, binary, current, result)
    if base is None:
        # Check mode on a host where the package (and maybe the directory) would only now be installed.
        return {**result, "changed": True, "msg": "containerd is not installed: its default config would be generated"}
    try:
        edit = edit_config(base, settings_of(params))
    except EditError as error:
        module.fail_json(msg=f"{path}: {error}", **result)
    result.update(changed=edit.text != current, version=edit.version, changes=list(edit.changes))
    if module._diff:
        result["diff"] = {"before_header": path, "after_header": path, "before": current or "", "after": edit.text}
    if result["changed"]:
        result.update(write(module, binary, path, current, edit.text))
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params, path=path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, add_file_common_args=True, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
