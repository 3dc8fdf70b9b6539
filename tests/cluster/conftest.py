"""The cluster tier: one cluster, built by `site.yml` from the served bundle on Kubernetes-capable lab nodes, shared
by every test of the session.

It is built as an operator's cluster ages: `site.yml` at the previous minor release the bundle carries, then
`playbooks/upgrade.yml` to the pinned one while a two-replica workload is watched (test_upgrade.py checks that run),
so every other test checks an upgraded cluster, and test_ha.py adds control planes at the pinned version.

The nodes are this tier's own containers (``sensorstack-test-cpc-*``, fixed addresses beside the built-in lab's)
and its inventory is the built-in lab's settings (``inventories/local/group_vars``) over its own hosts, so what
passes here is what `make deploy` runs. Under CI=true a missing bundle or Docker Engine fails the tier instead of
skipping it: a skipped cluster test must never read as a pass.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle.cache import default_bundle_dir
from sensorstack.bundle.manifest import read_manifest, verify
from sensorstack.bundle.serve import BundleServer
from sensorstack.bundle.versions import load_versions
from sensorstack.lab import containers
from sensorstack.lab.node import host_sysctls
from tests.integration.ansible_module import ansible_environment
from tests.tiers import unavailable

from .upgrade_probe import ReadyWatcher, UpgradeRecord, workload

LAB_INVENTORY = project_root() / "inventories/local"
SITE = project_root() / "site.yml"
UPGRADE = project_root() / "playbooks/upgrade.yml"
VERSIONS = load_versions()
# The release the tier's cluster is first built at, one minor before the pin.
PREVIOUS_RELEASE = {
    "sensorstack_kubernetes_version": VERSIONS["sensorstack_kubernetes_upgrade_from_version"],
    "sensorstack_kubernetes_package_revision": VERSIONS["sensorstack_kubernetes_upgrade_from_package_revision"],
}
# The tier's own ports, so a lab served by `sensorstack lab up` (8080/5000) keeps running beside it.
HTTP_PORT = 28080
REGISTRY_PORT = 25000
# name -> fixed address of this tier's nodes, on the lab subnet beside the built-in lab's (.11-.31).
CONTROL_PLANE = ("cpc-cp1", "10.213.0.53")
WORKERS = (("cpc-worker1", "10.213.0.54"), ("cpc-worker2", "10.213.0.55"))
# The two control planes test_ha.py joins (three_control_planes), which test_reset.py resets one of.
EXTRA_CONTROL_PLANES = (("cpc-cp2", "10.213.0.56"), ("cpc-cp3", "10.213.0.57"))
CONTROL_PLANES = (CONTROL_PLANE, *EXTRA_CONTROL_PLANES)
KUBECTL = ("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf")
# The Lease one control plane holds while it restarts its components (roles/sensorstack/vars/main.yml).
RENEWAL_LEASE = "sensorstack-certificate-renewal"
# Docker's default is 1024.
NODE_CPU_SHARES = 4096
# Every step may pull images or packages through the mirror on a loaded two-core machine.
PLAYBOOK_TIMEOUT = 3600
# Each playbook run's whole output (profile_tasks' timings included) in the order the session ran them, kept after
# the session: where a slow or failed run spent its time.
RUN_LOGS = project_root() / ".cache/cluster-runs"


@dataclass(frozen=True)
class Node:
    name: str
    container: str

    def run(self, *command: str, check: bool = True, timeout: float = 600, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["docker", "exec", "-i", self.container, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def sh(self, script: str, check: bool = True, timeout: float = 600) -> str:
        return self.run("sh", "-euc", script, check=check, timeout=timeout)


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        counters = {}
        for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, flags=re.MULTILINE):
            counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", fields)}
        return counters

    def changed(self) -> dict[str, int]:
        """changed= of every inventory host (the preflight play's localhost left out)."""
        return {host: counters["changed"] for host, counters in self.recap().items() if host != "localhost"}

    def tail(self, characters: int = 6000) -> str:
        return self.output[-characters:]

    def changed_tasks(self) -> list[str]:
        """'TASK name: changed host' for every change the run reported, to say what a run that should change
        nothing changed."""
        found, task = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line.removeprefix("TASK [").split("]", 1)[0]
            elif line.startswith("changed: ["):
                found.append(f"{task}: {line.strip()}")
        return found

    def explain(self) -> str:
        """What an assertion about a run prints: the changes it reported, then the end of its output."""
        return "changed:\n" + "\n".join(self.changed_tasks()) + "\n\n" + self.tail()


@dataclass
class Cluster:
    control_plane: Node
    workers: list[Node]
    inventory: Path
    directory: Path
    # Every container of the cluster, removed at the end of the session (tests that add nodes append theirs).
    containers: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    upgrade: UpgradeRecord | None = None
    runs: int = 0

    @property
    def nodes(self) -> list[Node]:
        return [self.control_plane, *self.workers]

    def run_playbook(self, playbook: Path, *extra: str, stdin: str | None = None) -> PlaybookRun:
        started = time.monotonic()
        result = subprocess.run(
            ["ansible-playbook", "-i", str(self.inventory), str(playbook), *extra],
            cwd=project_root(),
            # Facts of these throwaway hosts stay in memory, away from the lab's shared fact cache.
            env=ansible_environment(ANSIBLE_CACHE_PLUGIN="memory"),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT,
            check=False,
        )
        run = PlaybookRun(result.returncode, result.stdout + result.stderr, time.monotonic() - started)
        self.runs += 1
        log = RUN_LOGS / f"{self.runs:03d}-{playbook.stem}.log"
        log.write_text(
            f"# {os.environ.get('PYTEST_CURRENT_TEST', '')}\n# {run.seconds:.1f} s, exit {run.returncode}\n{run.output}"
        )
        return run

    def playbook(self, name: str, plays: list[dict[str, Any]], *extra: str) -> PlaybookRun:
        path = self.directory / f"{name}.yml"
        path.write_text(yaml.safe_dump(plays, sort_keys=False))
        return self.run_playbook(path, *extra)

    def site(self, *extra: str) -> PlaybookRun:
        return self.run_playbook(SITE, *extra)

    def kubectl(self, *arguments: str, stdin: str | None = None, timeout: float = 600) -> str:
        return self.control_plane.run(*KUBECTL, *arguments, stdin=stdin, timeout=timeout)

    def kubectl_json(self, *arguments: str) -> Any:
        return json.loads(self.kubectl(*arguments, "--output=json"))

    def stored_cluster_configuration(self) -> dict[str, Any] | None:
        """The ClusterConfiguration kubeadm stored in ConfigMap kube-system/kubeadm-config (None without one)."""
        answer = self.kubectl(
            "--namespace=kube-system", "get", "configmap", "kubeadm-config", "--ignore-not-found", "--output=json"
        )
        return yaml.safe_load(json.loads(answer)["data"]["ClusterConfiguration"]) if answer.strip() else None


@pytest.fixture(scope="session")
def bundle() -> Path:
    path = default_bundle_dir()
    if not (path / "bundle.json").is_file():
        unavailable("cluster", f"no bundle at {path}: run `make bundle` (sensorstack bundle build)")
    problems = verify(path)
    assert problems == [], f"the bundle at {path} is damaged: {problems}"
    return path


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        unavailable("cluster", "no Docker Engine answers (make host)")


@pytest.fixture(scope="session")
def manifest(bundle: Path):  # type: ignore[no-untyped-def]
    return read_manifest(bundle)


def cluster_inventory(
    directory: Path, control_planes: tuple[tuple[str, str], ...], workers: tuple[tuple[str, str], ...]
) -> Path:
    """This tier's hosts under the built-in lab's settings: its group_vars and files, its all-level lab variables."""
    lab = yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text())["all"]["vars"]

    def hosts(*entries: tuple[str, str]) -> dict[str, Any]:
        return {
            name: {"ansible_host": f"{containers.TEST_CONTAINER_PREFIX}{name}", "sensorstack_node_ip": address}
            for name, address in entries
        }

    inventory = {
        "all": {
            "vars": lab | {"lab_bundle_port": HTTP_PORT, "lab_registry_port": REGISTRY_PORT},
            "children": {
                "sensorstack": {
                    "children": {
                        "control_plane": {"hosts": hosts(*control_planes)},
                        "workers": {"hosts": hosts(*workers)},
                    }
                }
            },
        }
    }
    for shared in ("group_vars", "files"):
        if not (directory / shared).exists():
            (directory / shared).symlink_to(LAB_INVENTORY / shared, target_is_directory=True)
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def node_container(name: str, address: str) -> containers.LabHost:
    """A fresh Kubernetes-capable node container of this tier."""
    host = containers.LabHost(name, f"{containers.TEST_CONTAINER_PREFIX}{name}", "debian13-node", address=address)
    containers.remove(host.container)
    containers.start(host)
    # This tier is the suite's longest (scripts/test-suite): its nodes' components get four times a container's
    # default share of the CPU while other tiers' containers run beside them.
    subprocess.run(
        ["docker", "update", f"--cpu-shares={NODE_CPU_SHARES}", host.container], capture_output=True, check=True
    )
    return host


@pytest.fixture(scope="session")
def host_sysctls_before() -> dict[str, str]:
    return host_sysctls()


@pytest.fixture(scope="session")
def mirror(bundle: Path, docker_engine: None) -> Iterator[BundleServer]:
    """The bundle served on the lab network's gateway, the only address lab nodes reach the host by."""
    containers.ensure_network()
    with BundleServer(bundle, containers.network_gateway(), HTTP_PORT, REGISTRY_PORT) as server:
        yield server


@contextlib.contextmanager
def renewal_lease_held(node: Node, holder: str) -> Iterator[None]:
    """The control planes' restart Lease held by holder from node, as while its certificate renewal restarts its
    components (fresh for 600 s); removed afterwards."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": RENEWAL_LEASE, "namespace": "kube-system"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 600, "acquireTime": now, "renewTime": now},
    }
    node.run(*KUBECTL, "create", "--filename=-", stdin=json.dumps(lease))
    try:
        yield
    finally:
        node.run(*KUBECTL, "--namespace=kube-system", "delete", "lease", RENEWAL_LEASE, "--ignore-not-found")


def renewal_lease_holder(node: Node) -> str:
    """Who holds the control planes' restart Lease ("" for nobody)."""
    return node.run(
        *KUBECTL,
        "--namespace=kube-system",
        "get",
        "lease",
        RENEWAL_LEASE,
        "--ignore-not-found",
        "--output=jsonpath={.spec.holderIdentity}",
    )


def wait_for(
    description: str,
    check: Any,
    timeout: float = 600,
    interval: float = 5,
    tolerated: tuple[type[Exception], ...] = (AssertionError,),
) -> Any:
    """What ``check()`` returns once it is true, asked every ``interval`` seconds; a ``tolerated`` exception counts as
    not yet. After ``timeout`` seconds, an AssertionError naming ``description`` and the last answer or exception."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except tolerated as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"{description} not within {timeout:.0f} s (last: {last})")


def kubelet_versions(cluster: Cluster) -> set[str]:
    return {item["status"]["nodeInfo"]["kubeletVersion"] for item in cluster.kubectl_json("get", "nodes")["items"]}


def upgrade_under_watch(cluster: Cluster) -> UpgradeRecord:
    """Run playbooks/upgrade.yml limited to a worker, which must stop before the control plane is upgraded; then
    deploy the probe workload, run the whole upgrade while it is watched, and remove the workload."""
    versions = kubelet_versions(cluster)
    worker_first = cluster.run_playbook(UPGRADE, "--limit", cluster.workers[0].name)
    versions_after_worker_first = kubelet_versions(cluster)
    cluster.kubectl("apply", "--filename=-", stdin=workload())
    cluster.kubectl("rollout", "status", "deployment/upgrade-probe", "--timeout=600s", timeout=660)
    watcher = ReadyWatcher(cluster.directory / "artifacts/admin.conf")
    watcher.start()
    run = cluster.run_playbook(UPGRADE)
    watcher.stopping.set()
    watcher.join()
    if run.returncode == 0:
        cluster.kubectl("delete", "--filename=-", "--wait=false", stdin=workload())
    return UpgradeRecord(
        run.output,
        run.returncode,
        run.seconds,
        versions,
        watcher.readings,
        watcher.errors,
        worker_first_output=worker_first.output if worker_first.returncode != 0 else "(the run succeeded)",
        worker_first_changed=worker_first.changed(),
        versions_after_worker_first=versions_after_worker_first,
    )


@pytest.fixture(scope="session")
def cluster(mirror: BundleServer, host_sysctls_before: dict[str, str]) -> Iterator[Cluster]:
    """A control plane and two workers, built by site.yml at the previous release and upgraded to the pinned one;
    removed afterwards unless SENSORSTACK_KEEP_CLUSTER."""
    entries = (CONTROL_PLANE, *WORKERS)
    started: list[str] = []
    shutil.rmtree(RUN_LOGS, ignore_errors=True)
    RUN_LOGS.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sensorstack-cluster-") as temporary:
        directory = Path(temporary)
        try:
            for name, address in entries:
                started.append(node_container(name, address).container)
            nodes = [Node(name, f"{containers.TEST_CONTAINER_PREFIX}{name}") for name, _ in entries]
            inventory = cluster_inventory(directory, (CONTROL_PLANE,), WORKERS)
            built = Cluster(nodes[0], nodes[1:], inventory, directory, started)
            run = built.site("--extra-vars", json.dumps(PREVIOUS_RELEASE))
            built.timings["first run"] = run.seconds
            assert run.returncode == 0, f"site.yml at the previous release failed:\n{run.tail()}"
            print(f"\ncluster built by site.yml at the previous release in {run.seconds:.0f} s")
            built.upgrade = upgrade_under_watch(built)
            built.timings["upgrade"] = built.upgrade.seconds
            assert built.upgrade.returncode == 0, f"playbooks/upgrade.yml failed:\n{built.upgrade.output[-6000:]}"
            yield built
        finally:
            if not os.environ.get("SENSORSTACK_KEEP_CLUSTER"):
                for container in started:
                    containers.remove(container)


@pytest.fixture(scope="session")
def three_control_planes(cluster: Cluster) -> list[Node]:
    """Two more control-plane nodes joined to the cluster by site.yml: 3 + 2 nodes from here on."""
    for name, address in EXTRA_CONTROL_PLANES:
        cluster.containers.append(node_container(name, address).container)
    cluster.inventory = cluster_inventory(cluster.directory, CONTROL_PLANES, WORKERS)
    # The control planes' story; the stack on the cluster, which this changes nothing for, is test_stack.py's.
    run = cluster.site("--skip-tags", "stack,verify")
    cluster.timings["control-plane joins"] = run.seconds
    print(f"\ntwo control-plane nodes joined by site.yml in {run.seconds:.0f} s")
    assert run.returncode == 0, run.tail()
    return [
        cluster.control_plane,
        *(Node(name, f"{containers.TEST_CONTAINER_PREFIX}{name}") for name, _ in EXTRA_CONTROL_PLANES),
    ]


# test_upgrade.py first: it checks the upgrade the cluster fixture ran, on the 1 + 2 nodes as upgraded; then the files
# not named here; then test_etcd_restore_one_control_plane.py (the 1 + 2 cluster's etcd restored). test_ha.py
# (more control planes, the first one stopped), test_etcd_restore.py (all three control planes' etcd restored from a
# snapshot), test_reset.py (a worker reset, then a control plane's) and test_etcd_restore_after_losing_control_planes.py
# (two control planes replaced) last, in that order.
TEST_ORDER = {
    "test_upgrade.py": 0,
    "test_etcd_restore_one_control_plane.py": 1.5,
    "test_ha.py": 2,
    "test_etcd_restore.py": 2.5,
    "test_reset.py": 3,
    "test_etcd_restore_after_losing_control_planes.py": 4,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: TEST_ORDER.get(item.path.name, 1))
