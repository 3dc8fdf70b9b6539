#!/usr/bin/python
"""Documentation of sensorstack.iot.apt_packages; its action plugin (plugins/action/apt_packages.py) does the work."""

from __future__ import annotations

DOCUMENTATION = r"""
module: apt_packages
short_description: Ensure Debian packages are installed, asking dpkg before apt
description:
  - Ensures every package of O(name) is installed, at the version given after C(=) when there is one (a glob such
    as V(kubelet=1.35.0-*) matches as in M(ansible.builtin.apt)).
  - Asks C(dpkg-query) first, in one short command without Python on the host. When dpkg already has every package
    at a matching version, the task reports no change and apt does not run. Otherwise it runs
    M(ansible.builtin.apt) with O(name), C(state=present) and the other options, exactly as that task would.
  - M(ansible.builtin.apt) loads the whole apt cache on every call, 2 to 4 s a host on a converged host, and
    refreshes the package lists when they are older than O(cache_valid_time) even when nothing is to be installed;
    this module spends one C(dpkg-query) on a host that has everything.
  - An entry of another form (C(pkg>=1.0), C(pkg:arm64), a C(.deb) path) goes to apt directly.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: debian
options:
  name:
    description: Packages, each V(package) or V(package=version).
    type: list
    elements: str
    required: true
    aliases: [package, pkg]
  update_cache:
    description: Passed to M(ansible.builtin.apt) when apt runs; dpkg's answer never needs the package lists.
    type: bool
    default: false
  cache_valid_time:
    description: Passed to M(ansible.builtin.apt) when apt runs.
    type: int
    default: 0
  allow_change_held_packages:
    description: Passed to M(ansible.builtin.apt) when apt runs, so that a held package can move to a new pin.
    type: bool
    default: false
  hold_pinned:
    description:
      - Also hold every package of O(name) that names a version (C(apt-mark hold)), so that C(apt upgrade) does not
        move it past the pin. dpkg's answer says which are held already; the others are held after apt ran.
      - apt drops the hold of a held package it moves to another version (O(allow_change_held_packages)); dpkg is
        asked again after apt ran, and such a package is held again.
      - Entries without a version are left as they are. Needs every entry as V(package) or V(package=version).
    type: bool
    default: false
notes:
  - A package installed at a version the pin does not match runs apt, which installs the pinned one (or fails, as
    apt does, when that version is held and O(allow_change_held_packages) is false).
seealso:
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: Ensure haproxy is installed
  sensorstack.iot.apt_packages:
    name: haproxy
    update_cache: true
    cache_valid_time: 3600

- name: Ensure the Kubernetes packages are installed at the pinned version and held there
  sensorstack.iot.apt_packages:
    name: [kubelet=1.35.0-*, kubeadm=1.35.0-*, kubectl=1.35.0-*]
    update_cache: true
    allow_change_held_packages: true
    hold_pinned: true
"""

RETURN = r"""
apt_ran:
  description: Whether M(ansible.builtin.apt) ran (something was missing); its own return values come with it.
  returned: always
  type: bool
  sample: false
missing:
  description: The entries of O(name) that dpkg did not satisfy (all of them when one has a form only apt reads).
  returned: always
  type: list
  elements: str
  sample: [kubelet=1.35.0-*]
absent:
  description:
    - The packages of O(name) that dpkg had no version of before the task (never installed, or only their
      configuration files left). apt installs them fresh, and their maintainer scripts start their services with the
      configuration already in place.
    - Empty when an entry has a form only apt reads.
  returned: always
  type: list
  elements: str
  sample: [docker.io]
held:
  description: Packages this run marked as held (or would, in check mode), with O(hold_pinned).
  returned: always
  type: list
  elements: str
  sample: [kubelet]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.apt_packages import ARGUMENT_SPEC  # noqa: E402


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="sensorstack.iot.apt_packages runs through its action plugin; call it as a task.")


if __name__ == "__main__":
    main()
