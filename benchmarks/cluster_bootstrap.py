#!/usr/bin/env python3
"""From started lab nodes to a Ready cluster with Calico: site.yml against the same commands run by hand.

(a) `ansible-playbook site.yml --tags runtime,cluster,network` on one control plane and one worker, with the
    built-in lab's settings (inventories/local/group_vars) over this benchmark's hosts, as the cluster tier runs it;
(a') the same with the opt-in Mitogen strategy (docs/mitogen.md), when --mitogen asks for it;
(b) benchmarks/cluster_floor.sh, the floor: the apt, containerd, haproxy, kubeadm and kubectl commands an admin runs
    by hand over `docker exec` for the same cluster, both nodes at once where a script would.

Every way starts from fresh debian13-node containers (sensorstack-test-bench-*, 10.213.0.60-65) and pulls from one
bundle server of their own on the lab gateway (ports 38080 and 35000). The clock starts once the containers run and
stops when the way returns: both wait themselves until every node is Ready, calico-node and Calico's controllers
are rolled out and CoreDNS runs. Afterwards, untimed, the script checks that again and compares what the two built
(packages, containerd's effective config, mirrors, haproxy, kubeadm's and Calico's settings), printing any
difference. One control plane and one worker keep a round short; the rounds alternate (a), (a'), (b). Target: (a)
at most 1.3x (b). Figures, not pass/fail.

    .venv/bin/python benchmarks/cluster_bootstrap.py [--rounds N] [--mitogen]   # make bench-cluster; 5-15 min a way

Needs Docker, the lab images and the bundle (make setup). site.yml's task and role timings (profile_tasks,
profile_roles) and both ways' logs go to benchmarks/results/ beside cluster_bootstrap.json.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import RESULTS, record  # noqa: E402
from sensorstack import mitogen_strategy  # noqa: E402
from sensorstack.bundle.cache import default_bundle_dir  # noqa: E402
from sensorstack.bundle.manifest import read_manifest  # noqa: E402
from sensorstack.bundle.serve import BundleServer  # noqa: E402
from sensorstack.lab import containers  # noqa: E402
from tests.integration.ansible_module import ansible_environment  # noqa: E402

TARGET = 1.3
HTTP_PORT = 38080
REGISTRY_PORT = 35000
LAB = ROOT / "inventories/local"
FLOOR = ROOT / "benchmarks/cluster_floor.sh"
TIMEOUT = 3600
# inotify instances two nodes take from the host's fs.inotify.max_user_instances (systemd, containerd, kubelet, the
# control plane), measured with some margin.
INOTIFY_NEEDED = 45
# way -> (control plane, worker) as (inventory name, fixed address); containers are TEST_CONTAINER_PREFIX + name.
NODES = {
    "site": (("bench-site-cp1", "10.213.0.60"), ("bench-site-worker1", "10.213.0.61")),
    "hand": (("bench-hand-cp1", "10.213.0.62"), ("bench-hand-worker1", "10.213.0.63")),
    "mitogen": (("bench-mitogen-cp1", "10.213.0.64"), ("bench-mitogen-worker1", "10.213.0.65")),
}
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"

# What both ways must have built, read on each node (the same command on both) ...
NODE_PROBES = {
    "packages": "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' containerd docker.io docker-cli haproxy "
    "kubeadm kubelet kubectl cri-tools kubernetes-cni; apt-mark showhold",
    "kubernetes apt source": "grep -v '^#' /etc/apt/sources.list.d/kubernetes.sources",
    "containerd effective config": "containerd config dump",
    "registry mirrors": 'for f in /etc/containerd/certs.d/*/hosts.toml; do echo "$f"; grep -v \'^#\' "$f" '
    "| sed '/^$/d'; done",
    "docker daemon.json": 'python3 -c \'import json; print(json.dumps(json.load(open("/etc/docker/daemon.json")), '
    "sort_keys=True))'",
    "haproxy.cfg": "grep -v '^ *#' /etc/haproxy/haproxy.cfg | sed '/^$/d'",
    "kubelet resolv.conf": "grep -v '^#' /etc/kubernetes/resolv.conf",
    "kubelet flags and config": "cat /var/lib/kubelet/kubeadm-flags.env /var/lib/kubelet/config.yaml",
    "services": "for unit in containerd docker haproxy kubelet kubeadm-certificates-renew.timer; do "
    'echo "$unit $(systemctl is-enabled $unit 2>&1) $(systemctl is-active $unit 2>&1)"; done',
}
# ... and read from the cluster on the control plane (kubectl's arguments after KUBECTL).
CLUSTER_PROBES = {
    "nodes": "get nodes --no-headers -o custom-columns=NAME:.metadata.name,IP:.status.addresses[0].address,"
    "VERSION:.status.nodeInfo.kubeletVersion,RUNTIME:.status.nodeInfo.containerRuntimeVersion",
    "kubeadm ClusterConfiguration": "-n kube-system get configmap kubeadm-config "
    "-o jsonpath='{.data.ClusterConfiguration}'",
    "kube-proxy config": "-n kube-system get configmap kube-proxy -o jsonpath='{.data.config\\.conf}'",
    "kubelet config in the cluster": "-n kube-system get configmap kubelet-config -o jsonpath='{.data.kubelet}'",
    "calico-node env": "-n kube-system get daemonset calico-node -o jsonpath="
    "'{range .spec.template.spec.containers[0].env[*]}{.name}={.value}{.valueFrom}{\"\\n\"}{end}' | sort",
    "images": "-n kube-system get daemonset,deployment -o jsonpath="
    "'{range .items[*]}{.metadata.name} {.spec.template.spec.containers[*].image}{\"\\n\"}{end}'",
    "calico-config": "-n kube-system get configmap calico-config -o jsonpath='{.data}'",
    "IP pool": "get ippools.crd.projectcalico.org default-ipv4-ippool -o jsonpath='{.spec}'",
}
# Untimed, after both ways: the state the clock stopped at, checked the same way for both.
READY = (
    f"{KUBECTL} wait --for=condition=Ready nodes --all --timeout=60s && "
    f"{KUBECTL} -n kube-system rollout status daemonset/calico-node --timeout=60s && "
    f"{KUBECTL} -n kube-system rollout status deployment/coredns --timeout=60s && "
    f"test $({KUBECTL} get nodes --no-headers | wc -l) -eq 2"
)


@dataclass(frozen=True)
class Node:
    name: str
    address: str

    @property
    def container(self) -> str:
        return f"{containers.TEST_CONTAINER_PREFIX}{self.name}"

    def sh(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.container, "bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def plain_value(path: Path, name: str) -> str:
    value = str(yaml.safe_load(path.read_text())[name])
    if "{{" in value:
        raise SystemExit(f"{name} in {path} is a template; this benchmark reads plain pins only")
    return value


def floor_settings(bundle: Path, gateway: str) -> dict[str, str]:
    """The pins and lab settings site.yml uses, for the floor: from the sensorstack role's defaults, the built-in
    lab's inventory and the bundle's bundle.json."""
    defaults = ROOT / "roles/sensorstack/defaults/main"
    lab = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["vars"]
    key = read_manifest(bundle).find("key", "apt-signing-key")
    checksum = plain_value(defaults / "versions.yml", "sensorstack_calico_manifest_checksum")
    return {
        "MIRROR": f"http://{gateway}:{HTTP_PORT}",
        "REGISTRY": f"{gateway}:{REGISTRY_PORT}",
        "KUBERNETES_VERSION": plain_value(defaults / "versions.yml", "sensorstack_kubernetes_version"),
        "PACKAGE_REVISION": plain_value(defaults / "versions.yml", "sensorstack_kubernetes_package_revision"),
        "APT_KEY_SHA256": key.sha256,
        "CALICO_VERSION": plain_value(defaults / "versions.yml", "sensorstack_calico_version"),
        "CALICO_SHA256": checksum.removeprefix("sha256:"),
        "POD_CIDR": plain_value(defaults / "main.yml", "sensorstack_pod_cidr"),
        "SERVICE_CIDR": plain_value(defaults / "main.yml", "sensorstack_service_cidr"),
        "API_PORT": plain_value(defaults / "main.yml", "sensorstack_api_load_balancer_port"),
        # inventories/local/group_vars: sensorstack_kubelet_resolvers and calico_ip_autodetection_method.
        "RESOLVER": gateway,
        "HOST_CIDR": str(lab["lab_subnet"]),
    }


def inventory_for(directory: Path, control_plane: Node, worker: Node) -> Path:
    """This benchmark's two hosts under the built-in lab's settings, as tests/cluster/conftest.py builds the tier's."""
    lab = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["vars"]

    def hosts(node: Node) -> dict[str, Any]:
        return {node.name: {"ansible_host": node.container, "sensorstack_node_ip": node.address}}

    inventory = {
        "all": {
            "vars": lab | {"lab_bundle_port": HTTP_PORT, "lab_registry_port": REGISTRY_PORT},
            "children": {
                "sensorstack": {
                    "children": {"control_plane": {"hosts": hosts(control_plane)}, "workers": {"hosts": hosts(worker)}}
                }
            },
        }
    }
    if not (directory / "group_vars").exists():
        (directory / "group_vars").symlink_to(LAB / "group_vars", target_is_directory=True)
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def start_nodes(way: str) -> tuple[Node, Node]:
    nodes = tuple(Node(name, address) for name, address in NODES[way])
    for node in nodes:
        containers.remove(node.container)
        containers.start(containers.LabHost(node.name, node.container, "debian13-node", address=node.address))
    return nodes  # type: ignore[return-value]


def remove_nodes(way: str) -> None:
    for name, address in NODES[way]:
        containers.remove(Node(name, address).container)


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with log.open("w") as output:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
        )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        tail = log.read_text()[-4000:]
        raise SystemExit(f"{' '.join(command)} failed after {elapsed:.0f} s (log: {log}):\n{tail}")
    return elapsed


def run_site(nodes: tuple[Node, Node], directory: Path, log: Path, mitogen: bool = False) -> float:
    inventory = inventory_for(directory, *nodes)
    env = ansible_environment(
        **(mitogen_strategy.environment() if mitogen else {}),
        # Facts of these throwaway hosts stay in memory, away from the lab's shared fact cache.
        ANSIBLE_CACHE_PLUGIN="memory",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks,ansible.posix.profile_roles",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
    )
    command = ["ansible-playbook", "-i", str(inventory), "site.yml", "--tags", "runtime,cluster,network"]
    return timed(command, env, log)


def run_floor(nodes: tuple[Node, Node], settings: dict[str, str], log: Path) -> float:
    control_plane, worker = nodes
    command = [str(FLOOR), control_plane.container, control_plane.address, worker.container, worker.address]
    return timed(command, os.environ | settings, log)


def probe(nodes: tuple[Node, Node]) -> dict[str, str]:
    """Check the finished state, then read what the way built, with its own names and addresses made generic."""
    control_plane, worker = nodes
    ready = control_plane.sh(READY)
    if ready.returncode != 0:
        raise SystemExit(f"the cluster on {control_plane.container} is not ready:\n{ready.stdout}{ready.stderr}")
    generic = {
        control_plane.name: "<control-plane>",
        worker.name: "<worker>",
        control_plane.address: "<control-plane-ip>",
        worker.address: "<worker-ip>",
    }
    pattern = re.compile("|".join(re.escape(key) for key in generic))
    found = {}
    for role, node in (("control plane", control_plane), ("worker", worker)):
        for label, script in NODE_PROBES.items():
            found[f"{role}: {label}"] = node.sh(script).stdout
    for label, script in CLUSTER_PROBES.items():
        found[label] = control_plane.sh(f"{KUBECTL} {script}").stdout
    return {label: pattern.sub(lambda match: generic[match.group(0)], text) for label, text in found.items()}


def differences(site: dict[str, str], hand: dict[str, str]) -> dict[str, str]:
    return {
        label: "".join(
            difflib.unified_diff(
                site[label].splitlines(keepends=True),
                hand[label].splitlines(keepends=True),
                "site.yml",
                "by hand",
                n=1,
            )
        )
        for label in site
        if site[label] != hand[label]
    }


def recap(log: Path, banner: str) -> list[tuple[str, float]]:
    """profile_tasks' (TASKS RECAP) or profile_roles' (ROLES RECAP) timings from a site.yml log, longest first."""
    section = log.read_text().split(banner, 1)[-1].split("*\n", 1)[-1]
    section = re.split(r"^\w[\w ]* RECAP \*", section, flags=re.MULTILINE)[0]
    return [
        (name.strip(), float(seconds))
        for name, seconds in re.findall(r"^(.+?) -* (\d+\.\d+)s$", section, flags=re.MULTILINE)
        if name.strip() != "total"
    ]


def inotify_in_use() -> tuple[int, int]:
    """(instances in use, fs.inotify.max_user_instances): every container's root shares the host's limit."""
    used = 0
    for descriptors in Path("/proc").glob("[0-9]*/fd"):
        try:
            used += sum(1 for fd in descriptors.iterdir() if os.readlink(fd) == "anon_inode:inotify")
        except OSError:
            continue
    return used, int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())


def wait_for_inotify() -> None:
    """A kubelet that finds no inotify instance left exits, and kubeadm waits for it until its timeout: while other
    clusters on this machine hold them, wait (an hour at most) instead of timing a failure."""
    deadline = time.monotonic() + TIMEOUT
    used, limit = inotify_in_use()
    if limit - used >= INOTIFY_NEEDED:
        return
    print(
        f"waiting: {used} of fs.inotify.max_user_instances {limit} in use, two nodes need {INOTIFY_NEEDED}",
        flush=True,
    )
    while limit - used < INOTIFY_NEEDED:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{used} of {limit} inotify instances still in use: stop other clusters, or raise the limit"
            )
        time.sleep(20)
        used, limit = inotify_in_use()


def run_way(way: str, number: int, settings: dict[str, str], directory: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """One timed run of a way on fresh nodes, which are removed afterwards: its figures, and what it built."""
    log = RESULTS / f"cluster_bootstrap_{way}_{number}.log"
    wait_for_inotify()
    try:
        nodes = start_nodes(way)
        load_before = round(os.getloadavg()[0], 1)
        if way == "hand":
            seconds = run_floor(nodes, settings, log)
        else:
            seconds = run_site(nodes, directory, log, mitogen=way == "mitogen")
        load_after = round(os.getloadavg()[0], 1)
        built = probe(nodes)
    finally:
        remove_nodes(way)
    return {"round": number, "way": way, "seconds": round(seconds, 1), "load": [load_before, load_after]}, built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of (a) then (b) (default 1)")
    parser.add_argument("--mitogen", action="store_true", help="also (a') site.yml on Mitogen, between (a) and (b)")
    args = parser.parse_args()
    ways = ("site", "mitogen", "hand") if args.mitogen else ("site", "hand")
    bundle = default_bundle_dir()
    if not (bundle / "bundle.json").is_file():
        raise SystemExit(f"no bundle at {bundle}: run `make bundle`")
    RESULTS.mkdir(exist_ok=True)
    containers.ensure_network()
    gateway = containers.network_gateway()
    settings = floor_settings(bundle, gateway)
    runs: list[dict[str, Any]] = []
    changed: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sensorstack-bench-") as directory,
        BundleServer(bundle, gateway, HTTP_PORT, REGISTRY_PORT),
    ):
        for number in range(1, args.rounds + 1):
            found = {}
            for way in ways:
                run, found[way] = run_way(way, number, settings, Path(directory))
                runs.append(run)
                print(
                    f"round {number}, {way}: {run['seconds']:.1f} s, load average {run['load'][0]:.1f} -> "
                    f"{run['load'][1]:.1f}",
                    flush=True,
                )
            for way in ways[:-1]:
                for label, diff in differences(found[way], found["hand"]).items():
                    changed[f"{way}: {label}"] = diff
                    print(f"differs ({way}), {label}:\n{diff}", flush=True)
    site = [run["seconds"] for run in runs if run["way"] == "site"]
    hand = [run["seconds"] for run in runs if run["way"] == "hand"]
    ratio = sum(site) / sum(hand)
    loads = [load for run in runs for load in run["load"]]
    tasks = recap(RESULTS / f"cluster_bootstrap_site_{args.rounds}.log", "TASKS RECAP")
    roles = recap(RESULTS / f"cluster_bootstrap_site_{args.rounds}.log", "ROLES RECAP")
    print("site.yml's longest tasks (last round):")
    for name, seconds in tasks[:12]:
        print(f"  {seconds:7.1f} s  {name}")
    print("site.yml by role (last round): " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in roles))
    on_mitogen = [run["seconds"] for run in runs if run["way"] == "mitogen"]
    mitogen_ratio = sum(on_mitogen) / sum(hand) if on_mitogen else None
    summary_line = (
        f"site.yml {sum(site) / len(site):.1f} s, by hand {sum(hand) / len(hand):.1f} s, ratio {ratio:.2f}"
        + (f"; on Mitogen {sum(on_mitogen) / len(on_mitogen):.1f} s, ratio {mitogen_ratio:.2f}" if on_mitogen else "")
        + f" (target <= {TARGET}); load average {min(loads):.1f}-{max(loads):.1f}"
    )
    summary = {
        "site_s": round(sum(site) / len(site), 1),
        "hand_s": round(sum(hand) / len(hand), 1),
        "ratio": round(ratio, 3),
        "mitogen_ratio": round(mitogen_ratio, 3) if mitogen_ratio else None,
        "target": TARGET,
        "runs": runs,
        "differences": sorted(changed),
        "site_tasks_s": dict(tasks[:30]),
        "site_roles_s": dict(roles),
    }
    record("cluster_bootstrap", summary_line, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
