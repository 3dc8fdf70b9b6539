"""crictl and kubectl as tests/unit/test_kubeadm_restart_script.py needs them: ``control_plane_double.py FOLDER
crictl|kubectl ARGUMENT...`` answers from ``FOLDER/state.json`` and logs what it was asked and did to ``FOLDER/log``,
one line each.

The state: ``running`` (component -> IDs of its running containers), ``pods`` (component -> the Ready answers of
its pods, one mapping per read, the last repeated), ``ready_after`` (component -> the read at which its restarted
container is Ready; null: never), ``api_down`` (kubectl fails as without an API server). ``crictl stop`` replaces a
component's container with ``new-COMPONENT``, as the kubelet starts a new one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class ControlPlane:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict[str, Any] = json.loads((folder / "state.json").read_text())

    def log(self, line: str) -> None:
        with (self.folder / "log").open("a") as out:
            out.write(line + "\n")

    def save(self) -> None:
        (self.folder / "state.json").write_text(json.dumps(self.state))

    def count(self, key: str) -> int:
        calls = self.state.setdefault("calls", {})
        calls[key] = calls.get(key, 0) + 1
        self.save()
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
        if command == "stop":  # stop --timeout 30 ID...
            stopped = arguments[5:]
            for component, ids in self.state["running"].items():
                if ids and ids[0] in stopped:
                    self.log(f"stop {component}")
                    self.state["running"][component] = [f"new-{component}"]
            self.save()
            return 0
        return 1

    def kubectl(self, arguments: list[str]) -> int:
        if self.state.get("api_down"):
            print("The connection to the server 127.0.0.1:6444 was refused", file=sys.stderr)
            return 1
        selector = next(a for a in arguments if a.startswith("--selector=component="))
        component = selector.split("=", 2)[2]
        output = next(a for a in arguments if a.startswith("--output="))
        if "conditions" in output:  # the Ready condition of each pod
            answers = self.state["pods"].get(component, [])
            answer = answers[min(self.count(f"pods {component}"), len(answers)) - 1] if answers else {}
            self.log(f"pods {component} " + " ".join(f"{name}={ready}" for name, ready in answer.items()))
            print("\n".join(f"{name} {ready}" for name, ready in answer.items()))
            return 0
        # the ready flag of each container
        current = self.state["running"][component][0]
        after = self.state["ready_after"].get(component, 1)
        reads = self.count(f"containers {component}")
        ready = "true" if not current.startswith("new-") or (after is not None and reads >= after) else "false"
        self.log(f"ready {component} {current} {ready}")
        print(f"containerd://{current} {ready}")
        return 0


if __name__ == "__main__":
    folder, tool, *arguments = sys.argv[1:]
    control_plane = ControlPlane(Path(folder))
    sys.exit(control_plane.crictl(arguments) if tool == "crictl" else control_plane.kubectl(arguments))
