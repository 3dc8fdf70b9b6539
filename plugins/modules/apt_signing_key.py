#!/usr/bin/python
"""Place a repository's signing key for apt (Signed-By), trusted by its primary key's fingerprint."""

from __future__ import annotations

DOCUMENTATION = r"""
module: apt_signing_key
short_description: Place an apt repository's signing key, trusted by its published fingerprint
description:
  - Downloads the OpenPGP public key file at O(url) on every run and writes it to O(dest) (the file a deb822
    source's C(Signed-By) names) when it differs, once the file holds exactly one primary key, whose fingerprint is
    O(fingerprint). A file with another primary key, or with a second one (which apt would trust too), is refused
    and O(dest) is left as it was.
  - Vendors rotate their signing subkeys inside the same file under the same primary key (InfluxData did in 2025),
    which changes the file's checksum but not its primary fingerprint, the one they publish. Pinning that fingerprint
    instead of a checksum lets a rotation through, and downloading on every run brings the new subkey to hosts that
    had the old file; apt itself checks that every subkey is bound to the primary key.
  - The fingerprints are read by the module itself (OpenPGP packets, versions 4 and 6): the target needs no gpg.
version_added: 1.0.0
author: sensorstack developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The key is downloaded and checked in check mode too; only the write is left out.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: Where the key file is downloaded from (ASCII-armored or binary), e.g. a mirror of the vendor's.
    type: str
    required: true
  dest:
    description: The key file to write, e.g. V(/etc/apt/keyrings/vendor.asc). Its folder must exist.
    type: path
    required: true
  fingerprint:
    description:
      - The primary key's fingerprint as the vendor publishes it; spaces and case do not matter.
      - At least one of O(fingerprint) and O(checksum) pins the key.
    type: str
    default: ""
  checksum:
    description:
      - The file's checksum, as V(sha256:<hex>) (or sha384, sha512). Alone where the vendor publishes no
        fingerprint; with O(fingerprint) where a site lets no rotation through unreviewed.
    type: str
    default: ""
  mode:
    description: Mode of O(dest).
    type: str
    default: "0644"
  timeout:
    description: Seconds to wait for the download.
    type: int
    default: 30
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Ensure InfluxData's signing key is in place
  sensorstack.iot.apt_signing_key:
    url: https://repos.influxdata.com/influxdata-archive.key
    dest: /etc/apt/keyrings/influxdata-archive.asc
    fingerprint: 24C9 75CB A61A 024E E1B6 3178 7C3D 5715 9FC2 F927
"""

RETURN = r"""
fingerprint:
  description: The (first) primary key's fingerprint, upper case without spaces.
  returned: success
  type: str
  sample: 24C975CBA61A024EE1B631787C3D57159FC2F927
subkeys:
  description: The fingerprints of the file's subkeys, in file order.
  returned: success
  type: list
  elements: str
"""

import hashlib  # noqa: E402
import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import fetch_url  # noqa: E402
from ansible_collections.sensorstack.iot.plugins.module_utils.openpgp import (  # noqa: E402
    OpenPGPError,
    fingerprint_problem,
    public_keys,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.text_file import write_atomically  # noqa: E402


def download(module: AnsibleModule, url: str, timeout: int) -> bytes:
    response, info = fetch_url(module, url, timeout=timeout)
    if response is None or info.get("status") != 200:
        module.fail_json(msg=f"cannot download the key from {url}: {info.get('msg', 'no answer')}", url=url)
    return response.read()


CHECKSUM_ALGORITHMS = ("sha256", "sha384", "sha512")


def checksum_problem(data: bytes, checksum: str) -> str | None:
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in CHECKSUM_ALGORITHMS or not expected:
        return f"checksum must be sha256:<hex> (or sha384, sha512), got {checksum!r}"
    actual = hashlib.new(algorithm, data).hexdigest()
    return None if actual == expected.lower() else f"the file's {algorithm} is {actual}, not the pinned {expected}"


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    if not params["fingerprint"] and not params["checksum"]:
        module.fail_json(msg="give fingerprint or checksum: a key is never trusted unpinned")
    data = download(module, params["url"], params["timeout"])
    if params["checksum"]:
        problem = checksum_problem(data, params["checksum"])
        if problem:
            module.fail_json(msg=f"refused the key from {params['url']}: {problem}", url=params["url"])
    try:
        keys = public_keys(data)
    except OpenPGPError as error:
        module.fail_json(msg=f"refused the key from {params['url']}: {error}", url=params["url"])
    problem = fingerprint_problem(keys, params["fingerprint"]) if params["fingerprint"] else None
    if problem:
        module.fail_json(msg=f"refused the key from {params['url']}: {problem}", url=params["url"])
    dest = params["dest"]
    try:
        mode = int(params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode must be octal, e.g. 0644, got {params['mode']!r}")
    current = None
    if os.path.isfile(dest):
        with open(dest, "rb") as handle:
            current = handle.read()
    changed = current != data or (os.stat(dest).st_mode & 0o7777) != mode
    if changed and not module.check_mode:
        write_atomically(module, dest, data, mode=mode)
    return {
        "changed": changed,
        "fingerprint": keys[0].fingerprint,
        "subkeys": keys[0].subkeys,
        "dest": dest,
    }


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "dest": {"type": "path", "required": True},
    "fingerprint": {"type": "str", "default": ""},
    "checksum": {"type": "str", "default": ""},
    "mode": {"type": "str", "default": "0644"},
    "timeout": {"type": "int", "default": 30},
    "validate_certs": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
