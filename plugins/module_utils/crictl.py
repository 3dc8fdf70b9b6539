"""crictl on a kubeadm node: the one client of the container runtime for the modules that work inside the node's
etcd container (etcd_snapshot, etcd_restore). The parsing of what crictl prints is pure and unit-tested; the class
runs crictl through Ansible's module plumbing.
"""

from __future__ import annotations

from typing import Any

# crictl's own warnings (no /etc/crictl.yaml, say) come before a command's error and say nothing about it.
CRICTL_WARNING = "level=warning"
MISSING_CRICTL = "no crictl on this node: install cri-tools (role kubernetes_packages installs it)"


def failure_summary(output: str, lines: int = 3, limit: int = 600) -> str:
    """What a failed command said, for a one-line message: its first lines (a Go panic, etcdutl's on a damaged file,
    goes on with its stack), without crictl's warnings."""
    said = [line.strip() for line in output.splitlines() if line.strip() and CRICTL_WARNING not in line]
    return " / ".join(said[:lines])[:limit]


def running_container(ps_output: str, name: str) -> str:
    """The one container id that `crictl ps --quiet --state running --name ^name$` printed."""
    ids = ps_output.split()
    if len(ids) != 1:
        found = f"{len(ids)} running containers" if ids else "no running container"
        raise ValueError(
            f"{found} named {name} on this node: this runs on a control-plane node of a kubeadm cluster with stacked "
            "etcd, while etcd runs"
        )
    return ids[0]


class Crictl:
    """crictl against one CRI endpoint. A failed command raises RuntimeError naming what ran."""

    def __init__(self, module: Any, cri_socket: str, exec_timeout: int) -> None:
        path = module.get_bin_path("crictl")
        if path is None:
            module.fail_json(msg=MISSING_CRICTL)
        self.module = module
        self.base = [path, "--runtime-endpoint", cri_socket]
        self.exec_timeout = exec_timeout

    def run(self, arguments: list[str], what: str) -> str:
        rc, out, err = self.module.run_command([*self.base, *arguments])
        if rc != 0:
            raise RuntimeError(f"{what} failed ({rc}): {failure_summary(err or out)}")
        return out

    def running(self, *selectors: str) -> str:
        """`crictl ps` of the running containers the selectors choose, as JSON."""
        return self.run(["ps", "--state", "running", *selectors, "--output", "json"], "crictl ps")

    def container(self, name: str) -> str:
        """The id of the one running container called name."""
        listed = self.run(["ps", "--quiet", "--state", "running", "--name", f"^{name}$"], "crictl ps")
        return running_container(listed, name)

    def exec(self, container: str, argv: list[str], what: str) -> str:
        return self.run(["exec", "--timeout", str(self.exec_timeout), container, *argv], what)
