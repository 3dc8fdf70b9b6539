"""Run one of the collection's modules as Ansible runs it on a host: its arguments as JSON on stdin, its result as
JSON on stdout, with this machine's Python and the collection on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from .role_files import ROOT


def run_module_file(name: str, arguments: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    payload = {"ANSIBLE_MODULE_ARGS": arguments | {"_ansible_check_mode": check, "_ansible_diff": diff}}
    answer = subprocess.run(
        [sys.executable, str(ROOT / "plugins/modules" / f"{name}.py")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT / "collections")},
        check=False,
    )
    return json.loads(answer.stdout)
