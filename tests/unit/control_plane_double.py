"""crictl and curl as tests/unit/test_kubeadm_restart_script.py needs them: ``control_plane_double.py FOLDER
crictl|curl ARGUMENT...`` answers from ``FOLDER/state.json`` and logs what it was asked and did to ``FOLDER/log``,
one line each.

The state: ``running`` (component -> IDs of its running containers), ``members`` (the answers of ``etcdctl endpoint
health --cluster`` in the etcd container, one list of unhealthy members per ask, the last repeated; an empty list is
a healthy cluster; null: no etcdctl in the image), ``answer_after`` (component -> the ask of its health URL that
first succeeds after its restart; null: never). ``crictl stop`` replaces a component's container with
``new-COMPONENT``, as the kubelet starts a new one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The health URLs the role renders, by the component they belong to.
URL_COMPONENTS = {":2381/": "etcd", ":6443/": "kube-apiserver", ":10257/": "kube-controller-manager"}


class ControlPlane:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict[str, Any] = json.loads((folder / "state.json").read_text())

    def log(self, line: str) -> None:
        with (self.folder / "log").open("a") as out:
            out.write(line + "\n")

    def count(self, key: str) -> int:
        calls = self.state.setdefault("calls", {})
        calls[key] = calls.get(key, 0) + 1
        (self.folder / "state.json").write_text(json.dumps(self.state))
        return int(calls[key])

    def crictl(self, arguments: list[str]) -> int:
        # crictl --runtime-endpoint SOCKET COMMAND ...
        command = arguments[2]
        if command == "version":
            return 0
        if command == "ps":
            label = next(a for a in arguments if a.startswith("io.kubernetes.container.name="))
            print("\n".join(self.state["running"].get(label.split("=", 1)[1], [])))
            return 0
        if command == "exec":  # exec ID etcdctl ... endpoint health --cluster
            return self.etcdctl(arguments[3], arguments[4:])
        if command == "stop":  # stop --timeout 30 ID...
            stopped = arguments[5:]
            for component, ids in self.state["running"].items():
                if ids and ids[0] in stopped:
                    self.log(f"stop {component}")
                    self.state["running"][component] = [f"new-{component}"]
            (self.folder / "state.json").write_text(json.dumps(self.state))
            return 0
        return 1

    def etcdctl(self, container: str, arguments: list[str]) -> int:
        assert arguments[0] == "/usr/local/bin/etcdctl" and arguments[-3:] == ["endpoint", "health", "--cluster"]
        answers = self.state["members"]
        if answers is None:
            print('exec failed: "/usr/local/bin/etcdctl": executable file not found in $PATH', file=sys.stderr)
            return 1
        unhealthy = answers[min(self.count("members"), len(answers)) - 1]
        self.log(f"members in {container}: " + (" ".join(unhealthy) or "healthy"))
        for member in unhealthy:
            print(f"https://{member}:2379 is unhealthy: failed to commit proposal: context deadline exceeded")
        return 1 if unhealthy else 0

    def curl(self, arguments: list[str]) -> int:
        url = arguments[-1]
        component = next(name for part, name in URL_COMPONENTS.items() if part in url)
        after = self.state["answer_after"].get(component, 1)
        answers = after is not None and self.count(f"asked {component}") >= after
        self.log(f"asked {component} {'answers' if answers else 'silent'}")
        return 0 if answers else 7


if __name__ == "__main__":
    folder, tool, *arguments = sys.argv[1:]
    control_plane = ControlPlane(Path(folder))
    sys.exit(getattr(control_plane, tool)(arguments))
